package hubfeed

import (
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/playlist"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"hedge/configs"
	"hedge/stream"
	"hedge/stream/hls"
	"hedge/stream/streamtest"
)

// TestPublisherToLLHLS publishes the sample with a pion peer through a real
// stream.Server, starting on a P frame, and checks that the muxer hubfeed
// attaches asks the publisher for a keyframe (a PLI arrives) and serves
// LL-HLS segments of the stream.
func TestPublisherToLLHLS(t *testing.T) {
	set := New(hls.Options{})
	srv, err := stream.NewServer(stream.Options{
		// The settings of a node's stream server the test relies on, as
		// the configuration gives them (the others may stay zero here).
		Prefix: "/live/", MaxBodyBytes: configs.DefaultStreamMaxBodyBytes, MediaTimeout: configs.DefaultStreamMediaTimeout,
		ConnectTimeout: configs.DefaultStreamConnectTimeout, Relay: stream.RelayOptions{ReadyTimeout: configs.DefaultStreamRelayReadyTimeout},
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
		srv.Handle(ctx, []byte("t"), netip.Addr{})
	}}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = hs.Serve(ln) }()
	base := "http://" + ln.Addr().String() + "/live/"
	defer func() { _ = hs.Shutdown(); wg.Wait(); _ = srv.Close() }()

	// A pion publisher, from frame 1: the stream starts without a keyframe.
	aus := streamtest.Frames(t, "../testdata/sample.h264")
	if len(aus) != 60 {
		t.Fatalf("expected 60 frames in the sample, got %d", len(aus))
	}
	pub := streamtest.PublishSample(t, streamtest.DefaultAPI(t), base+"t1/whip", "tok", aus, 1)
	defer pub.Close()

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
	if st.KeyframeRequests < 1 || pub.PLIs() < 1 {
		t.Errorf("expected the muxer to ask for a keyframe and the publisher to get a PLI, got %d requests, %d PLIs", st.KeyframeRequests, pub.PLIs())
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
