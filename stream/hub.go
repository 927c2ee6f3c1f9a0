package stream

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// Reader receives a stream's packets: a WHEP viewer, the LL-HLS muxer, a
// recorder. OnRTP is called on the publisher's ingest goroutine, in order per
// track, with a group of packets: those that arrived while the previous
// group was fanned out (a WHEP viewer sends a group as one datagram train).
// It must not block, and must not keep the packets or their payloads after
// it returns (copy what it needs). Sequence numbers and timestamps are the
// stream's own: continuous across publisher reconnects.
type Reader interface {
	OnRTP(t *Track, pkts []*rtp.Packet)
}

// Ender is implemented by readers that want to know when their stream ends
// (the publisher left and did not come back within the grace period).
type Ender interface {
	StreamEnded()
}

// source is what feeds a hub: a WHIP publisher or a relay pull.
type source interface {
	requestKeyframe()
	close()
	// owner names who publishes (the studio); a source of the same owner
	// may replace a current one (a studio reconnecting).
	owner() string
}

// Errors of Hub.attach.
var (
	ErrPublisherExists = errors.New("stream already has a publisher")
	ErrStreamEnded     = errors.New("stream ended")
	ErrCodecChanged    = errors.New("publisher codec differs from the stream's, which has readers")
)

// Hub is one live stream: at most one source writes into it, any number of
// readers read out. It outlives its publisher by a grace period, so a studio
// that reconnects continues the same stream and readers keep reading.
type Hub struct {
	name string
	cfg  hubConfig

	mu         sync.Mutex
	src        source
	gen        uint64 // of src; packets of an older generation are dropped
	tracks     [2]*Track
	ended      bool
	grace      *time.Timer
	ready      chan struct{} // closed once the expected tracks exist
	expect     int           // tracks the first source announced
	readyDone  bool
	kfLast     time.Time
	kfTimer    *time.Timer
	readerMu   sync.Mutex
	readers    atomic.Pointer[[]Reader]
	viewers    atomic.Int64  // connected WHEP viewers, reading the hub
	connecting atomic.Int64  // WHEP viewers whose ICE and DTLS have not completed
	curGen     atomic.Uint64 // gen while it may write; 0 once ended
	fullUntil  atomic.Int64  // Unix ns: the fan-out was behind; no new WebRTC viewer until then
}

// The fan-out is full when a packet waited longer than the node's
// threshold (hubConfig.behind: fanoutBehind) before going out; new WebRTC
// viewers are then sent to LL-HLS for fanoutCooldown after the last time
// it was, so those watching keep a clean stream.
const (
	fanoutBehind   = 200 * time.Millisecond
	fanoutCooldown = 10 * time.Second
)

// noteLag records how long a group waited for its fan-out.
func (h *Hub) noteLag(lag time.Duration) {
	if lag < h.cfg.behind {
		return
	}
	was := h.FanoutFull()
	h.fullUntil.Store(time.Now().Add(fanoutCooldown).UnixNano())
	if !was && h.cfg.onFull != nil {
		h.cfg.onFull(h, lag)
	}
}

// FanoutFull reports whether the stream's fan-out has recently fallen
// behind its studio: one more WebRTC viewer would cost every viewer
// packets, so new ones are refused (503, LL-HLS instead).
func (h *Hub) FanoutFull() bool { return time.Now().UnixNano() < h.fullUntil.Load() }

type hubConfig struct {
	grace         time.Duration // publisher absence before the stream ends
	keyframeEvery time.Duration // minimum interval between keyframe requests
	behind        time.Duration // a fan-out lag that marks the stream full
	cacheSize     int           // packets kept per track for NACK
	out           *sendBatcher  // the node's ICE socket (nil: readers only)
	onFull        func(h *Hub, lag time.Duration)
	onEnd         func(h *Hub)
}

func newHub(name string, cfg hubConfig) *Hub {
	h := &Hub{name: name, cfg: cfg, ready: make(chan struct{})}
	empty := []Reader{}
	h.readers.Store(&empty)
	return h
}

// Name is the stream's name.
func (h *Hub) Name() string { return h.name }

// Viewers is the number of WHEP viewers now attached (connected).
func (h *Hub) Viewers() int { return int(h.viewers.Load()) }

// Live reports whether a source is publishing now.
func (h *Hub) Live() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.src != nil
}

