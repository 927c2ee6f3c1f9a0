package configs

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	dnslib "github.com/miekg/dns"
)

// validator checks a decoded, defaulted configuration and records every
// problem with the line of the field it concerns.
type validator struct {
	errs   *Errors
	lines  map[string]int
	failed map[string]bool // paths that did not decode
	keygen bool            // DNSSEC keys are about to be made
}

func (v *validator) bad(path, format string, args ...any) {
	for p := path; p != ""; p = parentPath(p) {
		if v.failed[p] {
			return
		}
	}
	v.errs.add(v.line(path), path, fmt.Sprintf(format, args...))
}

func parentPath(p string) string {
	i := max(strings.LastIndexByte(p, '.'), strings.LastIndexByte(p, '['))
	if i < 0 {
		return ""
	}
	return p[:i]
}

// line finds the line of path, or of its nearest ancestor that was written
// (a missing field is reported where its parent is).
func (v *validator) line(path string) int {
	for p := path; p != ""; p = parentPath(p) {
		if n, ok := v.lines[p]; ok {
			return n
		}
	}
	if n, ok := v.lines[""]; ok {
		return n
	}
	return 1
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9_-]{0,61}[a-z0-9])?$`)

func (v *validator) name(path, s string) {
	switch {
	case s == "":
		v.bad(path, "required")
	case !nameRE.MatchString(s):
		v.bad(path, "%q must be lower-case letters, digits, '-' or '_' (at most 63)", s)
	}
}

func (v *validator) config(c *Config) {
	v.oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	v.oneOf("log.format", c.Log.Format, "json", "text")
	v.positive("log.access.flush_interval", int64(c.Log.Access.FlushInterval))
	v.positive("lifecycle.shutdown_timeout", int64(c.Lifecycle.ShutdownTimeout))
	if c.Lifecycle.DrainPeriod < 0 {
		v.bad("lifecycle.drain_period", "must not be negative")
	}
	v.admin(c)
	if len(c.Regions) == 0 {
		v.bad("regions", "at least one region is required")
	}
	v.routes(c)
	v.auth(c)
	v.ledger(c)
	regionSeen := map[string]bool{}
	nodeSeen := map[string]string{}
	for i := range c.Regions {
		r := &c.Regions[i]
		p := fmt.Sprintf("regions[%d]", i)
		v.name(p+".name", r.Name)
		if regionSeen[r.Name] {
			v.bad(p+".name", "region %q is defined twice", r.Name)
		}
		regionSeen[r.Name] = true
		if len(r.Nodes) == 0 {
			v.bad(p+".nodes", "at least one node is required")
		}
		v.name(p+".default_domain", r.DefaultDomain)
		v.idempotency(p+".idempotency", &r.Idempotency)
		for j := range r.Nodes {
			np := fmt.Sprintf("%s.nodes[%d]", p, j)
			n := &r.Nodes[j]
			v.name(np+".name", n.Name)
			if other, ok := nodeSeen[n.Name]; ok {
				v.bad(np+".name", "node %q is already defined in region %q: node names are unique in a deployment", n.Name, other)
			}
			nodeSeen[n.Name] = r.Name
			v.node(c, np, n)
		}
		pools := map[string]bool{}
		for j := range r.Pools {
			pp := fmt.Sprintf("%s.pools[%d]", p, j)
			v.name(pp+".name", r.Pools[j].Name)
			if pools[r.Pools[j].Name] {
				v.bad(pp+".name", "pool %q is defined twice in region %q", r.Pools[j].Name, r.Name)
			}
			pools[r.Pools[j].Name] = true
			v.pool(pp, &r.Pools[j])
		}
		for k, rt := range c.Routes {
			if rt.Kind == "proxy" && rt.Pool != "" && !pools[rt.Pool] {
				v.bad(fmt.Sprintf("routes[%d].pool", k), "pool %q is not defined in region %q", rt.Pool, r.Name)
			}
		}
		for j, w := range r.Writers {
			wp := fmt.Sprintf("%s.writers[%d]", p, j)
			v.name(wp+".domain", w.Domain)
			v.upstreamURL(wp+".url", w.URL)
			if w.Epoch < 0 {
				v.bad(wp+".epoch", "must not be negative")
			}
		}
	}
	v.writers(c)
	v.drainPush(c)
	v.dev(c)
	v.dns(c)
	v.waf(c)
	v.streams(c)
}

// writers enforces one designated writer per ledger domain: of the static
// candidates, the highest epoch must be unique.
func (v *validator) writers(c *Config) {
	type top struct {
		epoch int64
		paths []string
	}
	best := map[string]*top{}
	var order []string
	for i, r := range c.Regions {
		for j, w := range r.Writers {
			p := fmt.Sprintf("regions[%d].writers[%d]", i, j)
			t := best[w.Domain]
			switch {
			case t == nil:
				best[w.Domain] = &top{w.Epoch, []string{p}}
				order = append(order, w.Domain)
			case w.Epoch > t.epoch:
				*t = top{w.Epoch, []string{p}}
			case w.Epoch == t.epoch:
				t.paths = append(t.paths, p)
			}
		}
	}
	for _, d := range order {
		if t := best[d]; len(t.paths) > 1 {
			v.bad(t.paths[1]+".epoch", "ledger domain %q has two writers at epoch %d (also %s): exactly one may be designated", d, t.epoch, t.paths[0])
		}
	}
}

var jwtAlgs = []string{"HS256", "RS256", "ES256", "EdDSA"}

func (v *validator) auth(c *Config) {
	j := c.Auth.JWT
	ids := map[string]bool{}
	for i, k := range j.Keys {
		p := fmt.Sprintf("auth.jwt.keys[%d]", i)
		if ids[k.ID] {
			v.bad(p+".id", "key id %q is used twice", k.ID)
		}
		ids[k.ID] = true
		if !v.oneOf(p+".alg", k.Alg, jwtAlgs...) {
			continue
		}
		if k.Alg == "HS256" {
			switch {
			case k.Secret == "" && k.SecretFile == "":
				v.bad(p, "HS256 needs secret or secret_file")
			case k.Secret != "" && k.SecretFile != "":
				v.bad(p, "give secret or secret_file, not both")
			case k.Secret != "" && len(k.Secret) < 32:
				v.bad(p+".secret", "too short for HS256: use at least 32 bytes")
			case k.SecretFile != "":
				v.readable(p+".secret_file", k.SecretFile)
			}
			continue
		}
		if k.PublicKeyFile == "" {
			v.bad(p+".public_key_file", "required for %s", k.Alg)
		} else {
			v.readable(p+".public_key_file", k.PublicKeyFile)
		}
		if k.PrivateKeyFile != "" {
			v.readable(p+".private_key_file", k.PrivateKeyFile)
		}
	}
	if j.JWKSFile != "" {
		v.readable("auth.jwt.jwks_file", j.JWKSFile)
	}
	if j.Leeway < 0 {
		v.bad("auth.jwt.leeway", "must not be negative")
	}
	if j.SubjectPattern != "" {
		if _, err := regexp.Compile(`^(?:` + j.SubjectPattern + `)$`); err != nil {
			v.bad("auth.jwt.subject_pattern", "%q is not a regular expression: %v", j.SubjectPattern, err)
		}
	}
	if j.SubjectMaxLength < 1 || j.SubjectMaxLength > 1024 {
		v.bad("auth.jwt.subject_max_length", "must be 1 to 1024, got %d", j.SubjectMaxLength)
	}
}

func (v *validator) ledger(c *Config) {
	pr := c.Ledger.Probe
	if !strings.HasPrefix(pr.Path, "/") {
		v.bad("ledger.probe.path", "%q must start with '/'", pr.Path)
	}
	v.positive("ledger.probe.interval", int64(pr.Interval))
	v.positive("ledger.probe.timeout", int64(pr.Timeout))
	v.atLeast("ledger.probe.fall", pr.Fall, 1)
	v.positive("ledger.promotion.window", int64(c.Ledger.Promotion.Window))
	dg := c.Ledger.Degradation
	if dg.ErrorRate <= 0 || dg.ErrorRate > 1 {
		v.bad("ledger.degradation.error_rate", "must be a share above 0 and at most 1, got %g", dg.ErrorRate)
	}
	v.positive("ledger.degradation.latency_p95", int64(dg.LatencyP95))
	v.atLeast("ledger.degradation.min_requests", dg.MinRequests, 1)
	v.positive("ledger.degradation.window", int64(dg.Window))
	v.positive("ledger.degradation.recover_after", int64(dg.RecoverAfter))
	v.clientTLS("ledger.writer_tls", c.Ledger.WriterTLS)
}

// clientTLS checks the files the edge presents and trusts towards an upstream.
func (v *validator) clientTLS(p string, t ClientTLS) {
	if t.CAFile != "" {
		v.readable(p+".ca_file", t.CAFile)
	}
	switch {
	case t.CertFile == "" && t.KeyFile == "":
	case t.CertFile == "" || t.KeyFile == "":
		v.bad(p, "give both cert_file and key_file")
	default:
		v.readable(p+".cert_file", t.CertFile)
		v.readable(p+".key_file", t.KeyFile)
	}
	if t.ServerName != "" && !validHostPattern(t.ServerName) && net.ParseIP(t.ServerName) == nil {
		v.bad(p+".server_name", "%q is not a host name", t.ServerName)
	}
}

func (v *validator) idempotency(p string, id *Idempotency) {
	if !v.oneOf(p+".store", id.Store, "memory", "redis") {
		return
	}
	v.positive(p+".retention", int64(id.Retention))
	v.atLeast(p+".max_entries", id.MaxEntries, 64)
	v.positive(p+".max_response_bytes", int64(id.MaxResponseBytes))
	if id.Store == "redis" {
		v.address(p+".redis.address", id.Redis.Address)
		if id.Redis.PasswordFile != "" {
			v.readable(p+".redis.password_file", id.Redis.PasswordFile)
		}
	}
}

func (v *validator) routes(c *Config) {
	seen := map[string]bool{}
	for i := range c.Routes {
		r := &c.Routes[i]
		p := fmt.Sprintf("routes[%d]", i)
		v.name(p+".name", r.Name)
		if seen[r.Name] {
			v.bad(p+".name", "route %q is defined twice", r.Name)
		}
		seen[r.Name] = true
		v.oneOf(p+".kind", r.Kind, "proxy", "ledger", "stream")
		if r.Kind == "ledger" {
			if r.Pool != "" {
				v.bad(p+".pool", "a ledger route goes to the designated writer of the request's domain, not to a pool")
			}
			if len(c.Auth.JWT.Keys) == 0 && c.Auth.JWT.JWKSFile == "" {
				v.bad(p+".kind", "a ledger route authenticates players: configure auth.jwt.keys or auth.jwt.jwks_file")
			}
			v.positive(p+".money.timeout", int64(r.Money.Timeout))
			v.positive(p+".money.connect_timeout", int64(r.Money.ConnectTimeout))
		}
		if r.Auth != "" {
			v.oneOf(p+".auth", r.Auth, "jwt")
		}
		if r.Idempotency != "" && v.oneOf(p+".idempotency", r.Idempotency, "required") && r.Auth != "jwt" && r.Kind == "proxy" {
			v.bad(p+".idempotency", "keys are scoped by the authenticated player: set auth: jwt too")
		}
		if r.Auth == "jwt" && len(c.Auth.JWT.Keys) == 0 && c.Auth.JWT.JWKSFile == "" {
			v.bad(p+".auth", "configure auth.jwt.keys or auth.jwt.jwks_file")
		}
		if r.Kind == "proxy" && r.Pool == "" {
			v.bad(p+".pool", "required for a proxy route")
		}
		if !strings.HasPrefix(r.Match.PathPrefix, "/") {
			v.bad(p+".match.path_prefix", "%q must start with '/'", r.Match.PathPrefix)
		}
		if r.Rewrite != "" && !strings.HasPrefix(r.Rewrite, "/") {
			v.bad(p+".rewrite", "%q must start with '/'", r.Rewrite)
		}
		for j, h := range r.Match.Hosts {
			if !validHostPattern(h) {
				v.bad(fmt.Sprintf("%s.match.hosts[%d]", p, j), "%q is not a host name or *.suffix wildcard", h)
			}
		}
		for j, m := range r.Match.Methods {
			if !validMethod(m) {
				v.bad(fmt.Sprintf("%s.match.methods[%d]", p, j), "%q is not an upper-case HTTP method", m)
			}
		}
		if r.MaxBodyBytes < 0 {
			v.bad(p+".max_body_bytes", "must not be negative")
		}
		v.upstreamHeaders(p+".upstream_headers", r)
	}
}

// notForwardable are headers the edge itself sets or removes on every
// forwarded request, which no allow list can let a client supply.
var notForwardable = []string{
	"host", "content-length", "transfer-encoding", "connection", "keep-alive", "proxy-connection", "te", "trailer",
	"upgrade", "proxy-authorization", "proxy-authenticate", "idempotency-key", "x-request-id", "traceparent",
	"tracestate", "x-forwarded-for", "x-forwarded-proto", "forwarded", "content-type",
}

// edgeNamespaces are header name prefixes the edge asserts upstream.
var edgeNamespaces = []string{"ledger-", "x-hedge-", "hedge-"}

func (v *validator) upstreamHeaders(p string, r *Route) {
	money := r.Kind == "ledger" || r.Idempotency == "required"
	if len(r.UpstreamHeaders.Allow) > 0 && !money {
		v.bad(p+".allow", "only money routes (kind: ledger, or idempotency: required) forward an allowlist; other routes forward every header except upstream_headers.strip")
	}
	for i, h := range r.UpstreamHeaders.Allow {
		hp := fmt.Sprintf("%s.allow[%d]", p, i)
		name, prefix := strings.CutSuffix(strings.ToLower(h), "*")
		switch {
		case !validHeaderName(name):
			v.bad(hp, "%q is not a header name (a trailing * matches a prefix)", h)
		case slices.ContainsFunc(notForwardable, func(nf string) bool { return nf == name || prefix && strings.HasPrefix(nf, name) }):
			v.bad(hp, "%s is set or removed by the edge itself on every forwarded request", h)
		case slices.ContainsFunc(edgeNamespaces, func(ns string) bool { return strings.HasPrefix(name, ns) || strings.HasPrefix(ns, name) }):
			v.bad(hp, "%s is in the edge's own namespaces (Ledger-*, X-Hedge-*, Hedge-*), which a client can never supply", h)
		}
	}
	for i, h := range r.UpstreamHeaders.Strip {
		if !validHeaderName(strings.TrimSuffix(h, "*")) {
			v.bad(fmt.Sprintf("%s.strip[%d]", p, i), "%q is not a header name (a trailing * matches a prefix)", h)
		}
	}
}

// validHeaderName reports whether s is an HTTP field name (RFC 9110 §5.1).
func validHeaderName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

func (v *validator) node(c *Config, p string, n *Node) {
	if len(n.Listeners) == 0 {
		v.bad(p+".listeners", "at least one listener is required")
	}
	addrs := map[string]string{}
	names := map[string]bool{}
	for i := range n.Listeners {
		lp := fmt.Sprintf("%s.listeners[%d]", p, i)
		l := &n.Listeners[i]
		v.name(lp+".name", l.Name)
		if names[l.Name] {
			v.bad(lp+".name", "listener %q is defined twice on this node", l.Name)
		}
		names[l.Name] = true
		v.address(lp+".address", l.Address)
		if other, ok := addrs[l.Address]; ok {
			v.bad(lp+".address", "%s is already used by listener %q", l.Address, other)
		}
		addrs[l.Address] = l.Name
		v.tls(lp+".tls", &l.TLS)
		for j, cidr := range l.TrustedProxies {
			if _, err := ParsePrefix(cidr); err != nil {
				v.bad(fmt.Sprintf("%s.trusted_proxies[%d]", lp, j), "%v", err)
			}
		}
		v.positive(lp+".limits.max_body_bytes", int64(l.Limits.MaxBodyBytes))
		if l.Limits.MaxHeaderBytes < 1024 {
			v.bad(lp+".limits.max_header_bytes", "must be at least 1KiB")
		}
		if l.Limits.MaxConns < 0 {
			v.bad(lp+".limits.max_conns", "must not be negative")
		}
		v.atLeast(lp+".limits.max_conns_per_ip", l.Limits.MaxConnsPerIP, 1)
		v.positive(lp+".limits.read_timeout", int64(l.Limits.ReadTimeout))
		v.positive(lp+".limits.write_timeout", int64(l.Limits.WriteTimeout))
		v.positive(lp+".limits.idle_timeout", int64(l.Limits.IdleTimeout))
		if *l.HSTS.Enabled && l.HSTS.MaxAge < 0 {
			v.bad(lp+".hsts.max_age", "must not be negative")
		}
	}
	v.adminListener(c, p+".admin", n)
}

func (v *validator) tls(p string, t *TLS) {
	if t.Mode == "" {
		v.bad(p+".mode", "required: one of acme, internal, files, off")
		return
	}
	if !v.oneOf(p+".mode", t.Mode, "acme", "internal", "files", "off") {
		return
	}
	for i, n := range t.Names {
		if !validHostPattern(n) && net.ParseIP(n) == nil {
			v.bad(fmt.Sprintf("%s.names[%d]", p, i), "%q is not a host name", n)
		}
	}
	switch t.Mode {
	case "acme":
		if len(t.Names) == 0 {
			v.bad(p+".names", "acme needs at least one name to obtain a certificate for")
		}
		if u, err := url.Parse(t.ACME.Directory); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			v.bad(p+".acme.directory", "%q is not an http(s) URL", t.ACME.Directory)
		}
		for i, ch := range t.ACME.Challenges {
			v.oneOf(fmt.Sprintf("%s.acme.challenges[%d]", p, i), ch, "http-01", "tls-alpn-01")
		}
		if slices.Contains(t.ACME.Challenges, "http-01") {
			v.address(p+".acme.http_address", t.ACME.HTTPAddress)
		}
		if t.ACME.TLSALPNAddress != "" {
			v.address(p+".acme.tls_alpn_address", t.ACME.TLSALPNAddress)
		}
		if t.ACME.CARoots != "" {
			v.readable(p+".acme.ca_roots", t.ACME.CARoots)
		}
	case "internal":
		if len(t.Names) == 0 {
			v.bad(p+".names", "internal needs at least one name to issue a certificate for")
		}
		v.positive(p+".internal.lifetime", int64(t.Internal.Lifetime))
	case "files":
		if t.Files.Cert == "" {
			v.bad(p+".files.cert", "required with mode files")
		} else {
			v.readable(p+".files.cert", t.Files.Cert)
		}
		if t.Files.Key == "" {
			v.bad(p+".files.key", "required with mode files")
		} else {
			v.readable(p+".files.key", t.Files.Key)
		}
	}
}

func (v *validator) pool(p string, pl *Pool) {
	v.oneOf(p+".policy", pl.Policy, "round_robin", "failover")
	if len(pl.Members) == 0 {
		v.bad(p+".members", "at least one member is required")
	}
	seen := map[string]bool{}
	for i, m := range pl.Members {
		mp := fmt.Sprintf("%s.members[%d]", p, i)
		v.upstreamURL(mp+".url", m.URL)
		if seen[m.Name] {
			v.bad(mp+".name", "member %q is listed twice", m.Name)
		}
		seen[m.Name] = true
	}
	h := pl.Health
	if !strings.HasPrefix(h.Path, "/") {
		v.bad(p+".health.path", "%q must start with '/'", h.Path)
	}
	v.positive(p+".health.interval", int64(h.Interval))
	v.positive(p+".health.timeout", int64(h.Timeout))
	if h.Timeout > h.Interval {
		v.bad(p+".health.timeout", "%s is longer than the interval %s", h.Timeout.D(), h.Interval.D())
	}
	v.atLeast(p+".health.rise", h.Rise, 1)
	v.atLeast(p+".health.fall", h.Fall, 1)
	v.atLeast(p+".passive.max_fails", pl.Passive.MaxFails, 1)
	v.positive(p+".passive.eject_for", int64(pl.Passive.EjectFor))
	v.positive(p+".timeouts.connect", int64(pl.Timeouts.Connect))
	v.positive(p+".timeouts.response", int64(pl.Timeouts.Response))
	if pl.Retries.Attempts < 1 || pl.Retries.Attempts > 5 {
		v.bad(p+".retries.attempts", "must be 1 (no retry) to 5, got %d", pl.Retries.Attempts)
	}
	if pl.Retries.Budget < 0 || pl.Retries.Budget > 1 {
		v.bad(p+".retries.budget", "must be a share between 0 and 1, got %g", pl.Retries.Budget)
	}
	v.atLeast(p+".retries.min_per_second", pl.Retries.MinPerSecond, 0)
	v.atLeast(p+".max_conns_per_member", pl.MaxConnsPerMember, 1)
	if pl.SharedIdempotency && pl.Policy == "failover" {
		v.bad(p+".shared_idempotency", "a failover pool's members (primary and backup rails) deduplicate independently: a request whose outcome is unknown at one must never be sent to another")
	}
	v.clientTLS(p+".tls", pl.TLS)
}

func (v *validator) dev(c *Config) {
	for i, l := range c.Dev.Ledgers {
		p := fmt.Sprintf("dev.ledgers[%d]", i)
		v.address(p+".address", l.Address)
		v.name(p+".domain", l.Domain)
		v.oneOf(p+".role", l.Role, "writer", "replica")
	}
	for i, r := range c.Dev.Rails {
		p := fmt.Sprintf("dev.rails[%d]", i)
		v.name(p+".name", r.Name)
		v.address(p+".address", r.Address)
	}
}

func (v *validator) oneOf(path, got string, allowed ...string) bool {
	if slices.Contains(allowed, got) {
		return true
	}
	v.bad(path, "%q is not one of %s", got, strings.Join(allowed, ", "))
	return false
}

func (v *validator) positive(path string, n int64) {
	if n <= 0 {
		v.bad(path, "must be greater than zero")
	}
}

func (v *validator) atLeast(path string, n, min int) {
	if n < min {
		v.bad(path, "must be at least %d, got %d", min, n)
	}
}

func (v *validator) address(path, addr string) {
	if addr == "" {
		v.bad(path, "required (host:port)")
		return
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		v.bad(path, "%q is not host:port", addr)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		v.bad(path, "%q has no valid port", addr)
	}
	if host != "" && net.ParseIP(host) == nil && !validHostPattern(host) {
		v.bad(path, "%q has no valid host", addr)
	}
}

func (v *validator) upstreamURL(path, raw string) {
	u, err := url.Parse(raw)
	if raw == "" {
		v.bad(path, "required (http://host:port)")
		return
	}
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Port() == "" {
		v.bad(path, "%q is not http(s)://host:port", raw)
		return
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" {
		v.bad(path, "%q must not carry a path or query: the request's own is forwarded", raw)
	}
}

func (v *validator) readable(path, file string) {
	if f, err := os.Open(file); err != nil {
		v.bad(path, "cannot read %s: %v", file, unwrapPathError(err))
	} else {
		f.Close()
	}
}

func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

var hostRE = regexp.MustCompile(`^(\*\.)?([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$`)

func validHostPattern(h string) bool { return len(h) <= 253 && hostRE.MatchString(h) }

func validMethod(m string) bool {
	if m == "" || len(m) > 20 {
		return false
	}
	for _, c := range m {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}

// ParsePrefix parses a CIDR, or a bare address as a single-address prefix.
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return p, fmt.Errorf("%q is not a CIDR such as 10.0.0.0/8", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an address or CIDR", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// Pick returns the region and node a process plays.
func (c *Config) Pick(region, node string) (*Region, *Node, error) {
	for i := range c.Regions {
		r := &c.Regions[i]
		if region != "" && r.Name != region {
			continue
		}
		for j := range r.Nodes {
			if node == "" || r.Nodes[j].Name == node {
				if node == "" && len(r.Nodes) > 1 {
					return nil, nil, fmt.Errorf("region %q has %d nodes: name one with -node", r.Name, len(r.Nodes))
				}
				return r, &r.Nodes[j], nil
			}
		}
		return nil, nil, fmt.Errorf("region %q has no node %q", r.Name, node)
	}
	return nil, nil, fmt.Errorf("no region %q in %s", region, c.File)
}

// Region returns the named region, or nil.
func (c *Config) Region(name string) *Region {
	for i := range c.Regions {
		if c.Regions[i].Name == name {
			return &c.Regions[i]
		}
	}
	return nil
}

// Pool returns the named pool of the region, or nil.
func (r *Region) Pool(name string) *Pool {
	for i := range r.Pools {
		if r.Pools[i].Name == name {
			return &r.Pools[i]
		}
	}
	return nil
}

// dns checks the authoritative DNS section and the nodes' DNS settings.
func (v *validator) dns(c *Config) {
	regions := map[string]bool{}
	for i, r := range c.Regions {
		regions[r.Name] = true
		for j, n := range r.Nodes {
			np := fmt.Sprintf("regions[%d].nodes[%d]", i, j)
			for k, a := range n.Advertise {
				if _, err := netip.ParseAddr(a); err != nil {
					v.bad(fmt.Sprintf("%s.advertise[%d]", np, k), "%q is not an IP address", a)
				}
			}
			if len(n.Advertise) == 0 && len(n.Listeners) > 0 {
				host, _, _ := net.SplitHostPort(n.Listeners[0].Address)
				if _, err := netip.ParseAddr(host); err != nil && len(c.DNS.Zones) > 0 {
					v.bad(np+".advertise", "required when the first listener's host (%q) is not an IP address", host)
				}
			}
			if n.DNS.Address != "" {
				v.address(np+".dns.address", n.DNS.Address)
				if len(c.DNS.Zones) == 0 {
					v.bad(np+".dns.address", "this node serves DNS but dns.zones is empty")
				}
			}
		}
	}
	checkRegions := func(p string, list []string) {
		seen := map[string]bool{}
		for i, r := range list {
			rp := fmt.Sprintf("%s[%d]", p, i)
			if !regions[r] {
				v.bad(rp, "region %q is not defined", r)
			}
			if seen[r] {
				v.bad(rp, "region %q is listed twice", r)
			}
			seen[r] = true
		}
	}
	zones := map[string]bool{}
	names := map[string]string{}
	for i := range c.DNS.Zones {
		z := &c.DNS.Zones[i]
		p := fmt.Sprintf("dns.zones[%d]", i)
		apex := dnslib.CanonicalName(z.Name)
		if _, ok := dnslib.IsDomainName(z.Name); z.Name == "" || !ok {
			v.bad(p+".name", "%q is not a domain name", z.Name)
			continue
		}
		if zones[apex] {
			v.bad(p+".name", "zone %q is defined twice", apex)
		}
		zones[apex] = true
		if len(z.NS) == 0 {
			v.bad(p+".ns", "at least one name server is required")
		}
		for j, ns := range z.NS {
			if _, ok := dnslib.IsDomainName(ns); !ok || !strings.HasSuffix(ns, ".") {
				v.bad(fmt.Sprintf("%s.ns[%d]", p, j), "%q is not an absolute domain name (end it with '.')", ns)
			}
		}
		if _, ok := dnslib.IsDomainName(z.SOA.RName); !ok {
			v.bad(p+".soa.rname", "%q is not a domain name", z.SOA.RName)
		}
		if z.SOA.Minimum < Duration(time.Second) {
			v.bad(p+".soa.minimum", "must be at least 1s")
		}
		v.positive(p+".ttl", int64(z.TTL))
		for j, r := range z.Records {
			rp := fmt.Sprintf("%s.records[%d]", p, j)
			owner, ok := DNSOwner(r.Name, apex)
			if !ok {
				v.bad(rp+".name", "%q is not inside zone %s", r.Name, apex)
				continue
			}
			if !v.oneOf(rp+".type", strings.ToUpper(r.Type), "A", "AAAA", "CNAME", "TXT", "CAA", "MX", "SRV", "NS") {
				continue
			}
			if r.TTL < 0 {
				v.bad(rp+".ttl", "must not be negative")
			}
			if _, err := dnslib.NewRR(owner + " 60 IN " + r.Type + " " + r.Value); err != nil {
				v.bad(rp+".value", "%q is not valid %s data: %v", r.Value, strings.ToUpper(r.Type), err)
			}
		}
		var fileRecords []ZoneFileRecord
		if z.File != "" {
			var err error
			if fileRecords, err = ReadZoneFileLines(z.File, apex, z.TTL.D()); err != nil {
				v.bad(p+".file", "%v", err)
			}
		}
		v.zoneRules(p, z, apex, fileRecords)
		v.zoneDNSSEC(c, p+".dnssec", z, apex)
		for j := range z.Services {
			s := &z.Services[j]
			sp := fmt.Sprintf("%s.services[%d]", p, j)
			owner, ok := DNSOwner(s.Name, apex)
			if !ok || s.Name == "" {
				v.bad(sp+".name", "%q is not a name inside zone %s", s.Name, apex)
				continue
			}
			if other, dup := names[owner]; dup {
				v.bad(sp+".name", "%s is already a service (%s)", owner, other)
			}
			names[owner] = sp
			v.oneOf(sp+".policy", s.Policy, "failover", "nearest", "all")
			checkRegions(sp+".regions", s.Regions)
			if s.TTL < Duration(time.Second) {
				v.bad(sp+".ttl", "must be at least 1s, got %s", s.TTL.D())
			}
			h := s.Health
			if !strings.HasPrefix(h.Path, "/") {
				v.bad(sp+".health.path", "%q must start with '/'", h.Path)
			}
			if h.Interval < Duration(250*time.Millisecond) {
				v.bad(sp+".health.interval", "must be at least 250ms, got %s", h.Interval.D())
			}
			v.positive(sp+".health.timeout", int64(h.Timeout))
			if h.Timeout > h.Interval {
				v.bad(sp+".health.timeout", "%s is longer than the interval %s", h.Timeout.D(), h.Interval.D())
			}
			v.atLeast(sp+".health.rise", h.Rise, 1)
			v.atLeast(sp+".health.fall", h.Fall, 1)
			if h.CAFile != "" {
				v.readable(sp+".health.ca_file", h.CAFile)
			}
		}
	}
	for i, r := range c.DNS.Nearest {
		p := fmt.Sprintf("dns.nearest[%d]", i)
		if _, err := netip.ParsePrefix(r.CIDR); err != nil {
			v.bad(p+".cidr", "%q is not a CIDR such as 10.0.0.0/8", r.CIDR)
		}
		if len(r.Regions) == 0 {
			v.bad(p+".regions", "at least one region is required")
		}
		checkRegions(p+".regions", r.Regions)
	}
	rl := c.DNS.RRL
	v.atLeast("dns.rrl.responses_per_second", rl.ResponsesPerSecond, 0)
	if rl.Slip < -1 {
		v.bad("dns.rrl.slip", "must be -1 (never) or at least 0, got %d", rl.Slip)
	}
	if rl.IPv4Prefix < 8 || rl.IPv4Prefix > 32 {
		v.bad("dns.rrl.ipv4_prefix", "must be 8 to 32, got %d", rl.IPv4Prefix)
	}
	if rl.IPv6Prefix < 16 || rl.IPv6Prefix > 128 {
		v.bad("dns.rrl.ipv6_prefix", "must be 16 to 128, got %d", rl.IPv6Prefix)
	}
	for i, e := range rl.Exempt {
		if _, err := ParsePrefix(e); err != nil {
			v.bad(fmt.Sprintf("dns.rrl.exempt[%d]", i), "%v", err)
		}
	}
}

// DNSOwner turns a record name relative to apex ("www", "@") or absolute
// into its canonical owner name, and says whether it lies inside the zone.
func DNSOwner(name, apex string) (string, bool) {
	switch {
	case name == "" || name == "@":
		return apex, true
	case strings.HasSuffix(name, "."):
	default:
		name += "." + apex
	}
	if _, ok := dnslib.IsDomainName(name); !ok {
		return "", false
	}
	owner := dnslib.CanonicalName(name)
	return owner, dnslib.IsSubDomain(apex, owner)
}

// zoneFileTypes are the record types a zone file may hold; the SOA comes
// from the configuration.
var zoneFileTypes = []uint16{dnslib.TypeA, dnslib.TypeAAAA, dnslib.TypeCNAME, dnslib.TypeTXT,
	dnslib.TypeCAA, dnslib.TypeMX, dnslib.TypeSRV, dnslib.TypeNS}

// ReadZoneFile parses an RFC 1035 master file of static records for the
// zone apex; records without a TTL get defaultTTL. Errors name the file's
// line.
func ReadZoneFile(file, apex string, defaultTTL time.Duration) ([]dnslib.RR, error) {
	recs, err := ReadZoneFileLines(file, apex, defaultTTL)
	if err != nil {
		return nil, err
	}
	out := make([]dnslib.RR, len(recs))
	for i, r := range recs {
		out[i] = r.RR
	}
	return out, nil
}
