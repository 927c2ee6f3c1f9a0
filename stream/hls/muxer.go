// Package hls packages one live stream as Low-Latency HLS (fMP4 parts,
// blocking playlist reload, preload hints) from the RTP packets the stream
// hub already has. The hub writes every packet with WriteRTP and serves
// /live/{stream}/hls/ with ServeHTTP; the playlists, init section, parts and
// segments live in memory only.
//
// gohlslib does the packaging. This package adds what a WebRTC source needs
// in front of it: a small reorder buffer and RTP depacketization, one time
// base for audio and video from two unrelated RTP clocks, loss handling (a
// frame with a hole is never packaged; the muxer waits for the next
// keyframe), video held until the audio of its time is in (so that audio
// parts are complete when their part closes), keyframe requests so that
// segments stay between one and two seconds, and bounded waits for blocking
// playlist requests.
package hls

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gohlslib/v2"
	"github.com/bluenviron/gohlslib/v2/pkg/codecs"
	"github.com/pion/rtp"
)

// Codec names the codec of a packet the hub writes.
type Codec uint8

// The codecs a WebRTC publisher may send. VP8 is accepted by the hub but has
// no fMP4 mapping in HLS players, so it is not packaged.
const (
	NoCodec Codec = iota
	H264
	Opus
	VP8
)

func (c Codec) String() string {
	switch c {
	case NoCodec:
		return "none"
	case H264:
		return "H264"
	case Opus:
		return "Opus"
	case VP8:
		return "VP8"
	}
	return fmt.Sprintf("Codec(%d)", uint8(c))
}

// ErrUnsupportedCodec is returned by New for a track codec LL-HLS cannot
// carry (VP8) or a video codec in the audio slot and the reverse.
var ErrUnsupportedCodec = errors.New("hls: codec not supported")

// Options configure a Muxer. Zero values take the defaults named below.
type Options struct {
	// Video is the video track's codec: H264, or NoCodec for audio only.
	Video Codec
	// Audio is the audio track's codec: Opus, or NoCodec for video only.
	Audio Codec
	// PartDuration is the minimum duration of an LL-HLS part (default
	// 200 ms, 100 ms to 1 s). gohlslib stretches it slightly so that every
	// part holds a whole number of frames.
	PartDuration time.Duration
	// SegmentDuration is the minimum duration of a segment (default 1 s,
	// 500 ms to 2 s). A segment is cut on the first keyframe after it; the
	// muxer asks for that keyframe through KeyframeWanted.
	SegmentDuration time.Duration
	// SegmentCount is how many segments the playlist keeps (default and
	// minimum 7, which LL-HLS requires).
	SegmentCount int
	// KeyframeRetry is how long the muxer waits for a keyframe it asked for
	// before asking again (default 500 ms).
	KeyframeRetry time.Duration
	// WaitTimeout bounds a blocking playlist or preload-hint request
	// (default 3 × SegmentDuration, as the LL-HLS specification suggests);
	// after it the client gets 503 and retries.
	WaitTimeout time.Duration
	// MaxWaiting bounds the requests blocked at once (default 4096); one
	// more gets 503.
	MaxWaiting int
	// ReorderWait is how long video packets that arrived after a gap in
	// sequence numbers wait for the missing one (default 40 ms, at most
	// 32 packets) before it counts as lost and the frames up to the next
	// keyframe are dropped; negative turns the reordering off.
	ReorderWait time.Duration
	// OnError, if set, is told of packets and frames that could not be
	// packaged. It is called with the muxer's lock held: it must not call
	// back into the Muxer.
	OnError func(error)
}

func (o *Options) setDefaults() error {
	switch o.Video {
	case NoCodec, H264:
	default:
		return fmt.Errorf("%w: video %v", ErrUnsupportedCodec, o.Video)
	}
	switch o.Audio {
	case NoCodec, Opus:
	default:
		return fmt.Errorf("%w: audio %v", ErrUnsupportedCodec, o.Audio)
	}
	if o.Video == NoCodec && o.Audio == NoCodec {
		return errors.New("hls: a stream needs a video or an audio track")
	}
	if o.PartDuration == 0 {
		o.PartDuration = 200 * time.Millisecond
	}
	if o.SegmentDuration == 0 {
		o.SegmentDuration = time.Second
	}
	if o.SegmentCount == 0 {
		o.SegmentCount = 7
	}
	if o.KeyframeRetry == 0 {
		o.KeyframeRetry = 500 * time.Millisecond
	}
	if o.WaitTimeout == 0 {
		o.WaitTimeout = 3 * o.SegmentDuration
	}
	if o.MaxWaiting == 0 {
		o.MaxWaiting = 4096
	}
	if o.ReorderWait == 0 {
		o.ReorderWait = 40 * time.Millisecond
	}
	switch {
	case o.PartDuration < 100*time.Millisecond || o.PartDuration > time.Second:
		return fmt.Errorf("hls: part duration %v outside 100ms..1s", o.PartDuration)
	case o.SegmentDuration < 500*time.Millisecond || o.SegmentDuration > 2*time.Second:
		return fmt.Errorf("hls: segment duration %v outside 500ms..2s", o.SegmentDuration)
	case o.PartDuration >= o.SegmentDuration:
		return fmt.Errorf("hls: part duration %v not below segment duration %v", o.PartDuration, o.SegmentDuration)
	case o.SegmentCount < 7:
		return fmt.Errorf("hls: %d segments; LL-HLS needs at least 7", o.SegmentCount)
	case o.KeyframeRetry < 0 || o.WaitTimeout < 0 || o.MaxWaiting < 0:
		return errors.New("hls: negative keyframe retry, wait timeout or max waiting")
	case o.ReorderWait > time.Second:
		return fmt.Errorf("hls: reorder wait %v above 1s", o.ReorderWait)
	}
	return nil
}

