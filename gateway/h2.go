package gateway

// HTTP/2 on the edge's TLS listeners, through the same edge as HTTP/1.1.
//
// A TLS connection that negotiates h2 (ALPN) is handed by fasthttp, from
// the worker that accepted it (fasthttp.Server.NextProto), to
// golang.org/x/net/http2's server: by then the per-address cap has counted
// it, the handshake has had read_timeout, and max_conns counts it for as
// long as it lives. x/net speaks the protocol — framing, HPACK, flow
// control, stream states, its own defences (queued handlers past
// max_concurrent_streams, the header list bound, the control-frame queue)
// — and h2Conn.ServeHTTP is the one adapter: it writes each request's head
// as HTTP/1.1 bytes that fasthttp parses exactly as it parses a request
// read from a socket (so every header check, limit and parser downstream
// sees what it sees over HTTP/1.1), reads the body under the same limits,
// runs the edge's handler (serveAt) on a pooled fasthttp.RequestCtx, and
// copies the answer back without the headers HTTP/2 forbids. No route
// knows which protocol its request came by.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
	"golang.org/x/net/http2"
)

// The protocols a request can come by, as metrics and the access log name
// them.
const (
	protoHTTP1 uint8 = iota
	protoHTTP2
)

var protoNames = [3]string{"1.1", "2", "3"}

// connProto is the protocol of the connection a request came on.
func connProto(ctx *fasthttp.RequestCtx) uint8 {
	switch ctx.Conn().(type) {
	case *h2View:
		return protoHTTP2
	case *h3View:
		return protoHTTP3
	}
	return protoHTTP1
}

func newH2Metrics(reg *prometheus.Registry) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hedge_http2_errors_total",
		Help: "HTTP/2 protocol errors and floods, by the reason x/net/http2 or the edge's flood guard gives (flood: GOAWAY ENHANCE_YOUR_CALM).",
	}, []string{"region", "node", "listener", "reason"})
	reg.MustRegister(c)
	return c
}

// h2State is a listener's HTTP/2 as one node state configures it. A
// connection keeps the state it started with; a reload's settings reach
// new connections.
type h2State struct {
	tls *tls.Config // the certificates' configuration with h2 first in ALPN
	//lint:ignore SA1019 x/net/http2 is deprecated in favour of net/http's HTTP/2, which serves only connections its own listener accepted; ServeConn (kept in Go 1.27, wrapping net/http's) serves one fasthttp accepted.
	srv *http2.Server
	// base carries the per-connection settings x/net reads from an
	// http.Server (timeouts, header bound, HTTP2Config); its Shutdown sends
	// GOAWAY to this state's connections.
	base        *http.Server
	maxHeader   int           // limits.max_header_bytes: the request head as HTTP/1.1 bytes
	readTimeout time.Duration // limits.read_timeout: the client's preface must arrive within it
	errs        *prometheus.CounterVec
	floodBudget time.Duration // see h2Guard
}

// The flood guard's budget: frames that make the server work without
// asking it for anything may arrive h2FloodBurst at once and
// h2FloodPerSecond on average per connection.
const (
	h2FloodBurst     = 200
	h2FloodPerSecond = 100
	h2ResetDebt      = 400 // see h2Guard
)

// h2HeaderListCap is the header list x/net decodes and stores at most for
// a listener whose max_header_bytes is maxHeader: 64 KiB, or twice
// max_header_bytes when that is more. Per stream, not per connection; a
// connection holds at most its streams' worth (max_concurrent_streams,
// and x/net's queue of handlers past it).
func h2HeaderListCap(maxHeader int) int {
	return max(64<<10, 2*maxHeader)
}

