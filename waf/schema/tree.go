package schema

import (
	"fmt"
	"regexp/syntax"
	"slices"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// node says, for one place in a document, whether a string there is pinned
// down by the schema (and so not worth the rule engine's time) and where
// its members and items lead. The tree is built once per schema; Reduce
// walks it beside the body. Whenever the builder cannot be sure a place is
// pinned — composition it does not follow, unknown formats, permissive
// patterns, a tree too large — the place counts as free text: doubt costs
// inspection time, never protection.
type node struct {
	props    map[string]*node
	patterns []patternNode // members matching patternProperties
	rest     *node         // every other member
	prefix   []*node       // items by position (prefixItems)
	items    *node         // every other item
	pinned   bool          // a string here is pinned down
}

type patternNode struct {
	re jsonschema.Regexp
	n  *node
}

// free is the unconstrained place: every string below it is free text.
var free = func() *node {
	n := &node{}
	n.rest, n.items = n, n
	return n
}()

func (n *node) member(key string) *node {
	if c, ok := n.props[key]; ok {
		return c
	}
	for _, p := range n.patterns {
		if p.re.MatchString(key) {
			return p.n
		}
	}
	if n.rest != nil {
		return n.rest
	}
	return free
}

// memberRaw is member for a key without escapes, without allocating
// unless the schema has patternProperties.
func (n *node) memberRaw(key []byte) *node {
	if c, ok := n.props[string(key)]; ok {
		return c
	}
	if len(n.patterns) > 0 {
		return n.member(string(key))
	}
	if n.rest != nil {
		return n.rest
	}
	return free
}

func (n *node) item(i int) *node {
	if i < len(n.prefix) {
		return n.prefix[i]
	}
	if n.items != nil {
		return n.items
	}
	return free
}

// maxNodes bounds the tree of a pathological schema; past it, places are
// free text.
const maxNodes = 4096

type builder struct {
	memo  map[string]*node
	count int
}

func buildTree(js *jsonschema.Schema) *node {
	b := &builder{memo: make(map[string]*node)}
	return b.node([]*jsonschema.Schema{js}, false)
}

// node builds the place where every schema in set applies (disj: where at
// least one of them does; a nil member means "unconstrained").
func (b *builder) node(set []*jsonschema.Schema, disj bool) *node {
	if len(set) == 0 {
		return free
	}
	key := setKey(set, disj)
	if n, ok := b.memo[key]; ok {
		return n
	}
	if b.count >= maxNodes {
		return free
	}
	b.count++
	n := &node{}
	b.memo[key] = n // before the children: recursive schemas link back

	if disj {
		n.pinned = true
		for _, s := range set {
			n.pinned = n.pinned && pinsString(s, 0)
		}
	} else {
		for _, s := range set {
			n.pinned = n.pinned || pinsString(s, 0)
		}
	}

	var ex []*jsonschema.Schema
	childDisj := disj
	for _, s := range set {
		if s == nil {
			childDisj = true
			ex = append(ex, nil)
			continue
		}
		if expand(s, false, &ex, 0) {
			childDisj = true
		}
	}

	// Object members.
	var names []string
	for _, e := range ex {
		if e != nil {
			for k := range e.Properties {
				if !slices.Contains(names, k) {
					names = append(names, k)
				}
			}
		}
	}
	if len(names) > 0 {
		n.props = make(map[string]*node, len(names))
	}
	for _, k := range names {
		var cs []*jsonschema.Schema
		for _, e := range ex {
			cs = appendMember(cs, e, k, childDisj)
		}
		n.props[k] = b.node(cs, childDisj)
	}
	for _, e := range ex {
		if e == nil {
			continue
		}
		for re, ps := range e.PatternProperties {
			set := []*jsonschema.Schema{ps}
			if childDisj {
				set = append(set, nil)
			}
			n.patterns = append(n.patterns, patternNode{re, b.node(set, childDisj)})
		}
	}
	slices.SortFunc(n.patterns, func(a, b patternNode) int { return strings.Compare(a.re.String(), b.re.String()) })
	var rest []*jsonschema.Schema
	for _, e := range ex {
		rest = appendRest(rest, e, childDisj)
	}
	n.rest = b.node(rest, childDisj)

	// Array items.
	maxPrefix := 0
	for _, e := range ex {
		if e != nil {
			maxPrefix = max(maxPrefix, len(e.PrefixItems))
			if l, ok := e.Items.([]*jsonschema.Schema); ok {
				maxPrefix = max(maxPrefix, len(l))
			}
		}
	}
	for i := range maxPrefix {
		var cs []*jsonschema.Schema
		for _, e := range ex {
			cs = appendItem(cs, e, i, childDisj)
		}
		n.prefix = append(n.prefix, b.node(cs, childDisj))
	}
	var items []*jsonschema.Schema
	for _, e := range ex {
		items = appendItem(items, e, maxPrefix, childDisj)
	}
	n.items = b.node(items, childDisj)
	return n
}

func setKey(set []*jsonschema.Schema, disj bool) string {
	parts := make([]string, len(set))
	for i, s := range set {
		parts[i] = fmt.Sprintf("%p", s)
	}
	slices.Sort(parts)
	parts = slices.Compact(parts)
	return fmt.Sprint(disj, parts)
}

// expand appends s and every schema that applies wherever s does ($ref,
// allOf, and the alternatives of anyOf, oneOf, if/then/else and
// dependentSchemas). It reports whether any alternative was followed.
func expand(s *jsonschema.Schema, alt bool, out *[]*jsonschema.Schema, depth int) bool {
	if s == nil || depth > 32 || slices.Contains(*out, s) {
		return alt
	}
	*out = append(*out, s)
	for _, r := range []*jsonschema.Schema{s.Ref, s.RecursiveRef, dynRef(s)} {
		alt = expand(r, alt, out, depth+1)
	}
	for _, a := range s.AllOf {
		alt = expand(a, alt, out, depth+1)
	}
	alts := slices.Concat(s.AnyOf, s.OneOf, []*jsonschema.Schema{s.Then, s.Else})
	for _, d := range s.DependentSchemas {
		alts = append(alts, d)
	}
	for _, a := range alts {
		if a != nil {
			expand(a, true, out, depth+1)
			alt = true
		}
	}
	return alt
}

func dynRef(s *jsonschema.Schema) *jsonschema.Schema {
	if s.DynamicRef != nil {
		return s.DynamicRef.Ref
	}
	return nil
}

// appendMember appends what e says about member k. Where e says nothing
// and the place is an alternative, nil (unconstrained) goes in so the
// member cannot count as pinned.
func appendMember(cs []*jsonschema.Schema, e *jsonschema.Schema, k string, disj bool) []*jsonschema.Schema {
	if e == nil {
		return append(cs, nil)
	}
	if p, ok := e.Properties[k]; ok {
		return append(cs, p)
	}
	matched := false
	for re, p := range e.PatternProperties {
		if re.MatchString(k) {
			cs, matched = append(cs, p), true
		}
	}
	if matched {
		return cs
	}
	return appendRest(cs, e, disj)
}

func appendRest(cs []*jsonschema.Schema, e *jsonschema.Schema, disj bool) []*jsonschema.Schema {
	if e == nil {
		return append(cs, nil)
	}
	var ap any = e.AdditionalProperties
	if ap == nil && e.UnevaluatedProperties != nil {
		ap = e.UnevaluatedProperties
	}
	return appendFallback(cs, ap, disj)
}

func appendItem(cs []*jsonschema.Schema, e *jsonschema.Schema, i int, disj bool) []*jsonschema.Schema {
	if e == nil {
		return append(cs, nil)
	}
	if i < len(e.PrefixItems) {
		return append(cs, e.PrefixItems[i])
	}
	var rest any
	switch it := e.Items.(type) {
	case []*jsonschema.Schema:
		if i < len(it) {
			return append(cs, it[i])
		}
		rest = e.AdditionalItems
	case *jsonschema.Schema:
		rest = it
	}
	if e.Items2020 != nil {
		rest = e.Items2020
	}
	if rest == nil && e.UnevaluatedItems != nil {
		rest = e.UnevaluatedItems
	}
	return appendFallback(cs, rest, disj)
}

// appendFallback appends what governs a member or item that no keyword
// names on its own: the schema rest; nothing when rest is false (nothing
// gets past Check); else (true, or absent) an unconstrained nil under disj.
func appendFallback(cs []*jsonschema.Schema, rest any, disj bool) []*jsonschema.Schema {
	switch r := rest.(type) {
	case *jsonschema.Schema:
		return append(cs, r)
	case bool:
		if !r {
			return cs
		}
	}
	if disj {
		return append(cs, nil)
	}
	return cs
}

// pinningFormats are the formats whose valid values are too narrow to carry
// an attack. "email" is not one of them: a quoted local part may hold
// quotes, spaces and SQL.
var pinningFormats = map[string]bool{
	"uuid": true, "date-time": true, "date": true, "time": true, "duration": true,
	"ipv4": true, "ipv6": true,
}

// pinsString reports whether every string valid against s is pinned down:
// one of an enumeration, a constant, a pinning format, a safe pattern, or
// not a string at all.
func pinsString(s *jsonschema.Schema, depth int) bool {
	if s == nil || depth > 32 {
		return false
	}
	if s.Bool != nil {
		return !*s.Bool
	}
	if s.Types != nil && !slices.Contains(s.Types.ToStrings(), "string") {
		return true
	}
	if s.Enum != nil || s.Const != nil {
		return true
	}
	if s.Format != nil && pinningFormats[s.Format.Name] {
		return true
	}
	if s.Pattern != nil && safePattern(s.Pattern.String()) {
		return true
	}
	for _, r := range []*jsonschema.Schema{s.Ref, s.RecursiveRef, dynRef(s)} {
		if r != nil && pinsString(r, depth+1) {
			return true
		}
	}
	for _, a := range s.AllOf {
		if pinsString(a, depth+1) {
			return true
		}
	}
	for _, alts := range [][]*jsonschema.Schema{s.AnyOf, s.OneOf} {
		if len(alts) > 0 && allPin(alts, depth+1) {
			return true
		}
	}
	if s.If != nil && s.Then != nil && s.Else != nil && allPin([]*jsonschema.Schema{s.Then, s.Else}, depth+1) {
		return true
	}
	return false
}

func allPin(ss []*jsonschema.Schema, depth int) bool {
	for _, s := range ss {
		if !pinsString(s, depth) {
			return false
		}
	}
	return true
}

// safePattern reports whether a pattern pins a string down: anchored at
// both ends of the text (^…$ without the m flag) and, everywhere between,
// matching only ASCII letters, digits and "-_.:+@". Such a string cannot
// hold a quote, a space, a bracket or a slash, so no CRS payload fits in
// it. Any other pattern (unanchored, ".", "\S", "[^…]", "\p{L}", spaces)
// leaves the field free text.
func safePattern(p string) bool {
	re, err := syntax.Parse(p, syntax.Perl)
	if err != nil {
		return false
	}
	if re.Op != syntax.OpConcat || len(re.Sub) < 2 ||
		re.Sub[0].Op != syntax.OpBeginText || re.Sub[len(re.Sub)-1].Op != syntax.OpEndText {
		return false
	}
	return safeRunes(re, 0)
}

func safeRunes(re *syntax.Regexp, depth int) bool {
	if depth > 64 {
		return false
	}
	switch re.Op {
	case syntax.OpLiteral:
		for _, r := range re.Rune {
			if !safeRune(r) {
				return false
			}
		}
		return true
	case syntax.OpCharClass:
		for i := 0; i+1 < len(re.Rune); i += 2 {
			lo, hi := re.Rune[i], re.Rune[i+1]
			if hi-lo > 128 {
				return false
			}
			for r := lo; r <= hi; r++ {
				if !safeRune(r) {
					return false
				}
			}
		}
		return true
	case syntax.OpEmptyMatch, syntax.OpBeginText, syntax.OpEndText,
		syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return true
	case syntax.OpCapture, syntax.OpStar, syntax.OpPlus, syntax.OpQuest,
		syntax.OpRepeat, syntax.OpConcat, syntax.OpAlternate:
		for _, sub := range re.Sub {
			if !safeRunes(sub, depth+1) {
				return false
			}
		}
		return true
	}
	return false // any character, line anchors, no-match and the rest
}

func safeRune(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return true
	}
	return strings.ContainsRune("-_.:+@", r)
}
