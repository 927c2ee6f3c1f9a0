package jsonbody

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/corazawaf/coraza/v3"
	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
	"github.com/tidwall/gjson"
)

// This test binary never calls Register: Coraza's own processor keeps the
// name "json", and this one is registered beside it, so that one process
// runs both on the same bodies.
func init() { register("hedgejson") }

// outcome is what a body processor leaves for the rules.
type outcome struct {
	args      []string // name=value, sorted (Coraza adds them in map order)
	truncated string   // ARGUMENTS_LIMIT_REACHED
	err       string   // REQBODY_PROCESSOR_ERROR_MSG
	txBody    bool     // TX:json_request_body holds the body
}

type pair struct{ coraza, hedge coraza.WAF }

// wafs returns one WAF with Coraza's processor and one with this one, with
// the given SecArgumentsLimit and SecRequestBodyJsonDepthLimit.
func wafs(t testing.TB, argLimit, depthLimit int) pair {
	t.Helper()
	conf := func(processor string) coraza.WAF {
		w, err := coraza.NewWAF(coraza.NewWAFConfig().WithDirectives(fmt.Sprintf(`
SecRuleEngine DetectionOnly
SecRequestBodyAccess On
SecRequestBodyLimit 33554432
SecRequestBodyInMemoryLimit 33554432
SecArgumentsLimit %d
SecRequestBodyJsonDepthLimit %d
SecAction "id:1,phase:1,pass,nolog,ctl:requestBodyProcessor=%s"
`, argLimit, depthLimit, processor)))
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	return pair{conf("JSON"), conf("HEDGEJSON")}
}

// run processes body as a POST with the given Content-Length header ("" for
// none) and returns what the processor left.
func run(t testing.TB, w coraza.WAF, body, contentLength string) outcome {
	t.Helper()
	tx := w.NewTransaction()
	defer tx.Close()
	tx.ProcessURI("/api", "POST", "HTTP/1.1")
	tx.AddRequestHeader("Content-Type", "application/json")
	if contentLength != "" {
		tx.AddRequestHeader("Content-Length", contentLength)
	}
	tx.ProcessRequestHeaders()
	if _, _, err := tx.WriteRequestBody([]byte(body)); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ProcessRequestBody(); err != nil {
		t.Fatal(err)
	}
	v := tx.(plugintypes.TransactionState).Variables()
	var o outcome
	for _, m := range v.ArgsPost().FindAll() {
		o.args = append(o.args, m.Key()+"="+m.Value())
	}
	slices.Sort(o.args)
	o.truncated = v.ArgumentsLimitReached().Get()
	o.err = v.RequestBodyProcessorErrorMsg().Get()
	if got := v.TX().Get("json_request_body"); len(got) == 1 && got[0] == body {
		o.txBody = true
	}
	return o
}

// compare runs body through both processors and reports any difference.
// With every set, the body is also sent without a Content-Length and with
// wrong ones, which only size the buffer it is read into.
func (p pair) compare(t *testing.T, name, body string, every bool) {
	t.Helper()
	want := run(t, p.coraza, body, strconv.Itoa(len(body)))
	lengths := []string{strconv.Itoa(len(body))}
	if every {
		lengths = append(lengths, "", "3", "99999999999")
	}
	for _, cl := range lengths {
		got := run(t, p.hedge, body, cl)
		if !slices.Equal(got.args, want.args) || got.truncated != want.truncated || got.err != want.err || got.txBody != want.txBody {
			t.Errorf("%s, Content-Length %q: body %.200q\nCoraza: %d args %.300q truncated %q err %q tx %v\nhedge:  %d args %.300q truncated %q err %q tx %v",
				name, cl, body, len(want.args), want.args, want.truncated, want.err, want.txBody,
				len(got.args), got.args, got.truncated, got.err, got.txBody)
			return
		}
	}
}

// edgeCases are documents written to cross each rule of the flattening once.
var edgeCases = []string{
	`{"a":"b"}`, `{}`, `[]`, `[[]]`, `{"a":{}}`, `{"a":[]}`, ` {"a" : [ 1 , 2 ] } `, "\t\r\n[1]\n",
	`1`, `-0.5e+3`, `"top"`, `"t\u00e9p"`, `true`, `false`, `null`, ` 12 `,
	`{"n":null,"t":true,"f":false,"i":-12,"x":1.5E-7,"z":0}`,
	`{"a":"\"\\\/\b\f\n\r\t\u0041\u00e9\u20ac\ud83d\ude00"}`, `{"lone":"\ud800","low":"\udc00x","nul":"\u0000"}`,
	`{"k\u0041y":1,"k.y":2,"k":{"y":3}}`, `{"A":1,"a":2,"a":3}`, `{"":1,"x":{"":2}}`,
	`[{"a":[1,[2,[3]]]},{"b":{"c":[]}}]`, `{"a":[{},{},[]]}`, "{\"é\":\"ü\xff\x80\"}",
	`{"a":1}x`, `{"a":1} {"b":2}`, `{"a":1,}`, `[1,]`, `{"a" 1}`, `{"a":tru}`, `{"a":nul}`, `{"a":01}`,
	`{"a":1.}`, `{"a":-}`, `{"a":+1}`, `{"a":.5}`, `{"a":1e}`, `{"a":"\x"}`, `{"a":"\u12G4"}`, "{\"a\":\"x\ny\"}",
	`{"a":"b`, `{"a":`, `{"a"`, `{`, `[`, `]`, `}`, ``, ` `, `x`, `nul`, `[1 2]`, `{"a":[1,{"b":2]}`,
	`{"a":"b"} "c":"d"`, `[1,2]]`, `{"a":{"b":1}}}`, `{'a':1}`, `{"a":"\"}`, `{"a":"\\"}`,
	`["\u"]`, `{"a":"b"}` + strings.Repeat(" ", 5000), strings.Repeat(" \n\t\r", 3000) + `[1]`,
}

func TestSameAsCoraza(t *testing.T) {
	for _, lim := range []struct{ args, depth int }{{1000, 1024}, {5, 1024}, {1000, 3}, {2, 2}, {3, 1}} {
		p := wafs(t, lim.args, lim.depth)
		name := fmt.Sprintf("limits %d args, depth %d", lim.args, lim.depth)
		for _, doc := range edgeCases {
			p.compare(t, name, doc, true)
		}
		for _, doc := range limitCases() {
			p.compare(t, name, doc, true)
		}
	}
}

// limitCases sit on either side of the limits TestSameAsCoraza sets: the
// leaf and array-length limits, the depth limit with valid and invalid
// tails, and the byte budget of the flattened form.
func limitCases() []string {
	deep := func(n int, tail string) string {
		return strings.Repeat(`{"d":[`, n) + `1` + tail + strings.Repeat(`]}`, n)
	}
	long := strings.Repeat("k", 300)
	var budget strings.Builder // names of 300 bytes nested 12 deep: past 8× the body
	for range 12 {
		budget.WriteString(`{"` + long + `":`)
	}
	budget.WriteString(`[` + strings.Repeat(`1,`, 40) + `1]` + strings.Repeat("}", 12))
	return []string{
		`[1,2,3,4]`, `[1,2,3,4,5]`, `[1,2,3,4,5,6]`, `{"a":[1,2],"b":[3,4],"c":[5],"d":[6],"e":[7],"f":[8]}`,
		`[[1],[2],[3],[4],[5],[6],[7]]`, `[[[[[[1]]]]]]`, `{"a":{"b":{"c":1}}}`, `{"a":{"b":{"c":{}}}}`,
		`[1,2,3,4,5,{"x":[1]}]`, `{"a":1,"b":2,"c":3,"d":4,"e":5}`, `{"a":1,"b":2,"c":3,"d":4,"e":5,"f":{}}`,
		deep(3, ""), deep(3, `,tru`), deep(40, ""), deep(40, `,"x`), `[{"a":[` + strings.Repeat("[", 30) + `x`,
		strings.Repeat("[", 2000) + strings.Repeat("]", 2000), budget.String(), budget.String() + "x",
		`{"` + long + `":{"` + long + `":{"` + long + `":[` + strings.Repeat(`1,`, 30) + `1]}}}`,
	}
}

// TestSameAsCorazaGenerated compares the processors on random documents and
// on mutations of them (cut short, a byte changed, a byte inserted), so that
// most invalid documents are one mistake away from a valid one.
func TestSameAsCorazaGenerated(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	n := 700
	if testing.Short() {
		n = 150
	}
	for _, lim := range []struct{ args, depth int }{{1000, 1024}, {8, 4}} {
		p := wafs(t, lim.args, lim.depth)
		name := fmt.Sprintf("generated, limits %d args, depth %d", lim.args, lim.depth)
		for range n {
			doc := randomValue(r, 0)
			p.compare(t, name, doc, false)
			if len(doc) == 0 {
				continue
			}
			at := r.IntN(len(doc))
			p.compare(t, name, doc[:at], false)
			p.compare(t, name, doc[:at]+string(mutations[r.IntN(len(mutations))])+doc[at+1:], false)
			p.compare(t, name, doc[:at]+string(mutations[r.IntN(len(mutations))])+doc[at:], false)
		}
	}
}

var mutations = []byte("{}[],:\"\\ \t\n0-.eEtfnux\x00\x1f\x7f\xc3")

func randomValue(r *rand.Rand, depth int) string {
	ws := func() string { return []string{"", "", "", " ", "\n  ", "\t", "\r\n"}[r.IntN(7)] }
	k := r.IntN(10)
	if depth > 5 {
		k = 4 + r.IntN(6)
	}
	switch k {
	case 0, 1, 2, 3:
		object := k < 2
		open, end := "[", "]"
		if object {
			open, end = "{", "}"
		}
		var b strings.Builder
		b.WriteString(open + ws())
		for i := range r.IntN(5) {
			if i > 0 {
				b.WriteString("," + ws())
			}
			if object {
				b.WriteString(randomString(r) + ws() + ":" + ws())
			}
			b.WriteString(randomValue(r, depth+1) + ws())
		}
		b.WriteString(end)
		return b.String()
	case 4, 5:
		return randomString(r)
	case 6:
		return []string{"0", "-1", "12.5", "1e9", "-0.0E-2", "123456789012345678901234567890"}[r.IntN(6)]
	case 7:
		return []string{"true", "false", "null"}[r.IntN(3)]
	default:
		return strconv.Itoa(r.IntN(100))
	}
}

func randomString(r *rand.Rand) string {
	parts := []string{"a", "Key", "k.y", "select", "<script>", `\"`, `\\`, `\n`, `\u00e9`, `\ud83d\ude00`, `\ud800`,
		`\u0000`, "é", "\xff", "0", " ", "UNION", "'", "id"}
	var b strings.Builder
	b.WriteByte('"')
	for range r.IntN(4) {
		b.WriteString(parts[r.IntN(len(parts))])
	}
	b.WriteByte('"')
	return b.String()
}

// TestValidateIsGJSONValid: the one pass agrees with gjson.Valid (which
// Coraza calls) on every document it does not stop as too deep, and
// reports too deep only where Coraza's nesting check does.
func TestValidateIsGJSONValid(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 5))
	docs := append([]string{}, edgeCases...)
	docs = append(docs, limitCases()...)
	for range 3000 {
		doc := randomValue(r, 0)
		docs = append(docs, doc)
		if len(doc) > 0 {
			at := r.IntN(len(doc))
			docs = append(docs, doc[:at], doc[:at]+string(mutations[r.IntN(len(mutations))])+doc[at:])
		}
	}
	for _, doc := range docs {
		for _, limit := range []int{1024, 3, 1, 0} {
			valid, deep := validate(doc, limit)
			if deep {
				if valid || !nestingExceeds(doc, limit) {
					t.Errorf("%.120q, limit %d: validate says too deep (valid %v), the nesting check says %v", doc, limit, valid, nestingExceeds(doc, limit))
				}
				continue
			}
			if want := gjson.Valid(doc); valid != want {
				t.Errorf("%.120q, limit %d: validate says %v, gjson.Valid %v", doc, limit, valid, want)
			}
		}
	}
}

