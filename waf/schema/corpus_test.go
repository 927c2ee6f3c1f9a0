package schema_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"hedge/waf/crs"
	"hedge/waf/schema"
)

//go:generate go run ../testdata/corpusgen -o ../testdata/corpus/requests.jsonl

const corpusFile = "../testdata/corpus/requests.jsonl"

// corpusRequest is one line of the corpus (see waf/testdata/corpusgen).
type corpusRequest struct {
	Name    string      `json:"name"`
	Kind    string      `json:"kind"`
	Schema  string      `json:"schema"`
	Method  string      `json:"method"`
	URI     string      `json:"uri"`
	Headers [][2]string `json:"headers"`
	Body    string      `json:"body"`
}

func loadCorpus(t *testing.T) []corpusRequest {
	t.Helper()
	b, err := os.ReadFile(corpusFile)
	if err != nil {
		t.Fatal(err)
	}
	var reqs []corpusRequest
	for i, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		var r corpusRequest
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("%s:%d: %v", corpusFile, i+1, err)
		}
		if r.Name == "" || r.Method == "" || !strings.HasPrefix(r.URI, "/") || !slices.Contains([]string{"money", "proxy", "stream"}, r.Kind) {
			t.Fatalf("%s:%d: incomplete request %+v", corpusFile, i+1, r)
		}
		reqs = append(reqs, r)
	}
	return reqs
}

// restMethods is what a REST route allows (CRS's default list, GET HEAD
// POST OPTIONS, refuses the rest through rule 911100).
var restMethods = []string{"GET", "HEAD", "POST", "OPTIONS", "PUT", "PATCH", "DELETE"}

func (r corpusRequest) ctx(t *testing.T, client netip.Addr) *fasthttp.RequestCtx {
	t.Helper()
	var raw strings.Builder
	raw.WriteString(r.Method + " " + r.URI + " HTTP/1.1\r\n")
	for _, h := range r.Headers {
		raw.WriteString(h[0] + ": " + h[1] + "\r\n")
	}
	if r.Body != "" {
		raw.WriteString("Content-Length: " + strconv.Itoa(len(r.Body)) + "\r\n")
	}
	raw.WriteString("\r\n")
	var req fasthttp.Request
	if err := req.Header.Read(bufio.NewReader(strings.NewReader(raw.String()))); err != nil {
		t.Fatalf("%s: fasthttp does not parse the request: %v", r.Name, err)
	}
	if r.Body != "" {
		req.SetBodyString(r.Body)
	}
	ctx := &fasthttp.RequestCtx{}
	ctx.Init(&req, &net.TCPAddr{IP: client.AsSlice(), Port: 41000}, nil)
	return ctx
}

