// Command dnsbench compares hedge's DNS with gdnsd and Knot under dnsperf,
// in one run: each server pinned with taskset to one CPU (-server-cpu) and
// dnsperf to another (-perf-cpu), and each server held to the same share
// of its CPU by a cgroup quota while dnsperf runs (-cpu-share; budget in
// cgroup.go), so that the server, not dnsperf, is what limits the
// queries/s. The service name play.edge.test is
// answered by hedge (policy all) and gdnsd (multifo with http_status checks
// of the same two edges); the static name sea.edge.test by hedge, gdnsd and
// Knot. It also reports the median latency of sequential queries and
// hedge's RSS with a zone of -records static records.
//
//	go run ./dnsfail/dnsbench -hedge ./bin/hedge   (make bench runs it)
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/miekg/dns"
)

var (
	hedgeBin  = flag.String("hedge", "./bin/hedge", "hedge binary")
	duration  = flag.Duration("duration", 10*time.Second, "length of each dnsperf run")
	serverCPU = flag.String("server-cpu", "0", "CPU the servers are pinned to (knotd pins its UDP worker to CPU 0)")
	perfCPU   = flag.String("perf-cpu", "1", "CPU dnsperf is pinned to")
	records   = flag.Int("records", 100000, "static records of the memory run (0 skips it)")
	clients   = flag.Int("clients", 4, "dnsperf -c")
	outstand  = flag.Int("outstanding", 200, "dnsperf -q")
	rounds    = flag.Int("rounds", 3, "measurements of each server and query, interleaved")
	only      = flag.String("only", "", "comma-separated queries to measure (service, static, NXDOMAIN, NODATA, service+DO, static+DO); default all")
	latency   = flag.String("latency-client", "", "(internal) run as the latency client: \"PORT NAME TYPE DO N\"")
	compare   = flag.String("compare", "", "a second hedge binary measured beside the first on the unsigned queries (server \"hedge-b\"), to compare two builds in one run")
	share     = flag.Float64("cpu-share", 0.25, "each server's CPU budget while dnsperf runs, a fraction of one CPU held by a cgroup quota; 0 leaves them open, and dnsperf's own CPU then limits every server near the same rate")
	hold      = flag.Bool("hold", false, "start the servers, print their ports and PIDs, and keep them up until interrupted (to look at them with strace or perf)")
)

const (
	edgePort    = 18081
	hedgePort   = 15301
	gdnsdPort   = 15302
	knotPort    = 15303
	hedgeBig    = 15304
	signedPort  = 15305
	comparePort = 15306
)

var (
	started []*exec.Cmd
	budgets = map[string]*budget{} // by server, with -cpu-share
)

func main() {
	flag.Parse()
	if *latency != "" {
		os.Exit(latencyClient(*latency))
	}
	code := run()
	for _, c := range started {
		c.Process.Kill()
		c.Wait()
	}
	for _, b := range budgets {
		b.remove()
	}
	os.Exit(code)
}

