package idempotency

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"hedge/internal/testredis"
)

func stores(t *testing.T) map[string]Store {
	addr := testredis.Start(t)
	rc := redis.NewClient(&redis.Options{Addr: addr})
	r := NewRedis(rc, "test:", time.Hour, time.Minute, 3*time.Second)
	t.Cleanup(func() { r.Close() })
	return map[string]Store{"memory": NewMemory(1000, time.Hour, time.Minute), "redis": r}
}

func TestStoreContract(t *testing.T) {
	ctx := context.Background()
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			fp := FingerprintOf([]byte("POST"), []byte("/api/bets"), []byte(`{"amount":"1.00"}`))
			key := ScopedKey([]byte("player-1"), []byte("k1"))
			c, err := s.Claim(ctx, key, fp)
			if err != nil || !c.Won {
				t.Fatalf("first claim: want won, got %+v %v", c, err)
			}
			c2, err := s.Claim(ctx, key, fp)
			if err != nil || c2.Won || c2.Existing == nil || c2.Existing.Done {
				t.Fatalf("second claim while in flight: want existing in-flight record, got %+v %v", c2, err)
			}
			// Another principal's identical key is a different key.
			other, _ := s.Claim(ctx, ScopedKey([]byte("player-2"), []byte("k1")), fp)
			if !other.Won {
				t.Fatal("keys are not scoped by principal")
			}
			// A loser cannot complete or release the owner's claim.
			s.Release(ctx, key, c2)
			resp := Response{Status: 201, Header: []string{"Content-Type: application/json"}, Body: []byte(`{"ok":true}`)}
			if err := s.Complete(ctx, key, c, fp, resp); err != nil {
				t.Fatal(err)
			}
			c3, _ := s.Claim(ctx, key, fp)
			if c3.Won || !c3.Existing.Done || c3.Existing.Response.Status != 201 || string(c3.Existing.Response.Body) != `{"ok":true}` ||
				c3.Existing.Response.Header[0] != "Content-Type: application/json" || c3.Existing.Fingerprint != fp {
				t.Fatalf("after completion: want the stored response, got %+v", c3.Existing)
			}
			// Release forgets only an in-flight claim.
			k2 := ScopedKey([]byte("player-1"), []byte("k2"))
			c4, _ := s.Claim(ctx, k2, fp)
			s.Release(ctx, k2, c4)
			if c5, _ := s.Claim(ctx, k2, fp); !c5.Won {
				t.Fatal("a released key must be claimable again")
			}
			s.Release(ctx, key, c) // completed: release is a no-op
			if c6, _ := s.Claim(ctx, key, fp); c6.Won {
				t.Fatal("release removed a completed record")
			}
		})
	}
}

// TestOneWinnerUnderContention: many nodes (goroutines) claim one key at
// once; exactly one wins.
func TestOneWinnerUnderContention(t *testing.T) {
	ctx := context.Background()
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			for round := range 20 {
				key := ScopedKey([]byte("p"), fmt.Appendf(nil, "race-%d", round))
				if wins := claimAtOnce(t, ctx, key, []Store{s}, 16); wins != 1 {
					t.Fatalf("round %d: want exactly 1 winner, got %d", round, wins)
				}
			}
		})
	}
}

// claimAtOnce has each store claim key from each of perStore goroutines
// at once and returns how many of those claims were won.
func claimAtOnce(t *testing.T, ctx context.Context, key string, claimers []Store, perStore int) int32 {
	t.Helper()
	var wins atomic.Int32
	var wg sync.WaitGroup
	for _, s := range claimers {
		for range perStore {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := s.Claim(ctx, key, Fingerprint{})
				if err != nil {
					t.Error(err)
				}
				if c.Won {
					wins.Add(1)
				}
			}()
		}
	}
	wg.Wait()
	return wins.Load()
}