// videoGrid is the step video timestamps are rounded to: 10 ms at 90 kHz.
const videoGrid = 900

// Stats counts what a Muxer has done since New.
type Stats struct {
	Packets          uint64 // RTP packets written
	Late             uint64 // packets older than one already seen, dropped
	Lost             uint64 // gaps in sequence numbers, in packets
	Frames           uint64 // video access units packaged
	Keyframes        uint64 // of which keyframes
	DroppedFrames    uint64 // video access units not packaged (holes, waiting for a keyframe)
	AudioPackets     uint64 // Opus packets packaged
	KeyframeRequests uint64 // signals sent on KeyframeWanted
	Errors           uint64 // packets or frames gohlslib refused, and its warnings (part or segment target changes iOS players dislike)
	Ignored          uint64 // packets of a codec without a track
}

// Muxer packages one stream. Create it with New; it is safe for concurrent
// use: the hub may write audio and video from different goroutines while
// any number of players read.
type Muxer struct {
	opts    Options
	mux     *gohlslib.Muxer
	video   *gohlslib.Track
	audio   *gohlslib.Track
	keyReq  chan struct{}
	waiting chan struct{} // semaphore of blocked requests
	wg      sync.WaitGroup
	done    chan struct{}

	mu       sync.Mutex // serializes writes into gohlslib and the state below
	closed   bool
	epoch    time.Time // arrival of the first packet: pts 0
	started  bool
	h264     *h264Depacketizer
	vorder   reorderBuffer // in front of h264
	depack   func(*rtp.Packet, time.Time)
	vrate    uint32 // clock rate of the video packets being depacketized
	vptsSet  bool
	lastVPTS int64 // pts of the last frame packaged, on the grid
	vclock   trackClock
	aclock   trackClock
	aseq     seqTracker
	vq       []heldFrame // video frames waiting for the audio of their time
	aptsSet  bool
	apts     int64     // pts of the last Opus packet handed to gohlslib, 90 kHz
	segStart time.Time // arrival of the keyframe that opened the segment
	segPTS   int64     // its pts, 90 kHz
	haveKey  bool      // a keyframe has been packaged
	lastAsk  time.Time // last keyframe request
	closeErr sync.Once

	hintMu sync.Mutex
	hints  map[string]hint // by gohlslib stream id (video1, audio2)

	stats struct {
		packets, late, lost, frames, keyframes, dropped, audio, keyReqs, errors, ignored atomic.Uint64
	}
}

// New starts a muxer for a stream with the tracks in o.
func New(o Options) (*Muxer, error) {
	if err := o.setDefaults(); err != nil {
		return nil, err
	}
	m := &Muxer{
		opts:    o,
		keyReq:  make(chan struct{}, 1),
		waiting: make(chan struct{}, o.MaxWaiting),
		done:    make(chan struct{}),
		hints:   make(map[string]hint),
	}
	var tracks []*gohlslib.Track
	if o.Video == H264 {
		m.video = &gohlslib.Track{Codec: &codecs.H264{}, ClockRate: 90000}
		tracks = append(tracks, m.video)
	}
	if o.Audio == Opus {
		m.audio = &gohlslib.Track{Codec: &codecs.Opus{ChannelCount: 2}, ClockRate: 48000}
		tracks = append(tracks, m.audio)
	}
	m.mux = &gohlslib.Muxer{
		Tracks:             tracks,
		Variant:            gohlslib.MuxerVariantLowLatency,
		SegmentCount:       o.SegmentCount,
		SegmentMinDuration: o.SegmentDuration,
		PartMinDuration:    o.PartDuration,
		OnEncodeError:      m.encodeError,
	}
	if err := m.mux.Start(); err != nil {
		return nil, fmt.Errorf("hls: start muxer: %w", err)
	}
	m.h264 = newH264Depacketizer(m.writeFrame)
	m.vorder.wait = o.ReorderWait
	m.depack = m.depacketize
	return m, nil
}

