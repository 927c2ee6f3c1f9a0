package stream

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// RelayOptions tune pulls of streams published in another region.
type RelayOptions struct {
	// Peers are the stream URL prefixes of other regions' edges
	// ("https://edge.eu.example/live/"); a stream not published here is
	// pulled over WHEP from the first of them that has it.
	Peers []string
	// Client makes the WHEP requests; needed with Peers.
	Client *http.Client
	// ReadyTimeout bounds how long a WHEP request waits for a stream's
	// first track (a relay being set up, a publisher about to send).
	ReadyTimeout time.Duration
	// Grace keeps a pull running after its last local viewer leaves, so a
	// viewer who reloads finds it still there.
	Grace time.Duration
	// MinBackoff and MaxBackoff bound the retries of a pull that broke.
	MinBackoff, MaxBackoff time.Duration
	// NotFoundTTL: once every peer has answered a new pull that it does
	// not have the stream (404), the pull ends at once, so its waiting
	// requests answer 404 instead of waiting ReadyTimeout, and for this long
	// requests for the stream answer 404 without asking the peers again
	// (0 or negative: ask every time). A stream that starts in another
	// region is found at most this much later.
	NotFoundTTL time.Duration
}

// relayHeader marks a relay's WHEP request: the origin serves it only from a
// stream published there, never from a relay of its own (no loops).
const relayHeader = "X-Hedge-Relay"

// notFound remembers, for RelayOptions.NotFoundTTL, the streams that no
// peer had when a pull asked, so a player polling a stream that is live
// nowhere does not start a pull (a PeerConnection and a request to every
// peer) on each request. Bounded: expired entries go when it grows, and
// past notFoundMax names nothing more is remembered.
type notFound struct {
	mu    sync.Mutex
	until map[string]time.Time
}

const notFoundMax = 4096

func (n *notFound) add(stream string, until time.Time) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.until == nil {
		n.until = map[string]time.Time{}
	}
	if len(n.until) >= notFoundMax/2 {
		now := time.Now()
		for k, t := range n.until {
			if now.After(t) {
				delete(n.until, k)
			}
		}
	}
	if len(n.until) < notFoundMax {
		n.until[stream] = until
	}
}

func (n *notFound) has(stream string, now time.Time) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	t, ok := n.until[stream]
	if ok && now.After(t) {
		delete(n.until, stream)
		return false
	}
	return ok
}

// relay pulls one stream from another region's edge into a local hub,
// once, however many local viewers watch it.
type relay struct {
	s      *Server
	stream string
	hub    *Hub

	ctx      context.Context
	cancel   context.CancelFunc
	done     chan struct{}
	stopOnce sync.Once

	mu        sync.Mutex
	idle      *time.Timer
	lastLeave time.Time

	pulls atomic.Int64 // successful connections, for tests and status
	// nowhere: the first pass over the peers found the stream on none;
	// set before done closes.
	nowhere bool
}

// startRelay returns the hub of a stream pulled from another region, or nil
// when there are no peers or they just said they do not have it.
func (s *Server) startRelay(stream string) *Hub {
	o := s.options()
	if len(o.Relay.Peers) == 0 || s.notFound.has(stream, time.Now()) {
		return nil
	}
	hub, err := s.hubFor(stream, true)
	if err != nil {
		return nil
	}
	s.mu.Lock()
	if r := s.relays[stream]; r != nil || hub.Live() {
		s.mu.Unlock()
		return hub
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &relay{s: s, stream: stream, hub: hub, ctx: ctx, cancel: cancel, done: make(chan struct{})}
	s.relays[stream] = r
	s.mu.Unlock()
	s.log.Info("stream relay started", "stream", stream)
	go func() {
		r.run()
		if r.nowhere {
			r.endNowhere()
		}
	}()
	// A pull nobody ends up watching stops too, counted from when the
	// viewer who started it has stopped waiting for the stream's tracks.
	r.mu.Lock()
	r.lastLeave = time.Now().Add(o.Relay.ReadyTimeout)
	r.idle = time.AfterFunc(o.Relay.ReadyTimeout+o.Relay.Grace, r.checkIdle)
	r.mu.Unlock()
	return hub
}

// viewerLeft lets the stream's relay, if any, count down to stopping.
func (s *Server) viewerLeft(stream string) {
	s.mu.Lock()
	r := s.relays[stream]
	s.mu.Unlock()
	if r != nil {
		r.viewerLeft()
	}
}

func (s *Server) isRelay(stream string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.relays[stream] != nil
}

func (r *relay) viewerLeft() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lastLeave = time.Now()
	if r.idle != nil {
		r.idle.Stop()
	}
	r.idle = time.AfterFunc(r.s.options().Relay.Grace, r.checkIdle)
}

