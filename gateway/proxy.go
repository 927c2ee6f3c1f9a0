package gateway

import (
	"errors"
	"fmt"

	"github.com/valyala/fasthttp"

	"hedge/configs"
	"hedge/gateway/contract"
	"hedge/gateway/money"
	"hedge/gateway/route"
	"hedge/gateway/upstream"
	"hedge/internal/httpx"
	"hedge/internal/problem"
)

// proxyRoute sends requests to an upstream pool.
type proxyRoute struct {
	node     *Node // its counters and log
	pool     *upstream.Pool
	prefix   []byte
	rewrite  []byte
	contract *contract.Contract
	// guard authenticates and enforces Idempotency-Key when the route asks
	// for it (auth: jwt, idempotency: required); nil otherwise.
	guard *money.KeyGuard
}

func newProxyRoute(n *Node, st *nodeState, rc configs.Route) (route.Handler, error) {
	p := st.pools[rc.Pool]
	if p == nil {
		return nil, fmt.Errorf("pool %q is not defined in region %q", rc.Pool, st.region.Name)
	}
	pr := &proxyRoute{node: n, pool: p, prefix: []byte(rc.Match.PathPrefix), contract: contract.New(rc)}
	if rc.Rewrite != "" {
		pr.rewrite = []byte(rc.Rewrite)
	}
	if rc.Auth == "jwt" {
		if st.money == nil {
			return nil, errors.New("auth: jwt needs auth.jwt keys")
		}
		pr.guard = money.NewKeyGuard(rc.Name, st.money, rc.Idempotency == "required", money.NewCounters(st.money.Outcomes, rc.Name))
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
func (p *proxyRoute) Serve(r *route.Request) problem.Refusal {
	ctx := r.Ctx
	req := &ctx.Request
	pool := p.pool
	var k money.Keyed
	principal := ""
	// On a pool of independent members, a keyed call's member is recorded
	// with its key before the call is sent: picked before the claim, which
	// names it, and moved (one round trip) before a send to another. A node
	// that takes the claim over after this one died goes to that member.
	pinFirst := p.guard != nil && len(pool.Members) > 1 && !pool.Cfg.SharedIdempotency
	var first *upstream.Member
	if p.guard != nil {
		claims, f := p.guard.Authenticate(r)
		if f.Refused() {
			return f
		}
		intent := ""
		if pinFirst {
			if first = pool.Pick(nil); first != nil {
				intent = first.URL
			}
		}
		var v money.Verdict
		if k, v = p.guard.ClaimFor(r, claims.Subject, intent); !v.GoOn() {
			return v.Answer(r)
		}
		principal = claims.Subject
	}
	var pinned *upstream.Member
	if k.Pinned() != "" {
		if pinned = pool.Member(k.Pinned()); pinned == nil || !pinned.Health.Healthy() {
			k.Release(r) // the pin stays
			return problem.Refusal{Type: problem.PinnedUnavailable, RetryAfter: "1",
				Detail: "an earlier request with this Idempotency-Key reached an upstream that is unavailable now; retry later with the same key"}
		}
	}

	clientClose := req.Header.ConnectionClose()
	out := req
	var origPath []byte
	if p.contract.Allowlist() {
		out = fasthttp.AcquireRequest()
		defer fasthttp.ReleaseRequest(out)
		p.contract.Build(out, r, p.prefix, p.rewrite, k.ClientKey())
	} else {
		var pathBuf [128]byte
		origPath = append(pathBuf[:0], req.URI().Path()...)
		p.contract.Prepare(r, p.prefix, p.rewrite)
	}
	if principal != "" {
		out.Header.Set(httpx.PrincipalHeader, principal) // never the client's own
	}
	pool.Budget.Deposit()
	safe := httpx.IsSafeMethod(out.Header.Method())
	keyedReq := k.Active() || len(out.Header.Peek("Idempotency-Key")) > 0
	// After an exchange whose outcome is unknown, another member may be
	// tried only if it cannot apply the request a second time.
	anotherAfterUnknown := safe || keyedReq && pool.Cfg.SharedIdempotency

	var tried [5]*upstream.Member
	attempts := pool.Cfg.Retries.Attempts
	var lastErr error
	var lastMember *upstream.Member
	for i := 0; i < attempts; i++ {
		m := pinned
		switch {
		case m == nil && i == 0 && first != nil:
			m = first
		case m == nil:
			m = pool.Pick(tried[:i])
		case i > 0 && !upstream.BeforeSend(lastErr):
			m = nil
		}
		if m == nil {
			break
		}
		if pinFirst {
			if f := k.Move(r, m.URL); f.Refused() {
				// Not recorded, so not sent: a dead node's successor could
				// not know where it went.
				if origPath != nil {
					req.URI().SetPathBytes(origPath)
				}
				f.Close = clientClose
				return f
			}
		}
		tried[i], lastMember = m, m
		r.Upstream, r.Attempts = m.Name, i+1
		out.URI().SetScheme(m.Scheme)
		if p.contract.Allowlist() {
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
			p.node.countUpstreamError(pool.Name, "unavailable")
			p.node.countRetry(pool.Name)
			continue
		}
		if err == nil {
			m.Health.ReportSuccess()
			contract.CleanResponse(&ctx.Response)
			k.Finish(r)
			if clientClose {
				ctx.SetConnectionClose()
			}
			return problem.Refusal{}
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
		p.node.countUpstreamError(pool.Name, kind)
		p.node.log.Debug("upstream exchange failed", "pool", pool.Name, "member", m.Name, "kind", kind, "error", err, "request_id", string(r.ID))
		if kind != "connect" && !anotherAfterUnknown || i+1 >= attempts || !pool.Budget.Withdraw() {
			break
		}
		p.node.countRetry(pool.Name)
	}
	if origPath != nil {
		req.URI().SetPathBytes(origPath) // problems name the path the client asked for
	}
	unknown := lastErr != nil && !upstream.BeforeSend(lastErr)
	if unknown && k.Active() && !pool.Cfg.SharedIdempotency {
		// Sent, and no answer: the member may have applied it. The retry
		// must find it there, not at a member with a store of its own.
		k.Pin(r, lastMember.URL)
	} else {
		k.Release(r) // no final answer: the client's retry must go through
	}
	f := problem.Refusal{Close: clientClose}
	switch {
	case lastErr == nil:
		f.Type, f.Detail, f.RetryAfter = problem.NoHealthyUpstream, "no healthy member in pool "+pool.Name, "1"
	case unknown && k.Won():
		f.Type, f.Detail = problem.OutcomeUnknown, "pool "+pool.Name+" did not confirm the outcome; retry with the same Idempotency-Key"
	case upstream.Timeout(lastErr):
		f.Type, f.Detail = problem.UpstreamTimeout, "pool "+pool.Name+" did not answer in time"
	case upstream.BeforeSend(lastErr) && pool.Healthy() == 0:
		f.Type, f.Detail, f.RetryAfter = problem.NoHealthyUpstream, "no reachable member in pool "+pool.Name, "1"
	default:
		f.Type, f.Detail = problem.UpstreamFailed, "pool "+pool.Name+" failed to answer"
	}
	return f
}

var errUpstream503 = errors.New("answered 503 Service Unavailable")
