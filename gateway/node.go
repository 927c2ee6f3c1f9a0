package gateway

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
	"golang.org/x/net/http2"

	"hedge/configs"
	"hedge/gateway/jwtauth"
	"hedge/gateway/ledger"
	"hedge/gateway/live"
	"hedge/gateway/money"
	"hedge/gateway/upstream"
	"hedge/internal/adminauth"
	"hedge/internal/certs"
	"hedge/internal/health"
	"hedge/internal/httpx"
	"hedge/waf"
)

// Node is one edge node: its listeners, its admin listener and the state
// they serve from. Reload builds a complete new state and swaps it in; the
// listeners and their connections stay.
type Node struct {
	g      *Gateway
	region string
	name   string
	log    *slog.Logger

	state    atomic.Pointer[nodeState]
	draining atomic.Bool
	unrouted *routeStats

	mu        sync.Mutex
	listeners map[string]*edgeListener
	admin     *adminServer
	// degrade and live outlive states: what money calls measured, and the
	// node's stream server (created with its first stream route).
	degrade     *money.Degradation
	degradeOnce sync.Once
	live        live.Host

	railMu     sync.Mutex
	activeRail map[string]string // failover pool → member serving it
}

// nodeState is everything a request reads, built whole before it is used.
type nodeState struct {
	cfg       *configs.Config
	region    *configs.Region
	node      *configs.Node
	router    *Router
	pools     map[string]*upstream.Pool
	poolList  []*upstream.Pool
	checker   *health.Checker
	listeners map[string]*listenerState
	directory *ledger.Directory
	// verifier checks bearer tokens, money what money routes share; both
	// nil without auth.jwt keys.
	verifier *jwtauth.Verifier
	money    *money.Deps
	held     waf.Held // this state's engines, schemas and rate limiters
	// adminTLS is the admin listener's TLS (nil: plain HTTP); pusher
	// reaches the DNS nodes' admin listeners to announce drains.
	adminTLS *adminauth.ServerTLS
	pusher   *adminauth.Pusher
}

// listenerState is the part of the state that is per listener.
type listenerState struct {
	cfg     configs.Listener
	tls     bool
	trusted httpx.Trusted
	hsts    string
	certs   *certs.Manager
	acl     *waf.ACL     // the global ACL, checked before routing
	guards  []*waf.Guard // by Route.index
	h2      *h2State     // nil: HTTP/2 is not offered (h2.go)
	h3tls   *tls.Config  // nil: HTTP/3 is not offered (h3.go)
}

// edgeListener is one bound listener; it outlives reloads.
type edgeListener struct {
	node    *Node
	name    string
	address string
	tls     bool
	ln      net.Listener
	srv     *fasthttp.Server
	done    chan struct{}
	// writeTimeout is the listener's write_timeout as the server started
	// with it, for answers written from onError.
	writeTimeout time.Duration
	conns        *connCap                   // open connections per client address
	h2           h2Conns                    // HTTP/2 connections being served, for their GOAWAY at shutdown
	h3           atomic.Pointer[h3Listener] // HTTP/3 while served (h3.go)
}

