package hls

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// TestReorderedPacketsKeepFrames plays the sample's packets (pion's H.264
// payloader, as a WebRTC sender packetizes) into the muxer out of order in
// the ways networks reorder, duplicate and lose them, and checks what gets
// packaged. Every frame arrives 1/30 s after the previous one; a reordered
// packet arrives with the frame it is moved to.
func TestReorderedPacketsKeepFrames(t *testing.T) {
	const frames = 45 // keyframes at 0, 15 and 30; frame 15 takes ≥ 3 packets
	for _, tc := range []struct {
		name string
		// order rearranges what arrives with frame f: pkts are its packets
		// after those held back from earlier frames; it returns what
		// arrives now and what it holds back for the next frame.
		order func(f int, pkts []*rtp.Packet) (now, later []*rtp.Packet)
		// frames not packaged, packets counted lost, packets counted late
		wantDropped, wantLost, wantLate uint64
	}{
		{"in order", nil, 0, 0, 0},
		{"first two packets swapped in every frame after the first", func(f int, p []*rtp.Packet) ([]*rtp.Packet, []*rtp.Packet) {
			if f > 0 && len(p) >= 2 {
				p[0], p[1] = p[1], p[0]
			}
			return p, nil
		}, 0, 0, 0},
		{"a keyframe's packets reversed", func(f int, p []*rtp.Packet) ([]*rtp.Packet, []*rtp.Packet) {
			if f == 15 {
				slices.Reverse(p)
			}
			return p, nil
		}, 0, 0, 0},
		{"a keyframe's marker packet arriving with the next frame (33 ms late)", func(f int, p []*rtp.Packet) ([]*rtp.Packet, []*rtp.Packet) {
			if f == 15 {
				return p[:len(p)-1], p[len(p)-1:]
			}
			return p, nil
		}, 0, 0, 0},
		{"a packet sent twice", func(f int, p []*rtp.Packet) ([]*rtp.Packet, []*rtp.Packet) {
			if f == 15 {
				return append([]*rtp.Packet{p[0], p[1], p[0]}, p[1:]...), nil
			}
			return p, nil
		}, 0, 0, 2}, // the repeated first and second
		{"a keyframe's second packet lost", func(f int, p []*rtp.Packet) ([]*rtp.Packet, []*rtp.Packet) {
			if f == 15 {
				return append(p[:1:1], p[2:]...), nil
			}
			return p, nil
		}, 15, 1, 0}, // frames 15-29, up to the next keyframe
		{"a keyframe's second packet 100 ms late: lost, then late", func(f int, p []*rtp.Packet) ([]*rtp.Packet, []*rtp.Packet) {
			switch {
			case f == 15:
				return append(p[:1:1], p[2:]...), p[1:2]
			case f == 16 || f == 17:
				return p[1:], p[:1] // p[0] is frame 15's packet, carried on
			}
			return p, nil
		}, 15, 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := New(Options{Video: H264})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			p := newPublisher(loadSample(t))
			t0 := time.Now()
			var carry []*rtp.Packet
			for f := range frames {
				at := t0.Add(time.Duration(f) * time.Second / sampleFPS)
				pkts := p.nextVideo()
				if tc.order != nil {
					var later []*rtp.Packet
					pkts, later = tc.order(f, append(carry, pkts...))
					carry = later
				}
				for _, pkt := range pkts {
					m.WriteRTP(H264, 90000, pkt, at)
				}
			}
			st := m.Stats()
			if got := st.Frames + st.DroppedFrames; got != frames {
				t.Errorf("expected all %d frames packaged or dropped, got %d + %d (%+v)", frames, st.Frames, st.DroppedFrames, st)
			}
			if st.DroppedFrames != tc.wantDropped || st.Lost != tc.wantLost || st.Late != tc.wantLate {
				t.Errorf("expected %d frames dropped, %d packets lost, %d late; got %d, %d, %d (%+v)",
					tc.wantDropped, tc.wantLost, tc.wantLate, st.DroppedFrames, st.Lost, st.Late, st)
			}
			// A hole in the video makes gohlslib warn of a part duration
			// change; without one there is nothing to warn of.
			if tc.wantDropped == 0 && st.Errors != 0 {
				t.Errorf("expected no packaging errors, got %d (%+v)", st.Errors, st)
			}
		})
	}
}

