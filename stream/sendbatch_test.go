package stream

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"
)

func listenUDP(t testing.TB, network, addr string) *net.UDPConn {
	t.Helper()
	c, err := net.ListenPacket(network, addr)
	if err != nil {
		t.Skipf("no %s socket on %s here: %v", network, addr, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c.(*net.UDPConn)
}

// readAll reads n datagrams from c within a second.
func readAll(t *testing.T, c *net.UDPConn, n int) [][]byte {
	t.Helper()
	var got [][]byte
	buf := make([]byte, 2048)
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	for len(got) < n {
		k, _, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("%s: got %d of %d datagrams: %v", c.LocalAddr(), len(got), n, err)
		}
		got = append(got, bytes.Clone(buf[:k]))
	}
	return got
}

func TestSendBatcherDeliversInOrder(t *testing.T) {
	cases := []struct {
		name, network, local, peer string
	}{
		{"ipv4 socket", "udp4", "127.0.0.1:0", "127.0.0.1:0"},
		{"dual-stack socket, ipv4 viewers", "udp", ":0", "127.0.0.1:0"},
		{"ipv6 socket", "udp6", "[::1]:0", "[::1]:0"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := newSendBatcher(listenUDP(t, tc.network, tc.local))
			peers := make([]*net.UDPConn, 3)
			for i := range peers {
				peers[i] = listenUDP(t, tc.network, tc.peer)
			}
			addr := func(i int) netip.AddrPort { return peers[i].LocalAddr().(*net.UDPAddr).AddrPort() }

			// Held: 150 datagrams (more than two batches) round-robin to
			// three peers; nothing is lost or reordered.
			const n = 150
			b.hold()
			for i := range n {
				p := fmt.Appendf(nil, "pkt-%03d", i)
				if k, err := b.WriteToAddrPort(p, addr(i%3)); k != len(p) || err != nil {
					t.Fatalf("write %d: %d, %v", i, k, err)
				}
			}
			b.release()
			for j, c := range peers {
				got := readAll(t, c, n/3)
				for i, p := range got {
					if want := fmt.Sprintf("pkt-%03d", 3*i+j); string(p) != want {
						t.Fatalf("peer %d datagram %d: got %q, want %q", j, i, p, want)
					}
				}
			}

			// Not held: a write leaves at once.
			if _, err := b.WriteToAddrPort([]byte("now"), addr(0)); err != nil {
				t.Fatal(err)
			}
			if got := readAll(t, peers[0], 1); string(got[0]) != "now" {
				t.Fatalf("unheld write: got %q", got[0])
			}
			if e := b.sendErrors(); e != 0 {
				t.Fatalf("%d send errors", e)
			}
		})
	}
}

// Consecutive datagrams to one viewer leave as a GSO train and arrive as
// the datagrams they were, sizes and order kept; a train is cut where the
// size grows, the destination changes, or the segment limit is reached.
func TestSendBatcherTrains(t *testing.T) {
	for _, gso := range []bool{true, false} {
		t.Run(fmt.Sprintf("gso=%v", gso), func(t *testing.T) {
			b := newSendBatcher(listenUDP(t, "udp4", "127.0.0.1:0"))
			b.gso.Store(gso && gsoSupported)
			p1, p2 := listenUDP(t, "udp4", "127.0.0.1:0"), listenUDP(t, "udp4", "127.0.0.1:0")
			to1, to2 := p1.LocalAddr().(*net.UDPAddr).AddrPort(), p2.LocalAddr().(*net.UDPAddr).AddrPort()
			var want1, want2 [][]byte
			send := func(to netip.AddrPort, size int, want *[][]byte) {
				p := bytes.Repeat([]byte{byte(len(*want))}, size)
				*want = append(*want, p)
				if _, err := b.WriteToAddrPort(p, to); err != nil {
					t.Fatal(err)
				}
			}
			b.hold()
			for range 9 { // a frame: 8 full datagrams and a short one
				send(to1, 1200, &want1)
			}
			send(to1, 700, &want1)
			send(to1, 1200, &want1) // larger than the last: a new train
			for range 70 {          // more than one train can carry
				send(to2, 300, &want2)
			}
			send(to1, 100, &want1)
			b.release()
			for i, c := range []*net.UDPConn{p1, p2} {
				want := [][][]byte{want1, want2}[i]
				got := readAll(t, c, len(want))
				for j := range want {
					if !bytes.Equal(got[j], want[j]) {
						t.Fatalf("peer %d datagram %d: got %d bytes of %d, want %d of %d", i, j, len(got[j]), got[j][0], len(want[j]), want[j][0])
					}
				}
			}
			if e := b.sendErrors(); e != 0 {
				t.Fatalf("%d send errors", e)
			}
			if b.gso.Load() != (gso && gsoSupported) {
				t.Fatalf("gso: got %v after sending", b.gso.Load())
			}
		})
	}
}

