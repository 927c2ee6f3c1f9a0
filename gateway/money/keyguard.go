package money

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"time"

	"hedge/gateway/idempotency"
	"hedge/gateway/jwtauth"
	"hedge/gateway/route"
	"hedge/internal/httpx"
	"hedge/internal/problem"
)

// KeyGuard authenticates players and enforces Idempotency-Key for the
// routes that carry money: every ledger route, and proxy routes marked
// `auth: jwt` / `idempotency: required` (a cashier in front of payment
// rails). It decides; the route and the edge answer.
type KeyGuard struct {
	route       string
	log         *slog.Logger
	store       idempotency.Store // nil: no Idempotency-Key enforcement
	maxResponse int
	counts      *Counters
}

// NewKeyGuard is the guard of route; keys says whether it enforces
// Idempotency-Key (or only authenticates).
func NewKeyGuard(route string, d *Deps, keys bool, counts *Counters) *KeyGuard {
	g := &KeyGuard{route: route, log: d.Log, maxResponse: d.MaxResponse, counts: counts}
	if keys {
		g.store = d.Store
	}
	return g
}

// Authenticate is the request's identity as the edge established it, or
// the 401 refusal of a request without a valid bearer token.
func (g *KeyGuard) Authenticate(r *route.Request) (jwtauth.Claims, problem.Refusal) {
	claims, err := r.Identity()
	if err != nil {
		detail := "send Authorization: Bearer with a valid token"
		if !errors.Is(err, jwtauth.ErrNoToken) {
			detail = "the bearer token was refused"
		}
		return claims, problem.Refusal{Type: problem.InvalidToken, Detail: detail,
			Header: "WWW-Authenticate", Value: `Bearer error="invalid_token"`}
	}
	return claims, problem.Refusal{}
}

// Verdict is the key guard's decision on a request: go on (the zero
// Verdict), refuse, or replay the stored answer to an earlier request with
// the same key.
type Verdict struct {
	problem.Refusal
	// Replay is the stored answer the request gets instead of going on.
	Replay *idempotency.Response
}

// GoOn reports whether the request goes on to its upstream.
func (v *Verdict) GoOn() bool { return !v.Refused() && v.Replay == nil }

// Answer answers r with a replay, returning the zero Refusal, or returns
// the refusal for the edge to answer.
func (v *Verdict) Answer(r *route.Request) problem.Refusal {
	if v.Replay == nil {
		return v.Refusal
	}
	resp := &r.Ctx.Response
	resp.Reset()
	resp.SetStatusCode(v.Replay.Status)
	for _, h := range v.Replay.Header {
		if name, value, ok := bytes.Cut([]byte(h), []byte(": ")); ok {
			resp.Header.AddBytesKV(name, value)
		}
	}
	resp.Header.Set("Idempotent-Replayed", "true")
	resp.SetBody(v.Replay.Body)
	return problem.Refusal{}
}

// Keyed is one request's hold on its Idempotency-Key.
type Keyed struct {
	g      *KeyGuard
	key    string // scoped by the principal, as the store knows it
	claim  idempotency.Claim
	fp     idempotency.Fingerprint
	active bool // an unsafe request that won its claim: it must finish, release or pin
	raw    [httpx.MaxIdempotencyKeyLen]byte
	rawLen int
}

// ClientKey is the key the request carries, parsed (nil when the request
// is not keyed): the edge forwards it in one spelling, whatever the
// client's.
func (k *Keyed) ClientKey() []byte {
	if !k.active {
		return nil
	}
	return k.raw[:k.rawLen]
}

// Active reports whether the request holds its key: an unsafe request that
// won its claim, which must finish, release or pin it.
func (k *Keyed) Active() bool { return k.active }

// Won reports whether the request won its key's claim.
func (k *Keyed) Won() bool { return k.claim.Won }

// Pinned names the upstream an earlier request with this key reached
// without a known outcome ("" for none): the request goes there or nowhere.
func (k *Keyed) Pinned() string { return k.claim.Pinned }

// Upstream is where the claim says the request goes (see ClaimFor): the
// pin, the upstream it was claimed for, or the one it moved to.
func (k *Keyed) Upstream() string { return k.claim.Upstream }

// Move records, before the request is sent to upstream instead of the one
// its claim names, that it goes there now. When that fails the request
// must not be sent: the claim is released (if it is still this request's)
// and the refusal returned.
func (k *Keyed) Move(r *route.Request, upstream string) problem.Refusal {
	if !k.active || k.claim.Upstream == upstream {
		return problem.Refusal{}
	}
	// A copy, so that only a move escapes to the heap, never the Keyed.
	c := k.claim
	sctx, cancel := context.WithTimeout(context.Background(), time.Second)
	err := k.g.store.Move(sctx, k.key, &c, upstream)
	cancel()
	if err == nil {
		k.claim = c
		return problem.Refusal{}
	}
	k.g.log.Error("idempotency store failed to move a key to another upstream", "route", k.g.route, "upstream", upstream,
		"error", err, "request_id", string(r.ID))
	k.Release(r)
	return problem.Refusal{Type: problem.IdempotencyUnavailable, RetryAfter: "1"}
}

