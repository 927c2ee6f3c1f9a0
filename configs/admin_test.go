package configs

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// adminBase is a one-region deployment whose admin block a case replaces
// ({{ADMIN}}, starting on line 1) and whose node's admin block another
// replaces ({{NODE_ADMIN}}).
const adminBase = `{{ADMIN}}
regions:
  - name: sea
    nodes:
      - name: sea-1
        listeners: [{address: "127.0.0.1:8443", tls: {mode: "off"}}]
        admin: {{NODE_ADMIN}}
`

const strong = "3f9a1c7e52b04d8e96a1f0c2b7d4e8a5" // 32 characters

func parseAdmin(file, admin, nodeAdmin string) (*Config, error) {
	if nodeAdmin == "" {
		nodeAdmin = `{address: "127.0.0.1:9090"}`
	}
	src := strings.NewReplacer("{{ADMIN}}", admin, "{{NODE_ADMIN}}", nodeAdmin).Replace(adminBase)
	return Parse(file, []byte(src))
}

func TestAdminTokens(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "alice")
	if err := os.WriteFile(tokenFile, []byte(strong+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	for _, c := range []struct {
		name, admin string
		want        string // "" = valid
	}{
		{"inline token", "admin: {tokens: [{name: alice, token: " + strong + ", roles: [read]}]}", ""},
		{"token file, trailing newline trimmed", "admin: {tokens: [{name: alice, token_file: " + tokenFile + ", roles: [read, operate, promote]}]}", ""},
		{"the old form", "admin:\n  tokens: [" + strong + "]",
			`t.yaml:2: admin.tokens[0]: a bare token is the old form: each token now has a name, roles and a file (or inline token), e.g. {name: alice, token_file: /etc/hedge/admin/alice, roles: [read, operate, promote]}`},
		{"both token and token_file", "admin: {tokens: [{name: alice, token: " + strong + ", token_file: " + tokenFile + ", roles: [read]}]}",
			"t.yaml:1: admin.tokens[0]: give token or token_file, not both"},
		{"neither", "admin: {tokens: [{name: alice, roles: [read]}]}", "t.yaml:1: admin.tokens[0]: token_file (or an inline token) is required"},
		{"missing file", "admin: {tokens: [{name: alice, token_file: " + filepath.Join(dir, "nope") + ", roles: [read]}]}",
			"t.yaml:1: admin.tokens[0].token_file: cannot read " + filepath.Join(dir, "nope") + ": no such file or directory"},
		{"empty file", "admin: {tokens: [{name: alice, token_file: " + empty + ", roles: [read]}]}", "admin.tokens[0].token_file: " + empty + " is empty"},
		{"no name", "admin: {tokens: [{token: " + strong + ", roles: [read]}]}", "admin.tokens[0].name: required"},
		{"no roles", "admin: {tokens: [{name: alice, token: " + strong + "}]}", "admin.tokens[0].roles: at least one role is required (read, operate, promote)"},
		{"unknown role", "admin: {tokens: [{name: alice, token: " + strong + ", roles: [read, admin]}]}",
			`admin.tokens[0].roles[1]: "admin" is not one of read, operate, promote`},
		{"a name twice", "admin: {tokens: [{name: alice, token: " + strong + ", roles: [read]}, {name: alice, token: x" + strong + ", roles: [read]}]}",
			`admin.tokens[1].name: "alice" is already the name of admin.tokens[0]`},
		{"a token twice", "admin: {tokens: [{name: alice, token: " + strong + ", roles: [read]}, {name: bob, token: " + strong + ", roles: [read]}]}",
			"admin.tokens[1].token: the same token as admin.tokens[0]: every identity needs a token of its own"},
		{"too short", "admin: {tokens: [{name: alice, token: 3f9a1c7e52b04d8e96a1f0c2b7d4e8a, roles: [read]}]}",
			"admin.tokens[0].token: too short (31 characters): use at least 32"},
		{"not a bearer token", "admin: {tokens: [{name: alice, token: \"" + strong + " x\", roles: [read]}]}",
			"admin.tokens[0].token: a bearer token is letters, digits and -._~+/"},
		{"push token unknown", "admin: {push_token: carol, tokens: [{name: alice, token: " + strong + ", roles: [operate]}]}",
			`admin.push_token: "carol" is not the name of one of admin.tokens`},
		{"push token without operate", "admin: {push_token: alice, tokens: [{name: alice, token: " + strong + ", roles: [read, promote]}]}",
			`admin.push_token: "alice" does not hold the role operate`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := parseAdmin("t.yaml", c.admin, "")
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("want valid, got:\n%v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("want an error containing\n  %s\ngot:\n  %v", c.want, err)
			}
		})
	}
}

