package main

import (
	"fmt"
	"strings"
	"time"
)

// cell is one server on one request kind, in one round.
type cell struct {
	Server  string `json:"server"`
	Label   string `json:"label"`
	Request string `json:"request"` // GET | POST
	Round   int    `json:"round"`

	// Requests answered 200 in the measured part (the warm-up excluded).
	Requests    int64   `json:"requests"`
	CPUSeconds  float64 `json:"cpu_seconds"`
	CPUUSPerReq float64 `json:"cpu_us_per_req"` // the primary figure
	ReqPerSec   float64 `json:"req_per_sec"`    // closed loop, at saturation
	P50US       int64   `json:"p50_us"`
	P99US       int64   `json:"p99_us"`
	// AllocsPerReq is hedge's heap allocations per request (HasAllocs);
	// within a few of 0 it is the scrapes' noise.
	AllocsPerReq float64 `json:"allocs_per_req"`
	HasAllocs    bool    `json:"has_allocs"`
	// Stopped: -cell-max ended the cell before -n requests.
	Stopped bool `json:"stopped,omitempty"`
	// OtherCPUSeconds is CPU time processes outside this run used during
	// the cell; ServerCPUBusy how busy the server's CPU was (1 = fully),
	// whoever used it.
	OtherCPUSeconds float64 `json:"other_cpu_seconds"`
	ServerCPUBusy   float64 `json:"server_cpu_busy"`
	// Profile is hedge's CPU profile during the cell (-profile).
	Profile profileResult `json:"profile,omitzero"`
}

func (c cell) line() string {
	s := fmt.Sprintf("%-4s %8.1f µs CPU/req  %7.0f req/s  p50 %s  p99 %s  (%d requests; others used %.1f CPU-s)",
		c.Request, c.CPUUSPerReq, c.ReqPerSec, us(c.P50US), us(c.P99US), c.Requests, c.OtherCPUSeconds)
	if c.HasAllocs {
		s += "  " + count(c.AllocsPerReq) + " allocs/req"
	}
	if c.Stopped {
		s += "  [stopped by -cell-max]"
	}
	return s
}

// count prints an average count rounded to a whole number; the scrapes'
// noise can make a true 0 come out slightly negative.
func count(v float64) string {
	if v > -1 && v < 0.5 {
		return "0"
	}
	return fmt.Sprintf("%.0f", v)
}

func us(v int64) string {
	if v >= 10000 {
		return fmt.Sprintf("%.1f ms", float64(v)/1000)
	}
	return fmt.Sprintf("%d µs", v)
}

// ratio compares hedge with another server on one figure.
type ratio struct {
	What   string  `json:"what"`
	Value  float64 `json:"value"`
	Target string  `json:"target,omitempty"`
	Met    *bool   `json:"met,omitempty"`
	// ByReqPerSec is the same comparison on measured requests/s, which a
	// shared machine disturbs more than CPU time.
	ByReqPerSec float64 `json:"by_req_per_sec"`
}

type report struct {
	Started     time.Time         `json:"started"`
	Machine     map[string]string `json:"machine"`
	Versions    map[string]string `json:"versions"`
	HedgeEngine string            `json:"hedge_engine"`
	N           int               `json:"n"`
	Warmup      int               `json:"warmup"`
	Conns       int               `json:"conns"`
	Rounds      int               `json:"rounds"`
	LoadCPU     int               `json:"load_cpu"`
	ServerCPU   int               `json:"server_cpu"`
	Cells       []cell            `json:"cells"`
	// Summary is each server × request's median over the rounds.
	Summary []cell  `json:"summary"`
	Ratios  []ratio `json:"ratios"`
}

var serverOrder = []string{"hedge", "hedge-waf-off", "wafref", "nginx-modsec"}

// summarize takes each server × request's median cell (by CPU per request)
// and computes hedge's ratios to each peer, against their targets.
func (r *report) summarize() {
	r.Summary = nil
	for _, srv := range serverOrder {
		for _, k := range kinds {
			req := k.String()
			var cs []cell
			for _, c := range r.Cells {
				if c.Server == srv && c.Request == req {
					cs = append(cs, c)
				}
			}
			if len(cs) == 0 {
				continue
			}
			xs := make([]float64, len(cs))
			for i, c := range cs {
				xs[i] = c.CPUUSPerReq
			}
			m := median(xs)
			for _, c := range cs {
				if c.CPUUSPerReq == m {
					r.Summary = append(r.Summary, c)
					break
				}
			}
		}
	}
	find := func(srv, req string) (cell, bool) {
		for _, c := range r.Summary {
			if c.Server == srv && c.Request == req {
				return c, true
			}
		}
		return cell{}, false
	}
	r.Ratios = nil
	add := func(peer, req, what string, target float64, targetText string) {
		h, ok1 := find("hedge", req)
		p, ok2 := find(peer, req)
		if !ok1 || !ok2 || h.CPUUSPerReq == 0 || p.ReqPerSec == 0 {
			return
		}
		// Throughput on one CPU is the inverse of CPU time per request.
		v := p.CPUUSPerReq / h.CPUUSPerReq
		rt := ratio{What: what, Value: v, Target: targetText, ByReqPerSec: h.ReqPerSec / p.ReqPerSec}
		if target > 0 {
			met := v >= target
			if targetText == "> 1" {
				met = v > target
			}
			rt.Met = &met
		}
		r.Ratios = append(r.Ratios, rt)
	}
	add("wafref", "GET", "hedge vs reference (bare Coraza), GET", 3, "≥ 3")
	add("wafref", "POST", "hedge vs reference (bare Coraza), POST bet", 5, "≥ 5")
	add("wafref", "POST no schema", "hedge vs reference (bare Coraza), POST bet, route without schema", 4, "≥ 4")
	add("nginx-modsec", "GET", "hedge vs nginx + ModSecurity, GET", 1.5, "≥ 1.5")
	add("nginx-modsec", "POST", "hedge vs nginx + ModSecurity, POST bet", 1, "> 1")
	add("nginx-modsec", "POST no schema", "hedge vs nginx + ModSecurity, POST bet, route without schema", 1.5, "≥ 1.5")
	add("hedge-waf-off", "GET", "hedge WAF on vs off, GET (protection's share)", 0, "")
	add("hedge-waf-off", "POST", "hedge WAF on vs off, POST bet (protection's share)", 0, "")
	add("hedge-waf-off", "POST no schema", "hedge WAF on vs off, POST bet without schema (protection's share)", 0, "")
}

