package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hedge/internal/testkit"
)

// The protective layer through a real listener: every layer's answer, the
// audit log, the metrics, /status and reload.
const protectConfig = debugHead + `waf: {mode: block, paranoia_level: 1}
acl: {deny: [203.0.113.0/24]}
rate_limits:
  - {name: per-ip, key: ip, rate: 1000/s, burst: 1000}
routes:
  - name: api
    match: {path_prefix: /api/}
    pool: games
    max_body_bytes: 1KiB
    limits: {max_uri_bytes: 512, max_headers: 20, content_types: [application/json]}
    waf: {allowed_methods: [GET, HEAD, POST, PUT, DELETE, OPTIONS]}
  - name: watch
    match: {path_prefix: /watch/}
    pool: games
    waf: {mode: detect}
  - name: webhook
    match: {path_prefix: /webhook}
    pool: games
    acl: {allow: [10.9.0.0/16]}
  - name: limited
    match: {path_prefix: /limited}
    pool: games
    rate_limits:
      - {name: per-player, key: principal, principal: "header:X-Player", rate: 1/m, burst: 2, exempt: [10.8.0.0/16]}
  - name: bets
    match: {path_prefix: /bets, methods: [POST]}
    pool: games
    schema: {{SCHEMA}}
    limits: {content_types: [application/json]}
` + seaListener + `            tls: {mode: off}
            trusted_proxies: [127.0.0.0/8]
` + seaTail

const testBetSchema = `{
  "type": "object",
  "required": ["table_id", "amount", "currency"],
  "additionalProperties": false,
  "properties": {
    "table_id": {"type": "string", "format": "uuid"},
    "amount": {"type": "string", "pattern": "^[0-9]{1,9}(\\.[0-9]{1,2})?$"},
    "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
    "comment": {"type": "string", "maxLength": 200}
  }
}`

type protectFixture struct {
	edge *testEdge
	g1   *upstreamRecorder
	dir  string
}

func newProtectFixture(t *testing.T) *protectFixture {
	t.Helper()
	f := &protectFixture{g1: newUpstream(t, "g1")}
	schema := writeTemp(t, "bet.json", testBetSchema)
	f.edge = startEdge(t, protectConfig, "{{G1}}", f.g1.addr(), "{{SCHEMA}}", schema)
	f.dir = f.edge.path()
	return f
}

// auditLines waits for the WAF audit log to hold a line with the request
// id and returns it.
func (f *protectFixture) auditLine(t *testing.T, requestID string) map[string]any {
	t.Helper()
	path := filepath.Join(f.dir, "audit", "waf.jsonl")
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if fh, err := os.Open(path); err == nil {
			sc := bufio.NewScanner(fh)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for sc.Scan() {
				var m map[string]any
				if json.Unmarshal(sc.Bytes(), &m) == nil && m["request_id"] == requestID {
					fh.Close()
					return m
				}
			}
			fh.Close()
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no line for request %s in %s within 5s", requestID, path)
	return nil
}

func TestWAFBlocksAttacksWithoutDetails(t *testing.T) {
	f := newProtectFixture(t)
	cases := []struct{ name, method, path, body string }{
		{"sqli in query", "GET", "/api/games?id=1%27%20OR%201%3D1%20--", ""},
		{"xss in json body", "POST", "/api/profile", `{"nick":"<script>alert(document.cookie)</script>"}`},
		{"path traversal", "GET", "/api/files?name=../../../../etc/passwd", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := f.g1.hits.Load()
			resp, body := do(t, c.method, f.edge.url+c.path, "", c.body, "Content-Type", "application/json", "Accept", "application/json")
			wantProblem(t, resp, body, 403, "request-blocked")
			if f.g1.hits.Load() != before {
				t.Fatal("a blocked request reached the upstream")
			}
			line := f.auditLine(t, resp.Header.Get("X-Request-Id"))
			rules, _ := line["rules"].([]any)
			if line["action"] != "blocked" || line["layer"] != "crs" || len(rules) == 0 {
				t.Fatalf("audit line: want a crs block with rule ids, got %v", line)
			}
			// The client learns nothing of the rules the audit log names.
			for _, r := range rules {
				rule, _ := r.(map[string]any)
				id := fmt.Sprint(rule["id"])
				msg, _ := rule["msg"].(string)
				if strings.Contains(body, id) || msg != "" && strings.Contains(body, msg) {
					t.Fatalf("the block names rule %s (%q): %s", id, msg, body)
				}
			}
		})
	}
	// An ordinary request passes.
	resp, body := do(t, "GET", f.edge.url+"/api/games?ids=1,2,3&lang=en", "", "", "Accept", "application/json")
	if resp.StatusCode != 200 {
		t.Fatalf("ordinary GET: want 200, got %d %s", resp.StatusCode, body)
	}
	// PUT is allowed where the route says so.
	resp, body = do(t, "PUT", f.edge.url+"/api/profile", "", `{"nick":"Zoë"}`, "Content-Type", "application/json")
	if resp.StatusCode != 200 {
		t.Fatalf("PUT on a REST route: want 200, got %d %s", resp.StatusCode, body)
	}

	metrics := get(t, f.edge.admin+"/metrics")
	if l := grepLines(metrics, "hedge_waf_blocked_total{"); !strings.Contains(l, `layer="crs"`) || !strings.Contains(l, `route="api"`) {
		t.Fatalf("metrics: no crs block counted:\n%s", grepLines(metrics, "hedge_waf"))
	}
}

