// Command h2bench compares hedge and nginx over HTTP/2 (and, with the same
// tool, HTTP/1.1) in one run: h2load (Debian's nghttp2-client) over TLS
// with keep-alive, 100 streams per connection, a GET and a 200-byte POST
// proxied to a fast upstream.
//
//	go run ./e2e/h2bench -hedge ./bin/hedge      (make bench runs it)
//
// The server under test is pinned to one CPU, h2load and the upstream to
// the other. The primary figure is the server's CPU time per request
// (utime + stime of its processes over the run, divided by the requests
// h2load completed); req/s is capped by the load generator's CPU on two
// cores. Servers alternate within each round, and the report gives the
// median over rounds and hedge/nginx ratios. Target (issue: HTTP/2 and
// HTTP/3): hedge's CPU per request over HTTP/2 ≤ 1.5× nginx's, and over
// HTTP/1.1 the ratio unchanged from e2e/bench's.
//
// nginx 1.22 (Debian 12) is configured equivalently: TLS with the same
// certificate, `listen ... ssl http2` (1.22's spelling of `http2 on`),
// http2_max_concurrent_streams 128 (hedge's default), a keep-alive
// upstream pool, a buffered access log.
//
// HTTP/3: hedge's listener has http3 on, and the same workloads run over
// it with a small quic-go client (Debian's h2load is built without
// HTTP/3), this binary run with -h3load, pinned where h2load is. nginx
// 1.22 has no HTTP/3: the HTTP/3 rows compare hedge with itself over
// HTTP/2. -before PATH measures a second hedge binary in the same run
// (hedge-before), for a change's before/after ratios.
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/quic-go/quic-go/http3"
	"github.com/valyala/fasthttp"

	"hedge/e2e/internal/benchkit"
)

const (
	targetH2 = 1.5 // hedge/nginx CPU per request over HTTP/2, at most
	nginxBin = "/usr/sbin/nginx"
)

var bet = []byte(`{"table":"bacc-07","amount":"12.50","currency":"EUR","selection":"banker","client":"web-4.12.0","round":"r-000417","note":"` +
	strings.Repeat("x", 200-118) + `"}`)

type options struct {
	hedge, before    string
	requests, rounds int
	benchkit.Placement
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-h3load" {
		// internal: the HTTP/3 load generator, with h2load-like flags.
		benchkit.ExitOnError("h3load:", h3load(os.Args[2:]))
		return
	}
	var o options
	flag.StringVar(&o.hedge, "hedge", "", "path of the hedge `binary` to measure (required)")
	flag.StringVar(&o.before, "before", "", "path of a second hedge `binary` to measure in the same run (hedge-before)")
	flag.IntVar(&o.requests, "n", 100000, "requests per measured run")
	flag.IntVar(&o.rounds, "rounds", 2, "rounds; each measures hedge, then nginx, on every workload")
	o.Flags("h2load and the upstream", "the server under test", "the markdown report")
	benchkit.Main("h2bench", func() error { return run(o) }, benchkit.Upstream(serveUpstream))
}

// serveUpstream answers every request at once: GETs with a short JSON
// document, POSTs with a ledger's acknowledgement.
func serveUpstream(addr string) error {
	ack := []byte(`{"bet_id":"b-7f3a9c21","status":"accepted","balance":"987.50","currency":"EUR","round":"r-000417"}`)
	lobby := []byte(`{"tables":[{"id":"bacc-07","players":41},{"id":"rlt-02","players":17}]}`)
	return (&fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("application/json")
		if ctx.IsPost() {
			ctx.SetStatusCode(http.StatusCreated)
			ctx.SetBody(ack)
			return
		}
		ctx.SetBody(lobby)
	}}).ListenAndServe(addr)
}

type env struct {
	dir, self, hedgeBin, beforeBin, cert, key, upstream, betFile string
}

type server struct {
	name string
	addr string
	pids func() []int
	stop func()
}