func (r *relay) checkIdle() {
	r.mu.Lock()
	left := r.s.options().Relay.Grace - time.Since(r.lastLeave)
	if r.hub.Viewers() > 0 || r.hub.connecting.Load() > 0 {
		r.idle = nil
		r.mu.Unlock()
		return
	}
	if left > 0 {
		r.idle = time.AfterFunc(left, r.checkIdle)
		r.mu.Unlock()
		return
	}
	r.idle = nil
	r.mu.Unlock()
	r.s.log.Info("stream relay stopped: no local viewers", "stream", r.stream)
	r.stop()
	if !r.hub.publishedHere() {
		r.hub.end()
	}
}

// stop ends the pull and waits for it; safe to call more than once.
func (r *relay) stop() {
	r.stopOnce.Do(func() {
		r.cancel()
		<-r.done
		r.mu.Lock()
		if r.idle != nil {
			r.idle.Stop()
		}
		r.mu.Unlock()
		r.s.mu.Lock()
		if r.s.relays[r.stream] == r {
			delete(r.s.relays, r.stream)
		}
		r.s.mu.Unlock()
	})
}

// endNowhere ends a pull whose peers all said they do not have the
// stream: the hub ends (unless a studio has started publishing it here),
// which answers the requests waiting for it, and the stream is remembered
// as not found for NotFoundTTL.
func (r *relay) endNowhere() {
	s := r.s
	if ttl := s.options().Relay.NotFoundTTL; ttl > 0 {
		s.notFound.add(r.stream, time.Now().Add(ttl))
	}
	s.log.Info("stream relay stopped: no region has the stream", "stream", r.stream)
	r.stop()
	if !r.hub.publishedHere() {
		r.hub.end()
	}
}

func (r *relay) run() {
	defer close(r.done)
	o := r.s.options().Relay
	backoff := o.MinBackoff
	for {
		connected, nowhere := r.pull()
		if connected {
			backoff = o.MinBackoff
		}
		if nowhere && r.pulls.Load() == 0 && r.ctx.Err() == nil {
			r.nowhere = true
			return
		}
		if r.ctx.Err() != nil || r.hub.Ended() {
			return
		}
		select {
		case <-r.ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, o.MaxBackoff)
	}
}

// pull connects to the first peer that has the stream and feeds the hub
// until the connection breaks or the relay stops. It reports whether it
// connected, and whether every peer answered that it does not have the
// stream (404; a peer that could not be asked leaves the question open).
func (r *relay) pull() (connected, nowhere bool) {
	peers := r.s.options().Relay.Peers
	missing := 0
	for _, peer := range peers {
		if r.ctx.Err() != nil {
			return false, false
		}
		switch r.pullFrom(strings.TrimSuffix(peer, "/") + "/" + r.stream + "/whep") {
		case pullConnected:
			return true, false
		case pullNotFound:
			missing++
		}
	}
	return false, missing == len(peers)
}

// What one pull attempt found.
type pullResult uint8

const (
	pullFailed    pullResult = iota // the peer could not be asked, or the connection failed
	pullNotFound                    // the peer answered 404: it does not have the stream
	pullConnected                   // connected, fed the hub until the connection broke or the relay stopped
)

