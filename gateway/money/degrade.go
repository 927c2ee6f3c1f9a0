package money

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"hedge/configs"
	"hedge/gateway/ledger"
	"hedge/internal/audit"
)

// latencyBounds are the buckets of money-call latency used to estimate p95.
var latencyBounds = [...]time.Duration{
	5 * time.Millisecond, 10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond, 750 * time.Millisecond,
	time.Second, 2500 * time.Millisecond, 5 * time.Second,
}

// domainHealth counts one ledger domain's money calls on this node.
type domainHealth struct {
	name     string
	total    atomic.Uint64
	failed   atomic.Uint64
	buckets  [len(latencyBounds) + 1]atomic.Uint64
	degraded atomic.Bool

	// owned by the evaluator
	seenTotal, seenFailed uint64
	seenBuckets           [len(latencyBounds) + 1]uint64
	goodSince             time.Time
}

func (h *domainHealth) observe(d time.Duration, failed bool) {
	h.total.Add(1)
	if failed {
		h.failed.Add(1)
	}
	i := 0
	for i < len(latencyBounds) && d > latencyBounds[i] {
		i++
	}
	h.buckets[i].Add(1)
}

// Degradation decides, per ledger domain, whether the wallet is degraded:
// no designated writer, or too many failed or slow money calls over a
// window. Heavy routes of a degraded domain are shed; it recovers only after
// RecoverAfter without trouble, so shedding does not flap. It outlives the
// node's states (Configure takes a reload's settings) until Close.
type Degradation struct {
	deps    DegradationDeps
	cfg     atomic.Pointer[configs.Degradation]
	domains sync.Map // name → *domainHealth
	stop    context.CancelFunc
	done    chan struct{}
}

// DegradationDeps are what a node's degradation reports to and reads.
type DegradationDeps struct {
	Region, Node string
	Log          *slog.Logger
	// Degraded is the gauge vector by domain (hedge_ledger_domain_degraded,
	// curried with the node).
	Degraded *prometheus.GaugeVec
	Audit    *audit.Log
	// Lookup is the domain's designation in the node's current state.
	Lookup func(domain string) *ledger.Designation
}

// NewDegradation starts evaluating a node's money calls every window.
func NewDegradation(cfg configs.Degradation, deps DegradationDeps) *Degradation {
	d := &Degradation{deps: deps, done: make(chan struct{})}
	d.cfg.Store(&cfg)
	ctx, cancel := context.WithCancel(context.Background())
	d.stop = cancel
	go d.run(ctx)
	return d
}

// Configure takes a reload's settings.
func (d *Degradation) Configure(cfg configs.Degradation) { d.cfg.Store(&cfg) }

// Observe counts one money call to domain: how long it took, and whether
// it failed (5xx, timeout, unreachable).
func (d *Degradation) Observe(domain string, took time.Duration, failed bool) {
	d.domain(domain).observe(took, failed)
}

func (d *Degradation) domain(name string) *domainHealth {
	if h, ok := d.domains.Load(name); ok {
		return h.(*domainHealth)
	}
	h, _ := d.domains.LoadOrStore(name, &domainHealth{name: name, goodSince: time.Now()})
	return h.(*domainHealth)
}

// Degraded reports whether heavy routes of domain are being shed.
func (d *Degradation) Degraded(domain string) bool {
	if h, ok := d.domains.Load(domain); ok {
		return h.(*domainHealth).degraded.Load()
	}
	return false
}

// Close stops the evaluation.
func (d *Degradation) Close() {
	d.stop()
	<-d.done
}

func (d *Degradation) run(ctx context.Context) {
	defer close(d.done)
	for {
		window := d.cfg.Load().Window.D()
		select {
		case <-ctx.Done():
			return
		case <-time.After(window):
		}
		d.evaluate(time.Now())
	}
}

// evaluate looks at the calls since the last evaluation (one window).
func (d *Degradation) evaluate(now time.Time) {
	cfg := d.cfg.Load()
	d.domains.Range(func(_, v any) bool {
		h := v.(*domainHealth)
		total, failed := h.total.Load(), h.failed.Load()
		n, f := total-h.seenTotal, failed-h.seenFailed
		h.seenTotal, h.seenFailed = total, failed
		var counts [len(latencyBounds) + 1]uint64
		for i := range h.buckets {
			c := h.buckets[i].Load()
			counts[i], h.seenBuckets[i] = c-h.seenBuckets[i], c
		}
		reason := ""
		if des := d.deps.Lookup(h.name); des != nil && !des.OK() {
			reason = "no designated writer: " + string(des.State)
		} else if n >= uint64(cfg.MinRequests) {
			if rate := float64(f) / float64(n); rate > cfg.ErrorRate {
				reason = fmt.Sprintf("%.1f%% of %d money calls failed", rate*100, n)
			} else if p95 := percentile(counts[:], n, 0.95); p95 > cfg.LatencyP95.D() {
				reason = fmt.Sprintf("p95 latency above %s over %d money calls", latencyBoundString(p95), n)
			}
		}
		switch {
		case reason != "":
			h.goodSince = now
			if !h.degraded.Swap(true) {
				d.changed(h.name, true, reason)
			}
		case h.degraded.Load() && now.Sub(h.goodSince) >= cfg.RecoverAfter.D():
			h.degraded.Store(false)
			d.changed(h.name, false, fmt.Sprintf("healthy for %s", cfg.RecoverAfter.D()))
		}
		return true
	})
}

// percentile returns the upper bound of the bucket holding quantile q.
func percentile(counts []uint64, n uint64, q float64) time.Duration {
	need := uint64(float64(n)*q + 0.5)
	var seen uint64
	for i, c := range counts {
		seen += c
		if seen >= need {
			if i < len(latencyBounds) {
				return latencyBounds[i]
			}
			return 2 * latencyBounds[len(latencyBounds)-1]
		}
	}
	return 0
}

func latencyBoundString(d time.Duration) string {
	if d > latencyBounds[len(latencyBounds)-1] {
		return latencyBounds[len(latencyBounds)-1].String()
	}
	return d.String()
}

// changed reports a domain's change: a log line, the gauge and an audit
// record.
func (d *Degradation) changed(domain string, degraded bool, reason string) {
	dd := &d.deps
	level := slog.LevelInfo
	if degraded {
		level = slog.LevelWarn
	}
	dd.Log.Log(context.Background(), level, "ledger domain degradation changed", "domain", domain, "degraded", degraded, "reason", reason)
	v := 0.0
	if degraded {
		v = 1
	}
	dd.Degraded.WithLabelValues(domain).Set(v)
	dd.Audit.Record("ledger_domain_degradation", map[string]any{"region": dd.Region, "node": dd.Node, "domain": domain, "degraded": degraded, "reason": reason})
}