// buildH2 prepares HTTP/2 for a TLS listener that enables it.
func (n *Node) buildH2(ls *listenerState) {
	lc := ls.cfg
	if !ls.tls || ls.certs == nil || !*lc.HTTP2.Enabled {
		return
	}
	lim := lc.Limits
	h := &h2State{maxHeader: int(lim.MaxHeaderBytes), readTimeout: lim.ReadTimeout.D(), floodBudget: time.Second / h2FloodPerSecond}
	h.tls = ls.certs.TLSConfig().Clone()
	h.tls.NextProtos = append([]string{http2.NextProtoTLS}, h.tls.NextProtos...)
	h.errs = n.g.metrics.h2.MustCurryWith(prometheus.Labels{"region": n.region, "node": n.name, "listener": lc.Name})
	errs := h.errs
	h.base = &http.Server{
		// Per stream: its body must arrive within read_timeout, its answer
		// leave within write_timeout.
		ReadTimeout:  lim.ReadTimeout.D(),
		WriteTimeout: lim.WriteTimeout.D(),
		IdleTimeout:  lim.IdleTimeout.D(),
		// The header list x/net decodes at most (SETTINGS_MAX_HEADER_LIST_SIZE,
		// and the bound on what an HPACK bomb expands to): a hard cap well
		// above max_header_bytes, so that the edge itself answers 431
		// problem+json to every header list over max_header_bytes that a
		// client heeding the advertised bound can send, as over HTTP/1.1;
		// only past the cap x/net answers its own 431.
		MaxHeaderBytes: h2HeaderListCap(int(lim.MaxHeaderBytes)),
		ErrorLog:       slog.NewLogLogger(n.log.With("listener", lc.Name).Handler(), slog.LevelDebug),
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams: lc.HTTP2.MaxConcurrentStreams,
			// RFC 9113's initial value: no frame buffer larger than 16 KiB.
			MaxReadFrameSize: 16 << 10,
			CountError:       func(reason string) { errs.WithLabelValues(reason).Inc() },
		},
	}
	//lint:ignore SA1019 see h2State.srv
	h.srv = &http2.Server{IdleTimeout: lim.IdleTimeout.D(),
		// Control frames first, then the streams' in no order: the edge
		// does not honour client priorities (RFC 9218 leaves that to the
		// server), and the default round-robin bookkeeping costs CPU on
		// every frame of every stream.
		//lint:ignore SA1019 see h2State.srv
		NewWriteScheduler: func() http2.WriteScheduler { return http2.NewRandomWriteScheduler() },
	}
	// Registers the state's connections, so base.Shutdown reaches them;
	// its only error is about base.TLSConfig, which is not used.
	//lint:ignore SA1019 see h2State.srv
	_ = http2.ConfigureServer(h.base, h.srv)
	ls.h2 = h
}

// serverTLS is the TLS configuration a handshake on the listener gets.
func (ls *listenerState) serverTLS() *tls.Config {
	if ls.h2 != nil {
		return ls.h2.tls
	}
	return ls.certs.TLSConfig()
}

// h2Conns are a listener's HTTP/2 connections by the state serving them.
type h2Conns struct {
	mu   sync.Mutex
	open map[*h2State]int
}

func (c *h2Conns) add(s *h2State, d int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.open == nil {
		c.open = map[*h2State]int{}
	}
	if c.open[s] += d; c.open[s] <= 0 {
		delete(c.open, s)
	}
}

// goAway tells every HTTP/2 connection to stop opening streams (GOAWAY);
// each closes once its streams are answered.
func (c *h2Conns) goAway(ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for s := range c.open {
		_ = s.base.Shutdown(ctx) // returns at once: base serves no listener
	}
}

// serveH2 serves one TLS connection that negotiated h2, on the fasthttp
// worker that accepted it.
func (el *edgeListener) serveH2(c net.Conn) error {
	sc, ok := c.(*sniConn)
	var ls *listenerState
	if st := el.node.state.Load(); st != nil {
		ls = st.listeners[el.name]
	}
	if !ok || ls == nil || ls.h2 == nil {
		// The listener is going away, or a reload turned HTTP/2 off
		// during this handshake.
		return c.Close()
	}
	sc.serverName() // read once, before streams read it concurrently
	// x/net waits 10 s for the client's preface; the listener's
	// read_timeout bounds it, as it bounds an HTTP/1.1 request's head
	// (Read lifts the deadline once the preface is in).
	if err := sc.SetReadDeadline(time.Now().Add(ls.h2.readTimeout)); err != nil {
		return c.Close()
	}
	hc := &h2Conn{sniConn: sc, el: el, state: ls.h2}
	hc.view.c = hc
	el.h2.add(ls.h2, 1)
	defer el.h2.add(ls.h2, -1)
	//lint:ignore SA1019 see h2State.srv
	ls.h2.srv.ServeConn(hc, &http2.ServeConnOpts{BaseConfig: ls.h2.base, Handler: hc})
	return nil
}

