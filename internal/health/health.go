// Package health decides whether a target can serve: active HTTP(S) probes
// with rise/fall hysteresis, and passive ejection after consecutive failed
// requests. The gateway uses it for upstream pool members and the DNS server
// for the edges of every region, so both see health the same way.
package health

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Spec says how to probe one target.
type Spec struct {
	// URL is fetched with GET; any 2xx or 3xx answer is a success.
	URL string
	// Host overrides the Host header and TLS server name (the DNS server
	// probes an edge by its address but as the service name).
	Host string
	// TLS verifies https probes; nil uses the system roots.
	TLS      *tls.Config
	Interval time.Duration
	Timeout  time.Duration
	Rise     int
	Fall     int
	// Passive ejection: MaxFails consecutive failed requests take the
	// target out for EjectFor. Zero MaxFails disables it.
	MaxFails int
	EjectFor time.Duration
	// ActiveOff leaves only passive health.
	ActiveOff bool
}

// Change is one transition of a target, for logs, metrics and audits.
type Change struct {
	Target string
	Up     bool
	Reason string
	At     time.Time
}

// Target is the health of one member or edge. Healthy is safe to call on
// every request.
type Target struct {
	Name string
	spec Spec

	up            atomic.Bool
	ejectedUntil  atomic.Int64 // unix nanos; 0 = not ejected
	passiveFails  atomic.Int32
	okRun, badRun int // owned by the probe goroutine
	// reset asks the probe goroutine to restart its runs after Set, so a
	// probe that was in flight when an edge announced a drain cannot undo it.
	reset atomic.Bool
	// pending counts the consecutive probes that disagree with the verdict:
	// the verdict flips when it reaches Rise (while down) or Fall (while up).
	pending atomic.Int32

	mu         sync.Mutex
	lastError  string
	lastChange time.Time
	lastProbe  time.Time
	onChange   func(Change)
}

// NewTarget makes a target that starts healthy, so a new node serves at once
// and a failed member is taken out after Fall probes.
func NewTarget(name string, spec Spec, onChange func(Change)) *Target {
	t := &Target{Name: name, spec: spec, onChange: onChange}
	t.up.Store(true)
	return t
}

// Inherit copies the health of the target this one replaces, so a reload
// neither revives a failed member nor forgets a healthy one.
func (t *Target) Inherit(old *Target) {
	t.up.Store(old.up.Load())
	t.ejectedUntil.Store(old.ejectedUntil.Load())
	old.mu.Lock()
	t.lastError, t.lastChange, t.lastProbe = old.lastError, old.lastChange, old.lastProbe
	old.mu.Unlock()
}

// Healthy reports whether requests may be sent to the target now.
func (t *Target) Healthy() bool {
	if !t.up.Load() {
		return false
	}
	if until := t.ejectedUntil.Load(); until != 0 {
		if time.Now().UnixNano() < until {
			return false
		}
		if t.ejectedUntil.CompareAndSwap(until, 0) {
			t.notify(true, "passive ejection ended")
		}
	}
	return true
}

// Up reports the active checks' verdict alone.
func (t *Target) Up() bool { return t.up.Load() }

// ReportSuccess records a request the target answered.
func (t *Target) ReportSuccess() {
	if t.passiveFails.Load() != 0 {
		t.passiveFails.Store(0)
	}
}

// ReportFailure records a request the target failed (connection error,
// timeout); after MaxFails in a row the target is ejected for EjectFor.
func (t *Target) ReportFailure(err error) {
	if t.spec.MaxFails <= 0 {
		return
	}
	if t.passiveFails.Add(1) < int32(t.spec.MaxFails) {
		return
	}
	t.passiveFails.Store(0)
	until := time.Now().Add(t.spec.EjectFor).UnixNano()
	if t.ejectedUntil.Swap(until) == 0 {
		t.setError(err)
		t.notify(false, fmt.Sprintf("ejected for %s after %d consecutive failures: %v", t.spec.EjectFor, t.spec.MaxFails, err))
	}
}

// Set forces the active verdict (an edge that announces it is draining).
// The probes then need Rise (or Fall) results of their own to change it.
func (t *Target) Set(up bool, reason string) {
	t.reset.Store(true)
	t.pending.Store(0)
	if up {
		t.setError(nil)
	}
	if t.up.Swap(up) != up {
		t.notify(up, reason)
	}
}

// Pending reports how many consecutive probes disagree with the current
// verdict; the verdict flips when it reaches Rise (while down) or Fall.
func (t *Target) Pending() int { return int(t.pending.Load()) }

// Spec returns how the target is probed.
func (t *Target) Spec() Spec { return t.spec }

func (t *Target) setError(err error) {
	t.mu.Lock()
	if err == nil {
		t.lastError = ""
	} else {
		t.lastError = err.Error()
	}
	t.mu.Unlock()
}

