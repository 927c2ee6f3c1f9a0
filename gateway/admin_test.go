package gateway

import (
	"crypto/tls"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hedge/internal/testkit"
)

// The tokens of the admin tests: one per kind of caller.
const (
	scraperToken = "scraper-0123456789abcdef0123456789ab" // read
	opsToken     = "ops-0123456789abcdef0123456789abcdef" // read, operate
	aliceToken   = "alice-0123456789abcdef0123456789abcd" // read, operate, promote
	bobToken     = "bob-0123456789abcdef0123456789abcdef" // promote only
	pushToken    = "push-0123456789abcdef0123456789abcde" // operate only
)

func adminTokens(extra string) string {
	return `admin:
  ` + extra + `
  tokens:
    - {name: scraper, token: ` + scraperToken + `, roles: [read]}
    - {name: ops, token_file: "{{OPSFILE}}", roles: [read, operate]}
    - {name: alice, token: ` + aliceToken + `, roles: [read, operate, promote]}
    - {name: bob, token: ` + bobToken + `, roles: [promote]}
    - {name: pusher, token: ` + pushToken + `, roles: [operate]}`
}

// startRoleEdge runs baseConfig's node with the admin tokens above; ops's
// token is in a file (returned), so it can be rotated.
func startRoleEdge(t *testing.T, loopback bool, logs *testkit.Buffer) (*fixture, string) {
	t.Helper()
	f := &fixture{l1: newUpstream(t, "l1"), g1: newUpstream(t, "g1"), g2: newUpstream(t, "g2")}
	cfg := strings.Replace(baseConfig, "admin: {allow_loopback: true}", adminTokens(map[bool]string{true: "allow_loopback: true", false: "allow_loopback: false"}[loopback]), 1)
	tokenFile := writeTemp(t, "ops.token", opsToken+"\n")
	o := edgeOptions{}
	if logs != nil {
		o.log = logs
	}
	f.edge = startEdgeWith(t, o, cfg, "{{L1}}", f.l1.addr(), "{{G1}}", f.g1.addr(), "{{G2}}", f.g2.addr(), "{{OPSFILE}}", tokenFile)
	return f, tokenFile
}

// TestAdminRoles: every admin endpoint needs its role; a token without it
// gets 403 naming the role, no token or an unknown one 401, and reading
// never implies operating or promoting.
func TestAdminRoles(t *testing.T) {
	f, _ := startRoleEdge(t, false, nil)
	type call struct{ method, path string }
	var (
		metrics  = call{"GET", "/metrics"}
		status   = call{"GET", "/status"}
		healthz  = call{"GET", "/healthz"}
		promList = call{"GET", "/admin/ledger/promotions"}
		pprof    = call{"GET", "/debug/pprof/"}
		drain    = call{"POST", "/admin/drain"}
		undrain  = call{"DELETE", "/admin/drain"}
		reload   = call{"POST", "/admin/reload"}
		learned  = call{"GET", "/admin/waf/learn"}
		request  = call{"POST", "/admin/ledger/promotions"}
		approve  = call{"POST", "/admin/ledger/promotions/nope/approve"}
		unknown  = call{"GET", "/nope"}
	)
	for _, c := range []struct {
		call
		token  string
		status int
		slug   string // problem type, or "" for a non-problem answer
		role   string // the role a 403 must name
	}{
		{metrics, "", 401, "unauthorized", ""},
		{metrics, "wrong-0123456789abcdef0123456789abcdef", 401, "unauthorized", ""},
		{metrics, scraperToken, 200, "", ""},
		{metrics, pushToken, 403, "admin-role-missing", "read"},
		{metrics, bobToken, 403, "admin-role-missing", "read"},
		{status, scraperToken, 200, "", ""},
		{status, pushToken, 403, "admin-role-missing", "read"},
		{healthz, scraperToken, 200, "", ""},
		{promList, scraperToken, 200, "", ""},
		{pprof, scraperToken, 403, "admin-role-missing", "operate"},
		{pprof, opsToken, 200, "", ""},
		{drain, scraperToken, 403, "admin-role-missing", "operate"},
		{drain, bobToken, 403, "admin-role-missing", "operate"},
		{drain, pushToken, 200, "", ""},
		{undrain, opsToken, 200, "", ""},
		{reload, scraperToken, 403, "admin-role-missing", "operate"},
		{reload, opsToken, 200, "", ""},
		{learned, scraperToken, 403, "admin-role-missing", "operate"},
		{learned, opsToken, 200, "", ""},
		{request, scraperToken, 403, "admin-role-missing", "promote"},
		{request, opsToken, 403, "admin-role-missing", "promote"},
		{approve, opsToken, 403, "admin-role-missing", "promote"},
		{approve, aliceToken, 404, "no-route", ""},
		{unknown, "", 401, "unauthorized", ""},
		{unknown, scraperToken, 404, "no-route", ""},
	} {
		hdr := []string{}
		if c.token != "" {
			hdr = append(hdr, "Authorization", "Bearer "+c.token)
		}
		resp, body := do(t, c.method, f.edge.admin+c.path, "", "{}", hdr...)
		name := c.method + " " + c.path + " as " + tokenName(c.token)
		if resp.StatusCode != c.status {
			t.Errorf("%s: want %d, got %d %s", name, c.status, resp.StatusCode, body)
			continue
		}
		if c.slug != "" && (resp.Header.Get("Content-Type") != "application/problem+json" || !strings.Contains(body, `"type":"urn:hedge:problem:`+c.slug+`"`)) {
			t.Errorf("%s: want problem %s, got %s %s", name, c.slug, resp.Header.Get("Content-Type"), body)
		}
		if c.role != "" && !strings.Contains(body, "needs the role "+c.role) {
			t.Errorf("%s: want the 403 to name the role %s, got %s", name, c.role, body)
		}
		if c.status == 401 && resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: 401 without WWW-Authenticate", name)
		}
	}
}

