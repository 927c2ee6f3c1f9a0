package stream

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/valyala/fasthttp"

	"hedge/internal/problem"
)

// session is one WHIP publisher or WHEP viewer: a PeerConnection and the
// resource (Location) that controls it.
type session struct {
	srv      *Server
	id       string
	stream   string
	endpoint string // "whip" or "whep"
	hub      *Hub
	pc       *webrtc.PeerConnection

	// studio published the session (WHIP): its current token controls
	// the session too.
	studio string

	mu        sync.Mutex
	etag      string
	offer     string // the remote description, for ICE restarts
	remoteUfr string
	creds     []credentialHash // what PATCH and DELETE accept (grant)

	closeOnce sync.Once
	done      chan struct{}
	onClose   []func()
	// onConnect runs once, when ICE and DTLS first complete.
	onConnect func()
	connected atomic.Bool
	media     atomic.Bool // first RTP seen (publisher)
	timers    []*time.Timer
}

func (s *Server) newSession(stream, endpoint string, hub *Hub, pc *webrtc.PeerConnection) *session {
	return &session{srv: s, id: newID(), stream: stream, endpoint: endpoint, hub: hub, pc: pc, etag: `"` + newID()[:16] + `"`, done: make(chan struct{})}
}

// close ends the session; safe to call more than once and from pion's
// callbacks.
func (x *session) close() {
	x.closeOnce.Do(func() {
		close(x.done)
		x.srv.mu.Lock()
		delete(x.srv.sessions, x.id)
		x.srv.mu.Unlock()
		x.mu.Lock()
		for _, t := range x.timers {
			t.Stop()
		}
		fns := x.onClose
		x.mu.Unlock()
		for _, f := range fns {
			f()
		}
		// Closing the PeerConnection from its own callback goroutine would
		// wait on itself; close it on a goroutine of its own.
		go func() { _ = x.pc.Close() }()
	})
}

// closeSync is close that also waits for the PeerConnection to be closed.
func (x *session) closeSync() {
	x.close()
	_ = x.pc.Close()
}

func (x *session) onCloseDo(f func()) {
	x.mu.Lock()
	x.onClose = append(x.onClose, f)
	x.mu.Unlock()
}

// register makes x one of s's sessions and starts watching its
// connection's state with the current timeouts.
func (s *Server) register(x *session) {
	s.mu.Lock()
	s.sessions[x.id] = x
	s.mu.Unlock()
	o := s.options()
	x.watchState(o.ConnectTimeout, o.MediaTimeout)
}

// watchState closes the session when its connection fails or closes, when
// its ICE and DTLS have not completed within connect (a client that
// offered and went away, or never meant to connect, holds nothing longer),
// and, for a publisher, when no media flows within media.
func (x *session) watchState(connect, media time.Duration) {
	x.pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		switch st {
		case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
			x.close()
		case webrtc.PeerConnectionStateConnected:
			// Again after an ICE restart: onConnect runs the first time only.
			if x.connected.CompareAndSwap(false, true) && x.onConnect != nil {
				x.onConnect()
			}
		}
	})
	x.mu.Lock()
	defer x.mu.Unlock()
	x.timers = append(x.timers, time.AfterFunc(connect, func() {
		if !x.connected.Load() {
			x.srv.timeouts.Add(1)
			x.srv.log.Info("stream session closed: not connected in time", "stream", x.stream, "endpoint", x.endpoint, "session", x.id, "timeout", connect)
			x.close()
		}
	}))
	if x.endpoint == "whip" {
		x.timers = append(x.timers, time.AfterFunc(media, func() {
			if !x.media.Load() {
				x.srv.log.Info("stream session closed: no media in time", "stream", x.stream, "endpoint", x.endpoint, "session", x.id)
				x.close()
			}
		}))
	}
}

// answer applies the offer, waits for the node's candidates (host ones on
// the muxed sockets: immediate) and returns the answer.
func (x *session) answer(offer []byte) (string, error) {
	if err := x.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: string(offer)}); err != nil {
		return "", err
	}
	return x.localAnswer(string(offer))
}

func (x *session) localAnswer(offer string) (string, error) {
	ans, err := x.pc.CreateAnswer(nil)
	if err != nil {
		return "", err
	}
	gathered := webrtc.GatheringCompletePromise(x.pc)
	if err := x.pc.SetLocalDescription(ans); err != nil {
		return "", err
	}
	select {
	case <-gathered:
	case <-time.After(5 * time.Second):
		return "", errors.New("ICE gathering timed out")
	}
	x.mu.Lock()
	x.offer = offer
	x.remoteUfr = iceUfrag(offer)
	x.mu.Unlock()
	return x.pc.LocalDescription().SDP, nil
}