// workload is one h2load invocation.
type workload struct {
	name string
	args []string // besides the URL
	path string
}

func run(o options) error {
	if err := benchkit.NeedTools("the Debian packages util-linux nghttp2-client nginx-light (make bench-deps)", "taskset", "h2load", nginxBin); err != nil {
		return err
	}
	w, err := benchkit.NewWorkspace("hedge-h2bench-", o.hedge)
	if err != nil {
		return err
	}
	defer w.Close()
	e := &env{dir: w.Dir, self: w.Self, hedgeBin: w.Hedge}
	if o.before != "" {
		if e.beforeBin, err = w.Copy(o.before, "hedge-before"); err != nil {
			return err
		}
	}
	if err := writeCert(e); err != nil {
		return err
	}
	e.betFile = filepath.Join(e.dir, "bet.json")
	if err := os.WriteFile(e.betFile, bet, 0o644); err != nil {
		return err
	}
	ctx, stop := benchkit.Bounded(time.Duration(o.rounds) * 10 * time.Minute)
	defer stop()
	var up *benchkit.Proc
	if e.upstream, up, err = benchkit.StartUpstream(ctx, e.dir, o.LoadCPU, e.self, "/"); err != nil {
		return err
	}
	defer up.Stop(syscall.SIGTERM, 2*time.Second)

	post := []string{"-d", e.betFile, "-H", "content-type: application/json"}
	workloads := []workload{
		{"HTTP/2 GET", []string{"-c", "4", "-m", "100"}, "/games/lobby"},
		{"HTTP/2 POST 200 B", append([]string{"-c", "4", "-m", "100"}, post...), "/api/bets"},
		{"HTTP/1.1 GET", []string{"--h1", "-c", "64", "-m", "1"}, "/games/lobby"},
		{"HTTP/1.1 POST 200 B", append([]string{"--h1", "-c", "64", "-m", "1"}, post...), "/api/bets"},
		{"HTTP/3 GET", []string{"--h3", "-c", "4", "-m", "100"}, "/games/lobby"},
		{"HTTP/3 POST 200 B", append([]string{"--h3", "-c", "4", "-m", "100"}, post...), "/api/bets"},
	}
	servers := []string{"hedge", "nginx"}
	if e.beforeBin != "" {
		servers = []string{"hedge", "hedge-before", "nginx"}
	}
	starts := map[string]func(*env, int) (*server, error){"hedge": startHedge, "nginx": startNginx,
		"hedge-before": func(e *env, cpu int) (*server, error) { return startHedgeBin(e, cpu, e.beforeBin, false) }}
	// cpu[workload][server] holds µs per request, one per round.
	cpu := map[string]map[string][]float64{}
	rps := map[string]map[string][]float64{}
	for _, w := range workloads {
		cpu[w.name], rps[w.name] = map[string][]float64{}, map[string][]float64{}
	}
	for round := 1; round <= o.rounds; round++ {
		for _, name := range servers {
			s, err := starts[name](e, o.ServerCPU)
			if err != nil {
				return err
			}
			ready := func() error {
				c, err := net.DialTimeout("tcp", s.addr, time.Second)
				if err == nil {
					c.Close()
				}
				return err
			}
			for deadline := time.Now().Add(20 * time.Second); ready() != nil; time.Sleep(100 * time.Millisecond) {
				if time.Now().After(deadline) {
					s.stop()
					return fmt.Errorf("%s did not listen on %s", name, s.addr)
				}
			}
			for _, w := range workloads {
				if w.args[0] == "--h3" && name != "hedge" {
					continue // nginx 1.22 has no HTTP/3; hedge-before may not either
				}
				us, reqps, err := measure(o, s, w.args, "https://"+s.addr+w.path)
				if err != nil {
					s.stop()
					return fmt.Errorf("%s, %s: %w", name, w.name, err)
				}
				cpu[w.name][name] = append(cpu[w.name][name], us)
				rps[w.name][name] = append(rps[w.name][name], reqps)
				fmt.Printf("round %d %-6s %-20s %8.1f µs CPU/req %9.0f req/s\n", round, name, w.name, us, reqps)
			}
			s.stop()
		}
	}
	var md strings.Builder
	fmt.Fprintf(&md, "## h2load: hedge vs nginx %s, %d rounds × %d requests, server on CPU %d, h2load and upstream on CPU %d\n\n",
		benchkit.NginxVersion(nginxBin), o.rounds, o.requests, o.ServerCPU, o.LoadCPU)
	md.WriteString("| workload | hedge CPU/req | nginx CPU/req | ratio (median) | hedge req/s | nginx req/s |\n|---|--:|--:|--:|--:|--:|\n")
	for _, w := range workloads {
		h, n := benchkit.Median(cpu[w.name]["hedge"]), benchkit.Median(cpu[w.name]["nginx"])
		if w.args[0] == "--h3" {
			// Against hedge's own HTTP/2 on the same request.
			h2 := strings.Replace(w.name, "HTTP/3", "HTTP/2", 1)
			fmt.Fprintf(&md, "| %s | %.1f µs | (none: no HTTP/3) | %.2f × hedge's %s (rounds: %s) | %.0f | |\n", w.name, h,
				h/benchkit.Median(cpu[h2]["hedge"]), h2, ratios(cpu[w.name]["hedge"], cpu[h2]["hedge"]), benchkit.Median(rps[w.name]["hedge"]))
			continue
		}
		fmt.Fprintf(&md, "| %s | %.1f µs | %.1f µs | %.2f (rounds: %s) | %.0f | %.0f |\n", w.name, h, n, h/n,
			ratios(cpu[w.name]["hedge"], cpu[w.name]["nginx"]), benchkit.Median(rps[w.name]["hedge"]), benchkit.Median(rps[w.name]["nginx"]))
	}
	if e.beforeBin != "" {
		md.WriteString("\nThe same run, hedge against the -before binary:\n\n| workload | hedge CPU/req | hedge-before CPU/req | hedge / before (median) | before / nginx |\n|---|--:|--:|--:|--:|\n")
		for _, w := range workloads {
			if w.args[0] == "--h3" {
				continue
			}
			h, b, n := benchkit.Median(cpu[w.name]["hedge"]), benchkit.Median(cpu[w.name]["hedge-before"]), benchkit.Median(cpu[w.name]["nginx"])
			fmt.Fprintf(&md, "| %s | %.1f µs | %.1f µs | %.2f (rounds: %s) | %.2f |\n", w.name, h, b, h/b,
				ratios(cpu[w.name]["hedge"], cpu[w.name]["hedge-before"]), b/n)
		}
	}
	fmt.Fprintf(&md, "\nTarget: HTTP/2 ratio ≤ %.1f.\n", targetH2)
	fmt.Println()
	fmt.Print(md.String())
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(o.Out, "h2-"+time.Now().UTC().Format("20060102-150405")+".md"), []byte(md.String()), 0o644)
}

