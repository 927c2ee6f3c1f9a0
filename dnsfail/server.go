package dnsfail

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"hedge/configs"
	"hedge/internal/health"
	"hedge/internal/tick"
)

// Limits of what the server says and accepts.
const (
	// advertisedUDPSize is the EDNS0 payload size hedge offers (the DNS
	// flag day 2020 value, which avoids IP fragmentation).
	advertisedUDPSize = 1232
	// maxCNAMEChain bounds CNAME chasing inside the served zones.
	maxCNAMEChain = 8
)

// Options says where a Server listens and what it reports to.
type Options struct {
	// Node is the node whose dns.address to serve; "" takes the first node
	// of the configuration that has one.
	Node string
	// Address overrides the node's dns.address (tests use 127.0.0.1:0).
	Address string
	Logger  *slog.Logger
	// Registerer receives the metrics; nil makes a private registry.
	Registerer prometheus.Registerer
}

// Server answers DNS queries for the configuration's zones.
type Server struct {
	opts    Options
	log     *slog.Logger
	metrics *metrics
	audit   *auditLog

	st atomic.Pointer[state]

	// mu serialises Start, Reload and Close; it is held while probes stop,
	// so what the probes' callbacks touch is under logMu instead.
	mu      sync.Mutex
	logMu   sync.Mutex
	changes []Change
	drained map[string]string // node → reason, kept across reloads
	udp     *udpServer
	tcp     *dns.Server
	addr    string
	closed  bool
	stop    chan struct{} // ends the signatures' refresh
	bg      sync.WaitGroup
}

// state is everything a query reads, rebuilt whole on reload.
type state struct {
	cfg      *configs.Config
	zones    zoneSet
	services []*service
	byName   map[string]*service
	checker  *health.Checker
	rrl      *rrl
	fast     *fastTable
	// readOn lets the UDP loops read on after a batch (dns.udp_read_on).
	readOn bool
}

// Change is one change of a service's answers, for /status.
type Change struct {
	At       time.Time `json:"at"`
	Service  string    `json:"service"`
	From     string    `json:"from"`
	To       string    `json:"to"`
	Reason   string    `json:"reason"`
	FailOpen bool      `json:"fail_open"`
}

const keepChanges = 100

