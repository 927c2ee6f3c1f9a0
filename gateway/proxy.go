package gateway

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/valyala/fasthttp"

	"hedge/configs"
	"hedge/gateway/httpx"
	"hedge/gateway/problem"
	"hedge/gateway/upstream"
)

// proxyRoute sends requests to an upstream pool.
type proxyRoute struct {
	pool    *upstream.Pool
	prefix  []byte
	rewrite []byte
	// guard authenticates and enforces Idempotency-Key when the route asks
	// for it (auth: jwt, idempotency: required); nil otherwise.
	guard *keyGuard
}

func newProxyRoute(b *Build, rc configs.Route) (RouteHandler, error) {
	p := b.Pools[rc.Pool]
	if p == nil {
		return nil, fmt.Errorf("pool %q is not defined in region %q", rc.Pool, b.Region.Name)
	}
	pr := &proxyRoute{pool: p, prefix: []byte(rc.Match.PathPrefix)}
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

// hopByHop are removed in both directions (RFC 9110 §7.6.1); fasthttp
// itself owns Transfer-Encoding and Content-Length.
var hopByHop = []string{"Connection", "Keep-Alive", "Proxy-Connection", "TE", "Trailer", "Upgrade", "Proxy-Authenticate", "Proxy-Authorization"}

// Serve proxies r to a healthy member, retrying on another member only when
// that cannot apply the request twice: the failure happened before sending,
// or the method is safe, or the request carries an Idempotency-Key (the
// upstream deduplicates it). Retries also need the pool's retry budget.
func (p *proxyRoute) Serve(r *Request) {
	ctx := r.Ctx
	req := &ctx.Request
	var k keyed
	if p.guard != nil {
		claims, ok := p.guard.authenticate(r)
		if !ok {
			return
		}
		if k, ok = p.guard.claim(r, claims.Subject); !ok {
			return
		}
		req.Header.Set("X-Hedge-Principal", claims.Subject) // never the client's own
	}
	clientClose := req.Header.ConnectionClose()
	var pathBuf [128]byte
	origPath := append(pathBuf[:0], req.URI().Path()...)
	p.prepare(r)
	pool := p.pool
	pool.Budget.Deposit()
	retryable := isSafe(req.Header.Method()) || len(req.Header.Peek("Idempotency-Key")) > 0

	var tried [5]*upstream.Member
	attempts := pool.Cfg.Retries.Attempts
	var lastErr error
	for i := 0; i < attempts; i++ {
		m := pool.Pick(tried[:i])
		if m == nil {
			break
		}
		tried[i] = m
		r.Upstream, r.Attempts = m.Name, i+1
		req.URI().SetScheme(m.Scheme)
		err := m.Client.Do(req, &ctx.Response)
		if err == nil && ctx.Response.StatusCode() == fasthttp.StatusServiceUnavailable &&
			retryable && i+1 < attempts && pool.Healthy() > 1 && pool.Budget.Withdraw() {
			// The member says it cannot serve (a rail going down before its
			// health checks notice): a request that cannot be applied twice
			// goes to the next member.
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
		if kind != "connect" && !retryable || i+1 >= attempts || !pool.Budget.Withdraw() {
			break
		}
		r.Node.countRetry(pool.Name)
	}
	req.URI().SetPathBytes(origPath) // problems name the path the client asked for
	k.release(r)                     // no final answer: the client's retry must go through
	switch {
	case lastErr == nil:
		problem.Write(ctx, problem.NoHealthyUpstream, "no healthy member in pool "+pool.Name, r.ID)
		ctx.Response.Header.Set("Retry-After", "1")
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
func (p *proxyRoute) prepare(r *Request) { prepareForward(r, p.prefix, p.rewrite) }

// prepareForward turns the client's request into the request the edge
// sends on, in place: hop-by-hop headers out, the path rewritten, the
// forwarding headers, request id and trace context set. Every route kind
// that forwards uses it.
func prepareForward(r *Request, prefix, rewrite []byte) {
	h := &r.Ctx.Request.Header
	var conn [8][]byte
	tokens := conn[:0]
	httpx.ConnectionTokens(h.Peek("Connection"), func(t []byte) {
		if len(tokens) < cap(tokens) {
			tokens = append(tokens, t)
		}
	})
	for _, t := range tokens {
		h.DelBytes(t)
	}
	for _, name := range hopByHop {
		h.Del(name)
	}
	h.ResetConnectionClose()

	if rewrite != nil {
		uri := r.Ctx.Request.URI()
		path := uri.Path()
		if bytes.HasPrefix(path, prefix) {
			var buf [256]byte
			np := append(append(buf[:0], rewrite...), path[len(prefix):]...)
			uri.SetPathBytes(np)
		}
	}

	var buf [256]byte
	client := r.Client.AppendTo(buf[:0])
	if r.TrustedPeer {
		if prior := h.Peek("X-Forwarded-For"); len(prior) > 0 {
			b := append(append(append(buf[len(client):len(client)], prior...), ", "...), r.Peer.String()...)
			h.SetBytesV("X-Forwarded-For", b)
		} else {
			h.SetBytesV("X-Forwarded-For", client)
		}
		if len(h.Peek("X-Forwarded-Proto")) == 0 {
			h.Set("X-Forwarded-Proto", r.Proto)
		}
		prior := h.Peek("Forwarded")
		f := httpx.AppendForwardedElement(nil, r.Peer, []byte(r.Proto), r.Ctx.Host())
		if len(prior) > 0 {
			f = append(append(append([]byte(nil), prior...), ", "...), f...)
		}
		h.SetBytesV("Forwarded", f)
	} else {
		h.SetBytesV("X-Forwarded-For", client)
		h.Set("X-Forwarded-Proto", r.Proto)
		h.SetBytesV("Forwarded", httpx.AppendForwardedElement(buf[len(client):len(client)], r.Client, []byte(r.Proto), r.Ctx.Host()))
	}
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
	h := &resp.Header
	httpx.ConnectionTokens(h.Peek("Connection"), func(t []byte) { h.DelBytes(t) })
	for _, name := range hopByHop {
		h.Del(name)
	}
	h.ResetConnectionClose()
}

var errUpstream503 = errors.New("answered 503 Service Unavailable")

func isSafe(m []byte) bool {
	switch string(m) {
	case fasthttp.MethodGet, fasthttp.MethodHead, fasthttp.MethodOptions, fasthttp.MethodTrace:
		return true
	}
	return false
}