// TestAdminPlaceholderTokens: what an example file ships is refused, in
// any letter case, outside the embedded demo.
func TestAdminPlaceholderTokens(t *testing.T) {
	for _, tok := range []string{
		"CHANGE-ME-operator-token-one-0123456789", "changeme0123456789abcdef0123456789",
		"ChAnGe_Me-0123456789abcdef0123456789ab", "example-0123456789abcdef0123456789abcd",
		"Password0123456789abcdef0123456789abcd", "prometheus-TOKEN-0123456789abcdef012345",
		"replace-me-0123456789abcdef0123456789a", "my-secret-0123456789abcdef0123456789ab",
	} {
		_, err := parseAdmin("t.yaml", "admin: {tokens: [{name: alice, token: "+tok+", roles: [read]}]}", "")
		if err == nil || !strings.Contains(err.Error(), "admin.tokens[0].token: looks like a placeholder") {
			t.Errorf("%s: want refused as a placeholder, got %v", tok, err)
		}
	}
}

// TestAdminDemoExemption: the embedded demo's published tokens are not
// held to the strength rules (no file names it), everything else is.
func TestAdminDemoExemption(t *testing.T) {
	admin := "admin: {tokens: [{name: alice, token: demo-token, roles: [read]}]}"
	if _, err := parseAdmin(DemoName, admin, ""); err != nil {
		t.Fatalf("as the embedded demo: want valid, got %v", err)
	}
	if _, err := parseAdmin("", admin, ""); err != nil {
		t.Fatalf("with no file name: want valid, got %v", err)
	}
	if _, err := parseAdmin("t.yaml", admin, ""); err == nil || !strings.Contains(err.Error(), "looks like a placeholder") {
		t.Fatalf("in a file: want refused, got %v", err)
	}
	var names []string
	for _, tk := range demo(t).Admin.Tokens {
		names = append(names, tk.Name)
		if tk.Secret == "" || len(tk.Secret) < MinAdminTokenLen || placeholder(tk.Secret) != "" {
			t.Errorf("demo token %s must pass the rules anyway (hedge check -c configs/demo.yaml), got %q", tk.Name, tk.Secret)
		}
	}
	if !slices.Equal(names, []string{"alice", "bob", "scraper"}) {
		t.Errorf("demo tokens: want alice, bob (four eyes) and a read-only scraper, got %v", names)
	}
}

