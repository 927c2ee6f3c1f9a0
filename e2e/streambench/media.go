package main

import (
	"encoding/binary"
	"time"
)

// The synthesized studio stream: H.264 (1280x720 Constrained Baseline,
// 30 fps, an IDR every 2 s or at once after a PLI) and Opus (20 ms frames),
// 2.5 Mbit/s together. Payloads are valid H.264 RTP (RFC 6184: STAP-A with
// SPS, PPS and filler for the keyframe's first packet, FU-A for slices) so
// that a depacketizer downstream (the LL-HLS muxer) works on them as on a
// camera's; the slice data is not decodable.
//
// Every payload, audio too, ends with a 16-byte tag the receivers read:
//
//	magic 0xB5 0x7E | kind (0 video, 1 audio) | flags (1: keyframe) |
//	counter uint32 (per kind, from 0) | send time, Unix ns, int64
//
// Loss is counted from the counters, not from RTP sequence numbers (which
// hedge rewrites), and one-way delay from the send time (same clock: one
// machine).
const (
	tagLen      = 16
	tagMagic0   = 0xB5
	tagMagic1   = 0x7E
	flagKey     = 1
	kindVideo   = 0
	kindAudio   = 1
	maxPayload  = 1200 // bytes of RTP payload, as browsers packetize
	fps         = 30
	gopFrames   = 2 * fps
	audioPeriod = 20 * time.Millisecond
	audioBytes  = 160 // 64 kbit/s Opus
)

type tag struct {
	kind    byte
	flags   byte
	counter uint32
	sent    int64
}

func putTag(b []byte, t tag) {
	b = b[len(b)-tagLen:]
	b[0], b[1], b[2], b[3] = tagMagic0, tagMagic1, t.kind, t.flags
	binary.BigEndian.PutUint32(b[4:], t.counter)
	binary.BigEndian.PutUint64(b[8:], uint64(t.sent))
}

// readTag reads the tag at the end of an RTP packet or payload (the tag is
// the last bytes of either: the synthesized packets carry no padding).
func readTag(b []byte) (tag, bool) {
	if len(b) < tagLen {
		return tag{}, false
	}
	b = b[len(b)-tagLen:]
	if b[0] != tagMagic0 || b[1] != tagMagic1 || b[2] > kindAudio {
		return tag{}, false
	}
	return tag{kind: b[2], flags: b[3], counter: binary.BigEndian.Uint32(b[4:]), sent: int64(binary.BigEndian.Uint64(b[8:]))}, true
}

// frameSizes returns the size of a keyframe and of another frame for a
// video bitrate: a keyframe is about 6 times an inter frame (encoders at
// this rate and GOP), so a GOP of 60 frames spends ~9% on its keyframe.
func frameSizes(videoBitsPerSec int) (key, inter int) {
	perGOP := videoBitsPerSec / 8 * gopFrames / fps
	inter = perGOP / (gopFrames - 1 + 6)
	return 6 * inter, inter
}

// videoFrame packetizes one frame of size bytes into payloads (without the
// tags' contents, which are written at send time: every payload already
// has room for its tag at the end).
func videoFrame(size int, key bool, filler byte) [][]byte {
	var out [][]byte
	nalType := byte(1)
	if key {
		nalType = 5
		// STAP-A: SPS, PPS, and a filler NAL (type 12) that ends in the tag.
		p := []byte{24}
		for _, nal := range [][]byte{spsNAL, ppsNAL} {
			p = binary.BigEndian.AppendUint16(p, uint16(len(nal)))
			p = append(p, nal...)
		}
		fill := make([]byte, 1+8+tagLen)
		fill[0] = 12
		for i := 1; i < len(fill)-tagLen; i++ {
			fill[i] = 0xFF
		}
		p = binary.BigEndian.AppendUint16(p, uint16(len(fill)))
		p = append(p, fill...)
		out = append(out, p)
	}
	// FU-A fragments of one slice NAL: indicator NRI=3 type 28, header
	// with start/end bits and the slice's type.
	const body = maxPayload - 2
	n := max(1, (size+body-1)/body)
	for i := range n {
		chunk := min(body, size-i*body)
		chunk = max(chunk, tagLen+1)
		p := make([]byte, 2+chunk)
		p[0] = 0x60 | 28
		p[1] = nalType
		if i == 0 {
			p[1] |= 0x80
		}
		if i == n-1 {
			p[1] |= 0x40
		}
		for j := 2; j < len(p)-tagLen; j++ {
			p[j] = filler + byte(j)
		}
		out = append(out, p)
	}
	return out
}

