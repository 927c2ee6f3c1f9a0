package gateway

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"hedge/internal/testkit"
)

// roundTrip writes one request on c and reads its answer.
func roundTrip(t *testing.T, c net.Conn, br *bufio.Reader, raw string) (*http.Response, string) {
	t.Helper()
	if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatalf("writing the request: %v", err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

// A request whose Host names another server than the TLS connection's SNI
// is answered 421 misdirected-request, even when the certificate covers
// both names; a matching Host (any case, a port, a trailing dot) is
// served; connections without SNI keep today's behaviour.
func TestHostTiedToSNI(t *testing.T) {
	e := startTLSEdge(t, "{read_timeout: 5s}")
	cases := []struct {
		name, sni, host, path string
		status                int
	}{
		{"matching Host", "play.edge.test", "play.edge.test", "/lobby", 200},
		{"Host with a port, upper case and a trailing dot", "play.edge.test", "PLAY.Edge.Test.:8443", "/lobby", 200},
		{"SNI dialled with a trailing dot", "sea.edge.test.", "sea.edge.test", "/lobby", 200},
		{"/healthz as DNS probes it (SNI and Host the service name)", "play.edge.test", "play.edge.test", "/healthz", 200},
		{"another name the certificate also covers", "play.edge.test", "sea.edge.test", "/lobby", 421},
		{"the other way round", "sea.edge.test", "play.edge.test:8443", "/lobby", 421},
		{"an IP literal Host on a named connection", "play.edge.test", "127.0.0.1", "/lobby", 421},
		{"no SNI (an IP literal was dialled): not checked", "", "sea.edge.test", "/lobby", 200},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			conn := e.dial(t, c.sni)
			br := bufio.NewReader(conn)
			resp, body := roundTrip(t, conn, br, "GET "+c.path+" HTTP/1.1\r\nHost: "+c.host+"\r\n\r\n")
			if resp.StatusCode != c.status {
				t.Fatalf("SNI %q, Host %q: want %d, got %d %s", c.sni, c.host, c.status, resp.StatusCode, body)
			}
			if c.status != 421 {
				return
			}
			var p struct {
				Type string `json:"type"`
			}
			if json.Unmarshal([]byte(body), &p); p.Type != "urn:hedge:problem:misdirected-request" || resp.Header.Get("Content-Type") != "application/problem+json" {
				t.Fatalf("want a misdirected-request problem, got %q %s", resp.Header.Get("Content-Type"), body)
			}
			// The connection stays usable for the name it was opened for.
			host := strings.TrimSuffix(c.sni, ".")
			if resp, body := roundTrip(t, conn, br, "GET /lobby HTTP/1.1\r\nHost: "+host+"\r\n\r\n"); resp.StatusCode != 200 {
				t.Fatalf("after the 421, a request for %s on the same connection: want 200, got %d %s", host, resp.StatusCode, body)
			}
		})
	}
}

// A trusted proxy may re-encrypt with its own SNI and forward the client's
// Host: its connections are not held to the match.
func TestHostSNIMismatchFromTrustedProxy(t *testing.T) {
	e := startTLSEdge(t, "{read_timeout: 5s}\n            trusted_proxies: [127.0.0.0/8]")
	conn := e.dial(t, "play.edge.test")
	if resp, body := roundTrip(t, conn, bufio.NewReader(conn), "GET /lobby HTTP/1.1\r\nHost: sea.edge.test\r\n\r\n"); resp.StatusCode != 200 {
		t.Fatalf("trusted proxy with SNI play.edge.test and Host sea.edge.test: want 200, got %d %s", resp.StatusCode, body)
	}
}

// connCapConfig is one plain listener with a cap of 3 connections per
// address; 127.0.0.3 is a trusted proxy.
const connCapConfig = debugHead + `waf: {mode: off}
routes:
  - name: games
    match: {path_prefix: /}
    pool: games
` + seaListener + `            tls: {mode: off}
            trusted_proxies: [127.0.0.3/32]
            limits: {max_conns_per_ip: 3}
` + seaTail

// dialFrom opens a connection to addr from the local address from and
// checks that the edge serves it.
func dialFrom(t *testing.T, from, addr string) (net.Conn, *bufio.Reader, error) {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	br := bufio.NewReader(c)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET /lobby HTTP/1.1\r\nHost: play.edge.test\r\n\r\n"); err != nil {
		return c, br, err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return c, br, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return c, br, fmt.Errorf("status %d", resp.StatusCode)
	}
	return c, br, nil
}

