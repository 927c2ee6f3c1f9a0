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
//		// the caller answers 429 (problem.RateLimited), then:
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
// # Keys: 64 shards of open-addressed tables of 128-bit digests
//
// A key is hashed with two secret maphash seeds; the digest's top bits pick
// one of 64 shards (one mutex each, padded apart) and its low bits the home
// slot in that shard's table: a flat slice of 24-byte entries (digest and
// tat), linear probing, at most 3/4 full, backward-shift deletion, grown
// and shrunk by powers of two. The key bytes are never stored, so callers
// may pass fasthttp's reused buffers, a new client allocates nothing of its
// own, and the garbage collector has no pointers to scan in a
// million-entry table. A lookup is one dependent memory access, where a Go
// map takes three (directory, table, group) and two map operations (read,
// then write back). Two keys share a bucket only if both 64-bit hashes
// collide (≈ n²/2¹²⁸; 10⁻²⁶ at 10⁶ keys).
//
// # Memory bound
//
// A bucket whose tat has passed is full, and a new key starts full, so
// forgetting it changes no decision. The sweeper (started by New, stopped
// by Close; WithSweep tunes it, default every 10s) deletes keys that have
// been full for longer than the idle time (default 10s) — the "burst/rate"
// part of the rule is already in tat. A sweep holds a shard's lock for 4096
// slots at a time (BenchmarkSweep1M: ~24-35 ms for 10⁶ keys in all, so
// ~50 µs per hold), never for a whole table. Tables shrink when a sweep leaves
// them less than 1/8 full, so the memory is returned (TestSweepFreesMemory:
// all of it). A hard cap (DefaultMaxKeys, 4,194,304, or WithMaxKeys)
// bounds what a flood of new keys can take before the sweeper runs: a new
// key in a full shard evicts the idlest of 8 random keys (approximate LRU
// in O(1)); a victim that was still draining gets a full bucket back, so
// the cap must sit well above the expected number of active clients.
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
// Writing a problem resets the response, so headers go on after it.
//
// # Numbers
//
// Measured on the 2-core shared development VM under a load average of
// 13-17 from other work. Wall-clock ns/op there includes time spent
// descheduled (3-4x the CPU time), so the benchmarks also report the
// process's CPU time per op (cpu-ns/op), the steadier figure:
//
//	go test -run '^$' -bench . -benchmem ./waf/ratelimit/
//
//	                                             cpu-ns/op  wall ns/op  allocs/op
//	BenchmarkAllowHit (one key)                  41         115-155     0
//	BenchmarkAllowHitWithHeaders (+SetHeaders)   222        820-2060    0
//	BenchmarkAllowActiveAmongKeys/keys=1e3       44-52      240-320     0
//	BenchmarkAllowActiveAmongKeys/keys=1e5       50-67      240-330     0
//	BenchmarkAllowActiveAmongKeys/keys=1e6       49-61      215-450     0
//	BenchmarkAllowKeys/keys=1e3 (scattered)      41-48      145-190     0
//	BenchmarkAllowKeys/keys=1e5 (scattered)      158-177    680-1050    0
//	BenchmarkAllowKeys/keys=1e6 (scattered)      308-359    840-4400    0
//	BenchmarkMemoryPerKey (10⁶ distinct clients) 50.3 B/key for IPv4 and for IPv6
//	TestMemoryPerKey (2·10⁵ clients)             58 B/key
//
// The work per lookup is constant (two hashes, one lock, one probe run of
// ~1.5 entries): with 1,000 active clients the cost is flat from 10³ to
// 10⁶ held keys. When every request hits a different key of a table that
// no longer fits in the caches (~50 MB at 10⁶ keys), each lookup waits for
// DRAM and a TLB walk: that, not the algorithm, is the growth in the
// scattered benchmark, and any hash table pays it. Memory per key is 24 B
// divided by the table's fill (3/8 to 3/4), plus nothing per key.
package ratelimit
