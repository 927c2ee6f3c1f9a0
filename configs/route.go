package configs

import (
	"regexp"
	"slices"
	"strings"
)

// validateRoutes checks the routes every node shares (their pools are
// checked in each region, their protection in validateProtection).
func (c *Config) validateRoutes(v *validator) {
	seen := map[string]bool{}
	for i := range c.Routes {
		r := &c.Routes[i]
		v.uniqueName(seen, &r.Name, "route %q is defined twice")
		r.validate(v, &c.Auth.JWT)
	}
}

func (r *Route) validate(v *validator, jwt *JWT) {
	oneOf(v, &r.Kind)
	if r.Kind == KindLedger {
		if r.Pool != "" {
			v.bad(&r.Pool, "a ledger route goes to the designated writer of the request's domain, not to a pool")
		}
		if !jwt.configured() {
			v.bad(&r.Kind, "a ledger route authenticates players: configure auth.jwt.keys or auth.jwt.jwks_file")
		}
		positive(v, &r.Money.Timeout)
		positive(v, &r.Money.ConnectTimeout)
	}
	if r.Auth != "" {
		oneOf(v, &r.Auth)
	}
	if r.Idempotency != "" && oneOf(v, &r.Idempotency) && r.Auth != AuthJWT && r.Kind == KindProxy {
		v.bad(&r.Idempotency, "keys are scoped by the authenticated player: set auth: jwt too")
	}
	if r.Auth == AuthJWT && !jwt.configured() {
		v.bad(&r.Auth, "configure auth.jwt.keys or auth.jwt.jwks_file")
	}
	if r.Kind == KindProxy && r.Pool == "" {
		v.bad(&r.Pool, "required for a proxy route")
	}
	v.slash(&r.Match.PathPrefix)
	if r.Rewrite != "" {
		v.slash(&r.Rewrite)
	}
	for j, h := range r.Match.Hosts {
		if !validHostPattern(h) {
			v.bad(&r.Match.Hosts[j], "%q is not a host name or *.suffix wildcard", h)
		}
	}
	for j := range r.Match.Methods {
		v.method(&r.Match.Methods[j])
	}
	notNegative(v, &r.MaxBodyBytes)
	r.UpstreamHeaders.validate(v, r.Kind == KindLedger || r.Idempotency == IdempotencyRequired)
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

// validate checks the header lists of a route; money routes (ledger, or
// idempotency: required) alone forward an allowlist.
func (u *UpstreamHeaders) validate(v *validator, money bool) {
	if len(u.Allow) > 0 && !money {
		v.bad(&u.Allow, "only money routes (kind: ledger, or idempotency: required) forward an allowlist; other routes forward every header except upstream_headers.strip")
	}
	for i, h := range u.Allow {
		name, prefix := strings.CutSuffix(strings.ToLower(h), "*")
		switch {
		case !validHeaderName(name):
			v.bad(&u.Allow[i], "%q is not a header name (a trailing * matches a prefix)", h)
		case slices.ContainsFunc(notForwardable, func(nf string) bool { return nf == name || prefix && strings.HasPrefix(nf, name) }):
			v.bad(&u.Allow[i], "%s is set or removed by the edge itself on every forwarded request", h)
		case slices.ContainsFunc(edgeNamespaces, func(ns string) bool { return strings.HasPrefix(name, ns) || strings.HasPrefix(ns, name) }):
			v.bad(&u.Allow[i], "%s is in the edge's own namespaces (Ledger-*, X-Hedge-*, Hedge-*), which a client can never supply", h)
		}
	}
	for i, h := range u.Strip {
		if !validHeaderName(strings.TrimSuffix(h, "*")) {
			v.bad(&u.Strip[i], "%q is not a header name (a trailing * matches a prefix)", h)
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

// validate checks how the edge verifies players' tokens.
func (j *JWT) validate(v *validator) {
	ids := map[string]bool{}
	for i := range j.Keys {
		k := &j.Keys[i]
		v.once(ids, &k.ID, "key id %q is used twice")
		if !oneOf(v, &k.Alg) {
			continue
		}
		if k.Alg == AlgHS256 {
			switch {
			case k.Secret == "" && k.SecretFile == "":
				v.bad(k, "HS256 needs secret or secret_file")
			case k.Secret != "" && k.SecretFile != "":
				v.bad(k, "give secret or secret_file, not both")
			case k.Secret != "" && len(k.Secret) < 32:
				v.bad(&k.Secret, "too short for HS256: use at least 32 bytes")
			case k.SecretFile != "":
				v.readable(&k.SecretFile)
			}
			continue
		}
		v.requiredFile(&k.PublicKeyFile, "required for "+string(k.Alg))
		v.readableIfSet(&k.PrivateKeyFile)
	}
	v.readableIfSet(&j.JWKSFile)
	notNegative(v, &j.Leeway)
	if j.SubjectPattern != "" {
		if _, err := regexp.Compile(`^(?:` + j.SubjectPattern + `)$`); err != nil {
			v.bad(&j.SubjectPattern, "%q is not a regular expression: %v", j.SubjectPattern, err)
		}
	}
	if j.SubjectMaxLength < 1 || j.SubjectMaxLength > 1024 {
		v.bad(&j.SubjectMaxLength, "must be 1 to 1024, got %d", j.SubjectMaxLength)
	}
}

// configured reports whether any key verifies players' tokens.
func (j *JWT) configured() bool { return len(j.Keys) > 0 || j.JWKSFile != "" }
