package waf

import (
	"testing"

	"github.com/valyala/fasthttp"
)

func TestHLSPositiveModel(t *testing.T) {
	cases := []struct {
		method, uri, body string
		want              bool
	}{
		{"GET", "/live/bacc-07/hls/index.m3u8", "", true},
		{"GET", "/live/bacc-07/hls/video1_stream.m3u8?_HLS_msn=42&_HLS_part=3", "", true},
		{"HEAD", "/live/bacc_07/hls/a1b2c3_video1_part117.mp4", "", true},
		{"GET", "/live/bacc-07/hls/video1_stream.m3u8?_HLS_msn=42&_HLS_skip=YES", "", true},
		{"GET", "/live/bacc-07/hls/a1b2c3_video1_init.mp4", "", true},
		// Anything else goes to the rule engine.
		{"GET", "/live/bacc-07/hls/index.m3u8?_HLS_msn=1%27%20OR%201=1", "", false},
		{"GET", "/live/bacc-07/hls/index.m3u8?x=1", "", false},
		{"GET", "/live/bacc-07/hls/index.m3u8?_HLS_msn", "", false},
		{"GET", "/live/bacc-07/hls/../../etc/passwd", "", false},
		{"GET", "/live/bacc-07/hls/index.php", "", false},
		{"GET", "/live/bacc-07/hls/a.b.mp4", "", false},
		{"GET", "/live/bacc%2707/hls/index.m3u8", "", false},
		{"GET", "/live/bacc-07/", "", false},
		{"GET", "/live/bacc-07/play.json", "", false},
		{"POST", "/live/bacc-07/hls/index.m3u8", "x", false},
		{"GET", "/live/bacc-07/hls/index.m3u8", "x", false},
	}
	for _, c := range cases {
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetMethod(c.method)
		ctx.Request.SetRequestURI(c.uri)
		ctx.Request.SetBodyString(c.body)
		if got := hlsPositive(&ctx); got != c.want {
			t.Errorf("%s %s (body %q): positive model %v, want %v", c.method, c.uri, c.body, got, c.want)
		}
	}
}
