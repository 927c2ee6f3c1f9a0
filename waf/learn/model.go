package learn

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"hedge/waf/crs"
)

// Bounds of one route's model. Whatever clients send, a model holds at most
// MaxFields body fields, MaxParams query parameters, MaxValues distinct
// values per field, MaxPairs (rule, field) pairs with MaxClients addresses
// each, MaxFieldClients addresses per field and for the route, and reads at
// most MaxLeaves values of one body; what it could not keep is counted in
// Dropped.
const (
	MaxFields   = 256
	MaxParams   = 64
	MaxValues   = 16
	MaxValueLen = 64
	MaxPairs    = 256
	MaxClients  = 64
	// MaxFieldClients is enough addresses to tell a field many clients
	// send from one that one client made up.
	MaxFieldClients = 8
	MaxLeaves       = 1024
	MaxDepth        = 16
	MaxData         = 64 // bytes of matched data kept as a pair's example
)

// Model is what one route in learn mode saw of the requests it let
// through. It is safe for concurrent use; its exported fields are its saved
// form.
type Model struct {
	mu sync.Mutex

	Route    string `json:"route"`
	Requests int64  `json:"requests"`
	// Bodies counts requests with a JSON body: a body field present in
	// every one of them is required.
	Bodies int64 `json:"bodies"`
	// OtherBodies counts bodies of other types (not modelled).
	OtherBodies  int64             `json:"other_bodies,omitempty"`
	ContentTypes map[string]int64  `json:"content_types,omitempty"`
	Fields       map[string]*Field `json:"fields"` // by JSON pointer, array indices as *
	Params       map[string]*Field `json:"params"` // query parameters by name
	Pairs        []*Pair           `json:"pairs"`  // would-be false positives
	Dropped      Dropped           `json:"dropped"`
	// Senders are the first client addresses the route saw.
	Senders ClientSet `json:"senders"`
}

// ClientSet keeps the first distinct client addresses of something, up to a
// bound; Many says more came.
type ClientSet struct {
	Clients     []string `json:"clients,omitempty"`
	ManyClients bool     `json:"many_clients,omitempty"`
}

// add notes addr; it reports false when addr is new and the set is full.
func (c *ClientSet) add(addr string, bound int) bool {
	switch {
	case c.ManyClients, slices.Contains(c.Clients, addr):
	case len(c.Clients) >= bound:
		c.ManyClients = true
		return false
	default:
		c.Clients = append(c.Clients, addr)
	}
	return true
}

// Fewer reports whether fewer than n distinct addresses were seen. A set
// read from a model saved before addresses were kept is empty: not fewer.
func (c *ClientSet) Fewer(n int) bool {
	return len(c.Clients) > 0 && len(c.Clients) < n && !c.ManyClients
}

// Dropped counts what the bounds kept out of a model.
type Dropped struct {
	Fields  int64 `json:"fields,omitempty"`  // values of fields past MaxFields
	Params  int64 `json:"params,omitempty"`  // values of parameters past MaxParams
	Values  int64 `json:"values,omitempty"`  // fields whose distinct values stopped being kept (past MaxValues, or one longer than MaxValueLen): no enum candidates
	Pairs   int64 `json:"pairs,omitempty"`   // matches of pairs past MaxPairs
	Clients int64 `json:"clients,omitempty"` // addresses past MaxClients in a pair
	Leaves  int64 `json:"leaves,omitempty"`  // bodies cut at MaxLeaves or MaxDepth
	Bodies  int64 `json:"bodies,omitempty"`  // JSON bodies that did not parse
}

