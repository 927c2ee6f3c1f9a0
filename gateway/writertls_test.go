package gateway

import (
	"crypto/tls"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"hedge/internal/sim"
	"hedge/internal/testkit"
)

// startTLSLedger runs a ledger simulator over HTTPS with certFile, and with
// clientCA requiring client certificates signed by it (mTLS).
func startTLSLedger(t *testing.T, domain, certFile, keyFile, clientCA string) (*sim.Ledger, string) {
	t.Helper()
	cfg, err := sim.ServerTLS(certFile, keyFile, clientCA)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := sim.NewLedger(sim.LedgerSettings{Domain: domain, Logger: quiet})
	go l.Serve(tls.NewListener(ln, cfg))
	t.Cleanup(func() { l.Close() })
	return l, ln.Addr().String()
}

// writerTLSConfig: the sea writer is reached over HTTPS, verified against
// {{WCA}}, with the edge's client certificate.
func writerTLSConfig(probe string) string {
	cfg := strings.Replace(moneyConfig, "  probe: {enabled: {{PROBE}}, interval: 50ms, timeout: 40ms, fall: 1}",
		"  probe: {enabled: "+probe+", interval: 50ms, timeout: 40ms, fall: 1}\n"+
			`  writer_tls: {ca_file: "{{WCA}}", cert_file: "{{ECERT}}", key_file: "{{EKEY}}"}`, 1)
	return strings.Replace(cfg, `url: "http://{{SEA}}"`, `url: "https://{{SEA}}"`, 1)
}

// walletPKI is the wallet's own CA, in dir, with the writer's server
// certificate (for 127.0.0.1) and the edge's client certificate.
func walletPKI(t *testing.T, dir string) (ca *testkit.CA, srvCert, srvKey, edgeCert, edgeKey string) {
	t.Helper()
	ca = testkit.NewCA(t, dir, "wallet-ca")
	srvCert, srvKey = ca.Issue(t, "writer", false, "127.0.0.1")
	edgeCert, edgeKey = ca.Issue(t, "edge", true)
	return ca, srvCert, srvKey, edgeCert, edgeKey
}

// TestWriterMTLS: a writer that requires the edge's client certificate
// refuses anyone else on the path and applies the edge's bets; its role
// probe goes through the same mTLS.
func TestWriterMTLS(t *testing.T) {
	dir := t.TempDir()
	ca, srvCert, srvKey, edgeCert, edgeKey := walletPKI(t, dir)
	strangerCA := testkit.NewCA(t, dir, "stranger-ca")
	strangerCert, strangerKey := strangerCA.Issue(t, "stranger", true)

	sea, seaAddr := startTLSLedger(t, "sea", srvCert, srvKey, ca.File)
	_, euAddr := startLedger(t, "eu", 1, "")
	e := startEdgeNode(t, writerTLSConfig("true"), "sea", "sea-1", "{{SEA}}", seaAddr, "{{EU}}", euAddr,
		"{{WCA}}", ca.File, "{{ECERT}}", edgeCert, "{{EKEY}}", edgeKey)
	tok := token(t, "player-1", "")
	betOn := func(key string) (*http.Response, string) {
		return do(t, "POST", e.url+"/api/bets", "", bet, "Authorization", "Bearer "+tok, "Idempotency-Key", key, "Content-Type", "application/json")
	}
	// The probe reached the writer's /role over mTLS.
	testkit.WaitUntil(t, "the sea writer's role probed over mTLS", 3*time.Second, func() bool {
		_, body := do(t, "GET", e.admin+"/status", "", "")
		var st Status
		json.Unmarshal([]byte(body), &st)
		for _, d := range st.Ledger {
			for _, c := range d.Candidates {
				if c.Domain == "sea" && c.Reachable && c.Role == "writer" && c.Reported == 1 {
					return true
				}
			}
		}
		return false
	})
	if resp, body := betOn("mtls-1"); resp.StatusCode != 201 {
		t.Fatalf("the edge's bet to a writer requiring its certificate: want 201, got %d %s", resp.StatusCode, body)
	}
	if got := applied(sea); got["player-1/mtls-1"] != 1 || len(got) != 1 {
		t.Fatalf("the writer applied %v, want player-1/mtls-1 once", got)
	}

	// Anyone on the path without the edge's certificate is refused before
	// the writer reads a byte: nothing is applied.
	for _, c := range []struct {
		name  string
		certs []tls.Certificate
	}{
		{"no client certificate", nil},
		{"a certificate from another CA", []tls.Certificate{loadPair(t, strangerCert, strangerKey)}},
	} {
		client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), Certificates: c.certs}}}
		req, _ := http.NewRequest("POST", "https://"+seaAddr+"/bets", strings.NewReader(bet))
		req.Header.Set("Idempotency-Key", "direct-1")
		req.Header.Set("X-Hedge-Principal", "victim-1")
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			t.Errorf("%s: want the writer to refuse the connection, got %s", c.name, resp.Status)
		}
		client.CloseIdleConnections()
	}
	if got := applied(sea); len(got) != 1 {
		t.Fatalf("after direct calls without the edge's certificate the writer applied %v, want only the edge's bet", got)
	}
}

