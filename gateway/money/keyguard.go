package gateway

import (
	"bytes"
	"context"
	"errors"
	"time"

	"hedge/gateway/idempotency"
	"hedge/gateway/jwtauth"
	"hedge/internal/httpx"
	"hedge/internal/problem"
)

// keyGuard authenticates players and enforces Idempotency-Key for the
// routes that carry money: every ledger route, and proxy routes marked
// `auth: jwt` / `idempotency: required` (a cashier in front of payment
// rails).
type keyGuard struct {
	route       string
	verifier    *jwtauth.Verifier // nil: no authentication
	store       idempotency.Store // nil: no Idempotency-Key enforcement
	maxResponse int
	counts      *moneyCounters
}

func newKeyGuard(route string, d *moneyDeps, keys bool, counts *moneyCounters) *keyGuard {
	g := &keyGuard{route: route, verifier: d.verifier, maxResponse: d.maxResponse, counts: counts}
	if keys {
		g.store = d.store
	}
	return g
}

var bearer = []byte("bearer ")

// authenticate verifies the bearer token; on failure it has answered 401.
func (g *keyGuard) authenticate(r *Request) (jwtauth.Claims, bool) {
	ctx := r.Ctx
	auth := ctx.Request.Header.Peek("Authorization")
	var tok []byte
	if len(auth) > len(bearer) && bytes.EqualFold(auth[:len(bearer)], bearer) {
		tok = auth[len(bearer):]
	}
	claims, err := g.verifier.Verify(tok)
	if err != nil {
		detail := "send Authorization: Bearer with a valid token"
		if !errors.Is(err, jwtauth.ErrNoToken) {
			detail = "the bearer token was refused"
		}
		problem.Write(ctx, problem.InvalidToken, detail, r.ID)
		ctx.Response.Header.Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		return jwtauth.Claims{}, false
	}
	return claims, true
}

// keyed is one request's hold on its Idempotency-Key.
type keyed struct {
	g      *keyGuard
	key    string // scoped by the principal, as the store knows it
	claim  idempotency.Claim
	fp     idempotency.Fingerprint
	active bool // an unsafe request that won its claim: it must finish, release or pin
	raw    [httpx.MaxIdempotencyKeyLen]byte
	rawLen int
}

// clientKey is the key the request carries, parsed (nil when the request
// is not keyed): the edge forwards it in one spelling, whatever the
// client's.
func (k *keyed) clientKey() []byte {
	if !k.active {
		return nil
	}
	return k.raw[:k.rawLen]
}

// claim enforces Idempotency-Key on unsafe methods. When it returns false it
// has answered the request (400, 409, 422, 503, or the stored response).
func (g *keyGuard) claim(r *Request, principal string) (keyed, bool) {
	ctx := r.Ctx
	req := &ctx.Request
	k := keyed{g: g}
	if g.store == nil || isSafe(req.Header.Method()) {
		return k, true
	}
	var key []byte
	var err error
	switch values := req.Header.PeekAll("Idempotency-Key"); len(values) {
	case 0:
		err = httpx.ErrIdempotencyKeyMissing
	case 1:
		key, err = httpx.ParseIdempotencyKey(k.raw[:0], values[0])
	default:
		// Two keys for one request: whichever the edge chose, an upstream
		// might choose the other.
		problem.Write(ctx, problem.KeyMalformed, "send exactly one Idempotency-Key header", r.ID)
		return k, false
	}
	switch {
	case errors.Is(err, httpx.ErrIdempotencyKeyMissing):
		problem.Write(ctx, problem.KeyMissing, "send an Idempotency-Key header (a unique value per operation, e.g. a UUID)", r.ID)
		return k, false
	case err != nil:
		problem.Write(ctx, problem.KeyMalformed, "an Idempotency-Key is 1 to 255 printable ASCII characters", r.ID)
		return k, false
	}
	k.rawLen = len(key)
	k.fp = idempotency.FingerprintOf(req.Header.Method(), req.URI().RequestURI(), req.Body())
	k.key = idempotency.ScopedKey([]byte(principal), key)
	sctx, cancel := context.WithTimeout(context.Background(), time.Second)
	k.claim, err = g.store.Claim(sctx, k.key, k.fp)
	cancel()
	if err != nil {
		r.Node.log.Error("idempotency store failed", "route", g.route, "error", err, "request_id", string(r.ID))
		problem.Write(ctx, problem.IdempotencyUnavailable, "", r.ID)
		ctx.Response.Header.Set("Retry-After", "1")
		return k, false
	}
	if !k.claim.Won {
		g.answerExisting(r, k.claim.Existing, k.fp)
		return k, false
	}
	g.counts.claimed.Inc()
	k.active = true
	return k, true
}

