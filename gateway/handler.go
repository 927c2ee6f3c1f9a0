package gateway

import (
	"bytes"
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"hedge/gateway/contract"
	"hedge/gateway/route"
	"hedge/internal/httpx"
	"hedge/internal/problem"
	"hedge/waf"
)

// request is one request on its way through the edge: what route kinds
// see of it (route.Request), the route it matched, and the buffers behind
// its id, client address and path. It is pooled: nothing may keep it, or
// the fasthttp context, after serve returns.
type request struct {
	route.Request
	matched   *Route
	idBuf     [64]byte
	clientBuf [48]byte
	pathBuf   [256]byte
}

var requestPool = sync.Pool{New: func() any { return new(request) }}

// answer writes a refusal as problem+json: the one place the HTTP edge
// writes a problem. Layers decide — the protective layer's verdicts, the
// routes' and the key guard's refusals, the edge's own checks — and the
// edge answers.
func answer(ctx *fasthttp.RequestCtx, f problem.Refusal, id []byte) {
	problem.Write(ctx, f.Type, f.Detail, id)
	h := &ctx.Response.Header
	if f.RetryAfter != "" {
		h.Set(fasthttp.HeaderRetryAfter, f.RetryAfter)
	}
	if f.Header != "" {
		h.Set(f.Header, f.Value)
	}
	if f.Close {
		ctx.SetConnectionClose()
	}
}

// serve is the fasthttp handler of one edge listener.
func (l *edgeListener) serve(ctx *fasthttp.RequestCtx) { l.serveAt(ctx, ctx.Time()) }

