package gateway

import (
	"time"

	"golang.org/x/net/http2"
)

// h2Guard watches the frames a client sends on an HTTP/2 connection for
// floods of the frames that make a server work without asking it for
// anything: PING and SETTINGS (each owes an ACK), PRIORITY, CONTINUATION
// (CVE-2024-27316), and empty DATA frames that do not end their stream;
// and for the rapid reset (CVE-2023-44487), streams opened and cancelled
// at once, each costing the server a request's setup. x/net bounds what
// such frames can make it hold (its queue of control frames, of handlers,
// of header bytes); the guard bounds what they can make it do, and ends
// the connection with GOAWAY ENHANCE_YOUR_CALM past either budget:
//
//   - free frames: h2FloodBurst at once, h2FloodPerSecond on average;
//   - resets: each RST_STREAM adds 2 to a debt and each new stream takes 1
//     off it (never below 0); past h2ResetDebt the client is resetting
//     more than half the streams it opens, many times over. This budget
//     counts frames, not time, so a server slowed by load (reading the
//     attack more slowly) does not stretch it.
//
// Browsers send a handful of free frames per page (SETTINGS and its ACK),
// and reset a few streams when a player leaves a page or a part it
// preloaded is not needed.
//
// It reads the frame headers in the bytes x/net reads, without copying or
// decoding anything: 9 bytes of each frame, after the 24-byte preface.
type h2Guard struct {
	preface int     // preface bytes still to pass
	hdr     [9]byte // a frame header split across reads
	hn      int     // bytes of hdr filled
	skip    int     // payload bytes of the current frame still to pass
	tat     int64   // theoretical arrival time of the next free frame (GCRA), unix ns
	debt    int     // resets owed (see above)
	last    uint32  // the highest stream a HEADERS frame opened
	started bool
	err     error // set once the budget is spent; every later read returns it
}

// Frame types and flags the guard reads (RFC 9113 §6).
const (
	frameData         = 0x0
	frameHeaders      = 0x1
	framePriority     = 0x2
	frameRSTStream    = 0x3
	frameSettings     = 0x4
	framePing         = 0x6
	frameContinuation = 0x9

	flagEndStream = 0x1 // DATA
	flagAck       = 0x1 // SETTINGS, PING
)

var errFlood = http2.ConnectionError(http2.ErrCodeEnhanceYourCalm)

// scan reads the frame headers in p, the bytes just read from the client,
// each free frame costing every; it reports whether this read spent the
// budget (the next read then fails with errFlood).
func (g *h2Guard) scan(p []byte, every time.Duration) bool {
	if !g.started {
		g.started, g.preface = true, len(http2.ClientPreface)
	}
	if g.preface > 0 {
		n := min(g.preface, len(p))
		g.preface -= n
		p = p[n:]
	}
	now := int64(0)
	for len(p) > 0 {
		if g.skip > 0 {
			n := min(g.skip, len(p))
			g.skip -= n
			p = p[n:]
			continue
		}
		n := copy(g.hdr[g.hn:], p)
		g.hn += n
		p = p[n:]
		if g.hn < len(g.hdr) {
			break
		}
		g.hn = 0
		length := int(g.hdr[0])<<16 | int(g.hdr[1])<<8 | int(g.hdr[2])
		g.skip = length
		switch typ := g.hdr[3]; {
		case typ == frameRSTStream:
			if g.debt += 2; g.debt > h2ResetDebt && g.err == nil {
				g.err = errFlood
				return true
			}
			continue
		case typ == frameHeaders:
			id := uint32(g.hdr[5]&0x7f)<<24 | uint32(g.hdr[6])<<16 | uint32(g.hdr[7])<<8 | uint32(g.hdr[8])
			if id > g.last {
				g.last = id
				g.debt = max(g.debt-1, 0)
			}
			continue
		case !free(typ, g.hdr[4], length):
			continue
		}
		if now == 0 {
			now = time.Now().UnixNano()
		}
		g.tat = max(g.tat, now) + int64(every)
		if g.tat-now > h2FloodBurst*int64(every) && g.err == nil {
			g.err = errFlood
			return true
		}
	}
	return false
}

// free reports whether a frame asks the server for nothing it could
// answer with content.
func free(typ, flags byte, length int) bool {
	switch typ {
	case framePing, frameSettings:
		return flags&flagAck == 0
	case framePriority, frameContinuation:
		return true
	case frameData:
		return length == 0 && flags&flagEndStream == 0
	}
	return false
}
