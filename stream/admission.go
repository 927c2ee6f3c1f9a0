package stream

import (
	"math"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
	"golang.org/x/time/rate"

	"hedge/internal/problem"
)

// AddressLimits bound what one client address may start: a session costs
// the node about 9 goroutines and 5 ms of CPU before the client has proven
// anything, so an anonymous client that creates sessions by the hundred
// must run out of them long before the node does. An IPv6 client is its
// /64 (one subscriber holds a whole /64). Zero fields do not limit. Signed
// relays (another region's edge) are exempt.
type AddressLimits struct {
	// Rate and Burst are a token bucket over the address's WHEP POSTs
	// (counted before a viewer token is checked) and its WHIP POSTs that
	// fail for want of a studio token, so guessing one is throttled; a
	// studio's own WHIP POSTs are not limited. Over it: 429
	// stream-session-rate with Retry-After.
	Rate  float64 // per second
	Burst int
	// MaxSessions is how many WHEP sessions the address may hold at once,
	// connecting or connected. Over it: 429 stream-session-limit, naming
	// the LL-HLS URL like a viewer cap. WHIP sessions need a studio's
	// token and do not count.
	MaxSessions int
}

// maxTrackedAddrs bounds the address table: an entry lives while its
// address holds sessions or its bucket refills, so the table fills only
// when tens of thousands of addresses start sessions within one refill
// time. A new address is then refused (as over its rate) until a sweep
// frees entries.
const maxTrackedAddrs = 1 << 16

// addrSweepEvery is how often the table drops entries that limit nothing.
const addrSweepEvery = 10 * time.Second

// addrTable is the per-address state of AddressLimits.
type addrTable struct {
	mu    sync.Mutex
	m     map[netip.Prefix]*addrEntry
	swept time.Time
}

type addrEntry struct {
	lim      *rate.Limiter // nil while the rate is unlimited
	sessions int
}

// addrKey is the address's bucket: itself for IPv4, its /64 for IPv6.
func addrKey(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return netip.Prefix{} // no address: every such request shares one entry
	}
	return p
}

// entry returns the address's entry, creating it; nil when the table is
// full. The caller holds t.mu.
func (t *addrTable) entry(k netip.Prefix, now time.Time, l AddressLimits) *addrEntry {
	if t.m == nil {
		t.m = map[netip.Prefix]*addrEntry{}
	}
	if now.Sub(t.swept) >= addrSweepEvery {
		t.sweep(now)
	}
	e := t.m[k]
	if e == nil {
		if len(t.m) >= maxTrackedAddrs {
			t.sweep(now)
			if len(t.m) >= maxTrackedAddrs {
				return nil
			}
		}
		e = &addrEntry{}
		t.m[k] = e
	}
	if l.Rate > 0 {
		lim, burst := rate.Limit(l.Rate), max(l.Burst, 1)
		switch {
		case e.lim == nil:
			e.lim = rate.NewLimiter(lim, burst)
		case e.lim.Limit() != lim || e.lim.Burst() != burst: // reconfigured
			e.lim.SetLimitAt(now, lim)
			e.lim.SetBurstAt(now, burst)
		}
	} else {
		e.lim = nil
	}
	return e
}

// sweep drops the entries that hold no session and whose bucket is full:
// forgetting them changes no decision. The caller holds t.mu.
func (t *addrTable) sweep(now time.Time) {
	t.swept = now
	for k, e := range t.m {
		if e.sessions == 0 && (e.lim == nil || e.lim.TokensAt(now) >= float64(e.lim.Burst())) {
			delete(t.m, k)
		}
	}
}

