package schema_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"hedge/configs"
	"hedge/gateway/loadgen"
	"hedge/waf/schema"
)

func builtin(t testing.TB, name string) *schema.Schema {
	t.Helper()
	s, err := schema.Load("builtin:" + name)
	if err != nil {
		t.Fatalf("Load(builtin:%s): %v", name, err)
	}
	return s
}

// The demo's own traffic must pass: every bet `hedge loadgen` writes, the
// bets of the README, the e2e benchmarks and the gateway's tests.
func TestBetAcceptsWhatTheDemoSends(t *testing.T) {
	s := builtin(t, "bet")
	cfg, err := configs.Demo()
	if err != nil {
		t.Fatal(err)
	}
	g, err := loadgen.New(cfg, loadgen.Settings{Players: 5, RetryShare: 0.1, BalanceShare: 0.2, Count: 300, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := g.WriteTo(&out); err != nil {
		t.Fatal(err)
	}
	bets := 0
	sc := bufio.NewScanner(&out)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var tgt struct {
			Method string
			Body   []byte
		}
		if err := json.Unmarshal(sc.Bytes(), &tgt); err != nil {
			t.Fatalf("target %s: %v", sc.Bytes(), err)
		}
		if tgt.Method != "POST" {
			continue
		}
		bets++
		if v := s.Check(tgt.Body); v != nil {
			t.Errorf("loadgen bet %s refused: %v", tgt.Body, v)
		}
	}
	if bets < 100 {
		t.Fatalf("want at least 100 loadgen bets, got %d", bets)
	}
	for _, b := range []string{
		`{"table":"bacc-07","amount":"12.50","currency":"EUR","selection":"banker"}`,
		`{"table":"bacc-07","amount":"5.00","currency":"EUR","selection":"player"}`,
		`{"table":"t1","amount":"5.00","currency":"EUR","selection":"player"}`,
		`{"table":"bacc-07","amount":"12.50","currency":"EUR","selection":"banker","note":"` + strings.Repeat("x", 118) + `"}`,
		`{"table":"bacc-07","amount":"1000","currency":"EUR","selection":"tie"}`,
		"{\n  \"table\": \"3f0c7b9e-3a51-4c1e-9a55-0d3f7c1b2a90\",\n  \"round_id\": \"r-000417\",\n  \"amount\": \"0.10\",\n  \"currency\": \"GBP\",\n  \"selection\": \"banker_pair\",\n  \"odds\": 12,\n  \"client_ref\": \"9b2f5a3c-6d1e-4f7a-8b9c-0a1b2c3d4e5f\",\n  \"placed_at\": \"2025-11-02T19:04:05.123Z\",\n  \"nickname\": \"Zoë\",\n  \"comment\": \"all in on banker 🍀\"\n}\n",
	} {
		if v := s.Check([]byte(b)); v != nil {
			t.Errorf("bet %s refused: %v", b, v)
		}
	}
}

func TestDepositAcceptsWhatTheDemoSends(t *testing.T) {
	s := builtin(t, "cashier-deposit")
	for _, b := range []string{
		`{"amount":"50.00","currency":"EUR"}`,
		`{"amount":"20.00","currency":"EUR"}`,
		`{"amount":"250","currency":"SEK","method":"card","method_id":"pm_1NvQ2a","bonus_code":"WELCOME100","client_ref":"0e6f1f4c-2b8a-4d44-b1d3-6f1d2e3c4b5a","return_url":"https://play.edge.test/cashier/done?x=1&y=2","descriptor":"Top-up for Friday's game"}`,
	} {
		if v := s.Check([]byte(b)); v != nil {
			t.Errorf("deposit %s refused: %v", b, v)
		}
	}
}

const okBet = `"table":"bacc-07","amount":"12.50","currency":"EUR","selection":"banker"`

func TestCheckNamesTheFailingField(t *testing.T) {
	s := builtin(t, "bet")
	tests := []struct {
		name, body, pointer, reason string
		malformed                   bool
	}{
		{"unknown field", `{` + okBet + `,"bonus":"x"}`, "/bonus", "unknown field", false},
		{"unknown field first in document order", `{"zz":1,` + okBet + `,"aa":2}`, "/zz", "unknown field", false},
		{"amount as number", `{"table":"bacc-07","amount":12.5,"currency":"EUR","selection":"banker"}`, "/amount", "want string, got number", false},
		{"amount three decimals", `{"table":"bacc-07","amount":"12.505","currency":"EUR","selection":"banker"}`, "/amount", "does not match", false},
		{"amount negative", `{"table":"bacc-07","amount":"-1.00","currency":"EUR","selection":"banker"}`, "/amount", "does not match", false},
		{"currency lower case", `{"table":"bacc-07","amount":"1.00","currency":"eur","selection":"banker"}`, "/currency", "does not match", false},
		{"selection not offered", `{"table":"bacc-07","amount":"1.00","currency":"EUR","selection":"house"}`, "/selection", `want one of "banker"`, false},
		{"table with a quote", `{"table":"bacc' OR 1=1","amount":"1.00","currency":"EUR","selection":"banker"}`, "/table", "does not match", false},
		{"client_ref not a uuid", `{` + okBet + `,"client_ref":"nope"}`, "/client_ref", "not a valid uuid", false},
		{"odds too low", `{` + okBet + `,"odds":1}`, "/odds", "", false},
		{"nickname too long", `{` + okBet + `,"nickname":"` + strings.Repeat("é", 65) + `"}`, "/nickname", "", false},
		{"missing currency", `{"table":"bacc-07","amount":"1.00","selection":"banker"}`, "/currency", "required field missing", false},
		{"not an object", `["banker"]`, "", "want object, got array", false},
		{"truncated", `{` + okBet + `,"note":"abc`, "/note", "unexpected end of input in string at byte", true},
		{"truncated after comma", `{` + okBet + `,`, "", "unexpected end of input in object", true},
		{"empty", ``, "", "unexpected end of input at byte 0", true},
		{"duplicate key", `{` + okBet + `,"amount":"99999.00"}`, "/amount", "duplicate key", true},
		{"trailing data", `{` + okBet + `}{}`, "", "data after the JSON value", true},
		{"invalid UTF-8", "{" + okBet + ",\"note\":\"\xff\"}", "/note", "invalid UTF-8", true},
		{"control character", "{" + okBet + ",\"note\":\"a\x01\"}", "/note", "control character", true},
		{"bad escape", `{` + okBet + `,"note":"\q"}`, "/note", `invalid escape \q`, true},
		{"single quotes", `{'table':'x'}`, "", "want a string key", true},
		{"too deep", `{"note":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`, "/note" + strings.Repeat("/0", 63), "nested deeper than 64", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := s.Check([]byte(tc.body))
			if v == nil {
				t.Fatalf("Check(%q) passed; want a violation at %q", tc.body, tc.pointer)
			}
			if v.Pointer != tc.pointer || !strings.Contains(v.Reason, tc.reason) || v.Malformed != tc.malformed {
				t.Fatalf("Check(%.80q):\n want pointer %q, reason containing %q, malformed %v\n got  pointer %q, reason %q, malformed %v",
					tc.body, tc.pointer, tc.reason, tc.malformed, v.Pointer, v.Reason, v.Malformed)
			}
			if len(v.Reason) > 200 {
				t.Fatalf("reason is %d bytes; want at most 200", len(v.Reason))
			}
		})
	}
}