func tokenName(tok string) string {
	for name, t := range map[string]string{"scraper": scraperToken, "ops": opsToken, "alice": aliceToken, "bob": bobToken, "pusher": pushToken} {
		if t == tok {
			return name
		}
	}
	if tok == "" {
		return "nobody"
	}
	return "an unknown token"
}

// TestAdminLoopback: with allow_loopback, callers on the node's machine
// without a token read and operate (the demo's one-liners), never promote;
// a token they send is still checked.
func TestAdminLoopback(t *testing.T) {
	f, _ := startRoleEdge(t, true, nil)
	for _, c := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/status", 200},
		{"GET", "/metrics", 200},
		{"GET", "/debug/pprof/", 200},
		{"POST", "/admin/drain", 200},
		{"DELETE", "/admin/drain", 200},
		{"POST", "/admin/ledger/promotions", 403},
	} {
		resp, body := do(t, c.method, f.edge.admin+c.path, "", "{}")
		if resp.StatusCode != c.status {
			t.Errorf("loopback without a token, %s %s: want %d, got %d %s", c.method, c.path, c.status, resp.StatusCode, body)
		}
		if c.status == 403 && !strings.Contains(body, "loopback callers without a token never hold") {
			t.Errorf("loopback promotion: want the 403 to say loopback never promotes, got %s", body)
		}
	}
	if resp, _ := do(t, "GET", f.edge.admin+"/status", "", "", "Authorization", "Bearer wrong-0123456789abcdef0123456789abcdef"); resp.StatusCode != 401 {
		t.Errorf("loopback with an unknown token: want 401, got %d", resp.StatusCode)
	}
}

// TestAdminIdentityAndRotation: logs and audit records name the token,
// never show it; a token kept in a file is rotated by rewriting the file
// and reloading.
func TestAdminIdentityAndRotation(t *testing.T) {
	logs := &testkit.Buffer{}
	f, tokenFile := startRoleEdge(t, false, logs)
	if resp, body := do(t, "POST", f.edge.admin+"/admin/drain", "", "", "Authorization", "Bearer "+opsToken); resp.StatusCode != 200 {
		t.Fatalf("drain: %d %s", resp.StatusCode, body)
	}
	if !strings.Contains(logs.String(), "admin API, by ops from 127.0.0.1:") {
		t.Errorf("the drain's log line must name the operator ops:\n%s", logs)
	}
	const rotated = "ops-rotated-0123456789abcdef01234567"
	writeFile(t, tokenFile, rotated+"\n")
	if resp, body := do(t, "POST", f.edge.admin+"/admin/reload", "", "", "Authorization", "Bearer "+opsToken); resp.StatusCode != 200 {
		t.Fatalf("reload: %d %s", resp.StatusCode, body)
	}
	if resp, _ := do(t, "GET", f.edge.admin+"/status", "", "", "Authorization", "Bearer "+opsToken); resp.StatusCode != 401 {
		t.Errorf("the old token after its file was rewritten and the node reloaded: want 401, got %d", resp.StatusCode)
	}
	if resp, _ := do(t, "DELETE", f.edge.admin+"/admin/drain", "", "", "Authorization", "Bearer "+rotated); resp.StatusCode != 200 {
		t.Errorf("the new token: want 200, got %d", resp.StatusCode)
	}
	for _, secret := range []string{opsToken, rotated, scraperToken, aliceToken} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("a token appears in the logs: %s", secret)
		}
	}
}

