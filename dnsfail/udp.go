package dnsfail

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// udpServer reads queries from one or more sockets bound to the same
// address (SO_REUSEPORT, one per CPU), answers what it can on the fast
// path in the reading goroutine, and hands the rest to the full handler
// exactly as the dns package's server would.
type udpServer struct {
	s     *Server
	conns []*net.UDPConn
	wg    sync.WaitGroup
	// trains counts the GSO trains sent (udp_linux.go); gsoOff is set
	// when the kernel refused one.
	trains atomic.Uint64
	gsoOff atomic.Bool
	// spins counts the reads made after a batch instead of parking
	// (udp_linux.go's spinner).
	spins atomic.Uint64
}

func reusePort(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, 0xf /* SO_REUSEPORT */, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

// listenUDP binds n sockets on addr (port 0: the kernel picks one for the
// first, the others share it).
func listenUDP(addr string, n int) ([]*net.UDPConn, error) {
	lc := net.ListenConfig{Control: reusePort}
	var conns []*net.UDPConn
	for i := range n {
		pc, err := lc.ListenPacket(context.Background(), "udp", addr)
		if err != nil {
			for _, c := range conns {
				c.Close()
			}
			return nil, err
		}
		conns = append(conns, pc.(*net.UDPConn))
		if i == 0 {
			addr = pc.LocalAddr().String()
		}
	}
	return conns, nil
}

func (u *udpServer) start() {
	for _, c := range u.conns {
		u.wg.Add(1)
		go func() {
			defer u.wg.Done()
			// The system-call loop where there is one (udp_linux.go),
			// else the portable one.
			if !u.loopSyscalls(c) {
				u.loop(c)
			}
		}()
	}
}

func (u *udpServer) close() {
	for _, c := range u.conns {
		c.Close()
	}
	u.wg.Wait()
}

// batch is how many datagrams one system call reads or writes
// (recvmmsg / sendmmsg on Linux).
const batch = 32

// maxQuery is the largest UDP query read whole; longer ones arrive cut and
// get FORMERR. (Queries are a question and an OPT record: hundreds of bytes.)
const maxQuery = 4096

// loop is the portable UDP loop: batches through golang.org/x/net.
func (u *udpServer) loop(conn *net.UDPConn) {
	var pc interface {
		ReadBatch([]ipv4.Message, int) (int, error)
		WriteBatch([]ipv4.Message, int) (int, error)
	}
	if a, ok := conn.LocalAddr().(*net.UDPAddr); ok && a.IP.To4() == nil {
		pc = ipv6.NewPacketConn(conn)
	} else {
		pc = ipv4.NewPacketConn(conn)
	}
	in := make([]ipv4.Message, batch)
	out := make([]ipv4.Message, batch)
	for i := range in {
		in[i].Buffers = [][]byte{make([]byte, maxQuery)}
		out[i].Buffers = [][]byte{make([]byte, 0, dns.MaxMsgSize)}
	}
	replies := make([][]byte, batch)
	for i := range replies {
		replies[i] = out[i].Buffers[0]
	}
	for {
		n, err := pc.ReadBatch(in, 0)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		st := u.s.st.Load()
		k := 0
		for i := range n {
			m := &in[i]
			ua, ok := m.Addr.(*net.UDPAddr)
			if !ok {
				continue
			}
			from := ua.AddrPort()
			wire := m.Buffers[0][:m.N]
			reply, res := st.serveFast(wire, replies[k][:0], from.Addr().Unmap(), u.s.metrics)
			switch res {
			case fastReply:
				out[k].Buffers[0] = reply
				out[k].Addr = m.Addr
				k++
			case fastSlow:
				u.slow(conn, wire, from)
			}
		}
		for sent := 0; sent < k; {
			w, err := pc.WriteBatch(out[sent:k], 0)
			if err != nil {
				break
			}
			sent += w
		}
	}
}

// slow answers what the fast path did not: replies are dropped, the rest
// is parsed and goes to the full handler, as a bare header (FORMERR) when
// it does not parse.
func (u *udpServer) slow(conn *net.UDPConn, wire []byte, from netip.AddrPort) {
	if len(wire) < 12 || wire[2]&0x80 != 0 {
		return
	}
	req := new(dns.Msg)
	if wireFormErr(wire) || req.Unpack(wire) != nil {
		req = headerOnly(wire)
	}
	u.s.ServeDNS(&udpWriter{conn: conn, to: from}, req)
}

// udpWriter is the dns.ResponseWriter of one UDP query.
type udpWriter struct {
	conn *net.UDPConn
	to   netip.AddrPort
}

func (w *udpWriter) LocalAddr() net.Addr  { return w.conn.LocalAddr() }
func (w *udpWriter) RemoteAddr() net.Addr { return net.UDPAddrFromAddrPort(w.to) }
func (w *udpWriter) WriteMsg(m *dns.Msg) error {
	b, err := m.Pack()
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}
func (w *udpWriter) Write(b []byte) (int, error) {
	if len(b) > dns.MaxMsgSize {
		return 0, fmt.Errorf("dns: reply of %d bytes", len(b))
	}
	return w.conn.WriteToUDPAddrPort(b, w.to)
}
func (w *udpWriter) Close() error        { return nil }
func (w *udpWriter) TsigStatus() error   { return nil }
func (w *udpWriter) TsigTimersOnly(bool) {}
func (w *udpWriter) Hijack()             {}

func udpSockets() int { return max(1, runtime.GOMAXPROCS(0)) }
