package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"hedge/configs"
	"hedge/internal/testkit"
)

// pebble is a real ACME CA (Let's Encrypt's test server) run for a test.
// Its validation authority resolves names through the test's own DNS
// server, which points every *.hedge.test name at 127.0.0.1, and connects
// to httpPort for http-01 and tlsPort for tls-alpn-01 there: the
// challenges are really fetched from the code under test.
type pebble struct {
	directory    string
	caRoots      string // the CA of pebble's own HTTPS certificate
	httpPort     int
	tlsListener  net.Listener // bound on tlsPort, for the tls-alpn-01 listener
	root         *x509.Certificate
	intermediate *x509.Certificate
	log          *testkit.Buffer
}

func startPebble(t *testing.T) *pebble {
	t.Helper()
	work := t.TempDir()
	bin := filepath.Join(work, "pebble")
	// Build first: on a fresh machine that downloads the module, and only
	// then does `go list` know its directory.
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/letsencrypt/pebble/v2/cmd/pebble").CombinedOutput(); err != nil {
		t.Fatalf("building pebble: %v\n%s", err, out)
	}
	modDir, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/letsencrypt/pebble/v2").Output()
	if err != nil || len(strings.TrimSpace(string(modDir))) == 0 {
		t.Fatalf("locating the pebble module: %q %v", modDir, err)
	}
	certsDir := filepath.Join(strings.TrimSpace(string(modDir)), "test", "certs")

	dnsAddr := startDNS(t)
	p := &pebble{caRoots: filepath.Join(certsDir, "pebble.minica.pem"), log: &testkit.Buffer{}}
	p.tlsListener = listenLoopback(t)
	t.Cleanup(func() { _ = p.tlsListener.Close() })
	p.httpPort = testkit.FreePort(t)
	listen, management := testkit.FreePort(t), testkit.FreePort(t)

	var cfg struct {
		Pebble map[string]any `json:"pebble"`
	}
	cfg.Pebble = map[string]any{
		"listenAddress":           fmt.Sprintf("127.0.0.1:%d", listen),
		"managementListenAddress": fmt.Sprintf("127.0.0.1:%d", management),
		"certificate":             filepath.Join(certsDir, "localhost", "cert.pem"),
		"privateKey":              filepath.Join(certsDir, "localhost", "key.pem"),
		"httpPort":                p.httpPort,
		"tlsPort":                 p.tlsListener.Addr().(*net.TCPAddr).Port,
		"ocspResponderURL":        "",
		"keyAlgorithm":            "ecdsa",
		// No Retry-After: the client polls every 250 ms.
		"retryAfter": map[string]int{"authz": 0, "order": 0},
		"profiles": map[string]any{
			"default": map[string]any{"description": "hedge test", "validityPeriod": 7776000},
		},
	}
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(work, "pebble.json")
	if err := os.WriteFile(cfgPath, cfgJSON, 0o600); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(bin, "-config", cfgPath, "-dnsserver", dnsAddr)
	cmd.Env = append(slices.DeleteFunc(os.Environ(), func(kv string) bool {
		// Never let an inherited setting skip real validation.
		return strings.HasPrefix(kv, "PEBBLE_")
	}),
		"PEBBLE_VA_NOSLEEP=1",      // validate at once
		"PEBBLE_WFE_NONCEREJECT=0", // no deliberate badNonce retries
		"PEBBLE_AUTHZREUSE=0",      // every order proves its challenge afresh
	)
	cmd.Stdout, cmd.Stderr = p.log, p.log
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting pebble: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("pebble output:\n%s", p.log.String())
		}
	})

	p.directory = fmt.Sprintf("https://127.0.0.1:%d/dir", listen)
	pool := x509.NewCertPool()
	minica, err := os.ReadFile(p.caRoots)
	if err != nil || !pool.AppendCertsFromPEM(minica) {
		t.Fatalf("reading pebble's test CA %s: %v", p.caRoots, err)
	}
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	t.Cleanup(client.CloseIdleConnections)
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := client.Get(p.directory)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("pebble did not come up at %s: %v", p.directory, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	mgmt := fmt.Sprintf("https://127.0.0.1:%d", management)
	p.root = fetchCert(t, client, mgmt+"/roots/0")
	p.intermediate = fetchCert(t, client, mgmt+"/intermediates/0")
	return p
}

func fetchCert(t *testing.T, c *http.Client, url string) *x509.Certificate {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	return parsePEMCert(t, body)
}

// startDNS answers A 127.0.0.1 for every name under hedge.test, over TCP
// (what pebble's validation authority uses) and UDP on the same port.
func startDNS(t *testing.T) string {
	t.Helper()
	mux := dns.NewServeMux()
	mux.HandleFunc("hedge.test.", func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Authoritative = true
		for _, q := range r.Question {
			if q.Qtype == dns.TypeA {
				m.Answer = append(m.Answer, &dns.A{
					Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET},
					A:   net.IPv4(127, 0, 0, 1),
				})
			}
		}
		_ = w.WriteMsg(m)
	})
	ln := listenLoopback(t)
	tcp := &dns.Server{Listener: ln, Handler: mux}
	go func() { _ = tcp.ActivateAndServe() }()
	t.Cleanup(func() { _ = tcp.Shutdown() })
	if pc, err := net.ListenPacket("udp", ln.Addr().String()); err == nil {
		udp := &dns.Server{PacketConn: pc, Handler: mux}
		go func() { _ = udp.ActivateAndServe() }()
		t.Cleanup(func() { _ = udp.Shutdown() })
	}
	return ln.Addr().String()
}

