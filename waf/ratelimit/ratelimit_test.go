package ratelimit

import (
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"golang.org/x/time/rate"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// newTest returns a limiter with no background sweeper and its clock at t0.
func newTest(t testing.TB, p Policy, opts ...Option) *Limiter {
	t.Helper()
	if p.Name == "" {
		p.Name = "test"
	}
	l := New(p, append([]Option{WithEpoch(t0), WithSweep(0, 10*time.Second)}, opts...)...)
	t.Cleanup(func() { l.Close() })
	return l
}

var noClient netip.Addr

func TestBurstThenDeny(t *testing.T) {
	tests := []struct {
		rate  float64
		burst int
	}{
		{1, 1}, {10, 5}, {100, 200}, {0.5, 3}, {1e6, 1000},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("rate=%v,burst=%d", tc.rate, tc.burst), func(t *testing.T) {
			l := newTest(t, Policy{Rate: tc.rate, Burst: tc.burst})
			key := []byte("player-1")
			for i := range tc.burst {
				d := l.Allow(t0, noClient, key)
				if !d.Allowed || d.Remaining != tc.burst-1-i {
					t.Fatalf("request %d of the burst: got %+v, want allowed with %d remaining", i+1, d, tc.burst-1-i)
				}
			}
			d := l.Allow(t0, noClient, key)
			interval := time.Duration(float64(time.Second) / tc.rate)
			if d.Allowed || d.Remaining != 0 {
				t.Fatalf("request after the burst: got %+v, want denied", d)
			}
			if diff := d.RetryAfter - interval; diff < -time.Nanosecond || diff > time.Nanosecond {
				t.Errorf("RetryAfter = %v, want one token's time %v", d.RetryAfter, interval)
			}
			full := time.Duration(float64(tc.burst) * float64(time.Second) / tc.rate)
			if diff := d.Reset - full; diff < -time.Microsecond || diff > time.Microsecond {
				t.Errorf("Reset = %v, want the time to refill the whole bucket %v", d.Reset, full)
			}
			// Another key is not affected.
			if d := l.Allow(t0, noClient, []byte("player-2")); !d.Allowed {
				t.Errorf("another key: got %+v, want allowed", d)
			}
		})
	}
}

func TestRefill(t *testing.T) {
	l := newTest(t, Policy{Rate: 10, Burst: 5}) // one token per 100ms
	key := []byte("k")
	for range 5 {
		l.Allow(t0, noClient, key)
	}
	steps := []struct {
		at        time.Duration
		allowed   bool
		remaining int
	}{
		{99 * time.Millisecond, false, 0},
		{100 * time.Millisecond, true, 0},  // one token earned, taken
		{150 * time.Millisecond, false, 0}, // half a token
		{200 * time.Millisecond, true, 0},
		{500 * time.Millisecond, true, 2}, // 3 earned, 1 taken
		{10 * time.Second, true, 4},       // capped at burst
		{10 * time.Second, true, 3},
	}
	for _, s := range steps {
		d := l.Allow(t0.Add(s.at), noClient, key)
		if d.Allowed != s.allowed || d.Remaining != s.remaining {
			t.Fatalf("at +%v: got allowed=%v remaining=%d, want allowed=%v remaining=%d", s.at, d.Allowed, d.Remaining, s.allowed, s.remaining)
		}
	}
}

// The limiter must decide exactly as x/time/rate's token bucket does; GCRA
// is that bucket stored as one timestamp.
func TestMatchesXTimeRate(t *testing.T) {
	for _, tc := range []struct {
		rate  float64
		burst int
	}{{10, 1}, {10, 7}, {4, 20}, {1000, 50}, {0.5, 2}} {
		t.Run(fmt.Sprintf("rate=%v,burst=%d", tc.rate, tc.burst), func(t *testing.T) {
			l := newTest(t, Policy{Rate: tc.rate, Burst: tc.burst})
			ref := rate.NewLimiter(rate.Limit(tc.rate), tc.burst)
			ref.AllowN(t0, 0) // start the reference's clock at t0, bucket full
			rng := rand.New(rand.NewPCG(1, uint64(tc.burst)))
			now := t0
			mean := time.Duration(float64(time.Second) / tc.rate / 1.5) // 1.5x the rate
			allowed := 0
			for i := range 5000 {
				// Whole microseconds keep both sides clear of float rounding
				// at the exact instant a token is earned.
				now = now.Add(time.Duration(rng.Int64N(int64(2*mean)/1000)) * 1000)
				got := l.Allow(now, noClient, []byte("k")).Allowed
				want := ref.AllowN(now, 1)
				if got != want {
					t.Fatalf("request %d at +%v: allowed=%v, x/time/rate says %v", i, now.Sub(t0), got, want)
				}
				if got {
					allowed++
				}
			}
			if allowed == 0 || allowed == 5000 {
				t.Fatalf("allowed %d of 5000: the traffic did not exercise both outcomes", allowed)
			}
		})
	}
}

