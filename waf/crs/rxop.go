package crs

import (
	"regexp"
	"strconv"
	"unicode/utf8"

	"github.com/corazawaf/coraza/v3/experimental/plugins"
	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
	"rsc.io/binaryregexp"
)

// hedge's @rx keeps Coraza's semantics: a pattern whose escapes stand for
// bytes that are not valid UTF-8 (\xbc, and CRS v4's \x{bc} form) matches
// raw bytes, without flags, as Coraza's binary matcher does; every other
// pattern matches UTF-8 text with (?sm) prepended. What it adds is speed: a
// prefilter (prefilter.go) that proves most values unable to match before
// any regular expression runs, and, in re2_cgo builds, RE2 instead of Go's
// regexp (rx_re2.go).
//
// Registration is process-wide, so the operator serves only WAFs built by
// New (recognised by their root file system); any other Coraza WAF in the
// process, such as the plain reference in the benchmarks and the
// differential test, gets a copy of Coraza's default behaviour on Go's
// regexp, without prefilter.
func init() {
	plugins.RegisterOperator("rx", newRX)
}

// matcher is what the operator needs of a compiled pattern; Go's regexp,
// binaryregexp and RE2 all have it.
type matcher interface {
	MatchString(string) bool
	FindStringSubmatchIndex(string) []int
}

type rxOp struct {
	re   matcher
	pf   *prefilter // nil: none
	lits []string   // pf's literals (rule pruning scans them for many rules at once)
}

func newRX(o plugintypes.OperatorOptions) (plugintypes.Operator, error) {
	if _, ours := o.Root.(rootFS); !ours {
		return newGoRX(o)
	}
	binary := matchesBytes(o.Arguments)
	expr, key := "(?sm)"+o.Arguments, "hedge-rx:u:"+o.Arguments
	if binary {
		expr, key = o.Arguments, "hedge-rx:b:"+o.Arguments
	}
	v, err := memoize(o.Memoizer, key, func() (any, error) {
		re, err := compile(expr, binary)
		if err != nil {
			return nil, err
		}
		op := &rxOp{re: re}
		if lits, ok := requiredLiterals(expr, binary); ok {
			if op.pf = buildPrefilter(lits); op.pf != nil {
				op.lits = lits
			}
		}
		return op, nil
	})
	if err != nil {
		// RE2 refuses a few constructs Go accepts; such a rule keeps Go's
		// engine rather than failing to load.
		return newGoRX(o)
	}
	return v.(*rxOp), nil
}

// Evaluate first asks the prefilter, which proves most values unable to
// match without running the pattern. The rest it answers with a plain
// match: nearly every value matches nothing, and asking for submatches
// (which rules with the capture action do) would make RE2 run its slower
// submatch engine on every value. Only a value that matches is searched
// again for the groups.
func (o *rxOp) Evaluate(tx plugintypes.TransactionState, value string) bool {
	if !o.pf.mayMatch(value) || !o.re.MatchString(value) {
		return false
	}
	if !tx.Capturing() {
		return true
	}
	m := o.re.FindStringSubmatchIndex(value)
	if m == nil {
		return false
	}
	// Up to 9 groups, ModSecurity's TX.0..TX.8.
	for i := 0; i < len(m)/2 && i < 9; i++ {
		if m[2*i] >= 0 {
			tx.CaptureField(i, value[m[2*i]:m[2*i+1]])
		} else {
			tx.CaptureField(i, "")
		}
	}
	return true
}

// newGoRX is Coraza's default @rx on Go's regexp (without its optional
// prefilter).
func newGoRX(o plugintypes.OperatorOptions) (plugintypes.Operator, error) {
	binary := matchesBytes(o.Arguments)
	expr, key := "(?sm)"+o.Arguments, "hedge-gorx:u:"+o.Arguments
	if binary {
		expr, key = o.Arguments, "hedge-gorx:b:"+o.Arguments
	}
	v, err := memoize(o.Memoizer, key, func() (any, error) { return compileGo(expr, binary) })
	if err != nil {
		return nil, err
	}
	return &rxOp{re: v.(matcher)}, nil
}

func compileGo(expr string, binary bool) (matcher, error) {
	if binary {
		return binaryregexp.Compile(expr)
	}
	return regexp.Compile(expr)
}

func memoize(m plugintypes.Memoizer, key string, fn func() (any, error)) (any, error) {
	if m == nil {
		return fn()
	}
	return m.Do(key, fn)
}

// matchesBytes reports whether expr's hex escapes (\xNN or \x{N..}) spell a
// byte sequence that is not valid UTF-8, i.e. the pattern is about raw bytes.
// An escaped backslash (\\) is skipped, so \\xff is not an escape.
func matchesBytes(expr string) bool {
	dec := make([]byte, 0, len(expr))
	for i := 0; i < len(expr); i++ {
		c := expr[i]
		if c != '\\' || i+1 >= len(expr) {
			dec = append(dec, c)
			continue
		}
		if expr[i+1] != 'x' {
			dec = append(dec, c, expr[i+1])
			i++
			continue
		}
		var hex string
		next := i
		if i+2 < len(expr) && expr[i+2] == '{' {
			end := i + 3
			for end < len(expr) && expr[end] != '}' {
				end++
			}
			if end >= len(expr) {
				dec = append(dec, c)
				continue
			}
			hex, next = expr[i+3:end], end
		} else if i+4 <= len(expr) {
			hex, next = expr[i+2:i+4], i+3
		} else {
			dec = append(dec, c)
			continue
		}
		v, err := strconv.ParseUint(hex, 16, 32)
		if err != nil || hex == "" {
			dec = append(dec, c)
			continue
		}
		if v <= 0xff {
			dec = append(dec, byte(v))
		} else {
			dec = utf8.AppendRune(dec, rune(v))
		}
		i = next
	}
	return !utf8.Valid(dec)
}
