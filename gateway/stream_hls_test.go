package gateway

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/playlist"
	"github.com/pion/webrtc/v4"
	"github.com/valyala/fasthttp"

	"hedge/internal/testkit"
	"hedge/stream/player"
	"hedge/stream/streamtest"
)

// hlsEdgeConfig is a two-region deployment whose nodes serve /live/ as a
// stream route (streamRouteYAML); sea's node allows one WebRTC viewer.
// Each node takes ICE on its own loopback address, on the same UDP port.
var hlsEdgeConfig = streamRouteYAML + `streams:
  studios: [{name: studio-a, token: studio-a-token}]
  ice: {udp_port: {{UDP}}, servers: [{urls: ["stun:stun.example.net:3478"]}, {urls: ["turn:turn.example.net:3478"], username: u1, credential: c1}]}
  max_viewers_per_node: {{CAP}}
  relay: true
  relay_grace: 2s
regions:
` + streamRegionYAML("{{SEA}}", "{{SEA_EDGE}}", "{{SEA_ADMIN}}") + streamRegionYAML("{{EU}}", "{{EU_EDGE}}", "{{EU_ADMIN}}")

// hlsTwoRegions starts both nodes of hlsEdgeConfig: sea on 127.0.0.1, eu on
// 127.0.0.2.
func hlsTwoRegions(t testing.TB, viewerCap int, startEU bool) (sea, eu *testEdge) {
	t.Helper()
	seaName, euName := "sea", "eu"
	euEdge, euAdmin := hlsFreeAddr(t, "127.0.0.2"), hlsFreeAddr(t, "127.0.0.2")
	seaEdge, seaAdmin := testkit.FreeAddr(t), testkit.FreeAddr(t)
	repl := []string{
		"{{UDP}}", testkit.FreeUDPPort(t, "127.0.0.1", "127.0.0.2"), "{{CAP}}", fmt.Sprint(viewerCap), "{{SEA}}", seaName, "{{EU}}", euName,
		"{{SEA_EDGE}}", seaEdge, "{{SEA_ADMIN}}", seaAdmin, "{{EU_EDGE}}", euEdge, "{{EU_ADMIN}}", euAdmin,
	}
	sea = startEdgeNode(t, hlsEdgeConfig, seaName, seaName+"-1", repl...)
	sea.url = "http://" + seaEdge
	if startEU {
		eu = startEdgeNode(t, hlsEdgeConfig, euName, euName+"-1", repl...)
		eu.url = "http://" + euEdge
	}
	return sea, eu
}

func hlsFreeAddr(t testing.TB, host string) string {
	t.Helper()
	ln, err := net.Listen("tcp", host+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// publishSample publishes package hls's H.264 sample in a loop at 30 fps
// through the edge's WHIP endpoint, until the test ends.
func publishSample(t testing.TB, api *webrtc.API, whip string) {
	t.Helper()
	aus := streamtest.Frames(t, "../stream/hls/testdata/sample.h264")
	if len(aus) < 30 {
		t.Fatalf("expected at least 30 frames in the sample, got %d", len(aus))
	}
	streamtest.PublishSample(t, api, whip, "studio-a-token", aus, 0)
}

// getOK GETs url and fails the test unless it answers 200.
func getOK(t testing.TB, url string) (*http.Response, []byte) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: expected 200, got %d: %s", url, resp.StatusCode, b)
	}
	return resp, b
}

// waitLLHLS reads the stream's LL-HLS through base (/live/{stream}/hls/)
// until its video media playlist has at least two segments with parts, and
// returns that playlist. Every answer must carry CORS headers.
func waitLLHLS(t testing.TB, base string, limit time.Duration) *playlist.Media {
	t.Helper()
	deadline := time.Now().Add(limit)
	var last string
	for time.Now().Before(deadline) {
		c := &http.Client{Timeout: 10 * time.Second}
		resp, err := c.Get(base + "index.m3u8")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			last = fmt.Sprintf("index.m3u8: %d %s", resp.StatusCode, b)
			time.Sleep(200 * time.Millisecond)
			continue
		}
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "*" {
			t.Fatalf("index.m3u8: expected Access-Control-Allow-Origin *, got %q", got)
		}
		var mv playlist.Multivariant
		if err := mv.Unmarshal(b); err != nil {
			t.Fatalf("index.m3u8 does not parse: %v\n%s", err, b)
		}
		if len(mv.Variants) == 0 {
			t.Fatalf("index.m3u8: expected a variant, got none:\n%s", b)
		}
		resp, b = getOK(t, base+mv.Variants[0].URI)
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "*" {
			t.Fatalf("%s: expected Access-Control-Allow-Origin *, got %q", mv.Variants[0].URI, got)
		}
		var pl playlist.Media
		if err := pl.Unmarshal(b); err != nil {
			t.Fatalf("%s does not parse: %v\n%s", mv.Variants[0].URI, err, b)
		}
		full := 0
		for _, s := range pl.Segments {
			if !s.Gap && len(s.Parts) > 0 {
				full++
			}
		}
		if full >= 2 && pl.PartInf != nil && pl.PreloadHint != nil {
			return &pl
		}
		last = fmt.Sprintf("%s: %d segments with parts, part-inf %v, preload hint %v", mv.Variants[0].URI, full, pl.PartInf != nil, pl.PreloadHint != nil)
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("LL-HLS at %s: expected 2 segments with parts within %v; last: %s", base, limit, last)
	return nil
}

