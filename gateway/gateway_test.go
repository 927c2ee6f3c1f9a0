package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hedge/configs"
	"hedge/internal/testkit"
)

// upstreamRecorder is a real HTTP upstream that records what it received.
type upstreamRecorder struct {
	*httptest.Server
	mu      sync.Mutex
	seen    []*http.Request
	hits    atomic.Int64
	healthy atomic.Bool
	delay   atomic.Int64 // nanoseconds to wait before answering /slow
	name    string
}

func newUpstream(t testing.TB, name string) *upstreamRecorder {
	u := &upstreamRecorder{name: name}
	u.healthy.Store(true)
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			if !u.healthy.Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
			return
		}
		u.hits.Add(1)
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		u.mu.Lock()
		u.seen = append(u.seen, r)
		u.mu.Unlock()
		if d := time.Duration(u.delay.Load()); d > 0 && (strings.HasPrefix(r.URL.Path, "/slow") || r.Header.Get("X-Slow") != "") {
			time.Sleep(d)
		}
		w.Header().Set("Connection", "X-Secret")
		w.Header().Set("X-Secret", "hop-by-hop")
		w.Header().Set("X-Upstream", name)
		fmt.Fprintf(w, "%s %s %s", name, r.Method, r.URL.RequestURI())
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *upstreamRecorder) last() *http.Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.seen) == 0 {
		return nil
	}
	return u.seen[len(u.seen)-1]
}

func (u *upstreamRecorder) addr() string { return strings.TrimPrefix(u.URL, "http://") }

// writeFile writes content to path, replacing what it held.
func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// writeTemp writes content to a file name in a directory of the test's
// own and returns its path.
func writeTemp(t testing.TB, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	writeFile(t, path, content)
	return path
}

type testEdge struct {
	g     *Gateway
	url   string // http://addr of the edge listener
	admin string // http://addr of the admin listener
	file  string
}

// path is a file in the edge's data directory: ca/root.crt,
// audit/audit.log, access.log.
func (e *testEdge) path(elem ...string) string {
	return filepath.Join(append([]string{filepath.Dir(e.file)}, elem...)...)
}

// rewriteConfig replaces old with new in the edge's configuration file.
func rewriteConfig(t testing.TB, e *testEdge, old, new string) {
	t.Helper()
	b, err := os.ReadFile(e.file)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), old) {
		t.Fatalf("configuration has no %q to replace:\n%s", old, b)
	}
	writeFile(t, e.file, strings.Replace(string(b), old, new, 1))
}

