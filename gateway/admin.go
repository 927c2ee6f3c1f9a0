package gateway

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"hedge/configs"
	"hedge/dnsfail"
	"hedge/gateway/ledger"
	"hedge/gateway/live"
	"hedge/internal/adminauth"
	"hedge/internal/certs"
	"hedge/internal/health"
	"hedge/internal/problem"
)

// adminServer is a node's admin listener: metrics, status, pprof, drain,
// reload and promotions, each behind the role it needs (internal/adminauth).
// It is net/http, not fasthttp: nothing here is a hot path, and pprof and
// promhttp are net/http handlers.
type adminServer struct {
	srv *http.Server
	ln  net.Listener
}

func (n *Node) startAdmin(st *nodeState) error {
	addr := st.node.Admin.Address
	if addr == "" {
		return nil
	}
	ln, err := adminauth.Listen(addr, st.adminTLS != nil, func() *adminauth.ServerTLS { return n.state.Load().adminTLS })
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	n.adminRoutes(mux)
	srv := &http.Server{Handler: adminauth.Guard(func() *configs.Admin { return &n.state.Load().cfg.Admin }, mux),
		ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(n.log.Handler(), slog.LevelDebug)}
	n.admin = &adminServer{srv: srv, ln: ln}
	go srv.Serve(ln)
	scheme := "http"
	if st.adminTLS != nil {
		scheme = "https"
	}
	n.log.Info("admin listener serving", "address", addr, "scheme", scheme, "client_certificates", st.node.Admin.ClientCA != "")
	return nil
}

// adminRoutes registers every admin endpoint with the role it needs: read
// for what scrapers and dashboards see, operate for what changes how the
// node serves (and pprof, which exposes memory), promote for writer
// promotions.
func (n *Node) adminRoutes(mux *http.ServeMux) {
	read := func(pattern string, h http.Handler) { mux.Handle(pattern, adminauth.Require(configs.RoleRead, h)) }
	operate := func(pattern string, h http.Handler) { mux.Handle(pattern, adminauth.Require(configs.RoleOperate, h)) }
	read("GET /metrics", promhttp.HandlerFor(n.g.metrics.reg, promhttp.HandlerOpts{}))
	read("GET /status", http.HandlerFunc(n.handleStatus))
	read("GET /healthz", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := n.Health()
		if h.Status != "ok" {
			adminauth.WriteJSON(w, http.StatusServiceUnavailable, h)
			return
		}
		adminauth.WriteJSON(w, http.StatusOK, h)
	}))
	operate("POST /admin/drain", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.SetDraining(true, "admin API, "+caller(r))
		adminauth.WriteJSON(w, http.StatusOK, n.Health())
	}))
	operate("DELETE /admin/drain", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.SetDraining(false, "admin API, "+caller(r))
		adminauth.WriteJSON(w, http.StatusOK, n.Health())
	}))
	// The DNS server's routes check their own roles (dnsfail.Routes).
	mux.HandleFunc("/admin/dns/", n.g.dnsAdmin)
	operate("POST /admin/reload", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Minute)
		defer cancel()
		n.log.Info("reload requested", "by", caller(r))
		if err := n.g.Reload(ctx); err != nil {
			detail := err.Error()
			var ce *configs.Errors
			if errors.As(err, &ce) {
				detail = "invalid configuration:\n" + ce.Error()
			}
			adminauth.WriteProblem(w, r, problem.UnprocessableInput, "reload rejected; the running configuration keeps serving: "+detail)
			return
		}
		adminauth.WriteJSON(w, http.StatusOK, map[string]string{"status": "reloaded"})
	}))
	// The learned models hold values players sent and some of their
	// addresses: operate, not read.
	operate("GET /admin/waf/learn", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := n.g.wafCache.Learned()
		if err != nil {
			adminauth.WriteProblem(w, r, problem.Internal, "learned models: "+err.Error())
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	}))
	n.registerPromotionAPI(mux)
	operate("/debug/pprof/", http.HandlerFunc(pprof.Index))
	operate("/debug/pprof/cmdline", http.HandlerFunc(pprof.Cmdline))
	operate("/debug/pprof/profile", http.HandlerFunc(pprof.Profile))
	operate("/debug/pprof/symbol", http.HandlerFunc(pprof.Symbol))
	operate("/debug/pprof/trace", http.HandlerFunc(pprof.Trace))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		adminauth.WriteProblem(w, r, problem.NotFound, "")
	})
}

