package learn

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Options tune a suggestion.
type Options struct {
	// MinClients is the least number of distinct client addresses behind a
	// (rule, field) pair for its exclusion to be suggested, and behind a
	// body field for the schema to allow it: what one client sent is a
	// burst (or an attack), not a pattern. 0 means 2.
	MinClients int
}

// Suggestion is what a route's model suggests: a JSON Schema of its bodies
// and the per-field exclusions that would have removed the false
// positives it saw.
type Suggestion struct {
	Route    string `json:"route"`
	Requests int64  `json:"requests"`
	Bodies   int64  `json:"bodies"`
	// Schema is nil when the route saw no JSON body, or bodies of other
	// types too (a schema would refuse them).
	Schema json.RawMessage `json:"schema,omitempty"`
	// FreeText are the body fields the schema leaves open: the rule engine
	// still reads them.
	FreeText   []string    `json:"free_text,omitempty"`
	Exclusions []Exclusion `json:"exclude_fields,omitempty"`
	// Held are pairs not suggested: too few clients, not a field (a
	// header, a cookie, the path), or a field the schema pins down.
	Held []Evidence `json:"held,omitempty"`
	// HeldFields are body fields left out of the schema (which then
	// refuses them): fewer than MinClients addresses sent them, while the
	// route saw more.
	HeldFields []HeldField `json:"held_fields,omitempty"`
	Params     []Param     `json:"params,omitempty"`
	Dropped    Dropped     `json:"dropped"`
}

// Exclusion is a route's waf.exclude_fields entry, with its evidence.
type Exclusion struct {
	Field    string     `json:"field"`
	IDs      []int      `json:"ids"`
	Evidence []Evidence `json:"evidence"`
}

// Evidence is one (rule, variable) pair's counts.
type Evidence struct {
	Rule        int    `json:"rule"`
	Var         string `json:"var"`
	Field       string `json:"field,omitempty"`
	Requests    int64  `json:"requests"`
	Clients     int    `json:"clients"`
	ManyClients bool   `json:"many_clients,omitempty"` // more than Clients
	Msg         string `json:"msg,omitempty"`
	Example     string `json:"example,omitempty"`
	Why         string `json:"why,omitempty"` // why it is held
}

// HeldField is a body field the suggested schema leaves out.
type HeldField struct {
	Field    string   `json:"field"`
	Requests int64    `json:"requests"`
	Clients  []string `json:"clients"`
}

// Param describes a query parameter (reported; a schema covers bodies).
type Param struct {
	Name     string `json:"name"`
	Requests int64  `json:"requests"`
	Shape    string `json:"shape"`
}

