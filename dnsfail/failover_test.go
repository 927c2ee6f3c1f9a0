package dnsfail

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"hedge/configs"
)

// waitFor polls play-like name until cond holds for its A answer, and
// returns how long it took and the smallest TTL seen meanwhile.
func (d *testDeployment) waitFor(t *testing.T, name string, limit time.Duration, cond func([]string) bool) (time.Duration, uint32) {
	t.Helper()
	start := time.Now()
	minTTL := uint32(1 << 31)
	for {
		r := d.query(t, "udp", name, dns.TypeA)
		for _, rr := range r.Answer {
			minTTL = min(minTTL, rr.Header().Ttl)
		}
		if cond(answerAddrs(r)) {
			return time.Since(start), minTTL
		}
		if time.Since(start) > limit {
			t.Fatalf("%s: condition not met after %s; answers %v", name, limit, answerAddrs(r))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestFailoverTiming turns one region red and measures, with the default
// health settings (interval 1s, fall 2, rise 2), how long its address stays
// in the answers, and how long it takes to return after recovery. Both must
// be within interval × fall + 1s.
func TestFailoverTiming(t *testing.T) {
	d := newDeployment(t, deployOpts{health: "{}"})
	h := d.cfg.DNS.Zones[0].Services[0].Health
	if h.Interval.D() != configs.DefaultDNSHealthInterval || h.Fall != configs.DefaultFall || h.Rise != configs.DefaultRise {
		t.Fatalf("the test needs the default health settings, got %+v", h)
	}
	budget := time.Duration(h.Fall)*h.Interval.D() + time.Second
	// Let the probes settle: a few rounds green.
	time.Sleep(1500 * time.Millisecond)
	d.sea.red.Store(true)
	down, ttl := d.waitFor(t, "play.edge.test.", 10*time.Second, func(a []string) bool { return !slices.Contains(a, "127.0.0.11") && slices.Contains(a, "127.0.0.12") })
	t.Logf("sea red → left the answers after %s (budget %s); smallest TTL meanwhile %ds", down.Round(time.Millisecond), budget, ttl)
	if down > budget {
		t.Errorf("failover took %s, want ≤ %s", down, budget)
	}
	if ttl >= 10 {
		t.Errorf("TTL did not shrink while the change was pending: smallest %d", ttl)
	}
	st := d.srv.Status()
	if st.Services[0].LastChange == nil || !strings.Contains(st.Services[0].LastChange.Reason, "sea-1 down") {
		t.Errorf("status: want the last change's reason to name sea-1 down, got %+v", st.Services[0].LastChange)
	}

	d.sea.red.Store(false)
	up, ttl := d.waitFor(t, "play.edge.test.", 10*time.Second, func(a []string) bool { return slices.Contains(a, "127.0.0.11") })
	t.Logf("sea green → back in the answers after %s (budget %s); smallest TTL meanwhile %ds", up.Round(time.Millisecond), budget, ttl)
	if up > budget {
		t.Errorf("recovery took %s, want ≤ %s", up, budget)
	}
	d.sea.hosts.Range(func(k, _ any) bool {
		if h := k.(string); h != "play.edge.test" && h != "fo.edge.test" && h != "near.edge.test" {
			t.Errorf("probes must ask for the service name: Host %q", h)
		}
		return true
	})
	if _, ok := d.sea.hosts.Load("play.edge.test"); !ok {
		t.Error("no probe asked for play.edge.test")
	}
}

// TestCrashedEdge closes an edge (connection refused, not a 503).
func TestCrashedEdge(t *testing.T) {
	d := newDeployment(t, deployOpts{health: "{}"})
	time.Sleep(1500 * time.Millisecond)
	d.sea.srv.Close()
	down, _ := d.waitFor(t, "fo.edge.test.", 10*time.Second, func(a []string) bool { return len(a) == 1 && a[0] == "127.0.0.12" })
	t.Logf("sea crashed → failover to eu after %s", down.Round(time.Millisecond))
	if down > 3*time.Second {
		t.Errorf("failover took %s, want ≤ 3s", down)
	}
}

// TestDrainPush: an edge that starts draining tells the DNS server over its
// admin API, and its address leaves the answers at once. The probes are
// slowed to one every 10 s (two failures to go down), so only the push can
// take the edge out within the test's window; the drained-edge record and
// the push counter name the push itself.
func TestDrainPush(t *testing.T) {
	d := newDeployment(t, deployOpts{health: "{interval: 10s, timeout: 1s, fall: 2}"})
	const token = "dns-test-push-token-0123456789abcdef"
	admin := httptest.NewServer(guardedAdmin(d, "drain-push", token))
	defer admin.Close()
	ctx := context.Background()

	for _, c := range []struct {
		name, token, node string
		want              string
	}{
		{"a wrong token", "wrong-token-0123456789abcdef0123", "sea-1", "401"},
		{"a token without operate", readToken, "sea-1", "403"},
		{"an unknown node", token, "nobody", "404"},
	} {
		if err := PushDrain(ctx, http.DefaultClient, admin.URL, c.token, c.node, true); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("a push with %s: want %s, got %v", c.name, c.want, err)
		}
	}
	if pushes := pushCount(t, d.srv, "sea-1", "true"); pushes != 0 {
		t.Fatalf("refused pushes were counted: %v", pushes)
	}
	d.sea.red.Store(true) // a draining edge's /healthz is red too
	start := time.Now()
	if err := PushDrain(ctx, http.DefaultClient, admin.URL, token, "sea-1", true); err != nil {
		t.Fatal(err)
	}
	d.waitFor(t, "play.edge.test.", 2*time.Second, func(a []string) bool { return !slices.Contains(a, "127.0.0.11") })
	gone := time.Since(start)
	t.Logf("drain push → sea left the answers after %s", gone.Round(time.Microsecond))
	if gone > 500*time.Millisecond {
		t.Errorf("a planned drain took %s to leave the answers, want ≤ 500ms", gone)
	}
	if reason := d.srv.Status().Drained["sea-1"]; !strings.Contains(reason, "drain announced by sea-1") || !strings.Contains(reason, "drain-push from") {
		t.Errorf("drained edges: want sea-1 announced by the drain-push token, got %q", reason)
	}
	if pushes := pushCount(t, d.srv, "sea-1", "true"); pushes != 1 {
		t.Errorf("hedge_dns_drain_pushes_total{node=sea-1,draining=true}: want 1, got %v", pushes)
	}
	d.sea.red.Store(false)
	if err := PushDrain(ctx, http.DefaultClient, admin.URL, token, "sea-1", false); err != nil {
		t.Fatal(err)
	}
	back, _ := d.waitFor(t, "play.edge.test.", 2*time.Second, func(a []string) bool { return slices.Contains(a, "127.0.0.11") })
	t.Logf("undrain push → sea back after %s", back.Round(time.Microsecond))
	if _, still := d.srv.Status().Drained["sea-1"]; still {
		t.Error("sea-1 is still listed as drained after the undrain push")
	}
}

// pushCount reads hedge_dns_drain_pushes_total{node,draining} as a scraper
// would, through a registry of its own.
func pushCount(t *testing.T, s *Server, node, draining string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(s.metrics.pushes)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["node"] == node && labels["draining"] == draining {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func TestFailOpen(t *testing.T) {
	d := newDeployment(t, deployOpts{})
	d.sea.red.Store(true)
	d.eu.red.Store(true)
	d.waitFor(t, "play.edge.test.", 5*time.Second, func([]string) bool {
		st := d.srv.Status() // each service probes its edges itself
		return st.Services[0].FailOpen && st.Services[1].FailOpen
	})
	a := answerAddrs(d.query(t, "udp", "play.edge.test.", dns.TypeA))
	if !slices.Contains(a, "127.0.0.11") || !slices.Contains(a, "127.0.0.12") {
		t.Fatalf("fail open: want every candidate, got %v", a)
	}
	if a := answerAddrs(d.query(t, "udp", "fo.edge.test.", dns.TypeA)); len(a) != 1 || a[0] != "127.0.0.11" {
		t.Fatalf("failover policy failing open: want the first region, got %v", a)
	}
	if lc := d.srv.Status().Services[0].LastChange; lc == nil || !lc.FailOpen {
		t.Fatalf("status: want the last change flagged fail open, got %+v", lc)
	}
}

func TestOverride(t *testing.T) {
	d := newDeployment(t, deployOpts{})
	const opsToken = "dns-test-ops-token-0123456789abcdef"
	admin := guardedAdmin(d, "ops", opsToken)
	postAs := func(token, name, body string) int {
		req := httptest.NewRequest("POST", "/admin/dns/services/"+name+"/override", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		w := httptest.NewRecorder()
		admin.ServeHTTP(w, req)
		return w.Code
	}
	post := func(name, body string) int { return postAs(opsToken, name, body) }
	if got := postAs(readToken, "play.edge.test", `{"region":"sea","mode":"out","reason":"x"}`); got != 403 {
		t.Fatalf("an override with a read-only token: want 403, got %d", got)
	}
	cases := []struct {
		name, body string
		want       int
	}{
		{"nosuch.edge.test", `{"region":"sea","mode":"out","reason":"x"}`, 404},
		{"play.edge.test", `{"region":"mars","mode":"out","reason":"x"}`, 404},
		{"play.edge.test", `{"region":"sea","mode":"sideways","reason":"x"}`, 422},
		{"play.edge.test", `{"region":"sea","mode":"out"}`, 422},
		{"play.edge.test", `{"region":"sea","mode":"out","reason":"x","extra":1}`, 400},
	}
	for _, c := range cases {
		if got := post(c.name, c.body); got != c.want {
			t.Errorf("%s %s: want %d, got %d", c.name, c.body, c.want, got)
		}
	}
	if got := post("play.edge.test", `{"region":"sea","mode":"out","reason":"drill 42"}`); got != 200 {
		t.Fatalf("override: want 200, got %d", got)
	}
	if a := answerAddrs(d.query(t, "udp", "play.edge.test.", dns.TypeA)); slices.Contains(a, "127.0.0.11") || !slices.Contains(a, "127.0.0.12") {
		t.Fatalf("sea forced out: got %v", a)
	}
	d.eu.red.Store(true)
	if got := post("fo.edge.test.", `{"region":"eu","mode":"in","reason":"eu forced in"}`); got != 200 {
		t.Fatalf("override: want 200, got %d", got)
	}
	if got := post("fo.edge.test.", `{"region":"sea","mode":"out","reason":"sea forced out"}`); got != 200 {
		t.Fatalf("override: want 200, got %d", got)
	}
	time.Sleep(time.Second) // eu's probes fail; the override keeps it in
	if a := answerAddrs(d.query(t, "udp", "fo.edge.test.", dns.TypeA)); len(a) != 1 || a[0] != "127.0.0.12" {
		t.Fatalf("eu forced in, sea out: got %v", a)
	}
	if got := post("play.edge.test", `{"region":"sea","mode":"clear","reason":"drill over"}`); got != 200 {
		t.Fatalf("clear: want 200, got %d", got)
	}
	if a := answerAddrs(d.query(t, "udp", "play.edge.test.", dns.TypeA)); !slices.Contains(a, "127.0.0.11") {
		t.Fatalf("override cleared: want sea back, got %v", a)
	}
	data, err := os.ReadFile(auditPath(d.cfg))
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSpace(data), []byte("\n"))
	if len(lines) != 4 {
		t.Fatalf("audit: want 4 lines, got %d:\n%s", len(lines), data)
	}
	var rec auditRecord
	if err := json.Unmarshal(lines[0], &rec); err != nil || rec.Service != "play.edge.test." || rec.Mode != "out" || rec.Reason != "drill 42" || !strings.HasPrefix(rec.By, "ops from ") {
		t.Fatalf("audit line: %s (%v)", lines[0], err)
	}
}