func run() int {
	tools := []string{"dnsperf", "taskset", "gdnsd", "knotd", *hedgeBin}
	if *compare != "" {
		tools = append(tools, *compare)
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			fmt.Fprintf(os.Stderr, "dnsbench: %s not found (make bench-deps installs dnsperf, gdnsd, knot)\n", tool)
			return 2
		}
	}
	dir, err := os.MkdirTemp("", "dnsbench")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	for _, ip := range []string{"127.0.0.11", "127.0.0.12"} {
		ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(edgePort)))
		if err != nil {
			fmt.Fprintln(os.Stderr, "edge:", err)
			return 1
		}
		go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") }))
	}
	servers := []struct {
		name  string
		port  int
		setup func(string) (*exec.Cmd, error)
	}{
		{"hedge", hedgePort, func(d string) (*exec.Cmd, error) { return hedgeCmd(*hedgeBin, d, hedgePort, 0, false, false) }},
		{"gdnsd", gdnsdPort, gdnsdCmd},
		{"signed", signedPort, func(d string) (*exec.Cmd, error) { return hedgeCmd(*hedgeBin, d, signedPort, 0, false, true) }},
		{"knot", knotPort, knotCmd},
	}
	if *compare != "" {
		servers = append(servers, struct {
			name  string
			port  int
			setup func(string) (*exec.Cmd, error)
		}{"hedge-b", comparePort, func(d string) (*exec.Cmd, error) { return hedgeCmd(*compare, d, comparePort, 0, false, false) }})
	}
	ok := map[string]bool{}
	pids := map[string]int{}
	for _, s := range servers {
		sd := filepath.Join(dir, s.name)
		os.MkdirAll(sd, 0o755)
		cmd, err := s.setup(sd)
		if err == nil {
			err = start(cmd, filepath.Join(sd, "log.txt"))
		}
		if err == nil {
			err = waitAnswer(s.port, "sea.edge.test.", 20*time.Second)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v (log: %s)\n", s.name, err, tail(filepath.Join(sd, "log.txt")))
			continue
		}
		ok[s.name] = true
		pids[s.name] = cmd.Process.Pid
	}
	// Let the health checks settle, so play answers both edges everywhere.
	time.Sleep(3 * time.Second)
	for _, s := range servers {
		if ok[s.name] && s.name != "knot" {
			if a := answer(s.port, "play.edge.test."); len(a) != 2 {
				fmt.Fprintf(os.Stderr, "%s: play.edge.test answers %v, want both edges\n", s.name, a)
			}
		}
	}
	if *share > 0 && !*hold {
		for _, s := range servers {
			if !ok[s.name] {
				continue
			}
			b, err := newBudget("dnsbench-"+s.name, *share)
			if err == nil {
				budgets[s.name] = b
				err = b.add(pids[s.name])
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "dnsbench: CPU budget of %s: %v (-cpu-share 0 measures without one)\n", s.name, err)
				return 1
			}
		}
	}
	if *hold {
		for _, s := range servers {
			if ok[s.name] {
				fmt.Printf("%-6s port %d pid %d\n", s.name, s.port, pids[s.name])
			}
		}
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		<-sig
		return 0
	}
	// Each round measures every (query, server) pair once, the servers
	// in a rotating order, so a busy moment of the machine spreads over
	// all of them; the table shows each pair's median over the rounds.
	// cpu is the server's CPU time per query; load the server's CPU over
	// the run and client dnsperf's while it sent, both in CPUs.
	type sample struct{ qps, avg, median, cpu, load, client float64 }
	results := map[[2]string][]sample{}
	// The signed rows ask the signed hedge with DO set; their ratio is to
	// hedge's unsigned answers of the same name.
	queries := []struct {
		name, qtype, label string
		do                 bool
	}{
		{"play.edge.test", "A", "service", false}, {"sea.edge.test", "A", "static", false},
		{"nosuch.edge.test", "A", "NXDOMAIN", false}, {"sea.edge.test", "AAAA", "NODATA", false},
		{"play.edge.test", "A", "service+DO", true}, {"sea.edge.test", "A", "static+DO", true},
	}
	if *only != "" {
		want := strings.Split(*only, ",")
		queries = slices.DeleteFunc(queries, func(q struct {
			name, qtype, label string
			do                 bool
		}) bool {
			return !slices.Contains(want, q.label)
		})
	}
	for round := range *rounds {
		for _, q := range queries {
			for j := range servers {
				s := servers[(j+round)%len(servers)]
				if !ok[s.name] || (s.name == "knot" && q.label == "service") || (s.name == "signed") != q.do {
					continue
				}
				b := budgets[s.name]
				if b != nil {
					if err := b.set(true); err != nil {
						fmt.Fprintf(os.Stderr, "dnsbench: CPU budget of %s: %v\n", s.name, err)
						return 1
					}
				}
				cpu0 := cpuTime(pids[s.name])
				qps, avg, client, err := dnsperf(dir, s.port, q.name+" "+q.qtype, q.do)
				cpu1 := cpuTime(pids[s.name])
				if b != nil {
					b.set(false)
				}
				if err != nil {
					fmt.Fprintf(os.Stderr, "dnsperf %s %s: %v\n", s.name, q.label, err)
					continue
				}
				med := medianLatency(s.port, q.name+".", q.qtype, q.do, 5000)
				k := [2]string{q.label, s.name}
				secs := duration.Seconds()
				results[k] = append(results[k], sample{qps, avg, med, (cpu1 - cpu0) / (qps * secs), (cpu1 - cpu0) / secs, client})
			}
		}
	}
	median := func(ss []sample, f func(sample) float64) (float64, float64, float64) {
		v := make([]float64, len(ss))
		for i, s := range ss {
			v[i] = f(s)
		}
		slices.Sort(v)
		return v[len(v)/2], v[0], v[len(v)-1]
	}
	held := "open (no CPU budget: dnsperf's CPU may be what limits)"
	if len(budgets) > 0 {
		quota, period := quotaPeriod(*share)
		held = fmt.Sprintf("each held to %.2f of the CPU (cgroup quota %s per %s) while dnsperf runs; latencies measured without the budget", *share, quota, period)
	}
	fmt.Printf("\ndnsperf %s × %d rounds, servers on CPU %s, dnsperf on CPU %s (-c %d -q %d); medians over the rounds [min–max]\nservers %s\n\n", *duration, *rounds, *serverCPU, *perfCPU, *clients, *outstand, held)
	fmt.Printf("%-10s %-7s %22s %10s %12s %16s %14s %11s\n", "query", "server", "queries/s", "vs best", "avg (µs)", "median (µs)", "CPU/query (µs)", "CPU server·dnsperf")
	clientBound := false // dnsperf's CPU full in some run: it, not the server, set the rate
	for _, q := range queries {
		best := 0.0
		for _, s := range servers {
			if ss := results[[2]string{q.label, s.name}]; !strings.HasPrefix(s.name, "hedge") && s.name != "signed" && len(ss) > 0 {
				m, _, _ := median(ss, func(x sample) float64 { return x.qps })
				best = max(best, m)
			}
		}
		if q.do {
			unsigned := strings.TrimSuffix(q.label, "+DO")
			if ss := results[[2]string{unsigned, "hedge"}]; len(ss) > 0 {
				best, _, _ = median(ss, func(x sample) float64 { return x.qps })
			}
		}
		for _, s := range servers {
			ss := results[[2]string{q.label, s.name}]
			if len(ss) == 0 {
				continue
			}
			qps, lo, hi := median(ss, func(x sample) float64 { return x.qps })
			avg, _, _ := median(ss, func(x sample) float64 { return x.avg })
			med, mlo, mhi := median(ss, func(x sample) float64 { return x.median })
			cpu, _, _ := median(ss, func(x sample) float64 { return x.cpu })
			load, _, _ := median(ss, func(x sample) float64 { return x.load })
			client, _, _ := median(ss, func(x sample) float64 { return x.client })
			clientBound = clientBound || client >= 0.95
			ratio := "-"
			if best > 0 {
				ratio = fmt.Sprintf("%.2f×", qps/best)
			}
			fmt.Printf("%-10s %-7s %8.0f [%5.0fk–%4.0fk] %10s %12.1f %6.1f [%4.1f–%4.1f] %14.2f %6.0f%%·%3.0f%%\n", q.label, s.name, qps, lo/1e3, hi/1e3, ratio, avg*1e6, med*1e6, mlo*1e6, mhi*1e6, cpu*1e6, load*100, client*100)
		}
	}
	// The targets, each judged on this run's medians.
	stat := func(label, server string, f func(sample) float64) (float64, bool) {
		ss := results[[2]string{label, server}]
		if len(ss) == 0 {
			return 0, false
		}
		m, _, _ := median(ss, f)
		return m, true
	}
	qpsOf := func(x sample) float64 { return x.qps }
	medOf := func(x sample) float64 { return x.median }
	if clientBound {
		fmt.Printf("\nnote: dnsperf used ≥ 95 %% of its CPU in some rows: there its CPU, not the server's, set the queries/s (a -cpu-share budget makes the server the limit)\n")
	}
	fmt.Printf("\ntargets (this run's medians):\n")
	verdict := func(what string, met bool, detail string) {
		v := "NOT MET"
		if met {
			v = "met"
		}
		fmt.Printf("  %-62s %-8s %s\n", what, v, detail)
	}
	ratioTarget := func(what, label, server, peer string, want float64) {
		h, ok1 := stat(label, server, qpsOf)
		p, ok2 := stat(label, peer, qpsOf)
		if !ok1 || !ok2 || p == 0 {
			fmt.Printf("  %-62s not measured\n", what)
			return
		}
		verdict(what, h/p >= want, fmt.Sprintf("%.2f× (%.1fk vs %.1fk q/s)", h/p, h/1e3, p/1e3))
	}
	ratioTarget("service name queries/s ≥ 1.0× gdnsd", "service", "hedge", "gdnsd", 1)
	ratioTarget("static name queries/s ≥ 1.0× Knot", "static", "hedge", "knot", 1)
	for _, label := range []string{"service", "static"} {
		what := "median latency, " + label + " name, no worse than gdnsd and Knot"
		h, ok1 := stat(label, "hedge", medOf)
		if !ok1 {
			fmt.Printf("  %-62s not measured\n", what)
			continue
		}
		met, detail := true, fmt.Sprintf("hedge %.1f µs", h*1e6)
		for _, peer := range []string{"gdnsd", "knot"} {
			if p, ok := stat(label, peer, medOf); ok {
				met = met && h <= p
				detail += fmt.Sprintf(", %s %.1f", peer, p*1e6)
			}
		}
		verdict(what, met, detail)
	}
	for _, label := range []string{"service", "static"} {
		what := "signed " + label + " name with DO ≥ 0.5× unsigned"
		sg, ok1 := stat(label+"+DO", "signed", qpsOf)
		u, ok2 := stat(label, "hedge", qpsOf)
		if !ok1 || !ok2 || u == 0 {
			fmt.Printf("  %-62s not measured\n", what)
			continue
		}
		verdict(what, sg/u >= 0.5, fmt.Sprintf("%.2f× (%.1fk vs %.1fk q/s)", sg/u, sg/1e3, u/1e3))
	}
	if ok["hedge"] {
		fmt.Printf("\nhedge RSS, small zone: %s\n", rss(pids["hedge"]))
	}
	if *records > 0 {
		for _, zoneFile := range []bool{false, true} {
			form := "in the YAML"
			if zoneFile {
				form = "in a zone file"
			}
			sd := filepath.Join(dir, fmt.Sprintf("hedge-big-%v", zoneFile))
			os.MkdirAll(sd, 0o755)
			cmd, err := hedgeCmd(*hedgeBin, sd, hedgeBig, *records, zoneFile, false)
			if err == nil {
				began := time.Now()
				if err = start(cmd, filepath.Join(sd, "log.txt")); err == nil {
					err = waitAnswer(hedgeBig, fmt.Sprintf("h%d.edge.test.", *records-1), 60*time.Second)
				}
				if err == nil {
					loaded := time.Since(began)
					time.Sleep(2 * time.Second) // settled
					fmt.Printf("hedge RSS, %d static records %s: %s (loaded and serving in %s)\n", *records, form, rss(cmd.Process.Pid), loaded.Round(time.Millisecond))
				}
				cmd.Process.Kill()
				cmd.Wait()
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "hedge big zone %s: %v (log: %s)\n", form, err, tail(filepath.Join(sd, "log.txt")))
			}
		}
	}
	return 0
}

