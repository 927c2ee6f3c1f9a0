package waf_test

import (
	"bufio"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
	"go.yaml.in/yaml/v3"

	"hedge/configs"
	"hedge/waf"
)

// verdictRoutes are routes whose every layer can refuse: each test request
// below is refused by exactly one of them.
const verdictRoutes = `
waf: {mode: block, paranoia_level: 1}
routes:
  - name: bets
    kind: ledger
    match: {path_prefix: /api/bets}
    schema: builtin:bet
    acl: {deny: [203.0.113.0/24]}
    limits: {max_uri_bytes: 64, content_types: [application/json], max_args: 3}
    rate_limits:
      - {name: per-player, key: principal, principal: jwt, rate: 1/m, burst: 1}
  - name: tables
    kind: stream
    match: {path_prefix: /tables}
`

// identity is a request's verified principal, as the edge establishes it.
type identity string

func (i identity) Principal() []byte { return []byte(i) }

func verdictGuards(t *testing.T) map[string]*waf.Guard {
	t.Helper()
	var cfg configs.Config
	if err := yaml.Unmarshal([]byte(verdictRoutes), &cfg); err != nil {
		t.Fatal(err)
	}
	configs.ApplyDefaults(&cfg)
	cache := waf.NewCache()
	t.Cleanup(cache.Close)
	var held waf.Held
	t.Cleanup(held.Release)
	l := configs.Listener{Name: "public", Limits: configs.Limits{MaxBodyBytes: 1 << 20}}
	out := map[string]*waf.Guard{}
	for _, r := range cfg.Routes {
		g, err := cache.Guard(&cfg, waf.Scope{Region: "r", Node: "n", Listener: "public"}, l, r, nil, &held)
		if err != nil {
			t.Fatal(err)
		}
		out[r.Name] = g
	}
	return out
}

// verdictRequest is a request as a client sends it: its header block goes
// through fasthttp's parser.
func verdictRequest(t *testing.T, client netip.Addr, method, uri, ct, body, userAgent string) *fasthttp.RequestCtx {
	t.Helper()
	raw := method + " " + uri + " HTTP/1.1\r\nHost: play.edge.test\r\nUser-Agent: " + userAgent + "\r\nAccept: */*\r\n"
	if body != "" {
		raw += "Content-Type: " + ct + "\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n"
	}
	var req fasthttp.Request
	if err := req.Header.Read(bufio.NewReader(strings.NewReader(raw + "\r\n"))); err != nil {
		t.Fatal(err)
	}
	req.SetBodyString(body)
	ctx := &fasthttp.RequestCtx{}
	ctx.Init(&req, &net.TCPAddr{IP: client.AsSlice(), Port: 40000}, nil)
	return ctx
}

