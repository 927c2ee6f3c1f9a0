package gateway

import (
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"hedge/dnsfail"
	"hedge/internal/testkit"
)

const dnsConfig = quietHead + `admin:
  tokens:
    - {name: ops, token: gateway-dns-test-ops-0123456789abcdef, roles: [read, operate]}
    - {name: drain-push, token_file: "{{DATA}}/push.secret", roles: [operate]}
  push_token: drain-push
lifecycle: {drain_period: 10ms, shutdown_timeout: 5s}
regions:
  - name: sea
    nodes:
      - name: sea-1
        advertise: [127.0.0.11]
        listeners: [{address: "{{SEA}}", tls: {mode: "off"}}]
        # The DNS node's admin listener: HTTPS from the internal CA, and
        # only clients with a certificate from the deployment's CA.
        admin: {address: "{{SEAADMIN}}", tls: {mode: internal}, client_ca: "{{CA}}"}
        dns: {address: "{{DNS}}"}
  - name: eu
    nodes:
      - name: eu-1
        advertise: [127.0.0.12]
        listeners: [{address: "{{EU}}", tls: {mode: "off"}}]
        admin: {address: "{{EUADMIN}}", client_cert: {cert: "{{EUCERT}}", key: "{{EUKEY}}"}}
dns:
  zones:
    - name: edge.test.
      ns: [ns1.edge.test.]
      services:
        # Probes every 10 s, two failures to go down: within this test only
        # a drain push can take an edge out of the answers.
        - {name: play, policy: all, health: {interval: 10s, timeout: 1s, fall: 2}}
`

