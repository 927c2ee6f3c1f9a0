package e2e

import (
	"strings"
	"testing"

	"hedge/internal/testkit"
)

// TestLedgersimMTLS: `hedge ledgersim -tls-cert -tls-key -client-ca`
// serves HTTPS and only to clients holding a certificate from the CA, as
// a wallet that takes calls from the edge alone would.
func TestLedgersimMTLS(t *testing.T) {
	dir := t.TempDir()
	ca := testkit.NewCA(t, dir, "wallet-ca")
	srvCert, srvKey := ca.Issue(t, "writer", false, "127.0.0.1")
	edgeCert, edgeKey := ca.Issue(t, "edge", true)
	addr := testkit.FreeAddr(t)
	p := startHedge(t, "ledgersim", dir, "ledgersim", "-listen", addr, "-domain", "sea",
		"-tls-cert", srvCert, "-tls-key", srvKey, "-client-ca", ca.File)
	edge := tlsClient(ca.Pool(), edgeCert, edgeKey)
	r := firstAnswer(t, p, "ledgersim to answer GET /role over mTLS", edge, "https://"+addr+"/role")
	if r.status != 200 || !strings.Contains(r.body, `"role":"writer"`) {
		t.Fatalf("GET /role with the edge's certificate: want 200 writer, got %v", r)
	}
	if _, err := tryDo(tlsClient(ca.Pool(), "", ""), "GET", "https://"+addr+"/role", ""); err == nil {
		t.Error("GET /role without a client certificate: want the connection refused")
	}
	if r, err := tryDo(quickClient, "GET", "http://"+addr+"/role", ""); err == nil && r.status != 400 {
		t.Errorf("plain HTTP to the TLS ledger: want it refused, got %v", r)
	}
}