func descriptor(t *testing.T, url string) (player.Descriptor, *http.Response) {
	t.Helper()
	resp, b := getOK(t, url)
	var d player.Descriptor
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("play.json does not decode: %v: %s", err, b)
	}
	return d, resp
}

// A studio publishes H.264 through sea's gateway listener; the stream's
// LL-HLS (parsed with gohlslib's parser) has segments, parts and a preload
// hint, on sea and on eu, which relays it; play.json describes the stream
// on each edge and prefers LL-HLS while sea's one WebRTC slot is taken;
// the player and publish pages are served.
func TestStreamLLHLSPlayerAndDescriptor(t *testing.T) {
	sea, eu := hlsTwoRegions(t, 1, true)
	api := streamtest.DefaultAPI(t)
	live := sea.url + "/live/bacc-07/"

	// Before the studio: offline, WebRTC preferred, URLs and ICE servers.
	// The stream is live nowhere: sea asks eu, which answers 404, and
	// answers then, not after its wait for a pull's media (2 s).
	asked := time.Now()
	d, resp := descriptor(t, live+"play.json")
	if took := time.Since(asked); took > time.Second {
		t.Errorf("play.json of a stream live nowhere: expected an answer within 1 s, took %v", took)
	} else {
		t.Logf("play.json of a stream live nowhere: answered after %v", took)
	}
	want := player.Descriptor{
		Stream: "bacc-07", WHEP: "/live/bacc-07/whep", HLS: "/live/bacc-07/hls/index.m3u8", State: "offline", Preferred: "webrtc",
		ICEServers: []player.ICEServer{{URLs: []string{"stun:stun.example.net:3478"}}, {URLs: []string{"turn:turn.example.net:3478"}, Username: "u1", Credential: "c1"}},
	}
	if fmt.Sprint(d) != fmt.Sprint(want) {
		t.Errorf("play.json before publishing:\nexpected %+v\ngot      %+v", want, d)
	}
	if ct, cc := resp.Header.Get("Content-Type"), resp.Header.Get("Cache-Control"); ct != "application/json" || cc != "no-store" {
		t.Errorf("play.json: expected application/json, no-store; got %q, %q", ct, cc)
	}
	// Within relay's NotFoundTTL of that answer, without asking eu again.
	asked = time.Now()
	r, body := do(t, "GET", live+"hls/index.m3u8", "", "")
	wantProblem(t, r, body, 404, "stream-not-found")
	if d := time.Since(asked); d > time.Second {
		t.Errorf("LL-HLS of a stream live nowhere: expected the 404 within 1 s, not after a pull's wait for media (5 s), took %v", d)
	} else {
		t.Logf("LL-HLS of a stream live nowhere: 404 after %v", d)
	}
	r, body = do(t, "POST", live+"play.json", "", "{}", "Content-Type", "application/json")
	wantProblem(t, r, body, 405, "method-not-allowed")

	// The pages.
	for _, tc := range []struct{ path, ctype, contains string }{
		{"", "text/html; charset=utf-8", `src="player.js"`},
		{"publish", "text/html; charset=utf-8", `src="publish.js"`},
		{"player.js", "text/javascript; charset=utf-8", "play.json"},
		{"hls.min.js", "text/javascript; charset=utf-8", "Hls"},
		{"webrtc.js", "text/javascript; charset=utf-8", "hedgeWebRTC"},
	} {
		resp, b := getOK(t, live+tc.path)
		if ct := resp.Header.Get("Content-Type"); ct != tc.ctype || !bytes.Contains(b, []byte(tc.contains)) {
			t.Errorf("/live/bacc-07/%s: expected %s containing %q, got %q (%d bytes)", tc.path, tc.ctype, tc.contains, ct, len(b))
		}
	}
	noRedirect := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if resp, err := noRedirect.Get(sea.url + "/live/bacc-07"); err != nil {
		t.Fatal(err)
	} else if resp.Body.Close(); resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != "/live/bacc-07/" {
		t.Errorf("/live/bacc-07: expected 308 to /live/bacc-07/, got %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	r, body = do(t, "GET", live+"nope.js", "", "")
	wantProblem(t, r, body, 404, "no-route")

	// A player opens the page before the studio: its play.json starts a
	// pull of the stream from eu, which has not got it either.
	pullStarted := time.Now()
	if d, _ := descriptor(t, live+"play.json"); d.State != "offline" {
		t.Errorf("play.json before publishing: expected offline, got %s", d.State)
	}
	publishSample(t, api, live+"whip")
	pl := waitLLHLS(t, live+"hls/", 20*time.Second)
	for _, s := range pl.Segments {
		if !s.Gap && (s.Duration < 500*time.Millisecond || s.Duration > 2100*time.Millisecond) {
			t.Errorf("sea segment %s: expected 0.5-2 s, got %v", s.URI, s.Duration)
		}
	}
	if pl.PartInf.PartTarget < 100*time.Millisecond || pl.PartInf.PartTarget > 500*time.Millisecond {
		t.Errorf("sea part target: expected about 200 ms, got %v", pl.PartInf.PartTarget)
	}
	// The packager's refusals are problems with the request's id too.
	wantProblems(t, live, []pathProblem{
		{"hls/nothing.mp4", 404, "no-route"},
		{"hls/x_video1_part999999.mp4", 404, "no-route"},
		{"hls/video1_stream.m3u8?_HLS_msn=x", 400, "bad-request"},
		{"hls/video1_stream.m3u8?_HLS_msn=999999", 400, "bad-request"},
	})
	d, _ = descriptor(t, live+"play.json")
	if d.State != "live" || d.Preferred != "webrtc" {
		t.Errorf("play.json while live: expected live/webrtc, got %s/%s", d.State, d.Preferred)
	}

	// The studio's arrival stopped that pull; the end of the pull's wait
	// for media (5 s) and grace (2 s) must not end the studio's stream.
	time.Sleep(time.Until(pullStarted.Add(8 * time.Second)))
	d, _ = descriptor(t, live+"play.json")
	if d.State != "live" {
		t.Errorf("sea play.json after the idle pull's time ran out: expected state live, got %+v", d)
	}
	getOK(t, live+"hls/index.m3u8")

	// eu has no studio: its HLS request pulls the stream from sea.
	pl = waitLLHLS(t, eu.url+"/live/bacc-07/hls/", 20*time.Second)
	d, _ = descriptor(t, eu.url+"/live/bacc-07/play.json")
	if d.State != "relayed" || d.HLS != "/live/bacc-07/hls/index.m3u8" {
		t.Errorf("eu play.json: expected state relayed, got %+v", d)
	}
	if len(pl.Parts)+len(pl.Segments[len(pl.Segments)-1].Parts) == 0 {
		t.Errorf("eu media playlist: expected parts, got none")
	}

	// Sea's one WebRTC slot: the relay took it (the pull is a WHEP viewer),
	// so sea's players are told to start on LL-HLS.
	d, _ = descriptor(t, live+"play.json")
	if d.Preferred != "hls" {
		t.Errorf("sea play.json with its viewer cap reached: expected preferred hls, got %+v", d)
	}
}

// BenchmarkStreamLLHLS runs the whole edge handler (request id, routing,
// WAF at PL1 in block mode, metrics) for what an LL-HLS viewer fetches
// most — the media playlist without blocking, and a finished segment — of
// a live stream, and reports allocations per request: the edge's cost per
// LL-HLS viewer request, on top of the muxer's.
func BenchmarkStreamLLHLS(b *testing.B) {
	sea, _ := hlsTwoRegions(b, 0, false)
	publishSample(b, streamtest.DefaultAPI(b), sea.url+"/live/bacc-07/whip")
	pl := waitLLHLS(b, sea.url+"/live/bacc-07/hls/", 20*time.Second)
	var seg string
	for _, s := range pl.Segments {
		if !s.Gap {
			seg = s.URI
		}
	}
	var el *edgeListener
	for _, l := range sea.g.Nodes()[0].listeners {
		el = l
	}
	remote := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
	for _, tc := range []struct{ name, uri string }{
		{"playlist", "/live/bacc-07/hls/video1_stream.m3u8"},
		{"segment", "/live/bacc-07/hls/" + seg},
	} {
		b.Run(tc.name, func(b *testing.B) {
			// Parsed from the wire, as the listener does: the rule engine
			// reads the headers as received.
			raw := []byte("GET " + tc.uri + " HTTP/1.1\r\nHost: play.edge.test\r\n" +
				"User-Agent: Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0 Safari/537.36\r\nAccept: */*\r\n\r\n")
			var req fasthttp.Request
			var ctx fasthttp.RequestCtx
			br := bufio.NewReader(nil)
			b.ReportAllocs()
			for b.Loop() {
				req.Reset()
				br.Reset(bytes.NewReader(raw))
				if err := req.Read(br); err != nil {
					b.Fatal(err)
				}
				ctx.Init(&req, remote, nil)
				el.serve(&ctx)
				if ctx.Response.StatusCode() != 200 {
					b.Fatalf("GET %s: want 200, got %d: %s", tc.uri, ctx.Response.StatusCode(), ctx.Response.Body())
				}
			}
			b.SetBytes(int64(len(ctx.Response.Body())))
		})
	}
}