func start(cmd *exec.Cmd, logFile string) error {
	f, err := os.Create(logFile)
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		return err
	}
	started = append(started, cmd)
	return nil
}

func tail(file string) string {
	b, _ := os.ReadFile(file)
	if len(b) > 600 {
		b = b[len(b)-600:]
	}
	return strings.TrimSpace(string(b))
}

func pinned(cpu string, argv ...string) *exec.Cmd {
	return exec.Command("taskset", append([]string{"-c", cpu}, argv...)...)
}

// hedgeCmd writes hedge's configuration with extra static records, in the
// YAML itself or in a zone file, and returns the pinned command.
func hedgeCmd(bin, dir string, port, extra int, zoneFile, signed bool) (*exec.Cmd, error) {
	var b strings.Builder
	fmt.Fprintf(&b, `data_dir: %s
log: {level: warn, access: {enabled: false}}
regions:
  - name: sea
    nodes:
      - name: sea-1
        listeners: [{address: "127.0.0.11:%d", tls: {mode: "off"}}]
        dns: {address: "127.0.0.1:%d"}
  - name: eu
    nodes:
      - name: eu-1
        listeners: [{address: "127.0.0.12:%d", tls: {mode: "off"}}]
dns:
  zones:
    - name: edge.test.
      ns: [ns1.edge.test.]
      records:
        - {name: ns1, type: A, value: 127.0.0.1}
        - {name: sea, type: A, value: 127.0.0.11}
`, dir, edgePort, port, edgePort)
	if zoneFile {
		var z strings.Builder
		for i := range extra {
			fmt.Fprintf(&z, "h%d 3600 IN A 10.%d.%d.%d\n", i, i>>16&255, i>>8&255, i&255)
		}
		zf := filepath.Join(dir, "edge.test.zone")
		if err := os.WriteFile(zf, []byte(z.String()), 0o644); err != nil {
			return nil, err
		}
		fmt.Fprintf(&b, "      file: %s\n", zf)
	} else {
		for i := range extra {
			fmt.Fprintf(&b, "        - {name: h%d, type: A, value: 10.%d.%d.%d}\n", i, i>>16&255, i>>8&255, i&255)
		}
	}
	b.WriteString(`      services:
        - {name: play, policy: all, regions: [sea, eu]}
`)
	if signed {
		b.WriteString("      dnssec: {enabled: true}\n")
	}
	file := filepath.Join(dir, "hedge.yaml")
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		return nil, err
	}
	if signed {
		if out, err := exec.Command(*hedgeBin, "dnssec", "keygen", "-c", file).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("hedge dnssec keygen: %v: %s", err, out)
		}
	}
	return pinned(*serverCPU, bin, "dns", "-c", file, "-admin", "off"), nil
}

