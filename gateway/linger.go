package gateway

import (
	"crypto/tls"
	"net"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// A response that ends a connection before the request was read to its
// end (a body over the limit, a request that could not be parsed) used to
// be lost: fasthttp writes it and closes the socket, the bytes the client
// is still sending arrive at a closed socket, the kernel answers them with
// a reset, and a client that is still writing its body (a WHIP offer over
// the route's limit) sees "connection reset" instead of the 413.
//
// Such connections close lingering, as nginx and Apache close them: once
// the response is out, the sending side is shut down (the client reads the
// response, then EOF), what the client still sends is read and discarded
// for a bounded time, and only then is the socket closed.
const (
	lingerTime = 5 * time.Second // at most this long in all
	lingerIdle = time.Second     // and no longer than this without a byte
	// maxLingering bounds the connections one listener keeps lingering;
	// beyond it, connections close at once (a flood of refused requests
	// holds no more than this many sockets for lingerTime).
	maxLingering = 256
)

// lingerListener hands out connections that can be told to close
// lingering (lingerOnClose).
type lingerListener struct {
	net.Listener
	lingering atomic.Int64
}

func (l *lingerListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		return &lingerConn{TCPConn: tc, l: l}, nil
	}
	return c, nil
}

type lingerConn struct {
	*net.TCPConn
	l      *lingerListener
	linger atomic.Bool
	closed atomic.Bool
}

// Close closes the connection, lingering when lingerOnClose asked for it.
// It does not wait for the lingering: fasthttp's worker moves on.
func (c *lingerConn) Close() error {
	if !c.closed.CompareAndSwap(false, true) {
		return nil
	}
	if !c.linger.Load() {
		return c.TCPConn.Close()
	}
	if c.l.lingering.Add(1) > maxLingering || c.TCPConn.CloseWrite() != nil {
		c.l.lingering.Add(-1)
		return c.TCPConn.Close()
	}
	go c.drain()
	return nil
}

// drain discards what the client still sends until it stops, goes quiet
// for lingerIdle, or lingerTime has passed, then closes the socket.
func (c *lingerConn) drain() {
	defer c.l.lingering.Add(-1)
	defer c.TCPConn.Close()
	var buf [4096]byte
	end := time.Now().Add(lingerTime)
	for {
		dl := min(time.Now().Add(lingerIdle).UnixNano(), end.UnixNano())
		if c.SetReadDeadline(time.Unix(0, dl)) != nil {
			return
		}
		if _, err := c.TCPConn.Read(buf[:]); err != nil {
			return
		}
	}
}

// lingerOnClose makes the request's connection close lingering: the
// response being written ends the connection, perhaps before the request
// was read to its end.
func lingerOnClose(ctx *fasthttp.RequestCtx) {
	// The lingering connection is under the edge's other wrappers: the
	// per-address count (cappedConn) and TLS (sniConn).
	for c := ctx.Conn(); ; {
		switch x := c.(type) {
		case *lingerConn:
			x.linger.Store(true)
			return
		case *sniConn:
			c = x.Conn.NetConn()
		case *tls.Conn:
			c = x.NetConn()
		case *cappedConn:
			c = x.Conn
		default:
			return
		}
	}
}
