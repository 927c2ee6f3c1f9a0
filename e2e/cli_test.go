package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"hedge/internal/testkit"
)

func TestVersion(t *testing.T) {
	r := runHedge(t, t.TempDir(), "version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "hedge ") {
		t.Fatalf("hedge version: want exit 0 and \"hedge VERSION\" on stdout, got exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
}

func TestCheckShippedConfigs(t *testing.T) {
	const demo = "configs/demo.yaml"
	r := runHedge(t, moduleRoot, "check", "-c", demo)
	if r.code != 0 || !strings.HasPrefix(r.stdout, demo+": valid (") {
		t.Fatalf("hedge check -c %s: want exit 0 and %q, got exit %d stdout %q stderr %q",
			demo, demo+": valid (...)", r.code, r.stdout, r.stderr)
	}
	// The production example names token files and the players' JWT key,
	// which only exist on a real node: check reports exactly those, as the
	// README says, and passes once they exist.
	const prod = "configs/production.example.yaml"
	r = runHedge(t, moduleRoot, "check", "-c", prod)
	want := []string{}
	for _, name := range []string{"prometheus", "alice", "bob", "drain-push"} {
		want = append(want, `^`+regexp.QuoteMeta(prod)+`:\d+: admin\.tokens\[\d\]\.token_file: cannot read /etc/hedge/admin/`+name+`: no such file or directory$`)
	}
	want = append(want, `^`+regexp.QuoteMeta(prod)+`:\d+: auth\.jwt\.keys\[0\]\.public_key_file: cannot read /etc/hedge/jwt/players-es256.pub: no such file or directory$`)
	want = append(want, `^`+regexp.QuoteMeta(prod)+`: 5 problem\(s\)$`)
	got := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
	if r.code != 2 || len(got) != len(want) {
		t.Fatalf("hedge check -c %s: want exit 2 and only the 4 missing token files and the JWT key, got exit %d stderr:\n%s", prod, r.code, r.stderr)
	}
	for i, w := range want {
		if !regexp.MustCompile(w).MatchString(got[i]) {
			t.Errorf("hedge check -c %s, line %d: want %s, got %q", prod, i+1, w, got[i])
		}
	}
	dir := t.TempDir()
	src, err := os.ReadFile(filepath.Join(moduleRoot, prod))
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"prometheus", "alice", "bob", "drain-push"} {
		writeFile(t, filepath.Join(dir, name), fmt.Sprintf("%d1c0f3e6a9b24d7f8e5a0c3b6d9f2e4a7\n", i))
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub, _ := x509.MarshalPKIXPublicKey(key.Public())
	writeFile(t, filepath.Join(dir, "players-es256.pub"), string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})))
	fixed := strings.ReplaceAll(string(src), "/etc/hedge/admin/", dir+"/")
	writeFile(t, filepath.Join(dir, "prod.yaml"), strings.ReplaceAll(fixed, "/etc/hedge/jwt/", dir+"/"))
	if r := runHedge(t, dir, "check", "-c", "prod.yaml"); r.code != 0 {
		t.Fatalf("hedge check of the production example with its token files in place: want exit 0, got %d: %s", r.code, r.stderr)
	}
}

// TestCheckRefusesWeakAdminTokens: placeholders, short tokens and the old
// bare-string form are errors naming file, line and field.
func TestCheckRefusesWeakAdminTokens(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "short"), "0123456789abcdef\n")
	config := `admin:
  tokens:
    - {name: alice, token: CHANGE-ME-operator-token-one, roles: [read, operate, promote]}
    - {name: prometheus, token_file: short, roles: [read]}
    - {name: bob, token: changeme-0123456789abcdef0123456789, roles: [promote]}
regions:
  - name: sea
    nodes:
      - name: sea-1
        listeners: [{address: "127.0.0.1:8443", tls: {mode: "off"}}]
        admin: {address: "127.0.0.1:9090"}
`
	writeFile(t, filepath.Join(dir, "weak.yaml"), config)
	old := config[strings.Index(config, "regions:"):]
	writeFile(t, filepath.Join(dir, "old.yaml"), "admin:\n  tokens: [CHANGE-ME-prometheus-token]\n"+old)
	for _, c := range []struct {
		file string
		want []string
	}{
		{"weak.yaml", []string{
			`weak.yaml:3: admin.tokens[0].token: looks like a placeholder (contains "change-me"): generate one, e.g. openssl rand -hex 32`,
			`weak.yaml:4: admin.tokens[1].token_file: too short (16 characters): use at least 32, e.g. openssl rand -hex 32`,
			`weak.yaml:5: admin.tokens[2].token: looks like a placeholder (contains "changeme"): generate one, e.g. openssl rand -hex 32`,
			`weak.yaml: 3 problem(s)`,
		}},
		{"old.yaml", []string{
			`old.yaml:2: admin.tokens[0]: a bare token is the old form: each token now has a name, roles and a file (or inline token), e.g. {name: alice, token_file: /etc/hedge/admin/alice, roles: [read, operate, promote]}`,
		}},
	} {
		r := runHedge(t, dir, "check", "-c", c.file)
		if r.code != 2 {
			t.Errorf("hedge check -c %s: want exit 2, got %d", c.file, r.code)
		}
		for _, w := range c.want {
			if !strings.Contains(r.stderr, w+"\n") {
				t.Errorf("hedge check -c %s: want the line\n  %s\ngot:\n%s", c.file, w, r.stderr)
			}
		}
	}
}

