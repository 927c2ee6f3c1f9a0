package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"hedge/e2e/internal/benchkit"
)

// summary is one server's medians over the rounds, and its error counts
// summed over them.
type summary struct {
	Server      string  `json:"server"`
	CPUUSPerReq float64 `json:"cpu_us_per_req"`
	ReqPerSec   float64 `json:"req_per_sec"`
	P50US       float64 `json:"p50_us"`
	P99US       float64 `json:"p99_us"`
	FixedP50US  float64 `json:"fixed_p50_us"`
	FixedP99US  float64 `json:"fixed_p99_us"`
	FixedRate   float64 `json:"fixed_rate"`
	RSSMB       float64 `json:"rss_mb"`
	PeakRSSMB   float64 `json:"peak_rss_mb"`
	CtxSwitches float64 `json:"ctx_switches_per_req"`
	Syscalls    float64 `json:"io_syscalls_per_req"`
	Non2xx      int64   `json:"non_2xx"`
	SocketErrs  int64   `json:"socket_errors"`
	FixedBad    int     `json:"fixed_non_2xx"`
}

// ratio is hedge/nginx for one figure, against its target.
type ratio struct {
	Name   string  `json:"name"`
	Value  float64 `json:"value"`
	Target string  `json:"target"`
	Met    bool    `json:"met"`
}

type report struct {
	Time    string            `json:"time"`
	Machine map[string]string `json:"machine"`
	Options map[string]string `json:"options"`
	Runs    []result          `json:"runs"`
	// Discarded are attempts measured again because other processes
	// disturbed them.
	Discarded []result  `json:"discarded,omitempty"`
	Summary   []summary `json:"summary"`
	Ratios    []ratio   `json:"ratios,omitempty"`

	ProfileFile string `json:"profile_file,omitempty"`
	Profile     string `json:"profile_top,omitempty"`
	stamp       string
}

func (r result) line() string {
	s := fmt.Sprintf("CPU %.2f µs/req (%.2f s for %d req), %.0f req/s, p50 %s p99 %s, non-2xx %d, socket errors %d, %.2f ctx switches, %.2f reads, %.2f writes per req | "+
		"@%d/s: p50 %s p99 %s, non-2xx %d | RSS %.1f MB | CPUs busy: load %.0f%%, server %.0f%%; other processes %.2f s + %.2f s",
		r.CPUUSPerReq, r.CPUSeconds, r.Requests, r.ReqPerSec, us(float64(r.P50US)), us(float64(r.P99US)), r.Non2xx, r.SocketErrs, r.CtxSwitchesPerReq, r.ReadsPerReq, r.WritesPerReq,
		fixedRate, us(r.Fixed.P50US), us(r.Fixed.P99US), r.Fixed.Requests-r.Fixed.ok(), float64(r.RSSKB)/1024,
		100*r.LoadCPUBusy, 100*r.ServerCPUBusy, r.OtherCPUSeconds, r.FixedOtherCPU)
	if r.Disturbed {
		s += " — DISTURBED by other load"
	}
	return s
}

func (f fixedResult) ok() int {
	n := 0
	for code, c := range f.Codes {
		if len(code) == 3 && code[0] == '2' {
			n += c
		}
	}
	return n
}

func us(v float64) string {
	if v >= 1000 {
		return strconv.FormatFloat(v/1000, 'f', 2, 64) + " ms"
	}
	return strconv.FormatFloat(v, 'f', 0, 64) + " µs"
}