// measure warms s up (connections, pools, the runtime) with h2load's args
// on url, then measures: the server's CPU time per request (µs) and the
// requests per second.
func measure(o options, s *server, args []string, url string) (us, reqps float64, err error) {
	if _, _, err := h2load(o.LoadCPU, 5000, args, url); err != nil {
		return 0, 0, fmt.Errorf("warm-up: %w", err)
	}
	before, err := benchkit.CPUTicks(s.pids()...)
	if err != nil {
		return 0, 0, err
	}
	done, reqps, err := h2load(o.LoadCPU, o.requests, args, url)
	if err != nil {
		return 0, 0, err
	}
	after, err := benchkit.CPUTicks(s.pids()...)
	if err != nil {
		return 0, 0, err
	}
	return float64(after-before) * 1e6 / benchkit.ClockTicks / float64(done), reqps, nil
}

var (
	doneRE     = regexp.MustCompile(`requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded`)
	finishedRE = regexp.MustCompile(`finished in [^,]+, ([\d.]+) req/s`)
)

// h2load runs h2load pinned to cpu and returns the requests that succeeded
// and the rate it reports.
func h2load(cpu, n int, args []string, url string) (int, float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := benchkit.Command(ctx, cpu, "h2load", append(append([]string{"-n", strconv.Itoa(n), "-t", "1"}, args...), url)...)
	if args[0] == "--h3" {
		self, err := os.Executable()
		if err != nil {
			return 0, 0, err
		}
		cmd = benchkit.Command(ctx, cpu, self, append(append([]string{"-h3load", "-n", strconv.Itoa(n)}, args[1:]...), url)...)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return 0, 0, fmt.Errorf("h2load: %v\n%s", err, out.String())
	}
	m, f := doneRE.FindStringSubmatch(out.String()), finishedRE.FindStringSubmatch(out.String())
	if m == nil || f == nil {
		return 0, 0, fmt.Errorf("h2load's output has no totals:\n%s", out.String())
	}
	done, _ := strconv.Atoi(m[1])
	ok, _ := strconv.Atoi(m[2])
	if ok != n || done != n {
		return 0, 0, fmt.Errorf("h2load: %d of %d requests succeeded:\n%s", ok, n, out.String())
	}
	reqps, _ := strconv.ParseFloat(f[1], 64)
	return ok, reqps, nil
}

