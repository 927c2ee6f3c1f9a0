package gateway

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"hedge/configs"
)

const dnsConfig = `
data_dir: {{DATA}}
# The protective layer has its own tests (protect_test.go).
waf: {mode: off}
log: {access: {enabled: false}}
admin: {tokens: [gateway-dns-test-token-01]}
lifecycle: {drain_period: 10ms, shutdown_timeout: 5s}
regions:
  - name: sea
    nodes:
      - name: sea-1
        advertise: [127.0.0.11]
        listeners: [{address: "{{SEA}}", tls: {mode: "off"}}]
        admin: {address: "{{SEAADMIN}}"}
        dns: {address: "{{DNS}}"}
  - name: eu
    nodes:
      - name: eu-1
        advertise: [127.0.0.12]
        listeners: [{address: "{{EU}}", tls: {mode: "off"}}]
        admin: {address: "{{EUADMIN}}"}
dns:
  zones:
    - name: edge.test.
      ns: [ns1.edge.test.]
      services:
        - {name: play, policy: all, health: {interval: 250ms, timeout: 200ms}}
`

// TestDNSInServeAndDrainPush runs the deployment as two processes would:
// one gateway plays sea-1 (which serves DNS), another eu-1. Draining eu-1
// through its admin API pushes the drain to sea-1's admin API over HTTP
// with the admin token, and eu-1's address leaves the answers at once.
func TestDNSInServeAndDrainPush(t *testing.T) {
	dir := t.TempDir()
	dnsAddr := freeAddr(t)
	seaAdmin, euAdmin := freeAddr(t), freeAddr(t)
	r := strings.NewReplacer("{{DATA}}", dir, "{{SEA}}", freeAddr(t), "{{EU}}", freeAddr(t),
		"{{SEAADMIN}}", seaAdmin, "{{EUADMIN}}", euAdmin, "{{DNS}}", dnsAddr)
	file := dir + "/hedge.yaml"
	if err := os.WriteFile(file, []byte(r.Replace(dnsConfig)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := configs.Load(file)
	if err != nil {
		t.Fatalf("config:\n%v", err)
	}
	start := func(region string) *Gateway {
		log := slog.New(slog.NewTextHandler(io.Discard, nil))
		if testing.Verbose() {
			log = slog.New(slog.NewTextHandler(os.Stderr, nil))
		}
		g, err := New(cfg, Options{Region: region, Logger: log, Reload: func() (*configs.Config, error) { return configs.Load(file) }})
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			g.Shutdown(ctx)
		})
		return g
	}
	start("sea")
	start("eu")

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
	waitUntil(t, "both edges answer", 3*time.Second, func() bool { return len(answers()) == 2 })

	admin := func(method, url string) int {
		req, _ := http.NewRequest(method, url, nil)
		req.Header.Set("Authorization", "Bearer gateway-dns-test-token-01")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	began := time.Now()
	if code := admin("POST", "http://"+euAdmin+"/admin/drain"); code != 200 {
		t.Fatalf("drain eu-1: %d", code)
	}
	waitUntil(t, "eu-1 leaves the answers", 500*time.Millisecond, func() bool {
		a := answers()
		return len(a) == 1 && a[0] == "127.0.0.11"
	})
	t.Logf("eu-1 drained in another process → left the answers after %s", time.Since(began).Round(time.Millisecond))
	time.Sleep(600 * time.Millisecond) // the probes agree: still out
	if a := answers(); len(a) != 1 {
		t.Fatalf("eu-1 came back while draining: %v", a)
	}

	resp, err := http.Get("http://" + seaAdmin + "/status")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("status without a token: want 401, got %d", resp.StatusCode)
	}
	req, _ := http.NewRequest("GET", "http://"+seaAdmin+"/status", nil)
	req.Header.Set("Authorization", "Bearer gateway-dns-test-token-01")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var st Status
	json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if st.DNS == nil || len(st.DNS.Services) != 1 || st.DNS.Services[0].LastChange == nil ||
		!strings.Contains(st.DNS.Services[0].LastChange.Reason, "eu-1") {
		t.Fatalf("/status: want the DNS part with the last change naming eu-1, got %+v", st.DNS)
	}

	if code := admin("DELETE", "http://"+euAdmin+"/admin/drain"); code != 200 {
		t.Fatalf("undrain eu-1: %d", code)
	}
	waitUntil(t, "eu-1 returns", 2*time.Second, func() bool { return len(answers()) == 2 })

	// The same process: sea-1 serves DNS and drains itself.
	if code := admin("POST", "http://"+seaAdmin+"/admin/drain"); code != 200 {
		t.Fatalf("drain sea-1: %d", code)
	}
	waitUntil(t, "sea-1 leaves the answers", 500*time.Millisecond, func() bool {
		a := answers()
		return len(a) == 1 && a[0] == "127.0.0.12"
	})
	if code := admin("POST", "http://"+euAdmin+"/admin/dns/edges/sea-1/drain"); code != 404 {
		t.Fatalf("/admin/dns on a node without DNS: want 404, got %d", code)
	}
}
