// Package upstream holds the pools the edge proxies to: their members, the
// balancing policy (round_robin or ordered failover), passive and active
// health (package health), and the retry budget.
package upstream

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"hedge/configs"
	"hedge/internal/health"
)

// Member is one upstream server of a pool.
type Member struct {
	Name string
	URL  string
	// Scheme is "http" or "https"; the request URI must say the same as the
	// client's transport.
	Scheme string
	Client *fasthttp.HostClient
	Health *health.Target
}

// Pool is a set of members with one balancing policy.
type Pool struct {
	Name     string
	Critical bool
	Failover bool
	Cfg      configs.Pool
	Members  []*Member
	Budget   *Budget
	rr       atomic.Uint32
}

// New builds a pool and its members' clients. onChange hears every health
// transition of a member.
func New(p configs.Pool, onChange func(pool string, c health.Change)) (*Pool, error) {
	pool := &Pool{
		Name: p.Name, Critical: p.Critical, Failover: p.Policy == "failover", Cfg: p,
		Budget: NewBudget(p.Retries.Budget, p.Retries.MinPerSecond),
	}
	for _, m := range p.Members {
		u, err := url.Parse(m.URL)
		if err != nil {
			return nil, err
		}
		isTLS := u.Scheme == "https"
		client := &fasthttp.HostClient{
			Addr:                          u.Host,
			Name:                          "hedge",
			IsTLS:                         isTLS,
			MaxConns:                      p.MaxConnsPerMember,
			ReadTimeout:                   p.Timeouts.Response.D(),
			WriteTimeout:                  p.Timeouts.Response.D(),
			MaxIdleConnDuration:           30 * time.Second,
			MaxConnWaitTimeout:            p.Timeouts.Connect.D(),
			MaxIdemponentCallAttempts:     1, // the gateway decides about retries
			NoDefaultUserAgentHeader:      true,
			DisablePathNormalizing:        true,
			DisableHeaderNamesNormalizing: false,
			Dial:                          Dialer(p.Timeouts.Connect.D()),
		}
		var tc *tls.Config
		if isTLS {
			// The pool's CA and client certificate (mTLS), verified against
			// tls.server_name or the member's host; the health probes
			// present and verify the same.
			if tc, err = ClientTLS(p.TLS, u.Hostname()); err != nil {
				return nil, fmt.Errorf("member %s: tls: %w", m.Name, err)
			}
			client.TLSConfig = tc
			client.Dial = TLSDialer(p.Timeouts.Connect.D(), tc)
		}
		name := m.Name
		spec := health.Spec{
			URL:      m.URL + p.Health.Path,
			TLS:      tc,
			Interval: p.Health.Interval.D(), Timeout: p.Health.Timeout.D(),
			Rise: p.Health.Rise, Fall: p.Health.Fall,
			MaxFails: p.Passive.MaxFails, EjectFor: p.Passive.EjectFor.D(),
			ActiveOff: p.Health.Disabled,
		}
		var cb func(health.Change)
		if onChange != nil {
			cb = func(c health.Change) { onChange(p.Name, c) }
		}
		pool.Members = append(pool.Members, &Member{
			Name: name, URL: m.URL, Scheme: u.Scheme, Client: client,
			Health: health.NewTarget(name, spec, cb),
		})
	}
	return pool, nil
}

// Dialer dials with a timeout and marks its failures as DialError, so the
// caller knows nothing was sent.
func Dialer(timeout time.Duration) fasthttp.DialFunc {
	d := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	return func(addr string) (net.Conn, error) {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			return nil, &DialError{Err: err}
		}
		return c, nil
	}
}

// DialError marks a failure before anything was sent: the request may be
// sent elsewhere whatever its method.
type DialError struct{ Err error }

func (e *DialError) Error() string { return "connect: " + e.Err.Error() }
func (e *DialError) Unwrap() error { return e.Err }

// BeforeSend reports whether err happened before the request left the edge.
func BeforeSend(err error) bool {
	var d *DialError
	return errors.As(err, &d) || errors.Is(err, fasthttp.ErrNoFreeConns)
}

// Timeout reports whether err is a timeout waiting for the upstream.
func Timeout(err error) bool {
	if errors.Is(err, fasthttp.ErrTimeout) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() && !BeforeSend(err)
}

// Targets lists every member's health target (for the checker).
func (p *Pool) Targets() []*health.Target {
	t := make([]*health.Target, len(p.Members))
	for i, m := range p.Members {
		t[i] = m.Health
	}
	return t
}

// Pick returns a healthy member not in tried, or nil. round_robin rotates
// over healthy members; failover takes the first healthy one in order.
func (p *Pool) Pick(tried []*Member) *Member {
	n := len(p.Members)
	start := 0
	if !p.Failover {
		start = int(p.rr.Add(1) % uint32(n))
	}
	for i := range n {
		m := p.Members[(start+i)%n]
		if m.Health.Healthy() && !contains(tried, m) {
			return m
		}
	}
	return nil
}

// Member returns the member whose URL is url, or nil.
func (p *Pool) Member(url string) *Member {
	for _, m := range p.Members {
		if m.URL == url {
			return m
		}
	}
	return nil
}

func contains(ms []*Member, m *Member) bool {
	for _, x := range ms {
		if x == m {
			return true
		}
	}
	return false
}

// Healthy counts healthy members.
func (p *Pool) Healthy() int {
	n := 0
	for _, m := range p.Members {
		if m.Health.Healthy() {
			n++
		}
	}
	return n
}

// Inherit carries member health over from the pool this one replaces.
func (p *Pool) Inherit(old *Pool) {
	for _, m := range p.Members {
		for _, o := range old.Members {
			if o.URL == m.URL {
				m.Health.Inherit(o.Health)
			}
		}
	}
}

// Budget bounds retries to a share of requests, plus a floor per second, so
// retries cannot multiply load on a struggling pool.
type Budget struct {
	perRequest int64 // milli-tokens deposited per request
	floor      int64 // milli-tokens granted per second
	cap        int64
	tokens     atomic.Int64
	lastFloor  atomic.Int64 // unix seconds of the last floor grant
}

// NewBudget allows share×requests retries plus minPerSecond each second.
func NewBudget(share float64, minPerSecond int) *Budget {
	b := &Budget{perRequest: int64(share * 1000), floor: int64(minPerSecond) * 1000}
	b.cap = max(b.floor*10, 100_000)
	b.tokens.Store(b.floor)
	return b
}

// Deposit records one request.
func (b *Budget) Deposit() {
	if b.perRequest == 0 || b.tokens.Load() >= b.cap {
		return
	}
	b.tokens.Add(b.perRequest)
}

// Withdraw takes one retry from the budget, reporting whether it was there.
func (b *Budget) Withdraw() bool {
	now := time.Now().Unix()
	if last := b.lastFloor.Load(); now > last && b.lastFloor.CompareAndSwap(last, now) {
		for {
			t := b.tokens.Load()
			if t >= b.floor || b.tokens.CompareAndSwap(t, b.floor) {
				break
			}
		}
	}
	for {
		t := b.tokens.Load()
		if t < 1000 {
			return false
		}
		if b.tokens.CompareAndSwap(t, t-1000) {
			return true
		}
	}
}

// Close drops the pool's idle upstream connections; requests still running
// on a retired pool finish on theirs.
func (p *Pool) Close() {
	for _, m := range p.Members {
		m.Client.CloseIdleConnections()
	}
}