func TestWAFDetectModeLetsThroughAndRecords(t *testing.T) {
	f := newProtectFixture(t)
	resp, body := do(t, "GET", f.edge.url+"/watch/x?q=1%27%20OR%201%3D1%20--", "", "")
	if resp.StatusCode != 200 {
		t.Fatalf("detect mode: want 200, got %d %s", resp.StatusCode, body)
	}
	line := f.auditLine(t, resp.Header.Get("X-Request-Id"))
	if line["action"] != "detected" {
		t.Fatalf("audit line: want detected, got %v", line)
	}
}

func TestACLs(t *testing.T) {
	f := newProtectFixture(t)
	cases := []struct {
		name, path, client string
		status             int
	}{
		{"global deny before routing", "/api/x", "203.0.113.7", 403},
		{"global deny on an unknown path", "/nowhere", "203.0.113.7", 403},
		{"others pass", "/api/x", "198.51.100.1", 200},
		{"allow list admits its range", "/webhook", "10.9.1.2", 200},
		{"allow list refuses others", "/webhook", "198.51.100.1", 403},
		{"ipv6 client outside the allow list", "/webhook", "2001:db8::1", 403},
	}
	for _, c := range cases {
		resp, body := do(t, "GET", f.edge.url+c.path, "", "", "X-Forwarded-For", c.client)
		if resp.StatusCode != c.status {
			t.Fatalf("%s: want %d, got %d %s", c.name, c.status, resp.StatusCode, body)
		}
		if c.status == 403 {
			wantProblem(t, resp, body, 403, "address-denied")
		}
	}
}

func TestShapeLimits(t *testing.T) {
	f := newProtectFixture(t)
	many := []string{}
	for i := range 25 {
		many = append(many, fmt.Sprintf("X-Extra-%d", i), "1")
	}
	cases := []struct {
		name, method, path, body string
		hdr                      []string
		status                   int
		slug                     string
	}{
		{"uri too long", "GET", "/api/x?q=" + strings.Repeat("a", 600), "", nil, 414, "uri-too-long"},
		{"too many headers", "GET", "/api/x", "", many, 431, "too-many-headers"},
		{"body too large", "POST", "/api/x", `{"a":"` + strings.Repeat("b", 2000) + `"}`, []string{"Content-Type", "application/json"}, 413, "body-too-large"},
		{"wrong content type", "POST", "/api/x", "a=b", []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, "unsupported-media-type"},
	}
	for _, c := range cases {
		resp, body := do(t, c.method, f.edge.url+c.path, "", c.body, c.hdr...)
		if resp.StatusCode != c.status {
			t.Fatalf("%s: want %d, got %d %s", c.name, c.status, resp.StatusCode, body)
		}
		wantProblem(t, resp, body, c.status, c.slug)
	}
	// Content-Length beside chunked encoding is refused before routing:
	// TestFramingRefusedAndConnectionClosed.
}

