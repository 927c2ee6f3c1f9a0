package gateway

import (
	"crypto/tls"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/valyala/fasthttp"

	"hedge/internal/httpx"
)

// The edge's connections, below HTTP: a cap on the open connections of one
// client address (limits.max_conns_per_ip), counted before the TLS
// handshake so that an address over it costs no handshake, and the TLS
// server name each connection was opened with, for tying Host to it.

// connCap is one listener's count of open connections per client address.
// The listener it wraps outlives reloads; the cap and the trusted proxies
// are read from the node's current state at each accept, so a reload
// changes them at once (connections already open stay).
type connCap struct {
	net.Listener
	el *edgeListener

	mu   sync.Mutex
	open map[netip.Addr]int
}

func newConnCap(ln net.Listener, el *edgeListener) *connCap {
	return &connCap{Listener: ln, el: el, open: map[netip.Addr]int{}}
}

// capKey is what one client is counted as: its IPv4 address, or the /64 of
// its IPv6 address (a subscriber holds a whole /64, as rate limits count).
func capKey(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

// Accept returns the next connection whose address is under its cap;
// connections over it are closed here, before anything is read from them.
func (c *connCap) Accept() (net.Conn, error) {
	for {
		conn, err := c.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if cc, ok := c.admit(conn); ok {
			return cc, nil
		}
		_ = conn.Close()
	}
}

func (c *connCap) admit(conn net.Conn) (net.Conn, bool) {
	ta, ok := conn.RemoteAddr().(*net.TCPAddr)
	if !ok {
		return conn, true
	}
	peer, ok := netip.AddrFromSlice(ta.IP)
	if !ok {
		return conn, true
	}
	key, counted, ok := c.take(peer.Unmap())
	switch {
	case !ok:
		return nil, false
	case !counted:
		return conn, true
	}
	return &cappedConn{Conn: conn, cap: c, key: key}, true
}

// take counts a connection from peer (a TCP one, or a QUIC one: both
// protocols share the cap) and reports whether it is admitted; a counted
// connection gives its place back with release(key) when it closes.
func (c *connCap) take(peer netip.Addr) (key netip.Addr, counted, ok bool) {
	if !peer.IsValid() {
		return key, false, true
	}
	n := c.el.node
	st := n.state.Load()
	if st == nil {
		return key, false, true
	}
	ls := st.listeners[c.el.name]
	if ls == nil || ls.trusted.Contains(peer) {
		// A listener being removed, or a trusted proxy: the proxy carries
		// many clients, and max_conns bounds it.
		return key, false, true
	}
	key, limit := capKey(peer), ls.cfg.Limits.MaxConnsPerIP
	c.mu.Lock()
	if c.open[key] >= limit {
		c.mu.Unlock()
		n.g.metrics.protect.connsRefused.WithLabelValues(n.region, n.name, c.el.name, "per_ip").Inc()
		n.log.Debug("connection refused: too many from one address", "listener", c.el.name, "peer", peer, "max_conns_per_ip", limit)
		return key, false, false
	}
	c.open[key]++
	c.mu.Unlock()
	return key, true, true
}

func (c *connCap) release(key netip.Addr) {
	c.mu.Lock()
	if c.open[key]--; c.open[key] <= 0 {
		delete(c.open, key)
	}
	c.mu.Unlock()
}

// openFrom is the number of counted connections of addr's key (tests).
func (c *connCap) openFrom(addr netip.Addr) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.open[capKey(addr)]
}

// cappedConn gives its place back to the count when it closes (once, however
// often Close is called).
type cappedConn struct {
	net.Conn
	cap    *connCap
	key    netip.Addr
	closed atomic.Bool
}

func (c *cappedConn) Close() error {
	if !c.closed.Swap(true) {
		c.cap.release(c.key)
	}
	return c.Conn.Close()
}

// tlsListener is tls.NewListener whose connections remember the server
// name (SNI) they were opened with.
type tlsListener struct {
	net.Listener
	cfg *tls.Config
}

func (l tlsListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &sniConn{Conn: tls.Server(c, l.cfg)}, nil
}

// sniConn is a TLS connection of an edge listener. It embeds *tls.Conn, so
// fasthttp still sees a TLS connection (RequestCtx.IsTLS). fasthttp serves a
// connection's requests one after another on one goroutine, and HTTP/2
// reads the name once before its streams start (serveH2), so the cached
// name needs no lock.
type sniConn struct {
	*tls.Conn
	name []byte // lower case, without a trailing dot; empty: no SNI
	read bool
}

// serverName is the SNI of the handshake, read once per connection (asking
// tls.Conn every request would take its handshake lock each time).
func (c *sniConn) serverName() []byte {
	if !c.read {
		cs := c.Conn.ConnectionState()
		if !cs.HandshakeComplete {
			return nil
		}
		c.name = []byte(strings.TrimSuffix(strings.ToLower(cs.ServerName), "."))
		c.read = true
	}
	return c.name
}

// misdirected reports whether a request on a TLS connection names, in its
// Host, another server than the one the connection was opened for (RFC 9110
// §15.5.20, RFC 9112 §3.2): a certificate valid for several names must not
// let a connection opened for one of them reach the routes of another.
// Connections without SNI (clients that dialled an IP literal) and from
// trusted proxies (which may name the origin in their SNI and forward the
// client's Host) are not checked.
func misdirected(ctx *fasthttp.RequestCtx, trustedPeer bool) bool {
	// An HTTP/1.1 connection (*sniConn) or an HTTP/2 stream's view of one.
	sc, ok := ctx.Conn().(interface{ serverName() []byte })
	if !ok || trustedPeer {
		return false
	}
	name := sc.serverName()
	return len(name) > 0 && !httpx.EqualFoldLower(hostOnly(ctx.Request.Header.Host()), name)
}
