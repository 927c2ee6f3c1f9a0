// Package gateway is hedge's HTTP edge: listeners, TLS, routing, the proxy
// route kind over upstream pools, the protective layer's wiring, the admin
// API and metrics. A Gateway runs one or more edge nodes of a deployment in
// one process (one in production; all of them in the demo), and owns all
// they run.
//
// The request path is handler.go: each request is matched to a route, the
// route's waf.Guard returns its verdict, the route's handler (a route.Handler:
// proxy here, ledger in package money, stream in package live) serves it,
// and every refusal is written in one place, answer. What the edge sends
// upstream is package contract.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"hedge/configs"
	"hedge/gateway/idempotency"
	"hedge/internal/audit"
	"hedge/internal/httpx"
	"hedge/waf"
)

// Options says which nodes a Gateway plays and how it re-reads its
// configuration.
type Options struct {
	// Region and Node pick the node to run; both empty runs every node of
	// the configuration in this process.
	Region, Node string
	// Reload reads the configuration again (SIGHUP, POST /admin/reload).
	// Nil disables reloading.
	Reload func() (*configs.Config, error)
	Logger *slog.Logger
	// Version is reported by /status.
	Version string
}

// Gateway is one hedge process.
type Gateway struct {
	opts    Options
	log     *slog.Logger
	metrics *metrics
	ids     *httpx.IDGen
	access  *accessLog
	started time.Time

	audit      *audit.Log
	wafCache   *waf.Cache    // rule engines, schemas and rate limiters, kept across reloads
	wafAudit   *waf.AuditLog // what the protective layer stopped or saw
	promotions promotions
	stores     map[string]*regionStore // idempotency stores by region, kept across reloads
	storesMu   sync.Mutex

	mu     sync.Mutex // serialises Reload and Shutdown
	cfg    *configs.Config
	nodes  []*Node
	closer []func() error
	dns    dnsHolder // the authoritative DNS server, when a node here serves one (dns.go)
}

// New prepares a Gateway for cfg; Start binds and serves.
func New(cfg *configs.Config, opts Options) (*Gateway, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	g := &Gateway{opts: opts, log: opts.Logger, metrics: newMetrics(), ids: httpx.NewIDGen(), cfg: cfg, stores: map[string]*regionStore{}, wafCache: waf.NewCache()}
	for _, r := range cfg.Regions {
		if opts.Region != "" && r.Name != opts.Region {
			continue
		}
		for _, nc := range r.Nodes {
			if opts.Node != "" && nc.Name != opts.Node {
				continue
			}
			n := &Node{g: g, region: r.Name, name: nc.Name, listeners: map[string]*edgeListener{},
				log: g.log.With("region", r.Name, "node", nc.Name)}
			n.unrouted = g.metrics.route(r.Name, nc.Name, "-")
			g.nodes = append(g.nodes, n)
			g.metrics.addNode(n)
		}
	}
	if len(g.nodes) == 0 {
		return nil, fmt.Errorf("no node matches region %q node %q in %s", opts.Region, opts.Node, cfg.File)
	}
	if opts.Region != "" && opts.Node == "" && len(g.nodes) > 1 {
		return nil, fmt.Errorf("region %q has %d nodes: name one with -node", opts.Region, len(g.nodes))
	}
	return g, nil
}

// Nodes lists the nodes this process runs.
func (g *Gateway) Nodes() []*Node { return g.nodes }

// Start obtains certificates, binds every listener and starts health
// checks. On error everything started is stopped again.
func (g *Gateway) Start(ctx context.Context) (err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.started = time.Now()
	defer func() {
		if err != nil {
			g.closeAll()
		}
	}()
	if *g.cfg.Log.Access.Enabled {
		a, err := openAccessLog(g.cfg.Log.Access.Path, g.cfg.Log.Access.FlushInterval.D())
		if err != nil {
			return fmt.Errorf("access log: %w", err)
		}
		g.access = a
		g.closer = append(g.closer, a.Close)
	}
	a, err := audit.Open(filepath.Join(g.cfg.DataDir, "audit"))
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	g.audit = a
	g.closer = append(g.closer, a.Close)
	wa, err := waf.OpenAuditLog(wafAuditPath(g.cfg))
	if err != nil {
		return err
	}
	g.wafAudit = wa
	g.closer = append(g.closer, wa.Close)
	// Routes in learn mode keep their models here, written periodically
	// and when the cache closes (on stop).
	if err := g.wafCache.Learn(waf.LearnFile(g.cfg.DataDir), waf.LearnSaveInterval); err != nil {
		return err
	}
	g.checkFileLimit(g.cfg)
	for _, n := range g.nodes {
		st, err := n.buildState(ctx, g.cfg)
		if err != nil {
			return fmt.Errorf("node %s: %w", n.name, err)
		}
		if err := n.install(st); err != nil {
			st.close()
			return fmt.Errorf("node %s: %w", n.name, err)
		}
		if err := n.startAdmin(st); err != nil {
			return fmt.Errorf("node %s: %w", n.name, err)
		}
		for _, l := range st.node.Listeners {
			n.log.Info("edge listener serving", "listener", l.Name, "address", l.Address, "tls", l.TLS.Mode)
		}
	}
	if err := g.startDNS(); err != nil {
		return fmt.Errorf("dns: %w", err)
	}
	return nil
}