func ratios(h, n []float64) string {
	var out []string
	for i := range min(len(h), len(n)) {
		out = append(out, fmt.Sprintf("%.2f", h[i]/n[i]))
	}
	return strings.Join(out, ", ")
}

var hedgeConfig = `# written by e2e/h2bench for one measured run
deployment: bench
data_dir: {{dir}}/hedge-data
waf: {mode: off}
log:
  level: warn
  access: {enabled: true, path: {{dir}}/hedge-access.log, flush_interval: 1s}
admin: {allow_loopback: true}
lifecycle: {drain_period: 10ms, shutdown_timeout: 2s}
routes:
  - name: bets
    match: {path_prefix: /api/bets, methods: [POST]}
    pool: up
  - name: games
    match: {path_prefix: /games/, methods: [GET]}
    pool: up
` + benchkit.HedgeBenchRegions("1s", "tls: {mode: files, files: {cert: {{cert}}, key: {{key}}}}", "{{http3}}")

func startHedge(e *env, cpu int) (*server, error) { return startHedgeBin(e, cpu, e.hedgeBin, true) }

// startHedgeBin starts bin, with HTTP/3 on its listener when h3.
func startHedgeBin(e *env, cpu int, bin string, h3 bool) (*server, error) {
	dir, addrs, err := benchkit.Slot(e.dir, "hedge-", 2)
	if err != nil {
		return nil, err
	}
	listen, admin := addrs[0], addrs[1]
	h3conf := ""
	if h3 {
		h3conf = "http3: {enabled: true}"
	}
	conf := strings.NewReplacer("{{dir}}", dir, "{{listen}}", listen, "{{admin}}", admin,
		"{{cert}}", e.cert, "{{key}}", e.key, "{{upstream}}", e.upstream, "{{http3}}", h3conf).Replace(hedgeConfig)
	p, err := benchkit.StartBenchHedge(dir, cpu, bin, conf)
	if err != nil {
		return nil, err
	}
	return &server{name: "hedge", addr: listen, pids: func() []int { return []int{p.PID()} },
		stop: func() { p.Stop(syscall.SIGTERM, 5*time.Second) }}, nil
}

