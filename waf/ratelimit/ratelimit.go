package ratelimit

import (
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"hedge/internal/tick"
)

// Key names what a policy counts requests by. The gateway derives the key
// bytes; the limiter only sees opaque bytes.
type Key uint8

const (
	// ByIP counts per client address (after trusted-proxy resolution). Use
	// AppendAddr to build the key so that an IPv6 client is counted per
	// prefix, not per address.
	ByIP Key = iota
	// ByPrincipal counts per authenticated principal: a header named in the
	// configuration or the verified token subject.
	ByPrincipal
	// ByRoute counts every request of a route together.
	ByRoute
)

var keyNames = [...]string{ByIP: "ip", ByPrincipal: "principal", ByRoute: "route"}

func (k Key) String() string {
	if int(k) < len(keyNames) {
		return keyNames[k]
	}
	return fmt.Sprintf("Key(%d)", uint8(k))
}

// ParseKey is the inverse of Key.String.
func ParseKey(s string) (Key, error) {
	for k, n := range keyNames {
		if n == s {
			return Key(k), nil
		}
	}
	return 0, fmt.Errorf("ratelimit: unknown key %q (want ip, principal or route)", s)
}

// Limits that keep every duration computation inside int64 nanoseconds.
const (
	MaxRate  = 1e9 // one token per nanosecond
	MaxBurst = 1 << 30
)

// Policy is one rate limit: Rate tokens per second refill a bucket of Burst
// tokens per key; each request takes one.
type Policy struct {
	Name  string  // RateLimit-Policy identifier and metrics label: printable ASCII
	By    Key     // what the gateway keys requests by
	Rate  float64 // tokens per second, > 0
	Burst int     // bucket size, >= 1
	// Window is the quota window advertised in RateLimit-Policy (w=, whole
	// seconds, rounded up); the advertised quota is Rate*Window. Default 1s
	// (see WindowSeconds). It does not change what is allowed.
	Window time.Duration
	Exempt []netip.Prefix // clients never limited (operators' load generators)
}

