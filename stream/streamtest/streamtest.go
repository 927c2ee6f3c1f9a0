// Package streamtest holds what the tests of the live-stream code share:
// pion peers on loopback, offers with their candidates, a studio and a
// player whose RTP payloads carry a counter, and a studio that publishes
// package hls's H.264 sample over WHIP. Only tests import it.
package streamtest

import (
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"

	"hedge/internal/h264"
	"hedge/internal/tick"
)

// H264Fmtp is the H.264 profile browsers offer for a live table
// (constrained baseline 3.1, packetization mode 1).
const H264Fmtp = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"

// SettingEngine is for test peers: UDP over IPv4 on loopback only, no
// mDNS candidates. Callers may adjust their copy.
func SettingEngine() webrtc.SettingEngine {
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	return se
}

// DefaultAPI is a pion API with pion's default codecs and no interceptors,
// on loopback (SettingEngine).
func DefaultAPI(t testing.TB) *webrtc.API {
	t.Helper()
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(SettingEngine()))
}

// Offer creates pc's offer, sets it and waits (up to 5 s) for all its
// candidates: the SDP a WHIP or WHEP client posts.
func Offer(t testing.TB, pc *webrtc.PeerConnection) string {
	t.Helper()
	return OfferWith(t, pc, nil)
}

// OfferWith is Offer with options (an ICE restart's offer).
func OfferWith(t testing.TB, pc *webrtc.PeerConnection, opts *webrtc.OfferOptions) string {
	t.Helper()
	off, err := pc.CreateOffer(opts)
	if err != nil {
		t.Fatal(err)
	}
	g := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(off); err != nil {
		t.Fatal(err)
	}
	select {
	case <-g:
	case <-time.After(5 * time.Second):
		t.Fatal("ICE gathering timed out")
	}
	return pc.LocalDescription().SDP
}

// Frames splits an Annex-B H.264 file (package hls's testdata/sample.h264)
// into access units, one slice per frame.
func Frames(t testing.TB, path string) [][]byte {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return h264.AccessUnits(raw)
}

// sending is what both kinds of publisher are made of: the peer, the
// count of keyframe requests (PLIs) its senders read, and the goroutines
// that Close stops.
type sending struct {
	PC   *webrtc.PeerConnection
	plis atomic.Int64
	stop chan struct{}
	once sync.Once
	wg   sync.WaitGroup
}

// open makes the publisher's peer with api, closed at the end of the test.
func (s *sending) open(t testing.TB, api *webrtc.API) {
	t.Helper()
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	s.PC, s.stop = pc, make(chan struct{})
	t.Cleanup(s.Close)
}

// sendTrack adds tr to the peer, sendonly, and counts the keyframe
// requests that come back for it.
func (s *sending) sendTrack(t testing.TB, tr webrtc.TrackLocal) {
	t.Helper()
	tc, err := s.PC.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	if err != nil {
		t.Fatal(err)
	}
	s.countPLIs(tc.Sender())
}

// countPLIs reads the RTCP that arrives for sender until the peer closes,
// counting keyframe requests.
func (s *sending) countPLIs(sender *webrtc.RTPSender) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			pkts, _, err := sender.ReadRTCP()
			if err != nil {
				return
			}
			for _, x := range pkts {
				if _, ok := x.(*rtcp.PictureLossIndication); ok {
					s.plis.Add(1)
				}
			}
		}
	}()
}

// PLIs is how many keyframe requests the publisher has had.
func (s *sending) PLIs() int64 { return s.plis.Load() }

// Close stops sending and closes the peer; it may be called again.
func (s *sending) Close() {
	s.once.Do(func() {
		close(s.stop)
		_ = s.PC.Close()
		s.wg.Wait()
	})
}

// SamplePublisher is a studio publishing access units over WHIP in a loop
// at 30 fps, counting the keyframe requests (PLIs) it gets.
type SamplePublisher struct {
	sending
}

