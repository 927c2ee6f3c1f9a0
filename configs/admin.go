package configs

import (
	"net"
	"net/netip"
	"os"
	"regexp"
	"strings"
)

// MinAdminTokenLen is the shortest admin token accepted outside the demo.
const MinAdminTokenLen = 32

// placeholderWords mark tokens copied from an example instead of generated;
// matched case-insensitively anywhere in the token.
var placeholderWords = []string{"change-me", "change_me", "changeme", "replace-me", "replaceme",
	"example", "password", "token", "secret", "placeholder", "dummy"}

// bearerRE is RFC 6750's b64token: what fits in "Authorization: Bearer".
var bearerRE = regexp.MustCompile(`^[A-Za-z0-9\-._~+/]+=*$`)

// The form an admin token takes, shown when the old one (a bare string) is found.
const adminTokenForm = "{name: alice, token_file: /etc/hedge/admin/alice, roles: [read, operate, promote]}"

func (*AdminToken) mappingHint() string {
	return "a bare token is the old form: each token now has a name, roles and a file (or inline token), e.g. " + adminTokenForm
}

// IsDemo reports whether c is the embedded demo, whose published tokens
// are exempt from the strength rules.
func (c *Config) IsDemo() bool { return c.File == "" || c.File == DemoName }

// validate checks the deployment-wide admin settings and reads the tokens
// kept in files, so a reload reads them again (rotation). The tokens of
// the embedded demo (demo) are published, so not held to the strength
// rules.
func (a *Admin) validate(v *validator, demo bool) {
	names := map[string]int{}
	secrets := map[string]int{}
	for i := range a.Tokens {
		t := &a.Tokens[i]
		v.name(&t.Name)
		if j, dup := names[t.Name]; dup && t.Name != "" {
			v.bad(&t.Name, "%q is already the name of %s: names identify operators in logs and audit records", t.Name, v.path(&a.Tokens[j]))
		} else {
			names[t.Name] = i
		}
		if len(t.Roles) == 0 {
			v.bad(&t.Roles, "at least one role is required (%s)", allowed[Role]())
		}
		for j := range t.Roles {
			oneOf(v, &t.Roles[j])
		}
		field := &t.Token
		switch {
		case t.Token != "" && t.TokenFile != "":
			v.bad(t, "give token or token_file, not both")
			continue
		case t.Token == "" && t.TokenFile == "":
			v.bad(t, "token_file (or an inline token) is required, e.g. %s", adminTokenForm)
			continue
		case t.TokenFile != "":
			field = &t.TokenFile
			b, err := os.ReadFile(t.TokenFile)
			if err != nil {
				v.bad(field, "cannot read %s: %v", t.TokenFile, unwrapPathError(err))
				continue
			}
			t.Secret = strings.TrimSpace(string(b))
			if t.Secret == "" {
				v.bad(field, "%s is empty", t.TokenFile)
				continue
			}
		default:
			t.Secret = t.Token
		}
		if !bearerRE.MatchString(t.Secret) {
			v.bad(field, "a bearer token is letters, digits and -._~+/ (e.g. the output of openssl rand -hex 32)")
			continue
		}
		if j, dup := secrets[t.Secret]; dup {
			v.bad(field, "the same token as %s: every identity needs a token of its own", v.path(&a.Tokens[j]))
			continue
		}
		secrets[t.Secret] = i
		if demo {
			continue
		}
		if w := placeholder(t.Secret); w != "" {
			v.bad(field, "looks like a placeholder (contains %q): generate one, e.g. openssl rand -hex 32", w)
		} else if len(t.Secret) < MinAdminTokenLen {
			v.bad(field, "too short (%d characters): use at least %d, e.g. openssl rand -hex 32", len(t.Secret), MinAdminTokenLen)
		}
	}
	if a.PushToken != "" {
		switch i, ok := names[a.PushToken]; {
		case !ok:
			v.bad(&a.PushToken, "%q is not the name of one of admin.tokens", a.PushToken)
		case !a.Tokens[i].Has(RoleOperate):
			v.bad(&a.PushToken, "%q does not hold the role operate, which a drain push needs", a.PushToken)
		}
	}
	v.readableIfSet(&a.CAFile)
}

func placeholder(secret string) string {
	lower := strings.ToLower(secret)
	for _, w := range placeholderWords {
		if strings.Contains(lower, w) {
			return w
		}
	}
	return ""
}

// validate checks a node's admin listener; admin holds the tokens it
// would accept.
func (a *AdminAddr) validate(v *validator, admin *Admin) {
	if a.Address == "" {
		return
	}
	v.address(&a.Address)
	if len(admin.Tokens) == 0 && !admin.AllowLoopback {
		v.bad(a, "an admin listener needs admin.tokens or admin.allow_loopback")
	}
	if a.TLS.Mode == TLSACME {
		v.bad(&a.TLS.Mode, "admin listeners are not public: use internal or files")
	} else {
		a.TLS.validate(v)
	}
	if a.ClientCA != "" {
		v.readable(&a.ClientCA)
		if a.TLS.Mode == TLSOff {
			v.bad(&a.ClientCA, "client certificates need TLS: set tls.mode to internal or files")
		}
	}
	v.certificate(&a.ClientCert, &a.ClientCert.Cert, &a.ClientCert.Key, "cert and key")
}

// validateDrainPush checks how nodes reach the admin listeners of DNS
// nodes, where they announce their drains: never a token in clear text
// across the network, always a token the target accepts, a client
// certificate when the target requires one.
func (c *Config) validateDrainPush(v *validator) {
	var all []*Node
	for i := range c.Regions {
		for j := range c.Regions[i].Nodes {
			all = append(all, &c.Regions[i].Nodes[j])
		}
	}
	for _, t := range all {
		a := &t.Admin
		if t.DNS.Address == "" || a.Address == "" || len(all) < 2 {
			continue // nobody pushes here
		}
		loopback := LoopbackAddress(a.Address)
		if !loopback && a.TLS.Mode == TLSOff {
			v.bad(&a.TLS, "node %s serves DNS, so the other nodes push their drains to %s with an admin token; "+
				"over plain http to a non-loopback address the token would cross the network in clear text: set tls (mode internal or files)",
				t.Name, a.Address)
		}
		if c.Admin.PushToken == "" && !(loopback && c.Admin.AllowLoopback) {
			v.bad(&c.Admin.PushToken, "node %s serves DNS at admin address %s, where the other nodes push their drains: "+
				"name the token they present (one of admin.tokens, holding operate)", t.Name, a.Address)
		}
		if a.ClientCA == "" {
			continue
		}
		for _, o := range all {
			if o != t && o.Admin.ClientCert.Cert == "" {
				v.bad(&o.Admin.ClientCert, "node %s's admin listener requires client certificates (client_ca) and this node pushes its drains there: "+
					"give the certificate it presents", t.Name)
			}
		}
	}
}

// LoopbackAddress reports whether host:port can only be reached from the
// machine itself.
func LoopbackAddress(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// adminDefaults: admin listeners are plain HTTP unless told otherwise; an
// internal certificate names the address's host unless names are given.
func adminDefaults(a *AdminAddr) {
	setStr(&a.TLS.Mode, TLSOff)
	if a.TLS.Mode != TLSInternal {
		return
	}
	setDur(&a.TLS.Internal.Lifetime, DefaultInternalLifetime)
	if host, _, err := net.SplitHostPort(a.Address); err == nil && host != "" && len(a.TLS.Names) == 0 {
		a.TLS.Names = []string{host}
	}
}