// Field is the shape of one body field or query parameter: how often it
// came, in which JSON types, and for strings their lengths, characters and
// formats, for numbers their range.
type Field struct {
	Count int64            `json:"count"`
	Types map[string]int64 `json:"types"`

	MinLen int `json:"min_len"`
	MaxLen int `json:"max_len"`
	// Chars is the union of the character classes of every string value.
	Chars Chars `json:"chars"`
	// Values are the distinct strings seen while they are few and short;
	// Many says there were more (then Values is no longer kept).
	Values map[string]int64 `json:"values,omitempty"`
	Many   bool             `json:"many,omitempty"`
	// NotUUID, NotDateTime, NotDate and NotAmount are set by the first
	// string that is not one.
	NotUUID     bool `json:"not_uuid,omitempty"`
	NotDateTime bool `json:"not_date_time,omitempty"`
	NotDate     bool `json:"not_date,omitempty"`
	NotAmount   bool `json:"not_amount,omitempty"`

	Min      float64 `json:"min"`
	Max      float64 `json:"max"`
	Decimals int     `json:"decimals"` // most decimal places of a number
	MaxItems int     `json:"max_items,omitempty"`
	Numbers  bool    `json:"numbers,omitempty"` // Min and Max are set

	// The addresses that sent the field (the first MaxFieldClients).
	ClientSet
}

// Chars are character classes, as bits.
type Chars uint16

const (
	Lower Chars = 1 << iota
	Upper
	Digit
	Dash       // - _
	Dot        // . : + @
	Space      // space, tab
	Punct      // any other ASCII punctuation
	Control    // control characters
	NonASCII   // any other rune
	Apostrophe // ' " ` (quotes, the SQL-injection rules' favourite)
)

// Pair is one (rule, field) the rule engine matched on requests the route
// let through: a would-be false positive, with the requests and distinct
// client addresses behind it.
type Pair struct {
	Rule     int    `json:"rule"`
	Var      string `json:"var"`             // as the engine names it: ARGS:json.comment
	Field    string `json:"field,omitempty"` // /comment or ?q; empty when not a field
	Requests int64  `json:"requests"`
	// The addresses behind the matches (the first MaxClients).
	ClientSet
	Msg     string `json:"msg,omitempty"`
	Example string `json:"example,omitempty"`
}

// NewModel returns an empty model of route.
func NewModel(route string) *Model {
	return &Model{Route: route, Fields: map[string]*Field{}, Params: map[string]*Field{}, ContentTypes: map[string]int64{}}
}

// Observe records one request the route let through: its query, its body
// (modelled when JSON) and what the rule engine matched in it.
func (m *Model) Observe(query []byte, contentType string, body []byte, client netip.Addr, matches []crs.Match) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.Requests++
	addr := client.String()
	m.Senders.add(addr, MaxFieldClients)
	m.observeQuery(query, addr)
	if len(body) > 0 {
		ct, _, _ := strings.Cut(contentType, ";")
		ct = strings.ToLower(strings.TrimSpace(ct))
		if len(m.ContentTypes) < 8 || m.ContentTypes[ct] > 0 {
			m.ContentTypes[ct]++
		}
		if ct == "application/json" || strings.HasSuffix(ct, "+json") {
			m.observeJSON(body, addr)
		} else {
			m.OtherBodies++
		}
	}
	for i := range matches {
		m.observeMatch(&matches[i], addr)
	}
}

func (m *Model) observeQuery(q []byte, client string) {
	leaves := 0
	for len(q) > 0 {
		var kv []byte
		kv, q, _ = bytes.Cut(q, []byte("&"))
		if len(kv) == 0 {
			continue
		}
		if leaves++; leaves > MaxLeaves {
			m.Dropped.Leaves++
			return
		}
		k, v, _ := bytes.Cut(kv, []byte("="))
		name, err1 := url.QueryUnescape(string(k))
		val, err2 := url.QueryUnescape(string(v))
		if err1 != nil || err2 != nil {
			name, val = string(k), string(v)
		}
		f := m.Params[name]
		if f == nil {
			if len(m.Params) >= MaxParams || len(name) > MaxValueLen {
				m.Dropped.Params++
				continue
			}
			f = newField()
			m.Params[name] = f
		}
		f.Count++
		f.add(client, MaxFieldClients)
		f.str(val, &m.Dropped)
	}
}

func newField() *Field { return &Field{Types: map[string]int64{}, MinLen: -1} }

