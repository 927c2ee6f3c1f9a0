package stream

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/ipv4"
)

// Batches: at most batchSize messages per sendmmsg; a message is one
// datagram or, with UDP GSO, a train of up to maxSegments datagrams of one
// size (the last may be shorter) to one viewer, at most maxTrain bytes.
const (
	batchSize   = 64
	maxSegments = 64
	maxTrain    = 60 << 10
	mtu         = 1500
)

// sendBatcher is the node's ICE UDP socket as pion's UDP mux sees it. While
// a fan-out holds it, datagrams written to it are queued and sent together
// with sendmmsg, a batch per system call instead of a call per viewer, and
// consecutive datagrams to one viewer (a group of packets) become one UDP
// GSO train: the kernel routes and builds headers once for the train.
// Writes made while nothing holds it (ICE, DTLS, RTCP, retransmissions) go
// out at once.
//
// The kernel's cost per datagram is most of what limits how many viewers
// a core serves; see BenchmarkSendBatcher for what batching saves.
type sendBatcher struct {
	conn *net.UDPConn
	pc   *ipv4.PacketConn // sendmmsg; it also takes IPv6 and v4-mapped addresses
	gso  atomic.Bool      // UDP GSO works on this socket (off after a refusal)

	mu    sync.Mutex
	holds int
	msgs  []ipv4.Message
	q     []queued
	n     int // messages queued

	sent, failed atomic.Uint64
}

// queued is what a message holds besides its bytes.
type queued struct {
	to        netip.AddrPort
	addr      net.UDPAddr
	seg, last int // datagram size of the train, size of its last datagram
	segs      int
	oob       []byte // UDP_SEGMENT control message
}

func newSendBatcher(conn *net.UDPConn) *sendBatcher {
	b := &sendBatcher{conn: conn, pc: ipv4.NewPacketConn(conn),
		msgs: make([]ipv4.Message, batchSize), q: make([]queued, batchSize)}
	for i := range b.msgs {
		b.msgs[i].Buffers = [][]byte{make([]byte, 0, mtu)}
		b.q[i].addr.IP = make(net.IP, 0, net.IPv6len)
		b.q[i].oob = udpSegmentCmsg()
		b.msgs[i].Addr = &b.q[i].addr
	}
	b.gso.Store(gsoSupported)
	return b
}

// hold starts a burst of writes (a group's fan-out); they are queued until
// the last holder releases or the batch is full.
func (b *sendBatcher) hold() {
	b.mu.Lock()
	b.holds++
	b.mu.Unlock()
}

// release ends a burst; the last holder sends what is queued.
func (b *sendBatcher) release() {
	b.mu.Lock()
	b.holds--
	if b.holds == 0 && b.n > 0 {
		b.flushLocked()
	}
	b.mu.Unlock()
}

// WriteToAddrPort queues p for addr while the batcher is held, and sends it
// at once otherwise. A queued datagram counts as written: UDP promises no
// more, and one that fails later is counted (sendErrors, Stats).
func (b *sendBatcher) WriteToAddrPort(p []byte, addr netip.AddrPort) (int, error) {
	b.mu.Lock()
	if b.holds == 0 || len(p) > mtu {
		if b.n > 0 {
			b.flushLocked() // what was queued before p leaves before it
		}
		b.mu.Unlock()
		n, err := b.conn.WriteToUDPAddrPort(p, addr)
		b.count(err)
		return n, err
	}
	if b.n > 0 && b.gso.Load() {
		q, m := &b.q[b.n-1], &b.msgs[b.n-1]
		if q.to == addr && q.segs < maxSegments && q.last == q.seg && len(p) <= q.seg && len(m.Buffers[0])+len(p) <= maxTrain {
			m.Buffers[0] = append(m.Buffers[0], p...)
			q.segs++
			q.last = len(p)
			b.mu.Unlock()
			return len(p), nil
		}
	}
	q, m := &b.q[b.n], &b.msgs[b.n]
	m.Buffers[0] = append(m.Buffers[0][:0], p...)
	ip := addr.Addr().Unmap()
	if ip.Is4() {
		v4 := ip.As4()
		q.addr.IP = append(q.addr.IP[:0], v4[:]...)
	} else {
		v6 := ip.As16()
		q.addr.IP = append(q.addr.IP[:0], v6[:]...)
	}
	q.addr.Port, q.addr.Zone = int(addr.Port()), ip.Zone()
	q.to, q.seg, q.last, q.segs = addr, len(p), len(p), 1
	b.n++
	if b.n == len(b.msgs) {
		b.flushLocked()
	}
	b.mu.Unlock()
	return len(p), nil
}

