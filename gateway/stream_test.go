package gateway

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"

	"hedge/internal/testkit"
	"hedge/stream/streamtest"
)

// streamRouteYAML is the head of the stream tests' configurations: /live/
// is a stream route behind the whole request path (WAF in block mode at
// PL1, as the demo runs it).
const streamRouteYAML = debugHead + `waf: {mode: block, paranoia_level: 1}
routes:
  - name: live
    kind: stream
    match: {path_prefix: /live/}
    max_body_bytes: 64KiB
`

// streamNodeYAML is the one region and node of the stream tests.
var streamNodeYAML = "regions:\n" + streamRegionYAML("{{REGION}}", "{{EDGE}}", "{{ADMIN}}")

// streamRegionYAML is a region of the stream tests, named region, with its
// one node: a plain listener on edge, the admin API on admin.
func streamRegionYAML(region, edge, admin string) string {
	return `  - name: ` + region + `
    nodes:
      - name: ` + region + `-1
        listeners:
          - name: public
            address: ` + edge + `
            tls: {mode: off}
        admin: {address: ` + admin + `}
`
}

// streamConfig is one node whose /live/ route is a stream route.
var streamConfig = streamRouteYAML + `streams:
  studios: [{name: studio-a, token: studio-a-token, streams: ["bacc-*"]}]
  ice: {udp_port: {{UDP}}, servers: [{urls: ["stun:stun.example.net:3478"]}]}
  relay: false
` + streamNodeYAML

// streamPeerAPI is a pion API for the test's studio and player: loopback
// UDP only, the codecs a browser offers for a live table.
func streamPeerAPI(t *testing.T) *webrtc.API {
	t.Helper()
	m := &webrtc.MediaEngine{}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{PayloadType: 102, RTPCodecCapability: webrtc.RTPCodecCapability{
		MimeType: webrtc.MimeTypeH264, ClockRate: 90000, SDPFmtpLine: streamtest.H264Fmtp,
		RTCPFeedback: []webrtc.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}},
	}}, webrtc.RTPCodecTypeVideo); err != nil {
		t.Fatal(err)
	}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{PayloadType: 111, RTPCodecCapability: webrtc.RTPCodecCapability{
		MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2,
	}}, webrtc.RTPCodecTypeAudio); err != nil {
		t.Fatal(err)
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(&interceptor.Registry{}), webrtc.WithSettingEngine(streamtest.SettingEngine()))
}

