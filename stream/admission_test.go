package stream

import (
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"hedge/stream/streamtest"
)

// halfOpenOffer is a viewer's offer that can never connect: no candidate,
// and none is trickled afterwards, like a client that posts offers and
// walks away.
func halfOpenOffer(t *testing.T) []byte {
	t.Helper()
	var b strings.Builder
	for line := range strings.SplitSeq(offerFor(t), "\r\n") {
		if line == "" || strings.HasPrefix(line, "a=candidate:") || line == "a=end-of-candidates" {
			continue
		}
		b.WriteString(line + "\r\n")
	}
	return []byte(b.String())
}

// livePublisher starts a studio on stream and waits for its tracks.
func livePublisher(t *testing.T, n *testNode, stream string) *testPublisher {
	t.Helper()
	pub, res := newPublisher(t, n, stream, "demo-studio")
	if pub == nil {
		t.Fatalf("WHIP: expected 201, got %d %s", res.status, res.body)
	}
	pub.Send(1)
	waitFor(t, 10*time.Second, "the stream's tracks", func() bool { h := n.srv.Hub(stream); return h != nil && len(h.Tracks()) == 2 })
	return pub
}

// Viewers that offer and never complete ICE and DTLS do not take the
// stream's or the node's viewer slots: with 24 of them connecting, real
// viewers still get the stream's two slots, and the third real one is
// refused by the cap, not by the half-open ones. The node's connecting
// viewers have a bound of their own; over it, WHEP answers 503 with
// Retry-After and the LL-HLS URL, and play.json would prefer LL-HLS.
func TestHalfOpenViewersTakeNoViewerSlot(t *testing.T) {
	const halfOpen, connectingBound = 24, 32
	n := startNode(t, Options{MaxViewersPerStream: 2, MaxConnectingViewers: connectingBound, ConnectTimeout: time.Minute})
	livePublisher(t, n, "bacc-41")
	offer := halfOpenOffer(t)
	for i := range halfOpen {
		if r := do(t, "POST", n.base+"bacc-41/whep", "application/sdp", "", offer); r.status != http.StatusCreated {
			t.Fatalf("half-open offer %d: expected 201, got %d %s", i, r.status, r.body)
		}
	}
	if st := n.srv.Stats(); st.Connecting != halfOpen || st.Viewers != 0 {
		t.Fatalf("after %d half-open offers: expected %d connecting and 0 viewers, got %+v", halfOpen, halfOpen, st)
	}
	if n.srv.OverViewerCap("bacc-41") {
		t.Fatal("play.json would prefer LL-HLS because of viewers that never connected")
	}

	for i := range 2 {
		v, res := newViewer(t, n, "bacc-41")
		if v == nil {
			t.Fatalf("real viewer %d beside %d half-open ones: expected 201, got %d %s", i, halfOpen, res.status, res.body)
		}
		waitFor(t, 10*time.Second, fmt.Sprintf("real viewer %d's media", i), func() bool { vid, _ := v.Snapshot(); return len(vid) >= 10 })
	}
	if st := n.srv.Stats(); st.Viewers != 2 || st.Connecting != halfOpen {
		t.Fatalf("expected 2 connected viewers and the %d half-open still connecting, got %+v", halfOpen, st)
	}
	if _, res := newViewer(t, n, "bacc-41"); res.status != http.StatusServiceUnavailable || problemType(res.body) != "urn:hedge:problem:stream-viewer-cap" {
		t.Fatalf("third real viewer over the stream's cap of 2: expected 503 stream-viewer-cap, got %d %s", res.status, res.body)
	}

	// The bound is the node's: more half-open viewers, of another stream,
	// reach it.
	livePublisher(t, n, "bacc-44")
	for i := halfOpen; i < connectingBound; i++ {
		if r := do(t, "POST", n.base+"bacc-44/whep", "application/sdp", "", offer); r.status != http.StatusCreated {
			t.Fatalf("half-open offer %d: expected 201, got %d %s", i, r.status, r.body)
		}
	}
	r := do(t, "POST", n.base+"bacc-44/whep", "application/sdp", "", offer)
	if r.status != http.StatusServiceUnavailable || problemType(r.body) != "urn:hedge:problem:stream-viewer-cap" ||
		r.header.Get("Retry-After") != "60" || !strings.Contains(r.header.Get("Link"), "/live/bacc-44/hls/index.m3u8") {
		t.Fatalf("over %d connecting viewers: expected 503 stream-viewer-cap with Retry-After 60 and the LL-HLS Link, got %d %v %s", connectingBound, r.status, r.header, r.body)
	}
	if !n.srv.OverViewerCap("bacc-44") {
		t.Error("with the connecting viewers at their bound, play.json should prefer LL-HLS")
	}
	st := n.srv.Stats()
	if st.Refused[RefusedConnecting] != 1 || st.Refused[RefusedViewerCap] != 1 {
		t.Errorf("refusals: expected 1 connecting_cap and 1 viewer_cap, got %v", st.Refused)
	}
}

