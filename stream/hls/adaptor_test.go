package hls

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
)

// TestBehindFasthttp serves the muxer the way the gateway does, through
// fasthttpadaptor, whose request strings alias fasthttp's reused buffers:
// what the muxer keeps of one request (the preload hint it announced) must
// survive the next requests.
func TestBehindFasthttp(t *testing.T) {
	m, err := New(Options{Video: H264, Audio: Opus})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: fasthttpadaptor.NewFastHTTPHandler(m)}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = srv.Serve(ln) }()
	ctx, cancel := context.WithCancel(context.Background())
	go func() { defer wg.Done(); newPublisher(loadSample(t)).run(ctx, m) }()
	defer func() { cancel(); _ = m.Close(); _ = srv.Shutdown(); wg.Wait() }()

	base := "http://" + ln.Addr().String() + "/live/t1/hls/"
	u := func(name string) string { return base + name }
	video, _ := mediaPlaylistsAt(t, u)
	for i := 0; i < 5; i++ {
		pl := mediaPlaylist(t, u(video))
		if pl.PreloadHint == nil {
			t.Fatalf("no preload hint in %s", video)
		}
		// Other requests reuse the server's buffers in between.
		for _, other := range []string{"index.m3u8", "audio2_stream.m3u8", strings.Repeat("x", len(video)) + ".mp4"} {
			get(t, u(other))
		}
		resp, body := get(t, u(pl.PreloadHint.URI))
		if resp.StatusCode != 200 {
			t.Fatalf("preload-hinted part %s: expected 200, got %d: %s", pl.PreloadHint.URI, resp.StatusCode, body)
		}
	}
}