// A studio publishes over WHIP and a player watches over WHEP, both
// through the gateway's listener and its whole request path; the player
// receives the studio's video and audio, content intact. Errors of the
// stream route are problem+json with the request id.
func TestStreamRouteThroughGateway(t *testing.T) {
	region := "sea"
	e := startEdge(t, streamConfig, "{{UDP}}", testkit.FreeUDPPort(t), "{{REGION}}", region)
	api := streamPeerAPI(t)

	// Studio: H.264 + Opus, each payload carrying a counter.
	pub := streamtest.NewPublisher(t, api)
	offer := streamtest.Offer(t, pub.PC)

	// A studio token for other streams only, and no token: 401.
	resp, body := do(t, "POST", e.url+"/live/roulette-1/whip", "", offer, "Content-Type", "application/sdp", "Authorization", "Bearer studio-a-token")
	wantProblem(t, resp, body, 401, "invalid-token")
	resp, body = do(t, "POST", e.url+"/live/bacc-01/whip", "", offer, "Content-Type", "application/sdp")
	wantProblem(t, resp, body, 401, "invalid-token")

	resp, body = do(t, "POST", e.url+"/live/bacc-01/whip", "", offer, "Content-Type", "application/sdp", "Authorization", "Bearer studio-a-token")
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("WHIP through the gateway: expected 201, got %d %s", resp.StatusCode, body)
	}
	if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, "/live/bacc-01/whip/") {
		t.Errorf("WHIP Location: expected /live/bacc-01/whip/{id}, got %q", loc)
	}
	if l := resp.Header.Get("Link"); l != `<stun:stun.example.net:3478>; rel="ice-server"` {
		t.Errorf("WHIP Link: expected the configured STUN server, got %q", l)
	}
	if resp.Header.Get("X-Request-Id") == "" {
		t.Error("WHIP 201 without X-Request-Id")
	}
	pubLocation := resp.Header.Get("Location")
	if err := pub.PC.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: body}); err != nil {
		t.Fatal(err)
	}
	pub.Send(1)

	// Player.
	play := streamtest.NewViewer(t, api)
	playOffer := streamtest.Offer(t, play.PC)
	// The stream may need a moment to have both tracks; WHEP waits for them.
	resp, body = do(t, "POST", e.url+"/live/bacc-01/whep", "", playOffer, "Content-Type", "application/sdp")
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("WHEP through the gateway: expected 201, got %d %s", resp.StatusCode, body)
	}
	if err := play.PC.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: body}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for vid, aud := play.Snapshot(); len(vid) < 50 || aud < 20; vid, aud = play.Snapshot() {
		if time.Now().After(deadline) {
			t.Fatalf("player through the gateway: expected ≥ 50 video and ≥ 20 audio packets in 15s, got %d and %d", len(vid), aud)
		}
		time.Sleep(20 * time.Millisecond)
	}
	got, _ := play.Snapshot()
	for i := 1; i < len(got); i++ {
		if c, prev := streamtest.Counter(got[i]), streamtest.Counter(got[i-1]); c <= prev {
			t.Fatalf("player's video content out of order at packet %d: counter %d after %d", i, c, prev)
		}
	}

	// Operators see the stream in /metrics and /status.
	metrics := get(t, e.admin+"/metrics")
	for _, want := range []string{
		`hedge_stream_live{node="` + region + `-1",region="` + region + `"} 1`,
		`hedge_stream_viewers{node="` + region + `-1",region="` + region + `"} 1`,
		`hedge_stream_datagrams_total{node="` + region + `-1",region="` + region + `",result="failed"} 0`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics: expected %s, got:\n%s", want, grepLines(metrics, "hedge_stream_"))
		}
	}
	if l := grepLines(metrics, `hedge_stream_datagrams_total{node="`+region+`-1",region="`+region+`",result="sent"}`); l == "" || strings.HasSuffix(l, " 0") {
		t.Errorf("/metrics: expected datagrams sent, got %q", l)
	}
	if st := e.g.Nodes()[0].Status().Streams; st == nil || st.Streams != 1 || st.Viewers != 1 || len(st.PendingRestart) != 0 {
		t.Errorf("/status streams: expected 1 stream, 1 viewer, nothing pending, got %+v", st)
	}

	// Unknown streams and sessions, wrong methods: problem+json.
	resp, body = do(t, "POST", e.url+"/live/nobody-here/whep", "", playOffer, "Content-Type", "application/sdp")
	wantProblem(t, resp, body, 404, "stream-not-found")
	resp, body = do(t, "DELETE", e.url+"/live/bacc-01/whep/0123456789abcdef0123456789abcdef", "", "")
	wantProblem(t, resp, body, 404, "stream-session-not-found")
	resp, body = do(t, "POST", e.url+"/live/bacc-01/whip", "", "v=0\r\nnot sdp", "Content-Type", "application/sdp", "Authorization", "Bearer studio-a-token")
	wantProblem(t, resp, body, 400, "invalid-sdp")

	// The session's Location alone does not end it; the studio's token does.
	resp, body = do(t, "DELETE", e.url+pubLocation, "", "")
	wantProblem(t, resp, body, 401, "invalid-token")
	resp, body = do(t, "DELETE", e.url+pubLocation, "", "", "Authorization", "Bearer studio-a-token")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("DELETE the WHIP session: expected 200, got %d %s", resp.StatusCode, body)
	}
}

