package stream

import (
	"bytes"
	"cmp"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"
	"github.com/valyala/fasthttp"

	"hedge/configs"
	"hedge/internal/testkit"
	"hedge/stream/streamtest"
)

// Test peers are real pion PeerConnections on loopback, talking to a real
// Server behind a real fasthttp listener.

// testClientHeader names the client address a test request comes from.
const testClientHeader = "X-Test-Client"

// testFanoutBehind is the test nodes' fan-out threshold: a stall of the
// production one (fanoutBehind, 200ms) is what a busy test machine running
// -race goes through now and then, and would refuse viewers to tests that
// are not about the fan-out. Those that are stall a reader for longer.
const testFanoutBehind = time.Second

type testNode struct {
	t    *testing.T
	srv  *Server
	base string // http://127.0.0.1:port/live/
	ln   net.Listener
	http *fasthttp.Server
}

func startNode(t *testing.T, opts Options) *testNode {
	t.Helper()
	opts = withNodeDefaults(opts)
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
	srv.fanoutBehind = testFanoutBehind
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// The client address is the connection's, or the test's X-Test-Client
	// (the edge establishes it from trusted proxies the same way).
	handle := func(ctx *fasthttp.RequestCtx) {
		client, _ := netip.ParseAddr(string(ctx.Request.Header.Peek(testClientHeader)))
		srv.Handle(ctx, []byte("req-1"), client)
	}
	hs := &fasthttp.Server{Handler: handle, MaxRequestBodySize: 1 << 20}
	go func() { _ = hs.Serve(ln) }()
	n := &testNode{t: t, srv: srv, base: "http://" + ln.Addr().String() + "/live/", ln: ln, http: hs}
	t.Cleanup(n.stop)
	return n
}

// withNodeDefaults gives what a test leaves out the value a node gets from
// the configuration's defaults (caps stay 0: none), and relay peers a
// client.
func withNodeDefaults(o Options) Options {
	o.Prefix = cmp.Or(o.Prefix, "/live/")
	o.MaxBodyBytes = cmp.Or(o.MaxBodyBytes, configs.DefaultStreamMaxBodyBytes)
	o.CachePackets = cmp.Or(o.CachePackets, configs.DefaultStreamCachePackets)
	o.PublisherGrace = cmp.Or(o.PublisherGrace, configs.DefaultStreamPublisherGrace)
	o.MediaTimeout = cmp.Or(o.MediaTimeout, configs.DefaultStreamMediaTimeout)
	o.ConnectTimeout = cmp.Or(o.ConnectTimeout, configs.DefaultStreamConnectTimeout)
	o.KeyframeInterval = cmp.Or(o.KeyframeInterval, configs.DefaultStreamKeyframeInterval)
	r := &o.Relay
	r.ReadyTimeout = cmp.Or(r.ReadyTimeout, configs.DefaultStreamRelayReadyTimeout)
	r.Grace = cmp.Or(r.Grace, configs.DefaultStreamRelayGrace)
	r.MinBackoff = cmp.Or(r.MinBackoff, configs.DefaultStreamRelayMinBackoff)
	r.MaxBackoff = cmp.Or(r.MaxBackoff, configs.DefaultStreamRelayMaxBackoff)
	r.NotFoundTTL = cmp.Or(r.NotFoundTTL, configs.DefaultStreamRelayNotFoundTTL)
	if r.Client == nil {
		r.Client = &http.Client{Timeout: 10 * time.Second}
	}
	return o
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

// testPublisher is a streamtest.Publisher that posted its offer to a node.
type testPublisher struct {
	*streamtest.Publisher
	location string
	token    string // the studio token that created the session
}

func newPublisher(t *testing.T, n *testNode, stream, token string) (*testPublisher, httpResult) {
	t.Helper()
	p := &testPublisher{Publisher: streamtest.NewPublisher(t, clientAPI(t, true))}
	res := do(t, "POST", n.base+stream+"/whip", "application/sdp", token, []byte(streamtest.Offer(t, p.PC)))
	if res.status != http.StatusCreated {
		p.Close()
		return nil, res
	}
	if err := p.PC.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: res.body}); err != nil {
		t.Fatal(err)
	}
	p.location, p.token = res.header.Get("Location"), token
	return p, res
}

// livePublisher starts the demo studio publishing stream at n, waits for
// the stream's two tracks, and returns the publisher and its WHIP 201.
func livePublisher(t *testing.T, n *testNode, stream string) (*testPublisher, httpResult) {
	t.Helper()
	pub, res := newPublisher(t, n, stream, "demo-studio")
	if pub == nil {
		t.Fatalf("WHIP %s: expected 201, got %d %s", stream, res.status, res.body)
	}
	pub.Send(1)
	testkit.WaitUntil(t, "the tracks of "+stream, 10*time.Second, func() bool { h := n.srv.Hub(stream); return h != nil && len(h.Tracks()) == 2 })
	return pub, res
}

// testViewer is a streamtest.Viewer that posted its offer to a node.
type testViewer struct {
	*streamtest.Viewer
	location string
	token    string // the session's token (Session-Token)
}

// newViewer posts a viewer's offer for stream and, once it is admitted,
// takes the answer; a viewer refused is closed, and nil.
func newViewer(t *testing.T, n *testNode, stream string, hdr ...string) (*testViewer, httpResult) {
	t.Helper()
	v, res := postViewer(t, n, stream, hdr...)
	if res.status != http.StatusCreated {
		v.Close()
		return nil, res
	}
	v.answer(t, res)
	return v, res
}

// postViewer posts a new viewer's offer for stream, leaving the answer to
// the caller (answer).
func postViewer(t *testing.T, n *testNode, stream string, hdr ...string) (*testViewer, httpResult) {
	t.Helper()
	v := &testViewer{Viewer: streamtest.NewViewer(t, clientAPI(t, false))}
	return v, do(t, "POST", n.base+stream+"/whep", "application/sdp", "", []byte(streamtest.Offer(t, v.PC)), hdr...)
}

// answer takes the node's answer to the viewer's offer, and the session it
// created.
func (v *testViewer) answer(t *testing.T, res httpResult) {
	t.Helper()
	if err := v.PC.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: res.body}); err != nil {
		t.Fatal(err)
	}
	v.location, v.token = res.header.Get("Location"), res.header.Get(SessionTokenHeader)
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