func TestExempt(t *testing.T) {
	l := newTest(t, Policy{Rate: 1, Burst: 1, Exempt: []netip.Prefix{
		netip.MustParsePrefix("10.20.0.0/16"),
		netip.MustParsePrefix("2001:db8:1::/48"),
		netip.MustParsePrefix("192.0.2.77/24"), // unmasked in config: masked by New
	}})
	tests := []struct {
		client string
		exempt bool
	}{
		{"10.20.0.1", true},
		{"10.20.255.254", true},
		{"10.21.0.1", false},
		{"::ffff:10.20.3.4", true}, // IPv4-mapped form of an exempt address
		{"2001:db8:1::1", true},
		{"2001:db8:1:ffff:ffff:ffff:ffff:ffff", true},
		{"2001:db8:2::1", false},
		{"192.0.2.1", true},
		{"198.51.100.1", false},
		{"", false}, // unknown client
	}
	for _, tc := range tests {
		t.Run(tc.client, func(t *testing.T) {
			var client netip.Addr
			if tc.client != "" {
				client = netip.MustParseAddr(tc.client)
			}
			key := []byte("ip:" + tc.client)
			allowed := 0
			for range 5 {
				d := l.Allow(t0, client, key)
				if d.Exempt != tc.exempt {
					t.Fatalf("Exempt = %v, want %v", d.Exempt, tc.exempt)
				}
				if d.Allowed {
					allowed++
				}
			}
			want := 1 // burst
			if tc.exempt {
				want = 5
			}
			if allowed != want {
				t.Errorf("allowed %d of 5 at one instant, want %d", allowed, want)
			}
		})
	}
}

func TestKeyIsCopied(t *testing.T) {
	l := newTest(t, Policy{Rate: 1, Burst: 1})
	buf := []byte("aaaa")
	l.Allow(t0, noClient, buf)
	copy(buf, "bbbb") // fasthttp reuses its buffers
	if d := l.Allow(t0, noClient, []byte("aaaa")); d.Allowed {
		t.Errorf("key aaaa after its buffer was reused: got allowed, want denied (its token is spent)")
	}
	if d := l.Allow(t0, noClient, buf); !d.Allowed {
		t.Errorf("key bbbb: got denied, want allowed (never seen)")
	}
}

func TestSweepEvictsIdleKeepsActive(t *testing.T) {
	const idle = 30 * time.Second
	l := newTest(t, Policy{Rate: 1, Burst: 10}, WithSweep(0, idle))
	key := func(i int) []byte { return binary.BigEndian.AppendUint32(nil, uint32(i)) }
	const n = 100_000
	for i := range n {
		l.Allow(t0, noClient, key(i))
	}
	// Key 0 drains its bucket at t0: it is full again 10s later (burst/rate)
	// and only then starts to count as idle.
	for range 9 {
		l.Allow(t0, noClient, key(0))
	}
	later := t0.Add(idle + 5*time.Second)
	for i := 1; i < 1000; i++ { // active keys
		l.Allow(later, noClient, key(i))
	}
	if got := l.Len(); got != n {
		t.Fatalf("Len before sweep = %d, want %d", got, n)
	}
	evicted := l.Sweep(later)
	// Evicted: keys 1000.. (full since t0+1s, idle > 30s at +35s).
	// Kept: 1..999 (just used) and 0 (full since +10s, idle 25s).
	if want := n - 1000; evicted != want {
		t.Errorf("Sweep evicted %d, want %d", evicted, want)
	}
	if got := l.Len(); got != 1000 {
		t.Errorf("Len after sweep = %d, want 1000", got)
	}
	// Kept keys kept their state: key 1 spent a token at +35s.
	if d := l.Allow(later, noClient, key(1)); d.Remaining != 8 {
		t.Errorf("kept key 1: Remaining = %d, want 8", d.Remaining)
	}
	// An evicted key comes back with a full bucket.
	if d := l.Allow(later, noClient, key(5000)); !d.Allowed || d.Remaining != 9 {
		t.Errorf("evicted key 5000 on return: got %+v, want allowed with 9 remaining", d)
	}
	if st := l.Stats(); st.Evicted != uint64(n-1000) {
		t.Errorf("Stats.Evicted = %d, want %d", st.Evicted, n-1000)
	}
	// Key 0 becomes idle 30s after it was full again.
	if got := l.Sweep(t0.Add(10*time.Second + idle + time.Second)); got < 1 {
		t.Errorf("second sweep evicted %d, want key 0 among them", got)
	}
}