// TestWriterTLSFailsClosed: a writer whose certificate does not verify
// against ledger.writer_tls.ca_file is never sent the call (503
// writer-unavailable, nothing applied), as is one that refuses the edge's
// missing client certificate; a reload re-reads the files and the calls go
// through.
func TestWriterTLSFailsClosed(t *testing.T) {
	dir := t.TempDir()
	ca, srvCert, srvKey, edgeCert, edgeKey := walletPKI(t, dir)
	impostorCA := testkit.NewCA(t, dir, "impostor-ca")
	trusted := dir + "/trusted-ca.pem"
	copyFile(t, impostorCA.File, trusted) // the edge trusts the wrong CA

	sea, seaAddr := startTLSLedger(t, "sea", srvCert, srvKey, ca.File)
	_, euAddr := startLedger(t, "eu", 1, "")
	e := startEdgeNode(t, writerTLSConfig("false"), "sea", "sea-1", "{{SEA}}", seaAddr, "{{EU}}", euAddr,
		"{{WCA}}", trusted, "{{ECERT}}", edgeCert, "{{EKEY}}", edgeKey)
	tok := token(t, "player-1", "")
	betOn := func(key string) (*http.Response, string) {
		return do(t, "POST", e.url+"/api/bets", "", bet, "Authorization", "Bearer "+tok, "Idempotency-Key", key, "Content-Type", "application/json")
	}
	resp, body := betOn("unverified-1")
	wantProblem(t, resp, body, 503, "writer-unavailable")
	if resp.Header.Get("Retry-After") == "" {
		t.Error("writer-unavailable without Retry-After")
	}
	if got := applied(sea); len(got) != 0 {
		t.Fatalf("a writer whose certificate does not verify received %v, want nothing", got)
	}

	// Certificates are read again on reload: with the right CA the same
	// key goes through (the 503 released it).
	copyFile(t, ca.File, trusted)
	if resp, body := do(t, "POST", e.admin+"/admin/reload", "", ""); resp.StatusCode != 200 {
		t.Fatalf("reload: %d %s", resp.StatusCode, body)
	}
	if resp, body := betOn("unverified-1"); resp.StatusCode != 201 {
		t.Fatalf("after the reload with the writer's CA: want 201, got %d %s", resp.StatusCode, body)
	}

	// Without its client certificate the edge refuses, during the
	// handshake, a writer that asks for one: nothing is sent, and the call
	// fails closed rather than as an unknown outcome (under TLS 1.3 the
	// writer's own refusal would only show once the call was written).
	rewriteConfig(t, e, `, cert_file: "`+edgeCert+`", key_file: "`+edgeKey+`"`, "")
	if resp, body := do(t, "POST", e.admin+"/admin/reload", "", ""); resp.StatusCode != 200 {
		t.Fatalf("reload without the client certificate: %d %s", resp.StatusCode, body)
	}
	resp, body = betOn("no-client-cert-1")
	wantProblem(t, resp, body, 503, "writer-unavailable")
	if got := applied(sea); len(got) != 1 {
		t.Fatalf("the writer applied %v, want only the bet made with the edge's certificate", got)
	}
}

const railTLSConfig = testHead + testJWT + `routes:
  - {name: cashier, match: {path_prefix: /cashier/, methods: [POST]}, pool: rails, auth: jwt, idempotency: required}
` + seaNode + `    pools:
      - name: rails
        critical: true
        members: [{name: psp, url: "https://{{RAIL}}"}]
        health: {interval: 250ms, timeout: 250ms, rise: 1, fall: 2}
        tls: {ca_file: "{{CA}}", cert_file: "{{CERT}}", key_file: "{{KEY}}", server_name: psp.rails.test}
`

// TestPoolMTLS: a pool's https member is verified against the pool's CA
// under tls.server_name, and both deposits and health probes present the
// edge's client certificate to a rail that requires it.
func TestPoolMTLS(t *testing.T) {
	dir := t.TempDir()
	ca := testkit.NewCA(t, dir, "psp-ca")
	srvCert, srvKey := ca.Issue(t, "psp", false, "psp.rails.test")
	edgeCert, edgeKey := ca.Issue(t, "edge", true)
	srvTLS, err := sim.ServerTLS(srvCert, srvKey, ca.File)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rail := sim.NewRail(sim.RailSettings{Name: "psp"})
	go rail.Serve(tls.NewListener(ln, srvTLS))
	t.Cleanup(func() { rail.Close() })

	e := startEdge(t, railTLSConfig, "{{RAIL}}", ln.Addr().String(), "{{CA}}", ca.File, "{{CERT}}", edgeCert, "{{KEY}}", edgeKey)
	member := func() PoolStatus {
		_, body := do(t, "GET", e.admin+"/status", "", "")
		var st Status
		if err := json.Unmarshal([]byte(body), &st); err != nil || len(st.Pools) != 1 {
			t.Fatalf("status: %v %s", err, body)
		}
		return st.Pools[0]
	}
	// Once a second probe has started, the first one's verdict is in. A
	// probe that got through presented the edge's certificate (the rail
	// refuses a client without one, and every probe would fail); one that
	// a busy machine held past its timeout says nothing, so the test waits
	// for a probe that got through.
	var first time.Time
	testkit.WaitUntil(t, "a first health probe", 3*time.Second, func() bool {
		first = member().Members[0].LastProbe
		return !first.IsZero()
	})
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		p := member()
		if p.Members[0].LastProbe.After(first) && p.Healthy == 1 && p.Members[0].LastError == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the rail behind mTLS: want healthy with its probes presenting the edge's certificate, got %+v", p)
		}
	}
	resp, body := do(t, "POST", e.url+"/cashier/deposit", "", `{"amount":"5.00"}`, "Idempotency-Key", "dep-1",
		"Authorization", "Bearer "+token(t, "player-1", ""))
	if resp.StatusCode != 200 || !strings.Contains(body, `"rail":"psp"`) {
		t.Fatalf("deposit through the pool's mTLS: want 200 from psp, got %d %s", resp.StatusCode, body)
	}
}
