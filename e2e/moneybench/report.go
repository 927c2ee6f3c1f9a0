package main

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"hedge/e2e/internal/benchkit"
)

type report struct {
	Time        string            `json:"time"`
	Command     string            `json:"command"`
	Machine     map[string]string `json:"machine"`
	Options     map[string]string `json:"options"`
	Pinning     string            `json:"pinning"`
	LoadAvg     string            `json:"loadavg_at_start"` // 1, 5, 15 minutes
	Probe       string            `json:"probe"`
	Attack      attackResult      `json:"attack"`
	DiffP99US   float64           `json:"p99_diff_us"` // money − plain
	DiffLoUS    float64           `json:"p99_diff_lo_us"`
	DiffHiUS    float64           `json:"p99_diff_hi_us"`
	TargetUS    float64           `json:"target_us"`
	Met         bool              `json:"met"`     // the p99 difference is within the target
	Correct     bool              `json:"correct"` // every request 2xx, ledger matches acknowledgements
	Verify      []verification    `json:"verify"`
	RedisKeys   string            `json:"redis_keys_after"`
	AccessBytes int64             `json:"access_log_bytes"`
	stamp       string
}

func newReport(e *env, ar attackResult, ver []verification, stamp, pinning, loadBefore, probe, redisKeys string, accessBytes int64) *report {
	o := e.o
	r := &report{
		Time: time.Now().UTC().Format(time.RFC3339), Command: "go run ./e2e/moneybench " + strings.Join(os.Args[1:], " "),
		Machine: machine(e.hedge), Pinning: pinning, LoadAvg: loadBefore, Probe: probe, Attack: ar, Verify: ver,
		RedisKeys: redisKeys, AccessBytes: accessBytes, TargetUS: float64(o.target.Microseconds()), stamp: stamp,
		Options: map[string]string{
			"rate": strconv.Itoa(o.rate), "duration": o.duration.String(), "warmup": o.warmup.String(),
			"players": strconv.Itoa(o.players), "load_cpu": strconv.Itoa(o.LoadCPU), "server_cpu": strconv.Itoa(o.ServerCPU),
			"body_bytes": strconv.Itoa(len(betBody)),
		},
	}
	var money, plain routeStats
	for _, s := range ar.Routes {
		switch s.Route {
		case "bets":
			money = s
		case "plain":
			plain = s
		}
	}
	r.DiffP99US = money.P99US - plain.P99US
	r.DiffLoUS, r.DiffHiUS = money.P99LoUS-plain.P99HiUS, money.P99HiUS-plain.P99LoUS
	r.Met = r.DiffP99US <= r.TargetUS
	r.Correct = money.Success == 1 && plain.Success == 1
	for _, v := range ver {
		r.Correct = r.Correct && v.Match
	}
	return r
}

// machine describes where the numbers were taken.
func machine(hedgeBin string) map[string]string {
	m := benchkit.Machine(hedgeBin)
	if out, err := exec.Command("redis-server", "--version").Output(); err == nil {
		for _, f := range strings.Fields(string(out)) {
			if v, ok := strings.CutPrefix(f, "v="); ok {
				m["redis"] = v
			}
		}
	}
	return m
}

func ms(v float64) string { return strconv.FormatFloat(v/1000, 'f', 3, 64) + " ms" }

func (r *report) markdown() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("# hedge money route vs plain proxy route, %s\n\n", r.Time)
	w("Target: at a fixed %s bets/s through TLS on one node with Redis on loopback, the money route's p99 is within %s of a plain proxy route's p99 in the same run.\n\n",
		r.Options["rate"], ms(r.TargetUS))
	verdict := "MET"
	if !r.Met {
		verdict = "NOT MET"
	}
	correct := "every request 2xx and every acknowledged key applied exactly once"
	if !r.Correct {
		correct = "NOT CORRECT: see the failures and the exactly-once table below"
	}
	w("**p99(money) − p99(plain) = %s** (95 %% bounds from the order statistics: %s … %s); target ≤ %s: **%s**; %s.\n\n",
		ms(r.DiffP99US), ms(r.DiffLoUS), ms(r.DiffHiUS), ms(r.TargetUS), verdict, correct)
	w("| route | path | requests | success | achieved rate | p50 | p90 | p99 (95 %% bounds) | p99.9 | max | mean |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, s := range r.Attack.Routes {
		w("| %s | POST %s | %d | %.4f | %.1f/s | %s | %s | %s (%s … %s) | %s | %s | %s |\n", s.Route, s.Path, s.Requests, s.Success, s.Rate,
			ms(s.P50US), ms(s.P90US), ms(s.P99US), ms(s.P99LoUS), ms(s.P99HiUS), ms(s.P999US), ms(s.MaxUS), ms(s.MeanUS))
	}
	for _, s := range r.Attack.Routes {
		if s.OK != s.Requests {
			w("\n%s: status codes %v; errors: %s\n", s.Route, s.Codes, strings.Join(s.Errors, "; "))
		}
	}
	if r.Attack.WarmupOK != r.Attack.WarmupSent {
		w("\nWarm-up (not measured) answers by route and status: %v; failures: %s\n", r.Attack.WarmupCodes, strings.Join(r.Attack.WarmupErrors, "; "))
	}
	w("\nBoth routes in one vegeta attack at %.1f req/s in all (requests alternate between them), %s measured after a %s warm-up (a ramp to the rate, then at it; %d of %d warm-up requests 2xx), %s players, a %s-byte bet body, a fresh Idempotency-Key per request.\n\n",
		r.Attack.Rate, r.Options["duration"], r.Options["warmup"], r.Attack.WarmupOK, r.Attack.WarmupSent, r.Options["players"], r.Options["body_bytes"])

	w("Exactly-once (ledger simulator's GET /applied against the keys the client saw acknowledged 2xx, measured attack):\n\n")
	w("| route | keys acknowledged | keys applied | received | applied without a 2xx | acknowledged, not applied | received more than once | match |\n|---|---|---|---|---|---|---|---|\n")
	for _, v := range r.Verify {
		w("| %s | %d | %d | %d | %d | %d | %d | %v |\n", v.Route, v.Acked, v.Applied, v.Received, v.AppliedNoAck, len(v.AckedMissing), len(v.Repeated), v.Match)
	}
	win := r.Attack.Window
	w("\nMachine: %s CPUs (%s), kernel %s, %s, hedge %s, redis %s. Pinning: %s (hedge on CPU %s; load generator, Redis and the ledger simulator on CPU %s).\n",
		r.Machine["cpus"], r.Machine["cpu"], r.Machine["kernel"], r.Machine["go"], r.Machine["hedge"], r.Machine["redis"],
		r.Pinning, r.Options["server_cpu"], r.Options["load_cpu"])
	w("Load average at start %s; around the measured attack %s → %s. During it (%.1f s): hedge used %.2f CPU s (%.1f µs per request), its CPU was %.0f%% busy and the load CPU %.0f%%; processes this program did not start used %.2f CPU s (%.0f%% of one CPU).\n",
		r.LoadAvg, win.LoadAvgBefore, win.LoadAvgAfter, win.Seconds, win.HedgeCPU, win.HedgeUSPerReq, 100*win.ServerCPUBusy, 100*win.LoadCPUBusy,
		win.OtherCPU, 100*win.OtherCPU/max(win.Seconds, 1e-9))
	w("Before the attack: %s. After it Redis held %s keys; the access log had %d bytes.\n\n", r.Probe, r.RedisKeys, r.AccessBytes)
	w("Command: `%s`\n", r.Command)
	return b.String()
}