// Eviction must return memory, not just forget keys: Go maps never shrink,
// so Sweep rebuilds a shard that has fallen below a quarter of its peak.
func TestSweepFreesMemory(t *testing.T) {
	l := newTest(t, Policy{Rate: 1, Burst: 1}, WithSweep(0, time.Second))
	before := heapInuse()
	const n = 200_000
	k := make([]byte, 16)
	for i := range n {
		binary.BigEndian.PutUint64(k, uint64(i)*0x9E3779B97F4A7C15)
		l.Allow(t0, noClient, k)
	}
	full := heapInuse()
	if full <= before {
		t.Fatalf("heap did not grow after %d keys: %d -> %d", n, before, full)
	}
	l.Sweep(t0.Add(time.Hour))
	after := heapInuse()
	grew, left := full-before, int64(after)-int64(before)
	t.Logf("heap: +%d B for %d keys, %+d B left after the sweep", grew, n, left)
	if left > int64(grew)/4 {
		t.Errorf("after evicting every key %d of %d bytes are still in use, want less than a quarter", left, grew)
	}
	if l.Len() != 0 {
		t.Errorf("Len = %d after evicting all, want 0", l.Len())
	}
	runtime.KeepAlive(l)
}

func TestBackgroundSweeper(t *testing.T) {
	l := New(Policy{Name: "bg", Rate: 1000, Burst: 1}, WithSweep(5*time.Millisecond, time.Millisecond))
	defer l.Close()
	for i := range 100 {
		l.Allow(time.Now(), noClient, []byte{byte(i)})
	}
	deadline := time.Now().Add(5 * time.Second)
	for l.Len() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := l.Len(); got != 0 {
		t.Fatalf("background sweeper left %d idle keys after 5s, want 0", got)
	}
}

func TestMaxKeys(t *testing.T) {
	for _, tc := range []struct {
		opts []Option
		want int
	}{
		{nil, DefaultMaxKeys / numShards},
		{[]Option{WithMaxKeys(-1)}, 0},
		{[]Option{WithMaxKeys(100)}, 2},
	} {
		if got := newTest(t, Policy{Rate: 1, Burst: 1}, tc.opts...).shardCap; got != tc.want {
			t.Errorf("per-shard cap with %d options = %d, want %d", len(tc.opts), got, tc.want)
		}
	}
	const maxKeys = 64 * 100
	l := newTest(t, Policy{Rate: 1, Burst: 2}, WithMaxKeys(maxKeys))
	k := make([]byte, 8)
	for i := range 10 * maxKeys {
		binary.BigEndian.PutUint64(k, uint64(i))
		l.Allow(t0.Add(time.Duration(i)*time.Millisecond), noClient, k)
	}
	st := l.Stats()
	if st.Keys > maxKeys {
		t.Errorf("Keys = %d, want at most %d", st.Keys, maxKeys)
	}
	if st.Keys+int(st.Evicted) != 10*maxKeys {
		t.Errorf("Keys %d + Evicted %d = %d, want every inserted key %d", st.Keys, st.Evicted, st.Keys+int(st.Evicted), 10*maxKeys)
	}
	// Sampling evicts the idlest: the most recent keys (fullest) survive far
	// more often than the oldest.
	survivors := func(from, to int) int {
		n := 0
		for i := from; i < to; i++ {
			binary.BigEndian.PutUint64(k, uint64(i))
			if held(l, k) {
				n++
			}
		}
		return n
	}
	oldest, newest := survivors(0, maxKeys), survivors(9*maxKeys, 10*maxKeys)
	t.Logf("survivors: oldest tenth %d, newest tenth %d of %d each", oldest, newest, maxKeys)
	if newest <= 2*oldest {
		t.Errorf("newest keys survive %d times, oldest %d: want eviction to prefer the idle ones", newest, oldest)
	}
}