// allow spends one of the address's session creations, or says how long
// until it has one.
func (t *addrTable) allow(client netip.Addr, now time.Time, l AddressLimits) (ok bool, retryAfter time.Duration) {
	if l.Rate <= 0 {
		return true, 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.entry(addrKey(client), now, l)
	if e == nil {
		return false, addrSweepEvery
	}
	if e.lim.AllowN(now, 1) {
		return true, 0
	}
	wait := (1 - e.lim.TokensAt(now)) / l.Rate
	return false, time.Duration(math.Ceil(wait * float64(time.Second)))
}

// hold takes one of the address's session slots (counted: release must
// give it back), or reports that it has none left.
func (t *addrTable) hold(client netip.Addr, now time.Time, l AddressLimits) (ok, counted bool) {
	if l.MaxSessions <= 0 {
		return true, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.entry(addrKey(client), now, l)
	if e == nil || e.sessions >= l.MaxSessions {
		return false, false
	}
	e.sessions++
	return true, true
}

// release gives back a slot hold counted, whatever the limits say now (a
// reload may have turned them off meanwhile).
func (t *addrTable) release(client netip.Addr) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e := t.m[addrKey(client)]; e != nil && e.sessions > 0 {
		e.sessions--
	}
}

// held is how many sessions the address holds (tests).
func (t *addrTable) held(client netip.Addr) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e := t.m[addrKey(client)]; e != nil {
		return e.sessions
	}
	return 0
}

// size is how many addresses the table holds (tests).
func (t *addrTable) size() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

// allowCreate spends one of the client address's session creations (WHIP
// or WHEP POST), or answers 429 stream-session-rate with Retry-After and
// returns false.
func (s *Server) allowCreate(ctx *fasthttp.RequestCtx, client netip.Addr, requestID []byte) bool {
	ok, wait := s.addrs.allow(client, time.Now(), s.options().PerAddress)
	if ok {
		return true
	}
	s.refused[RefusedAddressRate].Add(1)
	secs := max(int64(math.Ceil(wait.Seconds())), 1)
	problem.Write(ctx, problem.StreamSessionRate, "this address starts sessions faster than the node allows; retry later", requestID)
	ctx.Response.Header.Set("Retry-After", strconv.FormatInt(secs, 10))
	return false
}

// Why admitViewer refused.
type viewerRefusal struct {
	reason Refusal
	detail string
}

// admitViewer gives a new viewer a connecting slot (counted in the node's
// connecting viewers and in its address's sessions), or says why there is
// none: the stream's or node's connected viewers are at their cap, the
// stream's fan-out is full, too many viewers are connecting, or the
// address holds its share of sessions. A trusted relay is admitted
// whatever the caps and limits say.
func (s *Server) admitViewer(h *Hub, trusted bool, client netip.Addr) (*viewerSlot, viewerRefusal) {
	sl := &viewerSlot{s: s, hub: h, trusted: trusted, client: client}
	if trusted {
		s.connecting.Add(1)
		h.connecting.Add(1)
		return sl, viewerRefusal{}
	}
	o := s.options()
	switch {
	case h.FanoutFull():
		return nil, viewerRefusal{RefusedViewerCap, "this node's fan-out of the stream is full"}
	case o.MaxViewersPerStream > 0 && int(h.viewers.Load()) >= o.MaxViewersPerStream:
		return nil, viewerRefusal{RefusedViewerCap, "the stream's WebRTC viewer cap is reached"}
	case o.MaxViewersPerNode > 0 && int(s.viewers.Load()) >= o.MaxViewersPerNode:
		return nil, viewerRefusal{RefusedViewerCap, "this node's WebRTC viewer cap is reached"}
	}
	if n := s.connecting.Add(1); o.MaxConnectingViewers > 0 && int(n) > o.MaxConnectingViewers {
		s.connecting.Add(-1)
		return nil, viewerRefusal{RefusedConnecting, "too many WebRTC viewers are connecting to this node"}
	}
	ok, counted := s.addrs.hold(client, time.Now(), o.PerAddress)
	if !ok {
		s.connecting.Add(-1)
		return nil, viewerRefusal{RefusedAddressSessions, "this address holds as many WebRTC sessions as the node allows one address"}
	}
	sl.addrCounted = counted
	h.connecting.Add(1)
	return sl, viewerRefusal{}
}

