// Command wafbench measures what the Core Rule Set costs in hedge, against
// bare Coraza and nginx with ModSecurity, in one run on one machine:
//
//	go run ./e2e/wafbench -hedge ./bin/hedge      (make bench runs it)
//
// Servers, each pinned with taskset to the same CPU (-server-cpu, 1):
//
//   - hedge, WAF block mode PL1, plain-HTTP listener, proxy routes to the
//     upstream; the bet route checked against the schema builtin:bet;
//   - the same hedge with the WAF off (the schema and limits still run);
//   - e2e/wafref, the reference: net/http with Coraza's own http middleware
//     and the same CRS configuration, block mode PL1;
//   - nginx with ModSecurity 3 and Debian's CRS, PL1, in front of
//     proxy_pass (with `return 200` ModSecurity inspects nothing).
//
// Every server proxies to the same upstream, which, like this program and
// its load generator, runs pinned to the other CPU (-load-cpu, 0), so
// neither is counted as the server's. Requests: (a) GET with 14 browser
// headers (cookie, bearer JWT, sec-ch-ua, sec-fetch-*, …), (b) POST of a
// 1 KB JSON bet whose free-text fields hold ordinary table chat, and (c)
// the same POST to a route without a schema (hedge's rule engine reads the
// whole body, as the peers always do).
//
// Before any load, each server must answer both requests with 200 and, in
// block mode, an SQL injection in the query and in the bet's comment with
// 403; otherwise the run stops: a WAF that does not inspect is not measured.
//
// The primary figure is the server's CPU time per request: utime+stime from
// /proc/PID/stat of all its processes (nginx's master and worker) over a
// fixed number of requests (-n, after a warm-up), divided by the requests
// answered 200. The load is a closed loop (fasthttp client, -conns
// keep-alive connections), so the same run gives requests/s at saturation
// and p50/p99. hedge's allocations per request come from its
// go_memstats_mallocs_total (the scrapes' own allocations subtracted).
//
// The machine may be shared: the report shows, per cell, the CPU time
// processes outside this run used meanwhile. The CPU time per request is the
// server's own and suffers little from them; requests/s and latency suffer
// fully. Results go to e2e/bench/results/waf-*.{md,json}.
//
// Needs: Linux, two CPUs, taskset (util-linux), nginx,
// libnginx-mod-http-modsecurity and modsecurity-crs (make bench-deps). Every
// process started is stopped by its id, and the temporary directory
// removed, also when a step fails or the run is interrupted; the whole run
// is bounded by -max.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"hedge/e2e/internal/benchkit"
)

type options struct {
	hedge  string
	wafref string
	n      int
	warmup int
	conns  int
	rounds int
	benchkit.Placement
	cellMax     time.Duration
	max         time.Duration
	skipNginx   bool
	profile     bool
	profileSecs int
}

// pinnedEnv marks the process that taskset already pinned to the load CPU.
const pinnedEnv = "HEDGE_WAFBENCH_PINNED"

func main() {
	var o options
	flag.StringVar(&o.hedge, "hedge", "", "path of the hedge `binary` to measure (required)")
	flag.StringVar(&o.wafref, "wafref", "", "path of a built e2e/wafref `binary`; empty: build it with go build")
	flag.IntVar(&o.n, "n", 2000, "measured requests per cell (server × request)")
	flag.IntVar(&o.warmup, "warmup", 200, "warm-up requests before each cell, not counted")
	flag.IntVar(&o.conns, "conns", 16, "keep-alive connections of the closed-loop generator")
	flag.IntVar(&o.rounds, "rounds", 1, "rounds over all servers; the report keeps each cell's median")
	o.Flags("this program, its load generator and the upstream", "the server under test", "the JSON and markdown reports")
	flag.DurationVar(&o.cellMax, "cell-max", 75*time.Second, "stop a cell after this long (the report marks it)")
	flag.DurationVar(&o.max, "max", 5*time.Minute, "bound of the whole run")
	flag.BoolVar(&o.skipNginx, "skip-nginx", false, "leave nginx + ModSecurity out")
	flag.BoolVar(&o.profile, "profile", false, "take a CPU profile of hedge (WAF on) during each of its cells; the report lists the top functions")
	flag.IntVar(&o.profileSecs, "profile-seconds", 5, "length of each profile; keep it below a cell's duration")
	benchkit.Main("wafbench", func() error {
		if err := pinSelf(o.LoadCPU); err != nil {
			return err
		}
		return run(o)
	}, benchkit.Upstream(serveUpstream))
}

