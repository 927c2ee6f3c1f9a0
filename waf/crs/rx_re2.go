//go:build re2_cgo

package crs

import (
	"regexp"
	"strconv"
	"unicode/utf8"

	"github.com/corazawaf/coraza/v3/experimental/plugins"
	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
	re2 "github.com/wasilibs/go-re2"
	re2x "github.com/wasilibs/go-re2/experimental"
	"rsc.io/binaryregexp"
)

// regexEngine names the @rx implementation in Info.
const regexEngine = "re2"

// hedge's @rx runs CRS's regular expressions on RE2 (C++, through cgo)
// instead of Go's regexp, which dominates Coraza's CPU time. It keeps
// Coraza's semantics: a pattern whose escapes stand for bytes that are not
// valid UTF-8 (\xbc, and CRS v4's \x{bc} form, which the wasilibs plugin
// misses so that rule 941310 stops matching) matches raw bytes, without
// flags, as Coraza's binary matcher does; every other pattern matches
// UTF-8 text with (?sm) prepended.
//
// Registration is process-wide, so the operator serves only WAFs built by
// New (recognised by their root file system); any other Coraza WAF in the
// process, such as the plain reference in the benchmarks, gets a copy of
// Coraza's default behaviour on Go's regexp.
func init() {
	plugins.RegisterOperator("rx", newRX)
}

func newRX(o plugintypes.OperatorOptions) (plugintypes.Operator, error) {
	if _, ours := o.Root.(rootFS); !ours {
		return newGoRX(o)
	}
	binary := matchesBytes(o.Arguments)
	key := "hedge-re2:u:" + o.Arguments
	if binary {
		key = "hedge-re2:b:" + o.Arguments
	}
	v, err := memoize(o.Memoizer, key, func() (any, error) {
		if binary {
			return re2x.CompileLatin1(o.Arguments)
		}
		return re2.Compile("(?sm)" + o.Arguments)
	})
	if err != nil {
		// RE2 refuses a few constructs Go accepts; such a rule keeps Go's
		// engine rather than failing to load.
		return newGoRX(o)
	}
	return &re2RX{re: v.(*re2.Regexp)}, nil
}

type re2RX struct{ re *re2.Regexp }

// Evaluate answers most calls with RE2's DFA: nearly every value matches
// nothing, and asking for submatches (which rules with the capture action
// do) would make RE2 run its slower submatch engine on every value. Only a
// value that matches is searched again for the groups.
func (o *re2RX) Evaluate(tx plugintypes.TransactionState, value string) bool {
	if !o.re.MatchString(value) {
		return false
	}
	if !tx.Capturing() {
		return true
	}
	m := o.re.FindStringSubmatchIndex(value)
	if m == nil {
		return false
	}
	capture(tx, value, m)
	return true
}

// capture hands up to 9 groups (ModSecurity's TX.0..TX.8) to the transaction.
func capture(tx plugintypes.TransactionState, value string, m []int) {
	for i := 0; i < len(m)/2 && i < 9; i++ {
		if m[2*i] >= 0 {
			tx.CaptureField(i, value[m[2*i]:m[2*i+1]])
		} else {
			tx.CaptureField(i, "")
		}
	}
}

// goRX is Coraza's default @rx (without its optional prefilter).
type goRX struct {
	utf8 *regexp.Regexp
	bin  *binaryregexp.Regexp
}

func newGoRX(o plugintypes.OperatorOptions) (plugintypes.Operator, error) {
	if matchesBytes(o.Arguments) {
		v, err := memoize(o.Memoizer, "hedge-gorx:b:"+o.Arguments, func() (any, error) { return binaryregexp.Compile(o.Arguments) })
		if err != nil {
			return nil, err
		}
		return &goRX{bin: v.(*binaryregexp.Regexp)}, nil
	}
	v, err := memoize(o.Memoizer, "hedge-gorx:u:"+o.Arguments, func() (any, error) { return regexp.Compile("(?sm)" + o.Arguments) })
	if err != nil {
		return nil, err
	}
	return &goRX{utf8: v.(*regexp.Regexp)}, nil
}

func (o *goRX) Evaluate(tx plugintypes.TransactionState, value string) bool {
	var matched bool
	if o.bin != nil {
		matched = o.bin.MatchString(value)
	} else {
		matched = o.utf8.MatchString(value)
	}
	if !matched || !tx.Capturing() {
		return matched
	}
	var m []int
	if o.bin != nil {
		m = o.bin.FindStringSubmatchIndex(value)
	} else {
		m = o.utf8.FindStringSubmatchIndex(value)
	}
	if m == nil {
		return false
	}
	capture(tx, value, m)
	return true
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
