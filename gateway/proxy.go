package gateway

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/valyala/fasthttp"

	"hedge/configs"
	"hedge/gateway/upstream"
	"hedge/internal/httpx"
	"hedge/internal/problem"
)

// proxyRoute sends requests to an upstream pool.
type proxyRoute struct {
	pool     *upstream.Pool
	prefix   []byte
	rewrite  []byte
	contract *upstreamContract
	// guard authenticates and enforces Idempotency-Key when the route asks
	// for it (auth: jwt, idempotency: required); nil otherwise.
	guard *keyGuard
}

func newProxyRoute(b *Build, rc configs.Route) (RouteHandler, error) {
	p := b.Pools[rc.Pool]
	if p == nil {
		return nil, fmt.Errorf("pool %q is not defined in region %q", rc.Pool, b.Region.Name)
	}
	pr := &proxyRoute{pool: p, prefix: []byte(rc.Match.PathPrefix), contract: newUpstreamContract(rc)}
	if rc.Rewrite != "" {
		pr.rewrite = []byte(rc.Rewrite)
	}
	if rc.Auth == "jwt" {
		if b.Money == nil {
			return nil, errors.New("auth: jwt needs auth.jwt keys")
		}
		pr.guard = newKeyGuard(rc.Name, b.Money, rc.Idempotency == "required", b.metrics.money(b.Region.Name, b.Node.Name, rc.Name))
	}
	return pr, nil
}

// Serve proxies r to a healthy member. A request goes to another member
// after a failure only when that cannot apply it twice: nothing was sent
// (the connection failed), or the method is safe, or the member refused
// with 503, or the request carries an Idempotency-Key and the pool's
// members share one deduplication store (shared_idempotency). An unsafe
// keyed request whose outcome is unknown at a member stays with that
// member: the key is pinned to it, the client gets 504, and its retry goes
// to that member alone, or fails closed while it is down. Retries also need
// the pool's retry budget.
func (p *proxyRoute) Serve(r *Request) {
	ctx := r.Ctx
	req := &ctx.Request
	var k keyed
	principal := ""
	if p.guard != nil {
		claims, ok := p.guard.authenticate(r)
		if !ok {
			return
		}
		if k, ok = p.guard.claim(r, claims.Subject); !ok {
			return
		}
		principal = claims.Subject
	}
	pool := p.pool
	var pinned *upstream.Member
	if k.claim.Pinned != "" {
		if pinned = pool.Member(k.claim.Pinned); pinned == nil || !pinned.Health.Healthy() {
			k.release(r) // the pin stays
			problem.Write(ctx, problem.PinnedUnavailable, "an earlier request with this Idempotency-Key reached an upstream that is unavailable now; retry later with the same key", r.ID)
			ctx.Response.Header.Set("Retry-After", "1")
			return
		}
	}

	clientClose := req.Header.ConnectionClose()
	out := req
	var origPath []byte
	if p.contract.allowlist {
		out = fasthttp.AcquireRequest()
		defer fasthttp.ReleaseRequest(out)
		p.contract.build(out, r, p.prefix, p.rewrite, k.clientKey())
	} else {
		var pathBuf [128]byte
		origPath = append(pathBuf[:0], req.URI().Path()...)
		p.prepare(r)
	}
	if principal != "" {
		out.Header.Set(httpx.PrincipalHeader, principal) // never the client's own
	}
	pool.Budget.Deposit()
	safe := isSafe(out.Header.Method())
	keyedReq := k.active || len(out.Header.Peek("Idempotency-Key")) > 0
	// After an exchange whose outcome is unknown, another member may be
	// tried only if it cannot apply the request a second time.
	anotherAfterUnknown := safe || keyedReq && pool.Cfg.SharedIdempotency

	var tried [5]*upstream.Member
	attempts := pool.Cfg.Retries.Attempts
	var lastErr error
	var lastMember *upstream.Member
	for i := 0; i < attempts; i++ {
		m := pinned
		if m == nil {
			m = pool.Pick(tried[:i])
		} else if i > 0 && !upstream.BeforeSend(lastErr) {
			break
		}
		if m == nil {
			break
		}
		tried[i], lastMember = m, m
		r.Upstream, r.Attempts = m.Name, i+1
		out.URI().SetScheme(m.Scheme)
		if p.contract.allowlist {
			out.URI().SetHost(m.Client.Addr)
		}
		err := m.Client.Do(out, &ctx.Response)
		if err == nil && ctx.Response.StatusCode() == fasthttp.StatusServiceUnavailable && pinned == nil &&
			(safe || keyedReq) && i+1 < attempts && pool.Healthy() > 1 && pool.Budget.Withdraw() {
			// The member says it cannot serve (a rail going down before its
			// health checks notice): it did not apply the request, so one
			// that cannot be applied twice goes to the next member.
			m.Health.ReportFailure(errUpstream503)
			ctx.Response.Reset()
			r.Node.countUpstreamError(pool.Name, "unavailable")
			r.Node.countRetry(pool.Name)
			continue
		}
		if err == nil {
			m.Health.ReportSuccess()
			cleanResponse(&ctx.Response)
			k.finish(r)
			if clientClose {
				ctx.SetConnectionClose()
			}
			return
		}
		lastErr = err
		m.Health.ReportFailure(err)
		ctx.Response.Reset()
		kind := "other"
		switch {
		case upstream.BeforeSend(err):
			kind = "connect"
		case upstream.Timeout(err):
			kind = "timeout"
		}
		r.Node.countUpstreamError(pool.Name, kind)
		r.Node.log.Debug("upstream exchange failed", "pool", pool.Name, "member", m.Name, "kind", kind, "error", err, "request_id", string(r.ID))
		if kind != "connect" && !anotherAfterUnknown || i+1 >= attempts || !pool.Budget.Withdraw() {
			break
		}
		r.Node.countRetry(pool.Name)
	}
	if origPath != nil {
		req.URI().SetPathBytes(origPath) // problems name the path the client asked for
	}
	unknown := lastErr != nil && !upstream.BeforeSend(lastErr)
	if unknown && k.active && !pool.Cfg.SharedIdempotency {
		// Sent, and no answer: the member may have applied it. The retry
		// must find it there, not at a member with a store of its own.
		k.pin(r, lastMember.URL)
	} else {
		k.release(r) // no final answer: the client's retry must go through
	}
	switch {
	case lastErr == nil:
		problem.Write(ctx, problem.NoHealthyUpstream, "no healthy member in pool "+pool.Name, r.ID)
		ctx.Response.Header.Set("Retry-After", "1")
	case unknown && k.claim.Won:
		problem.Write(ctx, problem.OutcomeUnknown, "pool "+pool.Name+" did not confirm the outcome; retry with the same Idempotency-Key", r.ID)
	case upstream.Timeout(lastErr):
		problem.Write(ctx, problem.UpstreamTimeout, "pool "+pool.Name+" did not answer in time", r.ID)
	case upstream.BeforeSend(lastErr) && pool.Healthy() == 0:
		problem.Write(ctx, problem.NoHealthyUpstream, "no reachable member in pool "+pool.Name, r.ID)
		ctx.Response.Header.Set("Retry-After", "1")
	default:
		problem.Write(ctx, problem.UpstreamFailed, "pool "+pool.Name+" failed to answer", r.ID)
	}
	if clientClose {
		ctx.SetConnectionClose()
	}
}

