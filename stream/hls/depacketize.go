package hls

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/pion/rtp"
)

// maxFrameSize bounds one H.264 access unit; a publisher sending more is
// broken or hostile, and the frame is dropped.
const maxFrameSize = 4 << 20

// H.264 NAL unit types (RFC 6184 adds the packetization types 24-29).
const (
	naluNonIDR = 1
	naluIDR    = 5
	naluSPS    = 7
	naluSTAPA  = 24
	naluFUA    = 28
)

var errMalformed = errors.New("hls: malformed H264 RTP payload")

// frame is one H.264 access unit, its NAL units without start codes. Its
// memory belongs to the frame: gohlslib keeps parameter sets by reference.
type frame struct {
	nalus     [][]byte
	key       bool
	ssrc      uint32
	timestamp uint32
	arrival   time.Time // of its first packet
}

// seqTracker follows one RTP sequence number space.
type seqTracker struct {
	started bool
	ssrc    uint32
	next    uint16
}

type seqResult uint8

const (
	seqOK    seqResult = iota
	seqReset           // first packet, a new SSRC or a jump no gap explains
	seqGap             // packets were lost
	seqLate            // older than one already seen (reordered or duplicated)
)

// resetJump is the distance, in packets, beyond which a sequence number is a
// restarted stream rather than a gap or a late packet.
const resetJump = 3000

// track classifies seq; on seqGap it also returns how many packets are missing.
func (s *seqTracker) track(ssrc uint32, seq uint16) (seqResult, int) {
	if !s.started || ssrc != s.ssrc {
		s.started, s.ssrc, s.next = true, ssrc, seq+1
		return seqReset, 0
	}
	d := int(int16(seq - s.next))
	switch {
	case d == 0:
		s.next++
		return seqOK, 0
	case d < -resetJump || d > resetJump:
		s.next = seq + 1
		return seqReset, 0
	case d < 0:
		return seqLate, 0
	default:
		s.next = seq + 1
		return seqGap, d
	}
}

// trackClock turns one track's 32-bit RTP timestamps into pts on the muxer's
// time base, whose zero is the arrival of the stream's first packet. Each
// track is placed on that base by the arrival of its own first packet (the
// two RTP clocks of a WebRTC publisher start at unrelated values), then
// follows its RTP clock. A new SSRC or a jump of more than ten seconds
// re-places the track by arrival, never earlier than where it was.
type trackClock struct {
	started bool
	ssrc    uint32
	last    uint32
	ext     int64 // RTP ticks since the base
	base    int64 // pts of the base, in the track's rate
	lastPTS int64
}

func ticks(d time.Duration, rate int64) int64 {
	return int64(d/time.Second)*rate + int64(d%time.Second)*rate/int64(time.Second)
}

func (c *trackClock) pts(ssrc, ts uint32, arrival, epoch time.Time, clockRate uint32, trackRate int64) int64 {
	rate := int64(clockRate)
	rebase := !c.started || ssrc != c.ssrc
	if !rebase {
		d := int64(int32(ts - c.last))
		if d > 10*rate || d < -10*rate {
			rebase = true
		} else {
			c.ext += d
		}
	}
	if rebase {
		base := ticks(arrival.Sub(epoch), trackRate)
		if c.started && base <= c.lastPTS {
			base = c.lastPTS + trackRate/100
		}
		c.started, c.ssrc, c.ext, c.base = true, ssrc, 0, base
	}
	c.last = ts
	var p int64
	if rate == trackRate {
		p = c.base + c.ext
	} else {
		p = c.base + c.ext/rate*trackRate + c.ext%rate*trackRate/rate
	}
	c.lastPTS = p
	return p
}

// h264Depacketizer rebuilds access units from RFC 6184 packets: single NAL
// units, STAP-A and FU-A (the modes WebRTC uses). An access unit ends at the
// marker bit or when the timestamp changes. After any loss it drops access
// units until the next keyframe: a frame with a hole, or one whose reference
// is gone, would only show as corruption in players.
type h264Depacketizer struct {
	seq      seqTracker
	maxFrame int
	emit     func(*frame)

	buf     []byte
	spans   [][2]int // NAL units in buf
	fuStart int      // offset in buf of the FU-A being reassembled, -1 if none
	have    bool     // an access unit is open
	key     bool
	keyish  bool // holds an SPS or an IDR: a keyframe is arriving
	broken  bool
	ts      uint32
	ssrc    uint32
	arrival time.Time

	out frame // handed to emit, valid during the call

	waitKey bool // after a loss, until a keyframe
	lost    int  // packets lost since last read
	dropped int  // access units dropped since last read
	late    int  // late packets since last read
}

func newH264Depacketizer(emit func(*frame)) *h264Depacketizer {
	return &h264Depacketizer{maxFrame: maxFrameSize, emit: emit, fuStart: -1, waitKey: true}
}

