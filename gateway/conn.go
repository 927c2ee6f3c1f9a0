package gateway

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
)

// The edge's connections, below HTTP: a cap on the open connections of one
// client address (limits.max_conns_per_ip), counted before the TLS
// handshake so that an address over it costs no handshake.

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
	peer = peer.Unmap()
	n := c.el.node
	st := n.state.Load()
	if st == nil {
		return conn, true
	}
	ls := st.listeners[c.el.name]
	if ls == nil || ls.trusted.Contains(peer) {
		// A listener being removed, or a trusted proxy: the proxy carries
		// many clients, and max_conns bounds it.
		return conn, true
	}
	key, limit := capKey(peer), ls.cfg.Limits.MaxConnsPerIP
	c.mu.Lock()
	if c.open[key] >= limit {
		c.mu.Unlock()
		n.g.metrics.protect.connsRefused.WithLabelValues(n.region, n.name, c.el.name, "per_ip").Inc()
		n.log.Debug("connection refused: too many from one address", "listener", c.el.name, "peer", peer, "max_conns_per_ip", limit)
		return nil, false
	}
	c.open[key]++
	c.mu.Unlock()
	return &cappedConn{Conn: conn, cap: c, key: key}, true
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
