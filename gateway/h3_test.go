package gateway

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// h3Client is an HTTP/3 client of the edge, dialling its address whatever
// the URL's host.
func (e *h2Edge) h3Client(t testing.TB) *http.Client {
	t.Helper()
	tr := &http3.Transport{TLSClientConfig: e.clientTLS(http3.NextProtoH3),
		Dial: func(ctx context.Context, _ string, tlsCfg *tls.Config, cfg *quic.Config) (*quic.Conn, error) {
			return quic.DialAddrEarly(ctx, e.addr, tlsCfg, cfg)
		}}
	t.Cleanup(func() { _ = tr.Close() })
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// tryH3 sends one GET over a new HTTP/3 connection and returns its
// status, or the error (within a short deadline: a port that does not
// speak QUIC does not answer at all).
func (e *h2Edge) tryH3(t testing.TB, path string) (int, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	conn, err := quic.DialAddr(ctx, e.addr, e.clientTLS(http3.NextProtoH3), &quic.Config{HandshakeIdleTimeout: 2 * time.Second})
	if err != nil {
		return 0, err
	}
	defer conn.CloseWithError(0, "")
	req, _ := http.NewRequestWithContext(ctx, "GET", "https://play.edge.test"+path, nil)
	resp, err := (&http3.Transport{}).NewClientConn(conn).RoundTrip(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// setHTTP3 rewrites the edge's configuration with http3 on or off and
// reloads it.
func (e *h2Edge) setHTTP3(t testing.TB, on bool) {
	t.Helper()
	from, to := "http3: {enabled: false}", "http3: {enabled: true}"
	if !on {
		from, to = to, from
	}
	rewriteConfig(t, e.testEdge, from, to)
	if err := e.g.Reload(context.Background()); err != nil {
		t.Fatalf("reload with http3 %v: %v", on, err)
	}
}

// HTTP/3 is off by default and one line turns it on and off again by
// reload: while it is on, the UDP side of the port answers HTTP/3 and
// every TLS answer advertises it with Alt-Svc; while it is off, neither.
// Requests over HTTP/3 are counted and logged with proto "3".
func TestHTTP3ReloadTogglesItAndAltSvc(t *testing.T) {
	e := startH23Edge(t, "{}", "{}", "{enabled: false}")
	h2 := e.client(t, "2")
	port := e.addr[strings.LastIndexByte(e.addr, ':')+1:]
	steps := []struct {
		name string
		on   bool
	}{
		{"off by default", false},
		{"turned on by reload", true},
		{"turned off by reload", false},
		{"on again", true},
	}
	for i, s := range steps {
		if i > 0 {
			e.setHTTP3(t, s.on)
		}
		a := send(t, h2, "GET", "https://play.edge.test/games/lobby", "")
		want := ""
		if s.on {
			want = `h3=":` + port + `"; ma=86400`
		}
		if got := a.header.Get("Alt-Svc"); a.status != 200 || got != want {
			t.Errorf("%s: over HTTP/2 want 200 with Alt-Svc %q, got %d with %q", s.name, want, a.status, got)
		}
		status, err := e.tryH3(t, "/games/lobby")
		switch {
		case s.on && (err != nil || status != 200):
			t.Errorf("%s: over HTTP/3 want 200, got %d %v", s.name, status, err)
		case !s.on && err == nil:
			t.Errorf("%s: want no HTTP/3, got an answer %d", s.name, status)
		}
	}
	metrics := get(t, e.admin+"/metrics")
	if !strings.Contains(metrics, `proto="3",region="sea",route="games",status="200"`) {
		t.Errorf("metrics: want requests counted with proto=\"3\", got:\n%s", grepLines(metrics, "hedge_requests_total"))
	}
	e.waitAccessLog(t, `a line with "proto":"3"`, `"proto":"3"`)
}

// QUIC connections count against the listener's max_conns_per_ip with its
// TCP connections: past the cap, a new QUIC connection is closed (and a
// TCP one too); once one closes, a new one is served.
func TestHTTP3ConnectionsCountPerAddress(t *testing.T) {
	e := startH23Edge(t, "{max_conns_per_ip: 1}", "{}", "{enabled: true}")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	held, err := quic.DialAddr(ctx, e.addr, e.clientTLS(http3.NextProtoH3), nil)
	if err != nil {
		t.Fatal(err)
	}
	cc := (&http3.Transport{}).NewClientConn(held)
	req, _ := http.NewRequest("GET", "https://play.edge.test/games/lobby", nil)
	resp, err := cc.RoundTrip(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("first connection: want 200, got %v %v", resp, err)
	}
	resp.Body.Close()
	if status, err := e.tryH3(t, "/games/lobby"); err == nil {
		t.Errorf("second QUIC connection over the cap: want it closed, got %d", status)
	}
	if c, err := tls.Dial("tcp", e.addr, e.clientTLS("http/1.1")); err == nil {
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		_, _ = c.Write([]byte("GET /games/lobby HTTP/1.1\r\nHost: play.edge.test\r\n\r\n"))
		if b, err := io.ReadAll(c); err == nil && len(b) > 0 {
			t.Errorf("a TCP connection over the cap: want it closed, got %.100q", b)
		}
		c.Close()
	}
	_ = held.CloseWithError(0, "")
	deadline := time.Now().Add(5 * time.Second)
	for {
		status, err := e.tryH3(t, "/games/lobby")
		if err == nil && status == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the first connection closed: want a new one served, got %d %v", status, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// handshakeGate is a client's UDP socket that, until opened, holds back
// what the server sends: the client cannot finish its handshake (it has
// not seen the server's), so what it sends is its ClientHello and 0-RTT
// packets, and the server has to decide on what arrived in 0-RTT before
// its handshake can complete — as it does for an attacker replaying 0-RTT
// packets, who can never complete it.
type handshakeGate struct {
	net.PacketConn
	open, done chan struct{}
	openOnce   sync.Once
}

func newHandshakeGate(c net.PacketConn) *handshakeGate {
	return &handshakeGate{PacketConn: c, open: make(chan struct{}), done: make(chan struct{})}
}

func (g *handshakeGate) ReadFrom(p []byte) (int, net.Addr, error) {
	n, addr, err := g.PacketConn.ReadFrom(p)
	select {
	case <-g.open:
	case <-g.done:
		return 0, nil, net.ErrClosed
	}
	return n, addr, err
}

func (g *handshakeGate) openGate() { g.openOnce.Do(func() { close(g.open) }) }

func (g *handshakeGate) Close() error {
	select {
	case <-g.done:
	default:
		close(g.done)
	}
	return g.PacketConn.Close()
}

// ticketSignal is a session cache that says when it got a ticket.
type ticketSignal struct {
	tls.ClientSessionCache
	once sync.Once
	got  chan struct{}
}

func (c *ticketSignal) Put(key string, cs *tls.ClientSessionState) {
	c.ClientSessionCache.Put(key, cs)
	if cs != nil {
		c.once.Do(func() { close(c.got) })
	}
}

// A request that arrives in 0-RTT is served only when its method is safe
// to replay: a GET is answered, a POST (a bet) gets 425 too-early, and the
// same POST sent after the handshake is served. 0-RTT is really used.
func TestHTTP3RefusesUnsafeRequestsInEarlyData(t *testing.T) {
	e := startH23Edge(t, "{}", "{}", "{enabled: true}")
	cache := &ticketSignal{ClientSessionCache: tls.NewLRUClientSessionCache(4), got: make(chan struct{})}
	tlsConf := e.clientTLS(http3.NextProtoH3)
	tlsConf.ClientSessionCache = cache
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// A first connection, for a ticket that allows 0-RTT.
	first, err := quic.DialAddr(ctx, e.addr, tlsConf, nil)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(ctx, "GET", "https://play.edge.test/games/lobby", nil)
	if resp, err := (&http3.Transport{}).NewClientConn(first).RoundTrip(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("first connection: want 200, got %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	select {
	case <-cache.got:
	case <-ctx.Done():
		t.Fatal("no session ticket from the edge")
	}
	_ = first.CloseWithError(0, "")

	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gate := newHandshakeGate(udp)
	tr := &quic.Transport{Conn: gate}
	defer tr.Close()
	raddr, _ := net.ResolveUDPAddr("udp", e.addr)
	conn, err := tr.DialEarly(ctx, raddr, tlsConf, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseWithError(0, "")
	cc := (&http3.Transport{}).NewClientConn(conn)
	steps := []struct {
		method  string
		status  int
		problem string
	}{
		{"GET", 200, ""},
		{"POST", 425, "urn:hedge:problem:too-early"},
		{"DELETE", 425, "urn:hedge:problem:too-early"},
	}
	// The requests are sent at once, without waiting for the handshake (a
	// RequestStream's header carries no length: they have no body).
	seen := e.games.pathHits("/games/chat")
	streams := make([]*http3.RequestStream, len(steps))
	for i, s := range steps {
		str, err := cc.OpenRequestStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequestWithContext(ctx, s.method, "https://play.edge.test/games/chat", nil)
		req.Header.Set("X-Request-Id", "early-"+s.method)
		if err := str.SendRequestHeader(req); err != nil {
			t.Fatal(err)
		}
		_ = str.Close()
		streams[i] = str
	}
	// Until the client's address is validated (by its handshake packets),
	// QUIC's anti-amplification limit holds the answers back: the edge's
	// decisions are read from its access log, while the handshake is held.
	var ids []string
	for _, s := range steps {
		ids = append(ids, `"id":"early-`+s.method+`"`)
	}
	e.waitAccessLog(t, fmt.Sprintf("the %d requests sent in 0-RTT", len(steps)), ids...)
	if got := e.games.pathHits("/games/chat") - seen; got != 1 {
		t.Errorf("upstream: want only the GET sent in 0-RTT to arrive, got %d requests", got)
	}
	gate.openGate()
	for i, s := range steps {
		resp, err := streams[i].ReadResponse()
		if err != nil {
			t.Fatalf("%s in 0-RTT: %v", s.method, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != s.status || !strings.Contains(string(b), s.problem) {
			t.Errorf("%s in 0-RTT: want %d %s, got %d %.200s", s.method, s.status, s.problem, resp.StatusCode, b)
		}
	}
	select {
	case <-conn.HandshakeComplete():
	case <-ctx.Done():
		t.Fatal("the handshake did not complete once the gate opened")
	}
	if !conn.ConnectionState().Used0RTT {
		t.Fatal("the server did not accept 0-RTT: nothing was tested")
	}
	post, _ := http.NewRequestWithContext(ctx, "POST", "https://play.edge.test/games/chat", strings.NewReader(`{"msg":"hi"}`))
	post.Header.Set("Content-Type", "application/json")
	resp, err := cc.RoundTrip(post)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("the POST after the handshake: want 200, got %v %v", resp, err)
	}
	resp.Body.Close()
}

// Shutting the node down ends HTTP/3 gracefully: a request in flight is
// answered, then the UDP port is given back and a new QUIC connection
// gets no answer.
func TestHTTP3Shutdown(t *testing.T) {
	e := startH23Edge(t, "{}", "{}", "{enabled: true}")
	if status, err := e.tryH3(t, "/games/lobby"); err != nil || status != 200 {
		t.Fatalf("before shutdown: want 200, got %d %v", status, err)
	}
	e.games.delay.Store(int64(time.Second))
	c := e.h3Client(t)
	inFlight := make(chan reply, 1)
	go func() {
		req, _ := http.NewRequest("GET", "https://play.edge.test/games/slow", nil)
		req.Header.Set("X-Slow", "1")
		resp, err := c.Do(req)
		if err != nil {
			inFlight <- reply{body: err.Error()}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		inFlight <- reply{status: resp.StatusCode, body: string(b)}
	}()
	for deadline := time.Now().Add(5 * time.Second); e.games.pathHits("/games/slow") == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the slow request did not reach the upstream")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	began := time.Now()
	e.g.Shutdown(ctx)
	if d := time.Since(began); d > 5*time.Second {
		t.Errorf("shutdown took %v", d)
	}
	if a := <-inFlight; a.status != 200 {
		t.Errorf("the request in flight at shutdown: want 200, got %d %.200s", a.status, a.body)
	}
	if status, err := e.tryH3(t, "/games/lobby"); err == nil {
		t.Errorf("after shutdown: want no HTTP/3, got %d", status)
	}
	udp, err := net.ListenPacket("udp", e.addr)
	if err != nil {
		t.Fatalf("after shutdown: want the UDP port free, got %v", err)
	}
	udp.Close()
}

// BenchmarkH3Adapter is BenchmarkH2Adapter over HTTP/3's handler: the
// connection's view found in the request's context, then the same adapter.
func BenchmarkH3Adapter(b *testing.B) {
	el := benchEdgeListener(b)
	c := &h3Conn{remote: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}, name: []byte("play.edge.test")}
	c.view, c.early = h3View{c: c}, h3View{c: c, early: true}
	h := &h3Listener{el: el}
	benchAdapter(b, h, context.WithValue(context.Background(), h3ConnKey, c), &tls.ConnectionState{HandshakeComplete: true})
}