// New prepares a server for cfg; Start binds and serves.
func New(cfg *configs.Config, opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Address == "" {
		opts.Address = Address(cfg, opts.Node)
	}
	if opts.Address == "" {
		return nil, fmt.Errorf("dnsfail: no node of %s has dns.address", cfg.File)
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	s := &Server{opts: opts, log: opts.Logger.With("component", "dns"), drained: map[string]string{}}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	st, err := s.build(cfg, nil)
	if err != nil {
		return nil, err
	}
	s.st.Store(st)
	s.audit = newAuditLog(auditPath(cfg))
	return s, nil
}

// Address is the DNS address of node, or of the first node that has one.
func Address(cfg *configs.Config, node string) string {
	if n := servingNode(cfg, node); n != nil {
		return n.DNS.Address
	}
	return ""
}

// ServingNode names node if it serves DNS, or else (node "") the first node
// that does; "" when none.
func ServingNode(cfg *configs.Config, node string) string {
	if n := servingNode(cfg, node); n != nil {
		return n.Name
	}
	return ""
}

func servingNode(cfg *configs.Config, node string) *configs.Node {
	for i := range cfg.Regions {
		for j := range cfg.Regions[i].Nodes {
			n := &cfg.Regions[i].Nodes[j]
			if (node == "" || n.Name == node) && n.DNS.Address != "" {
				return n
			}
		}
	}
	return nil
}

// build makes a complete state from cfg; health of targets that existed in
// old is carried over.
func (s *Server) build(cfg *configs.Config, old *state) (*state, error) {
	st := &state{cfg: cfg, byName: map[string]*service{}}
	oldTargets := map[string]*health.Target{}
	if old != nil {
		for _, svc := range old.services {
			for _, e := range svc.edges {
				oldTargets[e.target.Name] = e.target
			}
		}
	}
	drained := map[string]string{}
	s.logMu.Lock()
	for k, v := range s.drained {
		drained[k] = v
	}
	s.logMu.Unlock()
	var targets []*health.Target
	for i, zc := range cfg.DNS.Zones {
		z, err := buildZone(zc)
		if err != nil {
			return nil, fmt.Errorf("dns.zones[%d]: %w", i, err)
		}
		if zc.DNSSEC.Enabled {
			if z.signer, err = newSigner(cfg, zc, z); err != nil {
				return nil, fmt.Errorf("dns.zones[%d].dnssec: %w", i, err)
			}
		}
		st.zones = append(st.zones, z)
		for j, sc := range zc.Services {
			name, _ := configs.DNSOwner(sc.Name, z.apex)
			regions := sc.Regions
			if len(regions) == 0 {
				for _, r := range cfg.Regions {
					regions = append(regions, r.Name)
				}
			}
			svc := &service{name: name, kind: sc.Policy, regions: regions, ttl: sc.TTL.D(),
				policy: newPolicy(sc.Policy, cfg.DNS.Nearest, regions), overrides: map[string]Override{}}
			if old != nil {
				if o := old.byName[name]; o != nil {
					o.mu.Lock()
					for r, ov := range o.overrides {
						svc.overrides[r] = ov
					}
					svc.last = o.last
					o.mu.Unlock()
				}
			}
			for _, rname := range regions {
				reg := cfg.Region(rname)
				for _, n := range reg.Nodes {
					addrs := edgeAddrs(n)
					spec, err := probeSpec(cfg, n, addrs, name, sc.Health)
					if err != nil {
						return nil, fmt.Errorf("dns.zones[%d].services[%d]: %w", i, j, err)
					}
					t := health.NewTarget(name+"/"+n.Name, spec, func(c health.Change) { s.healthChanged(svc, c) })
					if ot := oldTargets[t.Name]; ot != nil {
						t.Inherit(ot)
					} else if reason, ok := drained[n.Name]; ok {
						t.Set(false, reason)
					}
					svc.edges = append(svc.edges, &edge{region: rname, node: n.Name, addrs: addrs, target: t})
					targets = append(targets, t)
				}
			}
			svc.view.Store(svc.rebuild())
			svc.st = st
			st.services = append(st.services, svc)
			st.byName[name] = svc
			z.node(name).service = svc
		}
	}
	st.checker = health.NewChecker(targets...)
	st.rrl = newRRL(cfg.DNS.RRL)
	st.readOn = cfg.DNS.UDPReadOn == nil || *cfg.DNS.UDPReadOn
	st.fast = buildFast(st)
	return st, nil
}

// Start binds UDP and TCP on the same address and serves until Close.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	conns, ln, err := listen(s.opts.Address, udpSockets())
	if err != nil {
		return err
	}
	s.addr = conns[0].LocalAddr().String()
	s.udp = &udpServer{s: s, conns: conns}
	s.udp.start()
	s.tcp = &dns.Server{Listener: ln, Handler: s, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second,
		IdleTimeout: func() time.Duration { return 10 * time.Second }, MaxTCPQueries: 1000,
		MsgAcceptFunc: acceptQueries, DecorateReader: func(r dns.Reader) dns.Reader { return tcpReader{r} }}
	ready := make(chan struct{})
	s.tcp.NotifyStartedFunc = func() { close(ready) }
	go func() {
		if err := s.tcp.ActivateAndServe(); err != nil {
			s.log.Error("dns server stopped", "error", err)
		}
	}()
	<-ready
	s.stop = make(chan struct{})
	s.bg.Add(1)
	go s.refreshSignatures()
	s.st.Load().checker.Start()
	s.log.Info("dns serving", "address", s.addr, "zones", len(s.st.Load().zones))
	return nil
}