func TestRateLimits(t *testing.T) {
	f := newProtectFixture(t)
	for i := range 2 {
		resp, body := do(t, "GET", f.edge.url+"/limited", "", "", "X-Player", "p-1")
		if resp.StatusCode != 200 {
			t.Fatalf("request %d within the burst: want 200, got %d %s", i, resp.StatusCode, body)
		}
		if resp.Header.Get("RateLimit-Policy") == "" || resp.Header.Get("RateLimit") == "" {
			t.Fatalf("allowed response without RateLimit headers: %v", resp.Header)
		}
	}
	resp, body := do(t, "GET", f.edge.url+"/limited", "", "", "X-Player", "p-1")
	wantProblem(t, resp, body, 429, "rate-limited")
	if ra := resp.Header.Get("Retry-After"); ra == "" || ra == "0" {
		t.Fatalf("429 without a useful Retry-After: %q", ra)
	}
	if p := resp.Header.Get("RateLimit-Policy"); !strings.Contains(p, `"per-player"`) || !strings.Contains(p, "q=1") {
		t.Fatalf("RateLimit-Policy: %q", p)
	}
	// Another player has its own bucket; an exempt address has none.
	if resp, _ := do(t, "GET", f.edge.url+"/limited", "", "", "X-Player", "p-2"); resp.StatusCode != 200 {
		t.Fatalf("another player: want 200, got %d", resp.StatusCode)
	}
	for range 5 {
		if resp, _ := do(t, "GET", f.edge.url+"/limited", "", "", "X-Player", "p-1", "X-Forwarded-For", "10.8.0.1"); resp.StatusCode != 200 {
			t.Fatalf("exempt load generator: want 200, got %d", resp.StatusCode)
		}
	}
}

func TestSchemaOnMoneyRoute(t *testing.T) {
	f := newProtectFixture(t)
	ok := `{"table_id":"0b9e1c8a-6a53-4f7e-9d0f-3c8e2a1b4d5f","amount":"12.50","currency":"EUR","comment":"gl hf, it's 50% luck 🍀"}`
	resp, body := do(t, "POST", f.edge.url+"/bets", "", ok, "Content-Type", "application/json")
	if resp.StatusCode != 200 {
		t.Fatalf("valid bet: want 200, got %d %s", resp.StatusCode, body)
	}
	if got := f.g1.last(); got == nil {
		t.Fatal("the upstream saw no request")
	} else if b := readBody(t, got); b != ok {
		t.Fatalf("the upstream must receive the original body:\nwant %s\ngot  %s", ok, b)
	}
	cases := []struct {
		name, body string
		status     int
		slug, want string
	}{
		{"bad currency", `{"table_id":"0b9e1c8a-6a53-4f7e-9d0f-3c8e2a1b4d5f","amount":"1","currency":"euro"}`, 422, "schema-violation", "/currency"},
		{"unknown field", `{"table_id":"0b9e1c8a-6a53-4f7e-9d0f-3c8e2a1b4d5f","amount":"1","currency":"EUR","admin":true}`, 422, "schema-violation", "admin"},
		{"truncated json", `{"table_id":"0b9e1c8a-6a53`, 400, "malformed-body", ""},
		{"no body", ``, 400, "malformed-body", ""},
	}
	for _, c := range cases {
		resp, body := do(t, "POST", f.edge.url+"/bets", "", c.body, "Content-Type", "application/json")
		wantProblem(t, resp, body, c.status, c.slug)
		if !strings.Contains(body, c.want) {
			t.Fatalf("%s: the detail should name %q: %s", c.name, c.want, body)
		}
	}
	// Free text still reaches the rule engine.
	attack := `{"table_id":"0b9e1c8a-6a53-4f7e-9d0f-3c8e2a1b4d5f","amount":"1","currency":"EUR","comment":"1' UNION SELECT password FROM users --"}`
	resp, body = do(t, "POST", f.edge.url+"/bets", "", attack, "Content-Type", "application/json")
	wantProblem(t, resp, body, 403, "request-blocked")
}

