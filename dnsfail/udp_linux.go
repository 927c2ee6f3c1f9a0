//go:build linux && (amd64 || arm64)

package dnsfail

import (
	"net"
	"net/netip"
	"runtime"
	"syscall"
	"time"
	"unsafe"
)

// The Linux UDP loop reads and writes batches with recvmmsg and sendmmsg
// directly, as gdnsd and Knot do, through the runtime's poller (a read
// that finds nothing parks the goroutine, once it has read on for as long
// as the spinner below allows); the peers' addresses stay in
// their raw form, so a query allocates nothing. Both calls are made with
// MSG_DONTWAIT and return at once, so they go through RawSyscall6: a
// system call the runtime is told about may outlast a scheduler tick (a
// sendmmsg over loopback delivers to the reader too) and get its P handed
// to another thread and back — under dnsperf that was 13k context switches
// a second and a tenth of the CPU.

// mmsghdr is struct mmsghdr of 64-bit Linux.
type mmsghdr struct {
	hdr syscall.Msghdr
	n   uint32
	_   [4]byte
}

// rawBatch is the memory of a loop's reads: headers, buffers and the
// peers' addresses, set up once.
type rawBatch struct {
	msgs  [batch]mmsghdr
	iovs  [batch]syscall.Iovec
	names [batch]syscall.RawSockaddrInet6
}

func (b *rawBatch) init(bufs [][]byte) {
	for i := range b.msgs {
		h := &b.msgs[i].hdr
		h.Name = (*byte)(unsafe.Pointer(&b.names[i]))
		h.Namelen = uint32(unsafe.Sizeof(b.names[i]))
		h.Iov = &b.iovs[i]
		h.Iovlen = 1
		b.iovs[i].Base = &bufs[i][0]
		b.iovs[i].SetLen(len(bufs[i]))
	}
}

// replies are the fast path's replies of one read, and the messages
// sendmmsg sends them in: a reply alone, or a GSO train of replies to the
// same client that are all as long as the first (the last may be shorter):
// one message, one trip through the UDP and IP send path, cut into
// datagrams by the kernel (UDP_SEGMENT).
type replies struct {
	names  [batch]syscall.RawSockaddrInet6
	namlen [batch]uint32
	iovs   [batch]syscall.Iovec
	k      int // replies

	msgs  [batch]mmsghdr
	first [batch]int // each message's first reply
	count [batch]int // and how many it carries
	cmsgs [batch][cmsgSpace]byte
	m     int // messages

	// group's scratch: each reply's client, the clients' hash table and
	// the replies in their new order.
	client [batch]uint8
	table  [groupSlots]uint8 // a client's number + 1; 0 is free
	gnames [batch]syscall.RawSockaddrInet6
	glen   [batch]uint32
	giovs  [batch]syscall.Iovec
}

const (
	solUDP     = 17
	udpSegment = 103
	maxSegs    = 64 // the kernel's UDP_MAX_SEGMENTS
	cmsgSpace  = 24 // CMSG_SPACE(2) on 64-bit Linux
	cmsgLen    = 18 // CMSG_LEN(2)
)

// pack puts replies from..k into messages, trains when gso.
func (r *replies) pack(from int, gso bool) {
	r.m = 0
	for i := from; i < r.k; i++ {
		if gso && r.m > 0 {
			j := r.m - 1
			f, c := r.first[j], r.count[j]
			seg, last, this := r.iovs[f].Len, r.iovs[f+c-1].Len, r.iovs[i].Len
			if c < maxSegs && last == seg && this <= seg && r.namlen[i] == r.namlen[f] && sameAddr(&r.names[i], &r.names[f], r.namlen[i]) {
				r.count[j]++
				continue
			}
		}
		r.first[r.m], r.count[r.m] = i, 1
		r.m++
	}
	for j := range r.m {
		f, c := r.first[j], r.count[j]
		h := &r.msgs[j].hdr
		h.Name = (*byte)(unsafe.Pointer(&r.names[f]))
		h.Namelen = r.namlen[f]
		h.Iov = &r.iovs[f]
		h.Iovlen = uint64(c)
		h.Control, h.Controllen = nil, 0
		if c > 1 {
			cm := &r.cmsgs[j]
			hdr := (*syscall.Cmsghdr)(unsafe.Pointer(&cm[0]))
			hdr.Len = cmsgLen
			hdr.Level = solUDP
			hdr.Type = udpSegment
			*(*uint16)(unsafe.Pointer(&cm[syscall.SizeofCmsghdr])) = uint16(r.iovs[f].Len)
			h.Control = &cm[0]
			h.Controllen = cmsgSpace
		}
	}
}

// groupSlots is the size of group's hash table of clients: a power of
// two, at least twice batch.
const groupSlots = 64

