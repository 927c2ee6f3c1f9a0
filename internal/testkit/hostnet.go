package testkit

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// hostNetworkLock is the file HoldHostNetwork locks (a variable for its
// own test).
var hostNetworkLock = filepath.Join(os.TempDir(), "hedge-test-host-network.lock")

// HoldHostNetwork keeps two kinds of tests from overlapping, across the
// test processes of one `go test ./...` (packages run in parallel):
//   - tests that add interfaces and addresses to the host (exclusive), such
//     as hedge drill's network namespaces and veth pairs;
//   - tests that drive Chromium (shared).
//
// Chromium watches the host's addresses over netlink and fails every
// request in flight with ERR_NETWORK_CHANGED when one appears: a test that
// wants a page's requests to succeed cannot share the host with one that
// adds addresses. (The player survives a lost hls.js; its test loses it
// on purpose.)
// The hold is an flock on a file in the temporary directory, released when
// the test ends; waiting for it is logged.
func HoldHostNetwork(t testing.TB, exclusive bool) {
	t.Helper()
	f, err := os.OpenFile(hostNetworkLock, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		t.Fatalf("host network hold: %v", err)
	}
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	began := time.Now()
	for waited := false; ; waited = true {
		err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if err == nil {
			if waited {
				t.Logf("waited %s for tests that change the host's network, or drive a browser, to end", time.Since(began).Round(time.Millisecond))
			}
			break
		}
		if err != syscall.EWOULDBLOCK && err != syscall.EINTR {
			f.Close()
			t.Fatalf("host network hold: %v", err)
		}
		if time.Since(began) > 10*time.Minute {
			f.Close()
			t.Fatal("host network hold: still held by another test after 10 minutes")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Cleanup(func() { f.Close() }) // closing the file releases the lock
}
