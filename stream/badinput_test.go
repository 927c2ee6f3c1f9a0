package stream

import (
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"hedge/internal/testkit"
	"hedge/stream/streamtest"
)

const g722Offer = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n" +
	"m=audio 9 UDP/TLS/RTP/SAVPF 9\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwxyz\r\n" +
	"a=fingerprint:sha-256 00:11\r\na=setup:actpass\r\na=rtpmap:9 G722/8000\r\na=sendonly\r\n"

func TestBadInputIsProblemJSON(t *testing.T) {
	key := []byte("viewer-key")
	n := startNode(t, Options{
		ViewerTokenKey: key, MaxBodyBytes: 4096, MaxViewersPerStream: 1, MediaTimeout: 5 * time.Second,
		Studios: []Studio{
			{Name: "demo", Token: "demo-studio", Streams: []string{"*"}},
			{Name: "other", Token: "other-studio", Streams: []string{"bacc-*"}},
		},
	})
	pub, _ := livePublisher(t, n, "bacc-01")
	good := SignViewerToken(key, "bacc-01", time.Now().Add(time.Minute))
	v, res := newViewer(t, n, "bacc-01", "Authorization", "Bearer "+good)
	if v == nil {
		t.Fatalf("WHEP with a valid token: expected 201, got %d %s", res.status, res.body)
	}
	// The cap counts the viewer once it has connected.
	testkit.WaitUntil(t, "the viewer to connect", 10*time.Second, func() bool { return n.srv.Stats().Viewers == 1 })

	// A viewer's offer that only accepts VP8 cannot play this H.264 stream.
	vp8PC, err := clientAPI(t, false, webrtc.RTPCodecParameters{PayloadType: 96, RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}}).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer vp8PC.Close()
	if _, err := vp8PC.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	vp8Offer := streamtest.Offer(t, vp8PC)

	tok := func(stream string, exp time.Duration) string {
		return SignViewerToken(key, stream, time.Now().Add(exp))
	}
	cases := []struct {
		name, method, path, ctype, auth string
		body                            string
		hdr                             []string
		status                          int
		typ                             string
	}{
		{"malformed SDP", "POST", "cam-1/whip", "application/sdp", "demo-studio", "this is not SDP", nil, 400, "invalid-sdp"},
		{"SDP without media", "POST", "cam-1/whip", "application/sdp", "demo-studio", "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n", nil, 400, "invalid-sdp"},
		{"no usable codec", "POST", "cam-1/whip", "application/sdp", "demo-studio", g722Offer, nil, 422, "no-usable-codec"},
		{"oversized body", "POST", "cam-1/whip", "application/sdp", "demo-studio", strings.Repeat("a", 5000), nil, 413, "body-too-large"},
		{"wrong content type", "POST", "cam-1/whip", "text/plain", "demo-studio", "v=0", nil, 415, "unsupported-media-type"},
		{"no studio token", "POST", "cam-1/whip", "application/sdp", "", g722Offer, nil, 401, "invalid-token"},
		{"wrong studio token", "POST", "cam-1/whip", "application/sdp", "nope", g722Offer, nil, 401, "invalid-token"},
		{"studio token for other streams", "POST", "cam-1/whip", "application/sdp", "other-studio", g722Offer, nil, 401, "invalid-token"},
		{"another studio's live stream", "POST", "bacc-01/whip", "application/sdp", "other-studio", offerFor(t), nil, 409, "stream-publisher-exists"},
		{"invalid stream name", "POST", "..x/whep", "application/sdp", "", "v=0", nil, 404, "stream-not-found"},
		{"unknown stream", "POST", "nobody/whep", "application/sdp", tok("nobody", time.Minute), offerFor(t), nil, 404, "stream-not-found"},
		{"no viewer token", "POST", "bacc-01/whep", "application/sdp", "", offerFor(t), nil, 401, "invalid-token"},
		{"expired viewer token", "POST", "bacc-01/whep", "application/sdp", tok("bacc-01", -time.Second), offerFor(t), nil, 401, "invalid-token"},
		{"viewer token of another stream", "POST", "bacc-01/whep", "application/sdp", tok("bacc-02", time.Minute), offerFor(t), nil, 401, "invalid-token"},
		{"forged viewer token", "POST", "bacc-01/whep", "application/sdp", SignViewerToken([]byte("guess"), "bacc-01", time.Now().Add(time.Minute)), offerFor(t), nil, 401, "invalid-token"},
		{"viewer without a usable codec", "POST", "bacc-01/whep", "application/sdp", tok("bacc-01", time.Minute), vp8Offer, nil, 422, "no-usable-codec"},
		{"over the stream's viewer cap", "POST", "bacc-01/whep", "application/sdp", tok("*", time.Minute), offerFor(t), nil, 503, "stream-viewer-cap"},
		{"unknown session", "DELETE", "bacc-01/whip/0123", "", "", "", nil, 404, "stream-session-not-found"},
		{"session of another endpoint", "DELETE", strings.TrimPrefix(v.location, "/live/"), "", "", "", nil, 0, ""},
		{"PATCH with a stale ETag", "PATCH", strings.TrimPrefix(pub.location, "/live/"), "application/trickle-ice-sdpfrag", "demo-studio", "a=ice-ufrag:x\r\na=ice-pwd:y\r\n", []string{"If-Match", `"stale"`}, 412, "precondition-failed"},
		{"PATCH that is not a fragment", "PATCH", strings.TrimPrefix(pub.location, "/live/"), "application/trickle-ice-sdpfrag", "demo-studio", "garbage", nil, 400, "invalid-sdp"},
		{"GET on the endpoint", "GET", "bacc-01/whip", "", "", "", nil, 405, "method-not-allowed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.status == 0 { // a WHEP session addressed as WHIP
				loc := strings.Replace(c.path, "/whep/", "/whip/", 1)
				r := do(t, "DELETE", n.base+loc, "", "", nil)
				if r.status != 404 || problemType(r.body) != "urn:hedge:problem:stream-session-not-found" {
					t.Fatalf("expected 404 stream-session-not-found, got %d %s", r.status, r.body)
				}
				return
			}
			r := do(t, c.method, n.base+c.path, c.ctype, c.auth, []byte(c.body), c.hdr...)
			if r.status != c.status {
				t.Fatalf("expected status %d, got %d %s", c.status, r.status, r.body)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("expected application/problem+json, got %q", ct)
			}
			if got := problemType(r.body); got != "urn:hedge:problem:"+c.typ {
				t.Fatalf("expected type %q, got %q in %s", c.typ, got, r.body)
			}
			if c.typ == "stream-viewer-cap" && !strings.Contains(r.body, "/live/bacc-01/hls/index.m3u8") {
				t.Fatalf("expected the LL-HLS URL in the problem, got %s", r.body)
			}
		})
	}
	if st := n.srv.Stats(); st.Sessions != 2 || st.Viewers != 1 {
		t.Errorf("after bad requests: expected the 2 good sessions and 1 viewer, got %+v", st)
	}
}

