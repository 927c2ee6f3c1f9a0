package waf

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"hedge/configs"
	"hedge/waf/waftest"
)

// testLimits are small limits, so that each case reaches one.
func testLimits() *argLimits {
	l := newArgLimits(configs.RouteLimits{MaxArgs: 5, MaxArgNameBytes: 16, MaxArgValueBytes: 32, MaxArgsBytes: 64, MaxJSONDepth: 3}, configs.Limits{})
	return &l
}

func TestArgTally(t *testing.T) {
	type want struct {
		args   int
		broken argBreak
	}
	cases := []struct {
		name string
		run  func(*argTally) bool
		want want
	}{
		{"no query", func(a *argTally) bool { return a.query([]byte("/lobby")) }, want{0, argsOK}},
		{"query pairs, an empty one skipped, a name without a value", func(a *argTally) bool {
			return a.query([]byte("/lobby?a=1&&b=2&flag#frag=x&y=z"))
		}, want{3, argsOK}},
		{"too many query arguments", func(a *argTally) bool { return a.query([]byte("/?a&b&c&d&e&f")) }, want{6, tooManyArgs}},
		{"a long name", func(a *argTally) bool { return a.query([]byte("/?" + strings.Repeat("n", 17) + "=1")) }, want{1, argNameTooLong}},
		{"a long value", func(a *argTally) bool { return a.query([]byte("/?n=" + strings.Repeat("v", 33))) }, want{1, argValueTooLong}},
		{"names and values together too large", func(a *argTally) bool {
			return a.query([]byte("/?a=" + strings.Repeat("v", 30) + "&b=" + strings.Repeat("v", 30) + "&c=vvvv"))
		}, want{3, argsTooLarge}},
		{"cookies of two Cookie fields, blanks and '=' alone skipped", func(a *argTally) bool {
			return a.cookies([]byte("Host: a\r\nCookie: sid=1; theme=dark;; =\r\nX-Cookie: a=b\r\ncookie: lang=en\r\n\r\n"))
		}, want{3, argsOK}},
		{"too many cookies", func(a *argTally) bool {
			return a.cookies([]byte("Cookie: a=1; b=2; c=3; d=4; e=5; f=6\r\n\r\n"))
		}, want{6, tooManyArgs}},
		{"urlencoded body", func(a *argTally) bool {
			return a.body([]byte("application/x-www-form-urlencoded"), []byte("a=1&b=2"))
		}, want{2, argsOK}},
		{"an unknown type is read as urlencoded (CRS 901340)", func(a *argTally) bool {
			return a.body([]byte("text/plain"), []byte("a=1&b=2&c"))
		}, want{3, argsOK}},
		{"JSON leaves and the array's length", func(a *argTally) bool {
			return a.body([]byte("application/json; charset=utf-8"), []byte(`{"a":1,"b":[true,null],"c":{"d":"x"}}`))
		}, want{5, argsOK}},
		{"a +json type", func(a *argTally) bool {
			return a.body([]byte("application/merge-patch+json"), []byte(`{"a":1,"b":2}`))
		}, want{2, argsOK}},
		{"empty containers are no arguments", func(a *argTally) bool {
			return a.body([]byte("application/json"), []byte(` { "a" : [ ] , "b" : { } } `))
		}, want{0, argsOK}},
		{"JSON too many leaves", func(a *argTally) bool {
			return a.body([]byte("application/json"), []byte(`[1,2,3,4,5,6]`))
		}, want{6, tooManyArgs}},
		{"a JSON leaf's name is its flattened path", func(a *argTally) bool {
			// json.abcdefghij.k = 17 bytes
			return a.body([]byte("application/json"), []byte(`{"abcdefghij":{"k":1}}`))
		}, want{1, argNameTooLong}},
		{"JSON as deep as allowed", func(a *argTally) bool {
			return a.body([]byte("application/json"), []byte(`{"a":{"b":[1]}}`))
		}, want{2, argsOK}},
		{"JSON one level too deep", func(a *argTally) bool {
			return a.body([]byte("application/json"), []byte(`{"a":{"b":[{}]}}`))
		}, want{0, jsonTooDeep}},
		{"escaped quotes in JSON strings", func(a *argTally) bool {
			return a.body([]byte("application/json"), []byte(`{"a\"b":"c\\\"d","e":"\\"}`))
		}, want{2, argsOK}},
		{"XML attributes and text", func(a *argTally) bool {
			return a.body([]byte("text/xml"), []byte(`<?xml version="1.0"?><!-- c --><a x='1' z=3 w><b>text</b> <c/><![CDATA[raw]]></a>`))
		}, want{5, argsOK}},
		{"XML too many text nodes", func(a *argTally) bool {
			return a.body([]byte("application/xml"), []byte(`<a><b>1</b><b>2</b><b>3</b><b>4</b><b>5</b><b>6</b></a>`))
		}, want{6, tooManyArgs}},
		{"multipart fields and a file", func(a *argTally) bool {
			body := "--XX\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nvalue\r\n" +
				"--XX\r\nContent-Disposition: form-data; filename=\"f.txt\"; name=\"up\"\r\nContent-Type: text/plain\r\n\r\n" + strings.Repeat("z", 500) + "\r\n--XX--\r\n"
			return a.body([]byte(`multipart/form-data; boundary="XX"`), []byte(body))
		}, want{2, argsOK}},
		{"a multipart field value too long", func(a *argTally) bool {
			body := "--XX\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n" + strings.Repeat("v", 33) + "\r\n--XX--\r\n"
			return a.body([]byte("multipart/form-data; boundary=XX"), []byte(body))
		}, want{1, argValueTooLong}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := argTally{l: testLimits()}
			ok := c.run(&a)
			if ok != (c.want.broken == argsOK) || a.broken != c.want.broken || a.args != c.want.args {
				t.Fatalf("want %d arguments, limit %q broken; got %d, %q (ok %v)", c.want.args, testLimits().refusals[c.want.broken].rule,
					a.args, testLimits().refusals[a.broken].rule, ok)
			}
		})
	}
}

