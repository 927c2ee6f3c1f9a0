package learn

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"hedge/waf/crs"
	"hedge/waf/schema"
)

func TestFieldOf(t *testing.T) {
	for _, c := range []struct{ v, want string }{
		{"ARGS:json.comment", "/comment"},
		{"ARGS:json.items.0.text", "/items/*/text"},
		{"ARGS:json./items/3/text", "/items/*/text"}, // a schema route's reduced document
		{"ARGS_POST:json.note", "/note"},
		{"ARGS:q", "?q"},
		{"ARGS_GET:q", "?q"},
		{"ARGS_POST:name", ""},
		{"REQUEST_HEADERS:user-agent", ""},
		{"ARGS_NAMES:json.x", ""},
		{"REQUEST_FILENAME", ""},
	} {
		if got := FieldOf(c.v); got != c.want {
			t.Errorf("FieldOf(%q) = %q; want %q", c.v, got, c.want)
		}
	}
}

// Whatever clients send, a model stays within its bounds and counts what
// it could not keep.
func TestModelBounds(t *testing.T) {
	m := NewModel("r")
	a := netip.MustParseAddr("198.51.100.1")
	// /f0 first, so that it is kept whichever fields of the next body the
	// walk reaches first (its order is the decoder's map order).
	m.Observe(nil, "application/json", []byte(`{"f0":"v"}`), a, nil)
	// Fields: one request with far more fields than MaxFields.
	var b strings.Builder
	b.WriteByte('{')
	for i := range MaxFields + 50 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"f%d":%d`, i, i)
	}
	b.WriteByte('}')
	m.Observe(nil, "application/json", []byte(b.String()), a, nil)
	// Values: one field with ever new values; a value too long to be an enum.
	for i := range MaxValues * 4 {
		m.Observe(nil, "application/json", []byte(fmt.Sprintf(`{"f0":"v%d"}`, i)), a, nil)
	}
	// Depth (on a model with room for the fields).
	deep := NewModel("deep")
	deep.Observe(nil, "application/json", []byte(`{"deep":`+strings.Repeat("[", MaxDepth+5)+strings.Repeat("]", MaxDepth+5)+`}`), a, nil)
	// Query parameters.
	var q strings.Builder
	for i := range MaxParams + 10 {
		fmt.Fprintf(&q, "p%d=1&", i)
	}
	m.Observe([]byte(q.String()), "", nil, a, nil)
	// Pairs and clients.
	for i := range MaxPairs + 20 {
		m.Observe(nil, "", nil, netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}),
			[]crs.Match{{ID: 942100, Vars: []string{fmt.Sprintf("ARGS:json.f%d", i)}}, {ID: 942200, Vars: []string{"ARGS:json.x"}}, {ID: 949110}})
	}
	if len(m.Fields) > MaxFields || m.Dropped.Fields == 0 {
		t.Errorf("fields: %d kept, %d dropped; want at most %d kept and the rest counted", len(m.Fields), m.Dropped.Fields, MaxFields)
	}
	if f := m.Fields["/f0"]; f == nil || !f.Many || f.Values != nil || m.Dropped.Values == 0 {
		t.Errorf("/f0 saw %d distinct values: want Many with no values kept; got %+v", MaxValues*4, f)
	}
	if len(m.Params) != MaxParams || m.Dropped.Params != 10 {
		t.Errorf("params: %d kept, %d dropped; want %d and 10", len(m.Params), m.Dropped.Params, MaxParams)
	}
	if deep.Dropped.Leaves == 0 || len(deep.Fields) > MaxDepth {
		t.Errorf("a body nested %d deep was walked whole; want it cut at %d and counted", MaxDepth+5, MaxDepth)
	}
	if len(m.Pairs) != MaxPairs || m.Dropped.Pairs == 0 {
		t.Errorf("pairs: %d kept, %d dropped; want %d and the rest counted", len(m.Pairs), m.Dropped.Pairs, MaxPairs)
	}
	for _, p := range m.Pairs {
		if p.Rule == 949110 {
			t.Errorf("the anomaly score rule was recorded as a pair: %+v", p)
		}
		if p.Var == "ARGS:json.x" && (len(p.Clients) != MaxClients || !p.ManyClients || p.Requests != MaxPairs+20) {
			t.Errorf("942200 in /x: %d clients kept (many: %v), %d requests; want %d, true, %d", len(p.Clients), p.ManyClients, p.Requests, MaxClients, MaxPairs+20)
		}
	}
}

// The suggested schema compiles, accepts every body it was learned from,
// pins identifiers, enums, formats and numbers down and leaves free text
// to the rule engine; unknown fields and wrong types are refused.
func TestSuggestedSchema(t *testing.T) {
	m := NewModel("tickets")
	msgs := []string{"I clicked 'Cash out' -- Selection suspended", "Where is my payout?", "Bonus not credited (ref 12)", "Hi", "Danke!"}
	var bodies []string
	for i := range 30 {
		b, _ := json.Marshal(map[string]any{
			"id": fmt.Sprintf("01J%07d", i*37), "category": []string{"betting", "payments", "account"}[i%3],
			"ref": fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", i, i, i, i, i), "created": fmt.Sprintf("2026-05-%02dT10:00:00Z", i%28+1),
			"amount": fmt.Sprintf("%d.%02d", i+1, i%100), "stake": i * 3, "odds": 1.5 + float64(i)/10, "urgent": i%2 == 0,
			"message": msgs[i%len(msgs)] + strings.Repeat("!", i), "tags": []string{"a", "b"}[:i%3%2+1]})
		bodies = append(bodies, string(b))
		m.Observe([]byte("lang=en&page="+fmt.Sprint(i)), "application/json", b, netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), nil)
	}
	s := Suggest(m, Options{})
	if s.Schema == nil {
		t.Fatal("no schema")
	}
	t.Logf("%s", s.Schema)
	sch, err := schema.CompileBytes("learned", s.Schema)
	if err != nil {
		t.Fatalf("the suggested schema does not compile: %v", err)
	}
	for _, b := range bodies {
		if v := sch.Check([]byte(b)); v != nil {
			t.Fatalf("a learned body breaks the suggested schema: %v: %s", v, b)
		}
	}
	if !slices.Equal(s.FreeText, []string{"/message"}) {
		t.Errorf("free text: got %v; want [/message]", s.FreeText)
	}
	if red := string(sch.Reduce(nil, []byte(bodies[7]))); !strings.HasPrefix(red, `{"/message":`) || strings.Count(red, `":`) != 1 {
		t.Errorf("the rule engine should read only /message; the reduced document is %s", red)
	}
	for _, c := range []struct{ name, body string }{
		{"unknown field", strings.Replace(bodies[0], `{`, `{"x":"1",`, 1)},
		{"identifier", strings.Replace(bodies[0], `"id":"01J0000000"`, `"id":"1' OR '1'='1"`, 1)},
		{"enum", strings.Replace(bodies[0], `"category":"betting"`, `"category":"casino"`, 1)},
		{"uuid", strings.Replace(bodies[0], `"ref":"00000000-0000-4000-8000-000000000000"`, `"ref":"x"`, 1)},
		{"date-time", strings.Replace(bodies[0], `"created":"2026-05-01T10:00:00Z"`, `"created":"yesterday"`, 1)},
		{"amount", strings.Replace(bodies[0], `"amount":"1.00"`, `"amount":"1e9"`, 1)},
		{"integer", strings.Replace(bodies[0], `"stake":0`, `"stake":0.5`, 1)},
		{"boolean", strings.Replace(bodies[0], `"urgent":true`, `"urgent":"yes"`, 1)},
		{"required", strings.Replace(bodies[0], `,"urgent":true`, ``, 1)},
	} {
		if c.body == bodies[0] {
			t.Fatalf("%s: the replacement did not apply to %s", c.name, bodies[0])
		}
		if v := sch.Check([]byte(c.body)); v == nil {
			t.Errorf("%s: the suggested schema accepts %s", c.name, c.body)
		}
	}
	if len(s.Params) != 2 || s.Params[0].Name != "lang" || !strings.Contains(s.Params[0].Shape, `"enum":["en"]`) {
		t.Errorf("query parameters: got %+v; want lang (an enum) and page", s.Params)
	}
}

