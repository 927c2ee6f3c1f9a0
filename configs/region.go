package configs

import (
	"net"
	"net/url"
	"slices"
)

// validateRegions checks every region, its nodes, pools and writers. Node
// names are unique across the deployment: a process is started by one.
func (c *Config) validateRegions(v *validator) {
	regions := map[string]bool{}
	nodeRegion := map[string]string{}
	for i := range c.Regions {
		r := &c.Regions[i]
		v.uniqueName(regions, &r.Name, "region %q is defined twice")
		r.validate(v, c, nodeRegion)
	}
}

func (r *Region) validate(v *validator, c *Config, nodeRegion map[string]string) {
	if len(r.Nodes) == 0 {
		v.bad(&r.Nodes, "at least one node is required")
	}
	v.name(&r.DefaultDomain)
	r.Idempotency.validate(v)
	for j := range r.Nodes {
		n := &r.Nodes[j]
		v.name(&n.Name)
		if other, ok := nodeRegion[n.Name]; ok {
			v.bad(&n.Name, "node %q is already defined in region %q: node names are unique in a deployment", n.Name, other)
		}
		nodeRegion[n.Name] = r.Name
		n.validate(v, &c.Admin)
	}
	pools := map[string]bool{}
	for j := range r.Pools {
		p := &r.Pools[j]
		v.uniqueName(pools, &p.Name, "pool %q is defined twice in region %q", r.Name)
		p.validate(v)
	}
	// Routes are shared by every region: each must find its pool in each.
	for k := range c.Routes {
		rt := &c.Routes[k]
		if rt.Kind == KindProxy && rt.Pool != "" && !pools[rt.Pool] {
			v.bad(&rt.Pool, "pool %q is not defined in region %q", rt.Pool, r.Name)
		}
	}
	for j := range r.Writers {
		w := &r.Writers[j]
		v.name(&w.Domain)
		v.upstreamURL(&w.URL)
		notNegative(v, &w.Epoch)
		w.validateAdminToken(v)
	}
}

func (n *Node) validate(v *validator, admin *Admin) {
	if len(n.Listeners) == 0 {
		v.bad(&n.Listeners, "at least one listener is required")
	}
	addrs := map[string]string{}
	names := map[string]bool{}
	for i := range n.Listeners {
		l := &n.Listeners[i]
		v.uniqueName(names, &l.Name, "listener %q is defined twice on this node")
		v.address(&l.Address)
		if other, ok := addrs[l.Address]; ok {
			v.bad(&l.Address, "%s is already used by listener %q", l.Address, other)
		}
		addrs[l.Address] = l.Name
		l.validate(v)
	}
	n.Admin.validate(v, admin)
}

func (l *Listener) validate(v *validator) {
	l.TLS.validate(v)
	for j := range l.TrustedProxies {
		v.prefix(&l.TrustedProxies[j])
	}
	l.Limits.validate(v)
	if *l.HSTS.Enabled {
		notNegative(v, &l.HSTS.MaxAge)
	}
	l.HTTP2.validate(v)
	if *l.HTTP3.Enabled && l.TLS.Mode == TLSOff {
		v.bad(&l.HTTP3.Enabled, "HTTP/3 needs TLS: set tls.mode, or turn http3 off")
	}
}

// MaxHTTP2Streams bounds http2.max_concurrent_streams: each stream may
// hold a request's headers and body in memory.
const MaxHTTP2Streams = 1000

func (h *HTTP2) validate(v *validator) {
	if !*h.Enabled {
		return
	}
	atLeast(v, &h.MaxConcurrentStreams, 1)
	if h.MaxConcurrentStreams > MaxHTTP2Streams {
		v.bad(&h.MaxConcurrentStreams, "must be at most %d, got %d", MaxHTTP2Streams, h.MaxConcurrentStreams)
	}
}

// validate checks a listener's connection and request limits; its
// argument limits belong to the protective layer (validateProtection).
func (lim *Limits) validate(v *validator) {
	positive(v, &lim.MaxBodyBytes)
	if lim.MaxHeaderBytes < 1024 {
		v.bad(&lim.MaxHeaderBytes, "must be at least 1KiB")
	}
	notNegative(v, &lim.MaxConns)
	atLeast(v, &lim.MaxConnsPerIP, 1)
	positive(v, &lim.ReadTimeout)
	positive(v, &lim.WriteTimeout)
	positive(v, &lim.IdleTimeout)
}

