package schema

import (
	"bytes"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// bet1KB is a 1 KiB bet as a chatty client sends it: every pinned field
// plus a nickname and a comment.
var bet1KB = func() []byte {
	head := `{"table":"bacc-07","round_id":"r-000417","amount":"12.50","currency":"EUR","selection":"banker",` +
		`"odds":1.95,"client_ref":"9b2f5a3c-6d1e-4f7a-8b9c-0a1b2c3d4e5f","placed_at":"2025-11-02T19:04:05.123Z",` +
		`"nickname":"Zoë O'Brien","comment":"GL all, 50% on banker & tie 🍀","note":"`
	tail := `"}`
	fill := strings.Repeat("GL everyone, banker streak again? 50% on it & a bit on tie 🍀 ", 20)
	b := []byte(head + fill)
	for len(b)+len(tail) > 1024 {
		b = b[:len(b)-1]
	}
	for len(b)+len(tail) < 1024 {
		b = append(b, 'x')
	}
	return append(bytes.ToValidUTF8(b, nil), tail...)
}()

func mustBet(b *testing.B) *Schema {
	s, err := Load("builtin:bet")
	if err != nil {
		b.Fatal(err)
	}
	if v := s.Check(bet1KB); v != nil {
		b.Fatalf("the benchmark bet is invalid: %v", v)
	}
	return s
}

func BenchmarkCheckBet1KB(b *testing.B) {
	s := mustBet(b)
	b.SetBytes(int64(len(bet1KB)))
	b.ReportAllocs()
	for b.Loop() {
		if v := s.Check(bet1KB); v != nil {
			b.Fatal(v)
		}
	}
}

// BenchmarkCheckBet1KBStdlibDecode is the same check with the body decoded
// by jsonschema's own encoding/json path, for comparison with Check's
// decoder (which also refuses duplicate keys and invalid UTF-8).
func BenchmarkCheckBet1KBStdlibDecode(b *testing.B) {
	s := mustBet(b)
	b.SetBytes(int64(len(bet1KB)))
	b.ReportAllocs()
	for b.Loop() {
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader(bet1KB))
		if err != nil {
			b.Fatal(err)
		}
		if err := s.js.Validate(v); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReduceBet1KB(b *testing.B) {
	s := mustBet(b)
	dst := make([]byte, 0, 2048)
	b.SetBytes(int64(len(bet1KB)))
	b.ReportAllocs()
	var out []byte
	for b.Loop() {
		out = s.Reduce(dst[:0], bet1KB)
	}
	if !bytes.Contains(out, []byte(`"/note":"GL everyone`)) || bytes.Contains(out, []byte("bacc-07")) {
		b.Fatalf("unexpected reduction %s", out)
	}
}
