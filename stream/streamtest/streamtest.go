// Package streamtest holds what the tests of the live-stream code share:
// pion peers on loopback, offers with their candidates, and a studio that
// publishes package hls's H.264 sample over WHIP. Only tests import it.
package streamtest

import (
	"bytes"
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
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
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
	off, err := pc.CreateOffer(nil)
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
	var aus [][]byte
	var cur []byte
	for _, n := range bytes.Split(raw, []byte{0, 0, 1}) {
		n = bytes.TrimRight(n, "\x00")
		if len(n) == 0 {
			continue
		}
		cur = append(cur, 0, 0, 0, 1)
		cur = append(cur, n...)
		if t := n[0] & 0x1f; t == 1 || t == 5 { // a slice ends the access unit
			aus, cur = append(aus, cur), nil
		}
	}
	return aus
}

// SamplePublisher is a studio publishing access units over WHIP in a loop
// at 30 fps, counting the keyframe requests (PLIs) it gets.
type SamplePublisher struct {
	pc   *webrtc.PeerConnection
	plis atomic.Int64
	stop chan struct{}
	once sync.Once
	wg   sync.WaitGroup
}

// PublishSample publishes aus (from Frames) through the WHIP endpoint whip
// with studio token token, looping from access unit first, until Close or
// the end of the test.
func PublishSample(t testing.TB, api *webrtc.API, whip, token string, aus [][]byte, first int) *SamplePublisher {
	t.Helper()
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	p := &SamplePublisher{pc: pc, stop: make(chan struct{})}
	t.Cleanup(p.Close)
	video, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
		SDPFmtpLine: H264Fmtp}, "video", "studio")
	if err != nil {
		t.Fatal(err)
	}
	tc, err := pc.AddTransceiverFromTrack(video, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	if err != nil {
		t.Fatal(err)
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			pkts, _, err := tc.Sender().ReadRTCP()
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
	req, err := http.NewRequest("POST", whip, strings.NewReader(Offer(t, pc)))
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
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(body)}); err != nil {
		t.Fatal(err)
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		tick := time.NewTicker(time.Second / 30)
		defer tick.Stop()
		for i := first; ; i++ {
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
			_ = video.WriteSample(media.Sample{Data: aus[i%len(aus)], Duration: time.Second / 30})
		}
	}()
	return p
}

// PLIs is how many keyframe requests the publisher has had.
func (p *SamplePublisher) PLIs() int64 { return p.plis.Load() }

// Close stops publishing and closes the peer; it may be called again.
func (p *SamplePublisher) Close() {
	p.once.Do(func() {
		close(p.stop)
		_ = p.pc.Close()
		p.wg.Wait()
	})
}