// Suggest derives the suggestion of m.
func Suggest(m *Model, o Options) Suggestion {
	if o.MinClients <= 0 {
		o.MinClients = 2
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	s := Suggestion{Route: m.Route, Requests: m.Requests, Bodies: m.Bodies, Dropped: m.Dropped}
	b := schemaBuilder{m: m}
	// Hold back what too few clients sent only when the route saw enough
	// of them: behind one proxy address every field would look made up.
	if !m.Senders.Fewer(o.MinClients) {
		b.minClients = o.MinClients
	}
	if m.Bodies > 0 && m.OtherBodies == 0 && m.Dropped.Bodies == 0 && m.Dropped.Fields == 0 {
		root := b.object("", m.Bodies)
		root["$schema"] = "https://json-schema.org/draft/2020-12/schema"
		root["title"] = fmt.Sprintf("Learned from %d requests (%d JSON bodies) of route %s", m.Requests, m.Bodies, m.Route)
		s.Schema, _ = json.MarshalIndent(root, "", "  ")
		s.FreeText = b.free
		sort.Strings(s.FreeText)
		s.HeldFields = b.held
	}
	byField := map[string]*Exclusion{}
	for _, p := range m.Pairs {
		ev := Evidence{Rule: p.Rule, Var: p.Var, Field: p.Field, Requests: p.Requests, Clients: len(p.Clients),
			ManyClients: p.ManyClients, Msg: p.Msg, Example: p.Example}
		switch {
		case p.Field == "":
			ev.Why = "not a body field or query parameter: a per-field exclusion cannot name it"
		case ev.Clients < o.MinClients && !ev.ManyClients:
			ev.Why = fmt.Sprintf("from %d client address(es), fewer than %d: a burst, not a pattern", ev.Clients, o.MinClients)
		case s.Schema != nil && strings.HasPrefix(p.Field, "/") && !slices.Contains(b.free, p.Field):
			ev.Why = "the suggested schema pins this field down: the rule engine no longer reads it"
		}
		if ev.Why != "" {
			s.Held = append(s.Held, ev)
			continue
		}
		x := byField[p.Field]
		if x == nil {
			x = &Exclusion{Field: p.Field}
			byField[p.Field] = x
		}
		if !slices.Contains(x.IDs, p.Rule) {
			x.IDs = append(x.IDs, p.Rule)
		}
		x.Evidence = append(x.Evidence, ev)
	}
	for _, x := range byField {
		slices.Sort(x.IDs)
		sort.Slice(x.Evidence, func(i, j int) bool { return x.Evidence[i].Rule < x.Evidence[j].Rule })
		s.Exclusions = append(s.Exclusions, *x)
	}
	sort.Slice(s.Exclusions, func(i, j int) bool { return s.Exclusions[i].Field < s.Exclusions[j].Field })
	sort.Slice(s.Held, func(i, j int) bool {
		if s.Held[i].Rule != s.Held[j].Rule {
			return s.Held[i].Rule < s.Held[j].Rule
		}
		return s.Held[i].Var < s.Held[j].Var
	})
	for _, k := range slices.Sorted(maps.Keys(m.Params)) {
		f := m.Params[k]
		pb := schemaBuilder{m: m}
		sh, _ := json.Marshal(pb.str("?"+k, f))
		s.Params = append(s.Params, Param{Name: k, Requests: f.Count, Shape: string(sh)})
	}
	return s
}

type schemaBuilder struct {
	m          *Model
	minClients int // a field fewer addresses sent is held (0: none is)
	free       []string
	held       []HeldField
}

// children are the fields one segment below path.
func (b *schemaBuilder) children(path string) []string {
	var out []string
	for p := range b.m.Fields {
		if rest, ok := strings.CutPrefix(p, path+"/"); ok && !strings.Contains(rest, "/") && rest != "*" {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

func (b *schemaBuilder) object(path string, occurrences int64) map[string]any {
	props := map[string]any{}
	var required []string
	for _, c := range b.children(path) {
		name := strings.ReplaceAll(strings.ReplaceAll(c[len(path)+1:], "~1", "/"), "~0", "~")
		f := b.m.Fields[c]
		if b.minClients > 0 && f.Fewer(b.minClients) {
			b.held = append(b.held, HeldField{Field: c, Requests: f.Count, Clients: f.Clients})
			continue
		}
		props[name] = b.field(c, f)
		if f.Count >= occurrences {
			required = append(required, name)
		}
	}
	o := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		o["required"] = required
	}
	return o
}

// jsonTypes are a field's JSON Schema types, integer folded into number
// when both came.
func jsonTypes(f *Field) []string {
	var ts []string
	for t, n := range f.Types {
		if n > 0 {
			ts = append(ts, t)
		}
	}
	if slices.Contains(ts, "integer") && slices.Contains(ts, "number") {
		ts = slices.DeleteFunc(ts, func(t string) bool { return t == "integer" })
	}
	sort.Strings(ts)
	return ts
}

func (b *schemaBuilder) field(path string, f *Field) map[string]any {
	ts := jsonTypes(f)
	if len(ts) != 1 {
		if slices.Contains(ts, "string") {
			b.free = append(b.free, path)
		}
		return map[string]any{"type": ts, "description": "several JSON types seen: review"}
	}
	switch ts[0] {
	case "object":
		return b.object(path, f.Types["object"])
	case "array":
		a := map[string]any{"type": "array", "maxItems": max(1, 2*f.MaxItems)}
		if it := b.m.Fields[path+"/*"]; it != nil {
			a["items"] = b.field(path+"/*", it)
		}
		return a
	case "string":
		return b.str(path, f)
	case "integer", "number":
		return number(ts[0], f)
	}
	return map[string]any{"type": ts[0]}
}

// str pins a string field down when what came allows it (an enum, a
// format, an amount, an identifier's characters), else leaves it free
// text, for the rule engine to read.
func (b *schemaBuilder) str(path string, f *Field) map[string]any {
	s := map[string]any{"type": "string"}
	switch {
	// A few values, each seen three times on average: the client picks
	// from a list (a category, a MIME type), not a keyboard.
	case !f.Many && len(f.Values) > 0 && f.Count >= 3*int64(len(f.Values)) && f.Chars&Control == 0:
		return map[string]any{"enum": slices.Sorted(maps.Keys(f.Values))}
	case f.MinLen > 0 && !f.NotUUID:
		s["format"] = "uuid"
	case f.MinLen > 0 && !f.NotDateTime:
		s["format"] = "date-time"
	case f.MinLen > 0 && !f.NotDate:
		s["format"] = "date"
	case f.MinLen > 0 && !f.NotAmount:
		s["pattern"] = `^[0-9]{1,15}(\.[0-9]{1,2})?$`
	case f.MaxLen > 0 && f.Chars&^(Lower|Upper|Digit|Dash|Dot) == 0:
		s["pattern"] = "^" + class(f.Chars) + "{" + strconv.Itoa(max(f.MinLen, 1)) + "," + strconv.Itoa(min(2*f.MaxLen, 256)) + "}$"
	default:
		s["maxLength"] = roundUp(2 * max(f.MaxLen, 32))
		s["description"] = "free text: the rule engine reads it"
		b.free = append(b.free, path)
	}
	return s
}

func class(c Chars) string {
	var b strings.Builder
	b.WriteByte('[')
	if c&Lower != 0 {
		b.WriteString("a-z")
	}
	if c&Upper != 0 {
		b.WriteString("A-Z")
	}
	if c&Digit != 0 {
		b.WriteString("0-9")
	}
	if c&Dot != 0 {
		b.WriteString(".:+@")
	}
	if c&Dash != 0 {
		b.WriteString("_-")
	}
	b.WriteByte(']')
	return b.String()
}

// roundUp is the next power of two of n, at most 8192.
func roundUp(n int) int {
	p := 64
	for p < n && p < 8192 {
		p *= 2
	}
	return p
}

func number(t string, f *Field) map[string]any {
	n := map[string]any{"type": t}
	if !f.Numbers {
		return n
	}
	if f.Min >= 0 {
		n["minimum"] = 0
	} else {
		n["minimum"] = -pow10Above(-f.Min)
	}
	n["maximum"] = pow10Above(f.Max)
	return n
}

// pow10Above is the least power of ten at or above v (at least 1).
func pow10Above(v float64) float64 {
	p := 1.0
	for p < v && p < math.MaxFloat64/10 {
		p *= 10
	}
	return p
}

// Write prints the suggestion for an operator: counts, the schema (or where
// it was written), and the route's configuration to paste.
func (s *Suggestion) Write(w io.Writer, schemaFile string) {
	fmt.Fprintf(w, "# route %s: %d requests, %d JSON bodies\n", s.Route, s.Requests, s.Bodies)
	if d := s.Dropped; d.Fields+d.Params+d.Pairs+d.Clients+d.Leaves+d.Bodies > 0 {
		fmt.Fprintf(w, "# the model's bounds dropped: %+v (the suggestion covers what was kept)\n", d)
	}
	if s.Schema != nil {
		if schemaFile != "" {
			fmt.Fprintf(w, "# schema written to %s\n", schemaFile)
		} else {
			fmt.Fprintf(w, "%s\n", s.Schema)
		}
		if len(s.FreeText) > 0 {
			fmt.Fprintf(w, "# free text, still read by the rule engine: %s\n", strings.Join(s.FreeText, ", "))
		}
	} else {
		fmt.Fprintf(w, "# no schema: the route saw no JSON body, or bodies it could not model\n")
	}
	fmt.Fprintf(w, "- name: %s\n", s.Route)
	if s.Schema != nil {
		ref := schemaFile
		if ref == "" {
			ref = "FILE # the schema above, saved"
		}
		fmt.Fprintf(w, "  schema: %s\n  limits: {content_types: [application/json]}\n", ref)
	}
	fmt.Fprintf(w, "  waf:\n    mode: block\n")
	if len(s.Exclusions) > 0 {
		fmt.Fprintf(w, "    exclude_fields:\n")
		for _, x := range s.Exclusions {
			ids := make([]string, len(x.IDs))
			for i, id := range x.IDs {
				ids[i] = strconv.Itoa(id)
			}
			fmt.Fprintf(w, "      - {field: %s, ids: [%s]}\n", x.Field, strings.Join(ids, ", "))
			for _, e := range x.Evidence {
				fmt.Fprintf(w, "        # %s\n", e.line())
			}
		}
	}
	for _, e := range s.Held {
		fmt.Fprintf(w, "# held: %s — %s\n", e.line(), e.Why)
	}
	for _, h := range s.HeldFields {
		fmt.Fprintf(w, "# held field %s: %d requests from %d client address(es) (%s) — left out of the schema, which refuses it\n",
			h.Field, h.Requests, len(h.Clients), strings.Join(h.Clients, ", "))
	}
	for _, p := range s.Params {
		fmt.Fprintf(w, "# query parameter %s: %d requests, %s\n", p.Name, p.Requests, p.Shape)
	}
}

func (e Evidence) line() string {
	more := ""
	if e.ManyClients {
		more = "+"
	}
	return fmt.Sprintf("rule %d in %s: %d requests from %d%s client addresses (%s; e.g. %q)", e.Rule, e.Var, e.Requests, e.Clients, more, e.Msg, e.Example)
}
