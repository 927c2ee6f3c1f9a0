package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"hedge/e2e/internal/benchkit"
	"hedge/internal/pki"
)

// The two routes under comparison: the same bet to the same ledger
// simulator, once through the money route and once through a plain proxy
// route.
const (
	moneyPath = "/api/bets"
	plainPath = "/plain/bets"
)

// betBody is the bet both routes carry.
const betBody = `{"table":"bacc-07","amount":"1.00","currency":"EUR","selection":"banker"}`

// attackParams is what the harness hands the load generator (this program
// re-executed with -attack FILE, pinned to the load CPU).
type attackParams struct {
	Base       string        `json:"base"` // https://NAME:PORT
	Dial       string        `json:"dial"` // the address NAME:PORT is reached at
	CA         string        `json:"ca"`
	Tokens     []string      `json:"tokens"`
	Run        string        `json:"run"` // prefix of every Idempotency-Key
	Rate       int           `json:"rate"`
	Warmup     time.Duration `json:"warmup"`
	Duration   time.Duration `json:"duration"`
	AckedFile  string        `json:"acked_file"`
	HarnessPID int           `json:"harness_pid"`
	HedgePID   int           `json:"hedge_pid"`
	LoadCPU    int           `json:"load_cpu"`
	ServerCPU  int           `json:"server_cpu"`
}

// routeStats is one route's share of the measured attack.
type routeStats struct {
	Route    string         `json:"route"`
	Path     string         `json:"path"`
	Requests int            `json:"requests"`
	OK       int            `json:"ok"`      // 2xx
	Success  float64        `json:"success"` // OK / Requests
	Codes    map[string]int `json:"codes"`
	Errors   []string       `json:"errors,omitempty"`
	Rate     float64        `json:"rate"` // achieved, requests per second
	P50US    float64        `json:"p50_us"`
	P90US    float64        `json:"p90_us"`
	P99US    float64        `json:"p99_us"`
	P999US   float64        `json:"p999_us"`
	MaxUS    float64        `json:"max_us"`
	MeanUS   float64        `json:"mean_us"`
	// P99LoUS and P99HiUS bound the p99 with 95 % confidence (order
	// statistics of a binomial rank): how much the p99 of this many
	// samples moves by chance alone.
	P99LoUS float64 `json:"p99_lo_us"`
	P99HiUS float64 `json:"p99_hi_us"`
}

// window is what the machine did during the measured attack.
type window struct {
	Seconds       float64 `json:"seconds"`
	LoadCPUBusy   float64 `json:"load_cpu_busy"`   // share of the load CPU in use, by anyone
	ServerCPUBusy float64 `json:"server_cpu_busy"` // share of hedge's CPU in use, by anyone
	HedgeCPU      float64 `json:"hedge_cpu_seconds"`
	HedgeUSPerReq float64 `json:"hedge_cpu_us_per_req"`
	OtherCPU      float64 `json:"other_cpu_seconds"` // processes this program did not start
	LoadAvgBefore string  `json:"loadavg_before"`
	LoadAvgAfter  string  `json:"loadavg_after"`
}

type attackResult struct {
	Requests   int          `json:"requests"`
	Rate       float64      `json:"rate"`
	Routes     []routeStats `json:"routes"`
	WarmupOK   int          `json:"warmup_ok"`
	WarmupSent int          `json:"warmup_sent"`
	// WarmupCodes counts the warm-up's answers by route and status (0: no
	// answer), WarmupErrors its errors and problem types.
	WarmupCodes  map[string]int `json:"warmup_codes"`
	WarmupErrors []string       `json:"warmup_errors,omitempty"`
	Window       window         `json:"window"`
}