// TestSkipSpace: the eight-bytes-at-a-time skip stops where a byte
// loop does, whatever mix of JSON whitespace and other bytes (including
// bytes next to whitespace in value, like \v, \f and 0xa0) follows.
func TestSkipSpace(t *testing.T) {
	alphabet := []byte{' ', '\t', '\n', '\r', '\v', '\f', 0xa0, 0x00, 'a', '{', 0x20 + 0x80}
	seed := uint32(7)
	for n := range 3000 {
		b := make([]byte, n%40)
		for i := range b {
			seed = seed*1664525 + 1013904223
			if seed>>28 < 13 { // mostly whitespace, so runs are long
				b[i] = " \t\n\r"[seed>>24&3]
			} else {
				b[i] = alphabet[int(seed>>16)%len(alphabet)]
			}
		}
		for start := 0; start <= len(b); start++ {
			want := start
			for want < len(b) && (b[want] == ' ' || b[want] == '\t' || b[want] == '\n' || b[want] == '\r') {
				want++
			}
			if got, gotString := SkipSpace(b, start), SkipSpace(string(b), start); got != want || gotString != want {
				t.Fatalf("SkipSpace(%q, %d) = %d as bytes, %d as a string, want %d", b, start, got, gotString, want)
			}
		}
	}
}