// A socket that refuses GSO trains (here: UDP checksums off, which GSO
// needs) still delivers every datagram, and the batcher stops building
// trains.
func TestSendBatcherTrainRefused(t *testing.T) {
	if !gsoSupported {
		t.Skip("no UDP GSO on this platform")
	}
	c := listenUDP(t, "udp4", "127.0.0.1:0")
	noChecksums(t, c)
	b := newSendBatcher(c)
	peer := listenUDP(t, "udp4", "127.0.0.1:0")
	to := peer.LocalAddr().(*net.UDPAddr).AddrPort()
	b.hold()
	for i := range 5 {
		_, _ = b.WriteToAddrPort([]byte{byte(i), 1, 2, 3}, to)
	}
	b.release()
	got := readAll(t, peer, 5)
	for i, p := range got {
		if p[0] != byte(i) || len(p) != 4 {
			t.Fatalf("datagram %d: got %v", i, p)
		}
	}
	if b.gso.Load() {
		t.Fatal("the batcher still builds trains after the socket refused one")
	}
	if e := b.sendErrors(); e != 0 {
		t.Fatalf("%d send errors", e)
	}
}

// A datagram the kernel refuses (an IPv6 address on an IPv4 socket) costs
// only itself: the rest of its batch is delivered and the failure counted.
func TestSendBatcherSkipsRefusedDatagram(t *testing.T) {
	b := newSendBatcher(listenUDP(t, "udp4", "127.0.0.1:0"))
	peer := listenUDP(t, "udp4", "127.0.0.1:0")
	to := peer.LocalAddr().(*net.UDPAddr).AddrPort()
	b.hold()
	_, _ = b.WriteToAddrPort([]byte("a"), to)
	bad := netip.MustParseAddrPort("[2001:db8::1]:9")
	_, _ = b.WriteToAddrPort([]byte("lost"), bad)
	_, _ = b.WriteToAddrPort([]byte("lost"), bad) // a train of two
	_, _ = b.WriteToAddrPort([]byte("b"), to)
	b.release()
	got := readAll(t, peer, 2)
	if string(got[0]) != "a" || string(got[1]) != "b" {
		t.Fatalf("got %q, want a, b", got)
	}
	if e := b.sendErrors(); e != 2 {
		t.Fatalf("send errors: got %d, want 2", e)
	}
	if b.gso.Load() != gsoSupported {
		t.Fatal("a refused address turned GSO trains off")
	}
}

// BenchmarkSendBatcher is a 1200-byte packet's fan-out to 64 viewers on
// loopback: one datagram per system call, and batched. Readers drain the
// sockets so no buffer fills.
func BenchmarkSendBatcher(b *testing.B) {
	const viewers = 64
	peers := make([]netip.AddrPort, viewers)
	for i := range peers {
		c := listenUDP(b, "udp4", "127.0.0.1:0")
		_ = c.SetReadBuffer(4 << 20)
		peers[i] = c.LocalAddr().(*net.UDPAddr).AddrPort()
		go func() {
			buf := make([]byte, 2048)
			for {
				if _, _, err := c.ReadFromUDPAddrPort(buf); err != nil {
					return
				}
			}
		}()
	}
	pkt := make([]byte, 1200)
	// A group of 8 packets (about a frame) to every viewer: one datagram
	// per call, batched, and batched as a GSO train per viewer.
	const group = 8
	for _, mode := range []string{"direct", "batched", "trains"} {
		b.Run(mode, func(b *testing.B) {
			s := newSendBatcher(listenUDP(b, "udp4", "127.0.0.1:0"))
			s.gso.Store(mode == "trains" && gsoSupported)
			b.SetBytes(int64(len(pkt) * viewers * group))
			b.ReportAllocs()
			for b.Loop() {
				if mode != "direct" {
					s.hold()
				}
				for _, p := range peers {
					for range group {
						_, _ = s.WriteToAddrPort(pkt, p)
					}
				}
				if mode != "direct" {
					s.release()
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*viewers*group), "ns/datagram")
		})
	}
}

// A datagram too large to queue leaves at once, after what was queued
// before it: order holds.
func TestSendBatcherLargeDatagramKeepsOrder(t *testing.T) {
	b := newSendBatcher(listenUDP(t, "udp4", "127.0.0.1:0"))
	peer := listenUDP(t, "udp4", "127.0.0.1:0")
	to := peer.LocalAddr().(*net.UDPAddr).AddrPort()
	sizes := []int{100, 100, 1800, 100}
	b.hold()
	for i, n := range sizes {
		_, _ = b.WriteToAddrPort(bytes.Repeat([]byte{byte(i)}, n), to)
	}
	b.release()
	for i, p := range readAll(t, peer, len(sizes)) {
		if p[0] != byte(i) || len(p) != sizes[i] {
			t.Fatalf("datagram %d: got %d bytes of %d, want %d of %d", i, len(p), p[0], sizes[i], i)
		}
	}
}
