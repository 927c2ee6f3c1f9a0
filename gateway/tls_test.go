package gateway

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"hedge/internal/testkit"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// tlsConfig is one node with a TLS listener (hedge's internal CA) in front
// of one upstream; {{LIMITS}} sets the listener's limits.
const tlsConfig = `
data_dir: {{DATA}}
waf: {mode: off}
log: {level: debug, access: {enabled: true, path: {{DATA}}/access.log, flush_interval: 50ms}}
admin: {allow_loopback: true}
lifecycle: {drain_period: 10ms, shutdown_timeout: 5s}
routes:
  - name: games
    match: {path_prefix: /}
    pool: games
` + seaListener + `            tls: {mode: internal, names: [play.edge.test, sea.edge.test]}
            limits: {{LIMITS}}
` + seaTail

type tlsEdge struct {
	*testEdge
	addr  string
	roots *x509.CertPool
}

func startTLSEdge(t *testing.T, limits string) *tlsEdge {
	t.Helper()
	g1 := newUpstream(t, "g1")
	e := startEdge(t, tlsConfig, "{{G1}}", g1.addr(), "{{LIMITS}}", limits)
	return &tlsEdge{testEdge: e, addr: strings.TrimPrefix(e.url, "http://"), roots: e.rootCAs(t)}
}

// dial opens a verified TLS connection with SNI sni ("" sends none).
func (e *tlsEdge) dial(t *testing.T, sni string) *tls.Conn {
	t.Helper()
	cfg := &tls.Config{RootCAs: e.roots, ServerName: sni}
	if sni == "" {
		// No SNI (as for an IP literal): verify the chain against the name
		// the certificate carries instead.
		cfg.InsecureSkipVerify = true
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			opts := x509.VerifyOptions{Roots: e.roots, DNSName: "play.edge.test", Intermediates: x509.NewCertPool()}
			for _, c := range cs.PeerCertificates[1:] {
				opts.Intermediates.AddCert(c)
			}
			_, err := cs.PeerCertificates[0].Verify(opts)
			return err
		}
	}
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", e.addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// accessLine waits for the access-log line of request id and returns it.
func (e *tlsEdge) accessLine(t *testing.T, id string) map[string]any {
	t.Helper()
	path := e.path("access.log")
	var line map[string]any
	testkit.WaitUntil(t, "the access-log line of request "+id, 5*time.Second, func() bool {
		b, _ := os.ReadFile(path)
		for _, l := range strings.Split(string(b), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(l), &m) == nil && m["id"] == id {
				line = m
				return true
			}
		}
		return false
	})
	return line
}

// A client too slow for read_timeout over TLS gets the documented 408
// problem+json and the connection closes, whatever part of the request it
// had sent, and the refusal is in the access log. read_timeout equals
// write_timeout here: the deadline fasthttp set for writing at the
// handshake (or at the previous answer) has passed by the time the read
// times out, and the 408 used to be cut off mid-record and followed by a
// TLS alert.
func TestReadTimeoutOverTLSAnswers408(t *testing.T) {
	e := startTLSEdge(t, "{read_timeout: 1s, write_timeout: 1s, idle_timeout: 10s}")
	cases := []struct {
		name string
		send func(t *testing.T, c *tls.Conn, br *bufio.Reader)
	}{
		{"nothing after the handshake", func(*testing.T, *tls.Conn, *bufio.Reader) {}},
		{"half a request line", func(t *testing.T, c *tls.Conn, _ *bufio.Reader) {
			io.WriteString(c, "GET /lob")
		}},
		{"headers without their end", func(t *testing.T, c *tls.Conn, _ *bufio.Reader) {
			io.WriteString(c, "GET /lobby HTTP/1.1\r\nHost: play.edge.test\r\n")
		}},
		{"a body shorter than its Content-Length", func(t *testing.T, c *tls.Conn, _ *bufio.Reader) {
			io.WriteString(c, "POST /lobby HTTP/1.1\r\nHost: play.edge.test\r\nContent-Length: 100\r\n\r\nabc")
		}},
		{"a second request on a kept-alive connection, after write_timeout", func(t *testing.T, c *tls.Conn, br *bufio.Reader) {
			io.WriteString(c, "GET /lobby HTTP/1.1\r\nHost: play.edge.test\r\n\r\n")
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("first request: %v", err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("first request: want 200, got %d", resp.StatusCode)
			}
			// Past the write deadline set with the first answer.
			time.Sleep(1200 * time.Millisecond)
			io.WriteString(c, "GET /lobby HTTP/1.1\r\nHost: play.edge.test\r\n")
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			conn := e.dial(t, "play.edge.test")
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			br := bufio.NewReader(conn)
			c.send(t, conn, br)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("want a 408 answer, got %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var p struct {
				Type      string `json:"type"`
				RequestID string `json:"request_id"`
			}
			_ = json.Unmarshal(body, &p)
			if resp.StatusCode != 408 || resp.Header.Get("Content-Type") != "application/problem+json" || p.Type != "urn:hedge:problem:request-timeout" {
				t.Fatalf("want 408 problem+json request-timeout, got %d %q %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
			}
			if !resp.Close {
				t.Error("want Connection: close on the 408")
			}
			if _, err := br.ReadByte(); err == nil {
				t.Error("the connection stayed open after the 408")
			}
			line := e.accessLine(t, p.RequestID)
			if line["status"] != 408.0 || line["listener"] != "public" || line["route"] != "-" {
				t.Errorf("access-log line: want status 408 on listener public, route -, got %v", line)
			}
		})
	}
}

// Before the TLS handshake completes there are no keys to answer with: a
// client that connects and sends nothing, or half a ClientHello, has its
// connection closed after read_timeout without a byte, and no access-log
// line (there was no request). The README says so.
func TestReadTimeoutDuringTLSHandshakeCloses(t *testing.T) {
	e := startTLSEdge(t, "{read_timeout: 1s, write_timeout: 1s}")
	for _, send := range []string{"", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"} {
		// The edge's clock starts when it accepts, which is after the dial
		// began and may be before it returned.
		start := time.Now()
		c, err := net.Dial("tcp", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, send)
		got, err := io.ReadAll(c)
		if err != nil {
			t.Fatalf("sent %q: want the connection closed, got %v", send, err)
		}
		if len(got) != 0 {
			t.Fatalf("sent %q: want nothing before the close, got %q", send, got)
		}
		if took := time.Since(start); took < 900*time.Millisecond {
			t.Fatalf("sent %q: closed after %v, before read_timeout", send, took)
		}
	}
}
