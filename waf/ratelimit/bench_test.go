package ratelimit

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

var sink Decision

// cpuTime is the process's user+system CPU time. On the shared, loaded
// machine wall-clock ns/op also counts time spent descheduled; the
// benchmarks below report CPU ns/op beside it.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru) //nolint:errcheck // cannot fail for RUSAGE_SELF
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports CPU ns per op for a loop that started at cpu0.
func reportCPU(b *testing.B, cpu0 time.Duration) {
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
}

// One client hammering one key: the cost of the limiter itself.
func BenchmarkAllowHit(b *testing.B) {
	l := New(Policy{Name: "b", Rate: 1e9, Burst: MaxBurst}, WithSweep(0, 0), WithEpoch(t0))
	defer l.Close()
	client := netip.MustParseAddr("203.0.113.7")
	key := AppendAddr(nil, client, 64)
	now := t0
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		sink = l.Allow(now, client, key)
	}
	reportCPU(b, cpu0)
}

// Allow plus the response headers, as the gateway calls them per request.
func BenchmarkAllowHitWithHeaders(b *testing.B) {
	l := New(Policy{Name: "b", Rate: 1e9, Burst: MaxBurst}, WithSweep(0, 0), WithEpoch(t0))
	defer l.Close()
	client := netip.MustParseAddr("203.0.113.7")
	key := AppendAddr(nil, client, 64)
	var h fasthttp.ResponseHeader
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		d := l.Allow(t0, client, key)
		SetHeaders(&h, l.Policy(), d)
	}
	reportCPU(b, cpu0)
}

// The same key from every P: contention on one shard's lock.
func BenchmarkAllowHitParallel(b *testing.B) {
	l := New(Policy{Name: "b", Rate: 1e9, Burst: MaxBurst}, WithSweep(0, 0), WithEpoch(t0))
	defer l.Close()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		key := []byte{1, 2, 3, 4}
		for pb.Next() {
			l.Allow(t0, netip.Addr{}, key)
		}
	})
}

// limiterWithKeys returns a limiter that never refuses, holding the n keys
// keyOf(0) … keyOf(n-1). Keys are computed, not read from a slice, so that
// a benchmark loop's only memory traffic is the limiter's own; keyOf's
// result is valid until its next call.
func limiterWithKeys(n int) (*Limiter, func(i int) []byte) {
	l := New(Policy{Name: "b", Rate: 1e9, Burst: MaxBurst}, WithSweep(0, 0), WithEpoch(t0))
	var key [4]byte
	keyOf := func(i int) []byte {
		binary.BigEndian.PutUint32(key[:], uint32(i)*2654435761) // distinct: odd multiplier
		return key[:]
	}
	for i := range n {
		l.Allow(t0, netip.Addr{}, keyOf(i))
	}
	return l, keyOf
}

// Lookups of existing keys, visited in a scattered order, as the key count
// grows: the per-lookup cost stays flat apart from cache misses once the
// table outgrows the CPU caches.
func BenchmarkAllowKeys(b *testing.B) {
	for _, n := range []int{1e3, 1e5, 1e6} {
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			l, keyOf := limiterWithKeys(n)
			defer l.Close()
			b.ReportAllocs()
			i := 0
			cpu0 := cpuTime()
			for b.Loop() {
				sink = l.Allow(t0, netip.Addr{}, keyOf(i))
				i = (i + 7919) % n // a prime stride: no locality between calls
			}
			reportCPU(b, cpu0)
			if l.Len() != n {
				b.Fatalf("Len = %d, want %d: the loop inserted keys", l.Len(), n)
			}
		})
	}
}

// The same table sizes, but requests come from 1,000 active clients among
// the n held (the rest idle, waiting for the sweeper): the lookup itself
// does not slow down as the table grows; only cache misses do, and those
// follow the number of active clients, not of held keys.
func BenchmarkAllowActiveAmongKeys(b *testing.B) {
	for _, n := range []int{1e3, 1e5, 1e6} {
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			l, keyOf := limiterWithKeys(n)
			defer l.Close()
			const active = 1000
			stride := n / active // active clients spread over the table
			b.ReportAllocs()
			i := 0
			cpu0 := cpuTime()
			for b.Loop() {
				sink = l.Allow(t0, netip.Addr{}, keyOf(i*stride))
				i = (i + 7) % active
			}
			reportCPU(b, cpu0)
		})
	}
}

// A new key per request: insertion cost (one key copy) and, with the cap,
// sampled eviction.
func BenchmarkAllowNewKeys(b *testing.B) {
	for _, maxKeys := range []int{-1, 100_000} { // unbounded, and evicting at the cap
		b.Run(fmt.Sprintf("max=%d", maxKeys), func(b *testing.B) {
			l := New(Policy{Name: "b", Rate: 10, Burst: 20}, WithSweep(0, 0), WithEpoch(t0), WithMaxKeys(maxKeys))
			defer l.Close()
			var key [8]byte
			b.ReportAllocs()
			i := uint64(0)
			for b.Loop() {
				i++
				binary.BigEndian.PutUint64(key[:], i)
				sink = l.Allow(t0, netip.Addr{}, key[:])
			}
		})
	}
}

// A sweep over 1e6 keys of which none is idle: the lock hold time per shard
// is this divided by 64.
func BenchmarkSweep1M(b *testing.B) {
	l := New(Policy{Name: "b", Rate: 10, Burst: 20}, WithSweep(0, time.Hour), WithEpoch(t0))
	defer l.Close()
	var key [4]byte
	for i := range 1_000_000 {
		binary.BigEndian.PutUint32(key[:], uint32(i))
		l.Allow(t0, netip.Addr{}, key[:])
	}
	b.ResetTimer()
	for b.Loop() {
		if n := l.Sweep(t0); n != 0 {
			b.Fatalf("evicted %d active keys", n)
		}
	}
}

// HeapInuse growth for 1,000,000 distinct client addresses, as ByIP keys
// (4 bytes for IPv4, the /64 for IPv6).
func BenchmarkMemoryPerKey(b *testing.B) {
	for _, v6 := range []bool{false, true} {
		b.Run(map[bool]string{false: "ipv4", true: "ipv6"}[v6], func(b *testing.B) {
			var perKey float64
			for b.Loop() {
				perKey = measureKeys(b, 1_000_000, v6)
			}
			b.ReportMetric(perKey, "B/key")
			runtime.GC()
		})
	}
}
