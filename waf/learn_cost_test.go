//go:build !race

// Learning from the whole support corpus runs the Core Rule Set over every
// request, which the race detector slows tenfold; `make test` runs it in
// its pass without -race.

package waf_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hedge/waf"
	"hedge/waf/learn"
	"hedge/waf/schema"
)

// learnedSupport learns the corpus's support route in learn mode, applies
// the suggestion, and returns the guards of the route before (no schema)
// and after (learned schema and exclusions), the bet route with its
// hand-written schema, the support requests and the learned schema.
func learnedSupport(tb testing.TB, reqs []corpusRequest) (generic, learned, bets *waf.Guard, support []corpusRequest, sch *schema.Schema) {
	tb.Helper()
	for _, r := range reqs {
		if r.group() == "support" {
			support = append(support, r)
		}
	}
	gs := testGuards(tb, testConfig(tb, `
routes:
  - {name: support, limits: {content_types: [application/json]}, waf: {mode: learn}}
`), testListener, nil, nil)
	for i, r := range support {
		client := netip.AddrFrom4([4]byte{198, 51, 100, byte(i % 7)})
		ctx := r.ctx(tb, client)
		pass, v := gs["support"].Admit(ctx, nil, client, nil)
		if !v.Allowed() {
			tb.Fatalf("learn mode refused %s: %d", r.Name, v.Type.Status)
		}
		gs["support"].Finish(ctx, pass, nil, client)
	}
	sg := learn.Suggest(gs["support"].Model(), learn.Options{})
	if sg.Schema == nil {
		tb.Fatalf("no schema learned from %d support requests", len(support))
	}
	file := filepath.Join(tb.TempDir(), "support.schema.json")
	if err := os.WriteFile(file, sg.Schema, 0o600); err != nil {
		tb.Fatal(err)
	}
	var ex []string
	for _, x := range sg.Exclusions {
		ids, _ := json.Marshal(x.IDs)
		ex = append(ex, fmt.Sprintf("{field: %s, ids: %s}", x.Field, ids))
	}
	applied := testGuards(tb, testConfig(tb, fmt.Sprintf(`
routes:
  - {name: generic, limits: {content_types: [application/json]}}
  - name: support
    schema: %s
    limits: {content_types: [application/json]}
    waf: {exclude_fields: [%s]}
  - {name: bets, kind: ledger, schema: "builtin:bet"}
`, file, strings.Join(ex, ", "))), testListener, nil, nil)
	s, err := schema.Load(file)
	if err != nil {
		tb.Fatal(err)
	}
	return applied["generic"], applied["support"], applied["bets"], support, s
}

// engineArgs is what the rule engine reads of a JSON body: its arguments
// (each scalar leaf, and each non-empty array, which the engine reads as
// its length) and their bytes.
func engineArgs(tb testing.TB, body []byte) (args, size int) {
	tb.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		tb.Fatalf("%v: %s", err, body)
	}
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for _, c := range x {
				walk(c)
			}
		case []any:
			if len(x) > 0 {
				args++
			}
			for _, c := range x {
				walk(c)
			}
		case string:
			args++
			size += len(x)
		default:
			args++
			size += len(fmt.Sprint(x))
		}
	}
	walk(v)
	return args, size
}

