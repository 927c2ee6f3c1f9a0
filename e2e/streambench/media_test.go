package main

import (
	"bytes"
	"encoding/binary"
	"math"
	"testing"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/pion/rtp/codecs"
)

func TestSPSDescribes720p(t *testing.T) {
	var sps h264.SPS
	if err := sps.Unmarshal(spsNAL); err != nil {
		t.Fatalf("SPS % x does not parse: %v", spsNAL, err)
	}
	if sps.Width() != 1280 || sps.Height() != 720 || sps.ProfileIdc != 66 {
		t.Fatalf("SPS: expected 1280x720 profile 66, got %dx%d profile %d", sps.Width(), sps.Height(), sps.ProfileIdc)
	}
}

// The synthesized frames depacketize (pion's RFC 6184 depacketizer) into
// the NAL units a keyframe and an inter frame have, and every payload
// carries its tag at the end.
func TestFramesDepacketizeAndCarryTags(t *testing.T) {
	key, inter := frameSizes(2_436_000)
	if key < 40_000 || key > 80_000 || inter < 6_000 || inter > 14_000 {
		t.Fatalf("frame sizes at 2.4 Mbit/s: expected keyframe 40–80 kB and inter 6–14 kB, got %d and %d", key, inter)
	}
	for _, tc := range []struct {
		name  string
		size  int
		key   bool
		types []byte // NAL unit types out of the depacketizer, in order
	}{
		{"keyframe", key, true, []byte{7, 8, 12, 5}},
		{"inter", inter, false, []byte{1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			payloads := videoFrame(tc.size, tc.key, 9)
			var avc []byte // length-prefixed NAL units
			d := &codecs.H264Packet{IsAVC: true}
			for i, p := range payloads {
				if len(p) > maxPayload {
					t.Fatalf("payload %d: %d bytes, over %d", i, len(p), maxPayload)
				}
				putTag(p, tag{kind: kindVideo, counter: uint32(i), sent: int64(1000 + i)})
				g, ok := readTag(p)
				if !ok || g.counter != uint32(i) || g.sent != int64(1000+i) {
					t.Fatalf("payload %d: expected tag counter %d, got %+v (ok %v)", i, i, g, ok)
				}
				out, err := d.Unmarshal(p)
				if err != nil {
					t.Fatalf("payload %d does not depacketize: %v", i, err)
				}
				avc = append(avc, out...)
			}
			var types []byte
			var total int
			for b := avc; len(b) >= 4; {
				n := int(binary.BigEndian.Uint32(b))
				if n == 0 || 4+n > len(b) {
					t.Fatalf("NAL unit length %d at %d of %d bytes", n, len(avc)-len(b), len(avc))
				}
				types = append(types, b[4]&0x1f)
				total += n
				b = b[4+n:]
			}
			if !bytes.Equal(types, tc.types) {
				t.Fatalf("NAL unit types: expected %v, got %v", tc.types, types)
			}
			if total < tc.size {
				t.Fatalf("frame: expected at least %d bytes of NAL units, got %d", tc.size, total)
			}
		})
	}
}

func TestLossOf(t *testing.T) {
	counts := [][2]int64{{100, 50}, {98, 50}, {90, 0}, {101, 50}}
	v := lossOf(counts, 0, 100)
	if math.Abs(v.Max-0.1) > 1e-9 || v.Min != 0 || v.Over1Pct != 2 {
		t.Fatalf("video: expected max 10%% and 2 viewers ≥ 1%%, got %+v", v)
	}
	if want := (0 + 0.02 + 0.1 + 0) / 4; v.Mean < want-1e-9 || v.Mean > want+1e-9 {
		t.Fatalf("video mean: expected %v, got %v", want, v.Mean)
	}
	if a := lossOf(counts, 1, 50); a.Max != 1 || a.Min != 0 || a.Over1Pct != 1 {
		t.Fatalf("audio: expected one viewer with everything lost, got %+v", a)
	}
}
