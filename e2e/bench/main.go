// Command bench is hedge's end-to-end speed comparison with nginx: a TLS
// keep-alive client → the server under test → a fast upstream, POST
// /api/bets with a 200-byte JSON body and an Idempotency-Key.
//
//	go run ./e2e/bench -hedge ./bin/hedge      (make bench runs it)
//
// The server under test (hedge, or nginx configured equivalently) is pinned
// to one CPU and everything else (wrk, the constant-rate client, the
// upstream) to another. On two cores the load generator saturates first,
// so req/s is capped by the client; the primary figure is therefore the
// server's own CPU time per request, read from /proc/PID/stat (utime +
// stime) before and after a saturating run and divided by the requests wrk
// completed. Beside it: req/s and latency of that run, p99 at a fixed
// 2,000 req/s (vegeta), and resident memory.
//
// Targets: hedge's CPU per request ≤ 1.2× nginx's, req/s
// ≥ 0.9× nginx's, p99 at 2,000 req/s ≤ 1.5× nginx's. Servers alternate
// (hedge, nginx, hedge, nginx, ...) and medians are compared, so a drift of
// the machine during the run hits both. When a target is missed (or with
// -profile), hedge is run once more under load and a CPU profile taken from
// its admin listener is added to the report.
//
// Other processes on the two CPUs spoil every figure, so each run waits
// for them to be quiet, counts the CPU time they took anyway, and is
// measured again (-retries) when that was more than 5 % of a CPU.
//
// Needs: Linux, two CPUs, taskset (util-linux), wrk, nginx (nginx-light).
// Everything listens on 127.0.0.1 ports chosen at run time; every process
// started is stopped by its id, and the temporary directory removed, also
// when a step fails or the run is interrupted.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"slices"
	"syscall"
	"time"

	"hedge/e2e/internal/benchkit"
)

// The targets, as ratios hedge/nginx.
const (
	targetCPU = 1.2 // CPU µs per request, at most
	targetRPS = 0.9 // req/s, at least
	targetP99 = 1.5 // p99 at the fixed rate, at most
	fixedRate = 2000
)

type options struct {
	hedge     string
	duration  time.Duration
	warmup    time.Duration
	rounds    int
	conns     int
	skipNginx bool
	benchkit.Placement
	profile   bool
	retries   int
	quietWait time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.hedge, "hedge", "", "path of the hedge `binary` to measure (required)")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "length of each measured run (saturating and fixed-rate)")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "warm-up before each measured run, not counted")
	flag.IntVar(&o.rounds, "rounds", 2, "rounds; each measures hedge, then nginx")
	flag.IntVar(&o.conns, "conns", 64, "keep-alive connections of the saturating run")
	flag.BoolVar(&o.skipNginx, "skip-nginx", false, "measure hedge only (no ratios)")
	o.Flags("wrk, the fixed-rate client and the upstream", "the server under test", "the JSON and markdown reports")
	flag.IntVar(&o.retries, "retries", 2, "measure a run again, up to this many times, when other processes disturbed it")
	flag.DurationVar(&o.quietWait, "quiet-wait", time.Minute, "before each run, wait at most this long for other processes to leave the CPUs")
	flag.BoolVar(&o.profile, "profile", false, "profile hedge under load after the rounds even when every target is met")

	// Child roles: this program re-executes itself for the upstream and
	// the constant-rate client, so each can be pinned to the load CPU.
	rate := flag.Int("rate", fixedRate, "internal: requests per second of -fixed-rate")
	ca := flag.String("ca", "", "internal: certificate `file` -fixed-rate trusts")
	runID := flag.String("run-id", "", "internal: prefix of -fixed-rate's Idempotency-Keys")
	benchkit.Main("bench", func() error { return run(o) }, benchkit.Upstream(serveUpstream),
		benchkit.NewRole("fixed-rate", "internal: be the constant-rate client of `url`", func(url string) error {
			return fixedRateMain(url, *ca, *runID, *rate, o.warmup, o.duration)
		}))
}

// env is what every measured run shares.
type env struct {
	dir          string // temporary; removed at the end
	self         string // this program, for the child roles
	hedgeBin     string
	certFile     string
	keyFile      string
	upstreamAddr string
	client       *http.Client // trusts certFile; for the correctness probe
}

func run(o options) (err error) {
	if o.rounds < 1 || o.conns < 1 || o.duration < time.Second || o.warmup < time.Second {
		return errors.New("-rounds and -conns must be ≥ 1, -duration and -warmup ≥ 1s")
	}
	if err := o.Check(); err != nil {
		return err
	}
	need := []string{"taskset", "wrk"}
	if !o.skipNginx {
		need = append(need, nginxBin)
	}
	if err := benchkit.NeedTools("the Debian packages util-linux wrk nginx-light (make bench-deps)", need...); err != nil {
		return err
	}

	// Every run is bounded; so is the whole: each attempt may first wait
	// for quiet CPUs.
	perRun := 15*time.Second + 2*(o.warmup+o.duration) + o.quietWait
	ctx, stop := benchkit.Bounded(time.Duration(o.rounds*2*(o.retries+1)+2)*perRun + time.Minute)
	defer stop()

	w, err := benchkit.NewWorkspace("hedge-bench-", o.hedge)
	if err != nil {
		return err
	}
	defer w.Close()
	e := &env{dir: w.Dir, self: w.Self, hedgeBin: w.Hedge}
	if err := writeCert(e); err != nil {
		return err
	}

	// The upstream shares the load generator's CPU: the server's CPU is
	// left to the server alone.
	var up *benchkit.Proc
	if e.upstreamAddr, up, err = benchkit.StartUpstream(ctx, e.dir, o.LoadCPU, e.self, "/healthz"); err != nil {
		return err
	}
	defer up.Stop(syscall.SIGTERM, 2*time.Second)

	starts := map[string]func(*env, int) (*server, error){"hedge": startHedge, "nginx": startNginx}
	order := []string{"hedge", "nginx"}
	if o.skipNginx {
		order = order[:1]
	}
	stamp := time.Now().UTC().Format("20060102-150405")
	var results, discarded []result
	for round := 1; round <= o.rounds; round++ {
		for _, name := range order {
			r, others, err := measureQuietly(ctx, e, o, starts[name], round, fmt.Sprintf("%s-%s-r%d", stamp, name, round))
			discarded = append(discarded, others...)
			if err != nil {
				return fmt.Errorf("round %d, %s: %w", round, name, err)
			}
			results = append(results, r)
		}
	}

	rep := newReport(o, e.hedgeBin, results, stamp)
	rep.Discarded = discarded
	missed := slices.ContainsFunc(rep.Ratios, func(r ratio) bool { return !r.Met })
	if o.profile || missed {
		top, file, err := profileHedge(ctx, e, o, stamp)
		if err != nil {
			return fmt.Errorf("profile: %w", err)
		}
		rep.Profile, rep.ProfileFile = top, file
	}
	fmt.Println()
	md := rep.markdown()
	fmt.Print(md)
	return benchkit.WriteResults(o.Out, "e2e-"+rep.stamp, rep, md)
}

// writeCert makes the self-signed certificate both servers present, and a
// client that trusts it.
func writeCert(e *env) (err error) {
	var cert *x509.Certificate
	if e.certFile, e.keyFile, cert, err = benchkit.SelfSignedCert(e.dir, "hedge bench"); err != nil {
		return err
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	e.client = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		Proxy:             nil, // loopback only, whatever the environment says
		TLSClientConfig:   &tls.Config{RootCAs: roots},
		DisableKeepAlives: true,
	}}
	return nil
}