// One address may hold max_conns_per_ip connections; the next one is
// closed before anything is read from it and counted, other addresses and
// trusted proxies are not affected, and a closed connection frees its place.
func TestConnectionsPerAddressCapped(t *testing.T) {
	g1 := newUpstream(t, "g1")
	e := startEdge(t, connCapConfig, "{{G1}}", g1.addr())
	addr := strings.TrimPrefix(e.url, "http://")
	var held []net.Conn
	for i := range 3 {
		c, _, err := dialFrom(t, "127.0.0.1", addr)
		if err != nil {
			t.Fatalf("connection %d of 3 from 127.0.0.1: want it served, got %v", i+1, err)
		}
		held = append(held, c)
	}
	if _, _, err := dialFrom(t, "127.0.0.1", addr); err == nil {
		t.Fatal("a 4th connection from 127.0.0.1 with max_conns_per_ip 3 was served")
	}
	metrics := get(t, e.admin+"/metrics")
	if !strings.Contains(metrics, `hedge_connections_refused_total{listener="public",node="sea-1",reason="per_ip",region="sea"} 1`) {
		t.Fatalf("want one per_ip refusal counted, got:\n%s", grepLines(metrics, "hedge_connections_refused_total"))
	}
	if _, _, err := dialFrom(t, "127.0.0.2", addr); err != nil {
		t.Fatalf("another address while 127.0.0.1 is at its cap: want it served, got %v", err)
	}
	for i := range 5 {
		if _, _, err := dialFrom(t, "127.0.0.3", addr); err != nil {
			t.Fatalf("connection %d from the trusted proxy 127.0.0.3: want it served (not counted), got %v", i+1, err)
		}
	}
	held[0].Close()
	el := e.g.Nodes()[0].listeners["public"]
	testkit.WaitUntil(t, "the closed connection's place freed", 5*time.Second, func() bool {
		return el.conns.openFrom(netip.MustParseAddr("127.0.0.1")) == 2
	})
	if _, _, err := dialFrom(t, "127.0.0.1", addr); err != nil {
		t.Fatalf("after one of 127.0.0.1's connections closed: want a new one served, got %v", err)
	}
}

// IPv6 clients are counted by /64, as rate limits count them.
func TestCapKeyGroupsIPv6By64(t *testing.T) {
	cases := []struct{ a, b string }{
		{"2001:db8:1:2::1", "2001:db8:1:2:ffff::9"},
		{"::ffff:192.0.2.1", "192.0.2.1"},
	}
	for _, c := range cases {
		if ka, kb := capKey(netip.MustParseAddr(c.a)), capKey(netip.MustParseAddr(c.b)); ka != kb {
			t.Errorf("capKey(%s) = %s, capKey(%s) = %s: want one key", c.a, ka, c.b, kb)
		}
	}
	if capKey(netip.MustParseAddr("2001:db8:1:2::1")) == capKey(netip.MustParseAddr("2001:db8:1:3::1")) {
		t.Error("two /64s share a key")
	}
}

// At start the soft open-files limit is raised to the hard limit, and a
// listener whose max_conns the limit cannot hold is logged.
func TestFileLimitRaisedAndChecked(t *testing.T) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	var logs testkit.Buffer
	g1 := newUpstream(t, "g1")
	huge := fmt.Sprint(rl.Max + 1)
	startEdgeWith(t, edgeOptions{log: &logs}, strings.Replace(connCapConfig, "limits: {max_conns_per_ip: 3}", "limits: {max_conns: "+huge+"}", 1), "{{G1}}", g1.addr())
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	if rl.Cur != rl.Max {
		t.Errorf("soft open-files limit %d, want the hard limit %d", rl.Cur, rl.Max)
	}
	if !strings.Contains(logs.String(), "listeners may accept more connections than the open-files limit allows") ||
		!strings.Contains(logs.String(), "listeners_max_conns="+huge) {
		t.Fatalf("want a warning naming max_conns %s over the limit %d, got logs:\n%s", huge, rl.Cur, logs.String())
	}
}

// The per-request part of the Host-SNI check allocates nothing (the name is
// read once per connection).
func TestMisdirectedNoAllocs(t *testing.T) {
	var ctx fasthttp.RequestCtx
	ctx.Init2(&sniConn{name: []byte("play.edge.test"), read: true}, nil, false)
	ctx.Request.Header.SetHost("PLAY.Edge.Test.:8443")
	var got bool
	if n := testing.AllocsPerRun(100, func() { got = misdirected(&ctx, false) }); n != 0 {
		t.Fatalf("misdirected: %v allocs per request, want 0", n)
	}
	if got {
		t.Fatal("a matching Host was reported misdirected: the allocation test measures the wrong path")
	}
}
