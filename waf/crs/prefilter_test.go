package crs

import (
	"regexp"
	"slices"
	"testing"

	"rsc.io/binaryregexp"
)

func TestRequiredLiterals(t *testing.T) {
	cases := []struct {
		name   string
		expr   string
		latin1 bool
		want   []string // nil: no prefilter
	}{
		{"literal", `union`, false, []string{"union"}},
		{"case-insensitive s has the long s", `(?i)select`, false, []string{"select", "ſelect"}},
		{"case-insensitive k has the kelvin sign", `(?i)k`, false, []string{"k", "\u212a"}},
		{"case-insensitive non-ASCII keeps both cases", `(?i)é`, false, []string{"É", "é"}},
		{"case-sensitive literal is folded (more values pass)", `Union`, false, []string{"union"}},
		{"the rarer word of a concatenation", `union\s+select`, false, []string{"select"}},
		{"alternation", `(?:union|select)`, false, []string{"select", "union"}},
		{"small class multiplies", `[ab]c`, false, []string{"ac", "bc"}},
		{"optional prefix is dropped by minimize", `(?:abc)?d`, false, []string{"d"}},
		{"captures are transparent", `(a)(b)`, false, []string{"ab"}},
		{"repetition from one", `x{2,}y?`, false, []string{"x"}},
		{"repetition from zero", `x{0,3}y`, false, []string{"y"}},
		{"anchors and boundaries", `^\bfoo\b$`, false, []string{"foo"}},
		{"trie of words", `a(?:b(?:c|d)|e)`, false, []string{"abc", "abd", "ae"}},
		{"words after an unknown start", `.*(?:get|post)\s`, false, []string{"get\t", "get\n", "get\f", "get\r", "get ", "post\t", "post\n", "post\f", "post\r", "post "}},
		{"empty match", `a*`, false, nil},
		{"empty pattern", `^$`, false, nil},
		{"alternation with empty", `a|`, false, nil},
		{"alternation with unknown branch", `abc|.`, false, nil},
		{"negated class", `[^a]`, false, nil},
		{"wide class", `[0-9_a-z]+`, false, nil},
		{"U+FFFD matches invalid bytes in Go", `\x{fffd}`, false, nil},
		{"class holding U+FFFD", `[\x{fff0}-\x{ffff}]`, false, nil},
		{"rune above Latin-1 as UTF-8", `\xff`, false, []string{"\xc3\xbf"}},
		{"byte pattern spells bytes", `\xbc[^>]*\xbe`, true, []string{"\xbc"}},
		{"byte pattern: no case folding", `(?i)\xbcab`, true, nil},
		{"byte pattern folding only", `(?i)ab`, true, nil},
		{"byte pattern with a UTF-8 character", `é`, true, nil},
		{"does not parse", `(`, false, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, ok := requiredLiterals(c.expr, c.latin1)
			if !ok {
				got = nil
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("requiredLiterals(%q, latin1=%v) = %q (ok %v), want %q", c.expr, c.latin1, got, ok, c.want)
			}
		})
	}
}

func TestPrefilterScan(t *testing.T) {
	p := buildPrefilter([]string{"select", "ſelect", "<", "union"})
	cases := []struct {
		in   string
		want bool
	}{
		{"", false},
		{"hello world", false},
		{"SELECT 1", true},
		{"xSeLeCtx", true},
		{"ſELECT", true},
		{"a<b", true},
		{"unio", false},
		{"uniunion", true},
		{"selec t", false},
		{"\xff\xfeUNION", true},
	}
	for _, c := range cases {
		if got := p.mayMatch(c.in); got != c.want {
			t.Errorf("mayMatch(%q) = %v, want %v", c.in, got, c.want)
		}
	}
	if (*prefilter)(nil).mayMatch("x") != true {
		t.Error("a nil prefilter must let every value through")
	}
	if never := buildPrefilter(nil); never.mayMatch("anything") {
		t.Error("an empty literal set (a pattern that never matches) must let nothing through")
	}
}