// answerExisting answers a request whose key was claimed before.
func (g *keyGuard) answerExisting(r *Request, ex *idempotency.Record, fp idempotency.Fingerprint) {
	ctx := r.Ctx
	switch {
	case ex.Fingerprint != fp:
		g.counts.reused.Inc()
		problem.Write(ctx, problem.KeyReused, "this Idempotency-Key was used for a different request", r.ID)
	case !ex.Done && ex.Pinned != "":
		// Only a different request finds a pinned key without winning it
		// (the same one wins); kept for a store that says otherwise.
		g.counts.reused.Inc()
		problem.Write(ctx, problem.KeyReused, "this Idempotency-Key was used for a different request", r.ID)
	case !ex.Done:
		g.counts.inFlight.Inc()
		problem.Write(ctx, problem.KeyInFlight, "the first request with this Idempotency-Key has not finished", r.ID)
		ctx.Response.Header.Set("Retry-After", "1")
	default:
		g.counts.replayed.Inc()
		resp := &ctx.Response
		resp.Reset()
		resp.SetStatusCode(ex.Response.Status)
		for _, h := range ex.Response.Header {
			if name, value, ok := bytes.Cut([]byte(h), []byte(": ")); ok {
				resp.Header.AddBytesKV(name, value)
			}
		}
		resp.Header.Set("Idempotent-Replayed", "true")
		resp.SetBody(ex.Response.Body)
	}
}

// pin releases the claim of a request that reached upstream without a
// known outcome, remembering which upstream it reached: the client's retry
// goes there and nowhere else.
func (k *keyed) pin(r *Request, upstream string) {
	if !k.active {
		return
	}
	k.active = false
	sctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := k.g.store.Pin(sctx, k.key, k.claim, k.fp, upstream); err != nil {
		// The in-flight claim expires on its own; until it does the
		// client's retries get 409, never a second upstream.
		r.Node.log.Error("idempotency store failed to pin a key", "route", k.g.route, "error", err, "request_id", string(r.ID))
	}
}

// release forgets the claim: the outcome is not final, so the client's
// retry with the same key must go through again.
func (k *keyed) release(r *Request) {
	if !k.active {
		return
	}
	k.active = false
	sctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := k.g.store.Release(sctx, k.key, k.claim); err != nil {
		r.Node.log.Error("idempotency store failed to release a key", "route", k.g.route, "error", err, "request_id", string(r.ID))
	}
}

// finish stores the upstream's answer for replay when it is a success, and
// releases the key otherwise.
func (k *keyed) finish(r *Request) {
	if !k.active {
		return
	}
	resp := &r.Ctx.Response
	status := resp.StatusCode()
	if !replayable(status) || len(resp.Body()) > k.g.maxResponse {
		k.release(r)
		return
	}
	k.active = false
	stored := idempotency.Response{Status: status, Body: append([]byte(nil), resp.Body()...)}
	for name, v := range resp.Header.All() {
		if replayHeader(name) {
			stored.Header = append(stored.Header, string(name)+": "+string(v))
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := k.g.store.Complete(sctx, k.key, k.claim, k.fp, stored); err != nil {
		r.Node.log.Error("idempotency store failed to record a response", "route", k.g.route, "error", err, "request_id", string(r.ID))
	}
}