func TestMemoryIsBounded(t *testing.T) {
	ctx := context.Background()
	m := NewMemory(shards*10, time.Hour, time.Minute)
	for i := range 10_000 {
		key := ScopedKey([]byte("p"), fmt.Appendf(nil, "k%d", i))
		c, err := m.Claim(ctx, key, Fingerprint{})
		if err != nil {
			t.Fatalf("claim %d: %v", i, err)
		}
		m.Complete(ctx, key, c, Fingerprint{}, Response{Status: 200})
	}
	if n := m.Len(); n > shards*10 {
		t.Fatalf("want at most %d keys, got %d", shards*10, n)
	}
	// A store full of in-flight claims refuses new keys rather than
	// forgetting one that is in flight.
	full := NewMemory(shards, time.Hour, time.Minute)
	var errs int
	for i := range 1000 {
		if _, err := full.Claim(ctx, ScopedKey([]byte("p"), fmt.Appendf(nil, "f%d", i)), Fingerprint{}); err == ErrFull {
			errs++
		}
	}
	if errs == 0 || full.Len() > shards {
		t.Fatalf("full of in-flight claims: want ErrFull and at most %d keys, got %d errors, %d keys", shards, errs, full.Len())
	}
}

// TestAbandonedClaimExpires: a claim whose owner never completes it (a
// crashed node) stops blocking the key after the in-flight period, while a
// completed record stays for the retention period.
func TestAbandonedClaimExpires(t *testing.T) {
	ctx := context.Background()
	addr := testredis.Start(t)
	r := NewRedis(redis.NewClient(&redis.Options{Addr: addr}), "t2:", time.Hour, 100*time.Millisecond, 3*time.Second)
	defer r.Close()
	for name, s := range map[string]Store{"memory": NewMemory(1000, time.Hour, 100*time.Millisecond), "redis": r} {
		abandoned := ScopedKey([]byte("p"), []byte("crash"))
		done := ScopedKey([]byte("p"), []byte("done"))
		s.Claim(ctx, abandoned, Fingerprint{})
		c, _ := s.Claim(ctx, done, Fingerprint{})
		s.Complete(ctx, done, c, Fingerprint{}, Response{Status: 201})
		time.Sleep(150 * time.Millisecond)
		if c, _ := s.Claim(ctx, abandoned, Fingerprint{}); !c.Won {
			t.Errorf("%s: an abandoned claim still blocks its key after the in-flight period", name)
		}
		if c, _ := s.Claim(ctx, done, Fingerprint{}); c.Won {
			t.Errorf("%s: a completed record expired with the in-flight period", name)
		}
	}
}

func TestMemoryExpiry(t *testing.T) {
	ctx := context.Background()
	m := NewMemory(100, 20*time.Millisecond, 20*time.Millisecond)
	key := ScopedKey([]byte("p"), []byte("k"))
	c, _ := m.Claim(ctx, key, Fingerprint{})
	m.Complete(ctx, key, c, Fingerprint{}, Response{Status: 200})
	time.Sleep(30 * time.Millisecond)
	if c, _ := m.Claim(ctx, key, Fingerprint{}); !c.Won {
		t.Fatal("an expired key must be claimable again")
	}
}

func BenchmarkMemoryClaimComplete(b *testing.B) {
	ctx := context.Background()
	m := NewMemory(1_000_000, time.Hour, time.Minute)
	fp := FingerprintOf([]byte("POST"), []byte("/api/bets"), make([]byte, 200))
	resp := Response{Status: 201, Header: []string{"Content-Type: application/json"}, Body: make([]byte, 100)}
	keys := make([]string, 1<<16)
	for i := range keys {
		keys[i] = ScopedKey([]byte("player-1"), fmt.Appendf(nil, "0b6e2f8c-5d7a-4d0e-9a51-%012d", i))
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		key := keys[i&(len(keys)-1)]
		i++
		c, _ := m.Claim(ctx, key, fp)
		if c.Won {
			m.Complete(ctx, key, c, fp, resp)
		}
	}
}

