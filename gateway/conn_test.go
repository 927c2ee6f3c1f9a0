package gateway

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"
)

// connCapConfig is one plain listener with a cap of 3 connections per
// address; 127.0.0.3 is a trusted proxy.
const connCapConfig = `
data_dir: {{DATA}}
waf: {mode: off}
log: {level: debug, access: {enabled: false}}
admin: {allow_loopback: true}
lifecycle: {drain_period: 10ms, shutdown_timeout: 5s}
routes:
  - name: games
    match: {path_prefix: /}
    pool: games
regions:
  - name: sea
    nodes:
      - name: sea-1
        listeners:
          - name: public
            address: {{EDGE}}
            tls: {mode: off}
            trusted_proxies: [127.0.0.3/32]
            limits: {max_conns_per_ip: 3}
        admin: {address: {{ADMIN}}}
    pools:
      - name: games
        members: [{name: g1, url: "http://{{G1}}"}]
        health: {interval: 100ms, timeout: 100ms, rise: 1, fall: 2}
`

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
	waitUntil(t, "the closed connection's place freed", 5*time.Second, func() bool {
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
	var logs logBuffer
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