// pinSelf re-executes this program under `taskset -c cpu`, once, so that it
// and its load generator run on the load CPU only (every thread inherits the
// affinity of the exec).
func pinSelf(cpu int) error {
	if os.Getenv(pinnedEnv) != "" {
		return nil
	}
	ts, err := exec.LookPath("taskset")
	if err != nil {
		return errors.New("taskset not found: install util-linux (make bench-deps)")
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	args := append([]string{"taskset", "-c", strconv.Itoa(cpu), self}, os.Args[1:]...)
	return syscall.Exec(ts, args, append(os.Environ(), pinnedEnv+"=1"))
}

// env is what every server and cell shares.
type env struct {
	dir       string // temporary; removed at the end
	hedgeBin  string
	wafrefBin string
	upstream  string // host:port
}

// slot makes a directory and two free loopback addresses for one server.
func (e *env) slot(name string) (listen, admin, dir string, err error) {
	dir, addrs, err := benchkit.Slot(e.dir, name+"-", 2)
	if err != nil {
		return "", "", "", err
	}
	return addrs[0], addrs[1], dir, nil
}

func run(o options) (err error) {
	if o.n < 100 || o.warmup < 0 || o.conns < 1 || o.rounds < 1 {
		return errors.New("-n must be ≥ 100, -conns and -rounds ≥ 1, -warmup ≥ 0")
	}
	// Not runtime.NumCPU: this process is pinned to one CPU by now.
	if err := o.Check(); err != nil {
		return err
	}
	if !o.skipNginx {
		for _, f := range []string{nginxBin, modsecModule, debianCRS} {
			if _, err := os.Stat(f); err != nil {
				return fmt.Errorf("%s missing: install the Debian packages nginx-light libnginx-mod-http-modsecurity modsecurity-crs (make bench-deps), or run with -skip-nginx", f)
			}
		}
	}
	ctx, stop := benchkit.Bounded(o.max)
	defer stop()

	w, err := benchkit.NewWorkspace("hedge-wafbench-", o.hedge)
	if err != nil {
		return err
	}
	defer w.Close()
	e := &env{dir: w.Dir, hedgeBin: w.Hedge}
	if o.wafref != "" {
		if _, err := exec.LookPath(o.wafref); err != nil {
			return fmt.Errorf("-wafref: %w", err)
		}
	}
	if e.wafrefBin = o.wafref; e.wafrefBin == "" {
		e.wafrefBin = filepath.Join(e.dir, "wafref")
		fmt.Println("building e2e/wafref ...")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", e.wafrefBin, "./e2e/wafref")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build ./e2e/wafref (run from the module root, or pass -wafref): %v\n%s", err, out)
		}
	}

	var up *benchkit.Proc
	if e.upstream, up, err = benchkit.StartUpstream(ctx, e.dir, o.LoadCPU, w.Self, "/healthz"); err != nil {
		return err
	}
	defer up.Stop(syscall.SIGTERM, 2*time.Second)

	type contender struct {
		start func() (*server, error)
		block bool // the WAF blocks: attacks must get 403
	}
	contenders := []contender{
		{func() (*server, error) { return startHedge(e, o.ServerCPU, "block") }, true},
		{func() (*server, error) { return startHedge(e, o.ServerCPU, "off") }, false},
		{func() (*server, error) { return startWafref(e, o.ServerCPU) }, true},
	}
	if !o.skipNginx {
		contenders = append(contenders, contender{func() (*server, error) { return startNginx(e, o.ServerCPU) }, true})
	}

	rep := &report{Started: time.Now().UTC(), Machine: benchkit.Machine(e.hedgeBin), Versions: versions(),
		N: o.n, Warmup: o.warmup, Conns: o.conns, Rounds: o.rounds, LoadCPU: o.LoadCPU, ServerCPU: o.ServerCPU}
	rep.Machine["cpus"] = strconv.Itoa(onlineCPUs()) // Machine counts the CPUs we are pinned to
	for round := 1; round <= o.rounds; round++ {
		for _, c := range contenders {
			cells, engine, err := measureServer(ctx, e, o, c.start, c.block, round)
			if err != nil {
				return err
			}
			if engine != "" {
				rep.HedgeEngine = engine
			}
			rep.Cells = append(rep.Cells, cells...)
		}
	}
	rep.summarize()
	md := rep.markdown()
	fmt.Println()
	fmt.Print(md)
	return benchkit.WriteResults(o.Out, "waf-"+rep.Started.Format("20060102-150405"), rep, md)
}

