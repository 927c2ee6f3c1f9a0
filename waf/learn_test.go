package waf_test

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"hedge/waf"
	"hedge/waf/learn"
)

// supportMessages are what players write to support, quoting the app's
// own words; the last two trip CRS SQL-injection rules at PL1 (942190,
// 942270) on "Union of Bets' … 'select from list'".
var supportMessages = []string{
	"I clicked 'Cash out' and it said: Selection -- suspended",
	"Bet rejected: \"Odds changed\" -- please accept new odds (1.95 -> 2.10)",
	"Why was my bet voided? It said 'Market closed; stake returned'",
	"I'd like to know why my withdrawal of 100 EUR is 'pending' for 3 days",
	"My name is O'Connor and the form says 'invalid characters in name' -- can you update it to O'Connor?",
	"why does the app say 'Union of Bets' when I open the acca builder? also 'select from list' is empty",
	"The 'Union of Bets' screen: select from the list of legs -- nothing shows",
}

const sqli = "1' UNION SELECT password FROM users WHERE '1'='1"

func supportBody(i int, msg string) string {
	b, _ := json.Marshal(map[string]any{
		"ticket_id": fmt.Sprintf("T-%05d", 10000+i*7), "category": []string{"betting", "payments", "account"}[i%3],
		"message": msg, "order": i % 4, "urgent": i%5 == 0})
	return string(b)
}

// TestLearnSuggestApply learns a support route from players' tickets and
// one client's burst of attacks, takes the suggestion — a schema and
// per-field exclusions — into the configuration, and checks the result:
// the tickets pass in block mode, the attacker's burst suggested nothing,
// and an injection is still refused in every field, by the schema or by
// the rules the exclusions left on.
func TestLearnSuggestApply(t *testing.T) {
	gs := testGuards(t, testConfig(t, `
routes:
  - name: support
    limits: {content_types: [application/json]}
    waf: {mode: learn}
`), testListener, nil, nil)
	g := gs["support"]
	send := func(g *waf.Guard, client netip.Addr, uri, body string) (allowed bool, status int) {
		ctx := benchRequest{name: "support", method: "POST", uri: uri, ct: "application/json", body: body}.ctx(t)
		pass, v := g.Admit(ctx, []byte("t"), client, nil)
		if !v.Allowed() {
			return false, v.Type.Status
		}
		g.Finish(ctx, pass, []byte("t"), client)
		return true, 0
	}
	type req struct {
		client netip.Addr
		body   string
	}
	var benign []req
	for i := range 28 {
		benign = append(benign, req{netip.AddrFrom4([4]byte{198, 51, 100, byte(i % 9)}), supportBody(i, supportMessages[i%len(supportMessages)])})
	}
	attacker := netip.MustParseAddr("203.0.113.66")
	for _, r := range benign {
		if ok, st := send(g, r.client, "/api/support/tickets?lang=en", r.body); !ok {
			t.Fatalf("learn mode refused a ticket with %d: %s", st, r.body)
		}
	}
	for i := range 5 {
		if ok, st := send(g, attacker, "/api/support/tickets?lang=en", supportBody(i, sqli)); !ok {
			t.Fatalf("learn mode must let the rule engine's matches through (detect); got %d", st)
		}
	}

	sg := learn.Suggest(g.Model(), learn.Options{})
	var out strings.Builder
	sg.Write(&out, "")
	t.Logf("suggestion:\n%s", out.String())
	if sg.Schema == nil || !slices.Equal(sg.FreeText, []string{"/message"}) {
		t.Fatalf("want a schema with one free-text field /message; got free text %v, schema %s", sg.FreeText, sg.Schema)
	}
	if len(sg.Exclusions) != 1 || sg.Exclusions[0].Field != "/message" || !slices.Equal(sg.Exclusions[0].IDs, []int{942190, 942270}) {
		t.Fatalf("want one exclusion {/message [942190 942270]} (the players' pattern); got %+v", sg.Exclusions)
	}
	for _, e := range sg.Exclusions[0].Evidence {
		if e.Clients < 2 || e.Requests < 2 {
			t.Errorf("exclusion evidence %+v: want the counts of several clients", e)
		}
	}
	heldBurst := false
	for _, h := range sg.Held {
		if h.Rule == 942100 && h.Clients == 1 && h.Requests == 5 {
			heldBurst = true
		}
	}
	if !heldBurst {
		t.Errorf("the attacker's burst (942100, 5 requests, 1 client) must be held with its counts; held: %+v", sg.Held)
	}

	file := filepath.Join(t.TempDir(), "support.schema.json")
	if err := os.WriteFile(file, sg.Schema, 0o600); err != nil {
		t.Fatal(err)
	}
	ids, _ := json.Marshal(sg.Exclusions[0].IDs)
	applied := testGuards(t, testConfig(t, fmt.Sprintf(`
routes:
  - name: support
    schema: %s
    limits: {content_types: [application/json]}
    waf:
      mode: block
      exclude_fields: [{field: /message, ids: %s}]
  - name: unlearned
    limits: {content_types: [application/json]}
`, file, ids)), testListener, nil, nil)
	for _, r := range benign {
		if ok, st := send(applied["support"], r.client, "/api/support/tickets?lang=en", r.body); !ok {
			t.Errorf("after applying the suggestion a ticket is refused with %d: %s", st, r.body)
		}
	}
	// Without the suggestion, the same tickets are blocked: the exclusion
	// is what lets them pass.
	blocked := 0
	for _, r := range benign {
		if ok, _ := send(applied["unlearned"], r.client, "/api/support/tickets", r.body); !ok {
			blocked++
		}
	}
	if blocked == 0 {
		t.Errorf("the tickets pass a route without the suggestion too: the test proves nothing")
	}
	cases := []struct {
		name, body string
		status     int
	}{
		{"in the free text (the rules left on)", `{"ticket_id":"T-10000","category":"betting","message":"` + sqli + `","order":1,"urgent":false}`, 403},
		{"in an identifier", `{"ticket_id":"` + sqli + `","category":"betting","message":"hi","order":1,"urgent":false}`, 422},
		{"in an enum", `{"ticket_id":"T-10000","category":"` + sqli + `","message":"hi","order":1,"urgent":false}`, 422},
		{"in a number", `{"ticket_id":"T-10000","category":"betting","message":"hi","order":"` + sqli + `","urgent":false}`, 422},
		{"in an unknown field", `{"ticket_id":"T-10000","category":"betting","message":"hi","order":1,"urgent":false,"x":"` + sqli + `"}`, 422},
	}
	for _, c := range cases {
		if ok, st := send(applied["support"], attacker, "/api/support/tickets", strings.ReplaceAll(c.body, "'", "'")); ok || st != c.status {
			t.Errorf("%s: want %d; got allowed=%v status %d", c.name, c.status, ok, st)
		}
	}
}

