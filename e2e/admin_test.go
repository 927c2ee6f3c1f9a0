package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"hedge/internal/testkit"
)

const dnsAdminConfig = `deployment: e2e-dns
data_dir: "{{DATA}}"
log: {level: info, format: text}
admin:
  tokens:
    - {name: scraper, token: e2e-scraper-0123456789abcdef0123456, roles: [read]}
    - {name: ops, token_file: "{{OPS}}", roles: [read, operate]}
regions:
  - name: lab
    nodes:
      - name: lab-1
        advertise: [127.0.0.1]
        listeners: [{address: "127.0.0.1:1", tls: {mode: "off"}}]
        admin: {address: "{{ADMIN}}", tls: {mode: internal}}
        dns: {address: "{{DNS}}"}
dns:
  zones:
    - name: e2e.test.
      ns: [ns1.e2e.test.]
      services: [{name: play, health: {interval: 10s, timeout: 1s}}]
`

// TestDNSAdminTLS: `hedge dns` serves its admin API over HTTPS from the
// internal CA, with the roles of its tokens, and SIGHUP rotates a token
// kept in a file.
func TestDNSAdminTLS(t *testing.T) {
	dir := t.TempDir()
	admin := testkit.FreeAddr(t)
	ops := filepath.Join(dir, "ops.token")
	writeFile(t, ops, "e2e-ops-0123456789abcdef0123456789abc\n")
	file := filepath.Join(dir, "dns.yaml")
	writeFile(t, file, strings.NewReplacer("{{DATA}}", filepath.Join(dir, "data"), "{{ADMIN}}", admin, "{{DNS}}", testkit.FreeAddr(t),
		"{{OPS}}", ops).Replace(dnsAdminConfig))
	p := startHedge(t, "hedge dns", dir, "dns", "-c", file)
	testkit.WaitFor(t, p, "the internal CA's root", 10*time.Second, 50*time.Millisecond, func() (bool, string) {
		if _, err := os.ReadFile(filepath.Join(dir, "data", "ca", "root.crt")); err != nil {
			return false, err.Error()
		}
		return true, ""
	})
	client := tlsClient(certPool(t, filepath.Join(dir, "data", "ca", "root.crt")), "", "")
	base := "https://" + admin
	testkit.WaitFor(t, p, "the DNS admin listener over HTTPS", 10*time.Second, 50*time.Millisecond, answers200(client, base+"/status", "Authorization", "Bearer e2e-scraper-0123456789abcdef0123456"))
	override := `{"region":"lab","mode":"out","reason":"e2e"}`
	for _, c := range []struct {
		method, path, body, token string
		status                    int
	}{
		{"GET", "/status", "", "", 401},
		{"GET", "/metrics", "", "e2e-scraper-0123456789abcdef0123456", 200},
		{"GET", "/admin/dns/status", "", "e2e-scraper-0123456789abcdef0123456", 200},
		{"POST", "/admin/dns/services/play.e2e.test/override", override, "e2e-scraper-0123456789abcdef0123456", 403},
		{"POST", "/admin/dns/services/play.e2e.test/override", override, "e2e-ops-0123456789abcdef0123456789abc", 200},
		{"GET", "/nope", "", "e2e-scraper-0123456789abcdef0123456", 404},
	} {
		r := do(t, client, c.method, base+c.path, c.body, "Authorization", "Bearer "+c.token)
		if r.status != c.status {
			t.Errorf("%s %s with token %q: want %d, got %v", c.method, c.path, c.token, c.status, r)
		}
		if r.status >= 400 && r.header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s %s: want problem+json, got %q", c.method, c.path, r.header.Get("Content-Type"))
		}
	}
	if r, err := tryDo(quickClient, "GET", "http://"+admin+"/status", ""); err == nil && r.status != 400 {
		t.Errorf("plain HTTP to the TLS admin listener: want it refused, got %v", r)
	}

	writeFile(t, ops, "e2e-ops-rotated-0123456789abcdef01234\n")
	p.Signal(t, syscall.SIGHUP)
	testkit.WaitFor(t, p, "the rotated token to be accepted", 10*time.Second, 50*time.Millisecond, answers200(client, base+"/status", "Authorization", "Bearer e2e-ops-rotated-0123456789abcdef01234"))
	if r := do(t, client, "GET", base+"/status", "", "Authorization", "Bearer e2e-ops-0123456789abcdef0123456789abc"); r.status != 401 {
		t.Errorf("the token replaced in its file, after SIGHUP: want 401, got %v", r)
	}
}

func tlsClient(roots *x509.CertPool, certFile, keyFile string) *http.Client {
	c := &tls.Config{RootCAs: roots}
	if certFile != "" {
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			panic(err)
		}
		c.Certificates = []tls.Certificate{pair}
	}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, TLSClientConfig: c}}
}