// A WHIP offer over the route's body limit is answered 413 problem+json,
// and a client that writes its whole request before reading the answer
// (as curl and most WHIP encoders do) reads that 413, over plain HTTP and
// TLS alike: the edge closes such a connection lingering, reading what the
// client still sends, instead of resetting it under the client's writes.
func TestStreamOfferOverBodyLimitIs413(t *testing.T) {
	for _, tc := range []struct {
		name string
		tls  bool
		size int
	}{
		{"just over the limit", false, 64<<10 + 1},
		{"1 MiB", false, 1 << 20},
		{"8 MiB", false, 8 << 20},
		{"TLS, 1 MiB", true, 1 << 20},
		{"TLS, 8 MiB", true, 8 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := streamConfig
			if tc.tls {
				cfg = strings.Replace(cfg, "tls: {mode: off}", "tls: {mode: internal, names: [play.edge.test]}", 1)
			}
			e := startEdge(t, cfg, "{{UDP}}", testkit.FreeUDPPort(t), "{{REGION}}", "sea")
			addr := strings.TrimPrefix(e.url, "http://")
			var c net.Conn
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if tc.tls {
				c = tls.Client(c, &tls.Config{ServerName: "play.edge.test", RootCAs: e.rootCAs(t)})
			}
			_ = c.SetDeadline(time.Now().Add(30 * time.Second))
			head := fmt.Sprintf("POST /live/bacc-01/whip HTTP/1.1\r\nHost: play.edge.test\r\nContent-Type: application/sdp\r\n"+
				"Authorization: Bearer studio-a-token\r\nContent-Length: %d\r\n\r\n", tc.size)
			if _, err := c.Write([]byte(head)); err != nil {
				t.Fatalf("writing the request head: %v", err)
			}
			if _, err := c.Write(bytes.Repeat([]byte("a"), tc.size)); err != nil {
				t.Fatalf("writing an offer of %d bytes: expected the edge to take it in and answer, got %v", tc.size, err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("reading the answer to an offer of %d bytes: expected 413, got %v", tc.size, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			wantProblem(t, resp, string(body), 413, "body-too-large")
			if !resp.Close {
				t.Error("413 before the body was read: expected Connection: close")
			}
		})
	}
}

// The per-address limits of session creation apply to the client address
// the edge established: behind a trusted proxy, the X-Forwarded-For
// client's, each its own. Refusals and connecting viewers show in
// /metrics.
func TestStreamSessionLimitsUseTheEdgesClientAddress(t *testing.T) {
	region := "sea"
	cfg := streamRouteYAML + `streams:
  studios: [{name: studio-a, token: studio-a-token, streams: ["bacc-*"]}]
  ice: {udp_port: {{UDP}}}
  relay: false
  per_address: {rate: 1/m, burst: 2, max_sessions: 5}
` + strings.Replace(streamNodeYAML, "tls: {mode: off}", "tls: {mode: off}\n            trusted_proxies: [127.0.0.0/8]", 1)
	e := startEdge(t, cfg, "{{UDP}}", testkit.FreeUDPPort(t), "{{REGION}}", region)
	api := streamPeerAPI(t)
	pub := streamtest.NewPublisher(t, api)
	resp, body := do(t, "POST", e.url+"/live/bacc-01/whip", "", streamtest.Offer(t, pub.PC), "Content-Type", "application/sdp", "Authorization", "Bearer studio-a-token")
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("WHIP: expected 201, got %d %s", resp.StatusCode, body)
	}
	if err := pub.PC.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: body}); err != nil {
		t.Fatal(err)
	}
	pub.Send(1)

	// Offers that never connect: each viewer's PeerConnection is closed
	// once its offer is made.
	offer := func() string {
		v := streamtest.NewViewer(t, api)
		defer v.Close()
		return streamtest.Offer(t, v.PC)
	}
	for i, c := range []struct {
		client string
		status int
		typ    string
	}{
		{"203.0.113.5", 201, ""},
		{"203.0.113.5", 201, ""},
		{"203.0.113.5", 429, "stream-session-rate"},
		{"203.0.113.6", 201, ""},
		{"203.0.113.6", 201, ""},
		{"203.0.113.6", 429, "stream-session-rate"},
	} {
		resp, body := do(t, "POST", e.url+"/live/bacc-01/whep", "", offer(), "Content-Type", "application/sdp", "X-Forwarded-For", c.client)
		if c.status == 201 {
			if resp.StatusCode != 201 {
				t.Fatalf("WHEP %d from %s: expected 201, got %d %s", i, c.client, resp.StatusCode, body)
			}
			continue
		}
		wantProblem(t, resp, body, c.status, c.typ)
		if ra := resp.Header.Get("Retry-After"); ra == "" || ra == "0" {
			t.Errorf("WHEP %d from %s over its rate: expected Retry-After, got %q", i, c.client, ra)
		}
	}
	labels := `{node="` + region + `-1",reason="address_rate",region="` + region + `"}`
	metrics := get(t, e.admin+"/metrics")
	for _, want := range []string{
		`hedge_stream_refused_total` + labels + ` 2`,
		`hedge_stream_viewers_connecting{node="` + region + `-1",region="` + region + `"} 4`,
		`hedge_stream_viewers{node="` + region + `-1",region="` + region + `"} 0`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics: expected %s, got:\n%s", want, grepLines(metrics, "hedge_stream_"))
		}
	}
}

