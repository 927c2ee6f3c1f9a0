package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"hedge/internal/testkit"
	"hedge/waf"
	"hedge/waf/ftw"
	"hedge/waf/learn"
)

// learnConfig: one node in front of a plain upstream, three API routes of
// the WAF corpus in learn mode, and two control routes that show what the
// rule engine makes of a payload without a schema: with no exclusions,
// and with the exclusions the suggestion makes.
const learnConfig = `deployment: e2e-learn
data_dir: "{{DATA}}"
log: {level: info, format: text, access: {enabled: false}}
lifecycle: {drain_period: 50ms, shutdown_timeout: 2s}
admin:
  tokens:
    - {name: scraper, token: e2e-learn-scraper-0123456789abcdef0123, roles: [read]}
    - {name: ops, token: e2e-learn-ops-0123456789abcdef0123456789, roles: [read, operate]}
waf:
  mode: block
  paranoia_level: 1
  allowed_methods: [GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS]
routes:
{{ROUTES}}
  - name: control
    match: {path_prefix: /control/}
    pool: api
    limits: {content_types: [application/json]}
  - name: control-excluded
    match: {path_prefix: /control-excluded/}
    pool: api
    limits: {content_types: [application/json]}
    waf: {exclude_fields: {{EXCLUDED}}}
regions:
  - name: lab
    nodes:
      - name: lab-1
        listeners: [{name: public, address: "{{EDGE}}", tls: {mode: "off"}}]
        admin: {address: "{{ADMIN}}"}
    pools:
      - name: api
        members: [{name: upstream, url: "http://{{UPSTREAM}}"}]
        health: {interval: 100ms, timeout: 100ms, rise: 1, fall: 3}
`

// learnRoutes are the corpus's kinds of routes the test learns.
var learnRoutes = []struct{ name, prefix string }{
	{"support", "/api/support/"},
	{"kyc", "/api/kyc/"},
	{"limits", "/api/limits/"},
}

type corpusLine struct {
	Name    string      `json:"name"`
	Method  string      `json:"method"`
	URI     string      `json:"uri"`
	Headers [][2]string `json:"headers"`
	Body    string      `json:"body"`
}

