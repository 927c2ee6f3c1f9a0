//go:build !race

// The corpus runs hundreds of requests through the Core Rule Set, which the
// race detector slows tenfold; `make test` runs it in a pass without -race.

package waf_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"hedge/waf"
)

//go:generate go run ./testdata/corpusgen -o ./testdata/corpus/requests.jsonl

const corpusFile = "testdata/corpus/requests.jsonl"

// corpusRequest is one line of the corpus (see waf/testdata/corpusgen).
type corpusRequest struct {
	Name    string      `json:"name"`
	Kind    string      `json:"kind"`
	Schema  string      `json:"schema"`
	Method  string      `json:"method"`
	URI     string      `json:"uri"`
	Headers [][2]string `json:"headers"`
	Body    string      `json:"body"`
}

func loadCorpus(t testing.TB) []corpusRequest {
	t.Helper()
	b, err := os.ReadFile(corpusFile)
	if err != nil {
		t.Fatal(err)
	}
	var reqs []corpusRequest
	for i, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		var r corpusRequest
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("%s:%d: %v", corpusFile, i+1, err)
		}
		if r.Name == "" || r.Method == "" || !strings.HasPrefix(r.URI, "/") || !slices.Contains([]string{"money", "proxy", "stream"}, r.Kind) {
			t.Fatalf("%s:%d: incomplete request %+v", corpusFile, i+1, r)
		}
		reqs = append(reqs, r)
	}
	return reqs
}

func (r corpusRequest) ctx(t testing.TB, client netip.Addr) *fasthttp.RequestCtx {
	t.Helper()
	var raw strings.Builder
	raw.WriteString(r.Method + " " + r.URI + " HTTP/1.1\r\n")
	for _, h := range r.Headers {
		raw.WriteString(h[0] + ": " + h[1] + "\r\n")
	}
	if r.Body != "" {
		raw.WriteString("Content-Length: " + strconv.Itoa(len(r.Body)) + "\r\n")
	}
	raw.WriteString("\r\n")
	var req fasthttp.Request
	if err := req.Header.Read(bufio.NewReader(strings.NewReader(raw.String()))); err != nil {
		t.Fatalf("%s: fasthttp does not parse the request: %v", r.Name, err)
	}
	if r.Body != "" {
		req.SetBodyString(r.Body)
	}
	ctx := &fasthttp.RequestCtx{}
	ctx.Init(&req, &net.TCPAddr{IP: client.AsSlice(), Port: 41000}, nil)
	return ctx
}

// corpusRoutes are the routes a betting platform's edge would have, with
// hedge's shipped defaults (block mode, paranoia level 1) and only what a
// route must say about itself: the money routes' schemas, that the REST
// API allows PUT, PATCH and DELETE and takes JSON merge patches, and the
// support route's per-field exclusions — what `hedge waf suggest` derived
// from this corpus in learn mode: players quoting the app's "Union of
// Bets" and "select from list" in /message trip two SQL-injection rules,
// which no longer read that field (every other rule still does).
const corpusRoutes = `
routes:
  - {name: bets, kind: ledger, schema: "builtin:bet"}
  - {name: cashier, kind: ledger, schema: "builtin:cashier-deposit"}
  - {name: balance, kind: ledger}
  - name: api
    limits: {content_types: [application/json, application/merge-patch+json]}
    waf: {allowed_methods: [GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS]}
  - {name: live, kind: stream, match: {path_prefix: /live/}}
  - name: support
    limits: {content_types: [application/json]}
    waf: {exclude_fields: [{field: /message, ids: [942190, 942270]}]}
`

// guards builds, as the gateway does, one guard per corpus route at
// paranoia level pl.
func guards(t *testing.T, cache *waf.Cache, held *waf.Held, pl int) map[string]*waf.Guard {
	t.Helper()
	cfg := testConfig(t, corpusRoutes)
	cfg.WAF.ParanoiaLevel = pl
	return testGuards(t, cfg, testListener, cache, held)
}

// group is the kind of route a request is for: its name without the
// number (support-007 is a support request).
func (r corpusRequest) group() string {
	return strings.TrimRight(strings.TrimRight(r.Name, "0123456789"), "-")
}