const staticZone = `$TTL 3600
@ 3600 IN SOA ns1.edge.test. hostmaster.edge.test. 1 3600 600 1209600 30
@ 3600 IN NS ns1.edge.test.
ns1 3600 IN A 127.0.0.1
sea 3600 IN A 127.0.0.11
`

func gdnsdCmd(dir string) (*exec.Cmd, error) {
	conf := fmt.Sprintf(`options => {
  listen => [ 127.0.0.1:%d ]
  run_dir => %s/run
  state_dir => %s/state
  udp_threads => 1
  tcp_threads => 1
}
service_types => {
  edge => { plugin => http_status, port => %d, url_path => /healthz, interval => 2, timeout => 1 }
}
plugins => {
  multifo => {
    play => { service_types => edge, sea => 127.0.0.11, eu => 127.0.0.12 }
  }
}
`, gdnsdPort, dir, dir, edgePort)
	if err := os.MkdirAll(filepath.Join(dir, "zones"), 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "config"), []byte(conf), 0o644); err != nil {
		return nil, err
	}
	zone := staticZone + "play 10 DYNA multifo!play\n"
	if err := os.WriteFile(filepath.Join(dir, "zones", "edge.test"), []byte(zone), 0o644); err != nil {
		return nil, err
	}
	return pinned(*serverCPU, "gdnsd", "-c", dir, "start"), nil
}

