package stream

import (
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/pion/rtcp"

	"hedge/internal/testkit"
	"hedge/stream/streamtest"
)

// goroutinesSettle fails t unless the goroutine count returns to base
// (plus slack for the test runner) within 10s.
func goroutinesSettle(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= base+2 {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("goroutines: expected at most %d after every session closed, got %d:\n%s", base+2, n, buf)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestFanOutPLIAndCleanup(t *testing.T) {
	base := runtime.NumGoroutine()
	n := startNode(t, Options{PublisherGrace: 300 * time.Millisecond, KeyframeInterval: 100 * time.Millisecond})
	pub, res := livePublisher(t, n, "bacc-07")
	if res.header.Get("ETag") == "" || res.header.Get("Content-Type") != "application/sdp" {
		t.Errorf("WHIP 201: expected ETag and application/sdp, got ETag %q Content-Type %q", res.header.Get("ETag"), res.header.Get("Content-Type"))
	}

	const viewers = 4
	var vs []*testViewer
	for i := range viewers {
		before := pub.PLIs()
		v, res := newViewer(t, n, "bacc-07")
		if v == nil {
			t.Fatalf("WHEP viewer %d: expected 201, got %d %s", i, res.status, res.body)
		}
		vs = append(vs, v)
		// A keyframe request reaches the publisher once the viewer connects.
		testkit.WaitUntil(t, "a PLI at the publisher after a viewer joined", 5*time.Second, func() bool { return pub.PLIs() > before })
	}
	for i, v := range vs {
		testkit.WaitUntil(t, "video and audio at every viewer", 10*time.Second, func() bool { vid, aud := v.Snapshot(); return len(vid) >= 50 && aud >= 20 })
		vid, _ := v.Snapshot()
		// The same content in the same order: consecutive sequence numbers
		// carry consecutive counters.
		for j := 1; j < len(vid); j++ {
			ds := vid[j].SequenceNumber - vid[j-1].SequenceNumber
			dc := streamtest.Counter(vid[j]) - streamtest.Counter(vid[j-1])
			if ds != uint16(dc) {
				t.Fatalf("viewer %d packet %d: sequence advanced by %d but content by %d", i, j, ds, dc)
			}
			if dts := vid[j].Timestamp - vid[j-1].Timestamp; dts != dc*900 {
				t.Fatalf("viewer %d packet %d: timestamp advanced by %d, expected %d", i, j, dts, dc*900)
			}
		}
	}
	if st := n.srv.Stats(); st.Sessions != viewers+1 || st.Viewers != viewers {
		t.Errorf("stats: expected %d sessions and %d viewers, got %+v", viewers+1, viewers, st)
	}

	// DELETE ends sessions; the stream ends after the publisher's grace.
	for i, v := range vs {
		if r := do(t, "DELETE", "http://"+n.ln.Addr().String()+v.location, "", v.token, nil); r.status != http.StatusOK {
			t.Fatalf("DELETE viewer %d: expected 200, got %d %s", i, r.status, r.body)
		}
		v.Close()
	}
	if r := do(t, "DELETE", "http://"+n.ln.Addr().String()+pub.location, "", pub.token, nil); r.status != http.StatusOK {
		t.Fatalf("DELETE publisher: expected 200, got %d %s", r.status, r.body)
	}
	pub.Close()
	testkit.WaitUntil(t, "no sessions, streams or UDP mappings", 5*time.Second, func() bool {
		st := n.srv.Stats()
		return st.Sessions == 0 && st.Streams == 0 && st.Viewers == 0 && st.UDPMappings == 0
	})
	n.stop()
	goroutinesSettle(t, base)
}

func TestNACKFromStreamCache(t *testing.T) {
	n := startNode(t, Options{})
	pub, res := newPublisher(t, n, "roulette-1", "demo-studio")
	if pub == nil {
		t.Fatalf("WHIP: expected 201, got %d %s", res.status, res.body)
	}
	pub.Send(1000)
	testkit.WaitUntil(t, "the stream's tracks", 10*time.Second, func() bool { h := n.srv.Hub("roulette-1"); return h != nil && len(h.Tracks()) == 2 })
	v, res := newViewer(t, n, "roulette-1")
	if v == nil {
		t.Fatalf("WHEP: expected 201, got %d %s", res.status, res.body)
	}
	testkit.WaitUntil(t, "60 video packets", 10*time.Second, func() bool { vid, _ := v.Snapshot(); return len(vid) >= 60 })
	vid, _ := v.Snapshot()
	want := map[uint16]uint32{}
	var nacks []rtcp.NackPair
	for _, p := range vid[10:15] {
		want[p.SequenceNumber] = streamtest.Counter(p)
		nacks = append(nacks, rtcp.NackPair{PacketID: p.SequenceNumber})
	}
	if err := v.PC.WriteRTCP([]rtcp.Packet{&rtcp.TransportLayerNack{MediaSSRC: v.SSRC(), Nacks: nacks}}); err != nil {
		t.Fatal(err)
	}
	// Each NACKed packet arrives a second time, with the same content.
	testkit.WaitUntil(t, "the NACKed packets again", 5*time.Second, func() bool {
		vid, _ := v.Snapshot()
		seen := map[uint16]int{}
		for _, p := range vid {
			if c, ok := want[p.SequenceNumber]; ok {
				if streamtest.Counter(p) != c {
					t.Fatalf("retransmitted seq %d: expected content %d, got %d", p.SequenceNumber, c, streamtest.Counter(p))
				}
				seen[p.SequenceNumber]++
			}
		}
		for s := range want {
			if seen[s] < 2 {
				return false
			}
		}
		return true
	})
}
