package hubfeed

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

	"github.com/bluenviron/gohlslib/v2/pkg/playlist"
	"github.com/pion/ice/v4"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"hedge/stream"
	"hedge/stream/hls"
)

// frames splits the Annex-B sample of package hls into access units (one
// slice per frame) and reports which are keyframes.
func frames(t *testing.T) (aus [][]byte, keys []bool) {
	raw, err := os.ReadFile("../testdata/sample.h264")
	if err != nil {
		t.Fatal(err)
	}
	var cur []byte
	key := false
	for _, n := range bytes.Split(raw, []byte{0, 0, 1}) {
		n = bytes.TrimRight(n, "\x00")
		if len(n) == 0 {
			continue
		}
		cur = append(cur, 0, 0, 0, 1)
		cur = append(cur, n...)
		switch n[0] & 0x1f {
		case 5:
			key = true
			fallthrough
		case 1:
			aus, keys = append(aus, cur), append(keys, key)
			cur, key = nil, false
		}
	}
	if len(aus) != 60 {
		t.Fatalf("expected 60 frames in the sample, got %d", len(aus))
	}
	return aus, keys
}

// TestPublisherToLLHLS publishes the sample with a pion peer through a real
// stream.Server, starting on a P frame, and checks that the muxer hubfeed
// attaches asks the publisher for a keyframe (a PLI arrives) and serves
// LL-HLS segments of the stream.
func TestPublisherToLLHLS(t *testing.T) {
	set := New(hls.Options{})
	srv, err := stream.NewServer(stream.Options{
		Studios: []stream.Studio{{Name: "studio", Token: "tok", Streams: []string{"*"}}},
		ICE:     stream.ICE{UDP: "127.0.0.1:0", Loopback: true},
		OnHub:   set.OnHub,
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hlsHandler := fasthttpadaptor.NewFastHTTPHandler(set)
	hs := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		if strings.Contains(string(ctx.Path()), "/hls/") {
			hlsHandler(ctx)
			return
		}
		srv.Handle(ctx, []byte("t"))
	}}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = hs.Serve(ln) }()
	base := "http://" + ln.Addr().String() + "/live/"
	defer func() { _ = hs.Shutdown(); wg.Wait(); _ = srv.Close() }()

	// A pion publisher.
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	video, _ := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
		SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"}, "video", "studio")
	var plis atomic.Int64
	tc, err := pc.AddTransceiverFromTrack(video, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var pwg sync.WaitGroup
	pwg.Add(2)
	go func() {
		defer pwg.Done()
		for {
			pkts, _, err := tc.Sender().ReadRTCP()
			if err != nil {
				return
			}
			for _, p := range pkts {
				if _, ok := p.(*rtcp.PictureLossIndication); ok {
					plis.Add(1)
				}
			}
		}
	}()
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	req, _ := http.NewRequest("POST", base+"t1/whip", strings.NewReader(pc.LocalDescription().SDP))
	req.Header.Set("Content-Type", "application/sdp")
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("WHIP: expected 201, got %d: %s", resp.StatusCode, answer)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(answer)}); err != nil {
		t.Fatal(err)
	}
	aus, _ := frames(t)
	go func() {
		defer pwg.Done()
		tick := time.NewTicker(time.Second / 30)
		defer tick.Stop()
		for i := 1; ; i++ { // from frame 1: the stream starts without a keyframe
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			_ = video.WriteSample(media.Sample{Data: aus[i%len(aus)], Duration: time.Second / 30})
		}
	}()
	defer func() { close(stop); _ = pc.Close(); pwg.Wait() }()

	deadline := time.Now().Add(20 * time.Second)
	var m *hls.Muxer
	for m == nil && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		m = set.Muxer("t1")
	}
	if m == nil {
		t.Fatal("no muxer attached to stream t1 within 20 s")
	}
	var pl playlist.Media
	for {
		resp, err := http.Get(base + "t1/hls/video1_stream.m3u8")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 {
			pl = playlist.Media{}
			if err := pl.Unmarshal(body); err != nil {
				t.Fatalf("media playlist does not parse: %v\n%s", err, body)
			}
			real := 0
			for _, s := range pl.Segments {
				if !s.Gap {
					real++
				}
			}
			if real >= 2 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("expected 2 LL-HLS segments within 20 s; last answer %d, muxer %+v", resp.StatusCode, m.Stats())
		}
		time.Sleep(200 * time.Millisecond)
	}
	st := m.Stats()
	for _, s := range pl.Segments {
		if !s.Gap && (s.Duration < 900*time.Millisecond || s.Duration > 2100*time.Millisecond) {
			t.Errorf("segment %s: expected 1-2 s, got %v", s.URI, s.Duration)
		}
	}
	if st.KeyframeRequests < 1 || plis.Load() < 1 {
		t.Errorf("expected the muxer to ask for a keyframe and the publisher to get a PLI, got %d requests, %d PLIs", st.KeyframeRequests, plis.Load())
	}
	if st.Frames == 0 || st.Errors != 0 || st.Lost != 0 {
		t.Errorf("expected frames packaged without loss or errors, got %+v", st)
	}

	// A stream that does not exist.
	resp2, err := http.Get(base + "nope/hls/index.m3u8")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp2.Body)
	resp2.Body.Close()
	if resp2.StatusCode != 404 || !strings.Contains(string(body), "stream-not-found") {
		t.Errorf("unknown stream: expected 404 stream-not-found, got %d: %s", resp2.StatusCode, body)
	}
}