// runAttack is the load generator's process: vegeta at a constant rate
// over TLS keep-alive, the two routes interleaved 50/50 in one attack (so
// that both see the same connections, scheduler and machine), a warm-up
// whose results are dropped, then the measured attack. Latencies are kept
// and sorted, so percentiles are exact. The result goes to stdout as JSON;
// the keys acknowledged 2xx to p.AckedFile.
func runAttack(paramsFile string) error {
	b, err := os.ReadFile(paramsFile)
	if err != nil {
		return err
	}
	var p attackParams
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	if len(p.Tokens) == 0 || p.Rate < 2 {
		return errors.New("attack: no tokens, or a rate below 2/s")
	}
	client, err := benchClient(p.CA, p.Dial, 256)
	if err != nil {
		return err
	}
	full := vegeta.Rate{Freq: p.Rate, Per: time.Second}
	attack := func(phase string, pace vegeta.Pacer, d time.Duration) <-chan *vegeta.Result {
		var n atomic.Uint64
		body := []byte(betBody)
		targeter := func(t *vegeta.Target) error {
			i := n.Add(1) - 1
			path, r := moneyPath, "m"
			if i%2 == 1 {
				path, r = plainPath, "p"
			}
			key := p.Run + "-" + phase + r + "-" + strconv.FormatUint(i, 10)
			t.Method = http.MethodPost
			// The fragment is never sent; the result keeps it, which
			// tells the key of each answer.
			t.URL = p.Base + path + "#" + key
			t.Body = body
			t.Header = http.Header{
				"Authorization":   {"Bearer " + p.Tokens[(i/2)%uint64(len(p.Tokens))]},
				"Content-Type":    {"application/json"},
				"Idempotency-Key": {key},
			}
			return nil
		}
		// A fresh Attacker per phase (one stops itself at the end of its
		// attack) over the same client, so the measured phase reuses the
		// warm connections.
		a := vegeta.NewAttacker(vegeta.Client(client), vegeta.Workers(32), vegeta.MaxBody(4096))
		return a.Attack(targeter, pace, d, phase)
	}
	// The warm-up ramps from a tenth of the rate to all of it over its
	// first two thirds and holds it for the last third: a cold start at
	// the full rate makes every early request open its own TLS connection
	// at once, a storm that is no part of the steady state measured here.
	start := max(p.Rate/10, 1)
	ramp := p.Warmup * 2 / 3
	warm := func(yield func(*vegeta.Result) bool) {
		lin := vegeta.LinearPacer{StartAt: vegeta.Rate{Freq: start, Per: time.Second}, Slope: float64(p.Rate-start) / ramp.Seconds()}
		for r := range attack("w", lin, ramp) {
			if !yield(r) {
				return
			}
		}
		for r := range attack("h", full, p.Warmup-ramp) { // its own keys: another phase letter
			if !yield(r) {
				return
			}
		}
	}

	res := attackResult{WarmupCodes: map[string]int{}}
	werrs := map[string]int{}
	for r := range warm {
		res.WarmupSent++
		route := "bets"
		if u, _, _ := strings.Cut(r.URL, "#"); strings.HasSuffix(u, plainPath) {
			route = "plain"
		}
		res.WarmupCodes[route+" "+strconv.Itoa(int(r.Code))]++
		if r.Code >= 200 && r.Code < 300 {
			res.WarmupOK++
			continue
		}
		werrs[route+": "+why(r)]++
	}
	for e, c := range werrs {
		res.WarmupErrors = append(res.WarmupErrors, fmt.Sprintf("%d× %s", c, e))
	}
	slices.Sort(res.WarmupErrors)

	type acc struct {
		lat         []time.Duration
		codes       map[string]int
		errs        map[string]int
		first, last time.Time
		ok          int
	}
	by := map[string]*acc{}
	for _, r := range []string{"bets", "plain"} {
		by[r] = &acc{codes: map[string]int{}, errs: map[string]int{},
			lat: make([]time.Duration, 0, int(float64(p.Rate)*p.Duration.Seconds()/2)+16)}
	}
	acked, err := os.Create(p.AckedFile)
	if err != nil {
		return err
	}
	defer acked.Close()
	aw := bufio.NewWriter(acked)

	w0, err := takeSnap(p)
	if err != nil {
		return err
	}
	var first, last time.Time
	for r := range attack("m", full, p.Duration) {
		u, key, _ := strings.Cut(r.URL, "#")
		route := "bets"
		if strings.HasSuffix(u, plainPath) {
			route = "plain"
		}
		a := by[route]
		if a.first.IsZero() || r.Timestamp.Before(a.first) {
			a.first = r.Timestamp
		}
		if r.Timestamp.After(a.last) {
			a.last = r.Timestamp
		}
		if first.IsZero() || r.Timestamp.Before(first) {
			first = r.Timestamp
		}
		if r.Timestamp.After(last) {
			last = r.Timestamp
		}
		a.codes[strconv.Itoa(int(r.Code))]++
		if r.Code >= 200 && r.Code < 300 {
			a.ok++
			fmt.Fprintf(aw, "%s %s\n", route, key)
		} else {
			a.errs[why(r)]++
		}
		a.lat = append(a.lat, r.Latency)
		res.Requests++
	}
	w1, err := takeSnap(p)
	if err != nil {
		return err
	}
	if err := aw.Flush(); err != nil {
		return err
	}
	if span := last.Sub(first).Seconds(); span > 0 {
		res.Rate = float64(res.Requests-1) / span
	}
	for _, route := range []string{"bets", "plain"} {
		a := by[route]
		s := routeStats{Route: route, Path: moneyPath, Requests: len(a.lat), OK: a.ok, Codes: a.codes}
		if route == "plain" {
			s.Path = plainPath
		}
		if s.Requests == 0 {
			return fmt.Errorf("attack: no results for route %s", route)
		}
		s.Success = float64(a.ok) / float64(s.Requests)
		if span := a.last.Sub(a.first).Seconds(); span > 0 {
			s.Rate = float64(s.Requests-1) / span
		}
		for e, c := range a.errs {
			s.Errors = append(s.Errors, fmt.Sprintf("%d× %s", c, e))
		}
		slices.Sort(s.Errors)
		slices.Sort(a.lat)
		var sum time.Duration
		for _, l := range a.lat {
			sum += l
		}
		s.MeanUS = float64(sum.Microseconds()) / float64(len(a.lat))
		s.P50US, s.P90US, s.P99US, s.P999US = quantile(a.lat, 0.50), quantile(a.lat, 0.90), quantile(a.lat, 0.99), quantile(a.lat, 0.999)
		s.MaxUS = us(a.lat[len(a.lat)-1])
		s.P99LoUS, s.P99HiUS = quantileCI(a.lat, 0.99)
		res.Routes = append(res.Routes, s)
	}
	res.Window = w1.since(w0, res.Requests)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	return json.NewEncoder(out).Encode(res)
}