// Each Gateway owns its nodes' stream servers: a second Gateway in the same
// process, running a node of the same name, starts a server of its own on
// its own ICE port, keeps serving when the first shuts down, and each
// server's socket is released with its Gateway.
func TestStreamServersBelongToTheirGateway(t *testing.T) {
	udpA, udpB := testkit.FreeUDPPort(t), testkit.FreeUDPPort(t)
	a := startEdge(t, streamConfig, "{{UDP}}", udpA, "{{REGION}}", "sea")
	b := startEdge(t, streamConfig, "{{UDP}}", udpB, "{{REGION}}", "sea")
	for _, c := range []struct {
		name string
		e    *testEdge
		udp  string
	}{{"first", a, udpA}, {"second", b, udpB}} {
		if got := c.e.g.Nodes()[0].live.Server().UDPAddr(); got != "127.0.0.1:"+c.udp {
			t.Fatalf("%s gateway's ICE socket: want 127.0.0.1:%s (its own configuration), got %s", c.name, c.udp, got)
		}
	}
	api := streamPeerAPI(t)
	publish := func(e *testEdge, stream string) int {
		t.Helper()
		p := streamtest.NewPublisher(t, api)
		resp, body := do(t, "POST", e.url+"/live/"+stream+"/whip", "", streamtest.Offer(t, p.PC),
			"Content-Type", "application/sdp", "Authorization", "Bearer studio-a-token")
		if resp.StatusCode != http.StatusCreated {
			t.Logf("WHIP %s: %d %s", stream, resp.StatusCode, body)
		}
		return resp.StatusCode
	}
	if got := publish(b, "bacc-01"); got != http.StatusCreated {
		t.Fatalf("WHIP through the second gateway: want 201, got %d", got)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	a.g.Shutdown(ctx)
	if got := publish(b, "bacc-02"); got != http.StatusCreated {
		t.Fatalf("WHIP through the second gateway after the first shut down: want 201, got %d", got)
	}
	if st := b.g.Nodes()[0].Status().Streams; st == nil || st.Streams != 2 {
		t.Errorf("the second gateway's streams after the first shut down: want 2 live, got %+v", st)
	}
	bindUDP := func(port string) error {
		c, err := net.ListenPacket("udp", "127.0.0.1:"+port)
		if err == nil {
			c.Close()
		}
		return err
	}
	if err := bindUDP(udpA); err != nil {
		t.Errorf("the first gateway's ICE port after its shutdown: want it released, got %v", err)
	}
	if err := bindUDP(udpB); err == nil {
		t.Error("the second gateway's ICE port is free while it runs: its stream server is not listening")
	}
	b.g.Shutdown(ctx)
	if err := bindUDP(udpB); err != nil {
		t.Errorf("the second gateway's ICE port after its shutdown: want it released, got %v", err)
	}
}

// Under a stream route whose prefix is not /live/, LL-HLS requests of the
// players' exact shape still skip the rule engine (a scanner's User-Agent
// that the Core Rule Set blocks everywhere else on the route does not stop
// them), and the pages and descriptor live under that prefix.
func TestStreamRouteUnderAnotherPrefix(t *testing.T) {
	cfg := strings.Replace(streamConfig, "match: {path_prefix: /live/}", "match: {path_prefix: /tables}", 1)
	e := startEdge(t, cfg, "{{UDP}}", testkit.FreeUDPPort(t), "{{REGION}}", "sea")
	wantProblems(t, e.url+"/tables/bacc-07/", []pathProblem{
		// Not live: the stream route answers itself, the rule engine never ran.
		{"hls/index.m3u8", 404, "stream-not-found"},
		{"hls/video1_stream.m3u8?_HLS_msn=3&_HLS_part=1", 404, "stream-not-found"},
		// Anything else on the route meets the Core Rule Set.
		{"play.json", 403, "request-blocked"},
		{"hls/index.m3u8?x=1", 403, "request-blocked"},
	}, "User-Agent", "sqlmap/1.7.2#stable (https://sqlmap.org)")
	d := playDescriptor(t, e.url+"/tables/bacc-07/play.json")
	if d.WHEP != "/tables/bacc-07/whep" || d.HLS != "/tables/bacc-07/hls/index.m3u8" {
		t.Errorf("play.json under /tables: want WHEP and LL-HLS URLs under the route's prefix, got %+v", d)
	}
}
