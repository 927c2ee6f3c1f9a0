package waf

import (
	"testing"

	"github.com/valyala/fasthttp"
)

func TestHLSPositiveModel(t *testing.T) {
	cases := []struct {
		prefix, method, uri, body string
		want                      bool
	}{
		{"/live/", "GET", "/live/bacc-07/hls/index.m3u8", "", true},
		{"/live/", "GET", "/live/bacc-07/hls/video1_stream.m3u8?_HLS_msn=42&_HLS_part=3", "", true},
		{"/live/", "HEAD", "/live/bacc_07/hls/a1b2c3_video1_part117.mp4", "", true},
		{"/live/", "GET", "/live/bacc-07/hls/video1_stream.m3u8?_HLS_msn=42&_HLS_skip=YES", "", true},
		{"/live/", "GET", "/live/bacc-07/hls/a1b2c3_video1_init.mp4", "", true},
		// Anything else goes to the rule engine.
		{"/live/", "GET", "/live/bacc-07/hls/index.m3u8?_HLS_msn=1%27%20OR%201=1", "", false},
		{"/live/", "GET", "/live/bacc-07/hls/index.m3u8?x=1", "", false},
		{"/live/", "GET", "/live/bacc-07/hls/index.m3u8?_HLS_msn", "", false},
		{"/live/", "GET", "/live/bacc-07/hls/../../etc/passwd", "", false},
		{"/live/", "GET", "/live/bacc-07/hls/index.php", "", false},
		{"/live/", "GET", "/live/bacc-07/hls/a.b.mp4", "", false},
		{"/live/", "GET", "/live/bacc%2707/hls/index.m3u8", "", false},
		{"/live/", "GET", "/live/bacc-07/", "", false},
		{"/live/", "GET", "/live/bacc-07/play.json", "", false},
		{"/live/", "POST", "/live/bacc-07/hls/index.m3u8", "x", false},
		{"/live/", "GET", "/live/bacc-07/hls/index.m3u8", "x", false},
		// The route's own prefix, whatever it is: under another, /live/ is
		// just a path.
		{"/tables/", "GET", "/tables/bacc-07/hls/index.m3u8", "", true},
		{"/tables/", "GET", "/tables/bacc-07/hls/video1_stream.m3u8?_HLS_msn=42&_HLS_part=3", "", true},
		{"/tables/", "GET", "/live/bacc-07/hls/index.m3u8", "", false},
		{"/live/", "GET", "/tables/bacc-07/hls/index.m3u8", "", false},
		{"/", "GET", "/bacc-07/hls/index.m3u8", "", true},
		{"", "GET", "/bacc-07/hls/index.m3u8", "", false},
	}
	for _, c := range cases {
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetMethod(c.method)
		ctx.Request.SetRequestURI(c.uri)
		ctx.Request.SetBodyString(c.body)
		if got := hlsPositive(&ctx, []byte(c.prefix)); got != c.want {
			t.Errorf("prefix %s: %s %s (body %q): positive model %v, want %v", c.prefix, c.method, c.uri, c.body, got, c.want)
		}
	}
}
