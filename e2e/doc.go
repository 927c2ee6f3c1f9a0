// Package e2e tests the real hedge binary the way people run it.
//
// TestMain builds `hedge` once (with -race when the tests run with -race)
// and every test starts it as a child process: the embedded two-region
// demo on its fixed loopback addresses, exactly as the README shows it and
// driven with the real curl; `hedge check` on good and broken
// configurations; `hedge serve -c` with a small configuration of the
// test's own, reloaded with SIGHUP and stopped with SIGTERM; `hedge dns`
// with its admin API over TLS; the `hedge ledgersim` stand-in, with and
// without mTLS; and the hostile-client suite (hostile_test.go), a player
// with a valid token and a raw socket against two regions, checking what
// the writers and rails hold afterwards.
//
// Everything listens on loopback. The demo test needs the demo's
// addresses (127.0.0.11–12:8443 and :9090, 127.0.0.21–22:7000,
// 127.0.0.31–32:7100) to be free and fails, naming the busy one, when
// another demo holds them. Other tests use free 127.0.0.1 ports.
//
// Run with: go test -race -count=1 ./e2e/ (curl must be installed;
// `make deps` installs it). The load comparison with nginx lives in
// e2e/bench, a separate program run by `make bench`.
package e2e
