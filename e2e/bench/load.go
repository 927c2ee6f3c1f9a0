package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"hedge/e2e/internal/benchkit"
	"hedge/internal/pki"
)

// betBody is the request body: a bet as a client sends it, padded with a
// note to exactly 200 bytes.
var betBody = func() string {
	const head = `{"table":"bacc-07","amount":"12.50","currency":"EUR","selection":"banker","note":"`
	const tail = `"}`
	return head + strings.Repeat("x", 200-len(head)-len(tail)) + tail
}()

// wrkScript makes every request a POST of betBody with its own
// Idempotency-Key (a Structured Field String, as the draft wants), and
// prints wrk's summary as one JSON line so nothing depends on wrk's
// human-readable format. {{run}} keeps keys distinct across runs.
const wrkScript = `-- written by e2e/bench
wrk.method = "POST"
wrk.body = '{{body}}'
wrk.headers["Content-Type"] = "application/json"

local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

local prefix, n
function init(args)
  prefix = '"{{run}}-' .. tostring(tid) .. '-'
  n = 0
end

function request()
  n = n + 1
  wrk.headers["Idempotency-Key"] = prefix .. n .. '"'
  return wrk.format()
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK-RESULT {"requests":%d,"duration_us":%d,"bytes":%d,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
`

// wrkResult is what the saturating run reports.
type wrkResult struct {
	Requests   int64 `json:"requests"`
	DurationUS int64 `json:"duration_us"`
	Bytes      int64 `json:"bytes"`
	Errors     struct {
		Connect int64 `json:"connect"`
		Read    int64 `json:"read"`
		Write   int64 `json:"write"`
		Status  int64 `json:"status"` // non-2xx/3xx responses
		Timeout int64 `json:"timeout"`
	} `json:"errors"`
	P50US int64 `json:"p50_us"`
	P90US int64 `json:"p90_us"`
	P99US int64 `json:"p99_us"`
	MaxUS int64 `json:"max_us"`
}

func (w wrkResult) reqPerSec() float64 {
	if w.DurationUS == 0 {
		return 0
	}
	return float64(w.Requests) / (float64(w.DurationUS) / 1e6)
}

func (w wrkResult) socketErrors() int64 {
	return w.Errors.Connect + w.Errors.Read + w.Errors.Write + w.Errors.Timeout
}

// runWrk runs one saturating wrk run pinned to cpu and waits for it. Its
// time is bounded twice: by -d, and by a deadline well past it.
func runWrk(ctx context.Context, dir string, cpu int, url, runID string, conns int, d time.Duration) (wrkResult, error) {
	script := strings.NewReplacer("{{body}}", betBody, "{{run}}", runID).Replace(wrkScript)
	path := filepath.Join(dir, "bets-"+runID+".lua")
	if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
		return wrkResult{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	secs := max(1, int(d.Round(time.Second)/time.Second))
	cmd := benchkit.Command(ctx, cpu, "wrk", "-t1", "-c"+strconv.Itoa(conns), "-d"+strconv.Itoa(secs)+"s", "--timeout", "5s", "-s", path, url)
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ctx.Err() != nil {
			return wrkResult{}, fmt.Errorf("wrk: %w", ctx.Err())
		}
		return wrkResult{}, fmt.Errorf("wrk: %v\n%s", err, out)
	}
	var r wrkResult
	for _, line := range strings.Split(string(out), "\n") {
		if js, ok := strings.CutPrefix(line, "WRK-RESULT "); ok {
			return r, json.Unmarshal([]byte(js), &r)
		}
	}
	return r, fmt.Errorf("wrk: %w\n%s", errNoOutput, out)
}

// fixedResult is what the constant-rate run reports.
type fixedResult struct {
	Rate     float64        `json:"rate"` // achieved, requests per second
	Requests int            `json:"requests"`
	Success  float64        `json:"success"` // share of 2xx
	Codes    map[string]int `json:"codes"`
	Errors   []string       `json:"errors,omitempty"`
	P50US    float64        `json:"p50_us"`
	P90US    float64        `json:"p90_us"`
	P99US    float64        `json:"p99_us"`
	P999US   float64        `json:"p999_us"`
	MaxUS    float64        `json:"max_us"`
}

