package gateway

// HTTP/3 on the edge's TLS listeners: QUIC on the listener's port over
// UDP, through the same adapter as HTTP/2 (serveStream) and so the same
// edge as HTTP/1.1.
//
// A listener with http3 on binds the UDP port of its address beside the
// TCP one; quic-go speaks QUIC and HTTP/3 (framing, QPACK, flow control,
// stream limits) and h3Listener.ServeHTTP hands each request to
// serveStream with a view of its connection (h3View) that the edge reads
// as it reads a TLS connection's. Connections are accepted here, not by
// quic-go, so each counts against its address's max_conns_per_ip with the
// listener's TCP connections (connCap). TLS answers on the listener carry
// Alt-Svc while HTTP/3 is served, so browsers find it.
//
// 0-RTT: accepted, because a returning player's first request saves a
// round trip, but a request that arrived in early data (its connection's
// handshake not complete when it was read) is served only when its method
// is safe to replay (GET, HEAD, OPTIONS). Any other — a bet — is answered
// 425 too-early (RFC 8470), and the client sends it again after the
// handshake, where an attacker replaying captured 0-RTT packets can never
// get (it cannot finish the handshake).

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/valyala/fasthttp"

	"hedge/configs"
	"hedge/internal/problem"
)

const protoHTTP3 uint8 = 2

// buildH3 prepares the TLS configuration HTTP/3 handshakes get on a
// listener that enables it: the certificates', with h3 as the only ALPN.
func (n *Node) buildH3(ls *listenerState) {
	if !ls.tls || ls.certs == nil || !*ls.cfg.HTTP3.Enabled {
		return
	}
	ls.h3tls = http3.ConfigureTLSConfig(ls.certs.TLSConfig())
	ls.h3tls.MinVersion = tls.VersionTLS13
}

// h3Listener is a listener's HTTP/3: its UDP socket, QUIC transport and
// HTTP/3 server. It lives from the install that turns http3 on to the one
// that turns it off (or the listener's shutdown); certificates and the
// per-request settings follow reloads, QUIC's transport settings (stream
// limit, idle and handshake timeouts) are those it was bound with.
type h3Listener struct {
	el     *edgeListener
	udp    net.PacketConn
	tr     *quic.Transport
	ln     *quic.EarlyListener
	srv    *http3.Server
	altSvc string
	done   chan struct{} // closed when the accept loop ends
	conns  sync.WaitGroup
	once   sync.Once
}

// bindH3 binds the UDP side of el's address for lc's HTTP/3; serving
// starts with start, once the state that enables it is installed.
func (el *edgeListener) bindH3(lc configs.Listener) (*h3Listener, error) {
	udp, err := net.ListenPacket("udp", el.address)
	if err != nil {
		return nil, fmt.Errorf("listener %s: http3: %w", lc.Name, err)
	}
	h := &h3Listener{el: el, udp: udp, done: make(chan struct{})}
	h.altSvc = `h3=":` + strconv.Itoa(udp.LocalAddr().(*net.UDPAddr).Port) + `"; ma=86400`
	h.tr = &quic.Transport{Conn: udp}
	lim := lc.Limits
	streams := min(max(lc.HTTP2.MaxConcurrentStreams, 1), configs.MaxHTTP2Streams)
	tlsConf := &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: []string{http3.NextProtoH3},
		// Certificates follow reloads, as on the TCP side.
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			ls := el.node.state.Load().listeners[el.name]
			if ls == nil || ls.h3tls == nil {
				return nil, fmt.Errorf("listener %s does not serve HTTP/3", el.name)
			}
			return ls.h3tls, nil
		},
	}
	h.ln, err = h.tr.ListenEarly(tlsConf, &quic.Config{
		HandshakeIdleTimeout: lim.ReadTimeout.D(),
		MaxIdleTimeout:       lim.IdleTimeout.D(),
		MaxIncomingStreams:   int64(streams),
		// Unidirectional streams: HTTP/3's control and QPACK streams.
		MaxIncomingUniStreams: 8,
		Allow0RTT:             true,
	})
	if err != nil {
		_ = udp.Close()
		return nil, fmt.Errorf("listener %s: http3: %w", lc.Name, err)
	}
	h.srv = &http3.Server{
		Handler: h,
		// The bound on the header list QPACK decodes; the edge answers 431
		// above max_header_bytes itself, as over HTTP/1.1 and HTTP/2.
		MaxHeaderBytes: 2 * int(lim.MaxHeaderBytes),
		IdleTimeout:    lim.IdleTimeout.D(),
		ConnContext: func(ctx context.Context, c *quic.Conn) context.Context {
			return context.WithValue(ctx, h3ConnKey, newH3Conn(c))
		},
	}
	return h, nil
}