// refuseViewer answers a viewer admitViewer refused: 503 stream-viewer-cap
// or 429 stream-session-limit, both naming the stream's LL-HLS URL (in the
// detail and a Link), where the player goes instead.
func (s *Server) refuseViewer(ctx *fasthttp.RequestCtx, stream string, why viewerRefusal, requestID []byte) {
	s.refused[why.reason].Add(1)
	hls := s.HLSURL(stream)
	typ := problem.ViewerCap
	if why.reason == RefusedAddressSessions {
		typ = problem.StreamSessionLimit
	}
	problem.Write(ctx, typ, why.detail+": watch "+hls+" instead", requestID)
	ctx.Response.Header.Set("Link", "<"+hls+`>; rel="alternate"; type="application/vnd.apple.mpegurl"`)
	switch why.reason {
	case RefusedConnecting:
		// Connecting viewers connect or are closed within the timeout.
		ctx.Response.Header.Set("Retry-After", strconv.Itoa(max(int(math.Ceil(s.options().ConnectTimeout.Seconds())), 1)))
	case RefusedAddressSessions:
		// Nothing frees the address's sessions at a known time; its
		// connecting ones are gone within the connect timeout.
		ctx.Response.Header.Set("Retry-After", strconv.Itoa(max(int(math.Ceil(s.options().ConnectTimeout.Seconds())), 1)))
	}
}

// viewerSlot is a WHEP viewer's place in the caps: connecting (in the
// node's connecting viewers and its address's sessions), then connected
// (in the stream's and node's viewers, reading the hub), then released.
type viewerSlot struct {
	s           *Server
	hub         *Hub
	reader      Reader
	trusted     bool
	client      netip.Addr
	addrCounted bool

	mu    sync.Mutex
	state slotState
}

type slotState uint8

const (
	slotConnecting slotState = iota
	slotConnected            // counted in the caps, reading the hub
	slotRefused              // connected while the caps were full (or the stream had ended): to be closed
	slotReleased
)

// connect moves a connecting viewer into the caps and onto the hub, and
// asks the studio for a keyframe. It reports false when the viewer must be
// closed instead: the caps filled while it connected, or the stream ended.
func (sl *viewerSlot) connect() bool {
	s, h := sl.s, sl.hub
	sl.mu.Lock()
	defer sl.mu.Unlock()
	if sl.state != slotConnecting {
		return sl.state == slotConnected
	}
	s.connecting.Add(-1)
	h.connecting.Add(-1)
	if !s.takeViewer(h, sl.trusted) {
		s.refused[RefusedCapAtConnect].Add(1)
		sl.state = slotRefused
		return false
	}
	sl.state = slotConnected
	h.AddReader(sl.reader)
	// end() marks the hub ended before it tells its readers: a reader added
	// after that sees Ended here.
	if h.Ended() {
		sl.state = slotRefused
		h.RemoveReader(sl.reader)
		s.dropViewer(h)
		return false
	}
	h.RequestKeyframe()
	return true
}

// release gives back whatever the slot holds; safe to call more than once.
func (sl *viewerSlot) release() {
	s, h := sl.s, sl.hub
	sl.mu.Lock()
	defer sl.mu.Unlock()
	switch sl.state {
	case slotReleased:
		return
	case slotConnecting:
		s.connecting.Add(-1)
		h.connecting.Add(-1)
	case slotConnected:
		h.RemoveReader(sl.reader)
		s.dropViewer(h)
	}
	sl.state = slotReleased
	if sl.addrCounted {
		s.addrs.release(sl.client)
	}
	s.viewerLeft(h.Name())
}

// takeViewer counts a connected viewer in the stream's and the node's
// viewers, or reports that a cap is reached (a trusted relay passes).
func (s *Server) takeViewer(h *Hub, trusted bool) bool {
	o := s.options()
	if n := h.viewers.Add(1); !trusted && o.MaxViewersPerStream > 0 && int(n) > o.MaxViewersPerStream {
		h.viewers.Add(-1)
		return false
	}
	if n := s.viewers.Add(1); !trusted && o.MaxViewersPerNode > 0 && int(n) > o.MaxViewersPerNode {
		s.viewers.Add(-1)
		h.viewers.Add(-1)
		return false
	}
	return true
}

func (s *Server) dropViewer(h *Hub) {
	h.viewers.Add(-1)
	s.viewers.Add(-1)
}
