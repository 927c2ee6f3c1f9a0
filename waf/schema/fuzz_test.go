package schema_test

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

var seeds = []string{
	`{` + okBet + `}`,
	`{` + okBet + `,"note":"a \"b\" \u00e9 \ud83c\udf40 \ud800 / \/"}`,
	`{"stake":{"amount":"1","currency":"EUR"},"legs":[{"label":"x"}],"meta":{"k":"v"},"tags":["vip","t"],"chat":{"text":"c","reply":{"text":"d"}}}`,
	`[1,-0.5e+3,true,false,null,"x",{}]`,
	`{"a":1,"a":2}`,
	`{"note":"x"`,
	"\"\xff\"",
	` 12 `,
}

// FuzzCheck holds the decoder to encoding/json: whatever Check's parser
// accepts, encoding/json decodes to the same value; whatever it refuses for
// syntax, encoding/json refuses too, except for what hedge refuses on
// purpose (duplicate keys, invalid UTF-8, depth).
func FuzzCheck(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	bet := builtin(f, "bet")
	nested := compileNested(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		v1 := bet.Check(body)
		v2 := nested.Check(body)
		if (v1 != nil && v1.Malformed) != (v2 != nil && v2.Malformed) {
			t.Fatalf("syntax verdict depends on the schema: %+v vs %+v", v1, v2)
		}
		valid := json.Valid(body)
		if v1 == nil || !v1.Malformed {
			if !valid {
				t.Fatalf("Check accepted %q as JSON; encoding/json says it is not", body)
			}
			return
		}
		deliberate := strings.Contains(v1.Reason, "duplicate key") || strings.Contains(v1.Reason, "invalid UTF-8") ||
			strings.Contains(v1.Reason, "nested deeper")
		if valid && !deliberate {
			t.Fatalf("Check refused %q (%v); encoding/json accepts it", body, v1)
		}
		if !utf8.ValidString(v1.Pointer) && !strings.Contains(v1.Reason, "UTF-8") {
			t.Fatalf("pointer %q is not UTF-8", v1.Pointer)
		}
	})
}

// FuzzReduce: Reduce never panics; for a body that passed Check its output
// is a JSON object of strings, each equal to the string at its pointer in
// the body.
func FuzzReduce(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	nested := compileNested(f)
	bet := builtin(f, "bet")
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, s := range []interface {
			Reduce(dst, body []byte) []byte
		}{nested, bet} {
			out := s.Reduce(nil, body)
			if v := bet.Check(body); v != nil && v.Malformed {
				continue // Check refuses it (duplicate keys, bad UTF-8, depth): Reduce never sees it
			}
			var doc any
			dec := json.NewDecoder(bytes.NewReader(body))
			dec.UseNumber()
			if dec.Decode(&doc) != nil || dec.More() {
				continue // may be the body itself: nothing more to hold it to
			}
			if bytes.Equal(out, body) {
				continue // the unscannable-body fallback (bad UTF-8, depth), or {}
			}
			var red map[string]string
			if err := json.Unmarshal(out, &red); err != nil {
				t.Fatalf("Reduce(%q) = %q: not an object of strings: %v", body, out, err)
			}
			for ptr, val := range red {
				got, ok := lookup(doc, ptr)
				if !ok || got != val {
					t.Fatalf("Reduce(%q): %s = %q, but the body holds %v there", body, ptr, val, got)
				}
			}
		}
	})
}

// lookup resolves an RFC 6901 pointer in a decoded document.
func lookup(doc any, ptr string) (any, bool) {
	if ptr == "" {
		return doc, true
	}
	if ptr[0] != '/' {
		return nil, false
	}
	for _, tok := range strings.Split(ptr[1:], "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch d := doc.(type) {
		case map[string]any:
			v, ok := d[tok]
			if !ok {
				return nil, false
			}
			doc = v
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(d) {
				return nil, false
			}
			doc = d[i]
		default:
			return nil, false
		}
	}
	return doc, true
}