// h2Conn is one HTTP/2 connection: what x/net reads and writes (the TLS
// connection, its reads watched by the flood guard), the handler of its
// streams, and the view of it the edge's requests get.
type h2Conn struct {
	*sniConn
	el    *edgeListener
	state *h2State
	view  h2View
	guard h2Guard
	// busy counts the streams whose handler is running (ServeHTTP), for
	// Write's coalescing.
	busy atomic.Int32
}

// Write is x/net's flush of its buffered frames to the TLS connection
// (from a goroutine it starts per flush, while it queues further frames).
// When other streams of the connection are being handled, it first lets
// every goroutine that is ready to run do so: the handlers whose answers
// came back at the same moment hand their frames to x/net, which queues
// them behind this flush and sends them together in the next one — one
// TLS record and write for a batch of answers instead of one or two per
// answer. Nothing waits on a timer: with no other goroutine ready to run
// (a lone answer), Gosched returns at once.
func (c *h2Conn) Write(p []byte) (int, error) {
	if c.busy.Load() > 0 {
		runtime.Gosched()
	}
	return c.sniConn.Write(p)
}

// Read is the TLS connection's, watched by the flood guard: past its
// budget, the next read fails with ENHANCE_YOUR_CALM, which x/net answers
// with a GOAWAY of that code before closing.
func (c *h2Conn) Read(p []byte) (int, error) {
	if c.guard.err != nil {
		return 0, c.guard.err
	}
	n, err := c.sniConn.Read(p)
	inPreface := c.guard.preface > 0 || !c.guard.started
	if n > 0 && c.guard.scan(p[:n], c.state.floodBudget) {
		c.state.errs.WithLabelValues("flood").Inc()
		c.el.node.log.Warn("HTTP/2 flood: connection closed with ENHANCE_YOUR_CALM", "listener", c.el.name, "peer", c.RemoteAddr().String())
	}
	if inPreface && c.guard.preface == 0 && c.guard.started {
		_ = c.sniConn.SetReadDeadline(time.Time{})
	}
	return n, err
}

// h2View is what a request's fasthttp.RequestCtx sees as its connection:
// the addresses, the TLS state and the server name, and nothing that
// could touch the connection its sibling streams share (deadlines, writes
// and Close do nothing).
type h2View struct{ c *h2Conn }

func (v *h2View) Read([]byte) (int, error)               { return 0, io.EOF }
func (v *h2View) Write(p []byte) (int, error)            { return 0, errH2View }
func (v *h2View) Close() error                           { return nil }
func (v *h2View) LocalAddr() net.Addr                    { return v.c.LocalAddr() }
func (v *h2View) RemoteAddr() net.Addr                   { return v.c.RemoteAddr() }
func (v *h2View) SetDeadline(time.Time) error            { return nil }
func (v *h2View) SetReadDeadline(time.Time) error        { return nil }
func (v *h2View) SetWriteDeadline(time.Time) error       { return nil }
func (v *h2View) Handshake() error                       { return nil }
func (v *h2View) ConnectionState() tls.ConnectionState   { return v.c.ConnectionState() }
func (v *h2View) serverName() []byte                     { return v.c.name }
func (v *h2View) HandshakeContext(context.Context) error { return nil }

var errH2View = errors.New("an HTTP/2 stream writes through its ResponseWriter")

// h2Exchange is one HTTP/2 request on its way through the edge; pooled.
type h2Exchange struct {
	ctx    fasthttp.RequestCtx
	head   []byte        // the request head as HTTP/1.1 bytes
	body   []byte        // the request body
	fields []byte        // the answer's header fields (writeH2Response)
	src    bytes.Reader  // over head
	rd     *bufio.Reader // over src, max_header_bytes large
}

var h2ExchangePool = sync.Pool{New: func() any { return new(h2Exchange) }}

// Buffers past these sizes are not kept in the pool.
const (
	h2KeepHead = 16 << 10
	h2KeepBody = 64 << 10
)