// Viewers that never connect are closed after ConnectTimeout, and with
// them every goroutine, session and ICE mapping they held: the node is
// back to what it was before they came.
func TestHalfOpenViewersAreReclaimed(t *testing.T) {
	const halfOpen = 30
	const timeout = time.Second
	n := startNode(t, Options{ConnectTimeout: timeout})
	livePublisher(t, n, "bacc-42")
	base := settledGoroutines()
	offer := halfOpenOffer(t)
	start := time.Now()
	for i := range halfOpen {
		if r := do(t, "POST", n.base+"bacc-42/whep", "application/sdp", "", offer); r.status != http.StatusCreated {
			t.Fatalf("half-open offer %d: expected 201, got %d %s", i, r.status, r.body)
		}
	}
	held := runtime.NumGoroutine() - base
	st := n.srv.Stats()
	t.Logf("%d half-open viewers: %d goroutines above the baseline of %d, stats %+v, posted in %v", halfOpen, held, base, st, time.Since(start).Round(time.Millisecond))
	if st.Sessions != 1+halfOpen || held < halfOpen {
		t.Fatalf("expected %d sessions holding goroutines before the timeout, got %+v and %d goroutines", 1+halfOpen, st, held)
	}
	// Each was closed timeout after its offer; allow 2s for the closing.
	deadline := time.Now().Add(timeout + 2*time.Second)
	for {
		st = n.srv.Stats()
		g := runtime.NumGoroutine()
		if st.Sessions == 1 && st.Connecting == 0 && st.UDPMappings == 1 && g <= base+2 {
			t.Logf("reclaimed %v after the last offer (timeout %v)", time.Since(start).Round(time.Millisecond), timeout)
			break
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%v after the last offer: expected the publisher's session and mapping only and at most %d goroutines, got %+v and %d:\n%s",
				time.Since(start).Round(time.Millisecond), base+2, st, g, buf)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st.ConnectTimeouts != halfOpen {
		t.Errorf("connect timeouts: expected %d, got %d", halfOpen, st.ConnectTimeouts)
	}
}

// settledGoroutines is the goroutine count once it has stopped changing
// for 300ms (at most 5s).
func settledGoroutines() int {
	last, since := runtime.NumGoroutine(), time.Now()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if g := runtime.NumGoroutine(); g != last {
			last, since = g, time.Now()
		} else if time.Since(since) >= 300*time.Millisecond {
			break
		}
	}
	return last
}

// Two viewers admitted while neither had connected, for the last slot:
// the first to connect takes it, the other is closed as it connects, so
// the cap holds for connected viewers.
func TestViewerConnectingOverCapIsClosed(t *testing.T) {
	n := startNode(t, Options{MaxViewersPerStream: 1})
	livePublisher(t, n, "bacc-45")
	var vs [2]*testViewer
	var answers [2]string
	for i := range vs {
		v := &testViewer{Viewer: streamtest.NewViewer(t, clientAPI(t, false))}
		res := do(t, "POST", n.base+"bacc-45/whep", "application/sdp", "", []byte(streamtest.Offer(t, v.PC)))
		if res.status != http.StatusCreated {
			t.Fatalf("viewer %d, before either connected: expected 201, got %d %s", i, res.status, res.body)
		}
		vs[i], answers[i] = v, res.body
	}
	for i, v := range vs {
		if err := v.PC.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answers[i]}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "one viewer in, the other closed", func() bool {
		st := n.srv.Stats()
		return st.Viewers == 1 && st.Connecting == 0 && st.Sessions == 2 && st.Refused[RefusedCapAtConnect] == 1
	})
	waitFor(t, 10*time.Second, "media at the viewer that got the slot", func() bool {
		a, _ := vs[0].Snapshot()
		b, _ := vs[1].Snapshot()
		return len(a) >= 10 || len(b) >= 10
	})
}