func newReport(o options, hedgeBin string, runs []result, stamp string) *report {
	rep := &report{Time: time.Now().UTC().Format(time.RFC3339), Runs: runs, stamp: stamp, Machine: machine(hedgeBin), Options: map[string]string{
		"duration": o.duration.String(), "warmup": o.warmup.String(), "rounds": strconv.Itoa(o.rounds),
		"conns": strconv.Itoa(o.conns), "load_cpu": strconv.Itoa(o.LoadCPU), "server_cpu": strconv.Itoa(o.ServerCPU),
		"fixed_rate": strconv.Itoa(fixedRate), "body_bytes": strconv.Itoa(len(betBody)),
	}}
	by := map[string]*summary{}
	for _, name := range []string{"hedge", "nginx"} {
		var cpu, rps, p50, p99, fp50, fp99, frate, rss, hwm, cs, sys []float64
		s := summary{Server: name}
		for _, r := range runs {
			if r.Server != name {
				continue
			}
			cpu, rps = append(cpu, r.CPUUSPerReq), append(rps, r.ReqPerSec)
			p50, p99 = append(p50, float64(r.P50US)), append(p99, float64(r.P99US))
			fp50, fp99, frate = append(fp50, r.Fixed.P50US), append(fp99, r.Fixed.P99US), append(frate, r.Fixed.Rate)
			rss, hwm = append(rss, float64(r.RSSKB)/1024), append(hwm, float64(r.PeakRSSKB)/1024)
			cs = append(cs, r.CtxSwitchesPerReq)
			sys = append(sys, r.ReadsPerReq+r.WritesPerReq)
			s.Non2xx += r.Non2xx
			s.SocketErrs += r.SocketErrs
			s.FixedBad += r.Fixed.Requests - r.Fixed.ok()
		}
		if len(cpu) == 0 {
			continue
		}
		s.CPUUSPerReq, s.ReqPerSec, s.P50US, s.P99US = benchkit.Median(cpu), benchkit.Median(rps), benchkit.Median(p50), benchkit.Median(p99)
		s.FixedP50US, s.FixedP99US, s.FixedRate = benchkit.Median(fp50), benchkit.Median(fp99), benchkit.Median(frate)
		s.RSSMB, s.PeakRSSMB, s.CtxSwitches, s.Syscalls = benchkit.Median(rss), benchkit.Median(hwm), benchkit.Median(cs), benchkit.Median(sys)
		rep.Summary = append(rep.Summary, s)
		by[name] = &rep.Summary[len(rep.Summary)-1]
	}
	if h, n := by["hedge"], by["nginx"]; h != nil && n != nil {
		cpu, rps, p99 := h.CPUUSPerReq/n.CPUUSPerReq, h.ReqPerSec/n.ReqPerSec, h.FixedP99US/n.FixedP99US
		rep.Ratios = []ratio{
			{"CPU per request", cpu, fmt.Sprintf("≤ %.1f", targetCPU), cpu <= targetCPU},
			{"req/s", rps, fmt.Sprintf("≥ %.1f", targetRPS), rps >= targetRPS},
			{fmt.Sprintf("p99 at %d req/s", fixedRate), p99, fmt.Sprintf("≤ %.1f", targetP99), p99 <= targetP99},
		}
	}
	return rep
}