// auditTrail is what the edge's audit log holds ("" before its first
// record).
func (e *testEdge) auditTrail(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(e.path("audit", "audit.log"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return string(b)
}

// waitAccessLog waits until the edge's access log holds every one of
// wants, and fails showing what it holds if that takes over 5 s.
func (e *testEdge) waitAccessLog(t testing.TB, what string, wants ...string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(e.path("access.log"))
		if !slices.ContainsFunc(wants, func(w string) bool { return !strings.Contains(string(b), w) }) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("access log: want %s, got:\n%s", what, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startEdge runs a one-node gateway from a YAML template; {{EDGE}},
// {{ADMIN}} and {{DATA}} are filled in.
func startEdge(t testing.TB, tmpl string, repl ...string) *testEdge {
	t.Helper()
	return startEdgeWith(t, edgeOptions{}, tmpl, repl...)
}

// startEdgeNode runs one node of a multi-region configuration.
func startEdgeNode(t testing.TB, tmpl, region, node string, repl ...string) *testEdge {
	t.Helper()
	return startEdgeWith(t, edgeOptions{region: region, node: node}, tmpl, repl...)
}

// edgeOptions choose the node a test edge runs (default: the only one) and
// where its log goes (default: nowhere, or stderr with -v).
type edgeOptions struct {
	region, node string
	log          io.Writer
}

func startEdgeWith(t testing.TB, o edgeOptions, tmpl string, repl ...string) *testEdge {
	t.Helper()
	// A port found free can be taken by another process before the gateway
	// binds it: try again with new ports rather than fail the test.
	for attempt := 1; ; attempt++ {
		e, err := tryStartEdge(t, o, tmpl, repl...)
		if err == nil {
			return e
		}
		if attempt == 5 || !strings.Contains(err.Error(), "address already in use") {
			t.Fatal(err)
		}
	}
}

func tryStartEdge(t testing.TB, o edgeOptions, tmpl string, repl ...string) (*testEdge, error) {
	edge, admin := testkit.FreeAddr(t), testkit.FreeAddr(t)
	dir := t.TempDir()
	r := strings.NewReplacer(append([]string{"{{EDGE}}", edge, "{{ADMIN}}", admin, "{{DATA}}", dir}, repl...)...)
	file := dir + "/hedge.yaml"
	if err := os.WriteFile(file, []byte(r.Replace(tmpl)), 0o600); err != nil {
		return nil, err
	}
	g, err := runConfigFile(t, file, Options{Region: o.region, Node: o.node, Logger: testLogger(o.log)})
	if err != nil {
		return nil, err
	}
	return &testEdge{g: g, url: "http://" + edge, admin: "http://" + admin, file: file}, nil
}

// testLogger is a test gateway's logger: text to w when given, else
// nowhere, or stderr at debug level with -v.
func testLogger(w io.Writer) *slog.Logger {
	switch {
	case w != nil:
		return slog.New(slog.NewTextHandler(w, nil))
	case testing.Verbose():
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return quiet
}

// quiet is a logger that drops everything: for the simulators beside a
// test's gateway, and for the gateway itself by default.
var quiet = slog.New(slog.DiscardHandler)

// runConfigFile runs a Gateway from the configuration file, which its
// reload reads again.
func runConfigFile(t testing.TB, file string, o Options) (*Gateway, error) {
	cfg, err := configs.Load(file)
	if err != nil {
		return nil, fmt.Errorf("config:\n%w", err)
	}
	o.Reload = func() (*configs.Config, error) { return configs.Load(file) }
	return runGateway(t, cfg, o)
}

// runGateway creates and starts a Gateway that is shut down when the test
// ends.
func runGateway(t testing.TB, cfg *configs.Config, o Options) (*Gateway, error) {
	g, err := New(cfg, o)
	if err != nil {
		return nil, err
	}
	if err := g.Start(context.Background()); err != nil {
		return nil, err
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		g.Shutdown(ctx)
	})
	return g, nil
}

// testHead starts most test configurations: a data directory of the
// test's own, the protective layer off (protect_test.go tests it), no
// access log, the admin API open to loopback, a short drain and shutdown.
const testHead = quietHead + `admin: {allow_loopback: true}
lifecycle: {drain_period: 10ms, shutdown_timeout: 5s}
`

// quietHead is testHead without the admin and lifecycle settings, for
// configurations that set their own.
const quietHead = `
data_dir: {{DATA}}
# The protective layer has its own tests (protect_test.go).
waf: {mode: off}
log: {access: {enabled: false}}
`

// seaListener begins the regions of a one-node configuration: node sea-1
// of region sea, its listener public on {{EDGE}}; the listener's other
// settings follow.
const seaListener = `regions:
  - name: sea
    nodes:
      - name: sea-1
        listeners:
          - name: public
            address: {{EDGE}}
`

// debugHead starts configurations that log at debug level: a data
// directory of the test's own, no access log, the admin API open to
// loopback, a short drain and shutdown. The protective layer's mode
// follows.
const debugHead = `
data_dir: {{DATA}}
log: {level: debug, access: {enabled: false}}
admin: {allow_loopback: true}
lifecycle: {drain_period: 10ms, shutdown_timeout: 5s}
`

// seaTail ends a one-node configuration begun with seaListener: the node's
// admin listener on {{ADMIN}} and the region's pool games, whose one
// member g1 is on {{G1}}.
const seaTail = `        admin: {address: {{ADMIN}}}
    pools:
      - name: games
        members: [{name: g1, url: "http://{{G1}}"}]
        health: {interval: 100ms, timeout: 100ms, rise: 1, fall: 2}
`

// seaNode begins the regions of a one-node configuration with the whole
// node: sea-1 of region sea, a plain HTTP listener on {{EDGE}} and the
// admin listener on {{ADMIN}}; the region's pools and writers follow.
const seaNode = `regions:
  - name: sea
    nodes:
      - name: sea-1
        listeners: [{name: public, address: "{{EDGE}}", tls: {mode: off}}]
        admin: {address: "{{ADMIN}}"}
`

const baseConfig = debugHead + `# The protective layer has its own tests (protect_test.go).
waf: {mode: off}
routes:
  - name: bets
    match: {path_prefix: /api/bets, methods: [POST]}
    pool: ledger
    rewrite: /bets
    max_body_bytes: 1KiB
  - name: games
    match: {hosts: [play.edge.test, "*.games.test"], path_prefix: /games/}
    pool: games
  - name: slow
    match: {path_prefix: /slow}
    pool: games
` + seaListener + `            tls: {mode: off}
            limits: {max_header_bytes: 4KiB}
        admin: {address: {{ADMIN}}}
    pools:
      - name: ledger
        critical: true
        members: [{name: l1, url: "http://{{L1}}"}]
        health: {interval: 100ms, timeout: 100ms, rise: 1, fall: 2}
      - name: games
        members: [{name: g1, url: "http://{{G1}}"}, {name: g2, url: "http://{{G2}}"}]
        health: {interval: 100ms, timeout: 100ms, rise: 1, fall: 2}
        timeouts: {connect: 200ms, response: 300ms}
`

type fixture struct {
	edge       *testEdge
	l1, g1, g2 *upstreamRecorder
}

func newFixture(t *testing.T, extra ...string) *fixture {
	f := &fixture{l1: newUpstream(t, "l1"), g1: newUpstream(t, "g1"), g2: newUpstream(t, "g2")}
	repl := append([]string{"{{L1}}", f.l1.addr(), "{{G1}}", f.g1.addr(), "{{G2}}", f.g2.addr()}, extra...)
	f.edge = startEdge(t, baseConfig, repl...)
	return f
}

func do(t *testing.T, method, url, host string, body string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func wantProblem(t *testing.T, resp *http.Response, body string, status int, slug string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status: want %d, got %d (%s)", status, resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("content type: want application/problem+json, got %q", ct)
	}
	var p struct {
		Type      string `json:"type"`
		Status    int    `json:"status"`
		RequestID string `json:"request_id"`
	}
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Fatalf("problem body is not JSON: %v: %s", err, body)
	}
	if p.Type != "urn:hedge:problem:"+slug || p.Status != status {
		t.Fatalf("problem: want %s/%d, got %s/%d", slug, status, p.Type, p.Status)
	}
	if p.RequestID == "" || p.RequestID != resp.Header.Get("X-Request-Id") {
		t.Fatalf("request id: body %q, header %q", p.RequestID, resp.Header.Get("X-Request-Id"))
	}
}

// pathProblem is a GET a test expects a problem for.
type pathProblem struct {
	path   string
	status int
	slug   string
}

// wantProblems GETs base+path for each case, with the headers hdr, and
// wants its problem; each case is a subtest named by its path.
func wantProblems(t *testing.T, base string, cases []pathProblem, hdr ...string) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.path, func(t *testing.T) {
			resp, body := do(t, "GET", base+c.path, "", "", hdr...)
			wantProblem(t, resp, body, c.status, c.slug)
		})
	}
}

