package waf_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

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
    limits: {max_uri_bytes: 64, content_types: [application/json], max_args: 6}
    rate_limits:
      - {name: per-player, key: principal, principal: jwt, rate: 1/m, burst: 1}
  - name: tables
    kind: stream
    match: {path_prefix: /tables}
`

// identity is a request's verified principal, as the edge establishes it.
type identity string

func (i identity) Principal() []byte { return []byte(i) }

// TestGuardReturnsVerdicts: each layer decides and the guard answers
// nothing — the response stays untouched — while its verdict carries what
// the edge needs to answer and record the refusal: status, problem type,
// detail, headers and the event naming the layer and rule.
func TestGuardReturnsVerdicts(t *testing.T) {
	gs := testGuards(t, testConfig(t, verdictRoutes), testListener, nil, nil)
	client := benchClient // a browser's headers, from benchRequest
	denied := netip.MustParseAddr("203.0.113.9")
	bet := `{"table":"bacc-07","amount":"1.00","currency":"EUR","selection":"banker"}`
	scanner := "sqlmap/1.7.2#stable (https://sqlmap.org)"
	type request = benchRequest
	betReq := request{method: "POST", uri: "/api/bets", ct: "application/json", body: bet}
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
		{"URI length", "bets", client, request{method: "POST", uri: "/api/bets?" + strings.Repeat("a", 80), ct: "application/json", body: bet}, nil,
			414, "uri-too-long", waf.LayerShape, "max_uri_bytes", ""},
		{"content type", "bets", client, request{method: "POST", uri: "/api/bets", ct: "text/plain", body: "x"}, nil,
			415, "unsupported-media-type", waf.LayerShape, "content_types", "Accept-Post"},
		// The browser's four cookies and three parameters: seven arguments.
		{"argument count", "bets", client, request{method: "POST", uri: "/api/bets?a=1&b=2&c=3", ct: "application/json", body: bet}, nil,
			400, "too-many-args", waf.LayerShape, "max_args", ""},
		// (Past the rate limits: each from a player of its own.)
		{"schema", "bets", client, request{method: "POST", uri: "/api/bets", ct: "application/json",
			body: `{"table":"bacc-07","amount":"1.00","currency":"euro","selection":"banker"}`},
			identity("player-schema"), 422, "schema-violation", waf.LayerSchema, "", ""},
		{"rule engine", "bets", client, request{method: "POST", uri: "/api/bets", ct: "application/json",
			body: `{"table":"bacc-07","amount":"1.00","currency":"EUR","selection":"banker","comment":"1' UNION SELECT password FROM users --"}`},
			identity("player-crs"), 403, "request-blocked", waf.LayerCRS, "", ""},
		// Principal limits key by the identity the edge established: the
		// first bet of player-1 passes (burst 1), the second is over, and
		// player-2 from the same address has a bucket of its own.
		{"principal rate limit, first", "bets", client, betReq, identity("player-1"), 0, "", "", "", "RateLimit"},
		{"principal rate limit, over", "bets", client, betReq, identity("player-1"), 429, "rate-limited", waf.LayerRate, "per-player", "Retry-After"},
		{"principal rate limit, another player", "bets", client, betReq, identity("player-2"), 0, "", "", "", "RateLimit"},
		// A stream route's LL-HLS polls under its own prefix skip the rule
		// engine; the same scanner elsewhere on the route does not.
		{"LL-HLS under the route's prefix", "tables", client, request{method: "GET", uri: "/tables/bacc-07/hls/index.m3u8", userAgent: scanner},
			nil, 0, "", "", "", ""},
		{"a scanner off the LL-HLS shape", "tables", client, request{method: "GET", uri: "/tables/bacc-07/play.json", userAgent: scanner},
			nil, 403, "request-blocked", waf.LayerCRS, "", ""},
	}
	for _, c := range cases {
		c.req.name = c.name
		ctx := c.req.ctx(t)
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