func (t *Target) notify(up bool, reason string) {
	now := time.Now()
	t.mu.Lock()
	t.lastChange = now
	fn := t.onChange
	t.mu.Unlock()
	if fn != nil {
		fn(Change{Target: t.Name, Up: up, Reason: reason, At: now})
	}
}

// Status is a snapshot for /status.
type Status struct {
	Name       string    `json:"name"`
	URL        string    `json:"url,omitempty"`
	Healthy    bool      `json:"healthy"`
	Up         bool      `json:"up"`
	Ejected    bool      `json:"ejected"`
	LastError  string    `json:"last_error,omitempty"`
	LastChange time.Time `json:"last_change,omitzero"`
	LastProbe  time.Time `json:"last_probe,omitzero"`
}

// Status reports the target's state.
func (t *Target) Status() Status {
	healthy := t.Healthy()
	t.mu.Lock()
	defer t.mu.Unlock()
	return Status{
		Name: t.Name, URL: t.spec.URL, Healthy: healthy, Up: t.up.Load(),
		Ejected: t.ejectedUntil.Load() != 0, LastError: t.lastError,
		LastChange: t.lastChange, LastProbe: t.lastProbe,
	}
}

// Checker probes its targets until Close.
type Checker struct {
	targets []*Target
	client  *http.Client
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	once    sync.Once
}

// NewChecker probes targets that have active checks on.
func NewChecker(targets ...*Target) *Checker {
	tr := &http.Transport{
		// A probe opens a new connection each time, so a server that stopped
		// accepting is noticed even while an old connection still works.
		DisableKeepAlives:  true,
		DisableCompression: true,
		Proxy:              nil,
	}
	return &Checker{targets: targets, client: &http.Client{
		Transport: tr,
		// A redirect is a success; do not follow it.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// Start begins probing; each target gets its own goroutine, stopped by Close.
func (c *Checker) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	for _, t := range c.targets {
		if t.spec.ActiveOff || t.spec.Interval <= 0 {
			continue
		}
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.run(ctx, t)
		}()
	}
}

// Close stops every probe and waits for them; safe to call twice.
func (c *Checker) Close() {
	c.once.Do(func() {
		if c.cancel != nil {
			c.cancel()
		}
		c.wg.Wait()
		c.client.CloseIdleConnections()
	})
}

func (c *Checker) run(ctx context.Context, t *Target) {
	// Spread probes of many targets over the interval.
	jitter := time.Duration(rand.Int64N(int64(t.spec.Interval)/4 + 1))
	timer := time.NewTimer(jitter)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		err := c.Probe(ctx, t)
		if ctx.Err() != nil {
			return
		}
		t.observe(err)
		timer.Reset(t.spec.Interval)
	}
}

// errStatus marks an answer outside 2xx/3xx.
var errStatus = errors.New("unhealthy status")

// Probe runs one check of t and returns its error (nil = success).
func (c *Checker) Probe(ctx context.Context, t *Target) error {
	ctx, cancel := context.WithTimeout(ctx, t.spec.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.spec.URL, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "hedge-health/1")
	client := c.client
	if t.spec.Host != "" || t.spec.TLS != nil {
		req.Host = t.spec.Host
		client = c.tlsClient(t)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 399 {
		return fmt.Errorf("%w %d", errStatus, resp.StatusCode)
	}
	return nil
}

// tlsClient gives targets with their own TLS settings a client of their own.
func (c *Checker) tlsClient(t *Target) *http.Client {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if t.spec.TLS != nil {
		cfg = t.spec.TLS.Clone()
	}
	if t.spec.Host != "" && cfg.ServerName == "" {
		cfg.ServerName = t.spec.Host
	}
	return &http.Client{
		Transport:     &http.Transport{DisableKeepAlives: true, TLSClientConfig: cfg},
		CheckRedirect: c.client.CheckRedirect,
	}
}

// observe applies one probe result with rise/fall hysteresis.
func (t *Target) observe(err error) {
	t.mu.Lock()
	t.lastProbe = time.Now()
	t.mu.Unlock()
	if t.reset.Swap(false) {
		t.okRun, t.badRun = 0, 0
	}
	defer func() {
		switch up := t.up.Load(); {
		case up && err != nil:
			t.pending.Store(int32(t.badRun))
		case !up && err == nil:
			t.pending.Store(int32(t.okRun))
		default:
			t.pending.Store(0)
		}
	}()
	if err == nil {
		t.badRun = 0
		t.okRun++
		if !t.up.Load() && t.okRun >= t.spec.Rise {
			t.setError(nil)
			t.Set(true, fmt.Sprintf("%d consecutive successful probes", t.okRun))
		}
		return
	}
	t.okRun = 0
	t.badRun++
	t.setError(err)
	if t.up.Load() && t.badRun >= t.spec.Fall {
		t.Set(false, fmt.Sprintf("%d consecutive failed probes: %v", t.badRun, err))
	}
}