// group puts the replies to one client next to each other, each client's
// in the order they were read and the clients in the order of their first
// reply, so that pack makes one train of them. A client with many queries
// in flight on one socket (a forwarder, dnsperf's clients) gets them read
// interleaved with other clients' ones: without this, no two neighbours
// share an address and no train forms.
func (r *replies) group() {
	if r.k < 3 {
		return
	}
	r.table = [groupSlots]uint8{}
	var count [batch]uint8
	clients := 0
	for i := range r.k {
		h := addrHash(&r.names[i]) & (groupSlots - 1)
		for {
			c := r.table[h]
			if c == 0 {
				c = uint8(clients + 1)
				r.table[h] = c
				r.first[clients] = i
				clients++
			} else if f := r.first[c-1]; r.namlen[f] != r.namlen[i] || !sameAddr(&r.names[f], &r.names[i], r.namlen[i]) {
				h = (h + 1) & (groupSlots - 1)
				continue
			}
			r.client[i] = c - 1
			count[c-1]++
			break
		}
	}
	if clients == 1 || clients == r.k {
		return // already grouped
	}
	// Each client's place in the new order, then the replies moved there.
	var at [batch]uint8
	for c, n := 0, uint8(0); c < clients; c++ {
		at[c], n = n, n+count[c]
	}
	for i := range r.k {
		j := at[r.client[i]]
		at[r.client[i]]++
		r.gnames[j], r.glen[j], r.giovs[j] = r.names[i], r.namlen[i], r.iovs[i]
	}
	copy(r.names[:r.k], r.gnames[:r.k])
	copy(r.namlen[:r.k], r.glen[:r.k])
	copy(r.iovs[:r.k], r.giovs[:r.k])
}

// addrHash mixes a socket address's port and the last 4 bytes of its
// address (IPv4: the address; IPv6: its low bytes) into a table index.
func addrHash(sa *syscall.RawSockaddrInet6) uint32 {
	var a uint32
	if sa.Family == syscall.AF_INET {
		sa4 := (*syscall.RawSockaddrInet4)(unsafe.Pointer(sa))
		a = uint32(sa4.Addr[0])<<24 | uint32(sa4.Addr[1])<<16 | uint32(sa4.Addr[2])<<8 | uint32(sa4.Addr[3])
	} else {
		a = uint32(sa.Addr[12])<<24 | uint32(sa.Addr[13])<<16 | uint32(sa.Addr[14])<<8 | uint32(sa.Addr[15])
	}
	return ((a ^ uint32(sa.Port)<<16 ^ uint32(sa.Port)) * 0x9e3779b1) >> 26
}

// sameAddr compares the first n bytes of two socket addresses.
func sameAddr(a, b *syscall.RawSockaddrInet6, n uint32) bool {
	return string(unsafe.Slice((*byte)(unsafe.Pointer(a)), n)) == string(unsafe.Slice((*byte)(unsafe.Pointer(b)), n))
}

// loopSyscalls serves conn until it is closed; false when it cannot start
// (the portable loop takes over).
func (u *udpServer) loopSyscalls(conn *net.UDPConn) bool {
	rc, err := conn.SyscallConn()
	if err != nil {
		return false
	}
	in := make([][]byte, batch)
	out := make([][]byte, batch)
	for i := range in {
		in[i] = make([]byte, maxQuery)
		out[i] = make([]byte, 0, 65535)
	}
	var rb rawBatch
	rb.init(in)
	w := new(replies)
	gso := true // off for good once the kernel refuses a train
	var n int
	var errno syscall.Errno
	try := func(fd uintptr) bool {
		for i := range rb.msgs {
			rb.msgs[i].hdr.Namelen = uint32(unsafe.Sizeof(rb.names[i]))
		}
		r, _, e := syscall.RawSyscall6(syscall.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&rb.msgs[0])), batch, syscall.MSG_DONTWAIT, 0, 0)
		n, errno = int(r), e
		return e != syscall.EAGAIN
	}
	var sp spinner // how long to read on before parking
	recv := func(fd uintptr) bool {
		if try(fd) {
			return true
		}
		for sp.more(time.Now()) {
			runtime.Gosched() // the P's other goroutines go first
			u.spins.Add(1)
			if try(fd) {
				return true
			}
		}
		sp.park()
		return false
	}
	sent := 0 // messages
	send := func(fd uintptr) bool {
		for sent < w.m {
			r, _, e := syscall.RawSyscall6(sysSendmmsg, fd, uintptr(unsafe.Pointer(&w.msgs[sent])), uintptr(w.m-sent), syscall.MSG_DONTWAIT, 0, 0)
			switch {
			case e == syscall.EAGAIN:
				return false
			case e == syscall.EINTR:
				continue
			case e != 0 && w.count[sent] > 1:
				// The kernel refuses trains: the rest goes alone.
				gso = false
				u.gsoOff.Store(true)
				w.pack(w.first[sent], false)
				u.s.log.Info("dns: UDP GSO refused; replies go one datagram each", "error", e)
				sent = 0
				continue
			case e != 0 || r == 0:
				sent++ // this client cannot be sent to; the others can
				continue
			}
			for _, c := range w.count[sent : sent+int(r)] {
				if c > 1 {
					u.trains.Add(1)
				}
			}
			sent += int(r)
		}
		return true
	}
	for {
		if err := rc.Read(recv); err != nil {
			return true // closed
		}
		sp.woke(time.Now())
		if errno != 0 {
			continue
		}
		st := u.s.st.Load()
		sp.off = !st.readOn
		w.k = 0
		for i := range n {
			from, ok := addrPort(&rb.names[i], rb.msgs[i].hdr.Namelen)
			if !ok {
				continue
			}
			wire := in[i][:rb.msgs[i].n]
			k := w.k
			reply, res := st.serveFast(wire, out[k][:0], from.Addr(), u.s.metrics)
			switch res {
			case fastReply:
				out[k] = reply[:0]
				w.names[k] = rb.names[i]
				w.namlen[k] = rb.msgs[i].hdr.Namelen
				w.iovs[k].Base = &reply[0]
				w.iovs[k].SetLen(len(reply))
				w.k++
			case fastSlow:
				u.slow(conn, wire, from)
			}
		}
		if w.k == 0 {
			sp.served(time.Now(), n)
			continue
		}
		if gso {
			w.group()
		}
		w.pack(0, gso)
		sent = 0
		if rc.Write(send) != nil {
			return true
		}
		sp.served(time.Now(), n)
	}
}

