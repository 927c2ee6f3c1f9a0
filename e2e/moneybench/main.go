// Command moneybench measures what a money route costs over a plain proxy
// route, against its target: at a fixed 2,000 bets/s through TLS on one node with Redis on
// loopback, the money route's p99 is within 1 ms of a plain proxy route's
// p99 measured in the same run.
//
//	go run ./e2e/moneybench -hedge ./bin/hedge      (make bench runs it)
//
// It starts a redis-server (Debian's), a ledger simulator (`hedge
// ledgersim`) and one hedge node (`hedge serve`) whose configuration it
// writes: TLS from the internal CA for bench.edge.test, HS256 player
// tokens, the region's Idempotency-Key store in that Redis, and two routes
// to the same ledger simulator — `bets` (kind ledger, POST /api/bets) and
// `plain` (a proxy route with auth: jwt, POST /plain/bets, to a pool whose
// one member is the simulator; the simulator takes the account from the
// principal the edge asserts). Both rewrite to /bets, so the ledger does the same work
// for each; every request carries a valid token and a fresh
// Idempotency-Key.
//
// The load generator is this program again (-attack), pinned with taskset
// to the load CPU together with Redis and the simulator; hedge is pinned
// to the server CPU alone. It runs vegeta at a constant rate over TLS
// keep-alive (verified against the internal CA root), alternating the two
// routes request by request in one attack, so both see the same
// connections and the same machine: a warm-up whose results are dropped
// (a ramp from a tenth of the rate, so that connections open gradually,
// then the rate), then the measured attack at the constant rate. Percentiles are exact (every latency kept).
//
// Afterwards the simulator's GET /applied is compared with what the
// client saw acknowledged: per route, the distinct keys applied must be
// the keys acknowledged 2xx, each received once.
//
// Results (markdown and JSON) go to e2e/bench/results/. Everything listens
// on 127.0.0.1 ports chosen at run time; every process started is stopped
// by its id and the temporary directory removed, also when a step fails or
// the run is interrupted. The whole run is bounded in time.
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"hedge/configs"
	"hedge/gateway/jwtauth"

	"hedge/e2e/internal/benchkit"
)

const (
	serverName = "bench.edge.test"
	region     = "sea"
	node       = "sea-1"
	domain     = "sea"
)

type options struct {
	hedge    string
	rate     int
	duration time.Duration
	warmup   time.Duration
	players  int
	target   time.Duration
	benchkit.Placement
}

func main() {
	var o options
	flag.StringVar(&o.hedge, "hedge", "", "path of the hedge `binary` to measure (required)")
	flag.IntVar(&o.rate, "rate", 2000, "requests per second, both routes together (half each)")
	flag.DurationVar(&o.duration, "duration", 15*time.Second, "length of the measured attack")
	flag.DurationVar(&o.warmup, "warmup", 6*time.Second, "warm-up before it, not counted: a ramp to the rate over two thirds, then the rate")
	flag.IntVar(&o.players, "players", 1000, "test players (one token each), used round robin")
	flag.DurationVar(&o.target, "target", time.Millisecond, "the largest p99(money) − p99(plain) that meets the requirement")
	o.Flags("the load generator, Redis and the ledger simulator (-1: unpinned)", "hedge (-1: unpinned)", "the JSON and markdown reports")
	benchkit.Main("moneybench", func() error { return run(o) },
		benchkit.NewRole("attack", "internal: be the load generator, with the parameters in `file`", runAttack))
}

// env is what the run's steps share.
type env struct {
	o     options
	dir   string
	self  string
	hedge string // a copy of -hedge in dir

	redisAddr, ledgerAddr, listen, admin string
	config                               string
	dataDir                              string
	accessLog                            string
	ca                                   string
	run                                  string // prefix of every Idempotency-Key
}