// serveAt serves a request that arrived at start: over HTTP/1.1 from
// fasthttp, over HTTP/2 from the adapter (h2.go), whose contexts carry no
// fasthttp time.
func (l *edgeListener) serveAt(ctx *fasthttp.RequestCtx, start time.Time) {
	n := l.node
	st := n.state.Load()
	ls := st.listeners[l.name]
	if ls == nil {
		// A reload removed this listener; it is shutting down. Finish the
		// connection politely.
		answer(ctx, problem.Refusal{Type: problem.Draining, Detail: "this listener is closing", RetryAfter: "1", Close: true}, nil)
		return
	}
	r := requestPool.Get().(*request)
	*r = request{Request: route.Request{Ctx: ctx, Proto: "http", Verifier: st.verifier}}
	if ls.tls {
		r.Proto = "https"
	}

	if v := ctx.Request.Header.Peek("X-Request-Id"); httpx.ValidRequestID(v) {
		r.ID = append(r.idBuf[:0], v...)
	} else {
		r.ID = n.g.ids.Append(r.idBuf[:0])
	}
	r.Peer = peerAddr(ctx)
	r.Client = r.Peer
	if ls.trusted.Contains(r.Peer) {
		r.TrustedPeer = true
		if xff := ctx.Request.Header.Peek("X-Forwarded-For"); len(xff) > 0 {
			r.Client = httpx.ClientAddr(r.Peer, xff, ls.trusted)
		} else if fwd := ctx.Request.Header.Peek("Forwarded"); len(fwd) > 0 {
			r.Client = httpx.ForwardedFor(r.Peer, fwd, ls.trusted)
		}
		if p := ctx.Request.Header.Peek("X-Forwarded-Proto"); string(p) == "https" || string(p) == "http" {
			r.Proto = string(p)
		}
	}

	routeName := "-"
	// A copy: forwarding rewrites the request's path in place, and the
	// access log must name the path the client asked for.
	path := append(r.pathBuf[:0], ctx.Path()...)
	h := &ctx.Request.Header
	switch fault := httpx.CheckFraming(h.RawHeaders(), !h.IsHTTP11()); {
	case fault != httpx.FramingOK:
		// Framing is the edge's to decide, before any route: where this
		// request ends is uncertain, so nothing after it on the connection
		// can be trusted to be a request (RFC 9112 §6.3).
		answer(ctx, problem.Refusal{Type: problem.BadFraming, Detail: fault.Detail(), Close: true}, r.ID)
		lingerOnClose(ctx) // a client still sending reads the 400, not a reset
		n.wafEvent(&waf.Event{Layer: waf.LayerFraming, Listener: l.name, Route: "-", ID: r.ID, Client: r.Client,
			Method: ctx.Method(), Path: path, Blocked: true, Status: problem.BadFraming.Status, Rule: fault.Rule(), Detail: fault.Detail()})
	case string(path) == "/healthz":
		routeName = "_healthz"
		n.healthz(ctx, st)
	case !supportedProtocol(h.Protocol()):
		// A version the edge does not speak has framing it cannot vouch for.
		answer(ctx, problem.Refusal{Type: problem.VersionNotSupported, Detail: "hedge speaks HTTP/1.1 and HTTP/1.0", Close: true}, r.ID)
		lingerOnClose(ctx)
	case len(ctx.Request.Header.Host()) == 0:
		answer(ctx, problem.Refuse(problem.BadRequest, "the request has no Host"), r.ID)
	case ls.tls && misdirected(ctx, r.TrustedPeer):
		answer(ctx, problem.Refuse(problem.Misdirected, "this connection was opened for another server name: open one for this Host"), r.ID)
	case ctx.IsConnect():
		// An edge, not a forward proxy: no tunnels.
		answer(ctx, problem.Refuse(problem.MethodNotAllowed, "CONNECT is not served"), r.ID)
	case refuseProtectedConnection(ctx, r.ID):
	case refuseEarlyData(ctx, r.ID):
	case !ls.acl.Admits(r.Client):
		answer(ctx, problem.Refuse(problem.AddressDenied, ""), r.ID)
		n.wafEvent(&waf.Event{Layer: waf.LayerACL, Listener: l.name, Route: "-", ID: r.ID, Client: r.Client,
			Method: ctx.Method(), Path: path, Blocked: true, Status: problem.AddressDenied.Status})
	default:
		matched, wrong := st.router.Match(ctx.Host(), ctx.Method(), path)
		switch {
		case matched != nil:
			r.matched = matched
			routeName = matched.Name
			guard := ls.guards[matched.index]
			pass, v := guard.Admit(ctx, r.ID, r.Client, &r.Request)
			if !v.Allowed() {
				answer(ctx, v.Refusal, r.ID)
				v.SetHeaders(&ctx.Response.Header)
				n.wafEvent(&v.Event)
				break
			}
			if f := matched.handler.Serve(&r.Request); f.Refused() {
				answer(ctx, f, r.ID)
			}
			guard.Finish(ctx, pass, r.ID, r.Client)
		case wrong != nil:
			answer(ctx, problem.Refusal{Type: problem.MethodNotAllowed, Header: "Allow", Value: wrong.allow}, r.ID)
		default:
			answer(ctx, problem.Refuse(problem.NotFound, ""), r.ID)
		}
	}

	resp := &ctx.Response
	resp.Header.SetBytesV("X-Request-Id", r.ID)
	if ls.hsts != "" {
		resp.Header.Set("Strict-Transport-Security", ls.hsts)
	}
	if h := l.h3.Load(); h != nil && ls.tls {
		resp.Header.Set("Alt-Svc", h.altSvc)
	}
	dur := time.Since(start)
	status := resp.StatusCode()
	proto := connProto(ctx)
	if r.matched != nil {
		r.matched.stats.count(proto, status)
		r.matched.stats.latency.Observe(dur.Seconds())
	} else {
		n.unrouted.count(proto, status)
	}
	if a := n.g.access; a != nil {
		a.write(&entry{
			start: start, dur: dur, region: n.region, node: n.name, listener: l.name, proto: protoNames[proto], route: routeName,
			id: r.ID, client: r.Client.AppendTo(r.clientBuf[:0]), method: ctx.Method(), host: ctx.Host(), path: path,
			status: status, bytesIn: len(ctx.Request.Body()), bytesOut: len(resp.Body()),
			upstream: r.Upstream, attempts: r.Attempts,
		})
	}
	*r = request{}
	requestPool.Put(r)
}

