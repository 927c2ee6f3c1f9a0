package dnsfail

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"hedge/configs"
	"hedge/internal/adminauth"
)

// fakeEdge is an edge's /healthz whose answer a test turns red or green.
type fakeEdge struct {
	srv   *httptest.Server
	red   atomic.Bool
	hosts sync.Map // the Host headers probes sent
}

func newFakeEdge(t testing.TB) *fakeEdge {
	e := &fakeEdge{}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.hosts.Store(r.Host, true)
		if e.red.Load() || r.URL.Path != "/healthz" {
			http.Error(w, "draining", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok\n")
	}))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *fakeEdge) addr() string { return strings.TrimPrefix(e.srv.URL, "http://") }

// testDeployment is two regions (sea: 127.0.0.11, eu: 127.0.0.12), each
// with one fake edge, and a DNS server for edge.test. on a free port.
type testDeployment struct {
	sea, eu *fakeEdge
	cfg     *configs.Config
	srv     *Server
	addr    string
}

type deployOpts struct {
	health string // the services' health mapping (YAML flow)
	rrl    string // the rrl mapping (YAML flow)
	// dnssec signs the zone with new keys of this layout and algorithm
	// ("csk ecdsap256sha256", "ksk+zsk ed25519"); "" leaves it unsigned.
	dnssec string
}

// readToken is a read-only token of the admin API guardedAdmin builds.
const readToken = "dns-test-read-token-0123456789abcdef"

// guardedAdmin is the DNS server's admin API behind the admin guard, as
// `hedge dns` serves it: the token secret named name holds the role
// operate, readToken (scraper) the role read.
func guardedAdmin(d *testDeployment, name, secret string) http.Handler {
	mux := http.NewServeMux()
	d.srv.Routes(mux)
	cfg := &configs.Admin{Tokens: []configs.AdminToken{
		{Name: name, Secret: secret, Roles: []configs.Role{configs.RoleOperate}},
		{Name: "scraper", Secret: readToken, Roles: []configs.Role{configs.RoleRead}},
	}}
	return adminauth.Guard(func() *configs.Admin { return cfg }, mux)
}

