package dnsfail

import (
	"net/netip"
	"sync"
	"time"

	"hedge/configs"
)

// rrl is response rate limiting (as in Knot and NSD): each client prefix
// may receive ResponsesPerSecond responses per second over UDP; beyond that
// responses are dropped, except every Slip-th, which is sent empty with
// TC=1 so a real resolver retries over TCP, where it is not limited.
type rrl struct {
	rate     float64
	slip     int
	v4, v6   int
	exempt   []netip.Prefix
	mu       sync.Mutex
	buckets  map[netip.Prefix]*bucket
	lastTidy time.Time
}

type bucket struct {
	tokens  float64
	last    time.Time
	limited int
}

type rrlAction int

const (
	rrlSend rrlAction = iota
	rrlDrop
	rrlSlip
)

// maxBuckets bounds the table under a spoofed-source flood; when full,
// idle buckets are swept and, failing that, new prefixes are limited.
const maxBuckets = 1 << 18

func newRRL(c configs.RRL) *rrl {
	if c.ResponsesPerSecond <= 0 {
		return nil
	}
	r := &rrl{rate: float64(c.ResponsesPerSecond), slip: c.Slip, v4: c.IPv4Prefix, v6: c.IPv6Prefix,
		buckets: map[netip.Prefix]*bucket{}}
	for _, e := range c.Exempt {
		if p, err := configs.ParsePrefix(e); err == nil {
			r.exempt = append(r.exempt, p)
		}
	}
	return r
}

func (r *rrl) check(client netip.Addr, now time.Time) rrlAction {
	if !client.IsValid() {
		return rrlSend
	}
	for _, p := range r.exempt {
		if p.Contains(client) {
			return rrlSend
		}
	}
	bits := r.v6
	if client.Is4() {
		bits = r.v4
	}
	key, _ := client.Prefix(bits)
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.buckets[key]
	if b == nil {
		if len(r.buckets) >= maxBuckets {
			r.tidy(now)
		}
		if len(r.buckets) >= maxBuckets {
			return rrlDrop
		}
		b = &bucket{tokens: r.rate, last: now}
		r.buckets[key] = b
	}
	b.tokens = min(r.rate, b.tokens+now.Sub(b.last).Seconds()*r.rate)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return rrlSend
	}
	b.limited++
	if r.slip > 0 && b.limited%r.slip == 0 {
		return rrlSlip
	}
	return rrlDrop
}

// tidy drops buckets idle long enough to be full again.
func (r *rrl) tidy(now time.Time) {
	if now.Sub(r.lastTidy) < time.Second {
		return
	}
	r.lastTidy = now
	for k, b := range r.buckets {
		if now.Sub(b.last) > 2*time.Second {
			delete(r.buckets, k)
		}
	}
}