// held reports whether l holds key k, looking through every shard.
func held(l *Limiter, k []byte) bool {
	h0, h1 := maphash.Bytes(l.seeds[0], k), maphash.Bytes(l.seeds[1], k)|1
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		_, ok := s.t.find(h0, h1)
		s.mu.Unlock()
		if ok {
			return true
		}
	}
	return false
}

// Many goroutines on one key must together stay within burst + rate*elapsed.
func TestConcurrentWithinRateAndBurst(t *testing.T) {
	tests := []struct {
		name     string
		rate     float64
		burst    int
		keys     int
		injected bool
	}{
		{"injected clock, one key", 1000, 50, 1, true},
		{"injected clock, 16 keys", 100, 10, 16, true},
		{"wall clock, one key", 2000, 100, 1, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := newTest(t, Policy{Rate: tc.rate, Burst: tc.burst})
			var clock atomic.Int64 // ns since t0, injected mode
			now := func() time.Time {
				if tc.injected {
					return t0.Add(time.Duration(clock.Add(int64(50 * time.Microsecond))))
				}
				return time.Now()
			}
			start := now()
			const workers, perWorker = 16, 2000
			allowed := make([]atomic.Int64, tc.keys)
			var wg sync.WaitGroup
			for w := range workers {
				wg.Go(func() {
					for i := range perWorker {
						k := (w + i) % tc.keys
						if l.Allow(now(), noClient, []byte{byte(k)}).Allowed {
							allowed[k].Add(1)
						}
					}
				})
			}
			wg.Wait()
			elapsed := now().Sub(start)
			limit := int64(float64(tc.burst) + tc.rate*elapsed.Seconds() + 1)
			total := int64(0)
			for k := range allowed {
				got := allowed[k].Load()
				total += got
				if got > limit {
					t.Errorf("key %d: %d allowed in %v, want at most burst+rate*elapsed = %d", k, got, elapsed, limit)
				}
			}
			st := l.Stats()
			if st.Allowed+st.Denied != workers*perWorker || int64(st.Allowed) != total {
				t.Errorf("Stats %+v, want %d allowed of %d", st, total, workers*perWorker)
			}
			if total == 0 {
				t.Errorf("nothing allowed")
			}
		})
	}
}

func TestCloseTwice(t *testing.T) {
	base := runtime.NumGoroutine()
	l := New(Policy{Name: "c", Rate: 1, Burst: 1}, WithSweep(time.Millisecond, time.Millisecond))
	if err := l.Close(); err != nil {
		t.Fatalf("first Close: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if d := l.Allow(time.Now(), noClient, []byte("k")); !d.Allowed {
		t.Errorf("Allow after Close: got %+v, want allowed", d)
	}
	// The sweeper goroutine is gone once Close returned.
	if got := runtime.NumGoroutine(); got > base {
		t.Errorf("goroutines: %d before New, %d after Close", base, got)
	}
	// Concurrent Close calls are safe too.
	l2 := New(Policy{Name: "c", Rate: 1, Burst: 1})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { l2.Close() })
	}
	wg.Wait()
}