func (t *TLS) validate(v *validator) {
	if t.Mode == "" {
		v.bad(&t.Mode, "required: one of %s", allowed[TLSMode]())
		return
	}
	if !oneOf(v, &t.Mode) {
		return
	}
	for i, n := range t.Names {
		if !validHostPattern(n) && net.ParseIP(n) == nil {
			v.bad(&t.Names[i], "%q is not a host name", n)
		}
	}
	switch t.Mode {
	case TLSACME:
		if len(t.Names) == 0 {
			v.bad(&t.Names, "acme needs at least one name to obtain a certificate for")
		}
		if u, err := url.Parse(t.ACME.Directory); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			v.bad(&t.ACME.Directory, "%q is not an http(s) URL", t.ACME.Directory)
		}
		for i := range t.ACME.Challenges {
			oneOf(v, &t.ACME.Challenges[i])
		}
		if slices.Contains(t.ACME.Challenges, ChallengeHTTP01) {
			v.address(&t.ACME.HTTPAddress)
		}
		if t.ACME.TLSALPNAddress != "" {
			v.address(&t.ACME.TLSALPNAddress)
		}
		v.readableIfSet(&t.ACME.CARoots)
	case TLSInternal:
		if len(t.Names) == 0 {
			v.bad(&t.Names, "internal needs at least one name to issue a certificate for")
		}
		positive(v, &t.Internal.Lifetime)
	case TLSFiles:
		v.requiredFile(&t.Files.Cert, "required with mode files")
		v.requiredFile(&t.Files.Key, "required with mode files")
	}
}

func (p *Pool) validate(v *validator) {
	oneOf(v, &p.Policy)
	if len(p.Members) == 0 {
		v.bad(&p.Members, "at least one member is required")
	}
	seen := map[string]bool{}
	for i := range p.Members {
		m := &p.Members[i]
		v.upstreamURL(&m.URL)
		v.once(seen, &m.Name, "member %q is listed twice")
	}
	h := &p.Health
	v.slash(&h.Path)
	positive(v, &h.Interval)
	positive(v, &h.Timeout)
	if h.Timeout > h.Interval {
		v.bad(&h.Timeout, "%s is longer than the interval %s", h.Timeout.D(), h.Interval.D())
	}
	atLeast(v, &h.Rise, 1)
	atLeast(v, &h.Fall, 1)
	atLeast(v, &p.Passive.MaxFails, 1)
	positive(v, &p.Passive.EjectFor)
	positive(v, &p.Timeouts.Connect)
	positive(v, &p.Timeouts.Response)
	if p.Retries.Attempts < 1 || p.Retries.Attempts > 5 {
		v.bad(&p.Retries.Attempts, "must be 1 (no retry) to 5, got %d", p.Retries.Attempts)
	}
	if p.Retries.Budget < 0 || p.Retries.Budget > 1 {
		v.bad(&p.Retries.Budget, "must be a share between 0 and 1, got %g", p.Retries.Budget)
	}
	atLeast(v, &p.Retries.MinPerSecond, 0)
	atLeast(v, &p.MaxConnsPerMember, 1)
	if p.SharedIdempotency && p.Policy == PolicyFailover {
		v.bad(&p.SharedIdempotency, "a failover pool's members (primary and backup rails) deduplicate independently: a request whose outcome is unknown at one must never be sent to another")
	}
	p.TLS.validate(v)
}

// validate checks the files the edge presents and trusts towards an upstream.
func (t *ClientTLS) validate(v *validator) {
	v.readableIfSet(&t.CAFile)
	v.certificate(t, &t.CertFile, &t.KeyFile, "cert_file and key_file")
	if t.ServerName != "" && !validHostPattern(t.ServerName) && net.ParseIP(t.ServerName) == nil {
		v.bad(&t.ServerName, "%q is not a host name", t.ServerName)
	}
}
