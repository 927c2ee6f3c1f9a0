package stream

import (
	"sync"

	"github.com/pion/rtp"
)

// packetCache keeps a track's most recent packets, in the stream's own
// sequence space, so any viewer's NACK is answered from one copy per stream
// rather than one buffer per viewer.
type packetCache struct {
	mu    sync.Mutex
	slots []cachedPacket
	mask  uint16
}

type cachedPacket struct {
	valid  bool
	header rtp.Header
	buf    []byte // payload
}

// newPacketCache keeps the last size packets; size is rounded up to a power
// of two between 64 and 32768.
func newPacketCache(size int) *packetCache {
	n := 64
	for n < size && n < 1<<15 {
		n <<= 1
	}
	return &packetCache{slots: make([]cachedPacket, n), mask: uint16(n - 1)}
}

func (c *packetCache) put(p *rtp.Packet) {
	c.mu.Lock()
	s := &c.slots[p.SequenceNumber&c.mask]
	s.valid = true
	s.header = p.Header
	s.header.CSRC = nil // never kept: forwarded packets carry none we rely on
	s.buf = append(s.buf[:0], p.Payload...)
	c.mu.Unlock()
}

// get copies packet seq into dst (its payload into dst's buffer) and
// reports whether it was still cached.
func (c *packetCache) get(seq uint16, dst *rtp.Packet, buf []byte) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := &c.slots[seq&c.mask]
	if !s.valid || s.header.SequenceNumber != seq {
		return buf, false
	}
	dst.Header = s.header
	buf = append(buf[:0], s.buf...)
	dst.Payload = buf
	return buf, true
}
