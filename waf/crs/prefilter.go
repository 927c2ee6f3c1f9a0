package crs

import (
	"regexp/syntax"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// A prefilter answers, before a regular expression runs, whether a value
// can match it at all. It holds a set of literals of which at least one
// occurs in every match (derived from the pattern's syntax tree), compared
// with ASCII letters folded, and scans the value for them in one pass of an
// Aho-Corasick automaton. "No literal occurs" proves "no match", so the
// regular expression is skipped; anything else runs it. The prefilter never
// decides that a value matches.
//
// Exactness, case by case:
//   - a (?i) literal stands for every rune of its case-fold orbit
//     (unicode.SimpleFold: k also stands for U+212A KELVIN SIGN, s for U+017F
//     LONG S), so those spellings are literals too;
//   - folding only ASCII letters, in the literals and in the value alike,
//     can only make more values pass, never fewer;
//   - Go's regexp reads an invalid UTF-8 byte as U+FFFD, so a class or
//     literal holding U+FFFD gives no literal;
//   - a byte pattern (Latin-1) spells each rune as its byte, and gives no
//     literal where it folds case;
//   - classes wider than a few runes, '.', optional and repeated-from-zero
//     parts give no literal, and a pattern that can match the empty string
//     gets no prefilter.
type prefilter struct {
	// class maps a byte (after ASCII lowering) to its column in next.
	class  [256]uint8
	nclass int
	// next[state*nclass+class] is the next state; finalBit is set when a
	// literal ends there.
	next []uint16
}

const finalBit = acEnd

// Limits of the literal analysis: an exact set (every string the node can
// match) is kept while it has at most maxExact strings; a required set at
// most maxRequired. Past that the node gives no literal.
const (
	maxExact     = 64
	maxRequired  = 2048
	maxClassRune = 32
)

// newPrefilter builds the prefilter of expr (Go/RE2 syntax, with the flags
// the operator compiles it with). It returns nil when the pattern gives no
// useful literal set.
func newPrefilter(expr string, latin1 bool) *prefilter {
	lits, ok := requiredLiterals(expr, latin1)
	if !ok {
		return nil
	}
	return buildPrefilter(lits)
}

// requiredLiterals returns the ASCII-lowered literals of which at least one
// occurs in every match of expr; ok is false when there is no such set (or
// expr does not parse). An empty set with ok means expr never matches.
// latin1 reads expr as a pattern over bytes (each rune up to U+00FF one
// byte), as Coraza's binary matcher and RE2's Latin-1 mode do; case folding
// is then left alone (no literal).
func requiredLiterals(expr string, latin1 bool) (lits []string, ok bool) {
	if latin1 && !isASCII(expr) {
		// Spelled out, a non-ASCII character would be one rune to the
		// parser here but several bytes to a Latin-1 matcher.
		return nil, false
	}
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil, false
	}
	n := analyzer{latin1: latin1}.analyze(re)
	req := n.required()
	if req == nil || slices.Contains(req, "") {
		return nil, false
	}
	return minimize(req), true
}

// node is what the analysis knows of a subexpression. Every set holds
// ASCII-lowered strings; nil means nothing is known.
type node struct {
	// exact holds every string the node can match.
	exact []string
	// prefix holds strings of which every match starts with one.
	prefix []string
	// req holds strings of which one occurs in every match.
	req []string
}

func (n node) required() []string {
	if n.exact != nil {
		return n.exact
	}
	return n.req
}

func (n node) prefixes() []string {
	if n.exact != nil {
		return n.exact
	}
	return n.prefix
}

// anything is a node that may match any string, the empty one included.
var anything = node{}

type analyzer struct{ latin1 bool }

// encode spells r as the matcher reads it; ok is false for a rune that
// gives no literal.
func (a analyzer) encode(r rune) (string, bool) {
	if a.latin1 {
		if r < 0 || r > 0xff {
			return "", false
		}
		return lowerASCII(string([]byte{byte(r)})), true
	}
	// Go's regexp reads an invalid byte as U+FFFD; surrogates never match.
	if r == utf8.RuneError || !utf8.ValidRune(r) {
		return "", false
	}
	return lowerASCII(string(r)), true
}

