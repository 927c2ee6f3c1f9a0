package crs

import "testing"

func TestMatchesBytes(t *testing.T) {
	cases := []struct {
		expr string
		want bool
	}{
		{`\xbc[^>\xbe]*`, true},
		{`\x{bc}[^>\x{be}]*[>\x{be}]`, true}, // CRS v4's form: the case wasilibs' plugin misses
		{`\x41\x{41}`, false},
		{`\\xbc`, false},    // an escaped backslash, then text
		{`\x{20ac}`, false}, // a code point, valid UTF-8
		{`\xc2\xbc`, false}, // bytes that spell valid UTF-8 (¼)
		{`(?i)union\s+select`, false},
		{`\x`, false},
		{`\x{`, false},
	}
	for _, c := range cases {
		if got := matchesBytes(c.expr); got != c.want {
			t.Errorf("matchesBytes(%q) = %v, want %v", c.expr, got, c.want)
		}
	}
}
