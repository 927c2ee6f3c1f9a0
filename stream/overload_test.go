package stream

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"

	"hedge/internal/testkit"
)

// stallReader holds up its stream's fan-out once, as a core too busy for
// the stream's viewers would.
type stallReader struct {
	once  sync.Once
	stall time.Duration
}

func (r *stallReader) OnRTP(*Track, []*rtp.Packet) { r.once.Do(func() { time.Sleep(r.stall) }) }

// A stream whose fan-out fell behind its studio refuses new WebRTC viewers
// (503 naming LL-HLS, and play.json prefers LL-HLS) so that the viewers
// watching keep a whole stream; they keep receiving.
func TestFanoutBehindRefusesNewViewers(t *testing.T) {
	n := startNode(t, Options{})
	livePublisher(t, n, "bacc-09")
	v, res := newViewer(t, n, "bacc-09")
	if v == nil {
		t.Fatalf("first viewer: expected 201, got %d %s", res.status, res.body)
	}
	testkit.WaitUntil(t, "packets at the first viewer", 10*time.Second, func() bool { vid, _ := v.Snapshot(); return len(vid) >= 20 })
	h := n.srv.Hub("bacc-09")
	if h.FanoutFull() || n.srv.OverViewerCap("bacc-09") {
		t.Fatal("fan-out full before anything held it up")
	}

	h.AddReader(&stallReader{stall: 2 * testFanoutBehind})
	testkit.WaitUntil(t, "the fan-out to be marked full", 5*time.Second, h.FanoutFull)
	if !n.srv.OverViewerCap("bacc-09") {
		t.Error("play.json's preference: expected LL-HLS while the fan-out is full")
	}
	_, res = newViewer(t, n, "bacc-09")
	if res.status != http.StatusServiceUnavailable || problemType(res.body) != "urn:hedge:problem:stream-viewer-cap" ||
		!strings.Contains(res.body, "fan-out") || !strings.Contains(res.header.Get("Link"), "/live/bacc-09/hls/index.m3u8") {
		t.Fatalf("viewer while the fan-out is full: expected 503 stream-viewer-cap naming the fan-out and LL-HLS, got %d %v %s", res.status, res.header, res.body)
	}
	before, _ := v.Snapshot()
	testkit.WaitUntil(t, "the first viewer to keep receiving", 5*time.Second, func() bool { vid, _ := v.Snapshot(); return len(vid) >= len(before)+20 })
	if got := n.srv.Stats().Viewers; got != 1 {
		t.Errorf("viewers: expected the first one only, got %d", got)
	}
}
