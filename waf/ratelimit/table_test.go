package ratelimit

import (
	"math/rand/v2"
	"testing"
)

// The table against a Go map on random inserts, updates, removals, sweeps
// and evictions. Few distinct home slots force long runs that wrap around
// the end of the table, where backward-shift deletion is easiest to get
// wrong.
func TestTableMatchesMap(t *testing.T) {
	for _, homes := range []uint64{4, 64, 1 << 40} {
		rng := rand.New(rand.NewPCG(7, homes))
		var tb table
		ref := map[[2]uint64]int64{}
		key := func() [2]uint64 {
			h := rng.Uint64N(300)
			// h0's low bits pick one of `homes` slots, biased to the end of
			// a 16..512-slot table so that runs wrap.
			return [2]uint64{(h%homes)*0x9E3779B97F4A7C15 | 0x1f0 | h<<32, h<<1 | 1}
		}
		for step := range 20000 {
			switch op := rng.IntN(10); {
			case op < 6: // insert or update
				k := key()
				tat := rng.Int64N(1000)
				if i, ok := tb.find(k[0], k[1]); ok {
					tb.e[i].tat = tat
				} else {
					tb.insert(k[0], k[1], tat)
				}
				ref[k] = tat
			case op < 8: // remove
				k := key()
				if i, ok := tb.find(k[0], k[1]); ok {
					tb.remove(i)
				}
				delete(ref, k)
			case op == 8: // sweep
				cutoff := rng.Int64N(300)
				want := 0
				for k, tat := range ref {
					if tat < cutoff {
						delete(ref, k)
						want++
					}
				}
				got := 0
				for from := 0; from < len(tb.e); from += 5 { // in uneven chunks
					got += tb.sweepRange(cutoff, from, min(from+5, len(tb.e)))
				}
				tb.shrink()
				if got != want {
					t.Fatalf("homes=%d step %d: sweep removed %d, want %d", homes, step, got, want)
				}
			default: // evict one
				if tb.n == 0 {
					continue
				}
				before := tb.n
				tb.evictIdlest(rng.Uint64())
				if tb.n != before-1 {
					t.Fatalf("homes=%d step %d: evictIdlest left %d of %d entries", homes, step, tb.n, before)
				}
				for k := range ref { // drop whichever the table dropped
					if _, ok := tb.find(k[0], k[1]); !ok {
						delete(ref, k)
					}
				}
			}
			if tb.n != len(ref) {
				t.Fatalf("homes=%d step %d: table holds %d, map %d", homes, step, tb.n, len(ref))
			}
			if step%97 == 0 {
				for k, tat := range ref {
					i, ok := tb.find(k[0], k[1])
					if !ok || tb.e[i].tat != tat {
						t.Fatalf("homes=%d step %d: key %x: found=%v, want tat %d", homes, step, k, ok, tat)
					}
				}
			}
		}
	}
}