func knotCmd(dir string) (*exec.Cmd, error) {
	conf := fmt.Sprintf(`server:
    rundir: "%s"
    listen: 127.0.0.1@%d
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: "%s"
log:
  - target: stderr
    any: warning
template:
  - id: default
    storage: "%s"
zone:
  - domain: edge.test
    file: "edge.test.zone"
`, dir, knotPort, dir, dir)
	if err := os.WriteFile(filepath.Join(dir, "knot.conf"), []byte(conf), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "edge.test.zone"), []byte(staticZone), 0o644); err != nil {
		return nil, err
	}
	return pinned(*serverCPU, "knotd", "-c", filepath.Join(dir, "knot.conf")), nil
}

func answer(port int, name string) []string {
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	r, _, err := (&dns.Client{Timeout: 500 * time.Millisecond}).Exchange(m, net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return nil
	}
	var out []string
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			out = append(out, a.A.String())
		}
	}
	return out
}

func waitAnswer(port int, name string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if len(answer(port, name)) > 0 {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("no answer for %s on port %d after %s", name, port, limit)
}

var (
	qpsRE = regexp.MustCompile(`Queries per second:\s+([0-9.]+)`)
	latRE = regexp.MustCompile(`Average Latency \(s\):\s+([0-9.]+)`)
)

// dnsperf runs dnsperf against port and returns its queries/s, average
// latency (s) and its own CPU use while it sent (in CPUs).
func dnsperf(dir string, port int, query string, do bool) (qps, avg, cpu float64, err error) {
	qf := filepath.Join(dir, "query.txt")
	if err := os.WriteFile(qf, []byte(query+"\n"), 0o644); err != nil {
		return 0, 0, 0, err
	}
	secs := strconv.Itoa(int(duration.Seconds()))
	args := []string{"dnsperf", "-s", "127.0.0.1", "-p", strconv.Itoa(port), "-d", qf, "-l", secs,
		"-c", strconv.Itoa(*clients), "-q", strconv.Itoa(*outstand)}
	if do {
		args = append(args, "-D")
	}
	cmd := pinned(*perfCPU, args...) // taskset execs dnsperf: one process
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return 0, 0, 0, err
	}
	// dnsperf's CPU is sampled inside the run: it keeps running (and
	// spinning) after its last query, so its total says little.
	edge := min(500*time.Millisecond, *duration/4)
	time.Sleep(edge)
	c0 := cpuTime(cmd.Process.Pid)
	time.Sleep(*duration - 2*edge)
	cpu = (cpuTime(cmd.Process.Pid) - c0) / (*duration - 2*edge).Seconds()
	if err := cmd.Wait(); err != nil {
		return 0, 0, 0, fmt.Errorf("%v: %s", err, out.Bytes())
	}
	m1, m2 := qpsRE.FindSubmatch(out.Bytes()), latRE.FindSubmatch(out.Bytes())
	if m1 == nil || m2 == nil {
		return 0, 0, 0, fmt.Errorf("unexpected output: %s", out.Bytes())
	}
	qps, _ = strconv.ParseFloat(string(m1[1]), 64)
	avg, _ = strconv.ParseFloat(string(m2[1]), 64)
	return qps, avg, cpu, nil
}