func (r *report) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "## WAF speed: hedge vs bare Coraza vs nginx + ModSecurity (%s)\n\n", r.Started.Format(time.RFC3339))
	fmt.Fprintf(&b, "Machine: %s, %s CPUs, Linux %s, %s. hedge %s, rule engine: **%s**",
		r.Machine["cpu"], r.Machine["cpus"], r.Machine["kernel"], r.Machine["go"], r.Machine["hedge"], r.HedgeEngine)
	if strings.Contains(r.HedgeEngine, "re2") {
		b.WriteString(" (built with -tags re2_cgo)")
	} else {
		b.WriteString(" (pure-Go build, no re2_cgo tag)")
	}
	fmt.Fprintf(&b, ". Peers: nginx %s, libmodsecurity3 %s, Debian CRS %s.\n\n",
		r.Versions["nginx"], r.Versions["modsecurity"], r.Versions["debian_crs"])
	fmt.Fprintf(&b, "Each server pinned to CPU %d, load generator and upstream to CPU %d; closed loop, %d keep-alive connections, "+
		"%d measured requests per cell after %d warm-up, %d round(s) (median shown). "+
		"CPU/req = server utime+stime (all its processes) ÷ requests answered 200.\n\n",
		r.ServerCPU, r.LoadCPU, r.Conns, r.N, r.Warmup, r.Rounds)
	b.WriteString("| server | request | requests | CPU µs/req | req/s | p50 | p99 | allocs/req | others' CPU-s |\n")
	b.WriteString("|---|---|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, c := range r.Summary {
		allocs := "–"
		if c.HasAllocs {
			allocs = count(c.AllocsPerReq)
		}
		stopped := ""
		if c.Stopped {
			stopped = " (stopped by -cell-max)"
		}
		fmt.Fprintf(&b, "| %s | %s | %d%s | %.1f | %.0f | %s | %s | %s | %.1f |\n",
			c.Label, c.Request, c.Requests, stopped, c.CPUUSPerReq, c.ReqPerSec, us(c.P50US), us(c.P99US), allocs, c.OtherCPUSeconds)
	}
	b.WriteString("\nRatios (throughput on one CPU = inverse CPU per request; measured req/s beside it):\n\n")
	b.WriteString("| comparison | by CPU/req | by req/s | target | met |\n|---|--:|--:|---|---|\n")
	for _, rt := range r.Ratios {
		met := ""
		if rt.Met != nil {
			met = map[bool]string{true: "yes", false: "**no**"}[*rt.Met]
		}
		what, v := rt.What, fmt.Sprintf("%.2f×", rt.Value)
		if rt.Target == "" { // on vs off: hedge is the slower one; say its cost
			v = fmt.Sprintf("on costs %.2f× off", 1/rt.Value)
		}
		fmt.Fprintf(&b, "| %s | %s | %.2f× | %s | %s |\n", what, v, rt.ByReqPerSec, rt.Target, met)
	}
	for _, k := range kinds {
		req := k.String()
		var on, off *cell
		for i := range r.Summary {
			c := &r.Summary[i]
			if c.Request == req && c.Server == "hedge" {
				on = c
			}
			if c.Request == req && c.Server == "hedge-waf-off" {
				off = c
			}
		}
		if on != nil && off != nil {
			fmt.Fprintf(&b, "\nCost of protection, %s: %.1f µs CPU per request (%.1f → %.1f)", req, on.CPUUSPerReq-off.CPUUSPerReq, off.CPUUSPerReq, on.CPUUSPerReq)
			if on.HasAllocs && off.HasAllocs {
				fmt.Fprintf(&b, ", %s allocations (%s → %s)", count(on.AllocsPerReq-off.AllocsPerReq), count(off.AllocsPerReq), count(on.AllocsPerReq))
			}
			b.WriteString(".")
		}
	}
	b.WriteString("\n")
	for _, c := range r.Summary {
		if c.Profile.Top != "" {
			fmt.Fprintf(&b, "\nhedge's CPU profile, %s (%s):\n\n```\n%s\n```\n", c.Request, c.Profile.File, c.Profile.Top)
		}
	}
	return b.String()
}
