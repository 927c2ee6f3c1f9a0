package main

import (
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"hedge/e2e/internal/benchkit"
)

// hedgeConfig is one node with one TLS listener and the bet route to a
// one-member pool: the same job the nginx configuration does, with hedge's
// own per-request work switched on (request ids, metrics, access log).
var hedgeConfig = `# written by e2e/bench for one measured run
deployment: bench
data_dir: {{dir}}/hedge-data
` + benchkit.HedgeProxyHead + `routes:
  - name: bets
    match: {path_prefix: /api/bets, methods: [POST]}
    pool: up
` + benchkit.HedgeBenchRegions("1s", "tls: {mode: files, files: {cert: {{cert}}, key: {{key}}}}")

// startHedge writes the configuration, checks it with `hedge check` (so a
// schema mistake is reported as such, not as a server that never came up)
// and starts `hedge serve` pinned to cpu.
func startHedge(e *env, cpu int) (*server, error) {
	dir, addrs, err := benchkit.Slot(e.dir, "hedge-", 2)
	if err != nil {
		return nil, err
	}
	listen, admin := addrs[0], addrs[1]
	conf := strings.NewReplacer(
		"{{dir}}", dir, "{{listen}}", listen, "{{admin}}", admin,
		"{{cert}}", e.certFile, "{{key}}", e.keyFile, "{{upstream}}", e.upstreamAddr,
	).Replace(hedgeConfig)
	p, err := benchkit.StartBenchHedge(dir, cpu, e.hedgeBin, conf)
	if err != nil {
		return nil, err
	}
	return &server{
		name: "hedge", proc: p, addr: listen, adminAddr: admin,
		pids:      func() []int { return []int{p.PID()} },
		accessLog: filepath.Join(dir, "access.log"),
		// SIGTERM drains (10 ms, configured above) and exits.
		stop: func() { p.Stop(syscall.SIGTERM, 5*time.Second) },
	}, nil
}