// buildState assembles a node's complete state from cfg; nothing is shared
// with the previous state, so a failed build leaves the node as it was.
func (n *Node) buildState(ctx context.Context, cfg *configs.Config) (*nodeState, error) {
	region, node, err := cfg.Pick(n.region, n.name)
	if err != nil {
		return nil, err
	}
	st := &nodeState{cfg: cfg, region: region, node: node, pools: map[string]*upstream.Pool{}, listeners: map[string]*listenerState{}}
	writerTLS, err := upstream.ClientTLS(cfg.Ledger.WriterTLS, "")
	if err != nil {
		return nil, fmt.Errorf("ledger.writer_tls: %w", err)
	}
	var targets []*health.Target
	for _, pc := range region.Pools {
		p, err := upstream.New(pc, n.healthChanged)
		if err != nil {
			return nil, fmt.Errorf("pool %s: %w", pc.Name, err)
		}
		st.pools[pc.Name] = p
		st.poolList = append(st.poolList, p)
		targets = append(targets, p.Targets()...)
	}
	st.checker = health.NewChecker(targets...)

	var maxBody int64
	for _, lc := range node.Listeners {
		maxBody = max(maxBody, int64(lc.Limits.MaxBodyBytes))
	}
	st.directory = ledger.New(cfg, n.writerChanged, ledger.ProbeTLS(writerTLS))
	if len(cfg.Auth.JWT.Keys) > 0 || cfg.Auth.JWT.JWKSFile != "" {
		if err := n.buildMoney(st); err != nil {
			return nil, err
		}
	}
	routes := make([]*Route, 0, len(cfg.Routes))
	for _, rc := range cfg.Routes {
		r, err := n.compileRoute(st, rc, maxBody)
		if err != nil {
			return nil, err
		}
		r.index = len(routes)
		routes = append(routes, r)
	}
	st.router = newRouter(routes)

	for _, lc := range node.Listeners {
		ls := &listenerState{cfg: lc, tls: lc.TLS.Mode != "off"}
		var prefixes []netip.Prefix
		for _, s := range lc.TrustedProxies {
			p, _ := configs.ParsePrefix(s) // validated
			prefixes = append(prefixes, p)
		}
		ls.trusted = httpx.NewTrusted(prefixes)
		if ls.tls && *lc.HSTS.Enabled {
			ls.hsts = hstsValue(lc.HSTS)
		}
		if err := n.buildProtection(st, ls, routes); err != nil {
			st.close()
			return nil, err
		}
		if ls.tls {
			m, err := certs.New(lc.TLS, cfg.DataDir, n.log.With("listener", lc.Name), certs.ListenerAddress(lc.Address),
				certs.CANames(configs.InternalCANames(cfg)))
			if err != nil {
				st.close()
				return nil, fmt.Errorf("listener %s: %w", lc.Name, err)
			}
			ls.certs = m
			n.buildH2(ls)
			n.buildH3(ls)
			st.listeners[lc.Name] = ls
			if err := m.Start(ctx); err != nil {
				st.close()
				return nil, fmt.Errorf("listener %s: certificates: %w", lc.Name, err)
			}
		}
		st.listeners[lc.Name] = ls
	}
	if st.adminTLS, err = adminauth.NewServerTLS(cfg, node, n.log); err != nil {
		st.close()
		return nil, err
	}
	if st.adminTLS != nil {
		if err := st.adminTLS.Start(ctx); err != nil {
			st.close()
			return nil, fmt.Errorf("admin listener: certificates: %w", err)
		}
	}
	if st.pusher, err = adminauth.NewPusher(cfg, node); err != nil {
		st.close()
		return nil, fmt.Errorf("drain push: %w", err)
	}
	return st, nil
}

// buildMoney makes what the state's money routes share: the token
// verifier, the region's idempotency store, the node's degradation.
func (n *Node) buildMoney(st *nodeState) error {
	cfg := st.cfg
	v, err := jwtauth.New(cfg.Auth.JWT)
	if err != nil {
		return err
	}
	store, err := n.g.idempotencyStore(st.region, cfg)
	if err != nil {
		return err
	}
	st.verifier = v
	st.money = &money.Deps{
		Log: n.log, Config: cfg, Directory: st.directory, Store: store, Degradation: n.degradation(cfg),
		MaxResponse: int(st.region.Idempotency.MaxResponseBytes), DefaultDomain: st.region.DefaultDomain,
		DomainHeader: cfg.Auth.JWT.DomainHeader,
		Outcomes:     n.g.metrics.moneyOutcomes.MustCurryWith(prometheus.Labels{"region": n.region, "node": n.name}),
	}
	return nil
}

// degradation is the node's, started on first use; a state's settings
// reach it when the state is installed.
func (n *Node) degradation(cfg *configs.Config) *money.Degradation {
	n.degradeOnce.Do(func() {
		n.degrade = money.NewDegradation(cfg.Ledger.Degradation, money.DegradationDeps{
			Region: n.region, Node: n.name, Log: n.log, Audit: n.g.audit,
			Degraded: n.g.metrics.degraded.MustCurryWith(prometheus.Labels{"region": n.region, "node": n.name}),
			Lookup: func(domain string) *ledger.Designation {
				if st := n.state.Load(); st != nil {
					return st.directory.Lookup(domain)
				}
				return nil
			},
		})
	})
	return n.degrade
}

