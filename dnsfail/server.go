package dnsfail

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"hedge/configs"
	"hedge/internal/health"
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
		IdleTimeout: func() time.Duration { return 10 * time.Second }, MaxTCPQueries: 1000}
	ready := make(chan struct{})
	s.tcp.NotifyStartedFunc = func() { close(ready) }
	go func() {
		if err := s.tcp.ActivateAndServe(); err != nil {
			s.log.Error("dns server stopped", "error", err)
		}
	}()
	<-ready
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
	s.st.Load().checker.Close()
	s.audit.close()
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

// ServeDNS answers one query (dns.Handler).
func (s *Server) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	st := s.st.Load()
	var client netip.Addr
	udp := false
	switch a := w.RemoteAddr().(type) {
	case *net.UDPAddr:
		client, udp = addrOf(a.IP), true
	case *net.TCPAddr:
		client = addrOf(a.IP)
	}
	m, size := st.answer(r, client, udp)
	if udp && st.rrl != nil {
		switch st.rrl.check(client, time.Now()) {
		case rrlDrop:
			s.metrics.rrl.WithLabelValues("drop").Inc()
			return
		case rrlSlip:
			s.metrics.rrl.WithLabelValues("slip").Inc()
			m.Answer, m.Ns, m.Truncated = nil, nil, true
			m.Extra = onlyOPT(m.Extra)
		}
	}
	m.Compress = true
	if udp && m.Len() > size {
		m.Truncate(size)
	}
	s.metrics.query(udp, m.Rcode)
	if err := w.WriteMsg(m); err != nil {
		s.log.Debug("dns write failed", "error", err)
	}
}

func addrOf(ip net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(ip)
	return a.Unmap()
}

func onlyOPT(extra []dns.RR) []dns.RR {
	for _, rr := range extra {
		if rr.Header().Rrtype == dns.TypeOPT {
			return []dns.RR{rr}
		}
	}
	return nil
}

// answer builds the reply to r and the UDP payload size it must fit.
func (st *state) answer(r *dns.Msg, client netip.Addr, udp bool) (*dns.Msg, int) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.RecursionDesired = r.RecursionDesired
	m.CheckingDisabled = r.CheckingDisabled
	size := dns.MinMsgSize
	if r.Opcode != dns.OpcodeQuery {
		m.Rcode = dns.RcodeNotImplemented
		return m, size
	}
	if len(r.Question) != 1 || len(r.Answer) != 0 || len(r.Ns) != 0 {
		m.Rcode = dns.RcodeFormatError
		return m, size
	}
	var opt *dns.OPT
	for _, rr := range r.Extra {
		if o, ok := rr.(*dns.OPT); ok {
			if opt != nil || o.Hdr.Name != "." {
				m.Rcode = dns.RcodeFormatError
				return m, size
			}
			opt = o
		}
	}
	var ecs *dns.EDNS0_SUBNET
	if opt != nil {
		ro := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
		ro.SetUDPSize(advertisedUDPSize)
		if opt.Do() {
			ro.SetDo()
		}
		m.Extra = append(m.Extra, ro)
		if opt.Version() != 0 {
			m.Rcode = dns.RcodeBadVers
			return m, size
		}
		size = min(max(int(opt.UDPSize()), dns.MinMsgSize), dns.MaxMsgSize)
		for _, o := range opt.Option {
			if e, ok := o.(*dns.EDNS0_SUBNET); ok {
				if !validECS(e) {
					m.Rcode = dns.RcodeFormatError
					return m, size
				}
				ecs = e
			}
		}
	}
	q := r.Question[0]
	switch {
	case q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY:
		m.Rcode = dns.RcodeRefused
		return m, size
	case q.Qtype == dns.TypeOPT || q.Qtype == dns.TypeTSIG || q.Qtype == dns.TypeTKEY:
		m.Rcode = dns.RcodeFormatError
		return m, size
	case q.Qtype == dns.TypeAXFR || q.Qtype == dns.TypeIXFR:
		m.Rcode = dns.RcodeRefused
		return m, size
	case q.Qtype == dns.TypeMAILA || q.Qtype == dns.TypeMAILB:
		m.Rcode = dns.RcodeNotImplemented
		return m, size
	}
	lname := strings.ToLower(q.Name)
	z := st.zones.find(lname)
	if z == nil {
		m.Rcode = dns.RcodeRefused
		return m, size
	}
	m.Authoritative = true
	where := client
	if ecs != nil && ecs.SourceNetmask > 0 {
		where, _ = netip.AddrFromSlice(ecs.Address)
		where = where.Unmap()
	}
	scope := st.resolve(m, z, q.Name, lname, q.Qtype, where)
	if ecs != nil {
		e := *ecs
		e.SourceScope = 0
		if scope != 0 && ecs.SourceNetmask > 0 {
			e.SourceScope = uint8(scope)
			if scope < 0 {
				e.SourceScope = ecs.SourceNetmask
			}
		}
		ro := m.Extra[len(m.Extra)-1].(*dns.OPT)
		ro.Option = append(ro.Option, &e)
	}
	return m, size
}