func newDeployment(t testing.TB, o deployOpts) *testDeployment {
	t.Helper()
	if o.health == "" {
		o.health = "{interval: 250ms, timeout: 200ms}"
	}
	if o.rrl == "" {
		o.rrl = "{}"
	}
	d := &testDeployment{sea: newFakeEdge(t), eu: newFakeEdge(t)}
	dataDir := t.TempDir()
	dnssec := ""
	if o.dnssec != "" {
		layout, alg, _ := strings.Cut(o.dnssec, " ")
		if _, err := generateKeys(filepath.Join(dataDir, "dnssec", "edge.test"), "edge.test.", alg, layout); err != nil {
			t.Fatal(err)
		}
		dnssec = fmt.Sprintf("      dnssec: {enabled: true, keys: %s, algorithm: %s}\n", layout, alg)
	}
	var big strings.Builder
	for i := range 40 {
		fmt.Fprintf(&big, "        - {name: big, type: TXT, value: '\"record %02d of a set too large for 512 bytes\"'}\n", i)
	}
	src := fmt.Sprintf(`data_dir: %s
log: {access: {enabled: false}}
regions:
  - name: sea
    nodes:
      - name: sea-1
        advertise: [127.0.0.11]
        listeners: [{address: "%s", tls: {mode: "off"}}]
        dns: {address: "127.0.0.1:0"}
  - name: eu
    nodes:
      - name: eu-1
        advertise: [127.0.0.12, "2001:db8::12"]
        listeners: [{address: "%s", tls: {mode: "off"}}]
dns:
  rrl: %s
  nearest:
    - {cidr: 10.0.0.0/8, regions: [eu, sea]}
    - {cidr: 10.9.0.0/16, regions: [sea, eu]}
    - {cidr: 127.0.0.0/8, regions: [sea, eu]}
  zones:
    - name: edge.test.
      ns: [ns1.edge.test., ns2.other.test.]
      soa: {rname: hostmaster.edge.test., minimum: 30s, ttl: 60s}
      records:
        - {name: ns1, type: A, value: 127.0.0.1}
        - {name: sea, type: A, value: 127.0.0.11}
        - {name: www, type: CNAME, value: play.edge.test.}
        - {name: out, type: CNAME, value: www.example.com.}
        - {name: a.b.deep, type: A, value: 192.0.2.1}
        - {name: "@", type: TXT, value: '"hedge test zone"'}
        - {name: "@", type: CAA, value: '0 issue "letsencrypt.org"'}
        - {name: sub, type: NS, value: ns.sub.edge.test.}
        - {name: sub, type: NS, value: ns1.edge.test.}
        - {name: ns.sub, type: A, value: 192.0.2.53}
        - {name: ns.sub, type: AAAA, value: "2001:db8::53"}
        - {name: "*.wild", type: A, value: 192.0.2.80}
        - {name: "*.wild", type: TXT, value: '"wild"'}
        - {name: "*.wc", type: CNAME, value: play.edge.test.}
        - {name: tow, type: CNAME, value: x.wild.edge.test.}
        - {name: tosub, type: CNAME, value: x.sub.edge.test.}
        - {name: tonx, type: CNAME, value: nosuch.edge.test.}
        - {name: loop1, type: CNAME, value: loop2.edge.test.}
        - {name: loop2, type: CNAME, value: loop1.edge.test.}
        - {name: mx, type: MX, value: 10 sea.edge.test.}
        - {name: mx, type: MX, value: 20 play.edge.test.}
        - {name: srv, type: SRV, value: 0 0 443 sea.edge.test.}
%s%s      services:
        - {name: play, policy: all, regions: [sea, eu], health: %s}
        - {name: fo, policy: failover, regions: [sea, eu], health: %s}
        - {name: near, policy: nearest, health: %s}
`, dataDir, d.sea.addr(), d.eu.addr(), o.rrl, big.String(), dnssec, o.health, o.health, o.health)
	cfg, err := configs.Parse("test.yaml", []byte(src))
	if err != nil {
		t.Fatalf("test configuration:\n%v", err)
	}
	d.cfg = cfg
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	srv, err := New(cfg, Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	d.srv, d.addr = srv, srv.Addr()
	return d
}

// udpConn dials the deployment's DNS server over UDP; the socket closes
// when the test ends.
func (d *testDeployment) udpConn(t testing.TB) net.Conn {
	t.Helper()
	c, err := net.Dial("udp", d.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// query sends one question over net ("udp" or "tcp") and fails the test on
// a transport error.
func (d *testDeployment) query(t *testing.T, net, name string, qtype uint16, edit ...func(*dns.Msg)) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.RecursionDesired = false
	for _, f := range edit {
		f(m)
	}
	c := &dns.Client{Net: net, Timeout: 2 * time.Second, UDPSize: 65535}
	r, _, err := c.Exchange(m, d.addr)
	if err != nil {
		t.Fatalf("%s %s %s: %v", net, name, dns.TypeToString[qtype], err)
	}
	return r
}

// answerAddrs lists the A/AAAA addresses of a reply, in order.
func answerAddrs(m *dns.Msg) []string {
	var out []string
	for _, rr := range m.Answer {
		switch v := rr.(type) {
		case *dns.A:
			out = append(out, v.A.String())
		case *dns.AAAA:
			out = append(out, v.AAAA.String())
		}
	}
	return out
}

// needTool skips when a DNS client the test drives is missing; `make test`
// installs them (bind9-dnsutils, knot-dnsutils).
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		// Debian puts knotd and knotc in /usr/sbin, which a user's PATH
		// may lack.
		if _, serr := os.Stat("/usr/sbin/" + name); serr == nil {
			return "/usr/sbin/" + name
		}
		if os.Getenv("HEDGE_REQUIRE_TOOLS") != "" {
			t.Fatalf("%s is required (make deps installs it)", name)
		}
		t.Skipf("%s not installed (make deps installs it)", name)
	}
	return p
}