// close releases what a state owns (its probes and certificate managers).
func (st *nodeState) close() {
	if st.checker != nil {
		st.checker.Close()
	}
	for _, p := range st.poolList {
		p.Close()
	}
	if st.directory != nil {
		st.directory.Close()
	}
	for _, r := range st.router.routes {
		if c, ok := r.handler.(interface{ Close() }); ok {
			c.Close()
		}
	}
	for _, ls := range st.listeners {
		if ls.certs != nil {
			ls.certs.Close()
		}
	}
	if st.adminTLS != nil {
		st.adminTLS.Close()
	}
	if st.pusher != nil {
		st.pusher.Close()
	}
	st.held.Release()
}

func hstsValue(h configs.HSTS) string {
	v := "max-age=" + strconv.FormatInt(int64(h.MaxAge.D()/time.Second), 10)
	if h.IncludeSubdomains {
		v += "; includeSubDomains"
	}
	if h.Preload {
		v += "; preload"
	}
	return v
}

// install makes st the node's state: listeners that appeared are bound,
// those that disappeared are shut down gracefully, member health is carried
// over, and the old state's probes stop.
func (n *Node) install(st *nodeState) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	old := n.state.Load()
	if old != nil {
		for _, p := range st.poolList {
			if op := old.pools[p.Name]; op != nil {
				p.Inherit(op)
			}
		}
	}
	// Bind new listeners before anything changes, so a bind failure leaves
	// the old state serving.
	var fresh []*edgeListener
	for _, lc := range st.node.Listeners {
		cur := n.listeners[lc.Name]
		if cur != nil && cur.address == lc.Address && cur.tls == (lc.TLS.Mode != "off") {
			continue
		}
		el, err := n.bind(lc)
		if err != nil {
			for _, f := range fresh {
				f.ln.Close()
			}
			return err
		}
		fresh = append(fresh, el)
	}
	// HTTP/3's UDP sockets too, for listeners that turn it on.
	h3on, err := n.bindH3s(st, fresh)
	if err != nil {
		for _, f := range fresh {
			f.ln.Close()
		}
		return err
	}
	if old != nil {
		st.directory.Inherit(old.directory)
	}
	st.directory.Start(context.Background())
	n.state.Store(st)
	// Route handlers that drive something living longer than a state (the
	// stream server) take their new settings now, not while a reload that
	// may still be rejected builds.
	for _, r := range st.router.routes {
		if h, ok := r.handler.(interface{ Installed() }); ok {
			h.Installed()
		}
	}
	n.degradation(st.cfg).Configure(st.cfg.Ledger.Degradation)
	st.checker.Start()
	for _, el := range fresh {
		if cur := n.listeners[el.name]; cur != nil {
			go cur.shutdown(context.Background(), st.cfg.Lifecycle.ShutdownTimeout.D())
		}
		n.listeners[el.name] = el
		el.start(st.listeners[el.name].cfg)
	}
	for name, el := range n.listeners {
		if _, ok := st.listeners[name]; !ok {
			delete(n.listeners, name)
			go el.shutdown(context.Background(), st.cfg.Lifecycle.ShutdownTimeout.D())
		}
	}
	n.startH3s(st, h3on)
	if old != nil {
		old.close()
	}
	return nil
}

func (n *Node) bind(lc configs.Listener) (*edgeListener, error) {
	tcp, err := net.Listen("tcp", lc.Address)
	if err != nil {
		return nil, fmt.Errorf("listener %s: %w", lc.Name, err)
	}
	el := &edgeListener{node: n, name: lc.Name, address: lc.Address, tls: lc.TLS.Mode != "off", done: make(chan struct{})}
	// Lingering close is below the cap and TLS (see lingerOnClose);
	// connections over their address's cap are closed before the TLS
	// handshake, so they cost no handshake.
	el.conns = newConnCap(&lingerListener{Listener: tcp}, el)
	var ln net.Listener = el.conns
	if el.tls {
		ln = tlsListener{Listener: ln, cfg: &tls.Config{
			MinVersion: tls.VersionTLS12,
			// Certificates follow reloads: each handshake asks the current state.
			GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
				ls := n.state.Load().listeners[el.name]
				if ls == nil || ls.certs == nil {
					return nil, fmt.Errorf("listener %s has no certificates", el.name)
				}
				return ls.serverTLS(), nil
			},
		}}
	}
	el.ln = ln
	return el, nil
}