// TestGuardReturnsVerdicts: each layer decides and the guard answers
// nothing — the response stays untouched — while its verdict carries what
// the edge needs to answer and record the refusal: status, problem type,
// detail, headers and the event naming the layer and rule.
func TestGuardReturnsVerdicts(t *testing.T) {
	gs := verdictGuards(t)
	client := netip.MustParseAddr("198.51.100.7")
	denied := netip.MustParseAddr("203.0.113.9")
	bet := `{"table":"bacc-07","amount":"1.00","currency":"EUR","selection":"banker"}`
	type request struct {
		method, uri, ct, body string
	}
	betReq := request{"POST", "/api/bets", "application/json", bet}
	cases := []struct {
		name   string
		route  string
		client netip.Addr
		req    request
		who    waf.Identity
		status int
		slug   string
		layer  waf.Layer
		rule   string // the event's Rule, or its Policy for rate limits
		header string // a header the answer must carry
	}{
		{"route ACL", "bets", denied, betReq, nil, 403, "address-denied", waf.LayerACL, "", ""},
		{"URI length", "bets", client, request{"POST", "/api/bets?" + strings.Repeat("a", 80), "application/json", bet}, nil,
			414, "uri-too-long", waf.LayerShape, "max_uri_bytes", ""},
		{"content type", "bets", client, request{"POST", "/api/bets", "text/plain", "x"}, nil,
			415, "unsupported-media-type", waf.LayerShape, "content_types", "Accept-Post"},
		{"argument count", "bets", client, request{"POST", "/api/bets?a=1&b=2&c=3&d=4", "application/json", bet}, nil,
			400, "too-many-args", waf.LayerShape, "max_args", ""},
		// (Past the rate limits: each from a player of its own.)
		{"schema", "bets", client, request{"POST", "/api/bets", "application/json", `{"table":"bacc-07","amount":"1.00","currency":"euro","selection":"banker"}`},
			identity("player-schema"), 422, "schema-violation", waf.LayerSchema, "", ""},
		{"rule engine", "bets", client, request{"POST", "/api/bets", "application/json",
			`{"table":"bacc-07","amount":"1.00","currency":"EUR","selection":"banker","comment":"1' UNION SELECT password FROM users --"}`},
			identity("player-crs"), 403, "request-blocked", waf.LayerCRS, "", ""},
		// Principal limits key by the identity the edge established: the
		// first bet of player-1 passes (burst 1), the second is over, and
		// player-2 from the same address has a bucket of its own.
		{"principal rate limit, first", "bets", client, betReq, identity("player-1"), 0, "", "", "", "RateLimit"},
		{"principal rate limit, over", "bets", client, betReq, identity("player-1"), 429, "rate-limited", waf.LayerRate, "per-player", "Retry-After"},
		{"principal rate limit, another player", "bets", client, betReq, identity("player-2"), 0, "", "", "", "RateLimit"},
		// A stream route's LL-HLS polls under its own prefix skip the rule
		// engine; the same scanner elsewhere on the route does not.
		{"LL-HLS under the route's prefix", "tables", client, request{"GET", "/tables/bacc-07/hls/index.m3u8", "", ""},
			nil, 0, "", "", "", ""},
		{"a scanner off the LL-HLS shape", "tables", client, request{"GET", "/tables/bacc-07/play.json", "", ""},
			nil, 403, "request-blocked", waf.LayerCRS, "", ""},
	}
	for _, c := range cases {
		ua := "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0"
		if c.route == "tables" {
			ua = "sqlmap/1.7.2#stable (https://sqlmap.org)"
		}
		ctx := verdictRequest(t, c.client, c.req.method, c.req.uri, c.req.ct, c.req.body, ua)
		pass, v := gs[c.route].Admit(ctx, []byte("req-1"), c.client, c.who)
		if got := ctx.Response.StatusCode(); got != 200 || len(ctx.Response.Body()) > 0 {
			t.Errorf("%s: the guard answered (%d %q); it must only decide", c.name, got, ctx.Response.Body())
		}
		if c.status == 0 {
			if !v.Allowed() {
				t.Errorf("%s: want allowed, got %d %s (%s) %+v", c.name, v.Type.Status, v.Type.Slug, v.Detail, v.Event.Matches)
				continue
			}
			gs[c.route].Finish(ctx, pass, []byte("req-1"), c.client)
			if c.header != "" && len(ctx.Response.Header.Peek(c.header)) == 0 {
				t.Errorf("%s: want %s on the admitted request's response, got none", c.name, c.header)
			}
			continue
		}
		if v.Allowed() || v.Type.Status != c.status || v.Type.Slug != c.slug {
			t.Errorf("%s: want %d %s, got %d %q", c.name, c.status, c.slug, v.Type.Status, v.Type.Slug)
			continue
		}
		ev := v.Event
		rule := ev.Rule
		if ev.Layer == waf.LayerRate {
			rule = ev.Policy
		}
		if ev.Layer != c.layer || rule != c.rule || !ev.Blocked || ev.Status != c.status || ev.Route != c.route ||
			string(ev.ID) != "req-1" || ev.Client != c.client || string(ev.Path) != strings.Split(c.req.uri, "?")[0] {
			t.Errorf("%s: want a blocked event of layer %s rule %q for route %s, got %+v", c.name, c.layer, c.rule, c.route, ev)
		}
		if c.layer == waf.LayerCRS && len(ev.Matches) == 0 {
			t.Errorf("%s: the rule engine's event names no matched rule", c.name)
		}
		if c.header != "" {
			h := &fasthttp.ResponseHeader{}
			v.SetHeaders(h)
			if len(h.Peek(c.header)) == 0 && !(v.Header == c.header && v.Value != "") {
				t.Errorf("%s: want the refusal to carry %s, got none (%+v)", c.name, c.header, v.Refusal)
			}
		}
	}
}