func iceUfrag(s string) string {
	for line := range strings.SplitSeq(s, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimRight(line, "\r"), "a=ice-ufrag:"); ok {
			return v
		}
	}
	return ""
}

// created answers 201 with the SDP answer and the session resource, and,
// when token is set, the session's own token.
func (x *session) created(ctx *fasthttp.RequestCtx, answer, token string) {
	s := x.srv
	s.linkICEServers(ctx)
	ctx.Response.Header.Set("Location", s.options().Prefix+x.stream+"/"+x.endpoint+"/"+x.id)
	if token != "" {
		ctx.Response.Header.Set(SessionTokenHeader, token)
		// The token is a credential: no cache keeps it.
		ctx.Response.Header.Set("Cache-Control", "no-store")
	}
	x.mu.Lock()
	ctx.Response.Header.Set("ETag", x.etag)
	x.mu.Unlock()
	ctx.Response.Header.Set("Accept-Patch", "application/trickle-ice-sdpfrag")
	ctx.Response.Header.SetContentType("application/sdp")
	ctx.SetStatusCode(fasthttp.StatusCreated)
	ctx.SetBodyString(answer)
}

// readOffer reads a WHIP or WHEP POST's SDP offer and the codecs it
// offers; on failure it has answered.
func (s *Server) readOffer(ctx *fasthttp.RequestCtx, requestID []byte) ([]byte, map[string]bool, bool) {
	offer, ok := s.readBody(ctx, "application/sdp", requestID)
	if !ok {
		return nil, nil, false
	}
	codecs, err := offerCodecs(offer)
	if err != nil {
		problem.Write(ctx, problem.InvalidSDP, "the offer is not valid SDP with audio or video", requestID)
		return nil, nil, false
	}
	return offer, codecs, true
}