func (el *edgeListener) start(lc configs.Listener) {
	lim := lc.Limits
	el.writeTimeout = lim.WriteTimeout.D()
	el.srv = &fasthttp.Server{
		Handler:               el.serve,
		HeaderReceived:        el.headerReceived,
		ErrorHandler:          el.onError,
		Name:                  "hedge",
		ReadTimeout:           lim.ReadTimeout.D(),
		WriteTimeout:          lim.WriteTimeout.D(),
		IdleTimeout:           lim.IdleTimeout.D(),
		MaxRequestBodySize:    el.node.maxBody(),
		ReadBufferSize:        int(lim.MaxHeaderBytes),
		Concurrency:           lim.MaxConns,
		NoDefaultServerHeader: true,
		// Multipart bodies go to the rule engine and the upstream as the
		// client sent them; fasthttp's pre-parsing would rebuild them and
		// drop the parts' headers.
		DisablePreParseMultipartForm:  true,
		NoDefaultContentType:          true,
		CloseOnShutdown:               true,
		DisableHeaderNamesNormalizing: false,
		// Typed errors for framing refusals (onError), and no request
		// bytes in error messages, which may carry credentials.
		SecureErrorLogMessage: true,
		Logger:                fasthttpLogger{el.node.log},
	}
	if el.tls {
		// Always registered: the ALPN a state offers decides whether a
		// connection negotiates h2, so a reload turns HTTP/2 on or off.
		el.srv.NextProto(http2.NextProtoTLS, el.serveH2)
	}
	go func() {
		defer close(el.done)
		el.srv.Serve(el.ln)
	}()
}

// shutdown stops accepting and waits up to timeout for in-flight requests.
func (el *edgeListener) shutdown(ctx context.Context, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	h3done := make(chan struct{})
	go func() {
		defer close(h3done)
		if h := el.h3.Load(); h != nil {
			h.shutdown(ctx) // GOAWAY, then requests finish
		}
	}()
	defer func() { <-h3done }()
	el.h2.goAway(ctx) // HTTP/2 connections finish their streams, then close
	if el.srv != nil {
		el.srv.ShutdownWithContext(ctx)
		// A Serve that had not started when Shutdown ran does not know it
		// was shut down: closing its listener ends it (a failed Start
		// shuts listeners down at once).
		_ = el.ln.Close()
		select {
		case <-el.done:
		case <-ctx.Done():
		}
	} else {
		el.ln.Close()
	}
}

// maxBody is the largest body any route of the node accepts; routes check
// their own smaller limits.
func (n *Node) maxBody() int {
	st := n.state.Load()
	m := 0
	for _, ls := range st.listeners {
		m = max(m, int(ls.cfg.Limits.MaxBodyBytes))
	}
	for _, r := range st.router.routes {
		m = max(m, r.maxBody)
	}
	return m
}

type fasthttpLogger struct{ l *slog.Logger }

func (f fasthttpLogger) Printf(format string, args ...any) {
	f.l.Debug("http server", "msg", fmt.Sprintf(format, args...))
}

func (n *Node) healthChanged(pool string, c health.Change) {
	to := "down"
	level := slog.LevelWarn
	if c.Up {
		to, level = "up", slog.LevelInfo
	}
	n.log.Log(context.Background(), level, "upstream health changed", "pool", pool, "member", c.Target, "to", to, "reason", c.Reason)
	n.g.metrics.changes.WithLabelValues(n.region, n.name, pool, c.Target, to).Inc()
	n.railSwitch(pool, c)
}