// Reload re-reads the configuration, builds every node's new state
// completely, and only then swaps them in. An invalid configuration, or one
// whose certificates or listeners cannot be set up, is rejected and the
// running state keeps serving. Established connections are not touched.
func (g *Gateway) Reload(ctx context.Context) error {
	if g.opts.Reload == nil {
		return errors.New("this configuration cannot be reloaded")
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	err := g.reload(ctx)
	result := "ok"
	if err != nil {
		result = "rejected"
		g.log.Error("configuration reload rejected; the running configuration keeps serving", "error", err)
	} else {
		g.log.Info("configuration reloaded")
	}
	g.metrics.reloads.WithLabelValues(result).Inc()
	return err
}

func (g *Gateway) reload(ctx context.Context) error {
	cfg, err := g.opts.Reload()
	if err != nil {
		return err
	}
	states := make([]*nodeState, len(g.nodes))
	for i, n := range g.nodes {
		st, err := n.buildState(ctx, cfg)
		if err != nil {
			for _, s := range states[:i] {
				s.close()
			}
			return fmt.Errorf("node %s: %w", n.name, err)
		}
		states[i] = st
	}
	if err := g.reloadDNS(cfg); err != nil {
		for _, s := range states {
			s.close()
		}
		return fmt.Errorf("dns: %w", err)
	}
	for i, n := range g.nodes {
		if err := n.install(states[i]); err != nil {
			for _, s := range states[i:] {
				s.close()
			}
			return fmt.Errorf("node %s: %w", n.name, err)
		}
	}
	g.cfg = cfg
	return nil
}

// Drain turns every node's /healthz red, so DNS and load balancers move
// players away, while requests are still served.
func (g *Gateway) Drain(reason string) {
	for _, n := range g.nodes {
		n.SetDraining(true, reason)
	}
}

// Shutdown drains, waits the drain period, closes the listeners and lets
// in-flight requests finish until the shutdown timeout.
func (g *Gateway) Shutdown(ctx context.Context) {
	g.Drain("shutdown")
	g.mu.Lock()
	lc := g.cfg.Lifecycle
	g.mu.Unlock()
	g.log.Info("draining before shutdown", "drain_period", lc.DrainPeriod.D())
	select {
	case <-time.After(lc.DrainPeriod.D()):
	case <-ctx.Done():
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	var wg sync.WaitGroup
	for _, n := range g.nodes {
		n.mu.Lock()
		for _, el := range n.listeners {
			wg.Add(1)
			go func() {
				defer wg.Done()
				el.shutdown(ctx, lc.ShutdownTimeout.D())
			}()
		}
		n.mu.Unlock()
	}
	wg.Wait()
	g.closeAll()
	g.log.Info("shut down")
}

// closeAll stops everything still running; used by Shutdown and failed Starts.
func (g *Gateway) closeAll() {
	for _, n := range g.nodes {
		n.mu.Lock()
		for name, el := range n.listeners {
			el.shutdown(context.Background(), time.Second)
			delete(n.listeners, name)
		}
		if n.admin != nil {
			n.admin.close()
		}
		if n.degrade != nil {
			n.degrade.Close()
		}
		n.mu.Unlock()
		if st := n.state.Load(); st != nil {
			st.close()
		}
		_ = n.live.Close()
	}
	g.wafCache.Close()
	for _, rs := range g.stores {
		rs.store.Close()
	}
	g.stores = map[string]*regionStore{}
	for i := len(g.closer) - 1; i >= 0; i-- {
		g.closer[i]()
	}
	g.closer = nil
}

// regionStore is a region's idempotency store and the settings it was made
// with; a reload keeps it (and its records) unless the settings change.
type regionStore struct {
	settings configs.Idempotency
	inflight time.Duration
	store    idempotency.Store
}

// idempotencyStore returns the region's store, made on first use.
func (g *Gateway) idempotencyStore(region *configs.Region, cfg *configs.Config) (idempotency.Store, error) {
	// An in-flight claim lives a little longer than the slowest money call.
	inflight := 30 * time.Second
	for _, r := range cfg.Routes {
		if r.Kind == "ledger" {
			inflight = max(inflight, 2*r.Money.Timeout.D()+10*time.Second)
		}
	}
	g.storesMu.Lock()
	defer g.storesMu.Unlock()
	if rs := g.stores[region.Name]; rs != nil {
		if rs.settings == region.Idempotency && rs.inflight == inflight {
			return rs.store, nil
		}
		old := rs.store
		// Calls still running on the previous state finish with it.
		time.AfterFunc(cfg.Lifecycle.ShutdownTimeout.D(), func() { old.Close() })
	}
	id := region.Idempotency
	var s idempotency.Store
	switch id.Store {
	case "redis":
		opts := &redis.Options{Addr: id.Redis.Address, DB: id.Redis.DB, PoolSize: 64, ReadTimeout: time.Second, WriteTimeout: time.Second}
		if id.Redis.PasswordFile != "" {
			pw, err := os.ReadFile(id.Redis.PasswordFile)
			if err != nil {
				return nil, err
			}
			opts.Password = strings.TrimSpace(string(pw))
		}
		s = idempotency.NewRedis(redis.NewClient(opts), id.Redis.Prefix, id.Retention.D(), inflight, id.Redis.Liveness.D())
	default:
		s = idempotency.NewMemory(id.MaxEntries, id.Retention.D(), inflight)
	}
	g.stores[region.Name] = &regionStore{settings: id, inflight: inflight, store: s}
	return s, nil
}
