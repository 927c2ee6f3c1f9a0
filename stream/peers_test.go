package stream

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/valyala/fasthttp"

	"hedge/stream/streamtest"
)

// Test peers are real pion PeerConnections on loopback, talking to a real
// Server behind a real fasthttp listener.

type testNode struct {
	t    *testing.T
	srv  *Server
	base string // http://127.0.0.1:port/live/
	ln   net.Listener
	http *fasthttp.Server
}

func startNode(t *testing.T, opts Options) *testNode {
	t.Helper()
	if opts.ICE.UDP == "" {
		opts.ICE.UDP = "127.0.0.1:0"
	}
	opts.ICE.Loopback = true
	if opts.Studios == nil {
		opts.Studios = []Studio{{Name: "demo", Token: "demo-studio", Streams: []string{"*"}}}
	}
	srv, err := NewServer(opts)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { srv.Handle(ctx, []byte("req-1")) }, MaxRequestBodySize: 1 << 20}
	go func() { _ = hs.Serve(ln) }()
	n := &testNode{t: t, srv: srv, base: "http://" + ln.Addr().String() + "/live/", ln: ln, http: hs}
	t.Cleanup(n.stop)
	return n
}

func (n *testNode) stop() {
	_ = n.http.Shutdown()
	_ = n.srv.Close()
}

// clientAPI is a pion API for test peers: loopback only, no mDNS.
func clientAPI(t *testing.T, withNack bool, codecs ...webrtc.RTPCodecParameters) *webrtc.API {
	t.Helper()
	m := &webrtc.MediaEngine{}
	if len(codecs) == 0 {
		codecs = []webrtc.RTPCodecParameters{
			{PayloadType: 102, RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000, SDPFmtpLine: streamtest.H264Fmtp, RTCPFeedback: videoFeedback}},
			{PayloadType: 111, RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}},
		}
	}
	for _, c := range codecs {
		kind := webrtc.RTPCodecTypeVideo
		if strings.HasPrefix(strings.ToLower(c.MimeType), "audio/") {
			kind = webrtc.RTPCodecTypeAudio
		}
		if err := m.RegisterCodec(c, kind); err != nil {
			t.Fatal(err)
		}
	}
	ir := &interceptor.Registry{}
	if withNack {
		if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
			t.Fatal(err)
		}
	}
	se := streamtest.SettingEngine()
	// Retransmissions repeat sequence numbers the viewer may have seen.
	se.DisableSRTPReplayProtection(true)
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
}

type httpResult struct {
	status int
	header http.Header
	body   string
}

func do(t *testing.T, method, url, ctype, auth string, body []byte, hdr ...string) httpResult {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	c := &http.Client{Timeout: 15 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return httpResult{resp.StatusCode, resp.Header, string(b)}
}

// testPublisher sends a synthetic H.264 + Opus stream whose payloads carry
// a counter, so receivers can check content, not just sequence numbers.
type testPublisher struct {
	t        *testing.T
	pc       *webrtc.PeerConnection
	video    *webrtc.TrackLocalStaticRTP
	audio    *webrtc.TrackLocalStaticRTP
	location string
	plis     atomic.Int64
	stop     chan struct{}
	wg       sync.WaitGroup
	sent     atomic.Uint32 // video counter
}

func newPublisher(t *testing.T, n *testNode, stream, token string) (*testPublisher, httpResult) {
	t.Helper()
	pc, err := clientAPI(t, true).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	p := &testPublisher{t: t, pc: pc, stop: make(chan struct{})}
	p.video, _ = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000, SDPFmtpLine: streamtest.H264Fmtp}, "video", "studio")
	p.audio, _ = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "studio")
	for _, tr := range []*webrtc.TrackLocalStaticRTP{p.video, p.audio} {
		tc, err := pc.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			t.Fatal(err)
		}
		sender := tc.Sender()
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for {
				pkts, _, err := sender.ReadRTCP()
				if err != nil {
					return
				}
				for _, x := range pkts {
					if _, ok := x.(*rtcp.PictureLossIndication); ok {
						p.plis.Add(1)
					}
				}
			}
		}()
	}
	res := do(t, "POST", n.base+stream+"/whip", "application/sdp", token, []byte(streamtest.Offer(t, pc)))
	if res.status != http.StatusCreated {
		_ = pc.Close()
		return nil, res
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: res.body}); err != nil {
		t.Fatal(err)
	}
	p.location = res.header.Get("Location")
	t.Cleanup(p.close)
	return p, res
}

// send starts sending: video every 10ms, audio every 20ms, from counter
// start; video timestamps advance 900 per packet.
func (p *testPublisher) send(start uint32) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		seq := uint16(start * 7) // arbitrary start, differs per publisher
		for i := start; ; i++ {
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
			payload := make([]byte, 200)
			binary.BigEndian.PutUint32(payload, i)
			_ = p.video.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: i * 900, Marker: true}, Payload: payload})
			if i%2 == 0 {
				_ = p.audio.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq / 2, Timestamp: i * 480}, Payload: payload[:40]})
			}
			p.sent.Store(i)
			seq++
		}
	}()
}

func (p *testPublisher) close() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	_ = p.pc.Close()
	p.wg.Wait()
}

// testViewer plays a stream and records what arrives.
type testViewer struct {
	pc       *webrtc.PeerConnection
	location string
	mu       sync.Mutex
	video    []rtp.Packet // headers + first 4 payload bytes
	audio    int
	ssrc     atomic.Uint32
	wg       sync.WaitGroup
}

func newViewer(t *testing.T, n *testNode, stream string, hdr ...string) (*testViewer, httpResult) {
	t.Helper()
	pc, err := clientAPI(t, false).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	v := &testViewer{pc: pc}
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		v.wg.Add(1)
		defer v.wg.Done()
		if tr.Kind() == webrtc.RTPCodecTypeVideo {
			v.ssrc.Store(uint32(tr.SSRC()))
		}
		for {
			pkt, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			v.mu.Lock()
			if tr.Kind() == webrtc.RTPCodecTypeVideo {
				pkt.Payload = append([]byte(nil), pkt.Payload[:4]...)
				v.video = append(v.video, *pkt)
			} else {
				v.audio++
			}
			v.mu.Unlock()
		}
	})
	res := do(t, "POST", n.base+stream+"/whep", "application/sdp", "", []byte(streamtest.Offer(t, pc)), hdr...)
	if res.status != http.StatusCreated {
		_ = pc.Close()
		return nil, res
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: res.body}); err != nil {
		t.Fatal(err)
	}
	v.location = res.header.Get("Location")
	t.Cleanup(v.close)
	return v, res
}

func (v *testViewer) close() { _ = v.pc.Close(); v.wg.Wait() }

func (v *testViewer) snapshot() ([]rtp.Packet, int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]rtp.Packet(nil), v.video...), v.audio
}

func counter(p rtp.Packet) uint32 { return binary.BigEndian.Uint32(p.Payload) }

// waitFor polls cond every 20ms until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func problemType(body string) string {
	const k = `"type":"`
	i := strings.Index(body, k)
	if i < 0 {
		return fmt.Sprintf("(no type in %q)", body)
	}
	rest := body[i+len(k):]
	return rest[:strings.IndexByte(rest, '"')]
}
