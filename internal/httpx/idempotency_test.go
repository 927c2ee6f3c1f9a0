package httpx

import (
	"errors"
	"strings"
	"testing"
)

func TestParseIdempotencyKey(t *testing.T) {
	long := strings.Repeat("k", MaxIdempotencyKeyLen)
	tests := []struct {
		v       string
		want    string
		wantErr error
	}{
		// draft-ietf-httpapi-idempotency-key-header examples.
		{`"8e03978e-40d5-43e8-bc93-6894a57f9324"`, "8e03978e-40d5-43e8-bc93-6894a57f9324", nil},
		// The bare form clients send.
		{`8e03978e-40d5-43e8-bc93-6894a57f9324`, "8e03978e-40d5-43e8-bc93-6894a57f9324", nil},
		{`01ARZ3NDEKTSV4RRFFQ69G5FAV`, "01ARZ3NDEKTSV4RRFFQ69G5FAV", nil},
		// RFC 8941 String details.
		{`"a b"`, "a b", nil},
		{`"a\"b\\c"`, `a"b\c`, nil},
		{` "k" `, "k", nil},
		{"\t k \t", "k", nil},
		{`"` + long + `"`, long, nil},
		{long, long, nil},
		{`"\\"`, `\`, nil},
		{``, "", ErrIdempotencyKeyMissing},
		{"  \t", "", ErrIdempotencyKeyMissing},
		{`""`, "", ErrIdempotencyKeyMalformed},
		{`"` + long + `k"`, "", ErrIdempotencyKeyMalformed},
		{long + "k", "", ErrIdempotencyKeyMalformed},
		{`"abc`, "", ErrIdempotencyKeyMalformed},
		{`"abc\"`, "", ErrIdempotencyKeyMalformed},
		{`"a\nb"`, "", ErrIdempotencyKeyMalformed},
		{`"a\`, "", ErrIdempotencyKeyMalformed},
		{"\"a\tb\"", "", ErrIdempotencyKeyMalformed},
		{"\"caf\xc3\xa9\"", "", ErrIdempotencyKeyMalformed},
		{"\"a\x7fb\"", "", ErrIdempotencyKeyMalformed},
		{`"abc";v=1`, "", ErrIdempotencyKeyMalformed},
		{`"abc", "def"`, "", ErrIdempotencyKeyMalformed},
		{`"abc"x`, "", ErrIdempotencyKeyMalformed},
		{`a b`, "", ErrIdempotencyKeyMalformed},
		{`a,b`, "", ErrIdempotencyKeyMalformed},
		{`abc"`, "", ErrIdempotencyKeyMalformed},
		{"caf\xc3\xa9", "", ErrIdempotencyKeyMalformed},
		{"a\x00", "", ErrIdempotencyKeyMalformed},
	}
	for _, tt := range tests {
		dst := []byte("pfx:")
		got, err := ParseIdempotencyKey(dst, []byte(tt.v))
		if !errors.Is(err, tt.wantErr) {
			t.Errorf("ParseIdempotencyKey(%q) error = %v, want %v", tt.v, err, tt.wantErr)
		}
		if want := "pfx:" + tt.want; string(got) != want {
			t.Errorf("ParseIdempotencyKey(%q) = %q, want %q", tt.v, got, want)
		}
	}
}

func FuzzIdempotencyKey(f *testing.F) {
	for _, s := range []string{
		`"8e03978e-40d5-43e8-bc93-6894a57f9324"`, `8e03978e-40d5-43e8-bc93-6894a57f9324`,
		`"a\"b\\c"`, `""`, `"abc`, `"abc";v=1`, ` "k" `, `a b`, "", `"\x"`,
		`"` + strings.Repeat("k", 255) + `"`, strings.Repeat("k", 256),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		const pfx = "pfx:"
		got, err := ParseIdempotencyKey([]byte(pfx), []byte(v))
		if !strings.HasPrefix(string(got), pfx) {
			t.Fatalf("ParseIdempotencyKey(%q) = %q, lost dst", v, got)
		}
		key := got[len(pfx):]
		trimmed := strings.Trim(v, " \t")
		switch {
		case trimmed == "":
			if err != ErrIdempotencyKeyMissing {
				t.Fatalf("ParseIdempotencyKey(%q) error = %v, want missing", v, err)
			}
		case err == ErrIdempotencyKeyMalformed:
			if len(key) != 0 {
				t.Fatalf("ParseIdempotencyKey(%q) failed but appended %q", v, key)
			}
			return
		case err != nil:
			t.Fatalf("ParseIdempotencyKey(%q) error = %v", v, err)
		}
		if err != nil {
			return
		}
		if len(key) < 1 || len(key) > MaxIdempotencyKeyLen {
			t.Fatalf("ParseIdempotencyKey(%q) = %q: %d bytes, want 1..%d", v, key, len(key), MaxIdempotencyKeyLen)
		}
		for _, c := range key {
			if c < 0x20 || c > 0x7e {
				t.Fatalf("ParseIdempotencyKey(%q) = %q: holds %#x, not printable ASCII", v, key, c)
			}
		}
		// The key must be what the value says: re-serialized, it gives the value back.
		canonical := AppendIdempotencyKey(nil, key)
		if trimmed[0] == '"' {
			if string(canonical) != trimmed {
				t.Fatalf("ParseIdempotencyKey(%q) = %q, which serializes to %s", v, key, canonical)
			}
		} else if string(key) != trimmed {
			t.Fatalf("ParseIdempotencyKey(%q) = %q, want the bare value %q", v, key, trimmed)
		}
		// The one spelling the edge forwards parses back to the same key.
		again, err := ParseIdempotencyKey(nil, canonical)
		if err != nil || string(again) != string(key) {
			t.Fatalf("the canonical form %s of %q parses to %q, %v", canonical, key, again, err)
		}
	})
}

func BenchmarkParseIdempotencyKey(b *testing.B) {
	for _, bm := range []struct{ name, v string }{
		{"sf-string", `"8e03978e-40d5-43e8-bc93-6894a57f9324"`},
		{"bare", `8e03978e-40d5-43e8-bc93-6894a57f9324`},
	} {
		b.Run(bm.name, func(b *testing.B) {
			v := []byte(bm.v)
			buf := make([]byte, 0, MaxIdempotencyKeyLen)
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if buf, err = ParseIdempotencyKey(buf[:0], v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
