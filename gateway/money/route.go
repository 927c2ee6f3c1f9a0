// Package money is the edge's money path: the ledger route kind, which
// sends money calls (bets, wallet, tournaments) to the designated writer of
// the caller's ledger domain; the key guard, which authenticates players and
// enforces Idempotency-Key on every route that carries money (ledger routes,
// and proxy routes in front of payment rails); and the degradation that
// sheds heavy routes while a domain's wallet is in trouble. Whatever fails,
// a call is never applied twice by the edge's doing and never sent to two
// writers: without a single designated writer it fails closed, and a call
// whose outcome is unknown is not re-sent.
//
// Everything it needs comes in through Deps (the logger, the writer
// directory, the idempotency store, the degradation, counters); what it
// decides not to serve it returns as a refusal that the edge answers.
package money

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"hedge/configs"
	"hedge/gateway/contract"
	"hedge/gateway/idempotency"
	"hedge/gateway/ledger"
	"hedge/gateway/route"
	"hedge/gateway/upstream"
	"hedge/internal/httpx"
	"hedge/internal/problem"
)

// Deps are what every money route of a node shares, made by the edge for
// each state of the node.
type Deps struct {
	Log       *slog.Logger
	Config    *configs.Config // the writers of every region, writer TLS
	Directory *ledger.Directory
	// Store holds Idempotency-Key records (shared by the region's nodes).
	Store idempotency.Store
	// Degradation outlives states: a reload keeps what it measured.
	Degradation *Degradation
	// MaxResponse bounds the answers stored for replay.
	MaxResponse int
	// DefaultDomain is the ledger domain of tokens that name none, and
	// DomainHeader the header a trusted proxy may name it in instead.
	DefaultDomain, DomainHeader string
	// Outcomes counts money calls by route and outcome (NewCounters).
	Outcomes *prometheus.CounterVec
}

// Counters count the outcomes of one money route.
type Counters struct {
	claimed, replayed, reused, inFlight, failClosed, unknown, shed, takenOver prometheus.Counter
}

// NewCounters are the counters of route in outcomes, a vector by route and
// outcome.
func NewCounters(outcomes *prometheus.CounterVec, route string) *Counters {
	c := outcomes.MustCurryWith(prometheus.Labels{"route": route})
	return &Counters{
		claimed: c.WithLabelValues("claimed"), replayed: c.WithLabelValues("replayed"),
		reused: c.WithLabelValues("key_reused"), inFlight: c.WithLabelValues("in_flight"),
		failClosed: c.WithLabelValues("fail_closed"), unknown: c.WithLabelValues("outcome_unknown"),
		shed: c.WithLabelValues("shed"), takenOver: c.WithLabelValues("taken_over"),
	}
}

type writerClient struct {
	scheme string
	client *fasthttp.HostClient
}

// writerClients makes a client per writer of the deployment, with one
// route's timeouts: a writer is reached directly, whichever region it is in.
func writerClients(cfg *configs.Config, timeout, connect time.Duration) (map[string]*writerClient, error) {
	clients := map[string]*writerClient{}
	for _, r := range cfg.Regions {
		for _, w := range r.Writers {
			if clients[w.URL] != nil {
				continue
			}
			u, err := url.Parse(w.URL)
			if err != nil {
				return nil, err
			}
			hc := &fasthttp.HostClient{
				Addr: u.Host, Name: "hedge", IsTLS: u.Scheme == "https",
				ReadTimeout: timeout, WriteTimeout: timeout, MaxConnWaitTimeout: connect,
				MaxIdleConnDuration: 30 * time.Second, MaxIdemponentCallAttempts: 1,
				NoDefaultUserAgentHeader: true, DisablePathNormalizing: true,
				Dial: upstream.Dialer(connect),
			}
			if hc.IsTLS {
				// ledger.writer_tls: the writer is verified, and the edge
				// presents its client certificate; a handshake that fails
				// is a call never sent (503 writer-unavailable).
				tc, err := upstream.ClientTLS(cfg.Ledger.WriterTLS, u.Hostname())
				if err != nil {
					return nil, fmt.Errorf("ledger.writer_tls: %w", err)
				}
				hc.TLSConfig, hc.Dial = tc, upstream.WriterTLSDialer(connect, tc)
			}
			clients[w.URL] = &writerClient{scheme: u.Scheme, client: hc}
		}
	}
	return clients, nil
}

// Route forwards money calls to the designated writer of the caller's
// ledger domain, enforcing Idempotency-Key on unsafe methods: the ledger
// route kind.
type Route struct {
	name     string
	prefix   []byte
	rewrite  []byte
	heavy    bool
	deps     *Deps
	guard    *KeyGuard
	contract *contract.Contract
	writers  map[string]*writerClient // by URL, with this route's timeouts
	counts   *Counters
}

// NewRoute builds the ledger route rc.
func NewRoute(rc configs.Route, d *Deps) (*Route, error) {
	if d == nil {
		return nil, errors.New("a ledger route needs auth.jwt keys")
	}
	m := &Route{name: rc.Name, prefix: []byte(rc.Match.PathPrefix), heavy: rc.Money.Heavy, deps: d,
		contract: contract.New(rc), counts: NewCounters(d.Outcomes, rc.Name)}
	m.guard = NewKeyGuard(rc.Name, d, true, m.counts)
	if rc.Rewrite != "" {
		m.rewrite = []byte(rc.Rewrite)
	}
	var err error
	m.writers, err = writerClients(d.Config, rc.Money.Timeout.D(), rc.Money.ConnectTimeout.D())
	return m, err
}