// flushLocked sends the queue. A message sendmmsg refuses is sent again a
// datagram at a time, so one bad address costs only its own datagrams, a
// socket or device that refuses GSO trains stops getting them, and a
// platform without sendmmsg still works.
func (b *sendBatcher) flushLocked() {
	for i := range b.n {
		m, q := &b.msgs[i], &b.q[i]
		m.OOB = nil
		if q.segs > 1 {
			setSegmentSize(q.oob, q.seg)
			m.OOB = q.oob
		}
	}
	ms, qs := b.msgs[:b.n], b.q[:b.n]
	b.n = 0
	for len(ms) > 0 {
		n, err := b.pc.WriteBatch(ms, 0)
		n = max(n, 0)
		segs := 0
		for _, q := range qs[:n] {
			segs += q.segs
		}
		b.sent.Add(uint64(segs))
		ms, qs = ms[n:], qs[n:]
		if err == nil && n > 0 || len(ms) == 0 {
			continue
		}
		if ok := b.sendOneByOne(ms[0].Buffers[0], &qs[0]); ok == qs[0].segs && ok > 1 {
			// The datagrams went out alone: the train was refused.
			b.gso.Store(false)
		}
		ms, qs = ms[1:], qs[1:]
	}
}

// sendOneByOne sends a message's datagrams each with its own system call
// and says how many went out.
func (b *sendBatcher) sendOneByOne(train []byte, q *queued) int {
	ok := 0
	for off := 0; off < len(train); off += q.seg {
		d := train[off:min(off+q.seg, len(train))]
		_, err := b.conn.WriteToUDPAddrPort(d, q.to)
		if b.count(err) {
			ok++
		}
	}
	return ok
}

// count counts one datagram sent or failed, and says whether it was sent.
func (b *sendBatcher) count(err error) bool {
	if err != nil {
		b.failed.Add(1)
		return false
	}
	b.sent.Add(1)
	return true
}

// sendErrors is how many datagrams could not be sent.
func (b *sendBatcher) sendErrors() uint64 { return b.failed.Load() }

// ReadFromAddrPort, ReadFrom and the rest are the socket's own.
func (b *sendBatcher) ReadFromAddrPort(p []byte) (int, netip.AddrPort, error) {
	return b.conn.ReadFromUDPAddrPort(p)
}

func (b *sendBatcher) ReadFrom(p []byte) (int, net.Addr, error) { return b.conn.ReadFrom(p) }

func (b *sendBatcher) WriteTo(p []byte, addr net.Addr) (int, error) {
	if a, ok := addr.(*net.UDPAddr); ok {
		return b.WriteToAddrPort(p, a.AddrPort())
	}
	return b.conn.WriteTo(p, addr)
}

func (b *sendBatcher) Close() error                       { return b.conn.Close() }
func (b *sendBatcher) LocalAddr() net.Addr                { return b.conn.LocalAddr() }
func (b *sendBatcher) SetDeadline(t time.Time) error      { return b.conn.SetDeadline(t) }
func (b *sendBatcher) SetReadDeadline(t time.Time) error  { return b.conn.SetReadDeadline(t) }
func (b *sendBatcher) SetWriteDeadline(t time.Time) error { return b.conn.SetWriteDeadline(t) }