// TestDNSInServeAndDrainPush runs the deployment as two processes would:
// one gateway plays sea-1 (which serves DNS, its admin over HTTPS with
// client certificates required), another eu-1. Draining eu-1 through its
// admin API pushes the drain to sea-1's admin API over HTTPS, verified
// against the internal CA, with eu-1's client certificate and the push
// token, and eu-1's address leaves the answers at once. The probes are too
// slow to do it, and sea-1's drained-edge record names the push, so a
// broken push fails the test; a push refused after the token was rotated
// on sea-1 alone shows it.
func TestDNSInServeAndDrainPush(t *testing.T) {
	dir := t.TempDir()
	dnsAddr := testkit.FreeAddr(t)
	seaAdmin, euAdmin := testkit.FreeAddr(t), testkit.FreeAddr(t)
	ca := testkit.NewCA(t, dir, "deployment-ca")
	euCert, euKey := ca.Issue(t, "eu-1", true)
	opsCert, opsKey := ca.Issue(t, "operator", true)
	secretFile := filepath.Join(dir, "push.secret")
	writeFile(t, secretFile, "push-0123456789abcdef0123456789abcdef\n")
	r := strings.NewReplacer("{{DATA}}", dir, "{{SEA}}", testkit.FreeAddr(t), "{{EU}}", testkit.FreeAddr(t),
		"{{SEAADMIN}}", seaAdmin, "{{EUADMIN}}", euAdmin, "{{DNS}}", dnsAddr, "{{CA}}", ca.File, "{{EUCERT}}", euCert, "{{EUKEY}}", euKey)
	file := dir + "/hedge.yaml"
	writeFile(t, file, r.Replace(dnsConfig))
	start := func(region string) *Gateway {
		g, err := runConfigFile(t, file, Options{Region: region, Logger: testLogger(nil)})
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	start("sea")
	eu := start("eu")

	answers := func() []string {
		m := new(dns.Msg)
		m.SetQuestion("play.edge.test.", dns.TypeA)
		in, _, err := (&dns.Client{Timeout: time.Second}).Exchange(m, dnsAddr)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, rr := range in.Answer {
			out = append(out, rr.(*dns.A).A.String())
		}
		return out
	}
	testkit.WaitUntil(t, "both edges answer", 3*time.Second, func() bool { return len(answers()) == 2 })

	// sea-1's admin: HTTPS from the internal CA, a client certificate
	// from the deployment's CA, and still a token.
	seaClient := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: rootPool(t, filepath.Join(dir, "ca", "root.crt")), Certificates: []tls.Certificate{loadPair(t, opsCert, opsKey)}}}}
	defer seaClient.CloseIdleConnections()
	admin := func(client *http.Client, method, url, token string) (int, string) {
		req, _ := http.NewRequest(method, url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(body)
	}
	const ops = "gateway-dns-test-ops-0123456789abcdef"
	seaDNS := func() *dnsfail.Status {
		code, body := admin(seaClient, "GET", "https://"+seaAdmin+"/status", ops)
		var st Status
		if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil {
			t.Fatalf("sea-1 /status: %d %v %s", code, err, body)
		}
		return st.DNS
	}
	pushes := func() string {
		_, body := admin(seaClient, "GET", "https://"+seaAdmin+"/metrics", ops)
		for _, line := range strings.Split(body, "\n") {
			if strings.HasPrefix(line, `hedge_dns_drain_pushes_total{draining="true",node="eu-1"}`) {
				return strings.Fields(line)[1]
			}
		}
		return "0"
	}

	// What the push relies on is closed to anyone else.
	if _, err := http.Get("https://" + seaAdmin + "/status"); err == nil {
		t.Fatal("sea-1's admin over HTTPS without a client certificate: want the handshake refused")
	}
	noCert := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: rootPool(t, filepath.Join(dir, "ca", "root.crt"))}}}
	if _, err := noCert.Get("https://" + seaAdmin + "/status"); err == nil {
		t.Fatal("sea-1's admin verified but without a client certificate: want the handshake refused")
	}
	if code, _ := admin(seaClient, "GET", "https://"+seaAdmin+"/status", ""); code != 401 {
		t.Fatalf("sea-1's admin with a client certificate but no token: want 401, got %d", code)
	}

	began := time.Now()
	if code, body := admin(http.DefaultClient, "POST", "http://"+euAdmin+"/admin/drain", ops); code != 200 {
		t.Fatalf("drain eu-1: %d %s", code, body)
	}
	testkit.WaitUntil(t, "eu-1 leaves the answers", 500*time.Millisecond, func() bool {
		a := answers()
		return len(a) == 1 && a[0] == "127.0.0.11"
	})
	t.Logf("eu-1 drained in another process → left the answers after %s", time.Since(began).Round(time.Millisecond))
	st := seaDNS()
	if reason := st.Drained["eu-1"]; !strings.Contains(reason, "drain announced by eu-1 (drain-push from") {
		t.Fatalf("sea-1's drained edges: want eu-1 announced with the drain-push token, got %q", reason)
	}
	if st == nil || len(st.Services) != 1 || st.Services[0].LastChange == nil ||
		!strings.Contains(st.Services[0].LastChange.Reason, "eu-1") {
		t.Fatalf("/status: want the DNS part with the last change naming eu-1, got %+v", st)
	}
	if n := pushes(); n != "1" {
		t.Fatalf("hedge_dns_drain_pushes_total for eu-1 draining: want 1, got %s", n)
	}

	if code, _ := admin(http.DefaultClient, "DELETE", "http://"+euAdmin+"/admin/drain", ops); code != 200 {
		t.Fatalf("undrain eu-1: %d", code)
	}
	testkit.WaitUntil(t, "eu-1 returns", 2*time.Second, func() bool { return len(answers()) == 2 })

	// The push token is rotated on sea-1 only: eu-1's pushes, still with
	// the old token, are refused, and eu-1 stays in the answers (the
	// probes are too slow to take it out).
	writeFile(t, secretFile, "push-rotated-0123456789abcdef0123456789\n")
	if code, body := admin(seaClient, "POST", "https://"+seaAdmin+"/admin/reload", ops); code != 200 {
		t.Fatalf("reload sea-1: %d %s", code, body)
	}
	if code, _ := admin(http.DefaultClient, "POST", "http://"+euAdmin+"/admin/drain", ops); code != 200 {
		t.Fatalf("drain eu-1 again: %d", code)
	}
	eu.dns.pushes.Wait()
	if a := answers(); len(a) != 2 {
		t.Fatalf("a push with the old token: want it refused and eu-1 still answered, got %v", a)
	}
	if n := pushes(); n != "1" {
		t.Fatalf("a refused push was counted: %s", n)
	}
	// eu-1 takes the new token on its own reload; its next drain is heard.
	if code, body := admin(http.DefaultClient, "POST", "http://"+euAdmin+"/admin/reload", ops); code != 200 {
		t.Fatalf("reload eu-1: %d %s", code, body)
	}
	admin(http.DefaultClient, "DELETE", "http://"+euAdmin+"/admin/drain", ops)
	if code, _ := admin(http.DefaultClient, "POST", "http://"+euAdmin+"/admin/drain", ops); code != 200 {
		t.Fatalf("drain eu-1 after the rotation: %d", code)
	}
	testkit.WaitUntil(t, "eu-1 leaves the answers after the rotation", 500*time.Millisecond, func() bool { return len(answers()) == 1 })
	admin(http.DefaultClient, "DELETE", "http://"+euAdmin+"/admin/drain", ops)
	testkit.WaitUntil(t, "eu-1 returns", 2*time.Second, func() bool { return len(answers()) == 2 })

	// The same process: sea-1 serves DNS and drains itself.
	if code, _ := admin(seaClient, "POST", "https://"+seaAdmin+"/admin/drain", ops); code != 200 {
		t.Fatalf("drain sea-1: %d", code)
	}
	testkit.WaitUntil(t, "sea-1 leaves the answers", 500*time.Millisecond, func() bool {
		a := answers()
		return len(a) == 1 && a[0] == "127.0.0.12"
	})
	if code, _ := admin(http.DefaultClient, "POST", "http://"+euAdmin+"/admin/dns/edges/sea-1/drain", ops); code != 404 {
		t.Fatalf("/admin/dns on a node without DNS: want 404, got %d", code)
	}
}