// caller names who made an admin request, for logs and audit records: the
// token's name (never the token), and the address it came from.
func caller(r *http.Request) string {
	id, _ := adminauth.From(r.Context())
	return "by " + id.Name + " from " + r.RemoteAddr
}

func (a *adminServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	a.srv.Shutdown(ctx)
}

// Status is what GET /status reports about a node.
type Status struct {
	Deployment string           `json:"deployment"`
	Version    string           `json:"version"`
	Region     string           `json:"region"`
	Node       string           `json:"node"`
	Started    time.Time        `json:"started"`
	Health     Health           `json:"health"`
	Listeners  []ListenerStatus `json:"listeners"`
	Pools      []PoolStatus     `json:"pools"`
	Routes     []RouteStatus    `json:"routes"`
	// Ledger is every ledger domain's designated writer and candidates.
	Ledger []ledger.DomainStatus `json:"ledger"`
	// DNS is the authoritative DNS this node serves, if any.
	DNS *dnsfail.Status `json:"dns,omitempty"`
	// Protection is the protective layer: WAF per route, ACLs, limits.
	Protection ProtectionStatus `json:"protection"`
	// Streams is the node's live streams, if it serves any.
	Streams *live.Status `json:"streams,omitempty"`
}

// ListenerStatus describes one edge listener.
type ListenerStatus struct {
	Name         string       `json:"name"`
	Address      string       `json:"address"`
	TLS          string       `json:"tls"`
	Certificates []certs.Info `json:"certificates,omitempty"`
}

// PoolStatus describes one pool and its members' health.
type PoolStatus struct {
	Name     string          `json:"name"`
	Policy   string          `json:"policy"`
	Critical bool            `json:"critical"`
	Healthy  int             `json:"healthy"`
	Members  []health.Status `json:"members"`
}

// RouteStatus describes one route.
type RouteStatus struct {
	Name    string        `json:"name"`
	Kind    string        `json:"kind"`
	Match   configs.Match `json:"match"`
	Pool    string        `json:"pool,omitempty"`
	Rewrite string        `json:"rewrite,omitempty"`
}

// Status reports the node's state.
func (n *Node) Status() Status {
	st := n.state.Load()
	s := Status{
		Deployment: st.cfg.Deployment, Version: n.g.opts.Version, Region: n.region, Node: n.name,
		Started: n.g.started, Health: n.Health(), Ledger: st.directory.Status(),
		DNS: n.g.dnsStatus(n.name),
	}
	s.Protection = n.protectionStatus(st)
	s.Streams = n.live.Status()
	for _, lc := range st.node.Listeners {
		ls := ListenerStatus{Name: lc.Name, Address: lc.Address, TLS: string(lc.TLS.Mode)}
		if l := st.listeners[lc.Name]; l != nil && l.certs != nil {
			ls.Certificates = l.certs.Certificates()
		}
		s.Listeners = append(s.Listeners, ls)
	}
	for _, p := range st.poolList {
		ps := PoolStatus{Name: p.Name, Policy: string(p.Cfg.Policy), Critical: p.Critical, Healthy: p.Healthy()}
		for _, m := range p.Members {
			ps.Members = append(ps.Members, m.Health.Status())
		}
		s.Pools = append(s.Pools, ps)
	}
	for _, rc := range st.cfg.Routes {
		s.Routes = append(s.Routes, RouteStatus{Name: rc.Name, Kind: string(rc.Kind), Match: rc.Match, Pool: rc.Pool, Rewrite: rc.Rewrite})
	}
	return s
}

func (n *Node) handleStatus(w http.ResponseWriter, _ *http.Request) {
	adminauth.WriteJSON(w, http.StatusOK, n.Status())
}