const adminTLSConfig = `
data_dir: {{DATA}}
waf: {mode: off}
log: {access: {enabled: false}}
admin:
  tokens: [{name: ops, token: ` + opsToken + `, roles: [read, operate]}]
lifecycle: {drain_period: 10ms, shutdown_timeout: 5s}
regions:
  - name: sea
    nodes:
      - name: sea-1
        listeners: [{name: public, address: "{{EDGE}}", tls: {mode: off}}]
        admin: {address: "{{ADMIN}}", tls: {mode: internal}, client_ca: "{{CLIENTCA}}"}
`

// TestAdminTLS: the admin listener serves HTTPS from the internal CA for
// its address and requires client certificates from client_ca, which a
// reload reads again.
func TestAdminTLS(t *testing.T) {
	dir := t.TempDir()
	ca1, ca2 := testkit.NewCA(t, dir, "operators-1"), testkit.NewCA(t, dir, "operators-2")
	c1, k1 := ca1.Issue(t, "op-1", true)
	c2, k2 := ca2.Issue(t, "op-2", true)
	clientCA := filepath.Join(dir, "client-ca.pem")
	copyFile(t, ca1.File, clientCA)
	e := startEdge(t, adminTLSConfig, "{{CLIENTCA}}", clientCA)
	base := strings.Replace(e.admin, "http://", "https://", 1)
	root := e.rootCAs(t)
	get := func(cert []tls.Certificate, method, path string) (int, error) {
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: root, Certificates: cert}}}
		defer c.CloseIdleConnections()
		req, _ := http.NewRequest(method, base+path, nil)
		req.Header.Set("Authorization", "Bearer "+opsToken)
		resp, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	if resp, err := http.Get(e.admin + "/status"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Errorf("plain HTTP to the TLS admin listener: want refused, got %d", resp.StatusCode)
		}
	}
	if _, err := get(nil, "GET", "/status"); err == nil {
		t.Error("without a client certificate: want the handshake refused")
	}
	if code, err := get([]tls.Certificate{loadPair(t, c1, k1)}, "GET", "/status"); err != nil || code != 200 {
		t.Fatalf("with a certificate from client_ca, verified against the internal root: want 200, got %d %v", code, err)
	}
	if _, err := get([]tls.Certificate{loadPair(t, c2, k2)}, "GET", "/status"); err == nil {
		t.Error("a certificate from another CA: want the handshake refused")
	}
	copyFile(t, ca2.File, clientCA)
	if code, err := get([]tls.Certificate{loadPair(t, c1, k1)}, "POST", "/admin/reload"); err != nil || code != 200 {
		t.Fatalf("reload: %d %v", code, err)
	}
	if code, err := get([]tls.Certificate{loadPair(t, c2, k2)}, "GET", "/status"); err != nil || code != 200 {
		t.Errorf("after the reload, a certificate from the new client_ca: want 200, got %d %v", code, err)
	}
	if _, err := get([]tls.Certificate{loadPair(t, c1, k1)}, "GET", "/status"); err == nil {
		t.Error("after the reload, a certificate from the old client_ca: want the handshake refused")
	}
	var st Status
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: root, Certificates: []tls.Certificate{loadPair(t, c2, k2)}}}}
	req, _ := http.NewRequest("GET", base+"/status", nil)
	req.Header.Set("Authorization", "Bearer "+opsToken)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if st.Node != "sea-1" {
		t.Errorf("status over the TLS admin listener: %+v", st)
	}
}