// TestPinKeepsUnknownOutcomeWithItsUpstream: a key whose request reached
// an upstream without a known outcome is pinned to it: the retry with the
// same request wins the key and learns where it must go, a different
// request under the key is told the key is used, a release of the retry
// keeps the pin, and completion removes it.
func TestPinKeepsUnknownOutcomeWithItsUpstream(t *testing.T) {
	ctx := context.Background()
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			fp := FingerprintOf([]byte("POST"), []byte("/cashier/deposit"), []byte(`{"amount":"10.00"}`))
			other := FingerprintOf([]byte("POST"), []byte("/cashier/deposit"), []byte(`{"amount":"99.00"}`))
			key := ScopedKey([]byte("player-1"), []byte("dep-1"))
			c, err := s.Claim(ctx, key, fp)
			if err != nil || !c.Won || c.Pinned != "" {
				t.Fatalf("first claim: want won and unpinned, got %+v %v", c, err)
			}
			if err := s.Pin(ctx, key, c, fp, "http://rail-a:7100"); err != nil {
				t.Fatal(err)
			}
			diff, err := s.Claim(ctx, key, other)
			if err != nil || diff.Won || diff.Existing == nil || diff.Existing.Fingerprint != fp || diff.Existing.Pinned != "http://rail-a:7100" {
				t.Fatalf("another request under the pinned key: want the pinned record, got %+v %v", diff, err)
			}
			retry, err := s.Claim(ctx, key, fp)
			if err != nil || !retry.Won || retry.Pinned != "http://rail-a:7100" {
				t.Fatalf("the retry: want won and pinned to rail-a, got %+v %v", retry, err)
			}
			if c2, _ := s.Claim(ctx, key, fp); c2.Won || c2.Existing == nil || c2.Existing.Done {
				t.Fatalf("while the retry is in flight: want it in flight, got %+v", c2)
			}
			// The pinned upstream was unreachable: the retry lets go, the pin stays.
			if err := s.Release(ctx, key, retry); err != nil {
				t.Fatal(err)
			}
			again, _ := s.Claim(ctx, key, fp)
			if !again.Won || again.Pinned != "http://rail-a:7100" {
				t.Fatalf("after a release: want the pin kept, got %+v", again)
			}
			if err := s.Complete(ctx, key, again, fp, Response{Status: 200, Body: []byte(`{"ok":true}`)}); err != nil {
				t.Fatal(err)
			}
			done, _ := s.Claim(ctx, key, fp)
			if done.Won || done.Existing == nil || !done.Existing.Done || done.Existing.Pinned != "" {
				t.Fatalf("after completion: want the stored response and no pin, got %+v", done)
			}
			// A loser cannot pin the owner's claim away.
			k2 := ScopedKey([]byte("player-1"), []byte("dep-2"))
			owner, _ := s.Claim(ctx, k2, fp)
			loser, _ := s.Claim(ctx, k2, fp)
			s.Pin(ctx, k2, loser, fp, "http://rail-b:7100")
			if c, _ := s.Claim(ctx, k2, fp); c.Won {
				t.Fatal("a loser's pin released the owner's claim")
			}
			s.Release(ctx, k2, owner)
			if c, _ := s.Claim(ctx, k2, fp); !c.Won || c.Pinned != "" {
				t.Fatalf("a loser's pin stuck: %+v", c)
			}
		})
	}
}

// redisNodes are stores of one region's nodes sharing a real Redis, each
// with its own client and liveness key.
func redisNodes(t *testing.T, n int, liveness time.Duration) []*Redis {
	addr := testredis.Start(t)
	nodes := make([]*Redis, n)
	for i := range nodes {
		nodes[i] = NewRedis(redis.NewClient(&redis.Options{Addr: addr}), "takeover:", time.Hour, time.Minute, liveness)
		t.Cleanup(func() { nodes[i].Close() })
	}
	return nodes
}