func (m *Model) field(path string) *Field {
	f := m.Fields[path]
	if f == nil {
		if len(m.Fields) >= MaxFields || len(path) > 256 {
			m.Dropped.Fields++
			return nil
		}
		f = newField()
		m.Fields[path] = f
	}
	return f
}

func (m *Model) observeJSON(body []byte, client string) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		m.Dropped.Bodies++
		return
	}
	m.Bodies++
	w := walker{m: m, client: client}
	w.value("", v, 0)
	if w.cut {
		m.Dropped.Leaves++
	}
}

type walker struct {
	m      *Model
	client string
	leaves int
	cut    bool
}

// value records v at path; a field that repeats in one request (an array's
// items) counts once per request only at the level it occurs.
func (w *walker) value(path string, v any, depth int) {
	if w.leaves++; w.leaves > MaxLeaves || depth > MaxDepth {
		w.cut = true
		return
	}
	var f *Field
	if path != "" {
		if f = w.m.field(path); f == nil {
			return
		}
		f.Count++
		f.add(w.client, MaxFieldClients)
	}
	switch x := v.(type) {
	case map[string]any:
		if f != nil {
			f.Types["object"]++
		}
		for k, c := range x {
			w.value(path+"/"+escape(k), c, depth+1)
		}
	case []any:
		if f != nil {
			f.Types["array"]++
			f.MaxItems = max(f.MaxItems, len(x))
		}
		for _, c := range x {
			w.value(path+"/*", c, depth+1)
		}
	case string:
		if f != nil {
			f.Types["string"]++
			f.str(x, &w.m.Dropped)
		}
	case json.Number:
		if f != nil {
			f.number(x)
		}
	case bool:
		if f != nil {
			f.Types["boolean"]++
		}
	case nil:
		if f != nil {
			f.Types["null"]++
		}
	}
}

// escape writes a key as a JSON pointer segment (RFC 6901).
func escape(k string) string {
	if !strings.ContainsAny(k, "~/") {
		return k
	}
	return strings.ReplaceAll(strings.ReplaceAll(k, "~", "~0"), "/", "~1")
}

func (f *Field) str(s string, d *Dropped) {
	n := utf8.RuneCountInString(s)
	if f.MinLen < 0 || n < f.MinLen {
		f.MinLen = n
	}
	f.MaxLen = max(f.MaxLen, n)
	f.Chars |= classes(s)
	if !f.Many {
		if _, ok := f.Values[s]; !ok && (len(f.Values) >= MaxValues || len(s) > MaxValueLen) {
			f.Many = true
			d.Values++
			f.Values = nil
		} else {
			if f.Values == nil {
				f.Values = map[string]int64{}
			}
			f.Values[s]++
		}
	}
	f.NotUUID = f.NotUUID || !isUUID(s)
	f.NotDateTime = f.NotDateTime || !isDateTime(s)
	f.NotDate = f.NotDate || !isDate(s)
	f.NotAmount = f.NotAmount || !isAmount(s)
}

func (f *Field) number(n json.Number) {
	s := n.String()
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return
	}
	dec := 0
	if i := strings.IndexAny(s, ".eE"); i >= 0 {
		if strings.ContainsAny(s, "eE") {
			dec = 6
		} else {
			dec = len(s) - i - 1
		}
	}
	if dec == 0 {
		f.Types["integer"]++
	} else {
		f.Types["number"]++
	}
	if !f.Numbers {
		f.Min, f.Max, f.Numbers = v, v, true
	}
	f.Min, f.Max = min(f.Min, v), max(f.Max, v)
	f.Decimals = max(f.Decimals, dec)
}

func classes(s string) Chars {
	var c Chars
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z':
			c |= Lower
		case r >= 'A' && r <= 'Z':
			c |= Upper
		case r >= '0' && r <= '9':
			c |= Digit
		case r == '-' || r == '_':
			c |= Dash
		case r == '.' || r == ':' || r == '+' || r == '@':
			c |= Dot
		case r == ' ' || r == '\t':
			c |= Space
		case r == '\'' || r == '"' || r == '`':
			c |= Apostrophe
		case r < 0x20 || r == 0x7f:
			c |= Control
		case r < 0x80:
			c |= Punct
		default:
			c |= NonASCII
		}
	}
	return c
}

