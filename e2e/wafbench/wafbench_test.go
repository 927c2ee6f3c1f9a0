package main

import (
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"hedge/waf/schema"
)

// The measured bet must be a valid 1 KB bet, and the attack bet must pass the schema too, so that only the rule engine
// can refuse it.
func TestBetBodies(t *testing.T) {
	s, err := schema.Load("builtin:bet")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		body string
	}{{"bet", betBody}, {"attack bet", attackBet}} {
		if v := s.Check([]byte(tc.body)); v != nil {
			t.Errorf("%s: schema builtin:bet refused it (%v), want it valid", tc.name, v)
		}
		if n := len(tc.body); n < 900 || n > 1200 {
			t.Errorf("%s: %d bytes, want about 1 KB (900–1200)", tc.name, n)
		}
	}
	if attackBet == betBody {
		t.Error("attackBet equals betBody: the comment was not replaced")
	}
	if !strings.Contains(attackQuery, "UNION") {
		t.Errorf("attackQuery %q carries no SQL injection", attackQuery)
	}
}

func TestFill(t *testing.T) {
	for _, tc := range []struct {
		k       kind
		attack  bool
		method  string
		uri     string
		body    string
		headers int // besides Host, Content-Length and Content-Type
	}{
		{get, false, "GET", getPath, "", 14},
		{get, true, "GET", attackQuery, "", 14},
		{post, false, "POST", postPath, betBody, 16},
		{post, true, "POST", postPath, attackBet, 16},
		{postGeneric, false, "POST", genericPath, betBody, 16},
		{postGeneric, true, "POST", genericPath, attackBet, 16},
	} {
		var req fasthttp.Request
		fill(&req, tc.k, tc.attack)
		if got := string(req.Header.Method()); got != tc.method {
			t.Errorf("%s attack=%v: method %q, want %q", tc.k, tc.attack, got, tc.method)
		}
		if got := string(req.RequestURI()); got != tc.uri {
			t.Errorf("%s attack=%v: URI %q, want %q", tc.k, tc.attack, got, tc.uri)
		}
		if got := string(req.Body()); got != tc.body {
			t.Errorf("%s attack=%v: body of %d bytes, want %d", tc.k, tc.attack, len(got), len(tc.body))
		}
		if got := string(req.Header.Host()); got != host {
			t.Errorf("%s attack=%v: Host %q, want %q", tc.k, tc.attack, got, host)
		}
		n := 0
		for k := range req.Header.All() {
			switch strings.ToLower(string(k)) {
			case "host", "content-length", "content-type":
			default:
				n++
			}
		}
		if n != tc.headers {
			t.Errorf("%s attack=%v: %d headers besides Host and Content-*, want %d", tc.k, tc.attack, n, tc.headers)
		}
	}
}

func TestQuantile(t *testing.T) {
	ms := func(xs ...int) []time.Duration {
		out := make([]time.Duration, len(xs))
		for i, x := range xs {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	for _, tc := range []struct {
		in   []time.Duration
		q    float64
		want time.Duration
	}{
		{nil, 0.5, 0},
		{ms(7), 0.99, 7 * time.Millisecond},
		{ms(1, 2, 3), 0.5, 2 * time.Millisecond},
		{ms(hundred...), 0.5, 50 * time.Millisecond},
		{ms(hundred...), 0.99, 99 * time.Millisecond},
	} {
		if got := quantile(tc.in, tc.q); got != tc.want {
			t.Errorf("quantile(%d values, %v) = %v, want %v", len(tc.in), tc.q, got, tc.want)
		}
	}
}

// summarize keeps each cell's median over rounds and turns CPU per request
// into throughput ratios, hedge first.
func TestSummarize(t *testing.T) {
	c := func(srv, req string, round int, cpu, rps float64) cell {
		return cell{Server: srv, Request: req, Round: round, CPUUSPerReq: cpu, ReqPerSec: rps}
	}
	r := &report{Cells: []cell{
		c("hedge", "GET", 1, 500, 1800), c("hedge", "GET", 2, 400, 2000), c("hedge", "GET", 3, 900, 1000),
		c("hedge", "POST", 1, 1000, 900),
		c("wafref", "GET", 1, 1000, 900),
		c("wafref", "POST", 1, 4000, 240),
		c("nginx-modsec", "GET", 1, 400, 2400),
		c("nginx-modsec", "POST", 1, 2000, 480),
		c("hedge-waf-off", "GET", 1, 50, 15000),
		c("hedge", "POST no schema", 1, 1000, 1000),
		c("wafref", "POST no schema", 1, 5000, 200),
		c("nginx-modsec", "POST no schema", 1, 1200, 800),
	}}
	r.summarize()
	var hedgeGET cell
	for _, s := range r.Summary {
		if s.Server == "hedge" && s.Request == "GET" {
			hedgeGET = s
		}
	}
	if hedgeGET.Round != 1 || hedgeGET.CPUUSPerReq != 500 {
		t.Errorf("hedge GET summary = round %d, %.0f µs; want the median, round 1 with 500 µs", hedgeGET.Round, hedgeGET.CPUUSPerReq)
	}
	want := map[string]struct {
		v, rps float64
		met    string // "yes", "no", "" for no target
	}{
		"hedge vs reference (bare Coraza), GET":                             {2, 2, "no"},
		"hedge vs reference (bare Coraza), POST bet":                        {4, 3.75, "no"},
		"hedge vs reference (bare Coraza), POST bet, route without schema":  {5, 5, "yes"},
		"hedge vs nginx + ModSecurity, GET":                                 {0.8, 0.75, "no"},
		"hedge vs nginx + ModSecurity, POST bet":                            {2, 1.875, "yes"},
		"hedge vs nginx + ModSecurity, POST bet, route without schema":      {1.2, 1.25, "no"},
		"hedge WAF on vs off, GET (protection's share)":                     {0.1, 0.12, ""},
		"hedge WAF on vs off, POST bet (protection's share)":                {},
		"hedge WAF on vs off, POST bet without schema (protection's share)": {},
	}
	got := map[string]bool{}
	for _, rt := range r.Ratios {
		got[rt.What] = true
		w, ok := want[rt.What]
		if !ok {
			t.Errorf("unexpected ratio %q", rt.What)
			continue
		}
		met := ""
		if rt.Met != nil {
			met = map[bool]string{true: "yes", false: "no"}[*rt.Met]
		}
		if !near(rt.Value, w.v) || !near(rt.ByReqPerSec, w.rps) || met != w.met {
			t.Errorf("%s = %.3f (req/s %.3f, met %q), want %.3f (req/s %.3f, met %q)", rt.What, rt.Value, rt.ByReqPerSec, met, w.v, w.rps, w.met)
		}
	}
	// No hedge-waf-off POST cells: those ratios must be absent, every other present.
	for what := range want {
		if present := got[what]; present != !strings.HasPrefix(what, "hedge WAF on vs off, POST") {
			t.Errorf("ratio %q present = %v", what, present)
		}
	}
	if md := r.markdown(); !strings.Contains(md, "| hedge vs reference (bare Coraza), GET | 2.00× | 2.00× | ≥ 3 | **no** |") {
		t.Errorf("markdown lacks the GET ratio row:\n%s", md)
	}
}

func near(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }
