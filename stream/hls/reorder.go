package hls

import (
	"time"

	"github.com/pion/rtp"
)

// The reorder buffer's bounds: it holds at most reorderMax packets that
// arrived ahead of a missing one, for at most Options.ReorderWait.
const (
	reorderSlots = 64 // ring size, a power of two above reorderMax
	reorderMax   = 32
)

// reorderBuffer puts one RTP stream's packets back in sequence-number order
// before the depacketizer sees them. A packet that arrives after one with a
// higher number is held for: when the missing one comes within the wait,
// the frame is whole; when it does not (lost for good), the buffer gives up
// and passes on what it holds, and the depacketizer sees the gap. So a
// reordered packet costs nothing, and a lost one costs at most the wait.
//
// Held packets are copies (the caller's packet and payload are reused), in
// per-slot buffers that are kept for the next packets.
type reorderBuffer struct {
	wait    time.Duration
	started bool
	ssrc    uint32
	next    uint16 // the sequence number the depacketizer expects
	held    int
	slots   [reorderSlots]heldPacket
	out     rtp.Packet // handed to emit, valid during the call
}

type heldPacket struct {
	used    bool
	seq     uint16
	ts      uint32
	marker  bool
	payload []byte
	arrival time.Time
}

// push takes one packet and emits, in order, every packet it can now pass
// on. A packet older than the ones already passed on goes through as it is:
// the depacketizer counts it late.
func (b *reorderBuffer) push(pkt *rtp.Packet, arrival time.Time, emit func(*rtp.Packet, time.Time)) {
	if !b.started || pkt.SSRC != b.ssrc {
		b.flush(emit)
		b.started, b.ssrc, b.next = true, pkt.SSRC, pkt.SequenceNumber
	}
	d := int(int16(pkt.SequenceNumber - b.next))
	switch {
	case d < -resetJump || d >= reorderSlots:
		// A restarted sequence, or too far ahead to wait for what is
		// missing: pass on everything held, then this.
		b.flush(emit)
		b.next = pkt.SequenceNumber + 1
		emit(pkt, arrival)
		return
	case d < 0:
		emit(pkt, arrival)
		return
	case d == 0:
		b.next++
		emit(pkt, arrival)
	default:
		s := &b.slots[pkt.SequenceNumber%reorderSlots]
		if !s.used { // else a duplicate
			s.used, s.seq, s.ts, s.marker, s.arrival = true, pkt.SequenceNumber, pkt.Timestamp, pkt.Marker, arrival
			s.payload = append(s.payload[:0], pkt.Payload...)
			b.held++
		}
	}
	b.drain(emit)
	b.expire(arrival, emit)
}

// expire gives up on the missing packet when the buffer is full or its
// oldest packet has waited long enough; the muxer also calls it as other
// packets arrive, so a gap at the end of a burst is not held forever.
func (b *reorderBuffer) expire(now time.Time, emit func(*rtp.Packet, time.Time)) {
	for b.held > 0 {
		first := b.firstHeld()
		if b.held < reorderMax && now.Sub(b.slots[first%reorderSlots].arrival) < b.wait {
			return
		}
		b.next = first // the packets before it are lost
		b.drain(emit)
	}
}

// firstHeld is the lowest sequence number held; b.held > 0.
func (b *reorderBuffer) firstHeld() uint16 {
	for i := uint16(1); i < reorderSlots; i++ {
		if s := &b.slots[(b.next+i)%reorderSlots]; s.used && s.seq == b.next+i {
			return b.next + i
		}
	}
	return b.next // unreachable while b.held counts the used slots
}

// drain emits the held packets that follow b.next without a hole.
func (b *reorderBuffer) drain(emit func(*rtp.Packet, time.Time)) {
	for b.held > 0 {
		s := &b.slots[b.next%reorderSlots]
		if !s.used || s.seq != b.next {
			return
		}
		b.out = rtp.Packet{Header: rtp.Header{SSRC: b.ssrc, SequenceNumber: s.seq, Timestamp: s.ts, Marker: s.marker}, Payload: s.payload}
		s.used = false
		b.held--
		b.next++
		emit(&b.out, s.arrival)
	}
}

// flush passes on everything held, in order, gaps and all.
func (b *reorderBuffer) flush(emit func(*rtp.Packet, time.Time)) {
	for b.held > 0 {
		b.next = b.firstHeld()
		b.drain(emit)
	}
}