// BenchmarkProcessors runs a whole transaction's body phase with each
// processor, for the worst body the gateway's defaults admit (1 MiB padded
// with whitespace) and for an API call of a few fields.
func BenchmarkProcessors(b *testing.B) {
	p := wafs(b, 1000, 1024)
	bodies := []struct{ name, body string }{
		{"padded 1MiB", `{"a":"b"}` + strings.Repeat(" ", 1<<20)},
		{"deep padded 1MiB", strings.Repeat(`{"a":`, 15) + strings.Repeat(" ", 1<<20) + "1" + strings.Repeat("}", 15)},
		// Invalid: gjson's lenient walk, as Coraza's (the gateway refuses
		// such a body before the engine in block mode).
		{"deep padded 1MiB invalid", strings.Repeat(`{"a":`, 15) + strings.Repeat(" ", 1<<20) + "tru" + strings.Repeat("}", 15)},
		{"API call", `{"account":"acc-1234","amount":"12.50","currency":"EUR","market":{"id":77,"outcomes":[1,2,3]},"note":"first bet"}`},
	}
	for _, body := range bodies {
		for _, w := range []struct {
			name string
			waf  coraza.WAF
		}{{"coraza", p.coraza}, {"hedge", p.hedge}} {
			b.Run(body.name+"/"+w.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					run(b, w.waf, body.body, strconv.Itoa(len(body.body)))
				}
			})
		}
	}
}