const nginxConfig = `# written by e2e/h2bench for one measured run
worker_processes 1;
error_log {{dir}}/error.log warn;
pid {{dir}}/nginx.pid;
events { worker_connections 4096; }
http {
    access_log {{dir}}/access.log combined buffer=64k flush=1s;
` + benchkit.NginxHTTPCommon + `    http2_max_concurrent_streams 128;
    http2_max_requests 1000000;
    upstream u {
        server {{upstream}};
        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        listen {{listen}} ssl http2;
        ssl_certificate {{cert}};
        ssl_certificate_key {{key}};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_prefer_server_ciphers on;
        ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256;
        add_header Strict-Transport-Security "max-age=31536000" always;
        location /api/bets {
            limit_except POST { deny all; }
` + benchkit.NginxProxyPass + `        }
        location /games/ {
            limit_except GET { deny all; }
` + benchkit.NginxProxyPass + `        }
        location / { return 404; }
    }
}
`

func startNginx(e *env, cpu int) (*server, error) {
	dir, addrs, err := benchkit.Slot(e.dir, "nginx-", 1)
	if err != nil {
		return nil, err
	}
	listen := addrs[0]
	conf := strings.NewReplacer("{{dir}}", dir, "{{listen}}", listen, "{{cert}}", e.cert, "{{key}}", e.key,
		"{{upstream}}", e.upstream).Replace(nginxConfig)
	p, err := benchkit.StartNginx(dir, cpu, nginxBin, conf)
	if err != nil {
		return nil, err
	}
	master := p.PID()
	return &server{name: "nginx", addr: listen,
		pids: func() []int { return append([]int{master}, benchkit.Children(master)...) },
		stop: func() { p.Stop(syscall.SIGQUIT, 5*time.Second) }}, nil
}

// writeCert makes the self-signed certificate both servers present
// (h2load does not verify it).
func writeCert(e *env) (err error) {
	e.cert, e.key, _, err = benchkit.SelfSignedCert(e.dir, "hedge h2bench")
	return err
}

// h3load is the HTTP/3 load generator: h2load's -n, -c, -m, -d and -H
// over quic-go's client (-c connections, -m requests in flight on each),
// printing h2load's totals lines so the same parser reads them.
func h3load(args []string) error {
	fs := flag.NewFlagSet("h3load", flag.ContinueOnError)
	n := fs.Int("n", 1000, "requests")
	conns := fs.Int("c", 4, "connections")
	streams := fs.Int("m", 100, "requests in flight per connection")
	data := fs.String("d", "", "POST this `file`'s contents")
	header := fs.String("H", "", "one `header: value`")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("one URL")
	}
	url := fs.Arg(0)
	var body []byte
	if *data != "" {
		var err error
		if body, err = os.ReadFile(*data); err != nil {
			return err
		}
	}
	hname, hvalue, _ := strings.Cut(*header, ":")
	var next, ok, failed atomic.Int64
	var wg sync.WaitGroup
	began := time.Now()
	for range *conns {
		tr := &http3.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} // the bench's own self-signed certificate
		defer tr.Close()
		c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
		for range *streams {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for next.Add(1) <= int64(*n) {
					method, rd := http.MethodGet, io.Reader(nil)
					if body != nil {
						method, rd = http.MethodPost, bytes.NewReader(body)
					}
					req, _ := http.NewRequest(method, url, rd)
					if hname != "" {
						req.Header.Set(hname, strings.TrimSpace(hvalue))
					}
					resp, err := c.Do(req)
					if err != nil {
						failed.Add(1)
						continue
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode/100 == 2 {
						ok.Add(1)
					} else {
						failed.Add(1)
					}
				}
			}()
		}
	}
	wg.Wait()
	d := time.Since(began)
	done := ok.Load() + failed.Load()
	fmt.Printf("finished in %.2fs, %.2f req/s\n", d.Seconds(), float64(done)/d.Seconds())
	fmt.Printf("requests: %d total, %d started, %d done, %d succeeded, %d failed\n", *n, *n, done, ok.Load(), failed.Load())
	return nil
}