// Validate reports every problem with p at once. New panics on a policy that
// does not validate: configuration is checked before anything runs.
func (p Policy) Validate() error {
	var errs []error
	if p.Name == "" {
		errs = append(errs, errors.New("name is empty"))
	}
	for i := 0; i < len(p.Name); i++ {
		if c := p.Name[i]; c < 0x20 || c > 0x7e {
			errs = append(errs, fmt.Errorf("name %q: byte %#x at %d is not printable ASCII", p.Name, c, i))
			break
		}
	}
	if int(p.By) >= len(keyNames) {
		errs = append(errs, fmt.Errorf("unknown key %v", p.By))
	}
	if !(p.Rate > 0 && p.Rate <= MaxRate) { // also rejects NaN
		errs = append(errs, fmt.Errorf("rate %v: want 0 < rate <= %g per second", p.Rate, float64(MaxRate)))
	}
	if p.Burst < 1 || p.Burst > MaxBurst {
		errs = append(errs, fmt.Errorf("burst %d: want 1..%d", p.Burst, MaxBurst))
	}
	if p.Rate > 0 && p.Burst >= 1 && float64(p.Burst)*float64(time.Second)/p.Rate > math.MaxInt64/4 {
		errs = append(errs, fmt.Errorf("burst %d at rate %v takes longer than a century to refill", p.Burst, p.Rate))
	}
	if p.Window < 0 || p.Window > 24*time.Hour {
		errs = append(errs, fmt.Errorf("window %v: want 0 (1s) .. 24h", p.Window))
	}
	for _, e := range p.Exempt {
		if !e.IsValid() {
			errs = append(errs, fmt.Errorf("exempt prefix %v is invalid", e))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("ratelimit policy %q: %w", p.Name, err)
	}
	return nil
}

// Limit is p's refill rate in x/time/rate's unit.
func (p Policy) Limit() rate.Limit { return rate.Limit(p.Rate) }

// Decision is the outcome of one Allow.
type Decision struct {
	Allowed bool
	// Exempt is set when the client matched an exempt prefix: no token was
	// taken and the other fields describe a full bucket.
	Exempt bool
	// Remaining is the number of whole tokens left after this request.
	Remaining int
	// Reset is the time until the bucket is full again.
	Reset time.Duration
	// RetryAfter is the time until the next request would be allowed; zero
	// when Allowed.
	RetryAfter time.Duration
}

const (
	shardBits = 6
	numShards = 1 << shardBits
)

// Limiter enforces one Policy per key. It is safe for concurrent use.
type Limiter struct {
	p        Policy
	exempt   []netip.Prefix
	interval int64 // nanoseconds per token (emission interval T)
	tau      int64 // (Burst-1)*T: how far ahead of now tat may run
	epoch    time.Time
	seeds    [2]maphash.Seed
	idle     int64 // a full bucket is evicted after this many ns
	shardCap int   // max keys per shard; 0 = unbounded

	shards [numShards]shard

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// Option tunes a Limiter.
type Option func(*options)

type options struct {
	sweepEvery time.Duration
	idle       time.Duration
	maxKeys    int
	epoch      time.Time
}

// WithSweep sets how often the background sweeper runs (default 10s) and
// how long a bucket must have been full before it is evicted (default 10s).
// A sweep interval <= 0 starts no sweeper; Sweep can then be called by hand.
func WithSweep(every, idle time.Duration) Option {
	return func(o *options) { o.sweepEvery, o.idle = every, idle }
}

// DefaultMaxKeys is the key cap of a limiter without WithMaxKeys: at most
// ~200 MB of tables (24 B per slot, tables up to 2x the keys) however many
// distinct keys a flood brings, e.g. from a principal header the client
// chooses.
const DefaultMaxKeys = 1 << 22

// WithMaxKeys bounds the number of keys held (spread over the shards;
// default DefaultMaxKeys, n < 0 for no bound beyond idle eviction). When a
// shard is full, a new key evicts the most idle of a small random sample of
// its keys; a victim still draining gets a full bucket when it returns, so
// the cap should sit well above the expected number of active clients.
func WithMaxKeys(n int) Option { return func(o *options) { o.maxKeys = n } }

// WithEpoch sets the time origin of the limiter's clock. Times passed to
// Allow must not be more than ~146 years from it. Default: time.Now() at New.
func WithEpoch(t time.Time) Option { return func(o *options) { o.epoch = t } }

// New returns a Limiter for p and starts its sweeper; Close stops it.
// New panics if p does not Validate.
func New(p Policy, opts ...Option) *Limiter {
	if err := p.Validate(); err != nil {
		panic(err)
	}
	o := options{sweepEvery: 10 * time.Second, idle: 10 * time.Second}
	for _, f := range opts {
		f(&o)
	}
	if o.epoch.IsZero() {
		o.epoch = time.Now()
	}
	interval := int64(math.Round(float64(time.Second) / p.Rate))
	if interval < 1 {
		interval = 1
	}
	l := &Limiter{
		p:        p,
		interval: interval,
		tau:      int64(p.Burst-1) * interval,
		epoch:    o.epoch,
		seeds:    [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()},
		idle:     int64(max(o.idle, 0)),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	if p.Window == 0 {
		l.p.Window = time.Duration(p.WindowSeconds()) * time.Second
	}
	for _, e := range p.Exempt {
		l.exempt = append(l.exempt, e.Masked())
	}
	if o.maxKeys == 0 {
		o.maxKeys = DefaultMaxKeys
	}
	if o.maxKeys > 0 {
		l.shardCap = (o.maxKeys + numShards - 1) / numShards
	}
	if o.sweepEvery > 0 {
		go l.sweeper(o.sweepEvery)
	} else {
		close(l.done)
	}
	return l
}

// Policy returns the limiter's policy with defaults applied.
func (l *Limiter) Policy() Policy { return l.p }

// Close stops the sweeper and waits for it. Safe to call more than once.
// The limiter keeps answering Allow after Close.
func (l *Limiter) Close() error {
	l.closeOnce.Do(func() { close(l.stop) })
	<-l.done
	return nil
}

func (l *Limiter) sweeper(every time.Duration) {
	defer close(l.done)
	tick.Every(l.stop, every, func(now time.Time) { l.Sweep(now) })
}

// Exempt reports whether client matches one of the policy's exempt prefixes.
func (l *Limiter) Exempt(client netip.Addr) bool {
	if len(l.exempt) == 0 || !client.IsValid() {
		return false
	}
	client = client.Unmap()
	for _, e := range l.exempt {
		if e.Contains(client) {
			return true
		}
	}
	return false
}

// Allow takes one token from key's bucket at time now, unless client is
// exempt. Allow keeps no reference to key (it stores a digest of it), so
// fasthttp's reused buffers are safe to pass. It does not allocate except
// when a new key makes its shard's table grow.
func (l *Limiter) Allow(now time.Time, client netip.Addr, key []byte) Decision {
	if l.Exempt(client) {
		return Decision{Allowed: true, Exempt: true, Remaining: l.p.Burst}
	}
	t := int64(now.Sub(l.epoch))
	h0, h1 := maphash.Bytes(l.seeds[0], key), maphash.Bytes(l.seeds[1], key)|1
	s := &l.shards[h0>>(64-shardBits)] // top bits; the table uses the low ones
	s.mu.Lock()
	i, ok := s.t.find(h0, h1)
	var tat int64
	if ok {
		tat = max(s.t.e[i].tat, t) // a bucket idle since tat is full
	} else {
		tat = t // a new bucket is full (t may be before the epoch: not 0)
	}
	if tat-t > l.tau {
		s.denied++
		s.mu.Unlock()
		return Decision{
			Reset:      time.Duration(tat - t),
			RetryAfter: time.Duration(tat - t - l.tau),
		}
	}
	tat += l.interval
	if ok {
		s.t.e[i].tat = tat
	} else {
		if l.shardCap > 0 && s.t.n >= l.shardCap {
			s.t.evictIdlest(h1)
			s.evicted++
		}
		s.t.insert(h0, h1, tat)
	}
	s.allowed++
	s.mu.Unlock()
	ahead := tat - t // Burst - ahead/T tokens remain
	return Decision{
		Allowed:   true,
		Remaining: int((l.tau + l.interval - ahead) / l.interval),
		Reset:     time.Duration(ahead),
	}
}

// Stats is a snapshot of a limiter's counters.
type Stats struct {
	Keys    int    // keys held now
	Allowed uint64 // requests allowed (exempt ones not counted)
	Denied  uint64 // requests denied
	Evicted uint64 // keys evicted, idle or by the key cap
}

// Stats sums the counters of every shard.
func (l *Limiter) Stats() Stats {
	var st Stats
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		st.Keys += s.t.n
		st.Allowed += s.allowed
		st.Denied += s.denied
		st.Evicted += s.evicted
		s.mu.Unlock()
	}
	return st
}

// Len is the number of keys held.
func (l *Limiter) Len() int { return l.Stats().Keys }

// Sweep evicts every key whose bucket has been full for longer than the
// idle time at now, shrinks shards that have become mostly empty, and
// returns the number of keys evicted. The background sweeper calls it;
// evicting a full bucket never changes a decision, since a new key starts
// full.
func (l *Limiter) Sweep(now time.Time) int {
	cutoff := int64(now.Sub(l.epoch)) - l.idle
	n := 0
	for i := range l.shards {
		n += l.shards[i].sweep(cutoff)
	}
	return n
}

// sweepChunk is how many slots a sweep looks at per lock hold (~50µs), so
// that requests of a shard with many keys never wait for a whole sweep.
const sweepChunk = 4096

func (s *shard) sweep(cutoff int64) int {
	n := 0
	size := -1
	for from := 0; ; from += sweepChunk {
		s.mu.Lock()
		if size >= 0 && len(s.t.e) != size { // resized meanwhile: next sweep
			s.mu.Unlock()
			return n
		}
		size = len(s.t.e)
		if from >= size {
			s.t.shrink()
			s.mu.Unlock()
			return n
		}
		k := s.t.sweepRange(cutoff, from, min(from+sweepChunk, size))
		s.evicted += uint64(k)
		n += k
		s.mu.Unlock()
	}
}

// A key is identified by a digest: two 64-bit hashes of its bytes under
// two secret seeds (h1's low bit forced to 1, which marks a used slot).
// Storing it instead of the key makes every entry the same 24 bytes inline
// in the shard's table, with no allocation per key and nothing for the
// garbage collector to scan. Two keys share a bucket only if both hashes
// collide: about n²/2¹²⁸ for n keys (1e-26 at a million).

// shard holds a slice of the keys: digest -> tat, the GCRA "theoretical
// arrival time" in ns since the limiter's epoch. The bucket holds
// Burst - max(tat-now, 0)/T tokens, so a key whose tat has passed has a
// full bucket.
type shard struct {
	mu      sync.Mutex
	t       table
	allowed uint64
	denied  uint64
	evicted uint64
	_       [64]byte // keep neighbouring shards' locks off this cache line
}

// AppendAddr appends the ByIP key of a: 4 bytes for IPv4 (and IPv4-mapped
// IPv6), else the first v6Bits bits of the IPv6 address (rest zeroed) as 16
// bytes. One subscriber usually holds a whole /64, so v6Bits 64 keeps a
// client from escaping the limit by rotating addresses inside it.
func AppendAddr(dst []byte, a netip.Addr, v6Bits int) []byte {
	a = a.Unmap()
	if a.Is4() {
		b := a.As4()
		return append(dst, b[:]...)
	}
	b := a.As16()
	v6Bits = min(max(v6Bits, 0), 128)
	for i := range b {
		switch bit := i * 8; {
		case bit >= v6Bits:
			b[i] = 0
		case bit+8 > v6Bits:
			b[i] &= byte(0xff << (8 - (v6Bits - bit)))
		}
	}
	return append(dst, b[:]...)
}