// TestReorderGivesUp: a gap is given up on after ReorderWait, or at once
// when more than the buffer holds has arrived after it, so a packet lost
// for good costs a bounded wait.
func TestReorderGivesUp(t *testing.T) {
	t0 := time.Now()
	pkt := func(seq uint16) *rtp.Packet {
		return &rtp.Packet{Header: rtp.Header{SSRC: 1, SequenceNumber: seq, Timestamp: uint32(seq)}, Payload: []byte{byte(seq)}}
	}
	type step struct {
		seq uint16
		at  time.Duration
	}
	for _, tc := range []struct {
		name  string
		steps []step
		want  string // the sequence numbers passed on, in order
	}{
		{"in order", []step{{100, 0}, {101, 0}, {102, 0}}, "100 101 102"},
		{"one swap", []step{{100, 0}, {102, 0}, {101, 1}}, "100 101 102"},
		{"gap filled in time", []step{{100, 0}, {102, 0}, {103, 0}, {101, 39}}, "100 101 102 103"},
		{"gap given up after the wait", []step{{100, 0}, {102, 0}, {103, 10}, {104, 40}}, "100 102 103 104"},
		{"late after giving up", []step{{100, 0}, {102, 0}, {103, 40}, {101, 41}}, "100 102 103 101"},
		{"duplicate held", []step{{100, 0}, {102, 0}, {102, 0}, {101, 1}}, "100 101 102"},
		{"wraparound", []step{{65534, 0}, {0, 0}, {65535, 1}, {1, 1}}, "65534 65535 0 1"},
		{"jump beyond the ring", []step{{100, 0}, {102, 0}, {300, 1}}, "100 102 300"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := reorderBuffer{wait: 40 * time.Millisecond}
			var got []string
			emit := func(p *rtp.Packet, _ time.Time) {
				if len(p.Payload) != 1 || p.Payload[0] != byte(p.SequenceNumber) || p.SSRC != 1 {
					t.Errorf("packet %d passed on with payload %v, SSRC %d", p.SequenceNumber, p.Payload, p.SSRC)
				}
				got = append(got, fmt.Sprint(p.SequenceNumber))
			}
			for _, s := range tc.steps {
				b.push(pkt(s.seq), t0.Add(s.at*time.Millisecond), emit)
			}
			if g := fmt.Sprint(got); g != "["+tc.want+"]" {
				t.Errorf("expected %s passed on, got %s", tc.want, g)
			}
		})
	}

	// A full buffer gives up without waiting.
	b := reorderBuffer{wait: time.Hour}
	n := 0
	emit := func(*rtp.Packet, time.Time) { n++ }
	b.push(pkt(0), t0, emit)
	for seq := uint16(2); seq < 2+reorderMax; seq++ {
		b.push(pkt(seq), t0, emit)
	}
	if n != 1+reorderMax {
		t.Errorf("expected the gap given up once %d packets wait behind it (%d passed on), got %d passed on", reorderMax, 1+reorderMax, n)
	}
}

func BenchmarkReorder(b *testing.B) {
	t0 := time.Now()
	pkts := make([]*rtp.Packet, 64)
	for i := range pkts {
		pkts[i] = &rtp.Packet{Header: rtp.Header{SSRC: 1}, Payload: make([]byte, 1100)}
	}
	var r reorderBuffer
	r.wait = 40 * time.Millisecond
	emit := func(*rtp.Packet, time.Time) {}
	b.ReportAllocs()
	var seq uint16
	for i := 0; b.Loop(); i++ {
		// Every eighth pair swapped.
		p := pkts[i%len(pkts)]
		s := seq
		if i%16 == 1 {
			s = seq + 1
		} else if i%16 == 2 {
			s = seq - 1
		}
		p.SequenceNumber = s
		r.push(p, t0, emit)
		seq++
	}
}