// cpuTime is the user and system CPU a process has used, in seconds.
func cpuTime(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The fields after the command's name (which may hold spaces).
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	s, _ := strconv.ParseFloat(f[12], 64)
	return (u + s) / 100 // clock ticks (USER_HZ)
}

// medianLatency runs the latency client (latencyClient) as its own
// process pinned to dnsperf's CPU, so every server is measured from the
// same place: an unpinned client in this process landed on the servers'
// CPU for some runs and on the other for others, and a wake-up across CPUs
// costs most of a round trip (on a VM, tens of µs), which made the medians
// depend on where the client happened to run more than on the server.
func medianLatency(port int, name, qtype string, do bool, n int) float64 {
	self, err := os.Executable()
	if err != nil {
		return 0
	}
	cmd := pinned(*perfCPU, self, "-latency-client", fmt.Sprintf("%d %s %s %v %d", port, name, qtype, do, n))
	out, err := cmd.Output()
	if err != nil {
		fmt.Fprintf(os.Stderr, "latency client: %v\n", err)
		return 0
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil {
		return 0
	}
	return v
}

// latencyClient sends n sequential queries over one connected UDP socket
// with blocking system calls on one thread, made raw so that the runtime
// neither hands its P to another thread while the read blocks nor takes it
// back after (the process runs nothing else): the same system calls, and
// the same wake-up, as a C client's. It prints the median round trip in
// seconds.
func latencyClient(spec string) int {
	var port, n int
	var name, qtype string
	var do bool
	if _, err := fmt.Sscanf(spec, "%d %s %s %t %d", &port, &name, &qtype, &do, &n); err != nil {
		fmt.Fprintln(os.Stderr, "latency client:", err)
		return 2
	}
	runtime.LockOSThread()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, "latency client:", err)
		return 1
	}
	defer syscall.Close(fd)
	if err := syscall.Connect(fd, &syscall.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		fmt.Fprintln(os.Stderr, "latency client:", err)
		return 1
	}
	tv := syscall.Timeval{Sec: 1}
	syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv)
	m := new(dns.Msg)
	m.SetQuestion(name, dns.StringToType[qtype])
	if do {
		m.SetEdns0(1232, true)
	}
	q, _ := m.Pack()
	buf := make([]byte, 4096)
	lat := make([]time.Duration, 0, n)
	for i := range n {
		q[0], q[1] = byte(i>>8), byte(i)
		t := time.Now()
		if _, _, e := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&q[0])), uintptr(len(q))); e != 0 {
			continue
		}
		k, _, e := syscall.RawSyscall(syscall.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
		for e == syscall.EINTR {
			k, _, e = syscall.RawSyscall(syscall.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
		}
		d := time.Since(t)
		if e != 0 || k < 12 || buf[0] != q[0] || buf[1] != q[1] {
			continue
		}
		lat = append(lat, d)
	}
	if len(lat) == 0 {
		fmt.Println(0)
		return 0
	}
	slices.Sort(lat)
	fmt.Println(lat[len(lat)/2].Seconds())
	return 0
}

func rss(pid int) string {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "?"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}