func (r *relay) pullFrom(url string) pullResult {
	s := r.s
	pc, err := s.eng.pub.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return pullFailed
	}
	defer pc.Close()
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			return pullFailed
		}
	}
	broken := make(chan struct{})
	var brokeOnce sync.Once
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		if st == webrtc.PeerConnectionStateFailed || st == webrtc.PeerConnectionStateClosed || st == webrtc.PeerConnectionStateDisconnected {
			brokeOnce.Do(func() { close(broken) })
		}
	})
	src := &relaySource{pc: pc}
	var gen atomic.Uint64
	pc.OnTrack(func(remote *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
		g := gen.Load()
		t, err := r.hub.setTrack(g, remote.Kind(), remote.Codec().RTPCodecCapability)
		if err != nil {
			brokeOnce.Do(func() { close(broken) })
			return
		}
		if remote.Kind() == webrtc.RTPCodecTypeVideo {
			src.videoSSRC.Store(uint32(remote.SSRC()))
			r.hub.RequestKeyframe()
		}
		go drainRTCP(recv)
		ingest(remote, func(pkts []*rtp.Packet, lag time.Duration) { t.write(g, pkts, lag) })
	})
	off, err := pc.CreateOffer(nil)
	if err != nil {
		return pullFailed
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(off); err != nil {
		return pullFailed
	}
	select {
	case <-gathered:
	case <-r.ctx.Done():
		return pullFailed
	}
	req, err := http.NewRequestWithContext(r.ctx, http.MethodPost, url, bytes.NewReader([]byte(pc.LocalDescription().SDP)))
	if err != nil {
		return pullFailed
	}
	req.Header.Set("Content-Type", "application/sdp")
	req.Header.Set(relayHeader, "1")
	o := s.options()
	if len(o.ViewerTokenKey) > 0 {
		// A relay token: the origin lets it past its viewer caps.
		req.Header.Set("Authorization", "Bearer "+SignViewerToken(o.ViewerTokenKey, relayTokenName(r.stream), time.Now().Add(time.Minute)))
	}
	if o.Relay.Client == nil {
		return pullFailed // relaying was turned off
	}
	resp, err := o.Relay.Client.Do(req)
	if err != nil {
		return pullFailed
	}
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, int64(o.MaxBodyBytes)))
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusCreated:
	case http.StatusNotFound:
		return pullNotFound
	default:
		return pullFailed
	}
	location, token := resp.Header.Get("Location"), resp.Header.Get(SessionTokenHeader)
	g, err := r.hub.attach(src, true)
	if err != nil {
		return pullFailed
	}
	gen.Store(g)
	r.hub.expectTracks(sendingSections(answer))
	defer r.hub.detach(g)
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(answer)}); err != nil {
		return pullFailed
	}
	r.pulls.Add(1)
	s.log.Info("stream relay connected", "stream", r.stream, "origin", url)
	select {
	case <-broken:
		s.log.Warn("stream relay broke; retrying", "stream", r.stream, "origin", url)
	case <-r.ctx.Done():
		r.deleteSession(url, location, token)
	}
	return pullConnected
}

// deleteSession ends the relay's session at the origin with the session's
// token (best effort; the origin also notices the connection close).
func (r *relay) deleteSession(whepURL, location, token string) {
	if location == "" {
		return
	}
	u := location
	if strings.HasPrefix(location, "/") {
		if i := strings.Index(whepURL, "://"); i >= 0 {
			if j := strings.IndexByte(whepURL[i+3:], '/'); j >= 0 {
				u = whepURL[:i+3+j] + location
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, u, nil)
	if err != nil {
		return
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	// No client: relaying was turned off since the pull started.
	if c := r.s.options().Relay.Client; c != nil {
		if resp, err := c.Do(req); err == nil {
			resp.Body.Close()
		}
	}
}

// relaySource is the hub's source while a pull is connected.
type relaySource struct {
	pc        *webrtc.PeerConnection
	videoSSRC atomic.Uint32
}

func (rs *relaySource) owner() string { return "relay" }
func (rs *relaySource) close()        { go func() { _ = rs.pc.Close() }() }
func (rs *relaySource) requestKeyframe() {
	if ssrc := rs.videoSSRC.Load(); ssrc != 0 {
		_ = rs.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}})
	}
}