// PublishSample publishes aus (from Frames) through the WHIP endpoint whip
// with studio token token, looping from access unit first, until Close or
// the end of the test.
func PublishSample(t testing.TB, api *webrtc.API, whip, token string, aus [][]byte, first int) *SamplePublisher {
	t.Helper()
	p := &SamplePublisher{}
	p.open(t, api)
	video, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
		SDPFmtpLine: H264Fmtp}, "video", "studio")
	if err != nil {
		t.Fatal(err)
	}
	p.sendTrack(t, video)
	req, err := http.NewRequest("POST", whip, strings.NewReader(Offer(t, p.PC)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/sdp")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("WHIP %s: expected 201, got %d: %s", whip, resp.StatusCode, body)
	}
	if err := p.PC.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(body)}); err != nil {
		t.Fatal(err)
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		i := first
		tick.Every(p.stop, time.Second/30, func(time.Time) {
			_ = video.WriteSample(media.Sample{Data: aus[i%len(aus)], Duration: time.Second / 30})
			i++
		})
	}()
	return p
}

// Publisher is a studio sending a synthetic H.264 + Opus stream whose
// payloads carry a counter, so that receivers can check content, not just
// sequence numbers. It counts the keyframe requests (PLIs) it gets.
type Publisher struct {
	sending
	video *webrtc.TrackLocalStaticRTP
	audio *webrtc.TrackLocalStaticRTP
	sent  atomic.Uint32 // video counter
}

// NewPublisher makes a publisher's peer with api, its sendonly video and
// audio tracks added; the caller makes the offer (Offer) and sets the
// answer. It is closed at the end of the test.
func NewPublisher(t testing.TB, api *webrtc.API) *Publisher {
	t.Helper()
	p := &Publisher{}
	p.open(t, api)
	p.video, _ = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000, SDPFmtpLine: H264Fmtp}, "video", "studio")
	p.audio, _ = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "studio")
	p.sendTrack(t, p.video)
	p.sendTrack(t, p.audio)
	return p
}

// Send starts sending: video every 10ms, audio every 20ms, from counter
// start; video timestamps advance 900 per packet.
func (p *Publisher) Send(start uint32) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		seq := uint16(start * 7) // arbitrary start, differs per publisher
		i := start
		tick.Every(p.stop, 10*time.Millisecond, func(time.Time) {
			payload := make([]byte, 200)
			binary.BigEndian.PutUint32(payload, i)
			_ = p.video.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: i * 900, Marker: true}, Payload: payload})
			if i%2 == 0 {
				_ = p.audio.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq / 2, Timestamp: i * 480}, Payload: payload[:40]})
			}
			p.sent.Store(i)
			seq++
			i++
		})
	}()
}

// Sent is the counter of the last video packet sent.
func (p *Publisher) Sent() uint32 { return p.sent.Load() }

// Viewer is a player's peer that records what arrives: the video packets
// (headers and the counter, Counter) and how many audio packets.
type Viewer struct {
	PC    *webrtc.PeerConnection
	mu    sync.Mutex
	video []rtp.Packet // headers + first 4 payload bytes
	audio int
	ssrc  atomic.Uint32
	wg    sync.WaitGroup
}

// NewViewer makes a viewer's peer with api, receiving video and audio; the
// caller makes the offer (Offer) and sets the answer. It is closed at the
// end of the test.
func NewViewer(t testing.TB, api *webrtc.API) *Viewer {
	t.Helper()
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	v := &Viewer{PC: pc}
	t.Cleanup(v.Close)
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
	return v
}

// Close closes the peer and waits for its track readers; it may be called
// again.
func (v *Viewer) Close() { _ = v.PC.Close(); v.wg.Wait() }

// Snapshot returns the video packets and the count of audio packets so far.
func (v *Viewer) Snapshot() ([]rtp.Packet, int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]rtp.Packet(nil), v.video...), v.audio
}

// SSRC is the SSRC of the video track received, 0 before it arrives.
func (v *Viewer) SSRC() uint32 { return v.ssrc.Load() }

// Counter is the counter a Publisher put in a video packet.
func Counter(p rtp.Packet) uint32 { return binary.BigEndian.Uint32(p.Payload) }