// TestResponsesSameAsCoraza: RESPONSE_ARGS of a JSON response, for the rules
// that inspect responses, as Coraza's processor fills them.
func TestResponsesSameAsCoraza(t *testing.T) {
	conf := func(processor string) coraza.WAF {
		w, err := coraza.NewWAF(coraza.NewWAFConfig().WithDirectives(`
SecRuleEngine DetectionOnly
SecResponseBodyAccess On
SecResponseBodyMimeType application/json
SecArgumentsLimit 6
SecAction "id:1,phase:3,pass,nolog,ctl:responseBodyProcessor=` + processor + `"
`))
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	respond := func(w coraza.WAF, body string) (args []string, truncated string) {
		tx := w.NewTransaction()
		defer tx.Close()
		tx.ProcessURI("/api", "GET", "HTTP/1.1")
		tx.ProcessRequestHeaders()
		if _, err := tx.ProcessRequestBody(); err != nil {
			t.Fatal(err)
		}
		tx.AddResponseHeader("Content-Type", "application/json")
		tx.ProcessResponseHeaders(200, "HTTP/1.1")
		if _, _, err := tx.WriteResponseBody([]byte(body)); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.ProcessResponseBody(); err != nil {
			t.Fatal(err)
		}
		v := tx.(plugintypes.TransactionState).Variables()
		for _, m := range v.ResponseArgs().FindAll() {
			args = append(args, m.Key()+"="+m.Value())
		}
		slices.Sort(args)
		return args, v.ArgumentsLimitReached().Get()
	}
	corazas, hedges := conf("JSON"), conf("HEDGEJSON")
	docs := []string{`{"balance":"10.00","bets":[{"id":1},{"id":2}]}`, `[1,2,3,4,5,6,7,8]`, `{"a":"\u00e9"}`, `{"a":`, `"x"`}
	for _, doc := range docs {
		wantArgs, wantTrunc := respond(corazas, doc)
		gotArgs, gotTrunc := respond(hedges, doc)
		if len(wantArgs) == 0 && doc != `{"a":` {
			t.Fatalf("%q: Coraza's processor filled no RESPONSE_ARGS: the test does not reach response processing", doc)
		}
		if !slices.Equal(gotArgs, wantArgs) || gotTrunc != wantTrunc {
			t.Errorf("%q: Coraza %q truncated %q, hedge %q truncated %q", doc, wantArgs, wantTrunc, gotArgs, gotTrunc)
		}
	}
}