// publish serves POST /live/{stream}/whip.
func (s *Server) publish(ctx *fasthttp.RequestCtx, stream string, requestID []byte, client netip.Addr) {
	token := bearer(string(ctx.Request.Header.Peek("Authorization")))
	studio, ok := studioFor(s.options().Studios, token, stream)
	if !ok {
		// A failed attempt spends the address's budget, so guessing studio
		// tokens is throttled. A studio's own POSTs do not: a studio that
		// reconnects all its tables at once must get them all back within
		// the publisher grace.
		if !s.allowCreate(ctx, client, requestID) {
			return
		}
		problem.Write(ctx, problem.InvalidToken, "a studio token for this stream is required", requestID)
		ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="whip"`)
		return
	}
	offer, codecs, ok := s.readOffer(ctx, requestID)
	if !ok {
		return
	}
	if !publishable(codecs) {
		problem.Write(ctx, problem.NoUsableCodec, "publish H.264, VP8 or Opus", requestID)
		return
	}
	hub, err := s.hubFor(stream, true)
	if err != nil {
		problem.Write(ctx, problem.Draining, "", requestID)
		return
	}
	pc, err := s.eng.pub.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		problem.Write(ctx, problem.Internal, "", requestID)
		return
	}
	x := s.newSession(stream, "whip", hub, pc)
	x.studio = studio
	x.grant(token)
	p := &publisher{x: x, studio: studio}
	gen, err := hub.attach(p, s.options().AllowTakeover)
	if err != nil {
		_ = pc.Close()
		if errors.Is(err, ErrPublisherExists) {
			problem.Write(ctx, problem.PublisherExists, "end the current session first", requestID)
		} else {
			problem.Write(ctx, problem.StreamNotFound, "the stream ended; publish again", requestID)
		}
		return
	}
	p.gen = gen
	s.publishedHere(stream)
	hub.expectTracks(sendingSections(offer))
	x.onCloseDo(func() { hub.detach(gen) })
	pc.OnTrack(p.onTrack)
	s.register(x)
	ans, err := x.answer(offer)
	if err != nil {
		x.closeSync()
		problem.Write(ctx, problem.InvalidSDP, "the offer could not be applied", requestID)
		return
	}
	s.log.Info("stream published", "stream", stream, "studio", studio, "session", x.id)
	x.created(ctx, ans, "")
}

// publisher feeds a hub from a WHIP session.
type publisher struct {
	x      *session
	studio string
	gen    uint64
	mu     sync.Mutex
	ssrcs  []uint32 // video
}

func (p *publisher) owner() string { return "studio:" + p.studio }
func (p *publisher) close()        { p.x.close() }

func (p *publisher) requestKeyframe() {
	p.mu.Lock()
	var pkts []rtcp.Packet
	for _, s := range p.ssrcs {
		pkts = append(pkts, &rtcp.PictureLossIndication{MediaSSRC: s})
	}
	p.mu.Unlock()
	if len(pkts) > 0 {
		_ = p.x.pc.WriteRTCP(pkts)
	}
}

func (p *publisher) onTrack(remote *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
	t, err := p.x.hub.setTrack(p.gen, remote.Kind(), remote.Codec().RTPCodecCapability)
	if err != nil {
		p.x.srv.log.Warn("publisher track refused", "stream", p.x.stream, "err", err)
		p.x.close()
		return
	}
	if remote.Kind() == webrtc.RTPCodecTypeVideo {
		p.mu.Lock()
		p.ssrcs = append(p.ssrcs, uint32(remote.SSRC()))
		p.mu.Unlock()
		p.x.hub.RequestKeyframe()
	}
	go drainRTCP(recv)
	ingest(remote, func(pkts []*rtp.Packet, lag time.Duration) {
		p.x.media.Store(true)
		t.write(p.gen, pkts, lag)
	})
}

// Ingest groups: at most maxGroup packets are fanned out together, and the
// reader may run ingestQueue packets ahead of the fan-out.
const (
	maxGroup    = 32
	ingestQueue = 256
)

// ingest reads a remote track until it ends and hands fn its packets in
// groups: whatever arrived while the previous group was fanned out. A
// reader goroutine keeps reading meanwhile, so a long fan-out does not
// leave packets to overflow pion's buffers, and the more viewers a group
// goes to, the larger groups grow: each viewer then gets a group as one
// datagram train. An idle stream's packets go out one by one, at once.
// fn also learns how long the group's first packet waited: how far the
// fan-out is behind the studio.
func ingest(remote *webrtc.TrackRemote, fn func(pkts []*rtp.Packet, lag time.Duration)) {
	type slot struct {
		buf [1500]byte
		n   int
		at  time.Time
	}
	free := make(chan *slot, ingestQueue)
	full := make(chan *slot, ingestQueue)
	for range ingestQueue {
		free <- &slot{}
	}
	go func() {
		defer close(full)
		for s := range free {
			n, _, err := remote.Read(s.buf[:])
			if err != nil {
				return
			}
			s.n, s.at = n, time.Now()
			full <- s
		}
	}()
	pkts := make([]rtp.Packet, maxGroup)
	group := make([]*rtp.Packet, 0, maxGroup)
	slots := make([]*slot, 0, maxGroup)
	for s := range full {
		slots = append(slots[:0], s)
	more:
		for len(slots) < maxGroup {
			select {
			case s, ok := <-full:
				if !ok {
					break more
				}
				slots = append(slots, s)
			default:
				break more
			}
		}
		group = group[:0]
		for i, s := range slots {
			if pkts[i].Unmarshal(s.buf[:s.n]) == nil {
				group = append(group, &pkts[i])
			}
		}
		if len(group) > 0 {
			fn(group, time.Since(slots[0].at))
		}
		for _, s := range slots {
			free <- s
		}
	}
}

// drainRTCP reads a receiver's RTCP (sender reports) so the interceptors
// see it; it returns when the PeerConnection closes.
func drainRTCP(recv *webrtc.RTPReceiver) {
	buf := make([]byte, 1500)
	for {
		if _, _, err := recv.Read(buf); err != nil {
			return
		}
	}
}

// play serves POST /live/{stream}/whep.
func (s *Server) play(ctx *fasthttp.RequestCtx, stream string, requestID []byte, client netip.Addr) {
	isRelay := len(ctx.Request.Header.Peek(relayHeader)) > 0
	tok := credential(ctx)
	// trusted: another region's edge, proven by a relay token signed with
	// the deployment's viewer token key. It feeds a whole region, so no
	// cap, fan-out protection or address limit refuses it.
	trusted := false
	key := s.options().ViewerTokenKey
	if len(key) > 0 {
		trusted = isRelay && verifyRelayToken(key, tok, stream, time.Now())
	}
	if !trusted && !s.allowCreate(ctx, client, requestID) {
		return
	}
	if len(key) > 0 && !trusted {
		if err := VerifyViewerToken(key, tok, stream, time.Now()); err != nil {
			problem.Write(ctx, problem.InvalidToken, err.Error(), requestID)
			ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="whep"`)
			return
		}
	}
	offer, codecs, ok := s.readOffer(ctx, requestID)
	if !ok {
		return
	}
	hub, _ := s.hubFor(stream, false)
	if isRelay {
		// Another region's relay: only a stream published here will do.
		if hub != nil && s.isRelay(stream) {
			hub = nil
		}
	} else if hub == nil {
		hub = s.startRelay(stream)
	}
	if hub == nil {
		problem.Write(ctx, problem.StreamNotFound, "no stream "+stream+" is live", requestID)
		return
	}
	wait, cancel := context.WithTimeout(context.Background(), s.options().Relay.ReadyTimeout)
	defer cancel()
	select {
	case <-hub.Ready():
	case <-wait.Done():
		problem.Write(ctx, problem.StreamNotFound, "stream "+stream+" has no media yet", requestID)
		return
	}
	tracks := hub.Tracks()
	var caps []webrtc.RTPCodecCapability
	for _, t := range tracks {
		caps = append(caps, t.Codec())
	}
	if !playable(codecs, caps) {
		problem.Write(ctx, problem.NoUsableCodec, "the stream is "+codecList(caps), requestID)
		return
	}
	slot, why := s.admitViewer(hub, trusted, client)
	if slot == nil {
		s.refuseViewer(ctx, stream, why, requestID)
		return
	}
	api, err := s.eng.viewerAPI(caps)
	if err != nil {
		slot.release()
		problem.Write(ctx, problem.Internal, "", requestID)
		return
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		slot.release()
		problem.Write(ctx, problem.Internal, "", requestID)
		return
	}
	x := s.newSession(stream, "whep", hub, pc)
	v := &viewer{x: x}
	slot.reader = v
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: string(offer)}); err != nil {
		_ = pc.Close()
		slot.release()
		problem.Write(ctx, problem.InvalidSDP, "the offer could not be applied", requestID)
		return
	}
	for _, t := range tracks {
		vt := &viewerTrack{kind: t.Kind(), codec: t.Codec(), id: t.Kind().String(), streamID: stream}
		sender, err := pc.AddTrack(vt)
		if err != nil {
			continue
		}
		v.tracks[kindIndex(t.Kind())] = vt
		go v.readRTCP(sender, vt, t)
	}
	sessionToken := newSessionToken()
	x.grant(sessionToken)
	if len(key) > 0 {
		x.grant(tok) // the viewer (or relay) token that created it
	}
	// The viewer reads the stream, and counts against the caps, once its
	// ICE and DTLS complete; until then it only holds a connecting slot.
	x.onConnect = func() {
		if slot.connect() {
			return
		}
		if hub.Ended() {
			s.log.Info("stream viewer closed: the stream ended while it connected", "stream", stream, "session", x.id)
		} else {
			s.log.Info("stream viewer closed: the viewer caps filled while it connected", "stream", stream, "session", x.id)
		}
		x.close()
	}
	x.onCloseDo(slot.release)
	s.register(x)
	ans, err := x.localAnswer(string(offer))
	if err != nil {
		x.closeSync()
		problem.Write(ctx, problem.InvalidSDP, "the offer could not be answered", requestID)
		return
	}
	x.created(ctx, ans, sessionToken)
}