// checkIssued dials the listener as a player's client would and expects a
// certificate for name, issued by pebble's intermediate, that verifies up
// to pebble's root.
func (p *pebble) checkIssued(t *testing.T, m *Manager, addr, name string) {
	t.Helper()
	client := &tls.Config{ServerName: name, RootCAs: poolOf(p.root)}
	st, err := handshake(addr, client)
	if err != nil {
		t.Fatalf("handshake for %s (verifying against pebble's root): %v", name, err)
	}
	leaf := st.PeerCertificates[0]
	if !slices.Contains(leaf.DNSNames, name) {
		t.Errorf("leaf DNSNames = %q, want %s", leaf.DNSNames, name)
	}
	if leaf.Issuer.String() != p.intermediate.Subject.String() {
		t.Errorf("leaf issuer = %q, want pebble's intermediate %q", leaf.Issuer, p.intermediate.Subject)
	}
	if err := leaf.CheckSignatureFrom(p.intermediate); err != nil {
		t.Errorf("leaf not signed by pebble's intermediate: %v", err)
	}
	getOK(t, addr, client)

	infos := m.Certificates()
	if len(infos) != 1 || !slices.Equal(infos[0].Names, []string{name}) || infos[0].Mode != ModeACME ||
		infos[0].Issuer != p.intermediate.Subject.CommonName || !infos[0].NotAfter.Equal(leaf.NotAfter) {
		t.Errorf("Certificates() = %+v, want %s from %q until %v", infos, name, p.intermediate.Subject.CommonName, leaf.NotAfter)
	}
}

func TestACME(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs pebble")
	}
	p := startPebble(t)
	httpAddress := "127.0.0.1:" + strconv.Itoa(p.httpPort)
	acmeTLS := func(name string, challenges ...configs.ACMEChallenge) configs.TLS {
		return configs.TLS{Mode: ModeACME, Names: []string{name}, ACME: configs.ACME{
			Directory:   p.directory,
			Email:       "ops@hedge.test",
			Challenges:  challenges,
			HTTPAddress: httpAddress,
			CARoots:     p.caRoots,
		}}
	}
	start := func(t *testing.T, m *Manager) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := m.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("tls-alpn-01 on the listener itself", func(t *testing.T) {
		const name = "alpn.hedge.test"
		log, _ := testLogger(t)
		tc := acmeTLS(name, "tls-alpn-01")
		// No email, and first: certmagic remembers the first email it sees
		// process-wide and would use it for this account too. Without one,
		// an interactive obtain would prompt on stdin; Start must not.
		tc.ACME.Email = ""
		tc.ACME.HTTPAddress = ":80"
		ln := p.tlsListener
		m, err := New(tc, t.TempDir(), log, ListenerAddress(ln.Addr().String()))
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()

		// Count challenge handshakes reaching this very listener.
		var challenges atomic.Int32
		cfg := m.TLSConfig().Clone()
		cfg.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			if hello.ServerName == name && slices.Equal(hello.SupportedProtos, []string{"acme-tls/1"}) {
				challenges.Add(1)
			}
			return nil, nil
		}
		addr := serveTLS(t, ln, cfg) // serving before Start: it answers the challenge
		start(t, m)
		if challenges.Load() == 0 {
			t.Error("no tls-alpn-01 handshake reached the listener")
		}
		p.checkIssued(t, m, addr, name)
	})

	t.Run("http-01 on the configured address", func(t *testing.T) {
		const name = "http.hedge.test"
		log, _ := testLogger(t)
		m, err := New(acmeTLS(name, "http-01"), t.TempDir(), log)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		start(t, m)
		addr := serveTLS(t, listenLoopback(t), m.TLSConfig())
		p.checkIssued(t, m, addr, name)

		want := fmt.Sprintf("Attempting to validate w/ HTTP: http://%s:%d/.well-known/acme-challenge/", name, p.httpPort)
		if !strings.Contains(p.log.String(), want) {
			t.Errorf("pebble never fetched the http-01 challenge (no %q in its log)", want)
		}
		// certmagic's responder only listens while a challenge is pending.
		ln, err := net.Listen("tcp", httpAddress)
		if err != nil {
			t.Errorf("http-01 address still taken after Start: %v", err)
		} else {
			ln.Close()
		}
	})

	t.Run("http-01 answered by the gateway's own port-80 listener", func(t *testing.T) {
		const name = "gateway.hedge.test"
		log, _ := testLogger(t)
		var answered atomic.Int32
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if body, ok := HTTPChallenge(r.Host, r.URL.Path); ok {
				answered.Add(1)
				_, _ = io.WriteString(w, body)
				return
			}
			http.NotFound(w, r)
		})}
		httpLn, err := net.Listen("tcp", httpAddress)
		if err != nil {
			t.Fatal(err)
		}
		go func() { _ = srv.Serve(httpLn) }()
		defer srv.Close()

		m, err := New(acmeTLS(name, "http-01"), t.TempDir(), log)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		start(t, m)
		if answered.Load() == 0 {
			t.Error("the gateway's listener answered no http-01 challenge")
		}
		addr := serveTLS(t, listenLoopback(t), m.TLSConfig())
		p.checkIssued(t, m, addr, name)
	})
}