// start serves the bound socket until shutdown.
func (h *h3Listener) start() {
	h.el.h3.Store(h)
	go h.accept()
}

// accept admits QUIC connections under their address's cap and serves
// each on its own goroutine, owned by h (shutdown waits for them).
func (h *h3Listener) accept() {
	defer close(h.done)
	for {
		c, err := h.ln.Accept(context.Background())
		if err != nil {
			return
		}
		key, counted, ok := h.el.conns.take(udpPeer(c.RemoteAddr()))
		if !ok {
			_ = c.CloseWithError(quic.ApplicationErrorCode(http3.ErrCodeExcessiveLoad), "too many connections from this address")
			continue
		}
		h.conns.Add(1)
		go func() {
			defer h.conns.Done()
			if counted {
				defer h.el.conns.release(key)
			}
			_ = h.srv.ServeQUICConn(c)
			_ = c.CloseWithError(quic.ApplicationErrorCode(http3.ErrCodeNoError), "")
		}()
	}
}

func udpPeer(a net.Addr) netip.Addr {
	if ua, ok := a.(*net.UDPAddr); ok {
		if p, ok := netip.AddrFromSlice(ua.IP); ok {
			return p.Unmap()
		}
	}
	return netip.Addr{}
}

// shutdown stops accepting, tells every connection to stop opening
// requests (GOAWAY), waits until ctx for their requests, then closes the
// connections and the socket. Safe to call more than once.
func (h *h3Listener) shutdown(ctx context.Context) {
	h.once.Do(func() {
		h.el.h3.CompareAndSwap(h, nil) // Alt-Svc stops now
		_ = h.ln.Close()
		select {
		case <-h.done:
		case <-ctx.Done():
		}
		_ = h.srv.Shutdown(ctx)
		_ = h.tr.Close() // closes the connections still open
		h.conns.Wait()
		_ = h.udp.Close()
	})
}

// ServeHTTP serves one HTTP/3 request.
func (h *h3Listener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, _ := r.Context().Value(h3ConnKey).(*h3Conn)
	if c == nil {
		return
	}
	el := h.el
	maxHeader, read, write := configs.DefaultMaxHeaderBytes, time.Duration(0), time.Duration(0)
	if st := el.node.state.Load(); st != nil {
		if ls := st.listeners[el.name]; ls != nil {
			lim := &ls.cfg.Limits
			maxHeader, read, write = int(lim.MaxHeaderBytes), lim.ReadTimeout.D(), lim.WriteTimeout.D()
		}
	}
	// Per request: its body must arrive within read_timeout, its answer
	// leave within write_timeout (as x/net does for HTTP/2's streams).
	if d, ok := w.(h3Deadlines); ok {
		now := time.Now()
		if read > 0 {
			_ = d.SetReadDeadline(now.Add(read))
		}
		if write > 0 {
			_ = d.SetWriteDeadline(now.Add(write))
		}
	}
	view := &c.view
	if r.TLS == nil || !r.TLS.HandshakeComplete {
		view = &c.early
	}
	el.serveStream(w, r, view, maxHeader)
}

type h3Deadlines interface {
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
}

type h3Key struct{}

// h3ConnKey is a pointer, so that the context value's key needs no
// allocation per connection.
var h3ConnKey = &h3Key{}

// h3Conn is one QUIC connection as its requests see it.
type h3Conn struct {
	q      *quic.Conn
	remote *net.TCPAddr
	name   []byte
	view   h3View // requests read after the handshake
	early  h3View // requests read in 0-RTT
}

func newH3Conn(q *quic.Conn) *h3Conn {
	c := &h3Conn{q: q, remote: &net.TCPAddr{}}
	if ua, ok := q.RemoteAddr().(*net.UDPAddr); ok {
		c.remote.IP, c.remote.Port, c.remote.Zone = ua.IP, ua.Port, ua.Zone
	}
	// The ClientHello has been read (the listener returns a connection
	// once 0-RTT keys or the handshake's are in), so the server name is
	// known; tls.QUICConn answers ConnectionState mid-handshake.
	c.name = []byte(strings.TrimSuffix(strings.ToLower(q.ConnectionState().TLS.ServerName), "."))
	c.view = h3View{c: c}
	c.early = h3View{c: c, early: true}
	return c
}