func codecList(cs []webrtc.RTPCodecCapability) string {
	var n []string
	for _, c := range cs {
		n = append(n, c.MimeType)
	}
	return strings.Join(n, " + ")
}

// viewer is a WHEP session reading a hub.
type viewer struct {
	x      *session
	tracks [2]*viewerTrack
}

// OnRTP sends the group back to back: the node's socket turns it into one
// datagram train to this viewer.
func (v *viewer) OnRTP(t *Track, pkts []*rtp.Packet) {
	if vt := v.tracks[kindIndex(t.kind)]; vt != nil {
		for _, pkt := range pkts {
			vt.send(pkt)
		}
	}
}

func (v *viewer) StreamEnded() { v.x.close() }

// readRTCP answers the viewer's NACKs from the stream's cache and turns its
// PLIs and FIRs into (rate-limited) keyframe requests.
func (v *viewer) readRTCP(sender *webrtc.RTPSender, vt *viewerTrack, t *Track) {
	var pkt rtp.Packet
	var buf []byte
	for {
		pkts, _, err := sender.ReadRTCP()
		if err != nil {
			return
		}
		for _, p := range pkts {
			switch p := p.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				v.x.hub.RequestKeyframe()
			case *rtcp.TransportLayerNack:
				for _, n := range p.Nacks {
					for _, seq := range n.PacketList() {
						var ok bool
						if buf, ok = t.cache.get(seq, &pkt, buf); ok {
							vt.send(&pkt)
							vt.resent.Add(1)
						}
					}
				}
			}
		}
	}
}