// ServeHTTP serves one HTTP/2 stream.
func (c *h2Conn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Context().Err() != nil {
		// Reset before its turn came (x/net queues streams past
		// max_concurrent_streams): a rapid reset costs no edge work.
		return
	}
	c.busy.Add(1)
	defer c.busy.Add(-1)
	c.el.serveStream(w, r, &c.view, c.state.maxHeader)
}

// serveStream serves one request of a multiplexed connection (an HTTP/2
// or HTTP/3 stream): the one adapter between net/http's request and
// answer and the edge. view is what the request's fasthttp.RequestCtx
// sees as its connection; maxHeader is the listener's max_header_bytes.
func (el *edgeListener) serveStream(w http.ResponseWriter, r *http.Request, view net.Conn, maxHeader int) {
	start := time.Now()
	x := h2ExchangePool.Get().(*h2Exchange)
	ctx := &x.ctx
	ctx.Init2(view, fasthttpLogger{el.node.log}, false)
	if err := x.readRequest(r, el, maxHeader); err != nil {
		// A head that is no request, a body over the limit, late (408),
		// or cut short — by a reset, or shorter than its content-length
		// (malformed, RFC 9113 §8.1.1: answered 400 before the stream
		// ends): answered as fasthttp's read errors are.
		el.onError(ctx, err)
	} else {
		el.serveAt(ctx, start)
	}
	writeH2Response(w, r, &ctx.Response, &x.fields)
	x.release()
}

func (x *h2Exchange) release() {
	x.ctx.Request.Reset()
	x.ctx.Response.Reset()
	if cap(x.head) > h2KeepHead {
		x.head = nil
	}
	if cap(x.body) > h2KeepBody {
		x.body = nil
	}
	x.src.Reset(nil)
	if x.rd != nil {
		x.rd.Reset(&x.src)
	}
	h2ExchangePool.Put(x)
}

var (
	errH2Malformed = errors.New("the HTTP/2 request's pseudo-headers cannot be a request line")
	errH2BodyRead  = errors.New("the HTTP/2 request body ended early")
)

// readRequest fills the exchange's fasthttp request from r: the head
// written as HTTP/1.1 and parsed by fasthttp (the listener's header limit
// applies as when reading from a socket: 431 past it), then the body under
// the limit of the listener or route (413 past it).
func (x *h2Exchange) readRequest(r *http.Request, el *edgeListener, maxHeader int) error {
	var ok bool
	x.head, ok = appendH2Head(x.head[:0], r)
	if !ok {
		return errH2Malformed
	}
	size := max(maxHeader, 1024)
	if x.rd == nil || x.rd.Size() != size {
		x.rd = bufio.NewReaderSize(&x.src, size)
	}
	x.src.Reset(x.head)
	x.rd.Reset(&x.src)
	req := &x.ctx.Request
	if err := req.Header.Read(x.rd); err != nil {
		return err
	}
	limit := el.headerReceived(&req.Header).MaxRequestBodySize
	if limit <= 0 {
		limit = fasthttp.DefaultMaxRequestBodySize
	}
	if r.ContentLength > int64(limit) {
		return fasthttp.ErrBodyTooLarge
	}
	body, err := readBodyLimited(x.body[:0], r.Body, limit)
	x.body = body
	if err != nil {
		return err
	}
	if len(body) > 0 || r.ContentLength == 0 && r.Header["Content-Length"] != nil {
		req.SetBodyRaw(body)
		req.Header.SetContentLength(len(body))
	}
	return nil
}

// readBodyLimited appends r to b, up to limit bytes.
func readBodyLimited(b []byte, r io.Reader, limit int) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):min(cap(b), limit+1)])
		b = b[:len(b)+n]
		if len(b) > limit {
			return b, fasthttp.ErrBodyTooLarge
		}
		switch {
		case err == io.EOF:
			return b, nil
		case errors.Is(err, os.ErrDeadlineExceeded):
			// x/net's per-stream read_timeout: 408, as over HTTP/1.1.
			return b, err
		case err != nil:
			return b, errH2BodyRead
		}
	}
}