// TestAdminListenerAndDrainPush: the admin listener's TLS settings, and
// how nodes reach the DNS nodes' admin listeners to push drains.
func TestAdminListenerAndDrainPush(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	os.WriteFile(ca, []byte("x"), 0o600)
	two := func(seaAdmin, euAdmin, admin string) string {
		return admin + `
regions:
  - name: sea
    nodes:
      - name: sea-1
        listeners: [{address: "127.0.0.1:8443", tls: {mode: "off"}}]
        admin: ` + seaAdmin + `
        dns: {address: "127.0.0.1:5353"}
  - name: eu
    nodes:
      - name: eu-1
        listeners: [{address: "127.0.0.2:8443", tls: {mode: "off"}}]
        admin: ` + euAdmin + `
dns:
  zones: [{name: edge.test., ns: [ns1.edge.test.]}]
`
	}
	tokens := "admin: {push_token: push, tokens: [{name: push, token: " + strong + ", roles: [operate]}]}"
	for _, c := range []struct {
		name, src string
		want      []string
	}{
		{"loopback, plain, allow_loopback and no push token (the demo)",
			two(`{address: "127.0.0.1:9090"}`, `{address: "127.0.0.2:9090"}`, "admin: {allow_loopback: true}"), nil},
		{"non-loopback DNS admin over plain http",
			two(`{address: "10.0.0.1:9090"}`, `{address: "10.0.0.2:9090"}`, tokens),
			[]string{`t.yaml:7: regions[0].nodes[0].admin.tls: node sea-1 serves DNS, so the other nodes push their drains to 10.0.0.1:9090 with an admin token; over plain http to a non-loopback address the token would cross the network in clear text: set tls (mode internal or files)`}},
		{"non-loopback DNS admin over https",
			two(`{address: "10.0.0.1:9090", tls: {mode: internal}}`, `{address: "10.0.0.2:9090"}`, tokens), nil},
		{"no push token",
			two(`{address: "10.0.0.1:9090", tls: {mode: internal}}`, `{address: "10.0.0.2:9090"}`, "admin: {tokens: [{name: ops, token: "+strong+", roles: [operate]}]}"),
			[]string{`t.yaml:1: admin.push_token: node sea-1 serves DNS at admin address 10.0.0.1:9090, where the other nodes push their drains: name the token they present`}},
		{"client certificates without TLS",
			two(`{address: "127.0.0.1:9090", client_ca: "`+ca+`"}`, `{address: "127.0.0.2:9090", client_cert: {cert: "`+ca+`", key: "`+ca+`"}}`, tokens),
			[]string{`regions[0].nodes[0].admin.client_ca: client certificates need TLS`}},
		{"a DNS admin requiring client certificates, a pusher without one",
			two(`{address: "127.0.0.1:9090", tls: {mode: internal}, client_ca: "`+ca+`"}`, `{address: "127.0.0.2:9090"}`, tokens),
			[]string{`t.yaml:13: regions[1].nodes[0].admin.client_cert: node sea-1's admin listener requires client certificates (client_ca) and this node pushes its drains there`}},
		{"half a client certificate",
			two(`{address: "127.0.0.1:9090"}`, `{address: "127.0.0.2:9090", client_cert: {cert: "`+ca+`"}}`, tokens),
			[]string{`regions[1].nodes[0].admin.client_cert: give both cert and key`}},
		{"acme on an admin listener",
			two(`{address: "127.0.0.1:9090", tls: {mode: acme, names: [a.example]}}`, `{address: "127.0.0.2:9090"}`, tokens),
			[]string{`regions[0].nodes[0].admin.tls.mode: admin listeners are not public: use internal or files`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("t.yaml", []byte(c.src))
			if len(c.want) == 0 {
				if err != nil {
					t.Fatalf("want valid, got:\n%v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("want %q, got no error", c.want)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("want an error containing\n  %s\ngot:\n  %v", w, err)
				}
			}
		})
	}
}

func TestAdminTLSDefaultsAndCANames(t *testing.T) {
	src := `admin: {allow_loopback: true}
regions:
  - name: sea
    nodes:
      - name: sea-1
        listeners: [{address: "127.0.0.1:8443", tls: {mode: internal, names: [play.edge.test, sea.edge.test]}}]
        admin: {address: "127.0.0.11:9090", tls: {mode: internal}}
      - name: sea-2
        listeners: [{address: "127.0.0.2:8443", tls: {mode: internal, names: [play.edge.test]}}]
        admin: {address: "127.0.0.12:9090"}
`
	c, err := Parse("t.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	a := c.Regions[0].Nodes[0].Admin.TLS
	if !slices.Equal(a.Names, []string{"127.0.0.11"}) || a.Internal.Lifetime.D() != DefaultInternalLifetime {
		t.Errorf("internal admin TLS: want names [127.0.0.11] and the default lifetime, got %+v", a)
	}
	if m := c.Regions[0].Nodes[1].Admin.TLS.Mode; m != "off" {
		t.Errorf("admin TLS mode default: want off, got %q", m)
	}
	if got, want := InternalCANames(c), []string{"127.0.0.11", "play.edge.test", "sea.edge.test"}; !slices.Equal(got, want) {
		t.Errorf("InternalCANames: want %q, got %q", want, got)
	}
}
