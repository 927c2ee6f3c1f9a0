package ratelimit

import (
	"net/netip"
	"testing"
	"time"
)

// Keys are untrusted bytes (header values, token subjects). Whatever they
// are and however far apart requests come (the clock is monotonic, as
// time.Now's is), decisions stay within the bucket's bounds.
func FuzzAllow(f *testing.F) {
	f.Add([]byte("player-1"), int64(0), int64(1e6), uint8(3))
	f.Add([]byte{}, int64(-5e9), int64(0), uint8(0))
	f.Add([]byte("\xff\x00\"\\"), int64(1<<40), int64(-1), uint8(255))
	const burst = 4
	f.Fuzz(func(t *testing.T, key []byte, at, step int64, n uint8) {
		l := New(Policy{Name: "fuzz", Rate: 10, Burst: burst}, WithSweep(0, 0), WithEpoch(t0), WithMaxKeys(1000))
		defer l.Close()
		now := t0.Add(time.Duration(at % (1 << 50)))
		step = max(step, -step) % int64(time.Second) // MinInt64 stays negative: %
		if step < 0 {
			step = 0
		}
		for range n % 16 {
			d := l.Allow(now, netip.Addr{}, key)
			switch {
			case d.Remaining < 0 || d.Remaining > burst-1:
				t.Fatalf("Remaining %d outside 0..%d: %+v", d.Remaining, burst-1, d)
			case d.Allowed && d.RetryAfter != 0:
				t.Fatalf("allowed with RetryAfter: %+v", d)
			case !d.Allowed && (d.RetryAfter <= 0 || d.RetryAfter > 100*time.Millisecond || d.Remaining != 0):
				t.Fatalf("denied with RetryAfter outside (0, one token]: %+v", d)
			case d.Reset < 0 || d.Reset > burst*100*time.Millisecond:
				t.Fatalf("Reset %v outside the refill time of the bucket: %+v", d.Reset, d)
			}
			now = now.Add(time.Duration(step))
		}
		l.Sweep(now)
	})
}