// KeyframeWanted receives a value whenever the muxer needs a keyframe: before
// the first one, after a lost packet, and when the current segment has
// reached SegmentDuration. The hub answers with a PLI to the publisher. The
// channel holds one pending request; signals are never blocking.
func (m *Muxer) KeyframeWanted() <-chan struct{} { return m.keyReq }

// Stats returns the counters.
func (m *Muxer) Stats() Stats {
	s := &m.stats
	return Stats{
		Packets: s.packets.Load(), Late: s.late.Load(), Lost: s.lost.Load(),
		Frames: s.frames.Load(), Keyframes: s.keyframes.Load(), DroppedFrames: s.dropped.Load(),
		AudioPackets: s.audio.Load(), KeyframeRequests: s.keyReqs.Load(),
		Errors: s.errors.Load(), Ignored: s.ignored.Load(),
	}
}

// WriteRTP packages one packet of codec, whose RTP clock runs at clockRate
// Hz, received at arrival. pkt and its payload are not kept after the call
// returns. Packets of a codec the muxer has no track for are counted and
// ignored; so are packets after Close.
func (m *Muxer) WriteRTP(codec Codec, clockRate uint32, pkt *rtp.Packet, arrival time.Time) {
	m.stats.packets.Add(1)
	if clockRate == 0 {
		m.stats.ignored.Add(1)
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	switch {
	case codec == H264 && m.video != nil:
		m.writeH264(clockRate, pkt, arrival)
	case codec == Opus && m.audio != nil:
		m.writeOpus(clockRate, pkt, arrival)
	default:
		m.stats.ignored.Add(1)
	}
}

func (m *Muxer) begin(arrival time.Time) {
	if !m.started {
		m.started = true
		m.epoch = arrival
	}
}

func (m *Muxer) writeH264(clockRate uint32, pkt *rtp.Packet, arrival time.Time) {
	m.begin(arrival)
	m.vrate = clockRate
	m.vorder.push(pkt, arrival, m.depack)
	m.videoTick(arrival)
}

// depacketize takes the video packets the reorder buffer passes on.
func (m *Muxer) depacketize(pkt *rtp.Packet, arrival time.Time) {
	if err := m.h264.push(pkt, arrival); err != nil {
		m.report(err)
	}
}

// videoTick follows up on video packets passed on or still held: it counts
// the depacketizer's findings, releases frames whose audio is in and asks
// for keyframes. Audio packets call it too, so that a gap at the end of a
// burst of video is given up on in time.
func (m *Muxer) videoTick(arrival time.Time) {
	m.vorder.expire(arrival, m.depack)
	d := m.h264
	if d.late > 0 {
		m.stats.late.Add(uint64(d.late))
		d.late = 0
	}
	if d.lost > 0 {
		m.stats.lost.Add(uint64(d.lost))
		d.lost = 0
	}
	if d.dropped > 0 {
		m.stats.dropped.Add(uint64(d.dropped))
		d.dropped = 0
	}
	m.releaseVideo(arrival)
	switch {
	case d.needKey():
		// Nothing is packaged until a keyframe: ask now, not at the end
		// of the segment.
		m.askKeyframe(arrival)
	case m.haveKey && !d.keyArriving() && arrival.Sub(m.segStart) >= m.opts.SegmentDuration:
		m.askKeyframe(arrival)
	}
}

// avHold bounds how long a video frame waits for the audio of its time
// (see releaseVideo): audio that is late by more than this, or paused (Opus
// DTX), does not hold video back.
const avHold = 100 * time.Millisecond

// heldFrame is a video access unit with its place on the time base, waiting
// in releaseVideo's queue.
type heldFrame struct {
	pts     int64
	ntp     time.Time
	nalus   [][]byte
	key     bool
	arrival time.Time
}

// writeFrame places one access unit from the depacketizer on the time base
// and queues it for releaseVideo.
func (m *Muxer) writeFrame(f *frame) {
	pts := m.vclock.pts(f.ssrc, f.timestamp, f.arrival, m.epoch, m.vrate, 90000)
	// Browsers stamp frames with their capture time, so frame durations
	// jitter by a millisecond or two. gohlslib stretches the part duration
	// until it is compatible with every distinct frame duration it has
	// seen (an iOS rule), which with jittery stamps ends near half a
	// second and doubles the players' hold-back. On a 10 ms grid a 30 fps
	// stream has two durations (30 and 40 ms) and parts stay at 200 ms.
	pts = (pts + videoGrid/2) / videoGrid * videoGrid
	if m.vptsSet && pts <= m.lastVPTS {
		pts = m.lastVPTS + videoGrid
	}
	m.vptsSet, m.lastVPTS = true, pts
	ntp := m.epoch.Add(time.Duration(pts) * time.Second / 90000)
	m.vq = append(m.vq, heldFrame{pts: pts, ntp: ntp, nalus: f.nalus, key: f.key, arrival: f.arrival})
	m.releaseVideo(f.arrival)
}

// releaseVideo hands queued video frames to gohlslib once the audio of
// their time has been handed over (or avHold has passed). gohlslib closes a
// part when the first video frame beyond it arrives, and puts into that
// part the audio it has by then; when the audio of the part's last tens of
// milliseconds comes after that, every audio part ends short of its
// announced end, and hls.js, finding its audio buffer ending inside a part
// it has loaded, stops loading audio at the next segment until the live
// edge has moved on: a stall of a second or more at segment boundaries.
// Holding video by the few tens of milliseconds the audio lags behind
// keeps both tracks' parts whole.
func (m *Muxer) releaseVideo(now time.Time) {
	n := 0
	for ; n < len(m.vq); n++ {
		f := &m.vq[n]
		if m.audio != nil && m.aptsSet && f.pts > m.apts && now.Sub(f.arrival) < avHold {
			break
		}
		m.writeVideo(f)
		*f = heldFrame{}
	}
	if n > 0 {
		m.vq = append(m.vq[:0], m.vq[n:]...)
	}
}

func (m *Muxer) writeVideo(f *heldFrame) {
	if err := m.mux.WriteH264(m.video, f.ntp, f.pts, f.nalus); err != nil {
		m.stats.errors.Add(1)
		m.report(fmt.Errorf("hls: h264 frame at pts %d: %w", f.pts, err))
		return
	}
	m.stats.frames.Add(1)
	if f.key {
		m.stats.keyframes.Add(1)
		// Mirror gohlslib's rule: a keyframe opens a segment once the
		// current one has lasted SegmentDuration.
		segTicks := ticks(m.opts.SegmentDuration, 90000)
		if !m.haveKey || f.pts-m.segPTS >= segTicks {
			m.haveKey = true
			m.segPTS = f.pts
			m.segStart = f.arrival
		}
	}
}

// askKeyframe signals KeyframeWanted unless a request is younger than
// KeyframeRetry.
func (m *Muxer) askKeyframe(arrival time.Time) {
	if !m.lastAsk.IsZero() && arrival.Sub(m.lastAsk) < m.opts.KeyframeRetry {
		return
	}
	m.lastAsk = arrival
	select {
	case m.keyReq <- struct{}{}:
		m.stats.keyReqs.Add(1)
	default: // one request is already pending
	}
}

func (m *Muxer) writeOpus(clockRate uint32, pkt *rtp.Packet, arrival time.Time) {
	m.begin(arrival)
	switch res, n := m.aseq.track(pkt.SSRC, pkt.SequenceNumber); res {
	case seqLate:
		m.stats.late.Add(1)
		return
	case seqGap:
		m.stats.lost.Add(uint64(n))
	}
	if len(pkt.Payload) == 0 {
		return
	}
	pts := m.aclock.pts(pkt.SSRC, pkt.Timestamp, arrival, m.epoch, clockRate, 48000)
	ntp := m.epoch.Add(time.Duration(pts) * time.Second / 48000)
	// gohlslib keeps the packet until the next one arrives: copy it.
	payload := append([]byte(nil), pkt.Payload...)
	if err := m.mux.WriteOpus(m.audio, ntp, pts, [][]byte{payload}); err != nil {
		m.stats.errors.Add(1)
		m.report(fmt.Errorf("hls: opus packet at %d: %w", pts, err))
		return
	}
	m.stats.audio.Add(1)
	m.aptsSet, m.apts = true, pts*90000/48000
	if m.vorder.held > 0 {
		m.videoTick(arrival)
	} else {
		m.releaseVideo(arrival)
	}
}

func (m *Muxer) encodeError(err error) {
	m.stats.errors.Add(1)
	m.report(err)
}

func (m *Muxer) report(err error) {
	if m.opts.OnError != nil {
		m.opts.OnError(err)
	}
}

// Close stops the muxer: blocked requests are answered, later packets are
// ignored and later requests get 404. Close waits for the requests it woke
// and is safe to call more than once.
func (m *Muxer) Close() error {
	m.closeErr.Do(func() {
		m.mu.Lock()
		m.closed = true
		m.mu.Unlock()
		close(m.done)
		m.mux.Close()
	})
	m.wg.Wait()
	return nil
}

var _ io.Closer = (*Muxer)(nil)