// prepare turns the client's request into the upstream request in place.
func (p *proxyRoute) prepare(r *Request) { prepareForward(r, p.contract, p.prefix, p.rewrite) }

// prepareForward turns the client's request into the request the edge
// sends on, in place, for routes that forward the client's headers:
// hop-by-hop headers and the contract's strip list out, the path
// rewritten, the forwarding headers, request id and trace context set.
func prepareForward(r *Request, c *upstreamContract, prefix, rewrite []byte) {
	h := &r.Ctx.Request.Header
	removeHopByHop(h)
	c.stripInPlace(h)

	if rewrite != nil {
		uri := r.Ctx.Request.URI()
		path := uri.Path()
		if bytes.HasPrefix(path, prefix) {
			var buf [256]byte
			np := append(append(buf[:0], rewrite...), path[len(prefix):]...)
			uri.SetPathBytes(np)
		}
	}
	setForwarding(h, r, h)
	h.SetBytesV("X-Request-Id", r.ID)
	if tp := h.Peek("traceparent"); len(tp) > 0 && !httpx.ValidTraceparent(tp) {
		// An invalid traceparent must not be passed on; tracestate is
		// meaningless without it (W3C Trace Context §3.2, §3.3).
		h.Del("traceparent")
		h.Del("tracestate")
	}
}

// cleanResponse removes hop-by-hop headers of the upstream's response; the
// client connection's own keep-alive is the edge's decision.
func cleanResponse(resp *fasthttp.Response) {
	var buf [256]byte
	conn := buf[:0]
	for k, v := range resp.Header.All() {
		conn = appendConnection(conn, k, v)
	}
	dropHopByHop(&resp.Header, conn)
}

// removeHopByHop deletes in place what the client meant for its connection
// to the edge only.
func removeHopByHop(h *fasthttp.RequestHeader) {
	var buf [256]byte
	conn := buf[:0]
	for k, v := range h.All() {
		conn = appendConnection(conn, k, v)
	}
	dropHopByHop(h, conn)
}

// Headers meant for one connection only (RFC 9110 §7.6.1) are the
// hop-by-hop headers (httpx.IsHopByHop, the one list) and every header the
// message's Connection headers name, however many they name and however
// many there are. The Connection values are copied first (appendConnection):
// deleting headers moves the message's own.

// appendConnection appends to conn the value of header name when it is a
// Connection header.
func appendConnection(conn, name, value []byte) []byte {
	if !equalFoldASCII(name, connectionLower) {
		return conn
	}
	return append(append(conn, ','), value...)
}

// header is a request's or a response's header, as dropHopByHop edits it.
type header interface {
	PeekKeys() [][]byte
	DelBytes(key []byte)
	ResetConnectionClose()
}

// dropHopByHop deletes from h the hop-by-hop headers and those the
// Connection values conn name.
func dropHopByHop(h header, conn []byte) {
	for {
		var name []byte
		for _, k := range h.PeekKeys() {
			if httpx.IsHopByHop(k) || connectionNames(conn, k) {
				name = k
				break
			}
		}
		if name == nil {
			break
		}
		h.DelBytes(name) // copies name before it deletes
	}
	h.ResetConnectionClose()
}

// connectionNames reports whether the Connection values conn name name.
func connectionNames(conn, name []byte) bool {
	for len(conn) > 0 {
		var tok []byte
		if tok, conn = httpx.CutToken(conn); len(tok) > 0 && bytes.EqualFold(tok, name) {
			return true
		}
	}
	return false
}

var errUpstream503 = errors.New("answered 503 Service Unavailable")

func isSafe(m []byte) bool {
	switch string(m) {
	case fasthttp.MethodGet, fasthttp.MethodHead, fasthttp.MethodOptions, fasthttp.MethodTrace:
		return true
	}
	return false
}