// A nested schema: pointers name fields inside objects and arrays, and
// unknown fields are refused at every level unless the schema opens them.
const nestedSchema = `{
  "type": "object",
  "required": ["stake", "legs"],
  "properties": {
    "table_id": {"type": "string", "format": "uuid"},
    "stake": {
      "type": "object",
      "required": ["amount", "currency"],
      "properties": {
        "amount": {"anyOf": [{"type": "string", "pattern": "^[0-9]{1,15}(\\.[0-9]{1,2})?$"}, {"type": "number", "minimum": 0}]},
        "currency": {"type": "string", "pattern": "^[A-Z]{3}$"}
      }
    },
    "legs": {
      "type": "array",
      "items": {
        "type": "object",
        "properties": {
          "market": {"enum": ["win", "place"]},
          "label": {"type": "string"}
        }
      }
    },
    "meta": {"type": "object", "additionalProperties": {"type": "string"}},
    "tags": {"type": "array", "prefixItems": [{"const": "vip"}], "items": {"type": "string"}},
    "chat": {"$ref": "#/$defs/msg"},
    "open": {"type": "object", "additionalProperties": true},
    "either": {"anyOf": [{"enum": ["a", "b"]}, {"type": "string"}]},
    "both": {"allOf": [{"type": "string"}, {"pattern": "^[a-z]+$"}]},
    "loose": {"type": "string", "pattern": "[a-z]+"},
    "email": {"type": "string", "format": "email"}
  },
  "$defs": {
    "msg": {
      "type": "object",
      "properties": {
        "text": {"type": "string"},
        "reply": {"$ref": "#/$defs/msg"}
      }
    }
  }
}`