// bitWriter writes H.264 RBSP bits (fixed-width and Exp-Golomb).
type bitWriter struct {
	b []byte
	n uint // bits written
}

func (w *bitWriter) bit(v uint32) {
	if w.n%8 == 0 {
		w.b = append(w.b, 0)
	}
	if v != 0 {
		w.b[len(w.b)-1] |= 0x80 >> (w.n % 8)
	}
	w.n++
}

func (w *bitWriter) bits(v uint32, n int) {
	for i := n - 1; i >= 0; i-- {
		w.bit(v >> uint(i) & 1)
	}
}

func (w *bitWriter) ue(v uint32) {
	x := v + 1
	n := 0
	for t := x; t > 1; t >>= 1 {
		n++
	}
	w.bits(0, n)
	w.bits(x, n+1)
}

func (w *bitWriter) se(v int32) {
	if v > 0 {
		w.ue(uint32(2*v - 1))
	} else {
		w.ue(uint32(-2 * v))
	}
}

// trailing adds rbsp_trailing_bits and emulation prevention.
func (w *bitWriter) trailing() []byte {
	w.bit(1)
	for w.n%8 != 0 {
		w.bit(0)
	}
	var out []byte
	zeros := 0
	for _, c := range w.b {
		if zeros >= 2 && c <= 3 {
			out = append(out, 3)
			zeros = 0
		}
		out = append(out, c)
		if c == 0 {
			zeros++
		} else {
			zeros = 0
		}
	}
	return out
}

// spsNAL and ppsNAL describe 1280x720 Constrained Baseline, level 3.1.
var spsNAL, ppsNAL = makeSPS(), makePPS()

func makeSPS() []byte {
	w := &bitWriter{}
	w.bits(66, 8)   // profile_idc: Baseline
	w.bits(0xC0, 8) // constraint_set0_flag, constraint_set1_flag
	w.bits(31, 8)   // level_idc 3.1
	w.ue(0)         // seq_parameter_set_id
	w.ue(0)         // log2_max_frame_num_minus4
	w.ue(2)         // pic_order_cnt_type
	w.ue(1)         // max_num_ref_frames
	w.bit(0)        // gaps_in_frame_num_value_allowed_flag
	w.ue(1280/16 - 1)
	w.ue(720/16 - 1)
	w.bit(1) // frame_mbs_only_flag
	w.bit(1) // direct_8x8_inference_flag
	w.bit(0) // frame_cropping_flag
	w.bit(0) // vui_parameters_present_flag
	return append([]byte{0x67}, w.trailing()...)
}

func makePPS() []byte {
	w := &bitWriter{}
	w.ue(0)      // pic_parameter_set_id
	w.ue(0)      // seq_parameter_set_id
	w.bit(0)     // entropy_coding_mode_flag (CAVLC)
	w.bit(0)     // bottom_field_pic_order_in_frame_present_flag
	w.ue(0)      // num_slice_groups_minus1
	w.ue(0)      // num_ref_idx_l0_default_active_minus1
	w.ue(0)      // num_ref_idx_l1_default_active_minus1
	w.bit(0)     // weighted_pred_flag
	w.bits(0, 2) // weighted_bipred_idc
	w.se(0)      // pic_init_qp_minus26
	w.se(0)      // pic_init_qs_minus26
	w.se(0)      // chroma_qp_index_offset
	w.bit(1)     // deblocking_filter_control_present_flag
	w.bit(0)     // constrained_intra_pred_flag
	w.bit(0)     // redundant_pic_cnt_present_flag
	return append([]byte{0x68}, w.trailing()...)
}