// TestCorpusLearnedRouteCost: after applying what learn mode suggested, the
// support route's rule engine reads only the free-text fields — as few
// arguments per request as a bet on the hand-written schema route reads,
// within one — while the benign corpus passes it with 0 blocks. The
// measure is deterministic: the arguments and bytes the engine is handed.
func TestCorpusLearnedRouteCost(t *testing.T) {
	reqs := loadCorpus(t)
	generic, learned, _, support, sch := learnedSupport(t, reqs)
	bet, err := schema.Load("builtin:bet")
	if err != nil {
		t.Fatal(err)
	}
	var before, after, beforeBytes, afterBytes, betArgs, bets int
	for _, r := range support {
		a, s := engineArgs(t, []byte(r.Body))
		before, beforeBytes = before+a, beforeBytes+s
		if v := sch.Check([]byte(r.Body)); v != nil {
			t.Fatalf("%s breaks the schema learned from it: %v", r.Name, v)
		}
		a, s = engineArgs(t, sch.Reduce(nil, []byte(r.Body)))
		after, afterBytes = after+a, afterBytes+s
	}
	for _, r := range reqs {
		if r.Schema == "builtin:bet" {
			a, _ := engineArgs(t, bet.Reduce(nil, []byte(r.Body)))
			betArgs += a
			bets++
		}
	}
	n := float64(len(support))
	t.Logf("support route, %d requests: the rule engine reads %.2f body arguments (%.0f bytes) per request without a schema, %.2f (%.0f bytes) with the learned one; the bet route's hand-written schema: %.2f per bet",
		len(support), float64(before)/n, float64(beforeBytes)/n, float64(after)/n, float64(afterBytes)/n, float64(betArgs)/float64(bets))
	if float64(after)/n > float64(betArgs)/float64(bets)+1 || after >= before {
		t.Errorf("learned schema: %.2f arguments per request (without: %.2f); want at most the bet schema's %.2f + 1",
			float64(after)/n, float64(before)/n, float64(betArgs)/float64(bets))
	}
	client := netip.MustParseAddr("198.51.100.9")
	for _, tc := range []struct {
		name  string
		g     *waf.Guard
		block int
	}{{"learned", learned, 0}} {
		blocked := 0
		for _, r := range support {
			ctx := r.ctx(t, client)
			pass, v := tc.g.Admit(ctx, nil, client, nil)
			if !v.Allowed() {
				blocked++
				continue
			}
			tc.g.Finish(ctx, pass, nil, client)
		}
		if blocked != tc.block {
			t.Errorf("%s support route: %d of %d corpus requests blocked; want %d", tc.name, blocked, len(support), tc.block)
		}
	}
	// Without the suggestion, the generic route blocks some of them: the
	// exclusions are doing the work.
	blocked := 0
	for _, r := range support {
		ctx := r.ctx(t, client)
		pass, v := generic.Admit(ctx, nil, client, nil)
		if !v.Allowed() {
			blocked++
			continue
		}
		generic.Finish(ctx, pass, nil, client)
	}
	if blocked == 0 {
		t.Error("the generic route blocks none of the support corpus: the comparison proves nothing")
	}
}

// BenchmarkLearnedRoute compares, through the whole guard (CRS block mode,
// PL1), one support ticket on a generic route (no schema), the same ticket
// on the route with the learned schema and exclusions, and a bet with free
// text on the hand-written bet schema's route. The three run interleaved —
// each iteration runs each once — so a machine getting busier moves them
// together; it reports their CPU time (cpu-µs/…) and the learned route's
// ratios to the other two.
func BenchmarkLearnedRoute(b *testing.B) {
	reqs := loadCorpus(b)
	generic, learned, bets, support, _ := learnedSupport(b, reqs)
	var ticket, bet corpusRequest
	for _, r := range support {
		if strings.Contains(r.Body, "attachments") {
			ticket = r
			break
		}
	}
	for _, r := range reqs {
		if r.Schema == "builtin:bet" && strings.Contains(r.Body, "comment") {
			bet = r
			break
		}
	}
	client := netip.MustParseAddr("198.51.100.9")
	cases := []struct {
		name string
		g    *waf.Guard
		r    corpusRequest
	}{{"generic", generic, ticket}, {"learned", learned, ticket}, {"bet", bets, bet}}
	run := func(i int) time.Duration {
		c := cases[i]
		ctx := c.r.ctx(b, client)
		start := processCPU()
		pass, v := c.g.Admit(ctx, nil, client, nil)
		if v.Allowed() {
			c.g.Finish(ctx, pass, nil, client)
		}
		took := processCPU() - start
		if !v.Allowed() {
			b.Fatalf("%s: %s refused: %d", c.name, c.r.Name, v.Type.Status)
		}
		return took
	}
	for i := range cases {
		run(i) // warm up
	}
	cpu := make([]time.Duration, len(cases))
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		for i := range cases {
			cpu[i] += run(i)
		}
		n++
	}
	per := func(i int) float64 { return float64(cpu[i]) / float64(n) }
	for i, c := range cases {
		b.ReportMetric(per(i)/1e3, "cpu-µs/"+c.name)
	}
	b.ReportMetric(per(0)/per(1), "generic/learned")
	b.ReportMetric(per(1)/per(2), "learned/bet")
}