func TestCheckUsageErrors(t *testing.T) {
	for _, c := range []struct {
		name   string
		args   []string
		stderr string
	}{
		{"check without -c", []string{"check"}, "-c FILE is required"},
		{"check of a missing file", []string{"check", "-c", "missing.yaml"}, "missing.yaml"},
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"no command", nil, "Usage:"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := runHedge(t, t.TempDir(), c.args...)
			if r.code != 2 || !strings.Contains(r.stderr, c.stderr) {
				t.Fatalf("hedge %s: want exit 2 and %q on stderr, got exit %d stderr %q",
					strings.Join(c.args, " "), c.stderr, r.code, r.stderr)
			}
		})
	}
}

// brokenConfig holds four mistakes of two kinds: two that decoding finds
// (an unknown field, a bad duration) and two that validation finds (a
// route naming a pool that does not exist, a listener address without a
// port). Line numbers below count from its first line.
const brokenConfig = `deployment: broken
data_dir: .hedge
admin:
  allow_loopback: true
lifecycle:
  drain_period: soon
  shutdown_timout: 10s
routes:
  - name: games
    match: {path_prefix: /games/}
    pool: nowhere
regions:
  - name: sea
    nodes:
      - name: sea-1
        listeners:
          - name: public
            address: 127.0.0.1
            tls: {mode: "off"}
    pools:
      - name: games
        members:
          - {name: g1, url: "http://127.0.0.1:7000"}
`

// The exact lines `hedge check` must print for each mistake. The unknown
// field's message lists the known fields, which grow with the schema, so
// that part is matched loosely.
var (
	badDuration  = regexp.QuoteMeta(`bad.yaml:6: lifecycle.drain_period: "soon" is not a duration (examples: 250ms, 5s, 1h)`)
	unknownField = regexp.QuoteMeta(`bad.yaml:7: lifecycle.shutdown_timout: unknown field (known: `) + `.*\bshutdown_timeout\b.*\)`
	missingPool  = regexp.QuoteMeta(`bad.yaml:11: routes[0].pool: pool "nowhere" is not defined in region "sea"`)
	noPort       = regexp.QuoteMeta(`bad.yaml:18: regions[0].nodes[0].listeners[0].address: "127.0.0.1" is not host:port`)
)

