package hls

import (
	"testing"
	"time"

	"github.com/pion/rtp"
)

// FuzzH264Depacketizer feeds arbitrary payloads (a publisher's RTP is
// untrusted input): no panic, and every emitted NAL unit is non-empty and
// within the frame bound.
func FuzzH264Depacketizer(f *testing.F) {
	f.Add([]byte{0x18, 0, 2, 0x67, 9, 0, 1, 0x68, 0xff, 0x7c, 0x85, 1, 0xff, 0x7c, 0x45, 3}, uint8(3))
	f.Add([]byte{0x65, 1, 2, 0xff, 0x41, 9}, uint8(1))
	f.Add([]byte{0x1c, 0x80, 0xff, 0x1c, 0x40}, uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, flags uint8) {
		d := newH264Depacketizer(func(fr *frame) {
			total := 0
			for _, n := range fr.nalus {
				if len(n) == 0 {
					t.Fatalf("emitted an empty NAL unit")
				}
				total += len(n)
			}
			if total > maxFrameSize {
				t.Fatalf("emitted a frame of %d bytes, bound is %d", total, maxFrameSize)
			}
		})
		d.waitKey = flags&1 == 0
		// 0xff separates packets; flags pick markers and sequence skips.
		seq := uint16(0)
		start := 0
		for i := 0; i <= len(data); i++ {
			if i < len(data) && data[i] != 0xff {
				continue
			}
			seq++
			if flags&2 != 0 && seq%5 == 0 {
				seq++
			}
			pkt := &rtp.Packet{Header: rtp.Header{SequenceNumber: seq, Timestamp: uint32(seq / 3), SSRC: 7,
				Marker: flags&4 != 0 || i == len(data)}, Payload: data[start:i]}
			_ = d.push(pkt, time.Time{})
			start = i + 1
		}
	})
}