func TestProxyForwardsAndRewrites(t *testing.T) {
	f := newFixture(t)
	resp, body := do(t, "POST", f.edge.url+"/api/bets?x=1", "", `{"amount":"1.00"}`,
		"Idempotency-Key", "k-1", "Connection", "keep-alive, X-Hop", "X-Hop", "secret",
		"Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"X-Forwarded-For", "203.0.113.9")
	if resp.StatusCode != 200 || body != "l1 POST /bets?x=1" {
		t.Fatalf("want 200 'l1 POST /bets?x=1', got %d %q", resp.StatusCode, body)
	}
	got := f.l1.last()
	checks := map[string][2]string{
		"Idempotency-Key":   {got.Header.Get("Idempotency-Key"), "k-1"},
		"X-Hop":             {got.Header.Get("X-Hop"), ""},
		"X-Forwarded-For":   {got.Header.Get("X-Forwarded-For"), "127.0.0.1"},
		"X-Forwarded-Proto": {got.Header.Get("X-Forwarded-Proto"), "http"},
		"Forwarded":         {got.Header.Get("Forwarded"), `for=127.0.0.1;proto=http;host="` + strings.TrimPrefix(f.edge.url, "http://") + `"`},
		"Traceparent":       {got.Header.Get("Traceparent"), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		"X-Request-Id":      {got.Header.Get("X-Request-Id"), resp.Header.Get("X-Request-Id")},
	}
	for name, c := range checks {
		if c[0] != c[1] {
			t.Errorf("upstream saw %s = %q, want %q", name, c[0], c[1])
		}
	}
	if resp.Header.Get("X-Request-Id") == "" {
		t.Error("no X-Request-Id on the response")
	}
	if resp.Header.Get("X-Secret") != "" {
		t.Error("a header the upstream named in Connection reached the client")
	}
	if resp.Header.Get("X-Upstream") != "l1" {
		t.Error("end-to-end response header lost")
	}
}

// TestHopByHopRemoved: what is meant for one connection never reaches the
// upstream — the fixed hop-by-hop headers and every header a Connection
// header names, however many it names and however many Connection headers
// the request has — while a chunked body still arrives whole.
func TestHopByHopRemoved(t *testing.T) {
	f := newFixture(t)
	addr := strings.TrimPrefix(f.edge.url, "http://")
	var many, named strings.Builder
	for i := range 40 {
		fmt.Fprintf(&many, "X-Hop-%02d, ", i)
		fmt.Fprintf(&named, "X-Hop-%02d: %d\r\n", i, i)
	}
	long := "X-" + strings.Repeat("L", 100)
	cases := []struct {
		name, headers string
		gone          []string
	}{
		{"the fixed hop-by-hop headers", "Keep-Alive: timeout=5\r\nTE: trailers\r\nUpgrade: h2c\r\nProxy-Connection: keep-alive\r\nProxy-Authorization: Basic eA==\r\n",
			[]string{"Keep-Alive", "TE", "Upgrade", "Proxy-Connection", "Proxy-Authorization"}},
		{"forty names in one Connection header", "Connection: keep-alive, " + many.String() + "X-Last\r\n" + named.String() + "X-Last: 1\r\n",
			[]string{"X-Hop-00", "X-Hop-17", "X-Hop-39", "X-Last", "Connection"}},
		{"names in a second Connection header", "Connection: keep-alive\r\nConnection: X-Second\r\nX-Second: 1\r\n", []string{"X-Second"}},
		{"a name longer than 64 bytes", "Connection: " + long + "\r\n" + long + ": 1\r\n", []string{long}},
	}
	for i, c := range cases {
		path := fmt.Sprintf("/games/hop-%d", i)
		raw := "POST " + path + " HTTP/1.1\r\nHost: play.edge.test\r\n" + c.headers + "X-Kept: yes\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
		resp, body, _ := testkit.RawExchange(t, addr, raw, false)
		if resp.StatusCode != 200 {
			t.Errorf("%s: want 200, got %d %s", c.name, resp.StatusCode, body)
			continue
		}
		up := f.g1.request(path)
		if up == nil {
			up = f.g2.request(path)
		}
		for _, h := range c.gone {
			if v := up.Header.Get(h); v != "" {
				t.Errorf("%s: the upstream saw %s: %q, want it removed", c.name, h, v)
			}
		}
		if up.Header.Get("X-Kept") != "yes" {
			t.Errorf("%s: an end-to-end header was removed: X-Kept = %q", c.name, up.Header.Get("X-Kept"))
		}
		if b := readBody(t, up); b != "hello world" {
			t.Errorf("%s: the upstream got the body %q, want %q", c.name, b, "hello world")
		}
	}
}

func TestRequestIDAndTraceparentHandling(t *testing.T) {
	f := newFixture(t)
	resp, _ := do(t, "GET", f.edge.url+"/games/a", "play.edge.test", "",
		"X-Request-Id", "client-abc-123", "Traceparent", "00-zz-bad", "Tracestate", "a=b")
	if got := resp.Header.Get("X-Request-Id"); got != "client-abc-123" {
		t.Fatalf("propagated request id: want client-abc-123, got %q", got)
	}
	up := f.g1.last()
	if up == nil {
		up = f.g2.last()
	}
	if up.Header.Get("X-Request-Id") != "client-abc-123" || up.Header.Get("Traceparent") != "" || up.Header.Get("Tracestate") != "" {
		t.Fatalf("upstream headers: id %q traceparent %q tracestate %q", up.Header.Get("X-Request-Id"), up.Header.Get("Traceparent"), up.Header.Get("Tracestate"))
	}
	resp, _ = do(t, "GET", f.edge.url+"/games/a", "play.edge.test", "", "X-Request-Id", "bad id with spaces")
	if got := resp.Header.Get("X-Request-Id"); got == "" || strings.Contains(got, " ") {
		t.Fatalf("an invalid request id must be replaced, got %q", got)
	}
}

func TestTrustedProxies(t *testing.T) {
	f := &fixture{l1: newUpstream(t, "l1"), g1: newUpstream(t, "g1"), g2: newUpstream(t, "g2")}
	cfg := strings.Replace(baseConfig, "tls: {mode: off}", "tls: {mode: off}\n            trusted_proxies: [127.0.0.0/8]", 1)
	f.edge = startEdge(t, cfg, "{{L1}}", f.l1.addr(), "{{G1}}", f.g1.addr(), "{{G2}}", f.g2.addr())
	do(t, "POST", f.edge.url+"/api/bets", "", "{}", "X-Forwarded-For", "203.0.113.9", "X-Forwarded-Proto", "https")
	got := f.l1.last()
	if xff := got.Header.Get("X-Forwarded-For"); xff != "203.0.113.9, 127.0.0.1" {
		t.Fatalf("X-Forwarded-For from a trusted proxy: want %q, got %q", "203.0.113.9, 127.0.0.1", xff)
	}
	if p := got.Header.Get("X-Forwarded-Proto"); p != "https" {
		t.Fatalf("X-Forwarded-Proto from a trusted proxy: want https, got %q", p)
	}
}

func TestErrorsAreProblems(t *testing.T) {
	f := newFixture(t)
	resp, body := do(t, "GET", f.edge.url+"/nowhere", "", "")
	wantProblem(t, resp, body, 404, "no-route")

	resp, body = do(t, "GET", f.edge.url+"/api/bets", "", "")
	wantProblem(t, resp, body, 405, "method-not-allowed")
	if resp.Header.Get("Allow") != "POST" {
		t.Fatalf("Allow: want POST, got %q", resp.Header.Get("Allow"))
	}

	resp, body = do(t, "POST", f.edge.url+"/api/bets", "", strings.Repeat("x", 2048))
	wantProblem(t, resp, body, 413, "body-too-large")

	// A host the route does not serve.
	resp, body = do(t, "GET", f.edge.url+"/games/a", "other.test", "")
	wantProblem(t, resp, body, 404, "no-route")
	resp, _ = do(t, "GET", f.edge.url+"/games/a", "x.games.test:8443", "")
	if resp.StatusCode != 200 {
		t.Fatalf("wildcard host: want 200, got %d", resp.StatusCode)
	}
}

func TestMalformedRequests(t *testing.T) {
	f := newFixture(t)
	addr := strings.TrimPrefix(f.edge.url, "http://")
	resp, body, _ := testkit.RawExchange(t, addr, "GET /games/a HTTP/1.1\r\nHost: play.edge.test\r\nX-Big: "+strings.Repeat("a", 8192)+"\r\n\r\n", false)
	if resp.StatusCode != 431 || resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("oversized headers: want 431 problem+json, got %d %q %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	resp, body, _ = testkit.RawExchange(t, addr, "POST /api/bets HTTP/1.1\r\nHost: play.edge.test\r\nContent-Length: 5000000\r\n\r\n", false)
	if resp.StatusCode != 413 || resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("body over the listener limit: want 413 problem+json, got %d %s", resp.StatusCode, body)
	}
	resp, _, _ = testkit.RawExchange(t, addr, "GET /games/a HTTP/1.1\r\nHost: play.edge.test\r\nContent-Length: zz\r\n\r\n", false)
	if resp.StatusCode != 400 || resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("malformed Content-Length: want 400 problem+json, got %d", resp.StatusCode)
	}
}

func TestRoundRobinAndFailoverOnDeadMember(t *testing.T) {
	f := newFixture(t)
	for range 10 {
		resp, _ := do(t, "GET", f.edge.url+"/games/x", "play.edge.test", "")
		if resp.StatusCode != 200 {
			t.Fatalf("want 200, got %d", resp.StatusCode)
		}
	}
	if f.g1.hits.Load() != 5 || f.g2.hits.Load() != 5 {
		t.Fatalf("round robin: want 5/5, got %d/%d", f.g1.hits.Load(), f.g2.hits.Load())
	}
	// g2 dies: safe requests that pick it are retried on g1 (a request on a
	// pooled connection the server closed may have been received, so only
	// safe or keyed requests are re-sent)...
	f.g2.Close()
	for range 6 {
		resp, body := do(t, "GET", f.edge.url+"/games/x", "play.edge.test", "")
		if resp.StatusCode != 200 || !strings.HasPrefix(body, "g1 ") {
			t.Fatalf("with g2 down: want 200 from g1, got %d %q", resp.StatusCode, body)
		}
	}
	// ...and once health checks have taken it out, every request goes to g1.
	testkit.WaitUntil(t, "g2 marked down", 2*time.Second, func() bool {
		return !f.edge.g.Nodes()[0].state.Load().pools["games"].Members[1].Health.Healthy()
	})
	for range 6 {
		resp, body := do(t, "POST", f.edge.url+"/games/x", "play.edge.test", "{}")
		if resp.StatusCode != 200 || !strings.HasPrefix(body, "g1 ") {
			t.Fatalf("with g2 out: want 200 from g1, got %d %q", resp.StatusCode, body)
		}
	}
}

func TestConnectFailureRetriedForAnyMethod(t *testing.T) {
	f := newFixture(t)
	// Health checks are too slow to notice (fall 2 at 100ms): stop g2
	// between two probes by closing its listener, so only a dial fails.
	f.g2.Listener.Close()
	ok := 0
	for range 10 {
		resp, _ := do(t, "POST", f.edge.url+"/games/x", "play.edge.test", "{}")
		if resp.StatusCode == 200 {
			ok++
		}
	}
	if ok != 10 {
		t.Fatalf("POSTs with one member refusing connections: want 10 answered by g1, got %d", ok)
	}
}

func TestFailoverPolicy(t *testing.T) {
	primary, backup := newUpstream(t, "primary"), newUpstream(t, "backup")
	cfg := quietHead + `routes: [{name: cashier, match: {path_prefix: /cashier/}, pool: cashier}]
regions:
  - name: eu
    nodes: [{name: eu-1, listeners: [{address: "{{EDGE}}", tls: {mode: off}}]}]
    pools:
      - name: cashier
        policy: failover
        members: [{url: "http://{{P}}"}, {url: "http://{{B}}"}]
        health: {interval: 30ms, timeout: 20ms, rise: 2, fall: 2}
`
	e := startEdge(t, cfg, "{{P}}", primary.addr(), "{{B}}", backup.addr())
	get := func() string {
		_, body := do(t, "POST", e.url+"/cashier/deposit", "", "{}", "Idempotency-Key", "d")
		return strings.Fields(body)[0]
	}
	for range 3 {
		if got := get(); got != "primary" {
			t.Fatalf("healthy primary: want primary, got %s", got)
		}
	}
	primary.healthy.Store(false)
	testkit.WaitUntil(t, "switch to backup", 2*time.Second, func() bool { return get() == "backup" })
	primary.healthy.Store(true)
	testkit.WaitUntil(t, "switch back to primary", 2*time.Second, func() bool { return get() == "primary" })
	// Both switches are audited with their reason (the record is written
	// right after the health change that requests may already see).
	var trail string
	testkit.WaitUntil(t, "both switches audited", 2*time.Second, func() bool {
		trail = e.auditTrail(t)
		return strings.Contains(trail, "went up")
	})
	for _, want := range []string{`"event":"pool_switch"`, `"to":"http://` + backup.addr() + `"`, `went down`, `went up`} {
		if !strings.Contains(trail, want) {
			t.Errorf("audit log lacks %s:\n%s", want, trail)
		}
	}
}

func TestTimeoutsAndRetries(t *testing.T) {
	f := newFixture(t)
	f.g1.delay.Store(int64(time.Second))
	f.g2.delay.Store(int64(time.Second))
	// A POST without Idempotency-Key that timed out is never re-sent.
	resp, body := do(t, "POST", f.edge.url+"/slow", "", "{}")
	wantProblem(t, resp, body, 504, "upstream-timeout")
	if n := f.g1.hits.Load() + f.g2.hits.Load(); n != 1 {
		t.Fatalf("POST without key after a timeout: want 1 upstream attempt, got %d", n)
	}
	// A GET may be retried once on the other member (attempts: 2).
	resp, body = do(t, "GET", f.edge.url+"/slow", "", "")
	wantProblem(t, resp, body, 504, "upstream-timeout")
	if n := f.g1.hits.Load() + f.g2.hits.Load(); n != 3 {
		t.Fatalf("GET after a timeout: want 2 more attempts (3 in all), got %d", n)
	}
	// A POST with an Idempotency-Key stays with the member it timed out
	// on: g1 may have applied it, and g2 deduplicates on its own.
	f.g2.delay.Store(0)
	before := f.g1.hits.Load() + f.g2.hits.Load()
	resp, body = do(t, "POST", f.edge.url+"/slow", "", "{}", "Idempotency-Key", "bet-1")
	wantProblem(t, resp, body, 504, "upstream-timeout")
	if n := f.g1.hits.Load() + f.g2.hits.Load() - before; n != 1 {
		t.Fatalf("keyed POST after a timeout, members not sharing idempotency: want 1 attempt, got %d", n)
	}
}

// TestSharedIdempotencyRetriesKeyed: a pool that declares its members share
// one deduplication store may send a keyed POST that timed out on one
// member to the next.
func TestSharedIdempotencyRetriesKeyed(t *testing.T) {
	f := newFixture(t, "        timeouts: {connect: 200ms, response: 300ms}\n", "        timeouts: {connect: 200ms, response: 300ms}\n        shared_idempotency: true\n")
	f.g1.delay.Store(int64(time.Second))
	for range 4 {
		before := f.g1.hits.Load() + f.g2.hits.Load()
		resp, body := do(t, "POST", f.edge.url+"/slow", "", "{}", "Idempotency-Key", "bet-1")
		if resp.StatusCode != 200 || !strings.HasPrefix(body, "g2 ") {
			t.Fatalf("keyed POST with g1 slow: want 200 from g2, got %d %q", resp.StatusCode, body)
		}
		if n := f.g1.hits.Load() + f.g2.hits.Load() - before; n > 2 {
			t.Fatalf("keyed POST: at most 2 attempts, got %d", n)
		}
	}
	// Without a key a POST is still never re-sent.
	before := f.g1.hits.Load() + f.g2.hits.Load()
	for range 2 {
		do(t, "POST", f.edge.url+"/slow", "", "{}")
	}
	if n := f.g1.hits.Load() + f.g2.hits.Load() - before; n > 3 {
		t.Fatalf("unkeyed POSTs with shared idempotency: at most one attempt each after g1 times out, got %d for 2", n)
	}
}

func TestNoHealthyMember(t *testing.T) {
	f := newFixture(t)
	f.l1.healthy.Store(false)
	testkit.WaitUntil(t, "ledger member down", 2*time.Second, func() bool {
		resp, _ := do(t, "POST", f.edge.url+"/api/bets", "", "{}")
		return resp.StatusCode == 503
	})
	resp, body := do(t, "POST", f.edge.url+"/api/bets", "", "{}")
	wantProblem(t, resp, body, 503, "no-healthy-upstream")
	if resp.Header.Get("Retry-After") == "" {
		t.Fatal("503 without Retry-After")
	}
	// The ledger pool is critical: the node's health is red.
	resp, body = do(t, "GET", f.edge.url+"/healthz", "", "")
	if resp.StatusCode != 503 || !strings.Contains(body, `"unhealthy"`) {
		t.Fatalf("healthz with a critical pool down: want 503 unhealthy, got %d %s", resp.StatusCode, body)
	}
}

func TestHealthzAndDrainThroughAdmin(t *testing.T) {
	f := newFixture(t)
	resp, body := do(t, "GET", f.edge.url+"/healthz", "", "")
	if resp.StatusCode != 200 || !strings.Contains(body, `"status":"ok"`) {
		t.Fatalf("healthz: want 200 ok, got %d %s", resp.StatusCode, body)
	}
	resp, _ = do(t, "POST", f.edge.admin+"/admin/drain", "", "")
	if resp.StatusCode != 200 {
		t.Fatalf("drain: want 200, got %d", resp.StatusCode)
	}
	resp, body = do(t, "GET", f.edge.url+"/healthz", "", "")
	if resp.StatusCode != 503 || !strings.Contains(body, `"draining"`) {
		t.Fatalf("healthz while draining: want 503 draining, got %d %s", resp.StatusCode, body)
	}
	// Draining still serves requests: only health turns red.
	if resp, _ := do(t, "POST", f.edge.url+"/api/bets", "", "{}"); resp.StatusCode != 200 {
		t.Fatalf("a draining node must keep serving, got %d", resp.StatusCode)
	}
	do(t, "DELETE", f.edge.admin+"/admin/drain", "", "")
	if resp, _ := do(t, "GET", f.edge.url+"/healthz", "", ""); resp.StatusCode != 200 {
		t.Fatalf("healthz after undrain: want 200, got %d", resp.StatusCode)
	}
}

func TestAdminStatusAndMetrics(t *testing.T) {
	f := newFixture(t)
	do(t, "POST", f.edge.url+"/api/bets", "", "{}")
	do(t, "GET", f.edge.url+"/nowhere", "", "")
	_, metrics := do(t, "GET", f.edge.admin+"/metrics", "", "")
	for _, want := range []string{
		`hedge_requests_total{node="sea-1",proto="1.1",region="sea",route="bets",status="200"} 1`,
		`hedge_requests_total{node="sea-1",proto="1.1",region="sea",route="-",status="404"} 1`,
		`hedge_upstream_member_healthy{member="g1",node="sea-1",pool="games",region="sea"} 1`,
		`hedge_request_duration_seconds_bucket{node="sea-1",region="sea",route="bets"`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	resp, body := do(t, "GET", f.edge.admin+"/status", "", "")
	var st Status
	if err := json.Unmarshal([]byte(body), &st); err != nil || resp.StatusCode != 200 {
		t.Fatalf("status: %d %v", resp.StatusCode, err)
	}
	if st.Node != "sea-1" || st.Region != "sea" || len(st.Pools) != 2 || len(st.Pools[1].Members) != 2 {
		t.Fatalf("status content: %+v", st)
	}
	if resp, _ := do(t, "GET", f.edge.admin+"/debug/pprof/", "", ""); resp.StatusCode != 200 {
		t.Fatalf("pprof: want 200, got %d", resp.StatusCode)
	}
}

func TestAdminNeedsToken(t *testing.T) {
	f := &fixture{l1: newUpstream(t, "l1"), g1: newUpstream(t, "g1"), g2: newUpstream(t, "g2")}
	cfg := strings.Replace(baseConfig, "admin: {allow_loopback: true}", "admin: {tokens: [{name: ops, token: operator-ops-0123456789abcdef012345, roles: [read]}]}", 1)
	f.edge = startEdge(t, cfg, "{{L1}}", f.l1.addr(), "{{G1}}", f.g1.addr(), "{{G2}}", f.g2.addr())
	resp, body := do(t, "GET", f.edge.admin+"/status", "", "")
	if resp.StatusCode != 401 || !strings.Contains(body, "urn:hedge:problem:unauthorized") {
		t.Fatalf("no token: want 401 problem, got %d %s", resp.StatusCode, body)
	}
	resp, _ = do(t, "GET", f.edge.admin+"/status", "", "", "Authorization", "Bearer wrong-token-0123456789")
	if resp.StatusCode != 401 {
		t.Fatalf("wrong token: want 401, got %d", resp.StatusCode)
	}
	resp, _ = do(t, "GET", f.edge.admin+"/status", "", "", "Authorization", "Bearer operator-ops-0123456789abcdef012345")
	if resp.StatusCode != 200 {
		t.Fatalf("right token: want 200, got %d", resp.StatusCode)
	}
}