// offerFor returns a valid H.264 + Opus receive offer.
func offerFor(t *testing.T) string {
	pc, err := clientAPI(t, false).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendrecv}); err != nil {
			t.Fatal(err)
		}
	}
	return streamtest.Offer(t, pc)
}

// A publisher that connects nothing (its offer is answered, then it goes
// silent) is closed after the media timeout, and nothing of it remains.
func TestSilentPublisherTimesOut(t *testing.T) {
	base := runtime.NumGoroutine()
	n := startNode(t, Options{MediaTimeout: 700 * time.Millisecond, PublisherGrace: 200 * time.Millisecond})
	res := do(t, "POST", n.base+"quiet/whip", "application/sdp", "demo-studio", []byte(offerFor(t)))
	if res.status != http.StatusCreated {
		t.Fatalf("WHIP: expected 201, got %d %s", res.status, res.body)
	}
	if st := n.srv.Stats(); st.Sessions != 1 {
		t.Fatalf("expected 1 session right after the answer, got %+v", st)
	}
	testkit.WaitUntil(t, "the silent session and its stream to end", 5*time.Second, func() bool {
		st := n.srv.Stats()
		return st.Sessions == 0 && st.Streams == 0 && st.UDPMappings == 0
	})
	n.stop()
	goroutinesSettle(t, base)
}