func (a analyzer) analyze(re *syntax.Regexp) node {
	switch re.Op {
	case syntax.OpNoMatch:
		return node{exact: []string{}}
	case syntax.OpEmptyMatch, syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText,
		syntax.OpEndText, syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return node{exact: []string{""}}
	case syntax.OpLiteral:
		parts := make([]node, 0, len(re.Rune))
		for _, r := range re.Rune {
			parts = append(parts, a.runeNode(r, re.Flags&syntax.FoldCase != 0))
		}
		return concat(parts)
	case syntax.OpCharClass:
		return a.classNode(re.Rune)
	case syntax.OpCapture:
		return a.analyze(re.Sub[0])
	case syntax.OpConcat:
		parts := make([]node, 0, len(re.Sub))
		for _, s := range re.Sub {
			parts = append(parts, a.analyze(s))
		}
		return concat(parts)
	case syntax.OpAlternate:
		return a.alternate(re.Sub)
	case syntax.OpQuest:
		sub := a.analyze(re.Sub[0])
		if sub.exact != nil && len(sub.exact) < maxExact {
			return node{exact: union(sub.exact, []string{""})}
		}
		return anything
	case syntax.OpPlus:
		sub := a.analyze(re.Sub[0])
		return node{prefix: sub.prefixes(), req: sub.required()}
	case syntax.OpRepeat:
		if re.Min == 0 {
			return anything
		}
		sub := a.analyze(re.Sub[0])
		if re.Min == 1 && re.Max == 1 {
			return sub
		}
		return node{prefix: sub.prefixes(), req: sub.required()}
	}
	// OpStar, OpAnyChar, OpAnyCharNotNL and anything unknown.
	return anything
}

// runeNode is one rune of a literal: with fold, its whole case-fold orbit.
func (a analyzer) runeNode(r rune, fold bool) node {
	if fold && a.latin1 {
		return anything
	}
	e, ok := a.encode(r)
	if !ok {
		return anything
	}
	set := []string{e}
	if fold {
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			e, ok := a.encode(f)
			if !ok {
				return anything
			}
			set = append(set, e)
		}
	}
	return node{exact: dedupe(set)}
}

// classNode is a character class given as rune ranges (the parser has
// already added the case-fold variants of a (?i) class).
func (a analyzer) classNode(ranges []rune) node {
	count := 0
	for i := 0; i+1 < len(ranges); i += 2 {
		count += int(ranges[i+1]-ranges[i]) + 1
		if count > maxClassRune {
			return anything
		}
	}
	set := make([]string, 0, count)
	for i := 0; i+1 < len(ranges); i += 2 {
		for r := ranges[i]; r <= ranges[i+1]; r++ {
			e, ok := a.encode(r)
			if !ok {
				return anything
			}
			set = append(set, e)
		}
	}
	return node{exact: dedupe(set)}
}

// concat combines the parts of a concatenation: runs of exact parts are
// multiplied out while the product stays small, a run followed by a part
// whose matches start with known strings is multiplied by those, and the
// best required set among these products and the parts' own sets is kept.
func concat(parts []node) node {
	cur := []string{""}
	leading := true // every part so far was exact
	var prefix, best []string
	consider := func(set []string) {
		if better(set, best) {
			best = set
		}
	}
	for _, p := range parts {
		if p.exact == nil {
			if pre := p.prefixes(); pre != nil && len(cur)*len(pre) <= maxRequired {
				c := cross(cur, pre)
				consider(c)
				if leading {
					prefix = c
				}
			} else if leading {
				prefix = cur
			}
			leading = false
			consider(cur)
			consider(p.req)
			cur = []string{""}
			continue
		}
		if len(cur)*len(p.exact) > maxExact {
			if leading {
				prefix = cur
			}
			leading = false
			consider(cur)
			cur = p.exact
			continue
		}
		cur = cross(cur, p.exact)
	}
	if leading {
		return node{exact: cur}
	}
	consider(cur)
	return node{prefix: prefix, req: best}
}

