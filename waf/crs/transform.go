package crs

import (
	"reflect"
	"runtime"
	"strings"

	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
)

// quicker returns t, or t behind a check that answers for it when its
// answer is known without running it. Only the pruner's own calls go
// through it (Coraza keeps running t as it is), and only where the answer
// is provably t's: the same string, unchanged.
func quicker(t plugintypes.Transformation) plugintypes.Transformation {
	name := runtime.FuncForPC(reflect.ValueOf(t).Pointer()).Name()
	if strings.HasSuffix(name, "/transformations.removeWhitespace") {
		// Coraza's removeWhitespace drops what unicode.IsSpace says is a
		// space, rune by rune; in printable ASCII only ' ' is one, and it
		// is below 0x21. A long value (a token, a cookie) is read at a
		// word a step instead.
		return func(s string) (string, bool, error) {
			if printableNoSpace(s) {
				return s, false, nil
			}
			return t(s)
		}
	}
	return t
}

// printableNoSpace reports whether every byte of s is in 0x21..0x7f.
func printableNoSpace(s string) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(s); i += 8 {
		x := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		// A byte of 0x80 or more, or one below 0x21, sets its high bit
		// in x | (x - 0x21…) … &^ … as the classic "has less than" test.
		if (x|((x-ones*0x21)&^x))&highs != 0 {
			return false
		}
	}
	for ; i < len(s); i++ {
		if s[i] < 0x21 || s[i] >= 0x80 {
			return false
		}
	}
	return true
}