// awaitTakeover claims key at s until the claim is won, failing after
// limit; it returns the won claim and how long that took.
func awaitTakeover(t *testing.T, s *Redis, key string, fp Fingerprint, limit time.Duration) (Claim, time.Duration) {
	t.Helper()
	start := time.Now()
	for {
		c, err := s.Claim(context.Background(), key, fp)
		if err != nil {
			t.Fatalf("claim: %v", err)
		}
		if c.Won {
			return c, time.Since(start)
		}
		if time.Since(start) > limit {
			t.Fatalf("the key was not taken over within %v: still %+v", limit, c.Existing)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRedisTakeoverOfDeadHolder: a key in flight at a node that stops
// renewing its liveness key (killed, or cut off from Redis) is taken over
// by the same request through another node within the liveness TTL (plus
// a renewal period), keeping its pin; a live holder keeps its claim for as
// long as it lives, a different request under the key is still refused,
// and the dead holder can neither complete, release nor pin the claim it
// lost.
func TestRedisTakeoverOfDeadHolder(t *testing.T) {
	const liveness = time.Second
	ctx := context.Background()
	fp := FingerprintOf([]byte("POST"), []byte("/api/bets"), []byte(`{"amount":"1.00"}`))
	other := FingerprintOf([]byte("POST"), []byte("/api/bets"), []byte(`{"amount":"9.00"}`))
	cases := []struct {
		name string
		// die ends the holder: halt simulates a SIGKILL (the key lapses
		// after its TTL); close is a graceful stop (the key goes at once).
		die      func(*Redis)
		pin      string      // pin the key at the holder first, then claim it again
		taker    Fingerprint // the request claiming through the other node
		takeover bool
		within   time.Duration
	}{
		{name: "killed holder", die: (*Redis).halt, taker: fp, takeover: true, within: liveness + time.Second},
		{name: "closed holder", die: func(r *Redis) { r.Close() }, taker: fp, takeover: true, within: 200 * time.Millisecond},
		{name: "killed holder of a pinned key", die: (*Redis).halt, pin: "http://rail-a:7100", taker: fp, takeover: true, within: liveness + time.Second},
		{name: "killed holder, different request", die: (*Redis).halt, taker: other},
		{name: "live holder", taker: fp},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			nodes := redisNodes(t, 2, liveness)
			holder, taker := nodes[0], nodes[1]
			key := ScopedKey([]byte("player-1"), fmt.Appendf(nil, "bet-%d", i))
			held, err := holder.Claim(ctx, key, fp)
			if err != nil || !held.Won {
				t.Fatalf("holder's claim: want won, got %+v %v", held, err)
			}
			if c.pin != "" {
				if err := holder.Pin(ctx, key, held, fp, c.pin); err != nil {
					t.Fatal(err)
				}
				if held, err = holder.Claim(ctx, key, fp); err != nil || !held.Won || held.Pinned != c.pin {
					t.Fatalf("holder's retry of the pinned key: want won and pinned, got %+v %v", held, err)
				}
			}
			// While the holder lives, the same request elsewhere is in flight.
			if got, err := taker.Claim(ctx, key, c.taker); err != nil || got.Won || got.Existing == nil || got.Existing.Done {
				t.Fatalf("while the holder is alive: want the in-flight record, got %+v %v", got, err)
			}
			if c.die == nil {
				// Past several liveness periods, a live holder keeps its claim.
				deadline := time.Now().Add(3 * liveness)
				for time.Now().Before(deadline) {
					if got, err := taker.Claim(ctx, key, c.taker); err != nil || got.Won {
						t.Fatalf("a live holder's claim was taken: %+v %v", got, err)
					}
					time.Sleep(100 * time.Millisecond)
				}
				return
			}
			c.die(holder)
			if !c.takeover {
				// Long past the holder's liveness, another request is refused.
				time.Sleep(liveness + 500*time.Millisecond)
				got, err := taker.Claim(ctx, key, c.taker)
				if err != nil || got.Won || got.Existing == nil || got.Existing.Fingerprint != fp {
					t.Fatalf("a different request under a dead holder's key: want the holder's record, got %+v %v", got, err)
				}
				return
			}
			won, took := awaitTakeover(t, taker, key, c.taker, c.within)
			if won.TakenOver != holder.owner || won.Pinned != c.pin {
				t.Fatalf("want taken over from %s and pinned to %q, got from %q, pinned %q", holder.owner, c.pin, won.TakenOver, won.Pinned)
			}
			t.Logf("taken over after %v", took)
			if got, _ := taker.Claim(ctx, key, fp); got.Won {
				t.Fatal("a taken-over claim was won twice")
			}
			// The dead holder's late calls change nothing (a closed one
			// cannot reach Redis at all).
			holder.Release(ctx, key, held)
			holder.Pin(ctx, key, held, fp, "http://rail-b:7100")
			holder.Complete(ctx, key, held, fp, Response{Status: 201, Body: []byte(`{"by":"dead"}`)})
			if got, _ := taker.Claim(ctx, key, fp); got.Won || got.Existing == nil || got.Existing.Done {
				t.Fatalf("after the dead holder's calls: want the taker's claim in flight, got %+v", got)
			}
			if err := taker.Complete(ctx, key, won, fp, Response{Status: 201, Body: []byte(`{"by":"taker"}`)}); err != nil {
				t.Fatal(err)
			}
			holder.Complete(ctx, key, held, fp, Response{Status: 201, Body: []byte(`{"by":"dead"}`)})
			got, _ := taker.Claim(ctx, key, fp)
			if got.Won || got.Existing == nil || !got.Existing.Done || string(got.Existing.Response.Body) != `{"by":"taker"}` || got.Existing.Pinned != "" {
				t.Fatalf("after the taker completed: want its stored answer, got %+v", got.Existing)
			}
		})
	}
}

// TestRedisOneTakerUnderContention: when a holder dies, of many nodes
// retrying its request at once exactly one takes the key over.
func TestRedisOneTakerUnderContention(t *testing.T) {
	ctx := context.Background()
	nodes := redisNodes(t, 4, time.Second)
	// The holder renews nothing on its own: its renewal loop could bring
	// back the liveness key the test deletes before the takers claim.
	// (Its claims renew the key themselves when it is gone.)
	nodes[0].halt()
	for round := range 3 {
		key := ScopedKey([]byte("p"), fmt.Appendf(nil, "race-%d", round))
		if c, err := nodes[0].Claim(ctx, key, Fingerprint{}); err != nil || !c.Won {
			t.Fatalf("holder's claim: %+v %v", c, err)
		}
		// Simulate the holder's death: its liveness key goes.
		if err := nodes[0].c.Del(ctx, nodes[0].alive).Err(); err != nil {
			t.Fatal(err)
		}
		takers := make([]Store, 0, len(nodes)-1)
		for _, n := range nodes[1:] {
			takers = append(takers, n)
		}
		if wins := claimAtOnce(t, ctx, key, takers, 8); wins != 1 {
			t.Fatalf("round %d: want exactly 1 taker, got %d", round, wins)
		}
		nodes[0].beAlive(ctx)
	}
}

// TestRedisLapsedNodeRenewsBeforeClaiming: a node whose liveness key
// lapsed (Redis was out of reach longer than its TTL) renews it before it
// claims, so no claim it holds is ever open to takeover while it lives.
func TestRedisLapsedNodeRenewsBeforeClaiming(t *testing.T) {
	ctx := context.Background()
	nodes := redisNodes(t, 2, time.Second)
	a, b := nodes[0], nodes[1]
	a.halt()
	if err := a.c.Del(ctx, a.alive).Err(); err != nil {
		t.Fatal(err)
	}
	key := ScopedKey([]byte("p"), []byte("lapsed"))
	c, err := a.Claim(ctx, key, Fingerprint{})
	if err != nil || !c.Won {
		t.Fatalf("a lapsed node's claim: want won after renewing, got %+v %v", c, err)
	}
	if n, err := a.c.Exists(ctx, a.alive).Result(); err != nil || n != 1 {
		t.Fatalf("a lapsed node claimed without renewing its liveness key (exists %d, %v)", n, err)
	}
	if got, _ := b.Claim(ctx, key, Fingerprint{}); got.Won {
		t.Fatal("the claim of a node that had just renewed was taken over")
	}
}

// TestClaimNamesItsUpstream: a claim made for an upstream says where its
// request goes, its owner can move it to another before sending, a loser
// cannot, and a pinned key's claim goes to the pin whatever it asked for.
func TestClaimNamesItsUpstream(t *testing.T) {
	ctx := context.Background()
	fp := FingerprintOf([]byte("POST"), []byte("/cashier/deposit"), []byte(`{"amount":"10.00"}`))
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			key := ScopedKey([]byte("player-1"), []byte("named-1"))
			c, err := s.ClaimFor(ctx, key, fp, "http://rail-a:7100")
			if err != nil || !c.Won || c.Upstream != "http://rail-a:7100" || c.Pinned != "" {
				t.Fatalf("claim for rail-a: want won, going to rail-a, unpinned; got %+v %v", c, err)
			}
			if err := s.Move(ctx, key, &c, "http://rail-b:7100"); err != nil || c.Upstream != "http://rail-b:7100" {
				t.Fatalf("owner's move to rail-b: want it recorded, got %q %v", c.Upstream, err)
			}
			loser, _ := s.ClaimFor(ctx, key, fp, "http://rail-a:7100")
			if loser.Won {
				t.Fatal("a claim in flight was won twice")
			}
			if err := s.Move(ctx, key, &loser, "http://rail-a:7100"); !errors.Is(err, ErrClaimLost) {
				t.Fatalf("a loser's move: want ErrClaimLost, got %v", err)
			}
			// The request went to rail-b without an answer: the retry goes
			// there, whatever it would have picked.
			if err := s.Pin(ctx, key, c, fp, c.Upstream); err != nil {
				t.Fatal(err)
			}
			retry, err := s.ClaimFor(ctx, key, fp, "http://rail-a:7100")
			if err != nil || !retry.Won || retry.Pinned != "http://rail-b:7100" || retry.Upstream != "http://rail-b:7100" {
				t.Fatalf("the retry of a key pinned to rail-b: want won and going to rail-b, got %+v %v", retry, err)
			}
			// A completed claim cannot be moved.
			if err := s.Complete(ctx, key, retry, fp, Response{Status: 200}); err != nil {
				t.Fatal(err)
			}
			if err := s.Move(ctx, key, &retry, "http://rail-a:7100"); !errors.Is(err, ErrClaimLost) {
				t.Fatalf("moving a completed claim: want ErrClaimLost, got %v", err)
			}
		})
	}
}