func run(o options) (err error) {
	if o.rate < 2 || o.duration < time.Second || o.warmup < time.Second || o.players < 1 {
		return errors.New("-rate must be ≥ 2, -duration and -warmup ≥ 1s, -players ≥ 1")
	}
	if err := benchkit.NeedTools("the Debian package redis-server (make deps)", "redis-server"); err != nil {
		return err
	}
	pinning := "taskset"
	switch {
	case o.LoadCPU < 0 || o.ServerCPU < 0:
		pinning = "none (-load-cpu or -server-cpu is -1)"
	case benchkit.NeedTools("util-linux", "taskset") != nil || o.Check() != nil:
		pinning = "none (needs taskset and two distinct CPUs)"
	}
	if pinning != "taskset" {
		o.LoadCPU, o.ServerCPU = -1, -1
	}

	// The whole run is bounded, and so is every step in it.
	ctx, stop := benchkit.Bounded(o.warmup + o.duration + 3*time.Minute)
	defer stop()

	w, err := benchkit.NewWorkspace("hedge-moneybench-", o.hedge)
	if err != nil {
		return err
	}
	defer w.Close()
	e := &env{o: o, dir: w.Dir, self: w.Self, hedge: w.Hedge}
	for _, a := range []*string{&e.redisAddr, &e.ledgerAddr, &e.listen, &e.admin} {
		if *a, err = benchkit.FreeAddr(); err != nil {
			return err
		}
	}
	var rb [4]byte
	rand.Read(rb[:])
	stamp := time.Now().UTC().Format("20060102-150405")
	e.run = "mb" + strings.ReplaceAll(stamp, "-", "t") + hex.EncodeToString(rb[:])
	loadBefore := loadAvg()
	fmt.Printf("moneybench: load average %s; temporary directory %s\n", loadBefore, e.dir)

	// Redis and the simulator share the load generator's CPU: hedge's CPU
	// is left to hedge alone.
	_, redisPort, _ := net.SplitHostPort(e.redisAddr)
	redis, err := benchkit.Start("redis", e.dir, o.LoadCPU, "redis-server", "--port", redisPort, "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", e.dir, "--daemonize", "no", "--logfile", "")
	if err != nil {
		return err
	}
	defer redis.Stop(syscall.SIGTERM, 3*time.Second)
	if err := benchkit.WaitFor(ctx, redis, 10*time.Second, func() error { _, err := redisCmd(e.redisAddr, "PING"); return err }); err != nil {
		return err
	}

	ledger, err := benchkit.Start("ledgersim", e.dir, o.LoadCPU, e.hedge, "ledgersim", "-listen", e.ledgerAddr, "-domain", domain,
		"-epoch", "1", "-balance", "100000000.00")
	if err != nil {
		return err
	}
	defer ledger.Stop(syscall.SIGTERM, 3*time.Second)
	plainHTTP := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: nil}}
	if err := benchkit.WaitFor(ctx, ledger, 10*time.Second, func() error { return benchkit.GetOK(plainHTTP, "http://"+e.ledgerAddr+"/healthz") }); err != nil {
		return err
	}

	cfg, err := writeConfig(e)
	if err != nil {
		return err
	}
	if err := benchkit.CheckHedgeConfig(ctx, e.hedge, e.config); err != nil {
		return err
	}
	hedge, err := benchkit.Start("hedge", e.dir, o.ServerCPU, e.hedge, "serve", "-c", e.config, "-region", region, "-node", node)
	if err != nil {
		return err
	}
	defer hedge.Stop(syscall.SIGTERM, 5*time.Second) // drains 10 ms (configured), then exits
	fail := func(err error) error {
		msg := err.Error()
		if t := hedge.Tail(); t != "" {
			msg += "\n--- hedge output:\n" + t
		}
		return errors.New(msg)
	}

	tokens := make([]string, o.players)
	for i := range tokens {
		if tokens[i], err = jwtauth.Sign(cfg.Auth.JWT, "bench-"+strconv.Itoa(i+1), domain, time.Hour); err != nil {
			return fmt.Errorf("signing player tokens: %w", err)
		}
	}
	probe, err := ready(ctx, e, hedge, tokens[0])
	if err != nil {
		return fail(err)
	}
	fmt.Printf("moneybench: hedge (PID %d), redis-server (PID %d), ledger simulator (PID %d) ready; %s\n",
		hedge.PID(), redis.PID(), ledger.PID(), probe)

	// The load generator.
	p := attackParams{
		Base: "https://" + serverName + ":" + port(e.listen), Dial: e.listen, CA: e.ca, Tokens: tokens, Run: e.run,
		Rate: o.rate, Warmup: o.warmup, Duration: o.duration, AckedFile: filepath.Join(e.dir, "acked.txt"),
		HarnessPID: os.Getpid(), HedgePID: hedge.PID(), LoadCPU: max(o.LoadCPU, 0), ServerCPU: max(o.ServerCPU, 1%runtime.NumCPU()),
	}
	paramsFile := filepath.Join(e.dir, "attack.json")
	if err := benchkit.WriteJSON(paramsFile, p); err != nil {
		return err
	}
	fmt.Printf("moneybench: %d req/s (half to each route) for %s after a %s warm-up; load generator pinned: %s\n",
		o.rate, o.duration, o.warmup, pinning)
	actx, acancel := context.WithTimeout(ctx, o.warmup+o.duration+time.Minute)
	defer acancel()
	cmd := benchkit.Command(actx, o.LoadCPU, e.self, "-attack", paramsFile)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		if actx.Err() != nil {
			return fail(fmt.Errorf("load generator: %w", actx.Err()))
		}
		return fail(fmt.Errorf("load generator: %v", err))
	}
	var ar attackResult
	if err := json.Unmarshal(out, &ar); err != nil {
		return fmt.Errorf("load generator output: %w", err)
	}
	if hedge.Exited() {
		return fail(fmt.Errorf("hedge exited during the run: %v", hedge.Err()))
	}

	// Exactly-once, per route: what the ledger applied against what the
	// client saw acknowledged.
	ver, err := verify(ctx, e, p.AckedFile, plainHTTP)
	if err != nil {
		return err
	}
	redisKeys, _ := redisCmd(e.redisAddr, "DBSIZE")
	time.Sleep(1200 * time.Millisecond) // the access log flushes every second
	var accessBytes int64
	if fi, err := os.Stat(e.accessLog); err == nil {
		accessBytes = fi.Size()
	}

	rep := newReport(e, ar, ver, stamp, pinning, loadBefore, probe, redisKeys, accessBytes)
	md := rep.markdown()
	fmt.Println()
	fmt.Print(md)
	if err := benchkit.WriteResults(o.Out, "money-"+rep.stamp, rep, md); err != nil {
		return err
	}
	// A missed latency target is a finding, reported above; wrong answers
	// or a ledger that disagrees with the client are a failure.
	if !rep.Correct {
		return errors.New("not every request succeeded, or the ledger disagrees with what was acknowledged (see the report)")
	}
	return nil
}

