package gateway

import (
	"time"

	"golang.org/x/net/http2"
)

// h2Guard watches the frames a client sends on an HTTP/2 connection for
// floods of the frames that make a server work without asking it for
// anything: PING and SETTINGS (each owes an ACK), PRIORITY, RST_STREAM
// (the rapid reset, CVE-2023-44487: a stream opened and cancelled at once),
// CONTINUATION (CVE-2024-27316), and empty DATA frames that do not end
// their stream. x/net bounds what such frames can make it hold (its queue
// of control frames, of handlers, of header bytes); the guard bounds what
// they can make it do: past h2FloodBurst at once or h2FloodPerSecond on
// average, the connection ends with GOAWAY ENHANCE_YOUR_CALM. Browsers send
// a handful of these frames per page (SETTINGS and its ACK, a few resets
// when a player cancels requests), never hundreds per second.
//
// It reads the frame headers in the bytes x/net reads, without copying or
// decoding anything: 9 bytes of each frame, after the 24-byte preface.
type h2Guard struct {
	preface int     // preface bytes still to pass
	hdr     [9]byte // a frame header split across reads
	hn      int     // bytes of hdr filled
	skip    int     // payload bytes of the current frame still to pass
	tat     int64   // theoretical arrival time of the next free frame (GCRA), unix ns
	started bool
	err     error // set once the budget is spent; every later read returns it
}

// Frame types and flags the guard reads (RFC 9113 §6).
const (
	frameData         = 0x0
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
		if !free(g.hdr[3], g.hdr[4], length) {
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
	case framePriority, frameRSTStream, frameContinuation:
		return true
	case frameData:
		return length == 0 && flags&flagEndStream == 0
	}
	return false
}
