package crs

import (
	"math/rand/v2"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
)

// TestQuickerIsTheTransformation: what the pruner calls in place of
// Coraza's removeWhitespace answers as it does, on printable ASCII (where
// the check answers), around its edges and on any other bytes (where it
// hands over).
func TestQuickerIsTheTransformation(t *testing.T) {
	e := blockEngine(t)
	rules, ok := ruleGroup(e.waf)
	if !ok {
		t.Fatal("Coraza's compiled rules could not be read")
	}
	var rw plugintypes.Transformation
	for _, r := range rules {
		for _, tr := range r.tr {
			if strings.HasSuffix(runtime.FuncForPC(reflect.ValueOf(tr).Pointer()).Name(), "/transformations.removeWhitespace") {
				rw = tr
			}
		}
	}
	if rw == nil {
		t.Fatal("no CRS rule uses removeWhitespace: the test has nothing to compare")
	}
	q := quicker(rw)
	if reflect.ValueOf(q).Pointer() == reflect.ValueOf(rw).Pointer() {
		t.Fatal("quicker did not wrap removeWhitespace")
	}
	inputs := []string{"", "abc", "a b", strings.Repeat("v", 7000), strings.Repeat("x", 15) + " ", "tab\there", "\x7f\x21~",
		"nbsp\u00a0x", "nel\u0085x", "ideo\u3000x", "bad\xffutf8", "\x00\x1f\x20", strings.Repeat("ab", 9) + "\n"}
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte(" \t\n\v\f\r!~\x7f\x80\xa0\xc2\x85\xe3\x00Aa0")
	for range 3000 {
		b := make([]byte, r.IntN(40))
		for i := range b {
			if r.IntN(4) == 0 {
				b[i] = alphabet[r.IntN(len(alphabet))]
			} else {
				b[i] = byte(0x21 + r.IntN(0x5f))
			}
		}
		inputs = append(inputs, string(b))
	}
	for _, s := range inputs {
		wantS, wantCh, wantErr := rw(s)
		gotS, gotCh, gotErr := q(s)
		if gotS != wantS || gotCh != wantCh || (gotErr == nil) != (wantErr == nil) {
			t.Fatalf("%q: Coraza's gives %q, %v, %v; quicker %q, %v, %v", s, wantS, wantCh, wantErr, gotS, gotCh, gotErr)
		}
		if want := !strings.ContainsFunc(s, func(c rune) bool { return c < 0x21 || c >= 0x80 }); printableNoSpace(s) != want {
			t.Fatalf("printableNoSpace(%q) = %v, want %v", s, !want, want)
		}
	}
}