func TestArgTallyMalformedJSON(t *testing.T) {
	docs := []string{`{"a":1`, `{"a" 1}`, `{"a":1,}`, `[1,]`, `{"a":1} x`, `{'a':1}`, `{"a":"b`, ``, `{"a":1}}`,
		`{"a":tru}`, `{"a":nul}`, `{"a":01}`, `{"a":1.}`, `{"a":-}`, `{"a":1e}`, `{"a":.5}`, `[truex]`, `[1a]`,
		`{"a":"\x"}`, `{"a":"\u12g4"}`, "{\"a\":\"x\ny\"}", "[\"\x00\"]"}
	for _, doc := range docs {
		a := argTally{l: testLimits()}
		if !a.body([]byte("application/json"), []byte(doc)) || !a.malformedDoc {
			t.Errorf("%q: want it read as malformed, got broken %q malformed %v", doc, testLimits().refusals[a.broken].rule, a.malformedDoc)
		}
	}
}

// TestArgTallyRefusesWhatTheEngineCannotParse: every document the engine's
// JSON processor would find invalid (gjson.Valid, its grammar) is malformed
// for the counting pass, so that in block mode it is refused before the
// engine flattens it leniently — the slow way, on a padded body. Each byte
// of a few valid documents is replaced by, and preceded by, each byte that
// matters to the grammar.
func TestArgTallyRefusesWhatTheEngineCannotParse(t *testing.T) {
	valid := []string{`{"a":[1,-2.5e+3,true,false,null,"x\"\u00e9"],"b":{"c":{}},"d":[]}`, ` [ 0 , {"k" : "v"} ] `, `"s"`, `12`}
	var checked int
	for _, doc := range valid {
		for at := range len(doc) {
			for _, c := range []byte("{}[],:\"\\ \t\n0-.eE+tfnrlsux\x00\x1f\x7f") {
				for _, m := range []string{doc[:at] + string(c) + doc[at+1:], doc[:at] + string(c) + doc[at:], doc[:at]} {
					if gjson.Valid(m) {
						continue
					}
					checked++
					a := argTally{l: testLimits()}
					if a.body([]byte("application/json"), []byte(m)) && !a.malformedDoc {
						t.Fatalf("%q is not valid JSON for the engine, but the counting pass read it as well-formed", m)
					}
				}
			}
		}
	}
	if checked < 1000 {
		t.Fatalf("only %d invalid documents were generated", checked)
	}
}