// The DNS admin API, served on the gateway's admin listener, answers with
// problems from the registry like every other endpoint, and their bodies
// never carry internal error text: a decoder's message or an audit file
// that cannot be written is not the client's business (it is logged).
func TestDNSAdminProblems(t *testing.T) {
	dir := t.TempDir()
	// The audit file's directory is a regular file: every override that
	// passes its checks fails to be audited.
	writeFile(t, filepath.Join(dir, "not-a-dir"), "")
	cfg := testHead + `regions:
  - name: sea
    nodes:
      - name: sea-1
        advertise: [127.0.0.11]
        listeners: [{address: "{{EDGE}}", tls: {mode: "off"}}]
        admin: {address: "{{ADMIN}}"}
        dns: {address: "{{DNS}}"}
dns:
  audit_file: ` + filepath.Join(dir, "not-a-dir", "dns.jsonl") + `
  zones:
    - name: edge.test.
      ns: [ns1.edge.test.]
      services:
        - {name: play, policy: all, health: {interval: 10s, timeout: 1s, fall: 2}}
`
	e := startEdge(t, cfg, "{{DNS}}", testkit.FreeAddr(t))
	cases := []struct {
		name, path, body string
		status           int
		slug             string
	}{
		{"unknown service", "/admin/dns/services/nosuch.edge.test/override", `{"region":"sea","mode":"out","reason":"x"}`, 404, "no-route"},
		{"unknown edge", "/admin/dns/edges/mars-1/drain", "", 404, "no-route"},
		{"a mode that is none", "/admin/dns/services/play.edge.test/override", `{"region":"sea","mode":"sideways","reason":"x"}`, 422, "invalid-input"},
		{"an unknown field", "/admin/dns/services/play.edge.test/override", `{"region":"sea","mode":"out","reason":"x","extra":1}`, 400, "bad-request"},
		{"not JSON", "/admin/dns/services/play.edge.test/override", `{"region":`, 400, "bad-request"},
		{"the audit fails", "/admin/dns/services/play.edge.test/override", `{"region":"sea","mode":"out","reason":"drill"}`, 500, "internal"},
	}
	for _, c := range cases {
		resp, body := do(t, "POST", e.admin+c.path, "", c.body)
		if resp.StatusCode != c.status || resp.Header.Get("Content-Type") != "application/problem+json" ||
			!strings.Contains(body, `"type":"urn:hedge:problem:`+c.slug+`"`) {
			t.Errorf("%s: want %d problem+json %s, got %d %s %s", c.name, c.status, c.slug, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
		for _, leak := range []string{"json:", "invalid character", "unexpected EOF", "not a directory", "not-a-dir", dir} {
			if strings.Contains(body, leak) {
				t.Errorf("%s: the body carries internal error text (%q): %s", c.name, leak, body)
			}
		}
	}
}