// Tracks returns the stream's tracks (video first), once known.
func (h *Hub) Tracks() []*Track {
	h.mu.Lock()
	defer h.mu.Unlock()
	var ts []*Track
	for _, t := range h.tracks {
		if t != nil {
			ts = append(ts, t)
		}
	}
	return ts
}

// expectTracks says how many tracks the current source will add (from its
// SDP), so Ready waits for all of them: a viewer set up after the first
// track alone would miss the second.
func (h *Hub) expectTracks(n int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.expect = min(n, len(h.tracks))
}

func (h *Hub) countTracks() int {
	n := 0
	for _, t := range h.tracks {
		if t != nil {
			n++
		}
	}
	return n
}

// Ready is closed once the stream has the tracks its source announced.
func (h *Hub) Ready() <-chan struct{} { return h.ready }

// AddReader attaches r; it receives packets from the next one on.
func (h *Hub) AddReader(r Reader) {
	h.readerMu.Lock()
	defer h.readerMu.Unlock()
	old := *h.readers.Load()
	next := make([]Reader, len(old), len(old)+1)
	copy(next, old)
	next = append(next, r)
	h.readers.Store(&next)
}

// RemoveReader detaches r; after it returns, r receives nothing more.
func (h *Hub) RemoveReader(r Reader) {
	h.readerMu.Lock()
	old := *h.readers.Load()
	next := make([]Reader, 0, len(old))
	for _, x := range old {
		if x != r {
			next = append(next, x)
		}
	}
	h.readers.Store(&next)
	h.readerMu.Unlock()
	// Wait out a fan-out in progress, so r is not called after this returns.
	for _, t := range h.Tracks() {
		t.mu.Lock()
		//lint:ignore SA2001 the empty critical section waits for a fan-out holding t.mu
		t.mu.Unlock()
	}
}

// RequestKeyframe asks the publisher for a keyframe (a PLI). Requests closer
// together than the configured interval are merged into one sent at the end
// of the interval, so every joining viewer still gets one soon.
func (h *Hub) RequestKeyframe() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.src == nil || h.kfTimer != nil {
		return
	}
	wait := h.cfg.keyframeEvery - time.Since(h.kfLast)
	if wait <= 0 {
		h.kfLast = time.Now()
		h.src.requestKeyframe()
		return
	}
	h.kfTimer = time.AfterFunc(wait, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.kfTimer = nil
		if h.src != nil && !h.ended {
			h.kfLast = time.Now()
			h.src.requestKeyframe()
		}
	})
}

// attach makes src the stream's source. A current source is replaced when it
// has the same owner or takeover is allowed; otherwise ErrPublisherExists.
func (h *Hub) attach(src source, takeover bool) (uint64, error) {
	h.mu.Lock()
	if h.ended {
		h.mu.Unlock()
		return 0, ErrStreamEnded
	}
	old := h.src
	if old != nil && !takeover && old.owner() != src.owner() {
		h.mu.Unlock()
		return 0, ErrPublisherExists
	}
	if h.grace != nil {
		h.grace.Stop()
		h.grace = nil
	}
	h.gen++
	h.src = src
	gen := h.gen
	h.curGen.Store(gen)
	h.mu.Unlock()
	if old != nil {
		old.close()
	}
	return gen, nil
}

// detach ends source generation gen; the stream ends unless another source
// attaches within the grace period.
func (h *Hub) detach(gen uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.gen != gen || h.src == nil || h.ended {
		return
	}
	h.src = nil
	if h.grace != nil {
		h.grace.Stop()
	}
	h.grace = time.AfterFunc(h.cfg.grace, func() {
		h.mu.Lock()
		expired := h.src == nil && h.gen == gen
		h.mu.Unlock()
		if expired {
			h.end()
		}
	})
}

// end stops the stream: readers that care are told, the hub leaves its
// server. Safe to call more than once.
func (h *Hub) end() {
	h.mu.Lock()
	if h.ended {
		h.mu.Unlock()
		return
	}
	h.ended = true
	h.curGen.Store(0)
	src := h.src
	h.src = nil
	if h.grace != nil {
		h.grace.Stop()
	}
	if h.kfTimer != nil {
		h.kfTimer.Stop()
		h.kfTimer = nil
	}
	h.mu.Unlock()
	if src != nil {
		src.close()
	}
	if h.cfg.onEnd != nil {
		h.cfg.onEnd(h)
	}
	for _, r := range *h.readers.Load() {
		if e, ok := r.(Ender); ok {
			e.StreamEnded()
		}
	}
}