func TestKindOf(t *testing.T) {
	cases := map[string]bodyKind{
		"application/json": bodyJSON, "Application/JSON; charset=utf-8": bodyJSON, "application/vnd.api+json": bodyJSON,
		"application/problem+json; x=y": bodyJSON, "text/xml": bodyXML, "application/soap+xml": bodyXML, "application/xml": bodyXML,
		"multipart/form-data; boundary=x": bodyMultipart, "application/x-www-form-urlencoded": bodyURLEncoded,
		"text/plain": bodyURLEncoded, "": bodyURLEncoded, "application/+json": bodyURLEncoded, "application/sdp": bodyURLEncoded,
	}
	for ct, want := range cases {
		if got := kindOf([]byte(ct)); got != want {
			t.Errorf("kindOf(%q) = %d, want %d", ct, got, want)
		}
	}
}

// A browser GET and a 1 KB bet are counted without allocating.
func TestArgTallyNoAllocs(t *testing.T) {
	l := newArgLimits(configs.RouteLimits{}, configs.Limits{})
	uri := []byte("/api/lobby/tables?category=baccarat&limit=20&sort=popular")
	raw := []byte("Host: play.edge.test\r\nCookie: sid=6f1c2a9e4b7d4e0f9a3c8b1d2e5f7a90; consent=analytics%3Dfalse; theme=dark; _lang=en-GB\r\n\r\n")
	bet := []byte(waftest.Bet)
	var a argTally
	n := testing.AllocsPerRun(100, func() {
		a = argTally{l: &l}
		a.query(uri)
		a.cookies(raw)
		a.body([]byte("application/json"), bet)
	})
	if n != 0 {
		t.Fatalf("%v allocations per request, want 0", n)
	}
	if a.broken != argsOK || a.malformedDoc || a.args < 40 {
		t.Fatalf("the allocation test counted %d arguments (broken %d, malformed %v): it measures the wrong path", a.args, a.broken, a.malformedDoc)
	}
}

func BenchmarkArgTally(b *testing.B) {
	l := newArgLimits(configs.RouteLimits{}, configs.Limits{})
	uri := []byte("/api/lobby/tables?category=baccarat&limit=20&sort=popular")
	raw := []byte("Host: play.edge.test\r\nCookie: sid=6f1c2a9e4b7d4e0f9a3c8b1d2e5f7a90; consent=analytics%3Dfalse; theme=dark; _lang=en-GB\r\n\r\n")
	bet := []byte(waftest.Bet)
	b.Run("browser-GET", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			a := argTally{l: &l}
			if !a.query(uri) || !a.cookies(raw) {
				b.Fatal("refused")
			}
		}
	})
	b.Run("bet-1KB", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(bet)))
		for b.Loop() {
			a := argTally{l: &l}
			if !a.body([]byte("application/json"), bet) {
				b.Fatal("refused")
			}
		}
	})
}