// TestCheckReportsEveryError: configuration errors are reported all at
// once, each as FILE:LINE: field.path: message, and check exits 2.
func TestCheckReportsEveryError(t *testing.T) {
	fixed := strings.NewReplacer("drain_period: soon", "drain_period: 1s", "shutdown_timout", "shutdown_timeout")
	for _, c := range []struct {
		name   string
		config string
		want   []string // patterns of stderr's lines, in order
	}{
		{"decode and validation errors together", brokenConfig,
			[]string{badDuration, unknownField, missingPool, noPort, `bad\.yaml: 4 problem\(s\)`}},
		{"decode errors only",
			strings.NewReplacer("pool: nowhere", "pool: games", "address: 127.0.0.1\n", "address: 127.0.0.1:8443\n").Replace(brokenConfig),
			[]string{badDuration, unknownField, `bad\.yaml: 2 problem\(s\)`}},
		{"validation errors only", fixed.Replace(brokenConfig),
			[]string{missingPool, noPort, `bad\.yaml: 2 problem\(s\)`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte(c.config), 0o600); err != nil {
				t.Fatal(err)
			}
			r := runHedge(t, dir, "check", "-c", "bad.yaml")
			if r.code != 2 {
				t.Errorf("hedge check -c bad.yaml: want exit 2, got %d", r.code)
			}
			if r.stdout != "" {
				t.Errorf("hedge check -c bad.yaml: want nothing on stdout, got %q", r.stdout)
			}
			got := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
			var missing []string
			for _, w := range c.want {
				re := regexp.MustCompile("^" + w + "$")
				found := false
				for _, line := range got {
					if re.MatchString(line) {
						found = true
						break
					}
				}
				if !found {
					missing = append(missing, w)
				}
			}
			if len(missing) > 0 || len(got) != len(c.want) {
				t.Errorf("hedge check -c bad.yaml: want exactly these %d lines on stderr (as patterns):\n  %s\nmissing:\n  %s\ngot:\n  %s",
					len(c.want), strings.Join(c.want, "\n  "), strings.Join(missing, "\n  "), strings.Join(got, "\n  "))
			}
		})
	}
}

func TestLedgersimRole(t *testing.T) {
	addr := testkit.FreeAddr(t)
	p := startHedge(t, "ledgersim", t.TempDir(), "ledgersim", "-listen", addr, "-domain", "sea", "-epoch", "3")
	r := firstAnswer(t, p, "ledgersim to answer GET /role", quickClient, "http://"+addr+"/role")
	if want := `{"role":"writer","domain":"sea","epoch":3}`; r.status != 200 || strings.TrimSpace(r.body) != want {
		t.Fatalf("GET /role: want 200 %s, got %v", want, r)
	}
	p.Signal(t, syscall.SIGTERM)
	if code, ok := p.Wait(5 * time.Second); !ok || code != 0 {
		t.Errorf("ledgersim on SIGTERM: want exit 0 within 5s, got exited=%v code %d", ok, code)
	}
}

// serveConfig is a small deployment of the test's own: region lab is the
// one the process plays (-region lab -node lab-1); region far is only
// known, so its addresses must stay unbound.
const serveConfig = `deployment: e2e
data_dir: "{{DATA}}"
log: {level: info, format: text}
admin: {allow_loopback: true}
lifecycle: {drain_period: 100ms, shutdown_timeout: 2s}
# The ledger simulator takes the account from the principal the edge
# asserts, so the routes authenticate players.
auth:
  jwt:
    issuer: hedge-e2e
    audience: [edge.e2e.test]
    keys: [{id: k1, alg: HS256, secret: "serve-reload-secret-0123456789abcdef"}]
routes:
  - name: bets
    match: {path_prefix: /api/bets, methods: [POST]}
    pool: ledger
    rewrite: /bets
    auth: jwt
regions:
  - name: lab
    nodes:
      - name: lab-1
        listeners:
          - name: public
            address: "{{EDGE}}"
            tls: {{TLS}}
        admin: {address: "{{ADMIN}}"}
    pools:
      - name: ledger
        critical: true
        members:
          - {name: ledgersim, url: "http://{{LEDGER}}"}
        health: {interval: 200ms, timeout: 100ms}
  - name: far
    nodes:
      - name: far-1
        listeners:
          - name: public
            address: "{{FAR}}"
            tls: {mode: "off"}
    pools:
      - name: ledger
        members:
          - {name: far-ledger, url: "http://{{FARLEDGER}}"}
`

// balanceRoute is what the reload adds.
const balanceRoute = `  - name: balance
    match: {path_prefix: /api/wallet/balance, methods: [GET]}
    pool: ledger
    rewrite: /balance
    auth: jwt
`

// TestServeReload runs `hedge serve -c FILE -region R -node N` in front of
// a `hedge ledgersim` child, with TLS off and from the internal CA, and
// reloads it with SIGHUP: a valid new configuration is swapped in without
// dropping a keep-alive connection, an invalid one is rejected and the
// previous one keeps serving.
func TestServeReload(t *testing.T) {
	for _, mode := range []string{"off", "internal"} {
		t.Run("tls "+mode, func(t *testing.T) {
			t.Parallel()
			testServeReload(t, mode)
		})
	}
}