// headerReceived runs once a request's headers are in, before its body is
// read, and sets the body limit enforced while reading (413 as soon as
// Content-Length, or the chunks so far, pass it): the listener's from the
// current state, so a reload changes it at once, or the route's when that
// is lower, rather than only checking the route's after buffering. Only a
// plain path is matched this early; anything else is held to the listener's
// limit while reading and to the route's by the shape check after.
func (l *edgeListener) headerReceived(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
	st := l.node.state.Load()
	if st == nil {
		return fasthttp.RequestConfig{}
	}
	ls := st.listeners[l.name]
	if ls == nil {
		return fasthttp.RequestConfig{}
	}
	limit := int(ls.cfg.Limits.MaxBodyBytes)
	path := h.RequestURI()
	if i := bytes.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	// Requests without a body (most of them) need no route limit: the route
	// is matched once, in serve.
	if h.ContentLength() != 0 && len(path) > 0 && path[0] == '/' && bytes.IndexByte(path, '%') < 0 && !bytes.Contains(path, dotSegment) {
		if route, _ := st.router.Match(h.Host(), h.Method(), path); route != nil && route.maxBody > 0 {
			limit = min(limit, route.maxBody)
		}
	}
	return fasthttp.RequestConfig{MaxRequestBodySize: limit}
}

var dotSegment = []byte("/.")

// refuseProtectedConnection answers 400, and closes the connection, when
// the request's Connection header names a header the edge relies on
// (Idempotency-Key, Authorization, …): a hop-by-hop removal would take it
// away after the edge checked it. It reports whether it answered.
func refuseProtectedConnection(ctx *fasthttp.RequestCtx, id []byte) bool {
	name := contract.ProtectedConnection(&ctx.Request.Header)
	if name == nil {
		return false
	}
	if len(name) > 64 {
		name = name[:64]
	}
	answer(ctx, problem.Refusal{Type: problem.ProtectedHeader, Close: true,
		Detail: "the Connection header names " + string(name) + ", which hedge relies on and forwards itself"}, id)
	return true
}

func supportedProtocol(p []byte) bool {
	return string(p) == "HTTP/1.1" || string(p) == "HTTP/1.0"
}

func peerAddr(ctx *fasthttp.RequestCtx) netip.Addr {
	if ta, ok := ctx.RemoteAddr().(*net.TCPAddr); ok {
		if a, ok := netip.AddrFromSlice(ta.IP); ok {
			return a.Unmap()
		}
	}
	return netip.Addr{}
}