// measureServer starts one server, proves it inspects, measures its GET and
// POST cells and stops it. engine is hedge's rule engine, "" for others.
func measureServer(ctx context.Context, e *env, o options, start func() (*server, error), block bool, round int) (cells []cell, engine string, err error) {
	s, err := start()
	if err != nil {
		return nil, "", err
	}
	defer s.stop()
	fail := func(err error) ([]cell, string, error) {
		msg := fmt.Sprintf("%s: %v", s.name, err)
		if t := s.proc.Tail(); t != "" {
			msg += "\n--- " + s.name + " output:\n" + t
		}
		if s.errorLog != "" {
			if t := benchkit.TailFile(s.errorLog, 2000); t != "" {
				msg += "\n--- " + s.name + " error log:\n" + t
			}
		}
		return nil, "", errors.New(msg)
	}
	fmt.Printf("round %d: %s (%s)\n", round, s.name, s.label)
	// Ready: the GET goes through (hedge first waits for its health check
	// to mark the upstream up).
	ready := func() error {
		code, body, err := once(s.addr, get, false)
		if err == nil && code != fasthttp.StatusOK {
			err = fmt.Errorf("GET answered %d: %s", code, body)
		}
		return err
	}
	if err := benchkit.WaitFor(ctx, s.proc, 30*time.Second, ready); err != nil {
		return fail(err)
	}
	if err := verify(s.addr, block); err != nil {
		return fail(err)
	}
	if s.admin != "" && block {
		if engine, err = hedgeEngine(s.admin); err != nil {
			return fail(err)
		}
	}
	for _, k := range kinds {
		c, err := measureCell(ctx, o, s, k)
		if err != nil {
			return fail(err)
		}
		c.Round = round
		fmt.Printf("  %s\n", c.line())
		cells = append(cells, c)
	}
	if s.proc.Exited() {
		return fail(fmt.Errorf("exited during the run: %v", s.proc.Err()))
	}
	return cells, engine, nil
}

// verify proves that the server inspects what it is measured on: the
// ordinary GET and bet pass (200), and in block mode the SQL injection in
// the query and in the bet's comment is refused (403). With the WAF off the
// attacks pass, which shows the switch works.
func verify(addr string, block bool) error {
	want := fasthttp.StatusOK
	if block {
		want = fasthttp.StatusForbidden
	}
	for _, t := range []struct {
		k      kind
		attack bool
		want   int
	}{{get, false, 200}, {post, false, 200}, {postGeneric, false, 200}, {get, true, want}, {post, true, want}, {postGeneric, true, want}} {
		code, body, err := once(addr, t.k, t.attack)
		if err != nil {
			return fmt.Errorf("verify %s (attack %v): %w", t.k, t.attack, err)
		}
		if code != t.want {
			what := "the ordinary " + t.k.String()
			if t.attack {
				what = "the SQL injection " + t.k.String()
			}
			return fmt.Errorf("verify: %s answered %d, want %d (a WAF that does not inspect is not measured): %s", what, code, t.want, body)
		}
	}
	return nil
}