// TestLearnSuggestApplyThroughNode is learn mode as an operator uses it:
// a node learns three API routes from the benign corpus (real sockets,
// players on a dozen loopback addresses), stops (saving its models),
// `hedge waf suggest` writes schemas and prints exclusions, the operator
// applies them and starts the node again. Then the corpus passes with 0
// blocks, and attack payloads of the CRS regression suite that the rule
// engine blocks on a route without a schema are refused in every field
// of every learned route — by the schema (422) or the rule engine (403) —
// but where the field's exclusions alone let the payload through (the
// documented trade-off, shown by the control-excluded route).
func TestLearnSuggestApplyThroughNode(t *testing.T) {
	dir := t.TempDir()
	corpus := loadLearnCorpus(t)
	upstream := startUpstream(t)
	edge := testkit.FreeAddr(t)
	cfgFile := filepath.Join(dir, "hedge.yaml")

	var routes strings.Builder
	for _, r := range learnRoutes {
		fmt.Fprintf(&routes, "  - {name: %s, match: {path_prefix: %s}, pool: api, limits: {content_types: [application/json]}, waf: {mode: learn}}\n", r.name, r.prefix)
	}
	admin := testkit.FreeAddr(t)
	writeLearnConfig(t, cfgFile, dir, edge, admin, upstream, routes.String(), "[{field: /unused, ids: [942100]}]")
	p := startHedge(t, "serve (learning)", dir, "serve", "-c", cfgFile)
	clients := loopbackClients(12)
	testkit.WaitFor(t, p, "the edge to proxy", 20*time.Second, 100*time.Millisecond, func() (bool, string) {
		st, err := sendCorpus(clients[0], edge, corpus[0])
		return err == nil && st == 200, fmt.Sprint(st, err)
	})
	for i, r := range corpus {
		if st, err := sendCorpus(clients[i%len(clients)], edge, r); err != nil || st != 200 {
			t.Fatalf("learning: %s got %d %v; learn mode must let the corpus through", r.Name, st, err)
		}
	}
	// The live models, from the admin API: operate role only.
	live := filepath.Join(dir, "live.json")
	fetchLearned(t, admin, "e2e-learn-scraper-0123456789abcdef0123", http.StatusForbidden, "")
	fetchLearned(t, admin, "e2e-learn-ops-0123456789abcdef0123456789", http.StatusOK, live)
	p.Signal(t, syscall.SIGTERM)
	if code, ok := p.Wait(15 * time.Second); !ok || code != 0 {
		t.Fatalf("the learning node did not stop cleanly: exited %v, code %d", ok, code)
	}

	schemas := filepath.Join(dir, "schemas")
	res := runHedge(t, dir, "waf", "suggest", "-c", cfgFile, "-o", schemas, "-json")
	if res.code != 0 {
		t.Fatalf("hedge waf suggest: exit %d: %s", res.code, res.stderr)
	}
	var sgs []learn.Suggestion
	if err := json.Unmarshal([]byte(res.stdout), &sgs); err != nil {
		t.Fatalf("hedge waf suggest -json: %v\n%s", err, res.stdout)
	}
	// What the admin API served suggests what the node saved when it stopped.
	if fromAPI := runHedge(t, dir, "waf", "suggest", "-file", live, "-json"); fromAPI.code != 0 || fromAPI.stdout != res.stdout {
		t.Fatalf("hedge waf suggest -file (the admin API's models): exit %d, %s\n%s\nwant what the saved models suggest:\n%s", fromAPI.code, fromAPI.stderr, fromAPI.stdout, res.stdout)
	}
	text := runHedge(t, dir, "waf", "suggest", "-c", cfgFile)
	t.Logf("hedge waf suggest:\n%s", text.stdout)
	byRoute := map[string]learn.Suggestion{}
	for _, s := range sgs {
		byRoute[s.Route] = s
	}
	routes.Reset()
	var excluded []string
	for _, r := range learnRoutes {
		s, ok := byRoute[r.name]
		if !ok || s.Schema == nil {
			t.Fatalf("route %s: no schema suggested (%+v)", r.name, s)
		}
		// Values counts fields with too many distinct values to be an enum:
		// no loss. Anything else dropped would be.
		if d := s.Dropped; s.Requests == 0 || d.Fields+d.Params+d.Pairs+d.Clients+d.Leaves+d.Bodies > 0 {
			t.Errorf("route %s: %d requests learned, dropped %+v; want every field, pair and body kept", r.name, s.Requests, s.Dropped)
		}
		var ex []string
		for _, x := range s.Exclusions {
			ids, _ := json.Marshal(x.IDs)
			ex = append(ex, fmt.Sprintf("{field: %s, ids: %s}", x.Field, ids))
		}
		excluded = append(excluded, ex...)
		fmt.Fprintf(&routes, "  - name: %s\n    match: {path_prefix: %s}\n    pool: api\n    schema: %s\n    limits: {content_types: [application/json]}\n    waf: {mode: block, exclude_fields: [%s]}\n",
			r.name, r.prefix, filepath.Join(schemas, r.name+".schema.json"), strings.Join(ex, ", "))
	}
	if sup := byRoute["support"]; len(sup.Exclusions) != 1 || sup.Exclusions[0].Field != "/message" ||
		!slices.Contains(sup.Exclusions[0].IDs, 942190) || !slices.Contains(sup.Exclusions[0].IDs, 942270) {
		t.Fatalf("support: want the players' false positives in /message (942190, 942270) as its one exclusion; got %+v", sup.Exclusions)
	}
	writeLearnConfig(t, cfgFile, dir, edge, admin, upstream, routes.String(), "["+strings.Join(excluded, ", ")+"]")
	if res := runHedge(t, dir, "check", "-c", cfgFile); res.code != 0 {
		t.Fatalf("the configuration with the suggestion applied does not check: %s%s", res.stdout, res.stderr)
	}
	p = startHedge(t, "serve (applied)", dir, "serve", "-c", cfgFile)
	testkit.WaitFor(t, p, "the edge to proxy", 20*time.Second, 100*time.Millisecond, func() (bool, string) {
		st, err := sendCorpus(clients[0], edge, corpus[0])
		return err == nil && st == 200, fmt.Sprint(st, err)
	})
	blocked := 0
	for i, r := range corpus {
		if st, err := sendCorpus(clients[i%len(clients)], edge, r); err != nil || st != 200 {
			blocked++
			t.Errorf("after applying the suggestion: %s got %d %v; want 200", r.Name, st, err)
		}
	}
	t.Logf("corpus: %d requests on %d routes, %d blocked after applying the suggestion", len(corpus), len(learnRoutes), blocked)

	// Attack payloads: those the rule engine blocks in a field of a route
	// without a schema, each placed into every top-level field of one
	// request of every learned route.
	payloads := detectedPayloads(t, clients[1], edge, 40)
	attacker := clients[2]
	refused, tradeOff := 0, 0
	for _, r := range learnRoutes {
		base := firstOf(corpus, r.prefix)
		var doc map[string]any
		if err := json.Unmarshal([]byte(base.Body), &doc); err != nil {
			t.Fatal(err)
		}
		for field := range doc {
			for _, pl := range payloads {
				attack := base
				m := maps(doc)
				m[field] = pl
				b, _ := json.Marshal(m)
				attack.Body = string(b)
				st, err := sendCorpus(attacker, edge, attack)
				if err != nil {
					t.Fatal(err)
				}
				if st == 403 || st == 422 || st == 400 {
					refused++
					continue
				}
				// The exclusions of this field alone let it through: the
				// control route with the same exclusions agrees.
				ctl, _ := post(attacker, edge, "/control-excluded"+r.prefix, map[string]any{field: pl})
				if ctl != 200 || !excludedField(byRoute[r.name], "/"+field) {
					t.Errorf("route %s field %s: payload %q answered %d; want it refused (403 or 422)", r.name, field, pl, st)
					continue
				}
				tradeOff++
			}
		}
	}
	t.Logf("attack payloads: %d detected by the control route; %d placements refused, %d passed where the field's exclusions alone allow them", len(payloads), refused, tradeOff)
	if refused == 0 {
		t.Fatal("no attack placement was refused: the test proves nothing")
	}
	p.Signal(t, syscall.SIGTERM)
	p.Wait(15 * time.Second)
}