// TestCorpusPassesCRS runs every ordinary request of the corpus through the
// real Core Rule Set in Block mode at the shipped paranoia level (1), with
// money-route bodies checked and reduced by their schema first as the
// gateway does, and requires zero blocks. It also reports how many requests
// paranoia level 2 would block.
func TestCorpusPassesCRS(t *testing.T) {
	reqs := loadCorpus(t)
	if len(reqs) < 300 {
		t.Fatalf("the corpus has %d requests; want at least 300", len(reqs))
	}
	kinds := map[string]int{}
	for _, r := range reqs {
		kinds[r.Kind]++
	}
	for _, k := range []string{"money", "proxy", "stream"} {
		if kinds[k] < 30 {
			t.Fatalf("the corpus has %d %s requests; want at least 30 (kinds: %v)", kinds[k], k, kinds)
		}
	}

	schemas := map[string]*schema.Schema{}
	bodies := make([][]byte, len(reqs)) // what the rule engine sees; nil = the request's own body
	for i, r := range reqs {
		if r.Schema == "" {
			continue
		}
		s, ok := schemas[r.Schema]
		if !ok {
			var err error
			if s, err = schema.Load(r.Schema); err != nil {
				t.Fatal(err)
			}
			schemas[r.Schema] = s
		}
		if v := s.Check([]byte(r.Body)); v != nil {
			t.Errorf("%s: body refused by %s: %v\n%s", r.Name, r.Schema, v, r.Body)
			continue
		}
		bodies[i] = s.Reduce(nil, []byte(r.Body))
	}

	client := netip.MustParseAddr("198.51.100.23")
	engines := map[[2]int]*crs.Engine{}
	engineFor := func(pl int, r corpusRequest) *crs.Engine {
		o := routePolicy(r)
		o.Mode, o.ParanoiaLevel = crs.Block, pl
		k := [2]int{pl, len(o.ExcludeIDs)}
		if e := engines[k]; e != nil {
			return e
		}
		e, err := crs.New(o)
		if err != nil {
			t.Fatalf("crs.New(%+v): %v", o, err)
		}
		engines[k] = e
		return e
	}
	run := func(pl int) (blocked map[string]string, rules map[string][]int) {
		blocked, rules = map[string]string{}, map[string][]int{}
		for i, r := range reqs {
			ctx := r.ctx(t, client)
			tx := engineFor(pl, r).Begin(ctx, []byte(fmt.Sprintf("corpus-%d", i)), client, bodies[i])
			if tx.Blocked() || tx.BodyError() != nil {
				var b strings.Builder
				fmt.Fprintf(&b, "%s (%s %s %s, status %d, rule %d, body error %v)", r.Name, r.Kind, r.Method, r.URI, tx.Status(), tx.RuleID(), tx.BodyError())
				for _, m := range tx.Matches() {
					fmt.Fprintf(&b, "\n    %d %s %s", m.ID, m.Msg, short(m.Data))
					if m.ID < 949000 {
						rules[r.Name] = append(rules[r.Name], m.ID)
					}
				}
				blocked[r.Name] = b.String()
			}
			tx.End()
		}
		return blocked, rules
	}

	// Controls: the same pipeline stops an attack in a free-text field of a
	// bet, so a pass above means the fields were inspected, not skipped.
	bet := schemas["builtin:bet"]
	attack := corpusRequest{Name: "control-sqli", Kind: "money", Method: "POST", URI: "/api/bets",
		Headers: [][2]string{{"Host", "play.edge.test"}, {"Content-Type", "application/json"}},
		Body:    `{"table":"bacc-07","amount":"1.00","currency":"EUR","selection":"tie","comment":"1' UNION SELECT password FROM users WHERE '1'='1"}`}
	if v := bet.Check([]byte(attack.Body)); v != nil {
		t.Fatalf("control bet refused by the schema: %v", v)
	}
	ctl := engineFor(1, attack).Begin(attack.ctx(t, client), []byte("control"), client, bet.Reduce(nil, []byte(attack.Body)))
	if !ctl.Blocked() {
		t.Errorf("control: a SQL injection in a bet's comment passed PL1 (reduced body %s); want it blocked", bet.Reduce(nil, []byte(attack.Body)))
	}
	ctl.End()

	pl1, pl1rules := run(1)
	var unexpected []string
	for name, report := range pl1 {
		if want, ok := knownFalsePositives[name]; ok && slices.Equal(pl1rules[name], want.rules) {
			t.Logf("known PL1 false positive, waiting for a decision: %s\n    reason: %s", report, want.reason)
			continue
		}
		unexpected = append(unexpected, report)
	}
	slices.Sort(unexpected)
	if len(unexpected) > 0 {
		t.Errorf("PL1 blocks %d of %d ordinary requests; want 0:\n  %s", len(unexpected), len(reqs), strings.Join(unexpected, "\n  "))
	}
	for name, fp := range knownFalsePositives {
		if _, ok := pl1[name]; !ok {
			t.Errorf("%s is listed as a known PL1 false positive (rules %v) but is no longer blocked: remove it from knownFalsePositives", name, fp.rules)
		}
	}
	pl2, _ := run(2)
	t.Logf("corpus: %d requests (%v); PL1 blocks %d (known false positives: %d); PL2 would block %d",
		len(reqs), kinds, len(pl1), len(knownFalsePositives), len(pl2))
	var names []string
	for name := range pl2 {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		t.Logf("  PL2: %s", pl2[name])
	}
}

// routePolicy is the rule engine configuration of the route a request
// takes, as the gateway is meant to apply it: every route is REST, so PUT,
// PATCH and DELETE are allowed methods (rule 900200); and a route that
// declares its own request media types (a 415 shape limit checked before
// the rule engine) does not also get CRS's global content-type list (rule
// 920420), which knows neither WHIP/WHEP's application/sdp and
// application/trickle-ice-sdpfrag nor RFC 7396's
// application/merge-patch+json.
func routePolicy(r corpusRequest) crs.Options {
	o := crs.Options{AllowedMethods: restMethods}
	for _, h := range r.Headers {
		if strings.EqualFold(h[0], "Content-Type") && slices.Contains(routeContentTypes, h[1]) {
			o.ExcludeIDs = []int{920420}
		}
	}
	return o
}

var routeContentTypes = []string{"application/sdp", "application/trickle-ice-sdpfrag", "application/merge-patch+json"}

// knownFalsePositives are ordinary corpus requests that CRS blocks at PL1
// even with routePolicy, kept in the corpus (they are real traffic) and
// listed here, with the rules they trip, until the gateway decides how to
// exclude them. The test fails on any other block, and on an entry here
// that no longer blocks.
var knownFalsePositives = map[string]struct {
	rules  []int
	reason string
}{
	"whep-007": {[]int{932230, 932250}, "a WHEP offer (application/sdp) is parsed by the rule engine as form data; " +
		"the SDP line 'a=extmap:3 …/abs-send-time' followed by 'a=recvonly' reads as the Unix command 'time'. " +
		"SDP is checked by the stream package's own parser (pion/sdp); the rule engine should not read it as form data"},
}

// short quotes matched data on one line, cut to 100 bytes.
func short(s string) string {
	if len(s) > 100 {
		s = strings.ToValidUTF8(s[:100], "") + "…"
	}
	return strconv.Quote(s)
}