// A store written on Close is what the next Open continues from, and
// ReadFile reads it; the write is atomic (no temporary file left behind).
func TestStorePersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "waf", "learn.json")
	st, err := Open(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	st.Model("support").Observe([]byte("q=a"), "application/json", []byte(`{"n":1}`), netip.MustParseAddr("198.51.100.1"),
		[]crs.Match{{ID: 942100, Vars: []string{"ARGS:q"}}})
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatalf("a second Close: %v", err)
	}
	st2, err := Open(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	st2.Model("support").Observe(nil, "application/json", []byte(`{"n":2}`), netip.MustParseAddr("198.51.100.2"), nil)
	if err := st2.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Routes) != 1 || f.Routes[0].Requests != 2 || f.Routes[0].Fields["/n"].Max != 2 || len(f.Routes[0].Pairs) != 1 || f.Routes[0].Pairs[0].Field != "?q" {
		b, _ := json.Marshal(f)
		t.Errorf("after two runs: want route support with 2 requests, /n up to 2 and the pair 942100 in ?q; got %s", b)
	}
	ents, _ := os.ReadDir(filepath.Dir(path))
	if len(ents) != 1 {
		t.Errorf("the store's directory holds %d entries; want only learn.json", len(ents))
	}
}

// TestEncodeIsTheSavedFile: what the admin API serves (Encode) reads back
// as the store's file does, while the store keeps learning; a store that
// models no route encodes no routes and saves no file.
func TestEncodeIsTheSavedFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "learn.json")
	st, err := Open(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	empty, err := st.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if f := readBytes(t, dir, empty); len(f.Routes) != 0 || f.Version != 1 {
		t.Errorf("an empty store encodes %s", empty)
	}
	if err := st.Save(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("an empty store saved a file (%v)", err)
	}
	for i, route := range []string{"wallet", "support"} {
		st.Model(route).Observe([]byte("q=a"), "application/json", []byte(`{"n":1}`), netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}),
			[]crs.Match{{ID: 942100, Vars: []string{"ARGS:q"}}})
	}
	live, err := st.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	saved, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got := readBytes(t, dir, live)
	got.Saved, saved.Saved = "", ""
	a, _ := json.Marshal(got)
	b, _ := json.Marshal(saved)
	if string(a) != string(b) || len(got.Routes) != 2 || got.Routes[0].Route != "support" {
		t.Errorf("Encode read back:\n%s\nthe saved file:\n%s", a, b)
	}
}