func TestProtectionReloadsAndShowsInStatus(t *testing.T) {
	f := newProtectFixture(t)
	var st Status
	if err := json.Unmarshal([]byte(get(t, f.edge.admin+"/status")), &st); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, w := range st.Protection.WAF {
		if w.Route == "api" {
			found = true
			if w.Mode != "block" || w.ParanoiaLevel != 1 || w.CRSVersion == "" || w.Rules < 100 {
				t.Fatalf("status of route api: %+v", w)
			}
		}
	}
	if !found {
		t.Fatalf("status lists no WAF for route api: %+v", st.Protection)
	}
	attack := "/api/games?id=1%27%20OR%201%3D1%20--"
	if resp, _ := do(t, "GET", f.edge.url+attack, "", ""); resp.StatusCode != 403 {
		t.Fatalf("before reload: want 403, got %d", resp.StatusCode)
	}
	rewriteConfig(t, f.edge, "waf: {mode: block, paranoia_level: 1}", "waf: {mode: detect, paranoia_level: 2}")
	if err := f.edge.g.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if resp, _ := do(t, "GET", f.edge.url+attack, "", ""); resp.StatusCode != 200 {
		t.Fatalf("after reload to detect: want 200, got %d", resp.StatusCode)
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, body := do(t, "GET", url, "", "")
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, body)
	}
	return body
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func readBody(t *testing.T, r *http.Request) string {
	t.Helper()
	b := new(strings.Builder)
	if _, err := bufio.NewReader(r.Body).WriteTo(b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// Bad input answered with the right 4xx problem+json, never a 500, an empty
// 200 or a dropped connection.
func TestProtectBadInput(t *testing.T) {
	f := newProtectFixture(t)
	addr := strings.TrimPrefix(f.edge.url, "http://")
	var multipart strings.Builder
	multipart.WriteString("POST /watch/upload HTTP/1.1\r\nHost: a\r\nContent-Type: multipart/form-data; boundary=XX\r\n")
	var parts strings.Builder
	for i := range 3000 {
		fmt.Fprintf(&parts, "--XX\r\nContent-Disposition: form-data; name=\"f%d\"; filename=\"a%d.txt\"\r\n\r\nx\r\n", i, i)
	}
	parts.WriteString("--XX--\r\n")
	fmt.Fprintf(&multipart, "Content-Length: %d\r\n\r\n%s", parts.Len(), parts.String())
	cases := []struct {
		name   string
		raw    string
		status []int
	}{
		{"truncated json", "POST /api/x HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 9\r\n\r\n{\"a\":\"b\",", []int{400, 403}},
		{"invalid utf-8 in json", "POST /api/x HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n{\"a\":\"\xff\xfe\"}", []int{400, 403}},
		{"xml to a json route", "POST /api/x HTTP/1.1\r\nHost: a\r\nContent-Type: application/xml\r\nContent-Length: 7\r\n\r\n<a></a>", []int{415}},
		{"multipart bomb", multipart.String(), []int{400, 403, 413}},
		{"header flood", "GET /api/x HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("X-A: b\r\n", 200) + "\r\n", []int{431}},
		{"very long uri", "GET /api/" + strings.Repeat("a", 20000) + " HTTP/1.1\r\nHost: a\r\n\r\n", []int{414, 431}},
		{"duplicate content-length", "POST /api/x HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}", []int{400}},
		{"obfuscated transfer-encoding", "POST /api/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", []int{400, 501}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body, _ := testkit.RawExchange(t, addr, c.raw, false)
			ok := false
			for _, s := range c.status {
				ok = ok || resp.StatusCode == s
			}
			if !ok {
				t.Fatalf("want one of %v, got %d %q", c.status, resp.StatusCode, body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("want a problem+json answer, got %q %q", ct, body)
			}
		})
	}
}

// A route's body limit is enforced while reading: a declared Content-Length
// over it is answered 413 at once, without waiting for the body.
func TestRouteBodyLimitWhileReading(t *testing.T) {
	f := newProtectFixture(t)
	addr := strings.TrimPrefix(f.edge.url, "http://")
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	if _, err := c.Write([]byte("POST /api/x HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{")); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer before the body was sent: %v", err)
	}
	if resp.StatusCode != 413 || resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("want 413 problem+json, got %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("413 took %v: the body was waited for", took)
	}
	// Within the limit, the same route serves.
	if resp, body := do(t, "POST", f.edge.url+"/api/x", "", `{"a":1}`, "Content-Type", "application/json"); resp.StatusCode != 200 {
		t.Fatalf("small body: want 200, got %d %s", resp.StatusCode, body)
	}
}
