package stream

import (
	"testing"
	"time"

	"hedge/internal/testkit"
	"hedge/stream/streamtest"
)

// A studio that reconnects within the grace period continues the same
// stream: viewers keep their PeerConnections and see one continuous
// sequence-number and timestamp space.
func TestPublisherReconnectContinuity(t *testing.T) {
	for _, c := range []struct {
		name      string
		dropFirst bool // the old connection ends before the new one arrives
	}{
		{name: "after the old connection closed", dropFirst: true},
		{name: "replacing a connection that still looks alive", dropFirst: false},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := startNode(t, Options{PublisherGrace: 5 * time.Second})
			a, _ := livePublisher(t, n, "bj-3")
			v, res := newViewer(t, n, "bj-3")
			if v == nil {
				t.Fatalf("WHEP: expected 201, got %d %s", res.status, res.body)
			}
			testkit.WaitUntil(t, "packets of the first publisher", 10*time.Second, func() bool { vid, _ := v.Snapshot(); return len(vid) >= 30 })
			if c.dropFirst {
				a.Close()
				testkit.WaitUntil(t, "the first publisher's session to end", 10*time.Second, func() bool { return n.srv.Stats().Sessions == 1 })
				time.Sleep(200 * time.Millisecond)
			}
			b, res := newPublisher(t, n, "bj-3", "demo-studio")
			if b == nil {
				t.Fatalf("reconnecting WHIP: expected 201, got %d %s", res.status, res.body)
			}
			b.Send(100000) // a new encoder: new SSRC, sequence numbers and timestamps
			testkit.WaitUntil(t, "packets of the second publisher", 10*time.Second, func() bool {
				vid, _ := v.Snapshot()
				return len(vid) > 0 && streamtest.Counter(vid[len(vid)-1]) >= 100030
			})
			if !c.dropFirst {
				testkit.WaitUntil(t, "the replaced session to end", 5*time.Second, func() bool { return n.srv.Stats().Sessions == 2 })
			}
			vid, _ := v.Snapshot()
			switched := false
			for j := 1; j < len(vid); j++ {
				p, q := vid[j-1], vid[j]
				if ds := q.SequenceNumber - p.SequenceNumber; ds != 1 {
					t.Fatalf("packet %d: sequence number jumped by %d (%d → %d) at content %d → %d", j, ds, p.SequenceNumber, q.SequenceNumber, streamtest.Counter(p), streamtest.Counter(q))
				}
				if int32(q.Timestamp-p.Timestamp) <= 0 {
					t.Fatalf("packet %d: timestamp went from %d to %d", j, p.Timestamp, q.Timestamp)
				}
				if streamtest.Counter(p) < 100000 && streamtest.Counter(q) >= 100000 {
					switched = true
					// The gap in timestamps follows the wall-clock gap: under 10 s.
					if d := q.Timestamp - p.Timestamp; d > 90000*10 {
						t.Fatalf("timestamp gap at the switch: %d ticks, expected under 10 s", d)
					}
				}
			}
			if !switched {
				t.Fatalf("expected the viewer to see the switch from the first to the second publisher")
			}
			if st := n.srv.Stats(); st.Viewers != 1 || st.Streams != 1 {
				t.Fatalf("expected the viewer and the stream to survive, got %+v", st)
			}
		})
	}
}
