package gateway

import (
	"strings"
	"testing"
)

// argsConfig: a route with small argument limits of its own, a route that
// takes the listener's, and a schema route whose rule engine reads only the
// free-text fields.
const argsConfig = debugHead + `waf: {mode: block, paranoia_level: 1}
routes:
  - name: api
    match: {path_prefix: /api/}
    pool: games
    limits: {max_args: 8, max_arg_name_bytes: 32, max_arg_value_bytes: 64, max_args_bytes: 256, max_json_depth: 3}
  - name: inherits
    match: {path_prefix: /inherits}
    pool: games
  - name: bets
    match: {path_prefix: /bets, methods: [POST]}
    pool: games
    schema: {{SCHEMA}}
    limits: {content_types: [application/json], max_args: 2}
` + seaListener + `            tls: {mode: off}
            limits: {max_args: 4}
` + seaTail

// Requests over an argument limit are answered 400 with the limit's own
// problem type before the rule engine, counted by limit, and never reach
// the upstream; requests within the limits pass.
func TestArgumentLimits(t *testing.T) {
	g1 := newUpstream(t, "g1")
	schema := writeTemp(t, "bet.json", testBetSchema)
	e := startEdge(t, argsConfig, "{{G1}}", g1.addr(), "{{SCHEMA}}", schema)
	// n arguments pa=1, pb=1, … (or ca=1, …) joined by sep.
	args := func(n int, prefix, sep string) string {
		var b strings.Builder
		for i := range n {
			if i > 0 {
				b.WriteString(sep)
			}
			b.WriteString(prefix + string(rune('a'+i)) + "=1")
		}
		return b.String()
	}
	q := func(n int) string { return args(n, "p", "&") }
	cookies := func(n int) string { return args(n, "c", "; ") }
	const bet = `{"table_id":"0b9e1c8a-6a53-4f7e-9d0f-3c8e2a1b4d5f","amount":"12.50","currency":"EUR","comment":"gl hf"}`
	json := []string{"Content-Type", "application/json"}
	cases := []struct {
		name, method, path, body string
		hdr                      []string
		status                   int
		slug, rule               string
	}{
		{"within every limit", "GET", "/api/x?" + q(3), "", []string{"Cookie", cookies(2)}, 200, "", ""},
		{"query over max_args", "GET", "/api/x?" + q(9), "", nil, 400, "too-many-args", "max_args"},
		{"cookies over max_args", "GET", "/api/x", "", []string{"Cookie", cookies(9)}, 400, "too-many-args", "max_args"},
		{"query and cookies together over max_args", "GET", "/api/x?" + q(5), "", []string{"Cookie", cookies(4)}, 400, "too-many-args", "max_args"},
		{"JSON leaves over max_args", "POST", "/api/x", `{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9}`, json, 400, "too-many-args", "max_args"},
		{"form fields over max_args", "POST", "/api/x", q(9), []string{"Content-Type", "application/x-www-form-urlencoded"}, 400, "too-many-args", "max_args"},
		{"a name over max_arg_name_bytes", "GET", "/api/x?" + strings.Repeat("n", 33) + "=1", "", nil, 400, "arg-name-too-long", "max_arg_name_bytes"},
		{"a JSON path over max_arg_name_bytes", "POST", "/api/x", `{"` + strings.Repeat("k", 20) + `":{"` + strings.Repeat("k", 10) + `":1}}`, json, 400, "arg-name-too-long", "max_arg_name_bytes"},
		{"a value over max_arg_value_bytes", "GET", "/api/x?v=" + strings.Repeat("v", 65), "", nil, 400, "arg-value-too-long", "max_arg_value_bytes"},
		{"a cookie value over max_arg_value_bytes", "GET", "/api/x", "", []string{"Cookie", "sid=" + strings.Repeat("v", 65)}, 400, "arg-value-too-long", "max_arg_value_bytes"},
		{"names and values over max_args_bytes", "GET", "/api/x?a=" + strings.Repeat("v", 60) + "&b=" + strings.Repeat("v", 60) + "&c=" + strings.Repeat("v", 60) + "&d=" + strings.Repeat("v", 60) + "&e=" + strings.Repeat("v", 60), "", nil, 400, "args-too-large", "max_args_bytes"},
		{"JSON over max_json_depth", "POST", "/api/x", `{"a":{"b":{"c":{"d":1}}}}`, json, 400, "json-too-deep", "max_json_depth"},
		{"JSON at max_json_depth", "POST", "/api/x", `{"a":{"b":{"c":1}}}`, json, 200, "", ""},
		{"malformed JSON, refused before the rule engine reads it", "POST", "/api/x", `{"a":1 "b":2}`, json, 400, "malformed-body", "json"},
		{"the listener's max_args (4) on a route without its own", "GET", "/inherits?" + q(5), "", nil, 400, "too-many-args", "max_args"},
		{"the listener's max_args reached, not passed", "GET", "/inherits?" + q(4), "", nil, 200, "", ""},
		{"a schema route counts the free text the rule engine reads, not every field", "POST", "/bets", bet, json, 200, "", ""},
		{"... and its query with it", "POST", "/bets?" + q(2), bet, json, 400, "too-many-args", "max_args"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := g1.hits.Load()
			resp, body := do(t, c.method, e.url+c.path, "", c.body, c.hdr...)
			if c.status == 200 {
				if resp.StatusCode != 200 {
					t.Fatalf("want 200, got %d %s", resp.StatusCode, body)
				}
				return
			}
			wantProblem(t, resp, body, c.status, c.slug)
			if g1.hits.Load() != before {
				t.Fatal("a refused request reached the upstream")
			}
		})
	}
	metrics := grepLines(get(t, e.admin+"/metrics"), "hedge_waf_blocked_total{")
	for _, c := range cases {
		if c.rule == "" {
			continue
		}
		if l := grepLines(metrics, `rule="`+c.rule+`"`); !strings.Contains(l, `layer="shape"`) {
			t.Errorf("%s: no hedge_waf_blocked_total{layer=\"shape\",rule=%q}:\n%s", c.name, c.rule, metrics)
		}
	}
	if strings.Contains(metrics, `layer="crs"`) {
		t.Errorf("a request over an argument limit reached the rule engine:\n%s", metrics)
	}
}