// h3View is what an HTTP/3 request's fasthttp.RequestCtx sees as its
// connection: the addresses (the peer as a *net.TCPAddr, the type the
// edge reads client addresses from), the TLS state and the server name,
// and nothing that could touch the connection (deadlines, writes and
// Close do nothing). early marks requests read in 0-RTT.
type h3View struct {
	c     *h3Conn
	early bool
}

func (v *h3View) Read([]byte) (int, error)               { return 0, io.EOF }
func (v *h3View) Write(p []byte) (int, error)            { return 0, errH3View }
func (v *h3View) Close() error                           { return nil }
func (v *h3View) LocalAddr() net.Addr                    { return v.c.q.LocalAddr() }
func (v *h3View) RemoteAddr() net.Addr                   { return v.c.remote }
func (v *h3View) SetDeadline(time.Time) error            { return nil }
func (v *h3View) SetReadDeadline(time.Time) error        { return nil }
func (v *h3View) SetWriteDeadline(time.Time) error       { return nil }
func (v *h3View) Handshake() error                       { return nil }
func (v *h3View) serverName() []byte                     { return v.c.name }
func (v *h3View) HandshakeContext(context.Context) error { return nil }

// ConnectionState is the connection's TLS state, complete as far as the
// edge is concerned: a QUIC stream always has keys to answer with (in
// 0-RTT, the server's 1-RTT keys).
func (v *h3View) ConnectionState() tls.ConnectionState {
	cs := v.c.q.ConnectionState().TLS
	cs.HandshakeComplete = true
	return cs
}

var errH3View = errors.New("an HTTP/3 request writes through its ResponseWriter")

// refuseEarlyData answers 425 a request read in 0-RTT whose method is not
// safe to replay, and reports whether it did.
func refuseEarlyData(ctx *fasthttp.RequestCtx, id []byte) bool {
	v, ok := ctx.Conn().(*h3View)
	if !ok || !v.early {
		return false
	}
	switch string(ctx.Method()) {
	case fasthttp.MethodGet, fasthttp.MethodHead, fasthttp.MethodOptions:
		return false
	}
	answer(ctx, problem.Refuse(problem.TooEarly, "this request arrived in TLS early data, which can be replayed: send it again now that the handshake is done"), id)
	return true
}

// bindH3s binds the UDP sockets of st's listeners that turn HTTP/3 on (or
// that are fresh and have it on), before st is installed, so that a bind
// failure leaves the old state serving. startH3s serves them.
func (n *Node) bindH3s(st *nodeState, fresh []*edgeListener) (map[string]*h3Listener, error) {
	bound := map[string]*h3Listener{}
	for _, lc := range st.node.Listeners {
		if !*lc.HTTP3.Enabled || lc.TLS.Mode == configs.TLSOff {
			continue
		}
		el := n.listeners[lc.Name]
		for _, f := range fresh {
			if f.name == lc.Name {
				el = f
			}
		}
		if el == n.listeners[lc.Name] && el.h3.Load() != nil {
			continue // serving already; the new certificates reach it
		}
		h, err := el.bindH3(lc)
		if err != nil {
			for _, b := range bound {
				_ = b.udp.Close()
			}
			return nil, err
		}
		bound[lc.Name] = h
	}
	return bound, nil
}

// startH3s serves what bindH3s bound, and shuts HTTP/3 down gracefully on
// the listeners st turns it off for.
func (n *Node) startH3s(st *nodeState, bound map[string]*h3Listener) {
	for name, el := range n.listeners {
		if h := bound[name]; h != nil {
			h.start()
			continue
		}
		if ls := st.listeners[name]; ls != nil && ls.h3tls != nil {
			continue
		}
		if h := el.h3.Load(); h != nil {
			el.h3.CompareAndSwap(h, nil) // Alt-Svc stops with this state
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), st.cfg.Lifecycle.ShutdownTimeout.D())
				defer cancel()
				h.shutdown(ctx)
			}()
		}
	}
}