func compileNested(t testing.TB) *schema.Schema {
	t.Helper()
	s, err := schema.CompileBytes("nested.json", []byte(nestedSchema))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestCheckNested(t *testing.T) {
	s := compileNested(t)
	tests := []struct{ name, body, pointer, reason string }{
		{"valid", `{"stake":{"amount":"1.00","currency":"EUR"},"legs":[{"market":"win"}]}`, "", ""},
		{"amount as number allowed here", `{"stake":{"amount":2.5,"currency":"EUR"},"legs":[]}`, "", ""},
		{"nested pattern", `{"stake":{"amount":"1.00","currency":"E"},"legs":[]}`, "/stake/currency", "does not match"},
		{"nested anyOf", `{"stake":{"amount":"x","currency":"EUR"},"legs":[]}`, "/stake/amount", ""},
		{"nested missing", `{"stake":{"currency":"EUR"},"legs":[]}`, "/stake/amount", "required field missing"},
		{"nested unknown", `{"stake":{"amount":"1","currency":"EUR","fx":"1.1"},"legs":[]}`, "/stake/fx", "unknown field"},
		{"unknown in array item", `{"stake":{"amount":"1","currency":"EUR"},"legs":[{"market":"win"},{"market":"win","x":1}]}`, "/legs/1/x", "unknown field"},
		{"enum in array item", `{"stake":{"amount":"1","currency":"EUR"},"legs":[{"market":"show"}]}`, "/legs/0/market", "want one of"},
		{"recursive", `{"stake":{"amount":"1","currency":"EUR"},"legs":[],"chat":{"reply":{"reply":{"txt":"x"}}}}`, "/chat/reply/reply/txt", "unknown field"},
		{"open object takes anything", `{"stake":{"amount":"1","currency":"EUR"},"legs":[],"open":{"a":[1,{"b":2}]}}`, "", ""},
		{"map of strings", `{"stake":{"amount":"1","currency":"EUR"},"legs":[],"meta":{"k":1}}`, "/meta/k", "want string"},
		{"escaped key names the field", `{"stake":{"amount":"1","currency":"EUR"},"legs":[],"a\/b~":1}`, "/a~1b~0", "unknown field"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := s.Check([]byte(tc.body))
			if tc.pointer == "" && tc.reason == "" {
				if v != nil {
					t.Fatalf("Check(%s): want pass, got %v", tc.body, v)
				}
				return
			}
			if v == nil || v.Pointer != tc.pointer || !strings.Contains(v.Reason, tc.reason) {
				t.Fatalf("Check(%s): want %s (%q), got %+v", tc.body, tc.pointer, tc.reason, v)
			}
		})
	}
}

