// Package ratelimit is hedge's rate limiter: token buckets per key (client
// address, principal or route), bounded in memory, cheap enough to sit in
// front of the rule engine on every request.
//
// # Use
//
//	l := ratelimit.New(ratelimit.Policy{Name: "bets", By: ratelimit.ByPrincipal, Rate: 5, Burst: 10})
//	defer l.Close()
//	d := l.Allow(time.Now(), client, key)   // key: bytes the caller may reuse
//	if !d.Allowed {
//		ratelimit.Reject(ctx, l.Policy(), d, requestID) // 429 problem+json + headers
//		return
//	}
//	ratelimit.SetHeaders(&ctx.Response.Header, l.Policy(), d)
//
// For ByIP keys, AppendAddr builds the key: 4 bytes for IPv4, the /64 (or
// another prefix length) for IPv6, since one subscriber holds a whole /64
// and would otherwise get 2⁶⁴ buckets.
//
// # The bucket: GCRA, one int64 per key
//
// Each key's bucket is stored as one timestamp, the GCRA "theoretical
// arrival time" tat, in nanoseconds since the limiter's epoch. With T =
// 1/Rate and τ = (Burst-1)·T, a request at t is allowed when
// max(tat, t) - t <= τ, and then tat = max(tat, t) + T. This is the token
// bucket of golang.org/x/time/rate (Burst - (tat-t)/T tokens) written as a
// single number: TestMatchesXTimeRate checks decision for decision against
// rate.Limiter on random traffic. rate.Limiter itself costs about 80 bytes
// plus its own mutex per key and a pointer per map entry; the shard's lock
// already serialises access, so the per-key state is just the 8 bytes.
// Integer nanoseconds also make Remaining, Reset and RetryAfter exact.
//
// # Keys: sharded maps of 128-bit digests
//
// A key is hashed with two secret maphash seeds; the 128-bit digest selects
// one of 64 shards (top bits) and is the map key there (map[[2]uint64]int64,
// one mutex per shard, padded apart). The key bytes are never stored, so
// callers may pass fasthttp's reused buffers, a new client costs no
// allocation of its own, every entry is 24 bytes inline in the map, and the
// GC has no pointers to scan in a million-entry table. Two keys share a
// bucket only if both 64-bit hashes collide (≈ n²/2¹²⁹; 10⁻²⁷ at 10⁶ keys).
//
// # Memory bound
//
// A bucket whose tat has passed is full, and a new key starts full, so
// forgetting it changes no decision. The sweeper (started by New, stopped
// by Close; WithSweep tunes it, default every 10s) deletes keys that have
// been full for longer than the idle time (default 10s) — the "burst/rate"
// part of the rule is already in tat. Go maps never shrink, so a shard that
// falls below a quarter of its peak is rebuilt, and the memory is returned
// (TestSweepFreesMemory: all of it). WithMaxKeys adds a hard cap: a new key
// in a full shard evicts the idlest of 8 random keys (approximate LRU in
// O(1)); a victim that was still draining simply gets a full bucket back,
// so size the cap well above the expected population.
//
// # Headers
//
// SetHeaders writes the draft-ietf-httpapi-ratelimit-headers (-10) fields
// as structured-field lists: RateLimit-Policy: "name";q=Q;w=W and
// RateLimit: "name";r=R;t=S, plus Retry-After (whole seconds, at least 1)
// on a denial. w is Window in whole seconds (default 1s, or for rates under
// 1/s the shortest window that earns a token), q = Rate·w (the sustained
// quota: a client that keeps to it is never limited), r = remaining whole
// tokens capped at q, t = seconds until the bucket is full again.
// problem.Write resets the response, so headers go on after it (Reject).
//
// # Numbers
//
// Measured on the 2-core shared development VM (load average ~15 from
// other work, so absolute ns are inflated and noisy; compare within a run):
//
//	go test -run '^$' -bench . -benchmem ./waf/ratelimit/
//
//	BenchmarkAllowHit              ~140 ns/op   0 B/op  0 allocs/op
//	BenchmarkAllowKeys/keys=1000   ~170 ns/op   0 allocs/op
//	BenchmarkAllowKeys/keys=100000 ~580 ns/op   0 allocs/op
//	BenchmarkAllowKeys/keys=1e6    ~1.6-3.5 µs  0 allocs/op
//	BenchmarkMemoryPerKey (10⁶ distinct clients)  ~67 B/key IPv4, ~66 B/key IPv6
//	TestMemoryPerKey (2·10⁵ clients)              ~41 B/key IPv4 and IPv6
//
// The per-lookup work is constant (two hashes, one shard lock, two probes
// of one small Swiss-table group); what grows with the key count is cache
// misses once the table (~40-65 MB at 10⁶ keys) no longer fits in the CPU
// caches, which the scattered access order of the benchmark exposes. The
// memory per key varies between ~41 and ~67 B with where each map is in
// its growth cycle.
package ratelimit