func excludedField(s learn.Suggestion, field string) bool {
	for _, x := range s.Exclusions {
		if x.Field == field {
			return true
		}
	}
	return false
}

func maps(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func writeLearnConfig(t *testing.T, file, dir, edge, admin, upstream, routes, excluded string) {
	t.Helper()
	cfg := strings.NewReplacer("{{DATA}}", filepath.Join(dir, "data"), "{{EDGE}}", edge, "{{ADMIN}}", admin, "{{UPSTREAM}}", upstream,
		"{{ROUTES}}", strings.TrimRight(routes, "\n"), "{{EXCLUDED}}", excluded).Replace(learnConfig)
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}

// loadLearnCorpus reads the WAF corpus's requests for the learned routes.
func loadLearnCorpus(t *testing.T) []corpusLine {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(moduleRoot, "waf/testdata/corpus/requests.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var out []corpusLine
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r corpusLine
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		for _, lr := range learnRoutes {
			if strings.HasPrefix(r.URI, lr.prefix) && r.Body != "" {
				out = append(out, r)
			}
		}
	}
	if len(out) < 50 {
		t.Fatalf("the corpus has %d requests for %v; want at least 50", len(out), learnRoutes)
	}
	return out
}

func firstOf(corpus []corpusLine, prefix string) corpusLine {
	for _, r := range corpus {
		if strings.HasPrefix(r.URI, prefix) {
			return r
		}
	}
	panic("no corpus request under " + prefix)
}

// startUpstream answers every request 200 (the routes' pool).
func startUpstream(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"ok":true}`))
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// loopbackClients are players on distinct loopback addresses
// (127.0.0.10 and up), each with its own connections.
func loopbackClients(n int) []*http.Client {
	out := make([]*http.Client, n)
	for i := range out {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(10+i))}, Timeout: 5 * time.Second}
		out[i] = &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, DisableCompression: true}}
	}
	return out
}

// sendCorpus sends r as its client did, to the edge.
func sendCorpus(c *http.Client, edge string, r corpusLine) (int, error) {
	req, err := http.NewRequest(r.Method, "http://"+edge+r.URI, strings.NewReader(r.Body))
	if err != nil {
		return 0, err
	}
	for _, h := range r.Headers {
		if strings.EqualFold(h[0], "Host") {
			req.Host = h[1]
			continue
		}
		req.Header.Add(h[0], h[1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

func post(c *http.Client, edge, path string, doc map[string]any) (int, error) {
	b, _ := json.Marshal(doc)
	return sendCorpus(c, edge, corpusLine{Method: "POST", URI: path, Body: string(b),
		Headers: [][2]string{{"Host", "play.edge.test"}, {"Content-Type", "application/json"}, {"User-Agent", "LiveCasino/5.12.3 (iPhone; iOS 18.1; Scale/3.00)"}}})
}

// detectedPayloads are up to n payloads of the CRS regression suite (form
// and query values, bodies) that the control route — no schema, block
// mode, PL1 — refuses in a JSON field, in the suite's file order, spread
// over the suite.
func detectedPayloads(t *testing.T, c *http.Client, edge string, n int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir, err := ftw.TestsDir(ctx, moduleRoot)
	if err != nil {
		t.Fatalf("CRS regression tests: %v", err)
	}
	var all []string
	seen := map[string]bool{}
	add := func(s string) {
		if s != "" && len(s) <= 1024 && !seen[s] {
			seen[s] = true
			all = append(all, s)
		}
	}
	inputs, err := ftw.Inputs(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range inputs {
		if _, q, ok := strings.Cut(in.URI, "?"); ok {
			for _, kv := range strings.Split(q, "&") {
				_, v, _ := strings.Cut(kv, "=")
				if d, err := url.QueryUnescape(v); err == nil {
					add(d)
				}
			}
		}
		add(in.Data)
	}
	if len(all) < 1000 {
		t.Fatalf("CRS regression suite in %s: %d payloads; want at least 1000", dir, len(all))
	}
	var out []string
	step := max(1, len(all)/(8*n))
	for i := 0; i < len(all) && len(out) < n; i += step {
		st, err := post(c, edge, "/control/", map[string]any{"message": all[i]})
		if err != nil {
			t.Fatal(err)
		}
		if st == 403 {
			out = append(out, all[i])
		}
	}
	if len(out) < n/2 {
		t.Fatalf("only %d of the suite's payloads are blocked on the control route; want at least %d", len(out), n/2)
	}
	return out
}

// TestSuggestMergesNodes: `hedge waf suggest -data A -data B` merges the
// models two nodes learned of one route, so a field each node saw from a
// different player reaches the schema as a field two players sent.
func TestSuggestMergesNodes(t *testing.T) {
	dir := t.TempDir()
	var dirs []string
	for i, node := range []struct{ body, client string }{
		{`{"market":"m-1","stake":"2.50","promo":"WELCOME"}`, "198.51.100.1"},
		{`{"market":"m-2","stake":"4.00","promo":"SPRING"}`, "198.51.100.2"},
	} {
		d := filepath.Join(dir, fmt.Sprintf("node%d", i))
		s, err := learn.Open(waf.LearnFile(d), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		for range 3 {
			s.Model("bets").Observe(nil, "application/json", []byte(node.body), netip.MustParseAddr(node.client), nil)
		}
		// Another player on each node, without the promo field.
		s.Model("bets").Observe(nil, "application/json", []byte(`{"market":"m-3","stake":"1.00"}`), netip.MustParseAddr("203.0.113.9"), nil)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, d)
	}
	suggest := func(args ...string) learn.Suggestion {
		t.Helper()
		res := runHedge(t, dir, append([]string{"waf", "suggest", "-json"}, args...)...)
		var out []learn.Suggestion
		if res.code != 0 || json.Unmarshal([]byte(res.stdout), &out) != nil || len(out) != 1 {
			t.Fatalf("hedge waf suggest %q: exit %d, %d suggestions\n%s%s", args, res.code, len(out), res.stdout, res.stderr)
		}
		return out[0]
	}
	one := suggest("-data", dirs[0])
	both := suggest("-data", dirs[0], "-data", dirs[1])
	if one.Requests != 4 || both.Requests != 8 || both.Bodies != 8 {
		t.Errorf("requests: one node %d, both %d (bodies %d); want 4, 8, 8", one.Requests, both.Requests, both.Bodies)
	}
	if len(one.HeldFields) != 1 || one.HeldFields[0].Field != "/promo" || strings.Contains(string(one.Schema), `"promo"`) {
		t.Errorf("one node: held %v, schema %s; want /promo held (one player sent it)", one.HeldFields, one.Schema)
	}
	if len(both.HeldFields) != 0 || !strings.Contains(string(both.Schema), `"promo"`) {
		t.Errorf("both nodes: held %v, schema %s; want /promo in the schema (two players sent it)", both.HeldFields, both.Schema)
	}
	if res := runHedge(t, dir, "waf", "suggest", "-data", dirs[0], "-data", filepath.Join(dir, "nowhere")); res.code != 1 || !strings.Contains(res.stderr, "nowhere") {
		t.Errorf("a data directory without models: exit %d, %s; want 1 and its path", res.code, res.stderr)
	}
}

// fetchLearned asks the admin API for the learned models with token and
// wants status; with 200 the answer must read as a model file, kept in file.
func fetchLearned(t *testing.T, admin, token string, status int, file string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+admin+"/admin/waf/learn", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status {
		t.Fatalf("GET /admin/waf/learn: %d %s; want %d", resp.StatusCode, b, status)
	}
	if status != http.StatusOK {
		return
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("GET /admin/waf/learn: Content-Type %q", ct)
	}
	writeFile(t, file, string(b))
	f, err := learn.ReadFile(file)
	if err != nil || len(f.Routes) != len(learnRoutes) {
		t.Fatalf("GET /admin/waf/learn answered no model file of %d routes: %v\n%.400s", len(learnRoutes), err, b)
	}
}