// TestReadFileRefusesOtherJSON: an admin API's error answer saved in place
// of the models is JSON too; it must not read as a file of no routes.
func TestReadFileRefusesOtherJSON(t *testing.T) {
	p := filepath.Join(t.TempDir(), "sea-1.learn.json")
	problem := `{"type":"urn:hedge:problem:admin-role-missing","title":"The admin token lacks the role this needs","status":403}`
	if err := os.WriteFile(p, []byte(problem), 0o600); err != nil {
		t.Fatal(err)
	}
	if f, err := ReadFile(p); err == nil || !strings.Contains(err.Error(), "not a file of learned models") {
		t.Fatalf("a problem+json answer read as %+v, %v; want it refused", f, err)
	}
}

// readBytes reads an encoded store through ReadFile.
func readBytes(t *testing.T, dir string, b []byte) *File {
	t.Helper()
	p := filepath.Join(dir, "encoded.json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := ReadFile(p)
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	return f
}

// BenchmarkObserve is learn mode's per-request cost on top of detect: one
// support ticket with its query and one matched rule.
func BenchmarkObserve(b *testing.B) {
	m := NewModel("support")
	body := []byte(`{"category":"betting","subject":"Cash out not working","message":"I clicked 'Cash out' and it said: Selection -- suspended","locale":"en-GB","bet_ref":"B-01234567","attachments":[{"name":"IMG_4411.JPG","size":123456,"type":"image/jpeg"}]}`)
	q := []byte("lang=en&page=2")
	a := netip.MustParseAddr("198.51.100.7")
	ms := []crs.Match{{ID: 942270, Vars: []string{"ARGS:json.message"}}}
	b.ReportAllocs()
	for b.Loop() {
		m.Observe(q, "application/json", body, a, ms)
	}
}

// TestSuggestHoldsFieldsOneClientMadeUp: a field only one address sent
// while learning (a player trying fields, junk a client adds) is left out of
// the schema, which then refuses it; the fields many players send are in it.
// Behind one address (a proxy the edge cannot see through) nothing is held.
func TestSuggestHoldsFieldsOneClientMadeUp(t *testing.T) {
	players := []netip.Addr{netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("198.51.100.2"), netip.MustParseAddr("2001:db8::3")}
	m := NewModel("profile")
	for i := range 30 {
		m.Observe(nil, "application/json", []byte(fmt.Sprintf(`{"nickname":"p%d","prefs":{"lang":"en"}}`, i)), players[i%3], nil)
	}
	for range 5 {
		m.Observe(nil, "application/json", []byte(`{"nickname":"x","is_admin":true,"prefs":{"lang":"en","debug":1}}`), players[0], nil)
	}
	s := Suggest(m, Options{})
	var held []string
	for _, h := range s.HeldFields {
		held = append(held, fmt.Sprintf("%s %d %v", h.Field, h.Requests, h.Clients))
	}
	if want := []string{"/is_admin 5 [198.51.100.1]", "/prefs/debug 5 [198.51.100.1]"}; !slices.Equal(held, want) {
		t.Errorf("held fields %q, want %q", held, want)
	}
	c, err := schema.CompileBytes("profile.json", s.Schema)
	if err != nil {
		t.Fatalf("the suggested schema does not compile: %v\n%s", err, s.Schema)
	}
	for body, ok := range map[string]bool{
		`{"nickname":"p9","prefs":{"lang":"en"}}`:                true,
		`{"nickname":"x","is_admin":true,"prefs":{"lang":"en"}}`: false,
		`{"nickname":"x","prefs":{"lang":"en","debug":1}}`:       false,
	} {
		if v := c.Check([]byte(body)); (v == nil) != ok {
			t.Errorf("%s: schema verdict %v, want accepted %v", body, v, ok)
		}
	}
	var out strings.Builder
	s.Write(&out, "")
	if !strings.Contains(out.String(), "# held field /is_admin: 5 requests from 1 client address(es) (198.51.100.1)") {
		t.Errorf("the printed suggestion does not say why /is_admin is left out:\n%s", out.String())
	}

	one := NewModel("behind-a-proxy")
	for i := range 10 {
		one.Observe(nil, "application/json", []byte(fmt.Sprintf(`{"nickname":"p%d","promo":"x"}`, i)), players[0], nil)
	}
	if s := Suggest(one, Options{}); len(s.HeldFields) > 0 || !strings.Contains(string(s.Schema), `"promo"`) {
		t.Errorf("one address behind everything: held %v, schema %s; want nothing held", s.HeldFields, s.Schema)
	}
}

// TestMergeIsObservingBoth: two nodes that each learned half of a route's
// traffic, merged, suggest what one node that saw all of it suggests.
func TestMergeIsObservingBoth(t *testing.T) {
	whole, a, b := NewModel("bets"), NewModel("bets"), NewModel("bets")
	for i := range 120 {
		client := netip.AddrFrom4([4]byte{198, 51, 100, byte(i % 7)})
		body := fmt.Sprintf(`{"market":"m-%d","stake":"%d.50","side":"%s","note":"gl %d","legs":[{"id":%d}]}`,
			i%5, i, []string{"back", "lay"}[i%2], i, i)
		if i%11 == 0 {
			body = fmt.Sprintf(`{"market":"m-1","stake":"1.00","side":"back","promo":"P%d"}`, i)
		}
		var ms []crs.Match
		if i%4 == 0 {
			ms = []crs.Match{{ID: 942270, Msg: "sqli", Vars: []string{"ARGS:json.note"}}}
		}
		query := []byte(fmt.Sprintf("lang=%s", []string{"en", "de"}[i%2]))
		whole.Observe(query, "application/json", []byte(body), client, ms)
		half := a
		if i%3 == 0 {
			half = b
		}
		half.Observe(query, "application/json", []byte(body), client, ms)
	}
	a.Merge(b)
	got, want := Suggest(a, Options{}), Suggest(whole, Options{})
	if string(got.Schema) != string(want.Schema) {
		t.Errorf("merged schema:\n%s\nwhole:\n%s", got.Schema, want.Schema)
	}
	summary := func(s Suggestion) string {
		var b strings.Builder
		fmt.Fprintf(&b, "%d requests %d bodies free %v params %v", s.Requests, s.Bodies, s.FreeText, s.Params)
		for _, x := range s.Exclusions {
			fmt.Fprintf(&b, " exclude %s %v", x.Field, x.IDs)
			for _, e := range x.Evidence {
				fmt.Fprintf(&b, " (%d requests, %d clients)", e.Requests, e.Clients)
			}
		}
		for _, h := range s.HeldFields {
			fmt.Fprintf(&b, " held %s %d", h.Field, h.Requests)
		}
		return b.String()
	}
	if g, w := summary(got), summary(want); g != w {
		t.Errorf("merged: %s\nwhole:  %s", g, w)
	}
	if len(want.Exclusions) == 0 || want.Schema == nil {
		t.Fatalf("the traffic suggests no schema or no exclusion: the test compares nothing")
	}
}

// TestMergeKeepsBounds: merged models hold no more than one model may, and
// count what they could not keep.
func TestMergeKeepsBounds(t *testing.T) {
	x, y := NewModel("r"), NewModel("r")
	y.Observe(nil, "application/json", []byte(`{"x0":"a"}`), netip.MustParseAddr("198.51.100.9"), nil)
	for i := range MaxFields {
		x.Observe(nil, "application/json", []byte(fmt.Sprintf(`{"x%d":1}`, i)), netip.MustParseAddr("198.51.100.1"), nil)
		if i < MaxFields-1 {
			y.Observe(nil, "application/json", []byte(fmt.Sprintf(`{"y%d":"v%d"}`, i, i)), netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}), nil)
		}
	}
	x.Merge(y)
	// y's own fields but /x0 find no room.
	if len(x.Fields) != MaxFields || x.Dropped.Fields != MaxFields-1 {
		t.Errorf("%d fields kept, %d values dropped; want %d and %d", len(x.Fields), x.Dropped.Fields, MaxFields, MaxFields-1)
	}
	if f := x.Fields["/x0"]; f.Count != 2 || f.Types["integer"] != 1 || f.Types["string"] != 1 || len(f.Clients) != 2 {
		t.Errorf("/x0 after the merge: %+v", f)
	}
	if len(x.Senders.Clients) != MaxFieldClients || !x.Senders.ManyClients {
		t.Errorf("route's addresses: %d kept, many %v; want %d, true", len(x.Senders.Clients), x.Senders.ManyClients, MaxFieldClients)
	}
}