// Ended reports whether the stream has ended.
func (h *Hub) Ended() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ended
}

// setTrack registers the codec of source gen's track of one kind and returns
// the stream's track, which persists across sources.
func (h *Hub) setTrack(gen uint64, kind webrtc.RTPCodecType, codec webrtc.RTPCodecCapability) (*Track, error) {
	i := kindIndex(kind)
	if i < 0 {
		return nil, errors.New("unknown track kind")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.gen != gen || h.ended {
		return nil, ErrStreamEnded
	}
	t := h.tracks[i]
	if t == nil {
		t = &Track{hub: h, kind: kind, codec: codec, cache: newPacketCache(h.cfg.cacheSize)}
		h.tracks[i] = t
		if !h.readyDone && h.countTracks() >= max(1, h.expect) {
			h.readyDone = true
			close(h.ready)
		}
		return t, nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !sameCodec(t.codec, codec) {
		if len(*h.readers.Load()) > 0 {
			return nil, ErrCodecChanged
		}
		t.codec = codec
	}
	return t, nil
}

func sameCodec(a, b webrtc.RTPCodecCapability) bool {
	return equalFoldASCII(a.MimeType, b.MimeType) && a.ClockRate == b.ClockRate && a.Channels == b.Channels
}

func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

func kindIndex(k webrtc.RTPCodecType) int {
	switch k {
	case webrtc.RTPCodecTypeVideo:
		return 0
	case webrtc.RTPCodecTypeAudio:
		return 1
	}
	return -1
}

// Track is one media track of a stream (video or audio). Its sequence
// numbers and timestamps continue across publishers.
type Track struct {
	hub   *Hub
	kind  webrtc.RTPCodecType
	mu    sync.Mutex // held while a packet is rewritten, cached and fanned out
	codec webrtc.RTPCodecCapability
	rw    rewriter
	cache *packetCache

	packets atomic.Uint64
}

// Kind is video or audio.
func (t *Track) Kind() webrtc.RTPCodecType { return t.kind }

// Codec is the track's codec, as the publisher negotiated it.
func (t *Track) Codec() webrtc.RTPCodecCapability {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.codec
}

// Packets is how many packets the track has forwarded.
func (t *Track) Packets() uint64 { return t.packets.Load() }

// write forwards a group of packets of source generation gen, in order:
// rewritten into the stream's sequence and timestamp space, cached for
// retransmission, handed to every reader. The packets are modified. lag
// is how long the group's first packet waited for it (see noteLag).
func (t *Track) write(gen uint64, pkts []*rtp.Packet, lag time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	h := t.hub
	if h.curGen.Load() != gen {
		return
	}
	h.noteLag(lag)
	now := time.Now()
	for _, pkt := range pkts {
		t.rw.apply(gen, pkt, now, t.codec.ClockRate)
		pkt.Header.Extension = false
		pkt.Header.Extensions = nil
		t.cache.put(pkt)
	}
	t.packets.Add(uint64(len(pkts)))
	if out := h.cfg.out; out != nil {
		// The viewers' datagrams of this group leave in batches.
		out.hold()
		defer out.release()
	}
	for _, r := range *h.readers.Load() {
		r.OnRTP(t, pkts)
	}
}

// rewriter maps each source's sequence numbers and timestamps onto the
// stream's, so a new source continues where the last one stopped and
// decoders downstream see one continuous stream.
type rewriter struct {
	started bool
	gen     uint64
	seqOff  uint16
	tsOff   uint32
	lastSeq uint16
	lastTS  uint32
	lastAt  time.Time
}

func (w *rewriter) apply(gen uint64, p *rtp.Packet, now time.Time, clock uint32) {
	switch {
	case !w.started:
		w.started, w.gen = true, gen
	case gen != w.gen:
		w.gen = gen
		w.seqOff = w.lastSeq + 1 - p.SequenceNumber
		gap := uint32(1)
		if clock > 0 {
			if d := now.Sub(w.lastAt); d > 0 {
				gap = max(1, uint32(d.Seconds()*float64(clock)))
			}
		}
		w.tsOff = w.lastTS + gap - p.Timestamp
	}
	p.SequenceNumber += w.seqOff
	p.Timestamp += w.tsOff
	if d := int16(p.SequenceNumber - w.lastSeq); d > 0 || w.lastAt.IsZero() {
		w.lastSeq, w.lastTS, w.lastAt = p.SequenceNumber, p.Timestamp, now
	}
}
