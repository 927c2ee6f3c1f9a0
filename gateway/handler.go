package gateway

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"hedge/gateway/httpx"
	"hedge/gateway/problem"
	"hedge/waf"
)

// Request is one request on its way through the edge: what the earlier steps
// established (id, client address, route) for the later ones. It is pooled:
// nothing may keep it, or the fasthttp context, after Serve returns.
type Request struct {
	Ctx *fasthttp.RequestCtx
	// ID is the X-Request-Id, propagated when the client sent a valid one.
	ID []byte
	// Client is the client's address as established from trusted proxies.
	Client netip.Addr
	// Peer is the address of the connection's other end.
	Peer netip.Addr
	// TrustedPeer reports whether the peer's forwarding headers are believed.
	TrustedPeer bool
	// Proto is the scheme the client used ("https" or "http").
	Proto string
	Route *Route
	Node  *Node

	// Upstream and Attempts are filled in by proxying, for the access log.
	Upstream string
	Attempts int

	listener  *listenerState
	idBuf     [64]byte
	clientBuf [48]byte
	pathBuf   [256]byte
}

var requestPool = sync.Pool{New: func() any { return new(Request) }}

// serve is the fasthttp handler of one edge listener.
func (l *edgeListener) serve(ctx *fasthttp.RequestCtx) {
	n := l.node
	st := n.state.Load()
	ls := st.listeners[l.name]
	if ls == nil {
		// A reload removed this listener; it is shutting down. Finish the
		// connection politely.
		ctx.SetConnectionClose()
		problem.Write(ctx, problem.Draining, "this listener is closing", nil)
		ctx.Response.Header.Set("Retry-After", "1")
		return
	}
	r := requestPool.Get().(*Request)
	*r = Request{Ctx: ctx, Node: n, listener: ls, Proto: "http"}
	if ls.tls {
		r.Proto = "https"
	}
	start := ctx.Time()

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
	switch {
	case string(path) == "/healthz":
		routeName = "_healthz"
		n.healthz(ctx, st)
	case !supportedProtocol(ctx.Request.Header.Protocol()):
		problem.Write(ctx, problem.VersionNotSupported, "hedge speaks HTTP/1.1 and HTTP/1.0", r.ID)
	case len(ctx.Request.Header.Host()) == 0:
		problem.Write(ctx, problem.BadRequest, "the request has no Host", r.ID)
	case ctx.IsConnect():
		// An edge, not a forward proxy: no tunnels.
		problem.Write(ctx, problem.MethodNotAllowed, "CONNECT is not served", r.ID)
	case refuseProtectedConnection(ctx, r.ID):
	case !ls.acl.Admits(r.Client):
		problem.Write(ctx, problem.AddressDenied, "", r.ID)
		n.wafEvent(&waf.Event{Layer: waf.LayerACL, Listener: l.name, Route: "-", ID: r.ID, Client: r.Client,
			Method: ctx.Method(), Path: path, Blocked: true, Status: problem.AddressDenied.Status})
	default:
		route, wrong := st.router.Match(ctx.Host(), ctx.Method(), path)
		switch {
		case route != nil:
			r.Route = route
			routeName = route.Name
			guard := ls.guards[route.index]
			pass, ok := guard.Admit(ctx, r.ID, r.Client)
			if !ok {
				break
			}
			route.handler.Serve(r)
			guard.Finish(ctx, pass, r.ID, r.Client)
		case wrong != nil:
			problem.Write(ctx, problem.MethodNotAllowed, "", r.ID)
			ctx.Response.Header.Set("Allow", wrong.allow)
		default:
			problem.Write(ctx, problem.NotFound, "", r.ID)
		}
	}

	resp := &ctx.Response
	resp.Header.SetBytesV("X-Request-Id", r.ID)
	if ls.hsts != "" {
		resp.Header.Set("Strict-Transport-Security", ls.hsts)
	}
	dur := time.Since(start)
	status := resp.StatusCode()
	if r.Route != nil {
		r.Route.stats.count(status)
		r.Route.stats.latency.Observe(dur.Seconds())
	} else {
		n.unrouted.count(status)
	}
	if a := n.g.access; a != nil {
		a.write(&entry{
			start: start, dur: dur, region: n.region, node: n.name, listener: l.name, route: routeName,
			id: r.ID, client: r.Client.AppendTo(r.clientBuf[:0]), method: ctx.Method(), host: ctx.Host(), path: path,
			status: status, bytesIn: len(ctx.Request.Body()), bytesOut: len(resp.Body()),
			upstream: r.Upstream, attempts: r.Attempts,
		})
	}
	*r = Request{}
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
	name := connectionRemovesProtected(&ctx.Request.Header)
	if name == nil {
		return false
	}
	if len(name) > 64 {
		name = name[:64]
	}
	problem.Write(ctx, problem.ProtectedHeader, "the Connection header names "+string(name)+", which hedge relies on and forwards itself", id)
	ctx.SetConnectionClose()
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
// request id, like every other answer.
func (l *edgeListener) onError(ctx *fasthttp.RequestCtx, err error) {
	var buf [64]byte
	id := l.node.g.ids.Append(buf[:0])
	errorHandler(ctx, err, id)
	// fasthttp closes the connection after this answer, perhaps with the
	// client still sending (a body over the limit): close lingering, so
	// the client reads the answer rather than a reset.
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		lingerOnClose(ctx)
	}
}

// errorHandler answers requests fasthttp could not parse, as problem+json.
func errorHandler(ctx *fasthttp.RequestCtx, err error, id []byte) {
	var small *fasthttp.ErrSmallBuffer
	var ne net.Error
	switch {
	case errors.As(err, &small):
		problem.Write(ctx, problem.HeadersTooLarge, "", id)
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		problem.Write(ctx, problem.BodyTooLarge, "", id)
	case errors.As(err, &ne) && ne.Timeout():
		problem.Write(ctx, problem.RequestTimeout, "", id)
	default:
		problem.Write(ctx, problem.BadRequest, "the request could not be parsed", id)
	}
}