func (rep *report) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "## hedge vs nginx, end to end (%s)\n\n", rep.Time)
	fmt.Fprintf(&b, "TLS keep-alive client → server → upstream, POST /api/bets, %s-byte JSON body, distinct Idempotency-Key per request. ",
		rep.Options["body_bytes"])
	fmt.Fprintf(&b, "Server pinned to CPU %s; wrk (-t1 -c%s), the fixed-rate client (vegeta) and the upstream to CPU %s. ",
		rep.Options["server_cpu"], rep.Options["conns"], rep.Options["load_cpu"])
	fmt.Fprintf(&b, "%s rounds of %s measured runs after %s warm-up; medians.\n\n", rep.Options["rounds"], rep.Options["duration"], rep.Options["warmup"])
	fmt.Fprintf(&b, "Machine: %s, %s CPUs, Linux %s, %s; hedge %s (sha256 %s), nginx %s, %s.\n\n",
		rep.Machine["cpu"], rep.Machine["cpus"], rep.Machine["kernel"], rep.Machine["go"], rep.Machine["hedge"], rep.Machine["hedge_sha256"],
		rep.Machine["nginx"], rep.Machine["wrk"])

	b.WriteString("| server | CPU µs/req | req/s | p50 | p99 | p50 @2000/s | p99 @2000/s | RSS MB (peak) | ctx sw/req | I/O syscalls/req | non-2xx | socket err |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range rep.Summary {
		fmt.Fprintf(&b, "| %s | %.2f | %.0f | %s | %s | %s | %s | %.1f (%.1f) | %.2f | %.2f | %d | %d |\n",
			s.Server, s.CPUUSPerReq, s.ReqPerSec, us(s.P50US), us(s.P99US), us(s.FixedP50US), us(s.FixedP99US),
			s.RSSMB, s.PeakRSSMB, s.CtxSwitches, s.Syscalls, s.Non2xx+int64(s.FixedBad), s.SocketErrs)
	}
	if len(rep.Ratios) > 0 {
		b.WriteString("\n| hedge / nginx | ratio | target | |\n|---|---:|---|---|\n")
		for _, r := range rep.Ratios {
			verdict := "met"
			if !r.Met {
				verdict = "**missed**"
			}
			fmt.Fprintf(&b, "| %s | %.2f | %s | %s |\n", r.Name, r.Value, r.Target, verdict)
		}
	}
	disturbed := 0
	for _, r := range rep.Runs {
		if r.Disturbed {
			disturbed++
		}
	}
	if disturbed > 0 {
		fmt.Fprintf(&b, "\n**%d of %d runs were disturbed** by other processes on the two CPUs (\"other processes\" below): run again on a quiet machine before trusting the ratios.\n", disturbed, len(rep.Runs))
	}
	b.WriteString("\nRuns:\n\n")
	for _, r := range rep.Runs {
		fmt.Fprintf(&b, "- round %d %s: %s\n", r.Round, r.Server, r.line())
	}
	if rep.Profile != "" {
		fmt.Fprintf(&b, "\nhedge CPU profile under load (%s):\n\n```\n%s\n```\n", rep.ProfileFile, rep.Profile)
	}
	return b.String()
}

// machine describes where the numbers were taken.
func machine(hedgeBin string) map[string]string {
	nginx := benchkit.NginxVersion(nginxBin)
	m := benchkit.Machine(hedgeBin)
	m["nginx"] = nginx
	if b, err := os.ReadFile(hedgeBin); err == nil {
		m["hedge_sha256"] = fmt.Sprintf("%x", sha256.Sum256(b))[:16]
	}
	if out, _ := exec.Command("wrk", "-v").CombinedOutput(); len(out) > 0 {
		m["wrk"] = strings.Join(strings.Fields(strings.SplitN(string(out), "\n", 2)[0])[:2], " ")
	}
	return m
}

// profileHedge runs hedge once more under the saturating load (not
// measured: profiling costs CPU) and takes a CPU profile from its admin
// listener, then summarizes it with `go tool pprof -top`.
func profileHedge(ctx context.Context, e *env, o options, stamp string) (top, file string, err error) {
	if err := waitQuiet(ctx, o, o.quietWait); err != nil {
		return "", "", err
	}
	fmt.Println("profiling hedge under load ...")
	s, err := startHedge(e, o.ServerCPU)
	if err != nil {
		return "", "", err
	}
	defer s.stop()
	if err := benchkit.WaitFor(ctx, s.proc, 20*time.Second, func() error { _, err := probe(e, s, "ready"); return err }); err != nil {
		return "", "", err
	}
	secs := max(1, min(5, int(o.duration/time.Second)-2))
	d := time.Duration(secs+3) * time.Second
	wrkDone := make(chan error, 1)
	go func() {
		_, err := runWrk(ctx, e.dir, o.LoadCPU, s.url(), stamp+"-profile", o.conns, d)
		wrkDone <- err
	}()
	time.Sleep(time.Second) // past connection set-up
	p := benchkit.TakeProfile(ctx, s.adminAddr, secs, 35, o.Out, "hedge-cpu-"+stamp)
	if err := <-wrkDone; err != nil {
		return "", "", err
	}
	switch {
	case p.File == "":
		return "", "", errors.New(p.Err)
	case p.Err != "":
		return p.Err, p.File, nil // the profile is kept; only its summary failed
	}
	return p.Top, p.File, nil
}
