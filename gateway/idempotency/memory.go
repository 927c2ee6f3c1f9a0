package idempotency

import (
	"context"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
)

const shards = 64

// Memory is a bounded in-process store: at most MaxEntries keys, each kept
// for the retention period. When full, the oldest completed records are
// evicted first; in-flight claims are never evicted.
type Memory struct {
	retention time.Duration
	inflight  time.Duration
	perShard  int
	seed      maphash.Seed
	next      atomic.Uint64
	shard     [shards]memShard
}

type memShard struct {
	mu    sync.Mutex
	m     map[string]*memEntry
	order []string // insertion order, for expiry and eviction
	head  int
	// pins are keys sent upstream without a known outcome; they are not
	// evicted (losing one could send a retry to another upstream) and
	// expire with the retention period.
	pins map[string]memPin
}

type memPin struct {
	fp       Fingerprint
	upstream string
	created  time.Time
	expires  int64
}

type memEntry struct {
	rec     Record
	token   uint64
	expires int64
}

// NewMemory makes a store holding at most maxEntries keys: completed ones
// for retention, in-flight claims for inflight (after which a claim whose
// owner vanished, say in a crash, no longer blocks the client's retry).
func NewMemory(maxEntries int, retention, inflight time.Duration) *Memory {
	m := &Memory{retention: retention, inflight: inflight, perShard: max(maxEntries/shards, 1), seed: maphash.MakeSeed()}
	for i := range m.shard {
		m.shard[i].m = make(map[string]*memEntry)
		m.shard[i].pins = make(map[string]memPin)
	}
	return m
}

func (m *Memory) shardOf(key string) *memShard {
	return &m.shard[maphash.String(m.seed, key)%shards]
}

// Claim implements Store.
func (m *Memory) Claim(ctx context.Context, key string, fp Fingerprint) (Claim, error) {
	return m.ClaimFor(ctx, key, fp, "")
}

// ClaimFor implements Store. The upstream a claim goes to matters to this
// store's callers only: its claims die with the process that holds them.
func (m *Memory) ClaimFor(_ context.Context, key string, fp Fingerprint, upstream string) (Claim, error) {
	now := time.Now()
	s := m.shardOf(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[key]; ok {
		if e.expires > now.UnixNano() {
			rec := e.rec
			return Claim{Existing: &rec}, nil
		}
		delete(s.m, key)
	}
	pin, pinned := s.pins[key]
	if pinned && pin.expires <= now.UnixNano() {
		delete(s.pins, key)
		pinned = false
	}
	if pinned && pin.fp != fp {
		return Claim{Existing: &Record{Fingerprint: pin.fp, Created: pin.created, Pinned: pin.upstream}}, nil
	}
	if len(s.m)+len(s.pins) >= m.perShard {
		for k, p := range s.pins {
			if p.expires <= now.UnixNano() {
				delete(s.pins, k)
			}
		}
		if !s.evict(now.UnixNano(), m.perShard-len(s.pins)) {
			return Claim{}, ErrFull
		}
	}
	tok := m.next.Add(1)
	s.m[key] = &memEntry{rec: Record{Fingerprint: fp, Created: now}, token: tok, expires: now.Add(m.inflight).UnixNano()}
	s.order = append(s.order, key)
	if pin.upstream != "" {
		upstream = pin.upstream
	}
	return Claim{Won: true, token: tok, Pinned: pin.upstream, Upstream: upstream}, nil
}

// evict makes room for one key: expired and completed records go, oldest
// first; in-flight claims stay. It reports whether there is room.
func (s *memShard) evict(now int64, limit int) bool {
	for tries := len(s.order) - s.head; len(s.m) >= limit && tries > 0; tries-- {
		key := s.order[s.head]
		s.head++
		e, ok := s.m[key]
		switch {
		case !ok:
		case e.expires <= now || e.rec.Done:
			delete(s.m, key)
		default:
			s.order = append(s.order, key) // in flight: keep it, look further
		}
	}
	if s.head > 1024 && s.head > len(s.order)/2 {
		s.order = append(s.order[:0], s.order[s.head:]...)
		s.head = 0
	}
	return len(s.m) < limit
}

// Complete implements Store.
func (m *Memory) Complete(_ context.Context, key string, c Claim, fp Fingerprint, resp Response) error {
	s := m.shardOf(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[key]; ok && e.token == c.token {
		e.rec = Record{Fingerprint: fp, Done: true, Response: resp, Created: e.rec.Created}
		e.expires = time.Now().Add(m.retention).UnixNano()
		delete(s.pins, key)
	}
	return nil
}

// Pin implements Store.
func (m *Memory) Pin(_ context.Context, key string, c Claim, fp Fingerprint, upstream string) error {
	s := m.shardOf(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[key]; ok && e.token == c.token && !e.rec.Done {
		delete(s.m, key)
		now := time.Now()
		s.pins[key] = memPin{fp: fp, upstream: upstream, created: e.rec.Created, expires: now.Add(m.retention).UnixNano()}
	}
	return nil
}

// Move implements Store.
func (m *Memory) Move(_ context.Context, key string, c *Claim, upstream string) error {
	s := m.shardOf(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[key]; !ok || !c.Won || e.token != c.token || e.rec.Done || e.expires <= time.Now().UnixNano() {
		return ErrClaimLost
	}
	c.Upstream = upstream
	return nil
}

// Release implements Store.
func (m *Memory) Release(_ context.Context, key string, c Claim) error {
	s := m.shardOf(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[key]; ok && e.token == c.token && !e.rec.Done {
		delete(s.m, key)
	}
	return nil
}

// Len counts the keys held, pinned ones included (expired ones included
// until evicted).
func (m *Memory) Len() int {
	n := 0
	for i := range m.shard {
		s := &m.shard[i]
		s.mu.Lock()
		n += len(s.m) + len(s.pins)
		s.mu.Unlock()
	}
	return n
}

// Close implements Store.
func (m *Memory) Close() error { return nil }