func routeOf(r corpusRequest) string {
	switch {
	case r.Schema == "builtin:bet":
		return "bets"
	case r.Schema == "builtin:cashier-deposit":
		return "cashier"
	case r.Kind == "money":
		return "balance"
	case r.Kind == "stream":
		return "live"
	case r.group() == "support":
		return "support"
	}
	return "api"
}

// TestCorpusPassesShippedDefaults runs every ordinary request of the corpus
// through the protective layer as the gateway builds it — shape limits, the
// money routes' schemas (their bodies reduced to the free-text fields), the
// Core Rule Set in block mode at the shipped paranoia level 1 — and
// requires zero stops. It reports how many paranoia level 2 would stop.
func TestCorpusPassesShippedDefaults(t *testing.T) {
	reqs := loadCorpus(t)
	if len(reqs) < 500 {
		t.Fatalf("the corpus has %d requests; want at least 500", len(reqs))
	}
	kinds, groups := map[string]int{}, map[string]int{}
	for _, r := range reqs {
		kinds[r.Kind]++
		groups[r.group()]++
	}
	if len(groups) < 10 {
		t.Fatalf("the corpus has %d kinds of routes (%v); want at least 10", len(groups), groups)
	}
	for _, k := range []string{"money", "proxy", "stream"} {
		if kinds[k] < 30 {
			t.Fatalf("the corpus has %d %s requests; want at least 30 (kinds: %v)", kinds[k], k, kinds)
		}
	}
	cache := waf.NewCache()
	defer cache.Close()
	var held waf.Held
	defer held.Release()
	client := netip.MustParseAddr("198.51.100.23")

	run := func(pl int, reqs []corpusRequest) (stopped []string) {
		gs := guards(t, cache, &held, pl)
		for i, r := range reqs {
			ctx := r.ctx(t, client)
			g := gs[routeOf(r)]
			pass, v := g.Admit(ctx, []byte(fmt.Sprintf("corpus-%d", i)), client, nil)
			if !v.Allowed() {
				stopped = append(stopped, fmt.Sprintf("%s (%s %s %s → route %s): %d %s %s", r.Name, r.Kind, r.Method, r.URI, routeOf(r),
					v.Type.Status, v.Type.Slug, v.Detail))
				continue
			}
			g.Finish(ctx, pass, nil, client)
		}
		return stopped
	}

	// Control: the same pipeline stops an attack in a free-text field of a
	// bet, so a pass means the fields were inspected, not skipped.
	attack := corpusRequest{Name: "control-sqli", Kind: "money", Schema: "builtin:bet", Method: "POST", URI: "/api/bets",
		Headers: [][2]string{{"Host", "play.edge.test"}, {"Content-Type", "application/json"}},
		Body:    `{"table":"bacc-07","amount":"1.00","currency":"EUR","selection":"tie","comment":"1' UNION SELECT password FROM users WHERE '1'='1"}`}
	if got := run(1, []corpusRequest{attack}); len(got) != 1 || !strings.Contains(got[0], "request-blocked") {
		t.Fatalf("control: a SQL injection in a bet's comment must be blocked at PL1; got %v", got)
	}
	// And in the support message, whose exclusions leave the other rules on.
	ticket := corpusRequest{Name: "support-900", Kind: "proxy", Method: "POST", URI: "/api/support/tickets",
		Headers: [][2]string{{"Host", "play.edge.test"}, {"Content-Type", "application/json"}},
		Body:    `{"category":"betting","subject":"Cash out","message":"1' UNION SELECT password FROM users WHERE '1'='1"}`}
	if got := run(1, []corpusRequest{ticket}); len(got) != 1 || !strings.Contains(got[0], "request-blocked") || !strings.Contains(got[0], "route support") {
		t.Fatalf("control: a SQL injection in a support message must be blocked at PL1 on route support; got %v", got)
	}

	pl1 := run(1, reqs)
	if len(pl1) > 0 {
		t.Errorf("PL1 stops %d of %d ordinary requests; want 0:\n  %s", len(pl1), len(reqs), strings.Join(pl1, "\n  "))
	}
	pl2 := run(2, reqs)
	t.Logf("corpus: %d requests (%v; %d kinds of routes: %v); PL1 stops %d; PL2 would stop %d", len(reqs), kinds, len(groups), groups, len(pl1), len(pl2))
	for _, s := range pl2 {
		t.Logf("  PL2: %s", s)
	}
}