// why says why a request failed: the status and the problem type of a
// problem+json answer, or the client's error without the URL it starts
// with (which carries the key, making every error unique).
func why(r *vegeta.Result) string {
	if r.Code != 0 {
		s := strconv.Itoa(int(r.Code))
		var pb struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(r.Body, &pb) == nil && pb.Type != "" {
			s += " " + pb.Type
		}
		return s
	}
	e := r.Error
	if _, after, ok := strings.Cut(e, `": `); ok { // drop `Post "URL#key"`
		e = after
	}
	return "no answer: " + e
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }

// quantile is the nearest-rank q-quantile of sorted latencies.
func quantile(sorted []time.Duration, q float64) float64 {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return us(sorted[min(max(i, 0), len(sorted)-1)])
}

// quantileCI bounds the q-quantile with 95 % confidence: the rank of the
// true quantile among n samples is binomial(n, q), so the order statistics
// at n·q ∓ 1.96·√(n·q·(1−q)) enclose it (normal approximation).
func quantileCI(sorted []time.Duration, q float64) (lo, hi float64) {
	n := float64(len(sorted))
	sd := 1.96 * math.Sqrt(n*q*(1-q))
	at := func(rank float64) float64 {
		i := int(rank) - 1
		return us(sorted[min(max(i, 0), len(sorted)-1)])
	}
	return at(math.Floor(n*q - sd)), at(math.Ceil(n*q + sd))
}

// snap is a reading of the machine at one moment.
type snap struct {
	at                   time.Time
	loadBusy, serverBusy uint64
	hedge                uint64
	others               uint64
	loadavg              string
}

func takeSnap(p attackParams) (s snap, err error) {
	s.at, s.loadavg = time.Now(), loadAvg()
	if s.loadBusy, err = benchkit.CPUBusy(p.LoadCPU); err != nil {
		return s, err
	}
	if s.serverBusy, err = benchkit.CPUBusy(p.ServerCPU); err != nil {
		return s, err
	}
	st, err := benchkit.ReadStat(p.HedgePID)
	if err != nil {
		return s, fmt.Errorf("hedge (pid %d): %w", p.HedgePID, err)
	}
	s.hedge = st.Utime + st.Stime
	s.others = benchkit.OthersTicks(p.HarnessPID)
	return s, nil
}

func (s snap) since(b snap, requests int) window {
	secs := s.at.Sub(b.at).Seconds()
	w := window{Seconds: secs, LoadAvgBefore: b.loadavg, LoadAvgAfter: s.loadavg}
	if secs > 0 {
		w.LoadCPUBusy = float64(s.loadBusy-b.loadBusy) / benchkit.ClockTicks / secs
		w.ServerCPUBusy = float64(s.serverBusy-b.serverBusy) / benchkit.ClockTicks / secs
	}
	w.HedgeCPU = float64(s.hedge-b.hedge) / benchkit.ClockTicks
	if requests > 0 {
		w.HedgeUSPerReq = w.HedgeCPU * 1e6 / float64(requests)
	}
	if s.others >= b.others { // a process tree that vanished unreaped can shrink the sum
		w.OtherCPU = float64(s.others-b.others) / benchkit.ClockTicks
	}
	return w
}

// benchClient speaks HTTP/1.1 over TLS, verified against the CA root in
// caFile, to whatever name the URL carries (SNI and certificate check),
// always dialing dial.
func benchClient(caFile, dial string, idle int) (*http.Client, error) {
	roots, err := pki.ReadPool(caFile)
	if err != nil {
		return nil, err
	}
	d := &net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		Proxy: nil, // loopback only, whatever the environment says
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, dial)
		},
		TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		MaxIdleConns:        idle,
		MaxIdleConnsPerHost: idle,
		IdleConnTimeout:     90 * time.Second,
	}}, nil
}