// listen binds UDP and TCP on one address. With port 0 the kernel picks
// the UDP port and TCP takes the same, retrying if that one is taken.
func listen(addr string, sockets int) ([]*net.UDPConn, net.Listener, error) {
	_, port, _ := net.SplitHostPort(addr)
	for attempt := 0; ; attempt++ {
		conns, err := listenUDP(addr, sockets)
		if err != nil {
			return nil, nil, fmt.Errorf("dns: %w", err)
		}
		ln, err := net.Listen("tcp", conns[0].LocalAddr().String())
		if err == nil {
			return conns, ln, nil
		}
		for _, c := range conns {
			c.Close()
		}
		if port != "0" || attempt == 20 {
			return nil, nil, fmt.Errorf("dns: %w", err)
		}
	}
}

// Addr is the bound address (UDP and TCP), after Start.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Reload swaps in a state built from cfg; health and overrides carry over.
// The listening address does not change.
func (s *Server) Reload(cfg *configs.Config) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.st.Load()
	st, err := s.build(cfg, old)
	if err != nil {
		return err
	}
	if a := Address(cfg, s.opts.Node); a != "" && a != s.opts.Address {
		s.log.Warn("dns.address changed: restart to listen on the new address", "serving", s.opts.Address, "configured", a)
	}
	s.st.Store(st)
	if s.udp != nil && !s.closed {
		st.checker.Start()
	}
	old.checker.Close()
	return nil
}

// Close stops serving and probing; safe to call twice.
func (s *Server) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if s.udp != nil {
		s.udp.close()
	}
	if s.tcp != nil {
		s.tcp.ShutdownContext(ctx)
	}
	if s.stop != nil {
		close(s.stop)
		s.bg.Wait()
	}
	s.st.Load().checker.Close()
	s.audit.close()
}

// refreshSignatures keeps the fast path's signed replies fresh: each is
// prepared again when half of its signatures' validity has passed.
func (s *Server) refreshSignatures() {
	defer s.bg.Done()
	tick.Every(s.stop, time.Minute, func(now time.Time) {
		st := s.st.Load()
		st.fast.refreshSigned(st, now)
	})
}

// healthChanged recomputes a service's answers after one of its edges
// changed, and records the change when the answers differ.
func (s *Server) healthChanged(svc *service, c health.Change) {
	s.metrics.edgeUp(svc.name, c.Target, c.Up)
	svc.mu.Lock()
	defer svc.mu.Unlock()
	to := "down"
	if c.Up {
		to = "up"
	}
	s.applyLocked(svc, fmt.Sprintf("edge %s %s: %s", c.Target, to, c.Reason))
}

// applyLocked swaps in a freshly computed view; svc.mu is held.
func (s *Server) applyLocked(svc *service, reason string) {
	old := svc.view.Load()
	nv := svc.rebuild()
	svc.view.Store(nv)
	s.metrics.failOpen(svc.name, nv.failOpen)
	if old != nil && old.describe() == nv.describe() {
		return
	}
	svc.refreshFast()
	ch := Change{At: time.Now(), Service: svc.name, To: nv.describe(), Reason: reason, FailOpen: nv.failOpen}
	if old != nil {
		ch.From = old.describe()
	}
	svc.last = ch
	level := slog.LevelInfo
	if nv.failOpen {
		level = slog.LevelError
	}
	s.log.Log(context.Background(), level, "dns answer changed", "service", svc.name, "from", ch.From, "to", ch.To, "reason", reason, "fail_open", nv.failOpen)
	s.metrics.changes.WithLabelValues(svc.name).Inc()
	s.logMu.Lock()
	s.changes = append(s.changes, ch)
	if len(s.changes) > keepChanges {
		s.changes = s.changes[len(s.changes)-keepChanges:]
	}
	s.logMu.Unlock()
}