// keyArriving says that the access unit being assembled is a keyframe.
func (d *h264Depacketizer) keyArriving() bool { return d.have && d.keyish && !d.broken }

// needKey says that nothing can be packaged until a keyframe and none is
// arriving.
func (d *h264Depacketizer) needKey() bool { return d.waitKey && !d.keyArriving() }

// push adds one packet, emitting the access units it completes. The error
// reports a malformed payload; the access unit it belongs to is dropped.
func (d *h264Depacketizer) push(pkt *rtp.Packet, arrival time.Time) error {
	switch res, n := d.seq.track(pkt.SSRC, pkt.SequenceNumber); res {
	case seqLate:
		d.late++
		return nil
	case seqGap:
		d.lost += n
		d.broken = true
		d.waitKey = true
	case seqReset:
		if d.have {
			d.broken = true
		}
		d.waitKey = true
	}
	if d.have && (pkt.Timestamp != d.ts || pkt.SSRC != d.ssrc) {
		d.flush()
	}
	if !d.have {
		d.have, d.ts, d.ssrc, d.arrival = true, pkt.Timestamp, pkt.SSRC, arrival
	}
	err := d.payload(pkt.Payload)
	if err != nil {
		d.broken = true
	}
	if pkt.Marker {
		d.flush()
	}
	return err
}

func (d *h264Depacketizer) payload(p []byte) error {
	if len(p) == 0 {
		return nil // padding-only packet
	}
	switch typ := p[0] & 0x1f; {
	case typ >= 1 && typ <= 23:
		d.fuStart = -1
		d.add(p)
	case typ == naluSTAPA:
		d.fuStart = -1
		for rest := p[1:]; len(rest) > 0; {
			if len(rest) < 2 {
				return fmt.Errorf("%w: STAP-A truncated", errMalformed)
			}
			n := int(binary.BigEndian.Uint16(rest))
			if n == 0 || len(rest) < 2+n {
				return fmt.Errorf("%w: STAP-A unit of %d bytes in %d", errMalformed, n, len(rest)-2)
			}
			d.add(rest[2 : 2+n])
			rest = rest[2+n:]
		}
	case typ == naluFUA:
		if len(p) < 2 {
			return fmt.Errorf("%w: FU-A without header", errMalformed)
		}
		start, end := p[1]&0x80 != 0, p[1]&0x40 != 0
		switch {
		case start:
			if p[1]&0x1f == naluIDR {
				d.keyish = true
			}
			d.fuStart = len(d.buf)
			d.buf = append(d.buf, p[0]&0xe0|p[1]&0x1f)
		case d.fuStart < 0:
			// The start was lost (the gap is already recorded) or never sent.
			d.broken = true
			return nil
		}
		d.buf = append(d.buf, p[2:]...)
		if end {
			d.spans = append(d.spans, [2]int{d.fuStart, len(d.buf)})
			if p[1]&0x1f == naluIDR {
				d.key, d.keyish = true, true
			}
			d.fuStart = -1
		}
	default:
		return fmt.Errorf("%w: NAL unit type %d not used by WebRTC", errMalformed, typ)
	}
	if len(d.buf) > d.maxFrame {
		d.broken = true
		d.buf, d.spans, d.fuStart = d.buf[:0], d.spans[:0], -1
	}
	return nil
}

func (d *h264Depacketizer) add(nalu []byte) {
	switch nalu[0] & 0x1f {
	case naluIDR:
		d.key, d.keyish = true, true
	case naluSPS:
		d.keyish = true
	}
	start := len(d.buf)
	d.buf = append(d.buf, nalu...)
	d.spans = append(d.spans, [2]int{start, len(d.buf)})
}

func (d *h264Depacketizer) flush() {
	if !d.have {
		return
	}
	if d.fuStart >= 0 {
		d.broken = true // a fragmented unit without its end
	}
	switch {
	case d.broken:
		d.waitKey = true
		d.dropped++
	case len(d.spans) == 0:
		// parameter-set-only or empty: nothing to show
	case d.waitKey && !d.key:
		d.dropped++
	default:
		d.waitKey = false
		// One allocation for the frame's bytes and one for its slices:
		// gohlslib keeps SPS and PPS by reference.
		data := append(make([]byte, 0, len(d.buf)), d.buf...)
		nalus := make([][]byte, len(d.spans))
		for i, s := range d.spans {
			nalus[i] = data[s[0]:s[1]:s[1]]
		}
		d.out = frame{nalus: nalus, key: d.key, ssrc: d.ssrc, timestamp: d.ts, arrival: d.arrival}
		d.emit(&d.out)
	}
	d.buf, d.spans, d.fuStart = d.buf[:0], d.spans[:0], -1
	d.have, d.key, d.keyish, d.broken = false, false, false, false
}