func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		c := s[i]
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if c != '-' {
				return false
			}
		} else if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

func isDate(s string) bool {
	return len(s) == 10 && digits(s[0:4]) && s[4] == '-' && digits(s[5:7]) && s[7] == '-' && digits(s[8:10])
}

// isDateTime accepts RFC 3339 date-times (2026-05-01T12:00:00Z,
// 2026-05-01T12:00:00.123+02:00).
func isDateTime(s string) bool {
	if len(s) < 20 || !isDate(s[:10]) || s[10] != 'T' && s[10] != 't' {
		return false
	}
	t := s[11:]
	if len(t) < 9 || !digits(t[0:2]) || t[2] != ':' || !digits(t[3:5]) || t[5] != ':' || !digits(t[6:8]) {
		return false
	}
	t = t[8:]
	if t[0] == '.' {
		i := 1
		for i < len(t) && t[i] >= '0' && t[i] <= '9' {
			i++
		}
		if i == 1 {
			return false
		}
		t = t[i:]
	}
	switch {
	case t == "Z" || t == "z":
		return true
	case len(t) == 6 && (t[0] == '+' || t[0] == '-') && digits(t[1:3]) && t[3] == ':' && digits(t[4:6]):
		return true
	}
	return false
}

// isAmount accepts a decimal string of money: 12, 12.5, 12.50.
func isAmount(s string) bool {
	w, f, dot := strings.Cut(s, ".")
	return len(w) >= 1 && len(w) <= 15 && digits(w) && (!dot || len(f) >= 1 && len(f) <= 2 && digits(f))
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func (m *Model) observeMatch(mt *crs.Match, client string) {
	if mt.ID >= 949000 && mt.ID < 950000 || mt.ID >= 980000 && mt.ID < 990000 {
		return // the anomaly evaluation and reporting rules
	}
	vars := mt.Vars
	if len(vars) == 0 {
		vars = []string{""}
	}
	for _, v := range vars {
		p := m.pair(mt.ID, v)
		if p == nil {
			if len(m.Pairs) >= MaxPairs {
				m.Dropped.Pairs++
				continue
			}
			p = &Pair{Rule: mt.ID, Var: v, Field: FieldOf(v), Msg: mt.Msg, Example: crs.Cut(mt.Data, MaxData)}
			m.Pairs = append(m.Pairs, p)
		}
		p.Requests++
		if !p.add(client, MaxClients) {
			m.Dropped.Clients++
		}
	}
}

// pair is the model's (rule, variable) pair, or nil.
func (m *Model) pair(rule int, v string) *Pair {
	for _, p := range m.Pairs {
		if p.Rule == rule && p.Var == v {
			return p
		}
	}
	return nil
}

// FieldOf is the field a matched variable names: a body field's JSON
// pointer with array indices as * (ARGS:json.items.0.text and, on a route
// with a schema, ARGS:json./items/0/text are /items/*/text), ?NAME for a
// query parameter (ARGS_GET:q, ARGS:q), "" for anything else (headers,
// cookies, argument names, the path).
func FieldOf(v string) string {
	coll, key, ok := strings.Cut(v, ":")
	if !ok || key == "" {
		return ""
	}
	switch coll {
	case "ARGS", "ARGS_POST":
		if k, ok := strings.CutPrefix(key, "json."); ok {
			var segs []string
			if strings.HasPrefix(k, "/") {
				segs = strings.Split(k[1:], "/")
			} else {
				segs = strings.Split(k, ".")
			}
			for i, s := range segs {
				if digits(s) && s != "" {
					segs[i] = "*"
				}
			}
			return "/" + strings.Join(segs, "/")
		}
		if coll == "ARGS_POST" {
			return ""
		}
		return "?" + key
	case "ARGS_GET":
		return "?" + key
	}
	return ""
}

// Snapshot is a copy of the model, safe to read and encode while the route
// keeps learning.
func (m *Model) Snapshot() ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return json.Marshal(m)
}