// Claim enforces Idempotency-Key on unsafe methods: the request goes on
// holding its key, or is refused (400, 409, 422, 503), or gets the stored
// answer of the request that completed with this key before.
func (g *KeyGuard) Claim(r *route.Request, principal string) (Keyed, Verdict) {
	return g.ClaimFor(r, principal, "")
}

// ClaimFor is Claim for a request that goes to upstream unless its key is
// pinned elsewhere (Keyed.Upstream says where it goes): the claim records
// the upstream before anything is sent, so a node that takes the claim
// over after this one died sends the retry there too.
func (g *KeyGuard) ClaimFor(r *route.Request, principal, upstream string) (Keyed, Verdict) {
	req := &r.Ctx.Request
	k := Keyed{g: g}
	if g.store == nil || httpx.IsSafeMethod(req.Header.Method()) {
		return k, Verdict{}
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
		return k, refuse(problem.KeyMalformed, "send exactly one Idempotency-Key header")
	}
	switch {
	case errors.Is(err, httpx.ErrIdempotencyKeyMissing):
		return k, refuse(problem.KeyMissing, "send an Idempotency-Key header (a unique value per operation, e.g. a UUID)")
	case err != nil:
		return k, refuse(problem.KeyMalformed, "an Idempotency-Key is 1 to 255 printable ASCII characters")
	}
	k.rawLen = len(key)
	k.fp = idempotency.FingerprintOf(req.Header.Method(), req.URI().RequestURI(), req.Body())
	k.key = idempotency.ScopedKey([]byte(principal), key)
	sctx, cancel := context.WithTimeout(context.Background(), time.Second)
	k.claim, err = g.store.ClaimFor(sctx, k.key, k.fp, upstream)
	cancel()
	if err != nil {
		g.log.Error("idempotency store failed", "route", g.route, "error", err, "request_id", string(r.ID))
		return k, Verdict{Refusal: problem.Refusal{Type: problem.IdempotencyUnavailable, RetryAfter: "1"}}
	}
	if !k.claim.Won {
		return k, g.existing(k.claim.Existing, k.fp)
	}
	g.counts.claimed.Inc()
	if k.claim.TakenOver != "" {
		// The node that held this key in flight stopped renewing its
		// liveness (killed, or cut off from the store): the retry goes on.
		g.counts.takenOver.Inc()
		g.log.Warn("idempotency key taken over from a dead node", "route", g.route, "dead_owner", k.claim.TakenOver,
			"pinned", k.claim.Pinned, "request_id", string(r.ID))
	}
	k.active = true
	return k, Verdict{}
}

func refuse(t problem.Type, detail string) Verdict {
	return Verdict{Refusal: problem.Refuse(t, detail)}
}

// existing is the verdict on a request whose key was claimed before.
func (g *KeyGuard) existing(ex *idempotency.Record, fp idempotency.Fingerprint) Verdict {
	switch {
	case ex.Fingerprint != fp:
		g.counts.reused.Inc()
		return refuse(problem.KeyReused, "this Idempotency-Key was used for a different request")
	case !ex.Done && ex.Pinned != "":
		// Only a different request finds a pinned key without winning it
		// (the same one wins); kept for a store that says otherwise.
		g.counts.reused.Inc()
		return refuse(problem.KeyReused, "this Idempotency-Key was used for a different request")
	case !ex.Done:
		g.counts.inFlight.Inc()
		return Verdict{Refusal: problem.Refusal{Type: problem.KeyInFlight,
			Detail: "the first request with this Idempotency-Key has not finished", RetryAfter: "1"}}
	}
	g.counts.replayed.Inc()
	return Verdict{Replay: &ex.Response}
}

// Pin releases the claim of a request that reached upstream without a
// known outcome, remembering which upstream it reached: the client's retry
// goes there and nowhere else.
func (k *Keyed) Pin(r *route.Request, upstream string) {
	if !k.active {
		return
	}
	k.active = false
	sctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := k.g.store.Pin(sctx, k.key, k.claim, k.fp, upstream); err != nil {
		// The in-flight claim expires on its own; until it does the
		// client's retries get 409, never a second upstream.
		k.g.log.Error("idempotency store failed to pin a key", "route", k.g.route, "error", err, "request_id", string(r.ID))
	}
}

// Release forgets the claim: the outcome is not final, so the client's
// retry with the same key must go through again.
func (k *Keyed) Release(r *route.Request) {
	if !k.active {
		return
	}
	k.active = false
	sctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := k.g.store.Release(sctx, k.key, k.claim); err != nil {
		k.g.log.Error("idempotency store failed to release a key", "route", k.g.route, "error", err, "request_id", string(r.ID))
	}
}

// Finish stores the upstream's answer for replay when it is a success, and
// releases the key otherwise.
func (k *Keyed) Finish(r *route.Request) {
	if !k.active {
		return
	}
	resp := &r.Ctx.Response
	status := resp.StatusCode()
	if !replayable(status) || len(resp.Body()) > k.g.maxResponse {
		k.Release(r)
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
		k.g.log.Error("idempotency store failed to record a response", "route", k.g.route, "error", err, "request_id", string(r.ID))
	}
}