// railSwitch records a failover pool's change of serving member (a payment
// rail moving to its backup and back): a log line and an audit record with
// the health change that caused it.
func (n *Node) railSwitch(pool string, c health.Change) {
	st := n.state.Load()
	if st == nil {
		return
	}
	p := st.pools[pool]
	if p == nil || !p.Failover {
		return
	}
	active := "none"
	if m := p.Pick(nil); m != nil {
		active = m.Name
	}
	n.railMu.Lock()
	if n.activeRail == nil {
		n.activeRail = map[string]string{}
	}
	prev, seen := n.activeRail[pool]
	if !seen {
		prev = p.Members[0].Name // pools start on their primary
	}
	n.activeRail[pool] = active
	n.railMu.Unlock()
	if prev == active {
		return
	}
	reason := fmt.Sprintf("%s went %s: %s", c.Target, map[bool]string{true: "up", false: "down"}[c.Up], c.Reason)
	n.log.Warn("failover pool switched member", "pool", pool, "from", prev, "to", active, "reason", reason)
	n.g.metrics.switches.WithLabelValues(n.region, n.name, pool, active).Inc()
	n.g.audit.Record("pool_switch", map[string]any{"region": n.region, "node": n.name, "pool": pool, "from": prev, "to": active, "reason": reason})
}

// writerChanged reports a new designation: a log line, a metric and an
// audit record.
func (n *Node) writerChanged(old, cur ledger.Designation) {
	level := slog.LevelWarn
	if cur.OK() {
		level = slog.LevelInfo
	}
	n.log.Log(context.Background(), level, "ledger writer designation changed", "domain", cur.Domain,
		"state", cur.State, "writer", cur.Writer.URL, "writer_region", cur.Writer.Region, "epoch", cur.Writer.Epoch,
		"previous_writer", old.Writer.URL, "previous_epoch", old.Writer.Epoch, "source", cur.Source, "reason", cur.Reason)
	n.g.metrics.designations.WithLabelValues(n.region, n.name, cur.Domain, string(cur.State)).Inc()
	if err := n.g.audit.Record("ledger_designation", map[string]any{
		"region": n.region, "node": n.name, "domain": cur.Domain, "state": cur.State, "writer": cur.Writer,
		"previous": old.Writer, "previous_state": old.State, "source": cur.Source, "reason": cur.Reason,
	}); err != nil {
		n.log.Error("audit record failed", "error", err)
	}
}

func (n *Node) countRetry(pool string) {
	n.g.metrics.retries.WithLabelValues(n.region, n.name, pool).Inc()
}

func (n *Node) countUpstreamError(pool, kind string) {
	n.g.metrics.upErrors.WithLabelValues(n.region, n.name, pool, kind).Inc()
}

// Draining reports whether the node is draining.
func (n *Node) Draining() bool { return n.draining.Load() }

// SetDraining turns draining on or off; /healthz follows at once.
func (n *Node) SetDraining(on bool, reason string) {
	if n.draining.Swap(on) != on {
		n.log.Warn("drain state changed", "draining", on, "reason", reason)
		n.g.announceDrain(n, on, reason)
	}
}

// Health is the node's verdict on whether it can serve, as /healthz says it.
type Health struct {
	Status   string                `json:"status"`
	Region   string                `json:"region"`
	Node     string                `json:"node"`
	Draining bool                  `json:"draining"`
	Pools    map[string]PoolHealth `json:"pools"`
}

// PoolHealth is one pool's part of the verdict.
type PoolHealth struct {
	Healthy  int  `json:"healthy"`
	Members  int  `json:"members"`
	Critical bool `json:"critical"`
}

// Health computes the node's health.
func (n *Node) Health() Health {
	st := n.state.Load()
	h := Health{Status: "ok", Region: n.region, Node: n.name, Draining: n.Draining(), Pools: map[string]PoolHealth{}}
	for _, p := range st.poolList {
		ph := PoolHealth{Healthy: p.Healthy(), Members: len(p.Members), Critical: p.Critical}
		h.Pools[p.Name] = ph
		if ph.Critical && ph.Healthy == 0 {
			h.Status = "unhealthy"
		}
	}
	if h.Draining {
		h.Status = "draining"
	}
	return h
}

func (n *Node) healthz(ctx *fasthttp.RequestCtx, _ *nodeState) {
	h := n.Health()
	body, _ := json.Marshal(h)
	ctx.Response.Header.SetContentType("application/json")
	ctx.Response.Header.Set("Cache-Control", "no-store")
	if h.Status != "ok" {
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
	}
	ctx.SetBody(append(body, '\n'))
}