// appendH2Head writes r's request line and header fields as an HTTP/1.1
// head. x/net has checked the fields (lower-case names, no CR, LF or NUL
// in values, no connection-specific fields, pseudo-headers first and
// once); what it leaves to the server is checked here: a method and a
// target that fit a request line, an authority that fits a Host.
func appendH2Head(b []byte, r *http.Request) ([]byte, bool) {
	if !methodToken(r.Method) || !requestTarget(r.RequestURI) || !fieldValue(r.Host) {
		return b, false
	}
	b = append(b, r.Method...)
	b = append(b, ' ')
	b = append(b, r.RequestURI...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, r.Host...)
	b = append(b, "\r\n"...)
	for name, values := range r.Header {
		switch name {
		case "Host", "Content-Length", "Expect":
			// The authority is the Host; the length is the body's as read;
			// x/net has answered 100-continue.
			continue
		}
		for _, v := range values {
			b = append(b, name...)
			b = append(b, ": "...)
			b = append(b, v...)
			b = append(b, "\r\n"...)
		}
	}
	if r.ContentLength > 0 {
		// Declared, so the route's body limit is known before the body is
		// read, as over HTTP/1.1; the body read must match it (x/net).
		b = append(b, "Content-Length: "...)
		b = appendUint(b, uint64(r.ContentLength))
		b = append(b, "\r\n"...)
	}
	return append(b, "\r\n"...), true
}

func appendUint(b []byte, v uint64) []byte {
	var buf [20]byte
	i := len(buf)
	for {
		i--
		buf[i] = byte('0' + v%10)
		if v /= 10; v == 0 {
			break
		}
	}
	return append(b, buf[i:]...)
}

func methodToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || bytes.IndexByte([]byte(`"(),/:;<=>?@[\]{}`), c) >= 0 {
			return false
		}
	}
	return true
}

func requestTarget(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

func fieldValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// writeH2Response copies the edge's answer to the stream: status, header
// fields but those HTTP/2 forbids (RFC 9113 §8.2.2), the body (streamed,
// flushed as it comes, when the route streams it). The fields' names and
// values become one string and their value lists one slice: two
// allocations per answer, whatever its number of fields (scratch is the
// exchange's buffer for it).
func writeH2Response(w http.ResponseWriter, r *http.Request, resp *fasthttp.Response, scratch *[]byte) {
	b, n, typed := (*scratch)[:0], 0, false
	for k, v := range resp.Header.All() {
		if !h2Field(k, resp) {
			continue
		}
		typed = typed || string(k) == fasthttp.HeaderContentType
		b = append(append(b, k...), v...)
		n++
	}
	*scratch = b
	all, vals := string(b), make([]string, n)
	h, at, i := w.Header(), 0, 0
	for k, v := range resp.Header.All() {
		if !h2Field(k, resp) {
			continue
		}
		name := all[at : at+len(k)]
		at += len(k)
		vals[i] = all[at : at+len(v)]
		at += len(v)
		if prev := h[name]; prev != nil {
			h[name] = append(prev, vals[i])
		} else {
			h[name] = vals[i : i+1 : i+1]
		}
		i++
	}
	if !typed {
		// As over HTTP/1.1: no Content-Type unless the edge set one (x/net
		// would sniff one).
		h["Content-Type"] = nil
	}
	w.WriteHeader(resp.StatusCode())
	if r.Method == http.MethodHead {
		return
	}
	if resp.IsBodyStream() {
		_ = resp.BodyWriteTo(flushWriter{w})
		return
	}
	if body := resp.Body(); len(body) > 0 {
		_, _ = w.Write(body)
	}
}

// h2Field reports whether a response field goes on an HTTP/2 stream: not
// the connection-specific ones, nor a length that a streamed body does not
// have.
func h2Field(name []byte, resp *fasthttp.Response) bool {
	switch string(name) {
	case "Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade":
		return false
	case "Content-Length":
		return !resp.IsBodyStream()
	}
	return true
}

// flushWriter sends what a streamed answer writes at once (an LL-HLS
// part, a server-sent event).
type flushWriter struct{ w http.ResponseWriter }

func (f flushWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if fl, ok := f.w.(http.Flusher); ok {
		fl.Flush()
	}
	return n, err
}