// prefilterPatterns are tricky patterns for the fuzzer; it also gets every
// CRS pattern in the corpus test.
var prefilterPatterns = []struct {
	expr   string
	latin1 bool
}{
	{`(?sm)(?i)union\s+select`, false},
	{`(?sm)(?i)(?:k|s)ey`, false},
	{`(?sm)(?i)<script[^>]*>`, false},
	{`(?sm)[\x{fff0}-\x{ffff}]x`, false},
	{`(?sm)\xffab`, false},
	{`(?sm)(?i)\bon[a-z]{3,}\s*=`, false},
	{`(?sm)^(?:get|post) /`, false},
	{`(?sm)(?i)(?:a(?:b|c)d|e+f?)g`, false},
	{`(?sm)(?i)é|ǅ|ß`, false},
	{`\xbc[^>\xbe]*[>\xbe]|<[^\xbe]*\xbe`, true},
	{`\$+(?:[A-Z_a-z\x7f-\xff][0-9A-Z_a-z\x7f-\xff]*)`, true},
}

// FuzzPrefilter checks the prefilter's one promise: when it says a value
// cannot match, the regular expression does not match it.
func FuzzPrefilter(f *testing.F) {
	for i := range prefilterPatterns {
		for _, s := range []string{"union select", "UNION\tSELECT", "ſelect", "KEY", "\u212aey", "<ScRiPt>", "\xef\xbf\xbd", "\xff", "x onload =",
			"GET /", "adg", "ég", "ǆ", "ẞ", "\xbcx\xbe", "$a\x80"} {
			f.Add(uint8(i), s)
		}
	}
	f.Fuzz(func(t *testing.T, i uint8, s string) {
		p := prefilterPatterns[int(i)%len(prefilterPatterns)]
		checkPrefilter(t, p.expr, p.latin1, newPrefilter(p.expr, p.latin1), []string{s})
	})
}

// checkPrefilter fails when pf rejects a value the pattern matches (Go's
// regexp, or binaryregexp for byte patterns, as in Coraza).
func checkPrefilter(t testing.TB, expr string, latin1 bool, pf *prefilter, values []string) {
	t.Helper()
	var match func(string) bool
	if latin1 {
		match = binaryregexp.MustCompile(expr).MatchString
	} else {
		match = regexp.MustCompile(expr).MatchString
	}
	for _, v := range values {
		if !pf.mayMatch(v) && match(v) {
			lits, _ := requiredLiterals(expr, latin1)
			t.Fatalf("prefilter of %q (literals %q) rejects %q, which the pattern matches", expr, lits, v)
		}
	}
}

// The scan runs for every value every @rx rule inspects: it must not
// allocate.
func TestPrefilterAllocs(t *testing.T) {
	p := newPrefilter(`(?sm)(?i)(?:union|select|insert|update|delete)\s`, false)
	ua := browserGET.headers[1][1]
	if n := testing.AllocsPerRun(100, func() { p.mayMatch(ua) }); n != 0 {
		t.Errorf("mayMatch allocates %v times per call, want 0", n)
	}
}

// BenchmarkPrefilter scans a browser User-Agent with the prefilter of a
// CRS-sized keyword alternation.
func BenchmarkPrefilter(b *testing.B) {
	p := newPrefilter(`(?sm)(?i)\b(?:a(?:dd(?:group|user)|lias|pt(?:-get|itude))|c(?:at|h(?:mod|own)|url)|n(?:c|map|etcat)|p(?:erl|ython|hp)|s(?:udo|sh|leep)|w(?:get|hoami))\b`, false)
	if p == nil {
		b.Fatal("no prefilter")
	}
	ua := browserGET.headers[1][1]
	b.ReportAllocs()
	b.SetBytes(int64(len(ua)))
	for b.Loop() {
		p.mayMatch(ua)
	}
}