// measureCell warms the server up with kind k, then sends o.n requests and
// reads the server's CPU time (and hedge's allocations) around them.
func measureCell(ctx context.Context, o options, s *server, k kind) (cell, error) {
	c := cell{Server: s.name, Label: s.label, Request: k.String()}
	if o.warmup > 0 {
		w := closedLoop(ctx, s.addr, k, o.warmup, o.conns, o.cellMax)
		if p := w.problems(); p != "" {
			return c, fmt.Errorf("warm-up %s: %s", k, p)
		}
	}
	pids := s.pids()
	var m0, m1 float64
	var err error
	if s.admin != "" {
		// Two scrapes back to back: the second's growth is what one scrape
		// allocates, subtracted below.
		if m0, err = mallocs(s.admin); err != nil {
			return c, err
		}
		if m1, err = mallocs(s.admin); err != nil {
			return c, err
		}
	}
	t0, err := benchkit.CPUTicks(pids...)
	if err != nil {
		return c, err
	}
	others0, busy0 := benchkit.OthersTicks(os.Getpid()), cpuBusy(o.ServerCPU)
	var prof chan profileResult
	if o.profile && s.name == "hedge" {
		prof = make(chan profileResult, 1)
		name := fmt.Sprintf("waf-hedge-%s-%s", k, time.Now().UTC().Format("20060102-150405"))
		go func() { prof <- takeProfile(ctx, s.admin, o.profileSecs, o.Out, name) }()
	}
	r := closedLoop(ctx, s.addr, k, o.n*s.scale, o.conns, o.cellMax)
	t1, err := benchkit.CPUTicks(pids...)
	if err != nil {
		return c, fmt.Errorf("reading CPU times after the cell (did it exit?): %w", err)
	}
	others1, busy1 := benchkit.OthersTicks(os.Getpid()), cpuBusy(o.ServerCPU)
	if prof != nil {
		if c.Profile = <-prof; c.Profile.Err != "" {
			fmt.Printf("  (profile of %s: %s)\n", k, c.Profile.Err)
		}
	}
	if ctx.Err() != nil {
		return c, fmt.Errorf("stopped: %w", ctx.Err())
	}
	if p := r.problems(); p != "" {
		return c, fmt.Errorf("%s: %s", k, p)
	}
	if r.OK == 0 {
		return c, fmt.Errorf("%s: no request answered 200", k)
	}
	if s.admin != "" {
		m2, err := mallocs(s.admin)
		if err != nil {
			return c, err
		}
		c.AllocsPerReq, c.HasAllocs = (m2-m1-(m1-m0))/float64(r.OK), true
	}
	c.Requests = r.OK
	c.CPUSeconds = float64(t1-t0) / benchkit.ClockTicks
	c.CPUUSPerReq = c.CPUSeconds * 1e6 / float64(r.OK)
	c.ReqPerSec = float64(r.OK) / r.Wall.Seconds()
	c.P50US, c.P99US = r.P50.Microseconds(), r.P99.Microseconds()
	c.Stopped = r.Stopped
	if others1 > others0 {
		c.OtherCPUSeconds = float64(others1-others0) / benchkit.ClockTicks
	}
	if busy1 > busy0 {
		c.ServerCPUBusy = float64(busy1-busy0) / benchkit.ClockTicks / r.Wall.Seconds()
	}
	return c, nil
}

// onlineCPUs counts the machine's CPUs (the per-CPU lines of /proc/stat).
func onlineCPUs() int {
	n := 0
	for ; n < 4096; n++ {
		if _, err := benchkit.CPUBusy(n); err != nil {
			break
		}
	}
	return n
}

func cpuBusy(cpu int) uint64 {
	b, _ := benchkit.CPUBusy(cpu)
	return b
}

// median of xs (the lower middle for an even count); xs is sorted in place.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	return xs[(len(xs)-1)/2]
}