// viewerTrack is one track of one viewer: the stream's packets with the
// viewer's SSRC and payload type.
type viewerTrack struct {
	kind     webrtc.RTPCodecType
	codec    webrtc.RTPCodecCapability
	id       string
	streamID string

	w      atomic.Pointer[boundWriter]
	resent atomic.Uint64
}

type boundWriter struct {
	w    webrtc.TrackLocalWriter
	ssrc uint32
	pt   uint8
}

func (vt *viewerTrack) send(pkt *rtp.Packet) {
	b := vt.w.Load()
	if b == nil {
		return
	}
	h := pkt.Header
	h.SSRC = b.ssrc
	h.PayloadType = b.pt
	_, _ = b.w.WriteRTP(&h, pkt.Payload)
}

// Bind picks the negotiated codec matching the stream's.
func (vt *viewerTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	for _, c := range ctx.CodecParameters() {
		if equalFoldASCII(c.MimeType, vt.codec.MimeType) {
			vt.w.Store(&boundWriter{w: ctx.WriteStream(), ssrc: uint32(ctx.SSRC()), pt: uint8(c.PayloadType)})
			return c, nil
		}
	}
	return webrtc.RTPCodecParameters{}, webrtc.ErrUnsupportedCodec
}

func (vt *viewerTrack) Unbind(webrtc.TrackLocalContext) error {
	vt.w.Store(nil)
	return nil
}

func (vt *viewerTrack) ID() string                { return vt.id }
func (vt *viewerTrack) RID() string               { return "" }
func (vt *viewerTrack) StreamID() string          { return vt.streamID }
func (vt *viewerTrack) Kind() webrtc.RTPCodecType { return vt.kind }

// patch serves PATCH on a session: trickled candidates, or an ICE restart
// when the fragment carries new credentials (RFC 9725 §4.3).
func (x *session) patch(ctx *fasthttp.RequestCtx, requestID []byte) {
	body, ok := x.srv.readBody(ctx, "application/trickle-ice-sdpfrag", requestID)
	if !ok {
		return
	}
	x.mu.Lock()
	etag, offer, ufrag := x.etag, x.offer, x.remoteUfr
	x.mu.Unlock()
	if m := string(ctx.Request.Header.Peek("If-Match")); m != "" && m != "*" && m != etag {
		problem.Write(ctx, problem.PreconditionFailed, "", requestID)
		return
	}
	f, err := parseFrag(body)
	if err != nil {
		problem.Write(ctx, problem.InvalidSDP, "the body is not a trickle-ICE SDP fragment", requestID)
		return
	}
	if f.ufrag != "" && f.ufrag != ufrag {
		next := withICECredentials(offer, f.ufrag, f.pwd)
		if err := x.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: next}); err != nil {
			problem.Write(ctx, problem.InvalidSDP, "the ICE restart could not be applied", requestID)
			return
		}
		ans, err := x.localAnswer(next)
		if err != nil {
			problem.Write(ctx, problem.Internal, "", requestID)
			return
		}
		for _, c := range f.cands {
			_ = x.pc.AddICECandidate(c)
		}
		x.mu.Lock()
		x.etag = `"` + newID()[:16] + `"`
		etag = x.etag
		x.mu.Unlock()
		ctx.Response.Header.Set("ETag", etag)
		ctx.Response.Header.SetContentType("application/trickle-ice-sdpfrag")
		ctx.SetStatusCode(fasthttp.StatusOK)
		ctx.SetBodyString(answerFrag(ans))
		return
	}
	for _, c := range f.cands {
		if err := x.pc.AddICECandidate(c); err != nil {
			problem.Write(ctx, problem.InvalidSDP, "a candidate could not be added", requestID)
			return
		}
	}
	ctx.SetStatusCode(fasthttp.StatusNoContent)
}