func (a analyzer) alternate(subs []*syntax.Regexp) node {
	nodes := make([]node, len(subs))
	exact := true
	for i, s := range subs {
		nodes[i] = a.analyze(s)
		if nodes[i].exact == nil {
			exact = false
		}
	}
	if exact {
		var set []string
		for _, n := range nodes {
			set = union(set, n.exact)
		}
		if len(set) <= maxExact {
			return node{exact: set}
		}
		if len(set) <= maxRequired {
			return node{prefix: set, req: set}
		}
		return node{}
	}
	var out node
	for _, n := range nodes {
		if out.prefix = union(out.prefix, n.prefixes()); n.prefixes() == nil || len(out.prefix) > maxRequired {
			break
		}
	}
	for _, n := range nodes {
		if n.prefixes() == nil || len(out.prefix) > maxRequired {
			out.prefix = nil
			break
		}
	}
	for _, n := range nodes {
		r := n.required()
		if r == nil || slices.Contains(r, "") {
			return node{prefix: out.prefix}
		}
		out.req = union(out.req, r)
		if len(out.req) > maxRequired {
			return node{prefix: out.prefix}
		}
	}
	return out
}

// better reports whether a is a more selective required set than b: the
// chance that one of its strings starts at a given position of ordinary
// text is lower. A set holding the empty string requires nothing. (Only
// the prefilter's speed depends on this choice, never its answers.)
func better(a, b []string) bool {
	if a == nil || slices.Contains(a, "") {
		return false
	}
	if b == nil {
		return true
	}
	return frequency(a) < frequency(b)
}

// frequency estimates how often one of set's strings starts at a position
// of ordinary request text: letters and spaces are common, digits less,
// punctuation and control bytes rare.
func frequency(set []string) float64 {
	sum := 0.0
	for _, s := range set {
		p := 1.0
		for i := 0; i < len(s); i++ {
			c := s[i]
			switch {
			case c == ' ':
				p *= 0.15
			case 'a' <= c && c <= 'z':
				p *= 0.05
			case '0' <= c && c <= '9':
				p *= 0.02
			case c >= 0x80:
				p *= 0.01
			default:
				p *= 0.005
			}
		}
		sum += p
	}
	return sum
}

func cross(a, b []string) []string {
	out := make([]string, 0, len(a)*len(b))
	for _, x := range a {
		for _, y := range b {
			out = append(out, x+y)
		}
	}
	return dedupe(out)
}

func union(a, b []string) []string {
	out := append(append(make([]string, 0, len(a)+len(b)), a...), b...)
	return dedupe(out)
}

func dedupe(s []string) []string {
	slices.Sort(s)
	return slices.Compact(s)
}

// minimize drops every literal that contains another one of the set: the
// shorter literal occurs wherever the longer one does.
func minimize(set []string) []string {
	set = dedupe(slices.Clone(set))
	slices.SortStableFunc(set, func(a, b string) int { return len(a) - len(b) })
	var out []string
	for _, s := range set {
		redundant := false
		for _, t := range out {
			if strings.Contains(s, t) {
				redundant = true
				break
			}
		}
		if !redundant {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// buildPrefilter compiles lits (lowered, none empty) into a dense
// Aho-Corasick automaton over byte classes (buildAC). It returns nil when
// the automaton would be too large to be worth it.
func buildPrefilter(lits []string) *prefilter {
	outs := make([]bool, len(lits))
	for i := range outs {
		outs[i] = true
	}
	a := buildAC(lits, outs, func(into *bool, from bool) { *into = *into || from }, func(end bool) bool { return end })
	if a == nil {
		return nil
	}
	return &prefilter{class: a.class, nclass: a.nclass, next: a.next}
}

// mayMatch reports whether one of the literals occurs in s (ASCII letters
// folded). false proves that the pattern does not match s.
func (p *prefilter) mayMatch(s string) bool {
	if p == nil {
		return true
	}
	state := 0
	nclass := p.nclass
	for i := 0; i < len(s); i++ {
		nx := p.next[state*nclass+int(p.class[s[i]])]
		if nx&finalBit != 0 {
			return true
		}
		state = int(nx)
	}
	return false
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
