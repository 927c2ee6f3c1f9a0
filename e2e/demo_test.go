package e2e

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"hedge/internal/testkit"
)

// The embedded demo's fixed addresses (configs/demo.yaml), as the README
// lists them.
var demoAddrs = []struct{ addr, what string }{
	{"127.0.0.11:8443", "edge HTTPS of region sea"},
	{"127.0.0.12:8443", "edge HTTPS of region eu"},
	{"127.0.0.11:9090", "admin listener of sea-1"},
	{"127.0.0.12:9090", "admin listener of eu-1"},
	{"127.0.0.21:7000", "ledger simulator of domain sea"},
	{"127.0.0.22:7000", "ledger simulator of domain eu"},
	{"127.0.0.31:7100", "payment rail rail-a"},
	{"127.0.0.32:7100", "payment rail rail-b"},
}

const (
	demoDrainPeriod = 2 * time.Second // lifecycle.drain_period in demo.yaml
	betBody         = `{"table":"bacc-07","amount":"12.50","currency":"EUR","selection":"banker"}`
	betKey          = "7f1c2a9e-demo-1"
)

// TestDemo runs `hedge serve` with no configuration file, as a newcomer
// does after reading the README, and replays the README's commands with
// curl against it.
func TestDemo(t *testing.T) {
	for _, a := range demoAddrs {
		if err := bindable(a.addr); err != nil {
			t.Fatalf("the demo needs %s (%s) but it is busy: %v\n"+
				"Another `hedge serve` demo (make run?) is probably running on this machine; stop it and run the test again.",
				a.addr, a.what, err)
		}
	}
	dir := t.TempDir()
	p := startHedge(t, "demo", dir, "serve")
	for _, admin := range []string{"127.0.0.11:9090", "127.0.0.12:9090"} {
		testkit.WaitFor(t, p, "demo ready: GET http://"+admin+"/healthz answers 200", 20*time.Second, 100*time.Millisecond, answers200(quickClient, "http://"+admin+"/healthz"))
	}
	ca := filepath.Join(dir, ".hedge", "ca", "root.crt")
	if _, err := os.Stat(ca); err != nil {
		t.Fatalf("the internal CA root should be at .hedge/ca/root.crt in the working directory: %v", err)
	}
	sea := []string{"--cacert", ca, "--resolve", "play.edge.test:8443:127.0.0.11"}
	eu := []string{"--cacert", ca, "--resolve", "play.edge.test:8443:127.0.0.12"}
	with := func(base []string, args ...string) []string { return append(append([]string(nil), base...), args...) }

	// The README's TOKEN=$(bin/hedge token -sub player-1).
	tr := runHedge(t, dir, "token", "-sub", "player-1")
	if tr.code != 0 {
		t.Fatalf("hedge token -sub player-1: exit %d: %s", tr.code, tr.stderr)
	}
	auth := "Authorization: Bearer " + strings.TrimSpace(tr.stdout)
	sea = append(sea, "-H", auth)
	eu = append(eu, "-H", auth)

	t.Run("bet is applied once and replayed", func(t *testing.T) {
		bet := with(sea, "-H", "Content-Type: application/json", "-H", "Idempotency-Key: "+betKey,
			"-d", betBody, "https://play.edge.test:8443/api/bets")
		first := curl(t, bet...)
		if first.status != 201 || !strings.Contains(first.body, `"balance":"987.50"`) {
			t.Fatalf("first bet: want 201 with \"balance\":\"987.50\", got %v", first)
		}
		if first.header.Get("X-Request-Id") == "" {
			t.Errorf("first bet: want an X-Request-Id header, got none: %v", first)
		}
		if got := first.header.Get("Strict-Transport-Security"); got != "max-age=31536000" {
			t.Errorf("first bet: want Strict-Transport-Security \"max-age=31536000\" (the 365-day default), got %q", got)
		}
		if got := first.header.Get("Idempotent-Replayed"); got != "" {
			t.Errorf("first bet: want no Idempotent-Replayed header, got %q", got)
		}
		second := curl(t, bet...)
		if second.status != 201 || second.header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("same bet again: want 201 with Idempotent-Replayed: true, got %v", second)
		}
		noToken := curl(t, "--cacert", ca, "--resolve", "play.edge.test:8443:127.0.0.11", "-H", "Idempotency-Key: no-token", "-H", "Content-Type: application/json",
			"-d", betBody, "https://play.edge.test:8443/api/bets")
		if noToken.status != 401 || !strings.Contains(noToken.body, "urn:hedge:problem:invalid-token") {
			t.Errorf("bet without a token: want 401 invalid-token, got %v", noToken)
		}
		var a, b struct {
			BetID   string `json:"bet_id"`
			Balance string `json:"balance"`
		}
		decodeJSON(t, "first bet", first.body, &a)
		decodeJSON(t, "replayed bet", second.body, &b)
		if a.BetID == "" || a != b {
			t.Errorf("replay: want the first answer again, got %+v then %+v", a, b)
		}

		applied := curl(t, "http://127.0.0.21:7000/applied")
		var got struct {
			Applied []struct {
				Key   string `json:"key"`
				Count int    `json:"count"`
			} `json:"applied"`
		}
		decodeJSON(t, "GET /applied", applied.body, &got)
		// The edge answered the repeat from its idempotency store: the
		// ledger received the bet once.
		if len(got.Applied) != 1 || got.Applied[0].Key != betKey || got.Applied[0].Count != 1 {
			t.Errorf("ledger sea /applied: want exactly key %q received once, got %s", betKey, strings.TrimSpace(applied.body))
		}
		bal := curl(t, with(sea, "https://play.edge.test:8443/api/wallet/balance")...)
		if bal.status != 200 || !strings.Contains(bal.body, `"balance":"987.50"`) {
			t.Errorf("sea balance after the bet and its replay: want 200 with \"balance\":\"987.50\" (debited once), got %v", bal)
		}
	})

	t.Run("balance in eu", func(t *testing.T) {
		r := curl(t, with(eu, "https://play.edge.test:8443/api/wallet/balance")...)
		if r.status != 200 || !strings.Contains(r.body, `"domain":"eu"`) {
			t.Fatalf("eu balance: want 200 with \"domain\":\"eu\", got %v", r)
		}
		if !strings.Contains(r.body, `"balance":"1000.00"`) {
			t.Errorf("eu balance: the bet went to sea's ledger, want eu's untouched \"balance\":\"1000.00\", got %v", r)
		}
	})

	t.Run("cashier fails over between rails", func(t *testing.T) {
		deposit := func(key string) httpResult {
			return curl(t, with(sea, "-H", "Content-Type: application/json", "-H", "Idempotency-Key: "+key, "-d", `{"amount":"50.00","currency":"EUR"}`,
				"https://play.edge.test:8443/cashier/deposit")...)
		}
		railIs := func(key, rail string) func() (bool, string) {
			return func() (bool, string) {
				r := deposit(key)
				return r.status == 200 && strings.Contains(r.body, `"rail":"`+rail+`"`), r.String()
			}
		}
		if r := deposit("dep-1"); r.status != 200 || !strings.Contains(r.body, `"rail":"rail-a"`) {
			t.Fatalf("deposit: want 200 from the primary \"rail\":\"rail-a\", got %v", r)
		}
		setRailA := func(healthy string) {
			r := curl(t, "-X", "POST", "-d", `{"healthy":`+healthy+`}`, "http://127.0.0.31:7100/admin/health")
			if r.status != 200 {
				t.Fatalf("mark rail-a healthy=%s: want 200, got %v", healthy, r)
			}
		}
		// Health interval 1s and fall 2 in the demo: rail-a is out within
		// about 2–3 s; a client retries with the same key meanwhile.
		setRailA("false")
		took := testkit.WaitFor(t, p, "deposits to fail over to rail-b (expected within ~3 s: interval 1s, fall 2)",
			4*time.Second, 200*time.Millisecond, railIs("dep-2", "rail-b"))
		t.Logf("rail-a down: deposits answered by rail-b after %v", took.Round(time.Millisecond))
		setRailA("true")
		took = testkit.WaitFor(t, p, "deposits to return to rail-a (expected within ~3 s: interval 1s, rise 2)",
			4*time.Second, 200*time.Millisecond, railIs("dep-3", "rail-a"))
		t.Logf("rail-a up: deposits back on rail-a after %v", took.Round(time.Millisecond))
	})

	t.Run("unknown path is a no-route problem", func(t *testing.T) {
		r := curl(t, with(sea, "https://play.edge.test:8443/no/such/thing")...)
		if r.status != 404 || r.header.Get("Content-Type") != "application/problem+json" ||
			!strings.Contains(r.body, `"type":"urn:hedge:problem:no-route"`) {
			t.Fatalf("unknown path: want 404 application/problem+json with \"type\":\"urn:hedge:problem:no-route\", got %v", r)
		}
		if r.header.Get("X-Request-Id") == "" {
			t.Errorf("problem answers carry X-Request-Id too; got none: %v", r)
		}
	})

	t.Run("status names the node and its certificates", func(t *testing.T) {
		r := curl(t, "http://127.0.0.11:9090/status")
		var st struct {
			Node      string `json:"node"`
			Region    string `json:"region"`
			Listeners []struct {
				Address      string `json:"address"`
				Certificates []struct {
					Names    []string  `json:"names"`
					NotAfter time.Time `json:"not_after"`
				} `json:"certificates"`
			} `json:"listeners"`
		}
		decodeJSON(t, "GET /status", r.body, &st)
		if r.status != 200 || st.Node != "sea-1" || st.Region != "sea" {
			t.Fatalf("status: want 200 naming node sea-1 of region sea, got %d node %q region %q", r.status, st.Node, st.Region)
		}
		var found bool
		for _, l := range st.Listeners {
			for _, c := range l.Certificates {
				for _, n := range c.Names {
					if n != "play.edge.test" {
						continue
					}
					found = true
					if !c.NotAfter.After(time.Now()) {
						t.Errorf("status: certificate for play.edge.test: want not_after in the future, got %v", c.NotAfter)
					}
				}
			}
		}
		if !found {
			t.Errorf("status: want a certificate for play.edge.test with not_after, got %s", r.body)
		}
	})

	t.Run("metrics count requests by route", func(t *testing.T) {
		r := curl(t, "http://127.0.0.11:9090/metrics")
		samples := parseMetrics(r.body, "hedge_requests_total")
		v, ok := findSample(samples, map[string]string{"node": "sea-1", "route": "bets", "status": "201"})
		if r.status != 200 || !ok || v != 2 {
			t.Fatalf("metrics: want hedge_requests_total{node=\"sea-1\",route=\"bets\",status=\"201\"} 2 (the bet and its replay), got status %d, found %v value %v; samples: %v",
				r.status, ok, v, samples)
		}
	})

	t.Run("the protective layer answers attacks and bad bets", func(t *testing.T) {
		post := func(key, body string) httpResult {
			return curl(t, with(sea, "-H", "Content-Type: application/json", "-H", "Idempotency-Key: "+key, "-d", body,
				"https://play.edge.test:8443/api/bets")...)
		}
		cases := []struct {
			name, body string
			status     int
			slug       string
		}{
			{"sql injection in a free-text field", `{"table":"bacc-07","amount":"1.00","currency":"EUR","selection":"banker","comment":"1' UNION SELECT password FROM users --"}`, 403, "request-blocked"},
			{"a currency the schema refuses", `{"table":"bacc-07","amount":"1.00","currency":"euro","selection":"banker"}`, 422, "schema-violation"},
			{"an unknown field", `{"table":"bacc-07","amount":"1.00","currency":"EUR","selection":"banker","credit":"1000"}`, 422, "schema-violation"},
			{"truncated JSON", `{"table":"bacc-07","amount":`, 400, "malformed-body"},
		}
		for i, c := range cases {
			r := post(fmt.Sprintf("waf-%d", i), c.body)
			if r.status != c.status || !strings.Contains(r.body, `"type":"urn:hedge:problem:`+c.slug+`"`) {
				t.Errorf("%s: want %d %s, got %v", c.name, c.status, c.slug, r)
			}
		}
		// A chat line with an apostrophe, a percent sign and emoji is not an attack.
		r := post("waf-ok", `{"table":"bacc-07","amount":"1.00","currency":"EUR","selection":"player","comment":"it's 100% luck 🍀 — bonne chance!"}`)
		if r.status != 201 {
			t.Errorf("an ordinary bet with a chatty comment: want 201, got %v", r)
		}
		var st struct {
			Protection struct {
				WAF []struct {
					Route, Mode   string
					ParanoiaLevel int `json:"paranoia_level"`
					Rules         int
				}
			}
		}
		decodeJSON(t, "status", curl(t, "http://127.0.0.11:9090/status").body, &st)
		if len(st.Protection.WAF) == 0 {
			t.Fatal("/status shows no WAF")
		}
		for _, w := range st.Protection.WAF {
			if w.Mode != "block" || w.ParanoiaLevel != 1 || w.Rules < 100 {
				t.Errorf("/status: route %s: want the WAF in block mode at PL1 with the CRS rules, got %+v", w.Route, w)
			}
		}
	})

	t.Run("tls", func(t *testing.T) {
		roots := certPool(t, ca)
		dialer := &net.Dialer{Timeout: 5 * time.Second}
		for _, c := range []struct{ addr, name string }{
			{"127.0.0.11:8443", "play.edge.test"}, {"127.0.0.11:8443", "sea.edge.test"},
			{"127.0.0.12:8443", "play.edge.test"}, {"127.0.0.12:8443", "eu.edge.test"},
		} {
			conn, err := tls.DialWithDialer(dialer, "tcp", c.addr, &tls.Config{RootCAs: roots, ServerName: c.name})
			if err != nil {
				t.Errorf("TLS to %s as %s: want a certificate that verifies against .hedge/ca/root.crt, got %v", c.addr, c.name, err)
				continue
			}
			if v := conn.ConnectionState().Version; v < tls.VersionTLS12 {
				t.Errorf("TLS to %s: want TLS 1.2 or later, got %s", c.addr, tls.VersionName(v))
			}
			conn.Close()

			old, err := tls.DialWithDialer(dialer, "tcp", c.addr, &tls.Config{RootCAs: roots, ServerName: c.name,
				MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
			if err == nil {
				old.Close()
				t.Errorf("TLS 1.1 to %s: want the handshake refused, it succeeded with %s", c.addr, tls.VersionName(old.ConnectionState().Version))
			} else if !strings.Contains(err.Error(), "protocol version") {
				t.Errorf("TLS 1.1 to %s: want the server to refuse the protocol version, got %v", c.addr, err)
			}
		}
		r := curl(t, with(sea, "https://play.edge.test:8443/healthz")...)
		if r.header.Get("Strict-Transport-Security") == "" {
			t.Errorf("HSTS: want Strict-Transport-Security on the edge's own answers, got %v", r)
		}
	})

	t.Run("curl --http2 gets the answers curl --http1.1 gets", func(t *testing.T) {
		problemType := func(r httpResult) string {
			var p struct {
				Type string `json:"type"`
			}
			json.Unmarshal([]byte(r.body), &p)
			return p.Type
		}
		answers := map[string][]httpResult{}
		for _, proto := range []string{"--http1.1", "--http2"} {
			bet := with(sea, proto, "-H", "Content-Type: application/json", "-H", "Idempotency-Key: curl"+proto,
				"-d", betBody, "https://play.edge.test:8443/api/bets")
			for _, args := range [][]string{
				bet, bet, // the bet, then its replay
				with(sea, proto, "-H", "Content-Type: application/json", "-H", "Idempotency-Key: curl"+proto,
					"-d", strings.Replace(betBody, "12.50", "13.00", 1), "https://play.edge.test:8443/api/bets"),
				with(sea, proto, "https://play.edge.test:8443/nope"),
				with(eu, proto, "https://play.edge.test:8443/api/wallet/balance"),
				with(sea, proto, "https://play.edge.test:8443/live/bacc-07/play.json"),
				with(sea, proto, "https://play.edge.test:8443/api/wallet/balance?q=1%27%20OR%201=1--"),
			} {
				r := curl(t, args...)
				if want := map[string]string{"--http1.1": "HTTP/1.1", "--http2": "HTTP/2"}[proto]; r.proto != want {
					t.Fatalf("curl %s: want an answer over %s, got %s", proto, want, r.proto)
				}
				answers[proto] = append(answers[proto], r)
			}
		}
		for i, h1 := range answers["--http1.1"] {
			h2 := answers["--http2"][i]
			if h1.status != h2.status || problemType(h1) != problemType(h2) || h1.header.Get("Idempotent-Replayed") != h2.header.Get("Idempotent-Replayed") {
				t.Errorf("request %d: HTTP/1.1 answered %v, HTTP/2 %v", i, h1, h2)
			}
		}
		if r := answers["--http2"]; r[0].status != 201 || r[1].header.Get("Idempotent-Replayed") != "true" || r[2].status != 422 || r[3].status != 404 {
			t.Errorf("over HTTP/2: want the bet 201, its replay marked, the other bet under its key 422 and /nope 404; got %v", r[:4])
		}
		samples := parseMetrics(curl(t, "http://127.0.0.11:9090/metrics").body, "hedge_requests_total")
		if v, ok := findSample(samples, map[string]string{"node": "sea-1", "route": "bets", "proto": "2", "status": "201"}); !ok || v < 2 {
			t.Errorf("metrics: want hedge_requests_total{route=\"bets\",proto=\"2\",status=\"201\"} ≥ 2, got %v %v", ok, v)
		}
	})

	t.Run("drain turns healthz red and back", func(t *testing.T) {
		healthz := func(args []string) httpResult { return curl(t, with(args, "https://play.edge.test:8443/healthz")...) }
		if r := curl(t, "-X", "POST", "http://127.0.0.11:9090/admin/drain"); r.status != 200 {
			t.Fatalf("POST /admin/drain: want 200, got %v", r)
		}
		if r := healthz(sea); r.status != 503 || !strings.Contains(r.body, `"draining":true`) {
			t.Errorf("sea healthz while draining: want 503 with \"draining\":true, got %v", r)
		}
		if r := healthz(eu); r.status != 200 {
			t.Errorf("eu healthz while sea drains: want 200 (draining is per node), got %v", r)
		}
		if r := curl(t, with(sea, "https://play.edge.test:8443/api/wallet/balance")...); r.status != 200 {
			t.Errorf("a draining node still serves requests: want 200 for the balance, got %v", r)
		}
		if r := curl(t, "-X", "DELETE", "http://127.0.0.11:9090/admin/drain"); r.status != 200 {
			t.Fatalf("DELETE /admin/drain: want 200, got %v", r)
		}
		if r := healthz(sea); r.status != 200 {
			t.Errorf("sea healthz after the drain ended: want 200, got %v", r)
		}
	})

	t.Run("sigterm drains and exits 0", func(t *testing.T) {
		start := time.Now()
		p.Signal(t, syscall.SIGTERM)
		// Health goes red first, so DNS moves players away before the
		// listeners close.
		testkit.WaitFor(t, nil, "sea's /healthz to answer 503 after SIGTERM", time.Second, 50*time.Millisecond, func() (bool, string) {
			r, err := tryDo(quickClient, "GET", "http://127.0.0.11:9090/healthz", "")
			if err != nil {
				return false, err.Error()
			}
			var h struct{ Status string }
			json.Unmarshal([]byte(r.body), &h)
			return r.status == 503 && h.Status == "draining", r.String()
		})
		limit := demoDrainPeriod + 5*time.Second
		code, ok := p.Wait(limit)
		took := time.Since(start)
		if !ok {
			t.Fatalf("SIGTERM: want an exit within drain_period %v + 5s, still running after %v", demoDrainPeriod, limit)
		}
		if code != 0 {
			t.Errorf("SIGTERM: want exit status 0, got %d", code)
		}
		if took < demoDrainPeriod-100*time.Millisecond {
			t.Errorf("SIGTERM: want the drain period (%v) honoured before exit, exited after %v", demoDrainPeriod, took)
		}
		t.Logf("exited %d after %v", code, took.Round(time.Millisecond))
		for _, a := range demoAddrs {
			if err := bindable(a.addr); err != nil {
				t.Errorf("after exit %s (%s) should be free: %v", a.addr, a.what, err)
			}
		}
	})
}