func TestReduceKeepsOnlyFreeText(t *testing.T) {
	bet := builtin(t, "bet")
	nested := compileNested(t)
	const stake = `"stake":{"amount":"1.00","currency":"EUR"},"legs":[]`
	tests := []struct {
		name string
		s    *schema.Schema
		body string
		want string
	}{
		{"plain bet has nothing to inspect", bet, `{` + okBet + `}`, `{}`},
		{"pinned fields dropped, free text kept", bet,
			`{` + okBet + `,"round_id":"r-1","odds":2.5,"client_ref":"9b2f5a3c-6d1e-4f7a-8b9c-0a1b2c3d4e5f","nickname":"O'Brien","comment":"50% on it & more","note":""}`,
			`{"/nickname":"O'Brien","/comment":"50% on it & more","/note":""}`},
		{"escapes copied verbatim", bet, `{"note":"say \"hi\"\n\u00e9\ud83c\udf40 \/ \\",` + okBet + `}`, `{"/note":"say \"hi\"\n\u00e9\ud83c\udf40 \/ \\"}`},
		{"unicode kept", bet, `{` + okBet + `,"comment":"Привет, κόσμε! مرحبا שלום 你好 สวัสดี नमस्ते 🎲"}`, `{"/comment":"Привет, κόσμε! مرحبا שלום 你好 สวัสดี नमस्ते 🎲"}`},
		{"whitespace everywhere", bet, " {\n\t\"comment\" : \"x\" ,\r\n \"table\":\"t\",\"amount\":\"1\",\"currency\":\"EUR\",\"selection\":\"tie\" } ", `{"/comment":"x"}`},
		{"escaped key still found", bet, `{"n\u006fte":"hi","t\u0061ble":"t",` + `"amount":"1","currency":"EUR","selection":"tie"}`, `{"/note":"hi"}`},
		{"nested pinned", nested, `{` + stake + `,"table_id":"9b2f5a3c-6d1e-4f7a-8b9c-0a1b2c3d4e5f"}`, `{}`},
		{"anyOf branches that all pin", nested, `{"stake":{"amount":"1.00","currency":"EUR"},"legs":[]}`, `{}`},
		{"array items", nested, `{"stake":{"amount":"1","currency":"EUR"},"legs":[{"market":"win","label":"a"},{"label":"b"}]}`, `{"/legs/0/label":"a","/legs/1/label":"b"}`},
		{"additionalProperties schema keys in pointer", nested, `{` + stake + `,"meta":{"a/b":"x","c~d":"y","<k>":"z"}}`, `{"/meta/a~1b":"x","/meta/c~0d":"y","/meta/<k>":"z"}`},
		{"escaped free key re-escaped", nested, `{` + stake + `,"meta":{"q\"\u0001":"x"}}`, `{"/meta/q\"\u0001":"x"}`},
		{"prefixItems const pinned, rest free", nested, `{` + stake + `,"tags":["vip","hello"]}`, `{"/tags/1":"hello"}`},
		{"recursive ref", nested, `{` + stake + `,"chat":{"text":"a","reply":{"text":"b","reply":{"text":"c"}}}}`, `{"/chat/text":"a","/chat/reply/text":"b","/chat/reply/reply/text":"c"}`},
		{"open object: every string", nested, `{` + stake + `,"open":{"a":["x",1,{"b":"y"}],"c":true,"d":null}}`, `{"/open/a/0":"x","/open/a/2/b":"y"}`},
		{"anyOf with a free branch is free", nested, `{` + stake + `,"either":"a"}`, `{"/either":"a"}`},
		{"allOf with a pinning part is pinned", nested, `{` + stake + `,"both":"abc"}`, `{}`},
		{"unanchored pattern is free", nested, `{` + stake + `,"loose":"abc' or 1=1"}`, `{"/loose":"abc' or 1=1"}`},
		{"email is free", nested, `{` + stake + `,"email":"\"x' or 1=1\"@example.com"}`, `{"/email":"\"x' or 1=1\"@example.com"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if v := tc.s.Check([]byte(tc.body)); v != nil {
				t.Fatalf("Check(%s): %v", tc.body, v)
			}
			prefix := []byte("prefix:")
			got := tc.s.Reduce(prefix, []byte(tc.body))
			if string(got) != "prefix:"+tc.want {
				t.Fatalf("Reduce(%s)\n want %s\n got  %s", tc.body, tc.want, got[len("prefix:"):])
			}
			if !json.Valid(got[len("prefix:"):]) {
				t.Fatalf("Reduce output is not JSON: %s", got)
			}
		})
	}
}

func TestReduceOfUnscannableBodyIsTheBody(t *testing.T) {
	s := builtin(t, "bet")
	for _, b := range []string{`{"note":"x"`, `{"note":"x"}}`, `{"note" "x"}`, `[1,]`, `{"note":"\xff"}`, ``, `nul`} {
		got := s.Reduce([]byte("p"), []byte(b))
		if string(got) != "p"+b {
			t.Errorf("Reduce(%q): want the body itself after the prefix, got %q", b, got)
		}
	}
}

func TestUnknownFieldsOnlyWhereTheSchemaSaysNothing(t *testing.T) {
	s, err := schema.CompileBytes("open.json", []byte(`{
		"type": "object",
		"properties": {"a": {"type": "string"}},
		"additionalProperties": true,
		"$defs": {"unused": {"type": "object"}}
	}`))
	if err != nil {
		t.Fatal(err)
	}
	if v := s.Check([]byte(`{"a":"x","b":1}`)); v != nil {
		t.Fatalf("explicit additionalProperties true: want pass, got %v", v)
	}
	if got := string(s.Reduce(nil, []byte(`{"a":"x","b":"y"}`))); got != `{"/a":"x","/b":"y"}` {
		t.Fatalf("Reduce: want both strings, got %s", got)
	}
}

func TestCompileErrorsNameTheFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name, file, want string
	}{
		{"not JSON", write("broken.json", `{"type":`), "broken.json: not JSON"},
		{"bad keyword value", write("badtype.json", `{"type":"strin"}`), "badtype.json"},
		{"bad regexp", write("badre.json", `{"type":"string","pattern":"("}`), "badre.json"},
		{"external ref", write("ext.json", `{"$ref":"other.json"}`), "ext.json"},
		{"missing file", filepath.Join(dir, "nope.json"), "nope.json"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := schema.Compile(tc.file)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Compile(%s): want an error containing %q, got %v", tc.file, tc.want, err)
			}
		})
	}
	if _, err := schema.Load("builtin:nope"); err == nil || !strings.Contains(err.Error(), "builtin:bet") {
		t.Fatalf("Load(builtin:nope): want an error listing builtin:bet, got %v", err)
	}
	if _, err := schema.Compile(filepath.Join(dir, "nope.json")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Compile of a missing file: want fs.ErrNotExist, got %v", err)
	}
}

func TestBuiltinsCompile(t *testing.T) {
	names := schema.BuiltinNames()
	if len(names) < 2 {
		t.Fatalf("want at least 2 builtin schemas, got %v", names)
	}
	for _, n := range names {
		if _, err := schema.Load(n); err != nil {
			t.Errorf("Load(%s): %v", n, err)
		}
	}
}
