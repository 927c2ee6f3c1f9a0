package idempotency

import (
	"context"
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
	r := NewRedis(rc, "test:", time.Hour, time.Minute)
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
				var wins atomic.Int32
				var wg sync.WaitGroup
				for range 16 {
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
				wg.Wait()
				if wins.Load() != 1 {
					t.Fatalf("round %d: want exactly 1 winner, got %d", round, wins.Load())
				}
			}
		})
	}
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
	r := NewRedis(redis.NewClient(&redis.Options{Addr: addr}), "t2:", time.Hour, 100*time.Millisecond)
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