// spinner decides how long a UDP loop keeps reading after it served a
// batch before it parks in the runtime's poller, adapting as the guest
// halt-polling of Linux's cpuidle-haltpoll does: a read that parked and
// was woken within spinMax of the last batch grows the window (twice as
// long, at least spinMax/8, at most spinMax); one woken later halves it,
// down to nothing. Parking costs a wake-up when the next query comes — on
// a VM whose idle CPU halts, tens of µs of the round trip — while a loop
// that keeps reading finds the next query at once. A server at rest
// spends nothing: the window only opens after queries arrived close
// together, and one query after a long silence shuts it again.
//
// The loop reads on only while its reads find about one datagram each
// (the sequential regime the read-on is for: a client waiting for each
// answer). Under load the reads find many — dnsperf's ~20 — and a loop
// that parks finds the next batch waiting when it wakes, while one that
// reads on only splits batches into smaller ones and spends system calls
// on an empty socket: there it parks at the first empty read.
type spinner struct {
	window time.Duration
	last   time.Time // when the last batch was sent
	until  time.Time // the current spin's end
	parked bool
	// size is the datagrams per read, a moving average scaled by
	// sizeScale (each read weighs 1/4).
	size int
	// off turns reading on off (dns.udp_read_on: false).
	off bool
}

const (
	// spinMax bounds the time a loop spends reading an empty socket
	// after a batch.
	spinMax = 100 * time.Microsecond
	// spinSize is the average datagrams per read from which the loop
	// no longer reads on: the sequential regime reads one at a time.
	spinSize  = 2
	sizeScale = 4
)

// served records a batch of n datagrams, sent at now.
func (sp *spinner) served(now time.Time, n int) {
	sp.last = now
	sp.until = now.Add(sp.window)
	sp.size += n - sp.size/sizeScale
}

// more reports whether to read again rather than park.
func (sp *spinner) more(now time.Time) bool {
	return !sp.off && sp.window > 0 && sp.size < spinSize*sizeScale && now.Before(sp.until)
}

func (sp *spinner) park() {
	sp.parked = true
	sp.until = time.Time{} // after a wake-up, no second spin
}

// woke adapts the window after a read returned.
func (sp *spinner) woke(now time.Time) {
	if !sp.parked {
		return
	}
	sp.parked = false
	if sp.last.IsZero() {
		return
	}
	if now.Sub(sp.last) <= spinMax {
		sp.window = min(spinMax, max(2*sp.window, spinMax/8))
	} else if sp.window /= 2; sp.window < spinMax/8 {
		sp.window = 0
	}
}

// addrPort reads a peer's address as recvmmsg wrote it.
func addrPort(sa *syscall.RawSockaddrInet6, n uint32) (netip.AddrPort, bool) {
	port := uint16(sa.Port>>8 | sa.Port<<8) // network byte order
	switch sa.Family {
	case syscall.AF_INET:
		if n < syscall.SizeofSockaddrInet4 {
			return netip.AddrPort{}, false
		}
		sa4 := (*syscall.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port), true
	case syscall.AF_INET6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), port), true
	}
	return netip.AddrPort{}, false
}