// hedgeConfig is one node: a TLS listener (internal CA), an admin
// listener, HS256 player tokens, the Idempotency-Key store in Redis, the
// ledger writer, and the two routes to the same ledger simulator.
const hedgeConfig = `# written by e2e/moneybench for one run
deployment: moneybench
data_dir: {{dir}}/data
` + benchkit.HedgeProxyHead + `auth:
  jwt:
    issuer: hedge-moneybench
    audience: [{{name}}]
    keys:
      - {id: bench-1, alg: HS256, secret: "{{secret}}"}
ledger:
  probe: {enabled: true, interval: 1s, timeout: 500ms, fall: 2}
routes:
  - name: bets
    kind: ledger
    match: {path_prefix: /api/bets, methods: [POST]}
    rewrite: /bets
    max_body_bytes: 16KiB
  - name: plain
    kind: proxy
    match: {path_prefix: /plain/bets, methods: [POST]}
    pool: ledger
    rewrite: /bets
    max_body_bytes: 16KiB
    # The writer takes the account from the principal the edge asserts.
    auth: jwt
regions:
  - name: {{region}}
    idempotency:
      store: redis
      redis: {address: "{{redis}}"}
    nodes:
      - name: {{node}}
        listeners:
          - name: public
            address: {{listen}}
            tls:
              mode: internal
              names: [{{name}}]
            # The load generator is one address opening many connections.
            limits: {max_conns_per_ip: 100000}
        admin: {address: {{admin}}}
    pools:
      - name: ledger
        members:
          - {name: ledgersim, url: "http://{{ledger}}"}
        health: {interval: 1s, timeout: 500ms}
    writers:
      - {domain: {{domain}}, url: "http://{{ledger}}", epoch: 1}
`