// TestRedisTakeoverPinsTheHoldersUpstream: a node that dies holding a
// claim may have sent its request to the upstream the claim named (at
// claim time, or moved before sending); the node taking the claim over
// goes there, and the key stays pinned there even if the taker lets go
// (its send failed before reaching the upstream), so no later retry
// through any node picks another upstream. A claim that named no upstream
// (a ledger route) passes on unpinned; a pin the key had outranks the
// claim's own choice.
func TestRedisTakeoverPinsTheHoldersUpstream(t *testing.T) {
	const liveness = time.Second
	ctx := context.Background()
	fp := FingerprintOf([]byte("POST"), []byte("/cashier/deposit"), []byte(`{"amount":"10.00"}`))
	cases := []struct {
		name    string
		pinned  string // the key's pin before the holder claims it
		claimed string // the upstream the holder's claim names
		moved   string // where the holder moves it before dying
		want    string
	}{
		{name: "claimed for rail-a", claimed: "http://rail-a:7100", want: "http://rail-a:7100"},
		{name: "moved to rail-b before sending", claimed: "http://rail-a:7100", moved: "http://rail-b:7100", want: "http://rail-b:7100"},
		{name: "no upstream named", want: ""},
		{name: "pinned key claimed for another", pinned: "http://rail-a:7100", claimed: "http://rail-b:7100", want: "http://rail-a:7100"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			nodes := redisNodes(t, 3, liveness)
			holder, taker, third := nodes[0], nodes[1], nodes[2]
			key := ScopedKey([]byte("player-1"), fmt.Appendf(nil, "dep-%d", i))
			if c.pinned != "" {
				first, _ := holder.Claim(ctx, key, fp)
				if err := holder.Pin(ctx, key, first, fp, c.pinned); err != nil {
					t.Fatal(err)
				}
			}
			held, err := holder.ClaimFor(ctx, key, fp, c.claimed)
			if err != nil || !held.Won {
				t.Fatalf("holder's claim: want won, got %+v %v", held, err)
			}
			if c.moved != "" {
				if err := holder.Move(ctx, key, &held, c.moved); err != nil {
					t.Fatal(err)
				}
			}
			if held.Upstream != c.want {
				t.Fatalf("holder's claim: want it going to %q, got %q", c.want, held.Upstream)
			}
			holder.Close() // dies without completing: its claims pass on at once
			won, _ := awaitTakeover(t, taker, key, fp, 500*time.Millisecond)
			if won.TakenOver != holder.owner || won.Pinned != c.want || won.Upstream != c.want {
				t.Fatalf("taken over: want from %s, pinned to and going to %q; got from %q, pinned %q, going to %q",
					holder.owner, c.want, won.TakenOver, won.Pinned, won.Upstream)
			}
			// The taker could not reach the pinned upstream and lets go:
			// a third node's retry is still pinned.
			if err := taker.Release(ctx, key, won); err != nil {
				t.Fatal(err)
			}
			again, err := third.ClaimFor(ctx, key, fp, "http://rail-c:7100")
			want := c.want
			if want == "" {
				want = "http://rail-c:7100"
			}
			if err != nil || !again.Won || again.Pinned != c.want || again.Upstream != want {
				t.Fatalf("a retry after the taker let go: want won, pinned to %q, going to %q; got %+v %v", c.want, want, again, err)
			}
		})
	}
}