// runFixed runs the constant-rate client in a child process (this program
// with -fixed-rate) pinned to cpu, so that it shares the load generator's
// CPU and not the server's.
func runFixed(ctx context.Context, self string, cpu int, target, caFile, runID string, rate int, warmup, d time.Duration) (fixedResult, error) {
	ctx, cancel := context.WithTimeout(ctx, warmup+d+30*time.Second)
	defer cancel()
	cmd := benchkit.Command(ctx, cpu, self, "-fixed-rate", target, "-rate", strconv.Itoa(rate), "-ca", caFile, "-run-id", runID,
		"-warmup", warmup.String(), "-duration", d.String())
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		if ctx.Err() != nil {
			return fixedResult{}, fmt.Errorf("fixed-rate client: %w", ctx.Err())
		}
		return fixedResult{}, fmt.Errorf("fixed-rate client: %v", err)
	}
	var r fixedResult
	return r, json.Unmarshal(out, &r)
}

// fixedRateMain is the child: vegeta at a constant rate over TLS keep-alive,
// a warm-up whose results are dropped, then the measured attack. Latencies
// are kept and sorted, so percentiles are exact.
func fixedRateMain(target, caFile, runID string, rate int, warmup, d time.Duration) error {
	roots, err := pki.ReadPool(caFile)
	if err != nil {
		return err
	}
	// One client for the warm-up and the measured attack, so the measured
	// one reuses the warm connections. (An Attacker stops itself at the
	// end of an attack; it cannot be reused.) A Transport with its own
	// TLS configuration speaks HTTP/1.1, as both servers do here.
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		Proxy:               nil,                         // loopback only, whatever the environment says
		TLSClientConfig:     &tls.Config{RootCAs: roots}, // the certificate names 127.0.0.1
		MaxIdleConnsPerHost: 64,
	}}
	attacker := func() *vegeta.Attacker { return vegeta.NewAttacker(vegeta.Client(client), vegeta.Workers(8)) }
	var n atomic.Uint64
	body := []byte(betBody)
	targeter := func(t *vegeta.Target) error {
		t.Method, t.URL, t.Body = http.MethodPost, target, body
		t.Header = http.Header{
			"Content-Type":    {"application/json"},
			"Idempotency-Key": {fmt.Sprintf(`"%s-%d"`, runID, n.Add(1))},
		}
		return nil
	}
	pace := vegeta.Rate{Freq: rate, Per: time.Second}
	for range attacker().Attack(targeter, pace, warmup, "warmup") {
	}

	r := fixedResult{Codes: map[string]int{}}
	lat := make([]time.Duration, 0, int(float64(rate)*d.Seconds())+16)
	errs := map[string]int{}
	var first, last time.Time
	for res := range attacker().Attack(targeter, pace, d, "measure") {
		if first.IsZero() || res.Timestamp.Before(first) {
			first = res.Timestamp
		}
		if res.Timestamp.After(last) {
			last = res.Timestamp
		}
		r.Codes[strconv.Itoa(int(res.Code))]++
		if res.Error != "" {
			errs[res.Error]++
		}
		lat = append(lat, res.Latency)
	}
	r.Requests = len(lat)
	if r.Requests == 0 {
		return fmt.Errorf("no results")
	}
	r.Success = float64(r.ok()) / float64(r.Requests)
	if span := last.Sub(first).Seconds(); span > 0 {
		r.Rate = float64(r.Requests-1) / span
	}
	for e, c := range errs {
		r.Errors = append(r.Errors, fmt.Sprintf("%d× %s", c, e))
	}
	slices.Sort(lat)
	q := func(p float64) float64 {
		i := int(p*float64(len(lat))+0.5) - 1
		return float64(lat[min(max(i, 0), len(lat)-1)].Microseconds())
	}
	r.P50US, r.P90US, r.P99US, r.P999US = q(0.50), q(0.90), q(0.99), q(0.999)
	r.MaxUS = float64(lat[len(lat)-1].Microseconds())
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	return json.NewEncoder(w).Encode(r)
}