func writeConfig(e *env) (*configs.Config, error) {
	var secret [32]byte
	rand.Read(secret[:])
	e.config = filepath.Join(e.dir, "hedge.yaml")
	e.dataDir = filepath.Join(e.dir, "data")
	e.accessLog = filepath.Join(e.dir, "access.log")
	e.ca = filepath.Join(e.dataDir, "ca", "root.crt")
	conf := strings.NewReplacer("{{dir}}", e.dir, "{{name}}", serverName, "{{secret}}", hex.EncodeToString(secret[:]),
		"{{region}}", region, "{{node}}", node, "{{domain}}", domain, "{{redis}}", e.redisAddr, "{{listen}}", e.listen,
		"{{admin}}", e.admin, "{{ledger}}", e.ledgerAddr).Replace(hedgeConfig)
	if err := os.WriteFile(e.config, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	return configs.Load(e.config)
}

// ready waits until hedge serves both routes: the CA root exists, a bet
// through the money route is applied (the writer designated), sent again
// it is replayed from the Redis store, and a bet through the plain route
// is applied. It returns a line saying what it saw.
func ready(ctx context.Context, e *env, hedge *benchkit.Proc, token string) (string, error) {
	if err := benchkit.WaitFor(ctx, hedge, 30*time.Second, func() error { _, err := os.Stat(e.ca); return err }); err != nil {
		return "", err
	}
	client, err := benchClient(e.ca, e.listen, 4)
	if err != nil {
		return "", err
	}
	base := "https://" + serverName + ":" + port(e.listen)
	bet := func(path, key string) (int, http.Header, string, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+path, strings.NewReader(betBody))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", key)
		resp, err := client.Do(req)
		if err != nil {
			return 0, nil, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return resp.StatusCode, resp.Header, string(b), nil
	}
	// created is a readiness probe: a bet through path with key answers 201.
	created := func(what, path, key string) error {
		code, _, body, err := bet(path, key)
		if err != nil {
			return err
		}
		if code != http.StatusCreated {
			return fmt.Errorf("%s probe: %d %s", what, code, body)
		}
		return nil
	}
	n := 0
	var key string
	err = benchkit.WaitFor(ctx, hedge, 30*time.Second, func() error {
		n++
		key = e.run + "-ready-" + strconv.Itoa(n)
		return created("money", moneyPath, key)
	})
	if err != nil {
		return "", err
	}
	code, h, body, err := bet(moneyPath, key)
	if err != nil {
		return "", err
	}
	if code != http.StatusCreated || h.Get("Idempotent-Replayed") != "true" {
		return "", fmt.Errorf("money probe again: %d, Idempotent-Replayed %q, want 201 and true: %s", code, h.Get("Idempotent-Replayed"), body)
	}
	keys, err := redisCmd(e.redisAddr, "DBSIZE")
	if err != nil || keys == "0" {
		return "", fmt.Errorf("redis holds %q keys (%v) after a money call: is the store Redis?", keys, err)
	}
	err = benchkit.WaitFor(ctx, hedge, 10*time.Second, func() error { return created("plain", plainPath, e.run+"-ready-plain") })
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("probes: money 201, replayed from Redis (%s keys), plain 201", keys), nil
}

// verification compares, per route, the keys acknowledged 2xx with the
// keys the ledger simulator applied (measured attack only).
type verification struct {
	Route        string   `json:"route"`
	Acked        int      `json:"acked_keys"`
	Applied      int      `json:"applied_keys"`
	Received     int      `json:"received"`          // times the ledger received them
	AppliedNoAck int      `json:"applied_not_acked"` // applied, but the client saw no 2xx
	AckedMissing []string `json:"acked_not_applied,omitempty"`
	Repeated     []string `json:"received_more_than_once,omitempty"`
	Match        bool     `json:"match"`
}

func verify(ctx context.Context, e *env, ackedFile string, client *http.Client) ([]verification, error) {
	acked := map[string]map[string]bool{"bets": {}, "plain": {}}
	f, err := os.Open(ackedFile)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		route, key, ok := strings.Cut(sc.Text(), " ")
		if ok && acked[route] != nil {
			acked[route][key] = true
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+e.ledgerAddr+"/applied", nil)
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("ledger /applied: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("ledger /applied: %s", resp.Status)
	}
	var body struct {
		Applied []struct {
			Key   string `json:"key"`
			Count int    `json:"count"`
		} `json:"applied"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("ledger /applied: %w", err)
	}
	var out []verification
	for _, route := range []string{"bets", "plain"} {
		letter := map[string]string{"bets": "m", "plain": "p"}[route]
		prefix := e.run + "-m" + letter + "-" // measured attack, this route (see runAttack)
		v := verification{Route: route, Acked: len(acked[route])}
		seen := map[string]bool{}
		for _, a := range body.Applied {
			if !strings.HasPrefix(a.Key, prefix) {
				continue
			}
			v.Received += a.Count
			if seen[a.Key] || a.Count > 1 { // each key was sent once
				v.Repeated = append(v.Repeated, a.Key)
			}
			seen[a.Key] = true
			if !acked[route][a.Key] {
				v.AppliedNoAck++
			}
		}
		v.Applied = len(seen)
		for k := range acked[route] {
			if !seen[k] {
				v.AckedMissing = append(v.AckedMissing, k)
			}
		}
		v.Match = v.Acked == v.Applied && len(v.AckedMissing) == 0 && len(v.Repeated) == 0 && v.AppliedNoAck == 0
		out = append(out, v)
	}
	return out, nil
}

// redisCmd sends one inline command and returns the reply's first line
// without its type byte (+PONG → PONG, :12 → 12).
func redisCmd(addr, cmd string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, cmd+"\r\n"); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" || line[0] == '-' {
		return "", fmt.Errorf("redis %s: %s", cmd, line)
	}
	return line[1:], nil
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}