// onError answers requests fasthttp could not read (headers too large, a
// body over the limit, a timeout, garbage) as problem+json with a fresh
// request id, like every other answer, and writes their access-log line.
// fasthttp closes the connection after the answer: whatever follows on it
// cannot be trusted to start a request.
func (l *edgeListener) onError(ctx *fasthttp.RequestCtx, err error) {
	if tc, ok := ctx.Conn().(interface{ ConnectionState() tls.ConnectionState }); ok && !tc.ConnectionState().HandshakeComplete {
		// The TLS handshake did not finish (a client too slow for
		// read_timeout, or not speaking TLS): there are no keys to write
		// an answer with, and no request to log. The connection closes.
		l.node.log.Debug("connection closed before its TLS handshake completed", "listener", l.name, "peer", ctx.RemoteAddr().String(), "error", err)
		return
	}
	// The write deadline fasthttp set for this connection was set before
	// the read that failed (at the handshake, or at the previous answer):
	// a read that timed out after read_timeout has usually outlived it, and
	// the answer would not be written (over TLS: cut off mid-record, then a
	// close_notify alert). The answer gets its own.
	if l.writeTimeout > 0 {
		_ = ctx.Conn().SetWriteDeadline(time.Now().Add(l.writeTimeout))
	}
	var buf [64]byte
	id := l.node.g.ids.Append(buf[:0])
	rule := errorHandler(ctx, err, id)
	if h := l.h3.Load(); h != nil && l.tls {
		ctx.Response.Header.Set("Alt-Svc", h.altSvc)
	}
	// fasthttp closes the connection after this answer, perhaps with the
	// client still sending (a body over the limit): close lingering, so
	// the client reads the answer rather than a reset.
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		lingerOnClose(ctx)
	}
	n := l.node
	h := &ctx.Request.Header
	// fasthttp resets the request when it cannot read it (the header, and
	// on most body errors the whole request): what is left names it.
	method, host, path := []byte("-"), []byte("-"), []byte("-")
	if len(h.RawHeaders()) > 0 {
		method, host, path = h.Method(), h.Host(), h.RequestURI()
		if i := bytes.IndexByte(path, '?'); i >= 0 {
			path = path[:i]
		}
	}
	client := peerAddr(ctx)
	if rule != "" {
		n.wafEvent(&waf.Event{Layer: waf.LayerFraming, Listener: l.name, Route: "-", ID: id, Client: client,
			Method: method, Path: path, Blocked: true, Status: problem.BadFraming.Status, Rule: rule})
	}
	status := ctx.Response.StatusCode()
	proto := connProto(ctx)
	n.unrouted.count(proto, status)
	if a := n.g.access; a != nil {
		var cb [48]byte
		a.write(&entry{
			start: time.Now(), region: n.region, node: n.name, listener: l.name, proto: protoNames[proto], route: "-",
			id: id, client: client.AppendTo(cb[:0]), method: method, host: host, path: path,
			status: status, bytesOut: len(ctx.Response.Body()),
		})
	}
}

// errorHandler answers requests fasthttp could not parse, as problem+json,
// and returns the framing fault's rule name when the error was one.
func errorHandler(ctx *fasthttp.RequestCtx, err error, id []byte) (framing string) {
	var small *fasthttp.ErrSmallBuffer
	var chunk fasthttp.ErrBrokenChunk
	var ne net.Error
	switch {
	case errors.As(err, &small):
		answer(ctx, problem.Refuse(problem.HeadersTooLarge, ""), id)
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		answer(ctx, problem.Refuse(problem.BodyTooLarge, ""), id)
	case errors.As(err, &ne) && ne.Timeout(),
		// A read that timed out inside a chunk's size line comes wrapped
		// in ErrBrokenChunk, which does not unwrap.
		errors.As(err, &chunk) && strings.Contains(err.Error(), os.ErrDeadlineExceeded.Error()):
		answer(ctx, problem.Refuse(problem.RequestTimeout, ""), id)
	case errors.Is(err, fasthttp.ErrDuplicateContentLength):
		framing = httpx.FramingCLInvalid.Rule()
		answer(ctx, problem.Refuse(problem.BadFraming, httpx.FramingCLInvalid.Detail()), id)
	case errors.Is(err, fasthttp.ErrUnsupportedTransferEncoding):
		// fasthttp's one error for a second Transfer-Encoding and for a
		// coding it does not decode (with SecureErrorLogMessage).
		framing = httpx.FramingTECoding.Rule()
		answer(ctx, problem.Refuse(problem.BadFraming, httpx.FramingTECoding.Detail()), id)
	case errors.As(err, &chunk), strings.Contains(err.Error(), "hex number"):
		// A chunk size line fasthttp could not read: ErrBrokenChunk, or
		// its untyped "empty/too large hex number".
		framing = "chunk"
		answer(ctx, problem.Refuse(problem.BadFraming, "the chunked body is malformed (RFC 9112 §7.1)"), id)
	case strings.Contains(err.Error(), "Content-Length"):
		// fasthttp's parse errors of the value carry no type of their own.
		framing = httpx.FramingCLInvalid.Rule()
		answer(ctx, problem.Refuse(problem.BadFraming, httpx.FramingCLInvalid.Detail()), id)
	default:
		answer(ctx, problem.Refuse(problem.BadRequest, "the request could not be parsed"), id)
	}
	return framing
}