// referenceJSON counts what the engine flattens from a valid document —
// leaves, and one argument per non-empty array — with encoding/json's
// tokenizer, and the longest flattened name (decoded keys, so never longer
// than what argTally measures on the escaped bytes).
func referenceJSON(doc []byte) (args, longest, depth int, err error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	type level struct {
		path  int
		n     int
		array bool
	}
	var stack []level
	name := len("json")
	expectKey := false
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return args, longest, depth, nil
		}
		if err != nil {
			return 0, 0, 0, err
		}
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			top := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if top.array && top.n > 0 {
				args++
				longest = max(longest, top.path)
			}
			expectKey = len(stack) > 0 && !stack[len(stack)-1].array
			continue
		}
		if expectKey {
			name = stack[len(stack)-1].path + 1 + len(tok.(string))
			expectKey = false
			continue
		}
		if len(stack) > 0 && stack[len(stack)-1].array {
			top := &stack[len(stack)-1]
			name = top.path + 1 + len(strconv.Itoa(top.n))
			top.n++
		}
		if d, ok := tok.(json.Delim); ok {
			stack = append(stack, level{path: name, array: d == '['})
			depth = max(depth, len(stack))
			expectKey = d == '{'
			continue
		}
		args++
		longest = max(longest, name)
		expectKey = len(stack) > 0 && !stack[len(stack)-1].array
	}
}

// FuzzArgTallyJSON holds the counting pass to encoding/json: a document
// json.Valid accepts is never read as malformed, is counted to the same
// number of arguments and depth, and its names are never measured shorter.
func FuzzArgTallyJSON(f *testing.F) {
	for _, s := range []string{waftest.Bet, `{"a":[1,[2,{"b":null}]],"c":"\u00e9\""}`, `[]`, `"x"`, `{"a":{}}`, `[[[[1]]]]`, `{"a":1,}`, `{"a\\"b":1}`} {
		f.Add(s)
	}
	l := newArgLimits(configs.RouteLimits{MaxArgs: 1 << 20, MaxArgNameBytes: 1 << 20, MaxArgValueBytes: 1 << 20, MaxArgsBytes: 1 << 30, MaxJSONDepth: maxJSONDepth}, configs.Limits{})
	f.Fuzz(func(t *testing.T, doc string) {
		a := argTally{l: &l}
		ok := a.json([]byte(doc))
		if !json.Valid([]byte(doc)) {
			return
		}
		args, longest, depth, err := referenceJSON([]byte(doc))
		if err != nil {
			t.Fatalf("%q: valid for json.Valid, not for its tokenizer: %v", doc, err)
		}
		if depth > maxJSONDepth {
			if ok || a.broken != jsonTooDeep {
				t.Fatalf("%q: depth %d over %d not refused", doc, depth, maxJSONDepth)
			}
			return
		}
		if !ok || a.malformedDoc {
			t.Fatalf("%q: valid JSON read as malformed (ok %v, broken %d)", doc, ok, a.broken)
		}
		if a.args != args {
			t.Fatalf("%q: counted %d arguments, the reference %d", doc, a.args, args)
		}
		if a.total < longest {
			t.Fatalf("%q: measured %d bytes in all, the reference's longest name alone is %d", doc, a.total, longest)
		}
	})
}

// FuzzArgTallyBody throws any content type and body at the counting pass:
// it must not panic, and it refuses exactly when a limit is broken.
func FuzzArgTallyBody(f *testing.F) {
	for _, s := range []struct{ ct, body string }{
		{"text/xml", `<a x='1' z=3 w><b>t</b><![CDATA[c]]><!-- x --></a>`},
		{"multipart/form-data; boundary=X", "--X\r\nContent-Disposition: form-data; filename=\"f\"; name=\"a\"\r\n\r\nb\r\n--X--\r\n"},
		{"application/x-www-form-urlencoded", "a=%zz&&b=1&c"},
		{"application/vnd.x+json", `{"a":[1,{"b":"c"}]}`},
		{"text/plain", "no pairs at all"},
	} {
		f.Add(s.ct, s.body)
	}
	f.Fuzz(func(t *testing.T, ct, body string) {
		l := testLimits()
		a := argTally{l: l}
		ok := a.body([]byte(ct), []byte(body))
		if ok != (a.broken == argsOK) {
			t.Fatalf("ok %v but broken %d", ok, a.broken)
		}
		if ok && (a.args > l.maxArgs || a.total > l.maxTotal) {
			t.Fatalf("passed with %d arguments, %d bytes: over the limits", a.args, a.total)
		}
	})
}