func TestValidate(t *testing.T) {
	ok := Policy{Name: "api", Rate: 10, Burst: 20}
	tests := []struct {
		name string
		edit func(*Policy)
		want string // substring of the error; "" = valid
	}{
		{"valid", func(*Policy) {}, ""},
		{"empty name", func(p *Policy) { p.Name = "" }, "name is empty"},
		{"name not ASCII", func(p *Policy) { p.Name = "bets€" }, "not printable ASCII"},
		{"zero rate", func(p *Policy) { p.Rate = 0 }, "rate 0"},
		{"rate too high", func(p *Policy) { p.Rate = 2e9 }, "rate 2e+09"},
		{"zero burst", func(p *Policy) { p.Burst = 0 }, "burst 0"},
		{"century", func(p *Policy) { p.Rate = 1e-9; p.Burst = 1 << 20 }, "century"},
		{"negative window", func(p *Policy) { p.Window = -time.Second }, "window"},
		{"bad prefix", func(p *Policy) { p.Exempt = []netip.Prefix{{}} }, "exempt prefix"},
		{"bad key", func(p *Policy) { p.By = 9 }, "unknown key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := ok
			tc.edit(&p)
			err := p.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("Validate() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	// All problems are reported at once.
	err := Policy{}.Validate()
	if err == nil || !strings.Contains(err.Error(), "name is empty") || !strings.Contains(err.Error(), "rate 0") || !strings.Contains(err.Error(), "burst 0") {
		t.Errorf("Validate of the zero policy = %v, want name, rate and burst errors together", err)
	}
}

func TestParseKey(t *testing.T) {
	for _, k := range []Key{ByIP, ByPrincipal, ByRoute} {
		got, err := ParseKey(k.String())
		if err != nil || got != k {
			t.Errorf("ParseKey(%q) = %v, %v, want %v", k.String(), got, err, k)
		}
	}
	if _, err := ParseKey("cookie"); err == nil {
		t.Errorf("ParseKey(cookie) = nil error, want one")
	}
}

func TestAppendAddr(t *testing.T) {
	tests := []struct {
		addr string
		bits int
		want string // hex
	}{
		{"192.0.2.1", 64, "c0000201"},
		{"::ffff:192.0.2.1", 64, "c0000201"},
		{"2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff", 64, "20010db8aaaabbbb0000000000000000"},
		{"2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff", 128, "20010db8aaaabbbbccccddddeeeeffff"},
		{"2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff", 56, "20010db8aaaabb000000000000000000"},
		{"2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff", 60, "20010db8aaaabbb00000000000000000"},
		{"2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff", 0, "00000000000000000000000000000000"},
	}
	for _, tc := range tests {
		got := fmt.Sprintf("%x", AppendAddr(nil, netip.MustParseAddr(tc.addr), tc.bits))
		if got != tc.want {
			t.Errorf("AppendAddr(%s, %d) = %s, want %s", tc.addr, tc.bits, got, tc.want)
		}
	}
}

func TestAllowDoesNotAllocate(t *testing.T) {
	l := newTest(t, Policy{Rate: 1e6, Burst: 1 << 20, Exempt: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	key := []byte("203.0.113.9")
	client := netip.MustParseAddr("203.0.113.9")
	l.Allow(t0, client, key)
	var h fasthttp.ResponseHeader
	allocs := testing.AllocsPerRun(1000, func() {
		d := l.Allow(t0, client, key)
		SetHeaders(&h, l.Policy(), d)
	})
	if allocs != 0 {
		t.Errorf("Allow + SetHeaders on a known key: %v allocs, want 0", allocs)
	}
}

// Memory per key at a size the -race test run can afford; the 1,000,000-key
// figures come from BenchmarkMemoryPerKey.
func TestMemoryPerKey(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		perKey := measureKeys(t, 200_000, v6)
		t.Logf("v6=%v: %.1f B/key", v6, perKey)
		if perKey > 200 {
			t.Errorf("v6=%v: %.1f B/key, want under 200", v6, perKey)
		}
	}
}

func heapInuse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// measureKeys fills a limiter with n distinct client addresses (ByIP keys as
// the gateway builds them, IPv6 per /64) and returns heap bytes per key.
func measureKeys(tb testing.TB, n int, v6 bool) float64 {
	l := New(Policy{Name: "mem", Rate: 10, Burst: 20}, WithSweep(0, 0), WithEpoch(t0))
	defer l.Close()
	before := heapInuse()
	var key []byte
	for i := range n {
		var a netip.Addr
		if v6 {
			var b [16]byte
			binary.BigEndian.PutUint64(b[:8], 0x2001_0db8_0000_0000|uint64(i)) // distinct /64s
			binary.BigEndian.PutUint64(b[8:], rand.Uint64())
			a = netip.AddrFrom16(b)
		} else {
			a = netip.AddrFrom4([4]byte{byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)})
		}
		key = AppendAddr(key[:0], a, 64)
		l.Allow(t0, a, key)
	}
	after := heapInuse()
	if got := l.Len(); got != n {
		tb.Fatalf("Len = %d after %d distinct addresses", got, n)
	}
	runtime.KeepAlive(l)
	return float64(int64(after)-int64(before)) / float64(n)
}

// A request timed before the limiter's epoch (a time.Now taken just before a
// reload built the limiter) still finds a new key's bucket full.
func TestBeforeEpoch(t *testing.T) {
	l := newTest(t, Policy{Rate: 1, Burst: 3})
	for i := range 3 {
		if d := l.Allow(t0.Add(-time.Minute), noClient, []byte("k")); !d.Allowed || d.Remaining != 2-i {
			t.Fatalf("request %d a minute before the epoch: got %+v, want allowed with %d remaining", i+1, d, 2-i)
		}
	}
}