// TestExcludeFieldsTargetOneArgument: a field exclusion takes exactly that
// argument out of the named rules — any index of an array, a query
// parameter — on a route with and without a schema, and nothing else: the
// same words in a sibling field or another parameter are still blocked.
func TestExcludeFieldsTargetOneArgument(t *testing.T) {
	file := filepath.Join(t.TempDir(), "items.schema.json")
	if err := os.WriteFile(file, []byte(`{"type":"object","properties":{"items":{"type":"array","items":{"type":"object","properties":{"text":{"type":"string"},"note":{"type":"string"}}}}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	const excl = `[{field: /items/*/text, ids: [942190, 942270]}, {field: "?q", ids: [942190, 942270]}]`
	gs := testGuards(t, testConfig(t, `
routes:
  - {name: plain, limits: {content_types: [application/json]}, waf: {exclude_fields: `+excl+`}}
  - {name: schema, schema: `+file+`, limits: {content_types: [application/json]}, waf: {exclude_fields: `+excl+`}}
`), testListener, nil, nil)
	fp := supportMessages[5] // trips 942190 and 942270
	body := func(field string) string {
		b, _ := json.Marshal(map[string]any{"items": []map[string]string{{"text": "hi"}, {field: fp}}})
		return string(b)
	}
	client := netip.MustParseAddr("198.51.100.4")
	for _, route := range []string{"plain", "schema"} {
		for _, c := range []struct {
			name, uri, body string
			allowed         bool
		}{
			{"excluded field, second item", "/t", body("text"), true},
			{"sibling field", "/t", body("note"), false},
			{"excluded parameter", "/t?q=" + url.QueryEscape(fp), `{}`, true},
			{"another parameter", "/t?r=" + url.QueryEscape(fp), `{}`, false},
		} {
			ctx := benchRequest{name: c.name, method: "POST", uri: c.uri, ct: "application/json", body: c.body}.ctx(t)
			pass, v := gs[route].Admit(ctx, nil, client, nil)
			if v.Allowed() != c.allowed {
				t.Errorf("route %s, %s: allowed %v; want %v (%d %s)", route, c.name, v.Allowed(), c.allowed, v.Type.Status, v.Detail)
			}
			if v.Allowed() {
				gs[route].Finish(ctx, pass, nil, client)
			}
		}
	}
}
