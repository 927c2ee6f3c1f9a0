package stream

import (
	"runtime"
	"testing"
	"time"

	"hedge/internal/testkit"
	"hedge/stream/streamtest"
)

// Two regions in one process: the studio publishes in eu; viewers in sea
// make sea pull the stream once over WHEP and fan it out locally. A broken
// pull is retried and sea's viewers keep their connections; when the last
// sea viewer leaves, the pull stops after the grace period.
func TestRelayBetweenRegions(t *testing.T) {
	base := runtime.NumGoroutine()
	eu := startNode(t, Options{})
	sea := startNode(t, Options{Relay: RelayOptions{Peers: []string{eu.base}, Grace: 400 * time.Millisecond, MinBackoff: 50 * time.Millisecond, ReadyTimeout: 15 * time.Second}})

	pub, _ := livePublisher(t, eu, "bacc-09")

	var vs []*testViewer
	for i := range 3 {
		v, res := newViewer(t, sea, "bacc-09")
		if v == nil {
			t.Fatalf("WHEP viewer %d at sea: expected 201, got %d %s", i, res.status, res.body)
		}
		vs = append(vs, v)
	}
	for i, v := range vs {
		defer func() {
			vid, aud := v.Snapshot()
			h := sea.srv.Hub("bacc-09")
			if h == nil {
				return
			}
			for _, tr := range h.Tracks() {
				t.Logf("sea track %v %v packets %d", tr.Kind(), tr.Codec().MimeType, tr.Packets())
			}
			t.Logf("viewer %d: video %d audio %d, eu stats %+v", i, len(vid), aud, eu.srv.Stats())
		}()
		testkit.WaitUntil(t, "relayed video and audio", 10*time.Second, func() bool { vid, aud := v.Snapshot(); return len(vid) >= 40 && aud >= 10 })
		vid, _ := v.Snapshot()
		last := vid[len(vid)-1]
		// The publisher counts a packet after writing it, so the relay may
		// deliver it before the count moves: one ahead is in order.
		if d := int64(pub.Sent()) - int64(streamtest.Counter(last)); d < -1 || d > 100 {
			t.Fatalf("viewer %d: last relayed content %d is %d packets behind the publisher (expected under 100)", i, streamtest.Counter(last), d)
		}
	}
	if st := eu.srv.Stats(); st.Viewers != 1 {
		t.Fatalf("eu: expected exactly 1 viewer (sea's relay) for 3 sea viewers, got %+v", st)
	}
	if st := sea.srv.Stats(); st.Relays != 1 || st.Viewers != 3 {
		t.Fatalf("sea: expected 1 relay and 3 viewers, got %+v", st)
	}
	// A relay must not be served to another region's relay (no loops).
	if r := do(t, "POST", sea.base+"bacc-09/whep", "application/sdp", "", []byte(offerFor(t)), relayHeader, "1"); r.status != 404 {
		t.Fatalf("relay request for a relayed stream: expected 404, got %d %s", r.status, r.body)
	}

	// Break the pull at the origin: sea reconnects; its viewers continue.
	eu.srv.mu.Lock()
	var pulled *session
	for _, x := range eu.srv.sessions {
		if x.endpoint == "whep" {
			pulled = x
		}
	}
	eu.srv.mu.Unlock()
	if pulled == nil {
		t.Fatal("expected the relay's session at eu")
	}
	pulled.closeSync()
	r := sea.srv.relays["bacc-09"]
	testkit.WaitUntil(t, "the relay to reconnect", 15*time.Second, func() bool { return r.pulls.Load() >= 2 })
	mark := pub.Sent()
	testkit.WaitUntil(t, "content sent after the reconnect at every sea viewer", 10*time.Second, func() bool {
		for _, v := range vs {
			vid, _ := v.Snapshot()
			if len(vid) == 0 || streamtest.Counter(vid[len(vid)-1]) < mark+20 {
				return false
			}
		}
		return true
	})
	for i, v := range vs {
		vid, _ := v.Snapshot()
		for j := 1; j < len(vid); j++ {
			if ds := vid[j].SequenceNumber - vid[j-1].SequenceNumber; ds != 1 && int16(ds) > 0 && ds > 200 {
				t.Fatalf("viewer %d: sequence number jumped by %d across the relay reconnect", i, ds)
			}
		}
	}

	for _, v := range vs {
		v.Close()
	}
	testkit.WaitUntil(t, "the relay to stop after the last viewer left", 10*time.Second, func() bool {
		return sea.srv.Stats().Relays == 0 && sea.srv.Stats().Streams == 0 && eu.srv.Stats().Viewers == 0
	})
	pub.Close()
	sea.stop()
	eu.stop()
	goroutinesSettle(t, base)
}
