package gateway

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"hedge/configs"
	"hedge/gateway/idempotency"
	"hedge/gateway/jwtauth"
	"hedge/gateway/ledger"
	"hedge/gateway/upstream"
	"hedge/internal/httpx"
	"hedge/internal/problem"
)

// moneyDeps is what every money route of a node shares.
type moneyDeps struct {
	verifier      *jwtauth.Verifier
	directory     *ledger.Directory
	store         idempotency.Store
	maxResponse   int
	defaultDomain string
	domainHeader  string
}

type writerClient struct {
	scheme string
	client *fasthttp.HostClient
}

func newMoneyDeps(n *Node, cfg *configs.Config, region *configs.Region, dir *ledger.Directory) (*moneyDeps, error) {
	d := &moneyDeps{directory: dir, defaultDomain: region.DefaultDomain, domainHeader: cfg.Auth.JWT.DomainHeader,
		maxResponse: int(region.Idempotency.MaxResponseBytes)}
	if len(cfg.Auth.JWT.Keys) > 0 || cfg.Auth.JWT.JWKSFile != "" {
		v, err := jwtauth.New(cfg.Auth.JWT)
		if err != nil {
			return nil, err
		}
		d.verifier = v
	}
	var err error
	if d.store, err = n.g.idempotencyStore(region, cfg); err != nil {
		return nil, err
	}
	return d, nil
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

// moneyRoute forwards money calls (bets, wallet, cashier) to the designated
// writer of the caller's ledger domain, enforcing Idempotency-Key on unsafe
// methods. Whatever fails, a call is never applied twice by the edge's doing
// and never sent to two writers: without a single designated writer it
// fails closed, and a call whose outcome is unknown is not re-sent.
type moneyRoute struct {
	name     string
	prefix   []byte
	rewrite  []byte
	heavy    bool
	deps     *moneyDeps
	guard    *keyGuard
	contract *upstreamContract
	writers  map[string]*writerClient // by URL, with this route's timeouts
	counts   *moneyCounters
}

func newMoneyRoute(b *Build, rc configs.Route) (RouteHandler, error) {
	if b.Money == nil || b.Money.verifier == nil {
		return nil, errors.New("a ledger route needs auth.jwt keys")
	}
	m := &moneyRoute{name: rc.Name, prefix: []byte(rc.Match.PathPrefix), heavy: rc.Money.Heavy, deps: b.Money,
		contract: newUpstreamContract(rc), counts: b.metrics.money(b.Region.Name, b.Node.Name, rc.Name)}
	m.guard = newKeyGuard(rc.Name, b.Money, true, m.counts)
	if rc.Rewrite != "" {
		m.rewrite = []byte(rc.Rewrite)
	}
	var err error
	m.writers, err = writerClients(b.Config, rc.Money.Timeout.D(), rc.Money.ConnectTimeout.D())
	return m, err
}

// Close drops the route's idle writer connections when its state retires.
func (m *moneyRoute) Close() {
	for _, w := range m.writers {
		w.client.CloseIdleConnections()
	}
}

// Serve implements RouteHandler.
func (m *moneyRoute) Serve(r *Request) {
	ctx := r.Ctx
	req := &ctx.Request
	d := m.deps
	claims, ok := m.guard.authenticate(r)
	if !ok {
		return
	}
	domain := claims.Domain
	if domain == "" && d.domainHeader != "" && r.TrustedPeer {
		domain = string(req.Header.Peek(d.domainHeader))
	}
	if domain == "" {
		domain = d.defaultDomain
	}
	des := d.directory.Lookup(domain)
	if des == nil {
		problem.Write(ctx, problem.UnknownDomain, "ledger domain "+strconv.Quote(domain)+" is not part of this deployment", r.ID)
		return
	}
	if !des.OK() {
		m.failClosed(r, des)
		return
	}
	if m.heavy && r.Node.degrade.Degraded(domain) {
		// The wallet keeps its capacity for bets while the domain is degraded.
		m.counts.shed.Inc()
		problem.Write(ctx, problem.Shed, "ledger domain "+domain+" is degraded; this feature is paused", r.ID)
		ctx.Response.Header.Set("Retry-After", "5")
		return
	}
	k, ok := m.guard.claim(r, claims.Subject)
	if !ok {
		return
	}
	m.forward(r, claims.Subject, domain, &k)
}

func (m *moneyRoute) failClosed(r *Request, des *ledger.Designation) {
	m.counts.failClosed.Inc()
	problem.Write(r.Ctx, problem.WriterUnavailable, "ledger domain "+des.Domain+": "+string(des.State)+" ("+des.Reason+")", r.ID)
	r.Ctx.Response.Header.Set("Retry-After", "1")
}

// forward sends the call to the designated writer: a request built from
// the edge's contract (contract.go), never the client's headers.
func (m *moneyRoute) forward(r *Request, principal, domain string, k *keyed) {
	ctx := r.Ctx
	d := m.deps
	out := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(out)
	m.contract.build(out, r, m.prefix, m.rewrite, k.clientKey())
	h := &out.Header
	h.Set(httpx.PrincipalHeader, principal)
	h.Set("Ledger-Domain", domain)

	// Read the designation again right before sending: a change since the
	// check above must not send the call with the old epoch.
	des := d.directory.Lookup(domain)
	if !des.OK() {
		k.release(r)
		m.failClosed(r, des)
		return
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
	r.Node.degrade.domain(domain).observe(time.Since(sent), err != nil || ctx.Response.StatusCode() >= 500)
	if err != nil {
		k.release(r)
		if upstream.BeforeSend(err) {
			m.counts.failClosed.Inc()
			problem.Write(ctx, problem.WriterUnavailable, "the designated writer of "+domain+" is unreachable", r.ID)
			ctx.Response.Header.Set("Retry-After", "1")
			return
		}
		m.counts.unknown.Inc()
		r.Node.log.Warn("money call outcome unknown", "route", m.name, "domain", domain, "writer", des.Writer.URL,
			"epoch", des.Writer.Epoch, "error", err, "request_id", string(r.ID))
		problem.Write(ctx, problem.OutcomeUnknown, "the writer did not confirm the outcome; retry with the same Idempotency-Key", r.ID)
		return
	}
	cleanResponse(&ctx.Response)
	k.finish(r)
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

// moneyCounters count the outcomes of one money route.
type moneyCounters struct {
	claimed, replayed, reused, inFlight, failClosed, unknown, shed interface{ Inc() }
}

func (m *metrics) money(region, node, route string) *moneyCounters {
	c := m.moneyOutcomes.MustCurryWith(map[string]string{"region": region, "node": node, "route": route})
	return &moneyCounters{
		claimed: c.WithLabelValues("claimed"), replayed: c.WithLabelValues("replayed"),
		reused: c.WithLabelValues("key_reused"), inFlight: c.WithLabelValues("in_flight"),
		failClosed: c.WithLabelValues("fail_closed"), unknown: c.WithLabelValues("outcome_unknown"),
		shed: c.WithLabelValues("shed"),
	}
}