// validECS checks an EDNS Client Subnet option of a query (RFC 7871 §7.1.2).
func validECS(e *dns.EDNS0_SUBNET) bool {
	switch {
	case e.SourceScope != 0:
		return false
	case e.Family == 1:
		return e.SourceNetmask <= 32 && len(e.Address.To4()) == net.IPv4len
	case e.Family == 2:
		return e.SourceNetmask <= 128 && len(e.Address) == net.IPv6len
	}
	return false
}

// resolve fills the answer and authority sections for name in z, chasing
// CNAMEs inside the served zones, and returns the ECS scope the answer
// depends on.
func (st *state) resolve(m *dns.Msg, z *zone, name, lname string, qtype uint16, client netip.Addr) int {
	scope := 0
	for range maxCNAMEChain {
		o := z.names[lname]
		if o == nil {
			m.Rcode = dns.RcodeNameError
			m.Ns = append(m.Ns, negativeSOA(z))
			return scope
		}
		if cn := o.rrset(dns.TypeCNAME); len(cn) > 0 && qtype != dns.TypeCNAME {
			m.Answer = append(m.Answer, rename(cn[0], name))
			target := cn[0].(*dns.CNAME).Target
			name, lname = target, strings.ToLower(target)
			if z = st.zones.find(lname); z == nil {
				return scope
			}
			continue
		}
		rrs, sc := o.lookup(name, qtype, client)
		scope = sc
		if len(rrs) == 0 {
			m.Ns = append(m.Ns, negativeSOA(z))
			return scope
		}
		m.Answer = append(m.Answer, rrs...)
		if qtype == dns.TypeNS {
			m.Extra = append(glue(st, rrs), m.Extra...)
		}
		return scope
	}
	return scope
}

// lookup returns the records of type qtype at o, named as the query wrote
// them. ANY gets one RRset (RFC 8482).
func (o *owner) lookup(name string, qtype uint16, client netip.Addr) ([]dns.RR, int) {
	if o.service != nil && (qtype == dns.TypeA || qtype == dns.TypeAAAA || qtype == dns.TypeANY) {
		return o.service.records(name, qtype, client)
	}
	if qtype == dns.TypeANY {
		if len(o.sets) == 0 {
			return nil, 0
		}
		qtype = o.sets[0].t
	}
	set := o.rrset(qtype)
	out := make([]dns.RR, len(set))
	for i, rr := range set {
		out[i] = rename(rr, name)
	}
	return out, 0
}

// records are a service's A or AAAA answer for a client.
func (s *service) records(name string, qtype uint16, client netip.Addr) ([]dns.RR, int) {
	addrs, scope := s.policy.pick(s.view.Load(), client)
	ttl := s.ttlNow()
	var out []dns.RR
	for _, a := range addrs {
		hdr := dns.RR_Header{Name: name, Class: dns.ClassINET, Ttl: ttl}
		switch {
		case a.Is4() && qtype != dns.TypeAAAA:
			hdr.Rrtype = dns.TypeA
			out = append(out, &dns.A{Hdr: hdr, A: a.AsSlice()})
		case a.Is6() && qtype == dns.TypeAAAA:
			hdr.Rrtype = dns.TypeAAAA
			out = append(out, &dns.AAAA{Hdr: hdr, AAAA: a.AsSlice()})
		}
	}
	return out, scope
}

func rename(rr dns.RR, name string) dns.RR {
	c := dns.Copy(rr)
	c.Header().Name = name
	return c
}

// negativeSOA is the zone's SOA as the authority of a negative answer, with
// the negative-caching TTL (RFC 2308 §3).
func negativeSOA(z *zone) dns.RR {
	soa := dns.Copy(z.soa)
	soa.Header().Ttl = z.negTTL
	return soa
}

// glue adds the in-zone addresses of name servers.
func glue(st *state, nsset []dns.RR) []dns.RR {
	var out []dns.RR
	for _, rr := range nsset {
		ns, ok := rr.(*dns.NS)
		if !ok {
			continue
		}
		target := strings.ToLower(ns.Ns)
		z := st.zones.find(target)
		if z == nil {
			continue
		}
		if o := z.names[target]; o != nil {
			out = append(out, o.rrset(dns.TypeA)...)
			out = append(out, o.rrset(dns.TypeAAAA)...)
		}
	}
	return out
}