// Close drops the route's idle writer connections when its state retires.
func (m *Route) Close() {
	for _, w := range m.writers {
		w.client.CloseIdleConnections()
	}
}

// Serve implements route.Handler.
func (m *Route) Serve(r *route.Request) problem.Refusal {
	req := &r.Ctx.Request
	d := m.deps
	claims, f := m.guard.Authenticate(r)
	if f.Refused() {
		return f
	}
	domain := claims.Domain
	if domain == "" && d.DomainHeader != "" && r.TrustedPeer {
		domain = string(req.Header.Peek(d.DomainHeader))
	}
	if domain == "" {
		domain = d.DefaultDomain
	}
	des := d.Directory.Lookup(domain)
	if des == nil {
		return problem.Refuse(problem.UnknownDomain, "ledger domain "+strconv.Quote(domain)+" is not part of this deployment")
	}
	if !des.OK() {
		return m.failClosed(des)
	}
	if m.heavy && d.Degradation.Degraded(domain) {
		// The wallet keeps its capacity for bets while the domain is degraded.
		m.counts.shed.Inc()
		return problem.Refusal{Type: problem.Shed, Detail: "ledger domain " + domain + " is degraded; this feature is paused", RetryAfter: "5"}
	}
	k, v := m.guard.Claim(r, claims.Subject)
	if !v.GoOn() {
		return v.Answer(r)
	}
	return m.forward(r, claims.Subject, domain, &k)
}

// failClosed refuses a call whose domain has no single designated writer.
// The detail names the state, not the reason: that names writers and
// their errors, which /status and the log show to operators.
func (m *Route) failClosed(des *ledger.Designation) problem.Refusal {
	m.counts.failClosed.Inc()
	return problem.Refusal{Type: problem.WriterUnavailable, RetryAfter: "1",
		Detail: "ledger domain " + des.Domain + " has no designated writer (" + string(des.State) + ")"}
}

// forward sends the call to the designated writer: a request built from
// the edge's contract (package contract), never the client's headers.
func (m *Route) forward(r *route.Request, principal, domain string, k *Keyed) problem.Refusal {
	ctx := r.Ctx
	d := m.deps
	out := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(out)
	m.contract.Build(out, r, m.prefix, m.rewrite, k.ClientKey())
	h := &out.Header
	h.Set(httpx.PrincipalHeader, principal)
	h.Set("Ledger-Domain", domain)

	// Read the designation again right before sending: a change since the
	// check above must not send the call with the old epoch.
	des := d.Directory.Lookup(domain)
	if !des.OK() {
		k.Release(r)
		return m.failClosed(des)
	}
	wc := m.writers[des.Writer.URL]
	var eb [20]byte
	h.SetBytesV("Ledger-Epoch", strconv.AppendInt(eb[:0], des.Writer.Epoch, 10))
	out.URI().SetScheme(wc.scheme)
	out.URI().SetHost(wc.client.Addr)
	r.Upstream = des.Writer.Region + ":" + des.Writer.URL

	var err error
	sent := time.Now()
	for attempt := 1; attempt <= 2; attempt++ {
		r.Attempts = attempt
		err = wc.client.Do(out, &ctx.Response)
		// Only a failure known to be before sending may be tried again,
		// and only on the same writer.
		if err == nil || !upstream.BeforeSend(err) {
			break
		}
		ctx.Response.Reset()
	}
	d.Degradation.Observe(domain, time.Since(sent), err != nil || ctx.Response.StatusCode() >= 500)
	if err != nil {
		k.Release(r)
		if upstream.BeforeSend(err) {
			m.counts.failClosed.Inc()
			return problem.Refusal{Type: problem.WriterUnavailable, Detail: "the designated writer of " + domain + " is unreachable", RetryAfter: "1"}
		}
		m.counts.unknown.Inc()
		d.Log.Warn("money call outcome unknown", "route", m.name, "domain", domain, "writer", des.Writer.URL,
			"epoch", des.Writer.Epoch, "error", err, "request_id", string(r.ID))
		return problem.Refuse(problem.OutcomeUnknown, "the writer did not confirm the outcome; retry with the same Idempotency-Key")
	}
	contract.CleanResponse(&ctx.Response)
	k.Finish(r)
	return problem.Refusal{}
}

// replayable tells which answers are stored and replayed to a retry with
// the same key: successes only. Any other answer (a refusal such as
// insufficient funds, a conflict, a server error) releases the key, so the
// player's retry reaches the writer again, which stays the authority on
// what it applied.
func replayable(s int) bool { return s >= 200 && s < 300 }

// replayHeader reports whether a writer's response header is stored for
// replay; per-connection and per-response headers are not.
func replayHeader(k []byte) bool {
	switch string(k) {
	case "Date", "Server", "Connection", "Keep-Alive", "Content-Length", "Transfer-Encoding", "X-Request-Id":
		return false
	}
	return true
}