func testServeReload(t *testing.T, mode string) {
	dir := t.TempDir()
	ledger := testkit.FreeAddr(t)
	lp := startHedge(t, "ledgersim", dir, "ledgersim", "-listen", ledger, "-domain", "x")
	testkit.WaitFor(t, lp, "ledgersim ready", 10*time.Second, 50*time.Millisecond, answers200(quickClient, "http://"+ledger+"/healthz"))

	edge, admin := testkit.FreeAddr(t), testkit.FreeAddr(t)
	// The test holds region far's listener address: a hedge that bound it
	// (it plays lab only) would fail to start, naming the address in use.
	// (A port merely found free, then dialled, could meanwhile be bound by
	// any other process on the machine.)
	farLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer farLn.Close()
	far := farLn.Addr().String()
	tlsYAML, scheme := `{mode: "off"}`, "http"
	const serverName = "edge.e2e.test"
	if mode == "internal" {
		tlsYAML, scheme = `{mode: internal, names: [`+serverName+`]}`, "https"
	}
	v1 := strings.NewReplacer("{{DATA}}", filepath.Join(dir, "data"), "{{EDGE}}", edge, "{{ADMIN}}", admin,
		"{{LEDGER}}", ledger, "{{FAR}}", far, "{{FARLEDGER}}", testkit.FreeAddr(t), "{{TLS}}", tlsYAML).Replace(serveConfig)
	v2 := strings.Replace(v1, "routes:\n", "routes:\n"+balanceRoute, 1)
	file := filepath.Join(dir, "hedge.yaml")
	writeFile(t, file, v1)
	tr := runHedge(t, dir, "token", "-c", file, "-sub", "e2e-player")
	if tr.code != 0 {
		t.Fatalf("hedge token -c %s -sub e2e-player: exit %d: %s", file, tr.code, tr.stderr)
	}
	auth := "Bearer " + strings.TrimSpace(tr.stdout)

	p := startHedge(t, "hedge serve", dir, "serve", "-c", file, "-region", "lab", "-node", "lab-1")
	adminUp := answers200(quickClient, "http://"+admin+"/healthz")
	testkit.WaitFor(t, p, "hedge serve -region lab -node lab-1 ready (admin /healthz answers 200, the edge listener is bound) beside region far's address, which it must not bind",
		20*time.Second, 50*time.Millisecond, func() (bool, string) {
			if ok, seen := adminUp(); !ok {
				return false, "admin: " + seen
			}
			// The admin listener may answer a moment before the edge's is
			// bound; a plain connect does not count as one of kc's dials.
			c, err := net.DialTimeout("tcp", edge, time.Second)
			if err != nil {
				return false, "edge: " + err.Error()
			}
			c.Close()
			return true, ""
		})

	var tlsConfig *tls.Config
	if mode == "internal" {
		tlsConfig = &tls.Config{RootCAs: certPool(t, filepath.Join(dir, "data", "ca", "root.crt")), ServerName: serverName}
	}
	kc := newCountingClient(t, tlsConfig)
	base := scheme + "://" + edge
	if mode == "internal" {
		// As curl --resolve does: the name in the URL, so in SNI and Host,
		// and the edge's address dialled. (A Host naming another server
		// than the connection's SNI, the IP address here, is 421.)
		_, port, _ := net.SplitHostPort(edge)
		base = "https://" + serverName + ":" + port
		tr := kc.Client.Transport.(*http.Transport)
		dial := tr.DialContext
		tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) { return dial(ctx, network, edge) }
	}
	bet := func(key string) httpResult {
		return do(t, kc.Client, "POST", base+"/api/bets", `{"table":"t1","amount":"5.00","currency":"EUR","selection":"player"}`,
			"Content-Type", "application/json", "Idempotency-Key", key, "Authorization", auth)
	}

	r := bet("e2e-1")
	if r.status != 201 || !strings.Contains(r.body, `"domain":"x"`) || !strings.Contains(r.body, `"balance":"995.00"`) {
		t.Fatalf("POST /api/bets through hedge: want 201 from ledger domain x with \"balance\":\"995.00\", got %v", r)
	}
	if sts := r.header.Get("Strict-Transport-Security"); (mode == "off") != (sts == "") {
		t.Errorf("tls %s: Strict-Transport-Security is sent on TLS listeners only; got %q", mode, sts)
	}
	if r := do(t, kc.Client, "GET", base+"/api/wallet/balance", "", "Authorization", auth); r.status != 404 {
		t.Fatalf("GET /api/wallet/balance before the reload: want 404 (no such route yet), got %v", r)
	}

	// A valid new configuration: the new route works, on the connection
	// opened before the reload.
	writeFile(t, file, v2)
	p.Signal(t, syscall.SIGHUP)
	testkit.WaitFor(t, p, "the route added by SIGHUP to answer", 5*time.Second, 50*time.Millisecond, func() (bool, string) {
		r, err := tryDo(kc.Client, "GET", base+"/api/wallet/balance", "", "Authorization", auth)
		if err != nil {
			return false, err.Error()
		}
		return r.status == 200 && strings.Contains(r.body, `"balance":"995.00"`), r.String()
	})
	if r := bet("e2e-2"); r.status != 201 {
		t.Errorf("POST /api/bets after the reload: want 201, got %v", r)
	}
	if n := kc.dials.Load(); n != 1 {
		t.Errorf("SIGHUP reload: want the keep-alive connection opened before it reused (1 dial), got %d dials (at %s)", n, kc.dialTimes())
	}
	if !strings.Contains(p.Stderr.String(), "configuration reloaded") {
		t.Errorf("SIGHUP reload: want \"configuration reloaded\" in the log, got:\n%s", testkit.LastLines(p.Stderr.String(), 20))
	}

	// An invalid configuration is rejected; the previous one serves on.
	invalid := v2 + "bogus_field: 1\n"
	writeFile(t, file, invalid)
	p.Signal(t, syscall.SIGHUP)
	// The rejection names the file, line and field, like `hedge check`.
	where := fmt.Sprintf("%s:%d: bogus_field: unknown field", file, strings.Count(invalid, "\n"))
	testkit.WaitFor(t, p, "the rejection of the invalid configuration to be logged, naming "+where, 5*time.Second, 50*time.Millisecond, func() (bool, string) {
		log := p.Stderr.String()
		return strings.Contains(log, "configuration reload rejected") && strings.Contains(log, where), testkit.LastLines(log, 3)
	})
	if r := do(t, kc.Client, "GET", base+"/api/wallet/balance", "", "Authorization", auth); r.status != 200 {
		t.Errorf("after a rejected reload the previous routes serve: want 200 for the balance, got %v", r)
	}
	if r := bet("e2e-3"); r.status != 201 {
		t.Errorf("after a rejected reload the previous routes serve: want 201 for a bet, got %v", r)
	}
	if n := kc.dials.Load(); n != 1 {
		t.Errorf("after both reloads: want the one keep-alive connection still in use (1 dial), got %d dials (at %s)", n, kc.dialTimes())
	}
	m := do(t, quickClient, "GET", "http://"+admin+"/metrics", "")
	samples := parseMetrics(m.body, "hedge_config_reloads_total")
	for _, res := range []string{"ok", "rejected"} {
		if v, _ := findSample(samples, map[string]string{"result": res}); v != 1 {
			t.Errorf("metrics: want hedge_config_reloads_total{result=%q} 1, got %v (samples %v)", res, v, samples)
		}
	}

	p.Signal(t, syscall.SIGTERM)
	if code, ok := p.Wait(5 * time.Second); !ok || code != 0 {
		t.Errorf("hedge serve on SIGTERM: want exit 0 within drain 100ms + 5s, got exited=%v code %d", ok, code)
	}
	lp.Signal(t, syscall.SIGTERM)
	if code, ok := lp.Wait(5 * time.Second); !ok || code != 0 {
		t.Errorf("ledgersim on SIGTERM: want exit 0 within 5s, got exited=%v code %d", ok, code)
	}
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
}

// TestTokenRefusesWhatTheEdgeRefuses: hedge token does not print a token
// the edge would refuse, such as one whose subject is not a safe
// identifier; it says why.
func TestTokenRefusesWhatTheEdgeRefuses(t *testing.T) {
	if r := runHedge(t, t.TempDir(), "token", "-sub", "player-1"); r.code != 0 || strings.Count(strings.TrimSpace(r.stdout), ".") != 2 {
		t.Fatalf("hedge token -sub player-1: want exit 0 and a JWT, got exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	r := runHedge(t, t.TempDir(), "token", "-sub", "mallory;sub=victim")
	if r.code != 2 || r.stdout != "" || !strings.Contains(r.stderr, "the edge would refuse this token") {
		t.Fatalf("hedge token -sub 'mallory;sub=victim': want exit 2, no token and the reason, got exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
}
