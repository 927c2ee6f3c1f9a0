package money

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"

	"hedge/gateway/idempotency"
	"hedge/gateway/route"
	"hedge/internal/problem"
	"hedge/internal/testredis"
)

// brokenStore is an idempotency store whose every call fails.
type brokenStore struct{ idempotency.Store }

func (brokenStore) Claim(context.Context, string, idempotency.Fingerprint) (idempotency.Claim, error) {
	return idempotency.Claim{}, errors.New("redis: connection refused")
}

func (brokenStore) ClaimFor(context.Context, string, idempotency.Fingerprint, string) (idempotency.Claim, error) {
	return idempotency.Claim{}, errors.New("redis: connection refused")
}

func testGuard(store idempotency.Store) *KeyGuard {
	d := &Deps{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Store: store, MaxResponse: 1 << 10,
		Outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "t"}, []string{"route", "outcome"})}
	return NewKeyGuard("bets", d, true, NewCounters(d.Outcomes, "bets"))
}

func keyedRequest(method, body string, keys ...string) *route.Request {
	ctx := &fasthttp.RequestCtx{}
	ctx.Request.Header.SetMethod(method)
	ctx.Request.SetRequestURI("/api/bets")
	for _, k := range keys {
		ctx.Request.Header.Add("Idempotency-Key", k)
	}
	ctx.Request.SetBodyString(body)
	return &route.Request{Ctx: ctx, ID: []byte("req-1")}
}

// The key guard decides and never answers: each claim comes back as a
// verdict — go on holding the key, refuse with a problem (and its
// Retry-After), or replay the stored answer — and the response stays
// untouched until the route or the edge answers.
func TestKeyGuardVerdicts(t *testing.T) {
	mem := idempotency.NewMemory(1<<16, time.Hour, time.Minute)
	t.Cleanup(func() { mem.Close() })
	g := testGuard(mem)

	// A completed key: its answer is stored.
	first := keyedRequest("POST", `{"amount":"1.00"}`, "done-1")
	k, v := g.Claim(first, "player-1")
	if !v.GoOn() || !k.Active() || string(k.ClientKey()) != "done-1" {
		t.Fatalf("a fresh key: want to go on holding it, got %+v (active %v)", v, k.Active())
	}
	first.Ctx.Response.SetStatusCode(201)
	first.Ctx.Response.SetBodyString(`{"bet_id":"b-1"}`)
	k.Finish(first)
	// An in-flight key.
	if k, v := g.Claim(keyedRequest("POST", `{"amount":"2.00"}`, "busy-1"), "player-1"); !v.GoOn() || !k.Active() {
		t.Fatalf("a fresh key: want to go on, got %+v", v)
	}

	cases := []struct {
		name       string
		guard      *KeyGuard
		r          *route.Request
		goOn       bool
		replay     bool
		t          problem.Type
		retryAfter string
	}{
		{"a safe method needs no key", g, keyedRequest("GET", ""), true, false, problem.Type{}, ""},
		{"no key", g, keyedRequest("POST", "{}"), false, false, problem.KeyMissing, ""},
		{"a malformed key", g, keyedRequest("POST", "{}", "bad key\x01"), false, false, problem.KeyMalformed, ""},
		{"two keys", g, keyedRequest("POST", "{}", "k-1", "k-2"), false, false, problem.KeyMalformed, ""},
		{"the key of another request", g, keyedRequest("POST", `{"amount":"9.00"}`, "done-1"), false, false, problem.KeyReused, ""},
		{"the key of a request in flight", g, keyedRequest("POST", `{"amount":"2.00"}`, "busy-1"), false, false, problem.KeyInFlight, "1"},
		{"the key of a completed request", g, keyedRequest("POST", `{"amount":"1.00"}`, "done-1"), false, true, problem.Type{}, ""},
		{"the store fails", testGuard(brokenStore{}), keyedRequest("POST", "{}", "k-9"), false, false, problem.IdempotencyUnavailable, "1"},
	}
	for _, c := range cases {
		_, v := c.guard.Claim(c.r, "player-1")
		if got := c.r.Ctx.Response.StatusCode(); got != 200 || len(c.r.Ctx.Response.Body()) > 0 {
			t.Errorf("%s: the guard answered (%d %q); it must only decide", c.name, got, c.r.Ctx.Response.Body())
		}
		if v.GoOn() != c.goOn || (v.Replay != nil) != c.replay || v.Type != c.t || v.RetryAfter != c.retryAfter {
			t.Errorf("%s: want go on %v, replay %v, %q (Retry-After %q); got %+v", c.name, c.goOn, c.replay, c.t.Slug, c.retryAfter, v)
		}
		if c.replay {
			// The route answers with the stored response, marked as a replay.
			if f := v.Answer(c.r); f.Refused() || c.r.Ctx.Response.StatusCode() != 201 ||
				string(c.r.Ctx.Response.Body()) != `{"bet_id":"b-1"}` || string(c.r.Ctx.Response.Header.Peek("Idempotent-Replayed")) != "true" {
				t.Errorf("%s: want the stored 201 replayed, got %v, %d %s", c.name, f, c.r.Ctx.Response.StatusCode(), c.r.Ctx.Response.Body())
			}
		}
	}
}

// TestKeyGuardTakesOverADeadNodesKey: two nodes' guards share a real
// Redis; a bet in flight at one node is 409 through the other while the
// first lives, and goes on (counted as taken_over) once the first is gone.
func TestKeyGuardTakesOverADeadNodesKey(t *testing.T) {
	addr := testredis.Start(t)
	store := func() *idempotency.Redis {
		s := idempotency.NewRedis(redis.NewClient(&redis.Options{Addr: addr}), "kg:", time.Hour, time.Minute, time.Second)
		t.Cleanup(func() { s.Close() })
		return s
	}
	dead, alive := testGuard(store()), testGuard(store())
	const bet = `{"amount":"5.00"}`
	if k, v := dead.Claim(keyedRequest("POST", bet, "bet-1"), "player-1"); !v.GoOn() || !k.Active() {
		t.Fatalf("the first node: want to go on holding the key, got %+v", v)
	}
	takenOver := alive.counts.takenOver
	if _, v := alive.Claim(keyedRequest("POST", bet, "bet-1"), "player-1"); v.Type != problem.KeyInFlight {
		t.Fatalf("while the first node lives: want %s, got %+v", problem.KeyInFlight.Slug, v)
	}
	dead.store.Close()
	k, v := alive.Claim(keyedRequest("POST", bet, "bet-1"), "player-1")
	if !v.GoOn() || !k.Active() {
		t.Fatalf("after the first node died: want the retry to go on, got %+v", v)
	}
	if got := counterValue(t, takenOver); got != 1 {
		t.Fatalf("taken_over: want 1, got %v", got)
	}
	if _, v := alive.Claim(keyedRequest("POST", `{"amount":"6.00"}`, "bet-1"), "player-1"); v.Type != problem.KeyReused {
		t.Fatalf("another request under the taken-over key: want %s, got %+v", problem.KeyReused.Slug, v)
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 1 || len(mfs[0].GetMetric()) != 1 {
		t.Fatalf("gathering a counter: %v %v", mfs, err)
	}
	return mfs[0].GetMetric()[0].GetCounter().GetValue()
}
