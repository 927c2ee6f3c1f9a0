//go:build linux && (amd64 || arm64)

package dnsfail

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/miekg/dns"
)

// TestSpinnerAdapts: the window a UDP loop reads on after a batch grows
// when the next query came soon after a park, shrinks when it came late,
// and stays shut at rest.
func TestSpinnerAdapts(t *testing.T) {
	const us = time.Microsecond
	tests := []struct {
		name string
		gaps []time.Duration // between a batch and the next query, each after a park
		want time.Duration
	}{
		{"first query", nil, 0},
		{"one slow query", []time.Duration{time.Second}, 0},
		{"close queries open it", []time.Duration{60 * us}, spinMax / 8},
		{"and double it", []time.Duration{60 * us, 60 * us, 60 * us}, spinMax / 2},
		{"up to spinMax", []time.Duration{10 * us, 10 * us, 10 * us, 10 * us, 10 * us, 10 * us}, spinMax},
		{"a gap at spinMax still counts", []time.Duration{spinMax}, spinMax / 8},
		{"a late query halves it", []time.Duration{10 * us, 10 * us, 10 * us, 10 * us, time.Millisecond}, spinMax / 2},
		{"silence shuts it", []time.Duration{10 * us, 10 * us, 10 * us, 10 * us, time.Second, time.Second, time.Second, time.Second}, 0},
		{"below spinMax/8 is shut", []time.Duration{10 * us, time.Second}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var sp spinner
			now := time.Unix(1e9, 0)
			sp.park()
			sp.woke(now) // the first query: nothing served before it
			for _, gap := range tt.gaps {
				sp.served(now, 1)
				if sp.more(now.Add(sp.window)) {
					t.Fatalf("spins past its window %v", sp.window)
				}
				sp.park()
				now = now.Add(gap)
				sp.woke(now)
			}
			if sp.window != tt.want {
				t.Errorf("window after gaps %v: %v, want %v", tt.gaps, sp.window, tt.want)
			}
			sp.served(now, 1)
			if got := sp.more(now.Add(time.Nanosecond)); got != (tt.want > 0) {
				t.Errorf("right after a batch, more() = %v with window %v", got, sp.window)
			}
		})
	}
}

// TestSpinnerParksUnderLoad: with its window open, a loop whose reads
// find many datagrams each (load: dnsperf's ~20) parks at the first empty
// read, and reads on again once its reads come back to one datagram.
func TestSpinnerParksUnderLoad(t *testing.T) {
	const us = time.Microsecond
	tests := []struct {
		name    string
		batches []int // datagrams per read, each read ~10 µs after the last batch
		want    bool  // reads on after the last
	}{
		{"sequential", []int{1, 1, 1, 1, 1, 1}, true},
		{"two at a time still reads on", []int{1, 1, 1, 1, 1, 2}, true},
		{"loaded", []int{1, 1, 1, 1, 1, 1, 20}, false},
		{"steady load", []int{20, 18, 25, 20, 22, 19, 21}, false},
		{"a lone datagram under load", []int{20, 18, 25, 20, 22, 19, 1}, false},
		{"small batches", []int{1, 1, 1, 3, 3, 3, 3, 3, 3}, false},
		{"back to sequential", []int{20, 20, 20, 20, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var sp spinner
			now := time.Unix(1e9, 0)
			sp.park()
			sp.woke(now)
			for i, n := range tt.batches {
				if i > 0 {
					sp.park()
					now = now.Add(10 * us)
					sp.woke(now)
				}
				sp.served(now, n)
			}
			if sp.window == 0 {
				t.Fatalf("window shut after reads 10 µs apart")
			}
			if got := sp.more(now.Add(us)); got != tt.want {
				t.Errorf("after reads of %v datagrams: more() = %v, want %v (average %d/%d)", tt.batches, got, tt.want, sp.size, sizeScale)
			}
		})
	}
}

// sequential is a deployment and ask, which sends it query i (sea's A
// record) over UDP and waits for the answer, as a client that waits for
// each answer does.
func sequential(t *testing.T) (*testDeployment, func(i int)) {
	d := newDeployment(t, deployOpts{})
	c := d.udpConn(t)
	q := new(dns.Msg)
	q.SetQuestion("sea.edge.test.", dns.TypeA)
	wire, _ := q.Pack()
	buf := make([]byte, 4096)
	return d, func(i int) {
		t.Helper()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(wire); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Read(buf); err != nil {
			t.Fatalf("query %d: %v", i, err)
		}
	}
}

// TestUDPSpinStopsAtRest: sequential queries make the real UDP loop read
// on after its replies instead of parking, and once they stop the loop
// parks: a server at rest makes no reads.
func TestUDPSpinStopsAtRest(t *testing.T) {
	d, ask := sequential(t)
	deadline := time.Now().Add(10 * time.Second)
	sent := 0
	for d.srv.udp.spins.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d sequential queries and the UDP loop never read on after a reply", sent)
		}
		ask(sent)
		sent++
	}
	// At rest the count stops: poll until it holds still over 50 ms.
	deadline = time.Now().Add(5 * time.Second)
	for {
		before := d.srv.udp.spins.Load()
		time.Sleep(50 * time.Millisecond)
		after := d.srv.udp.spins.Load()
		if after == before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the UDP loop still reads at rest: %d reads in the last 50 ms, 5 s after the last query", after-before)
		}
	}
	t.Logf("%d queries, %d reads spent spinning", sent, d.srv.udp.spins.Load())
}

// TestUDPReadOnSetting: with dns.udp_read_on false the UDP loops park at
// once after every batch, from the first batch after a reload; set true
// again, they read on again.
func TestUDPReadOnSetting(t *testing.T) {
	d, ask := sequential(t)
	reload := func(on bool) {
		t.Helper()
		cfg := *d.cfg
		cfg.DNS.UDPReadOn = &on
		if err := d.srv.Reload(&cfg); err != nil {
			t.Fatal(err)
		}
	}
	reload(false)
	ask(0)                            // the loop that reads it learns the setting
	time.Sleep(10 * time.Millisecond) // a spin begun before ends within 100 µs
	before := d.srv.udp.spins.Load()
	for i := range 300 {
		ask(i)
	}
	if n := d.srv.udp.spins.Load() - before; n != 0 {
		t.Fatalf("udp_read_on false: %d reads spent reading on over 300 sequential queries, want 0", n)
	}
	reload(true)
	before = d.srv.udp.spins.Load()
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; d.srv.udp.spins.Load() == before; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("udp_read_on true again: %d sequential queries and the loop never read on", i)
		}
		ask(i)
	}
}

// TestRepliesGroup: replies to one client, read interleaved with other
// clients' ones, leave as one GSO train per client, each client's replies
// in the order their queries came; without trains they leave as read.
func TestRepliesGroup(t *testing.T) {
	v4 := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port) }
	v6 := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(netip.MustParseAddr("::1"), port) }
	tests := []struct {
		name string
		from []netip.AddrPort // each reply's client
		lens []int            // each reply's length (default 64)
		gso  bool
		want string // the messages: each the replies' indices, in order
	}{
		{"round robin", []netip.AddrPort{v4(1), v4(2), v4(3), v4(1), v4(2), v4(3), v4(1)}, nil, true, "[0 3 6] [1 4] [2 5]"},
		{"no trains: as read", []netip.AddrPort{v4(1), v4(2), v4(1), v4(2)}, nil, false, "[0] [1] [2] [3]"},
		{"one client", []netip.AddrPort{v4(1), v4(1), v4(1)}, nil, true, "[0 1 2]"},
		{"all different", []netip.AddrPort{v4(1), v4(2), v4(3), v4(4)}, nil, true, "[0] [1] [2] [3]"},
		{"IPv4 and IPv6 on one port", []netip.AddrPort{v4(1), v6(1), v4(1), v6(1)}, nil, true, "[0 2] [1 3]"},
		{"same port, other address", []netip.AddrPort{v4(1), netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), 1), v4(1)}, nil, true, "[0 2] [1]"},
		{"a shorter reply ends a train", []netip.AddrPort{v4(1), v4(2), v4(1), v4(2), v4(1)}, []int{64, 64, 40, 64, 64}, true, "[0 2] [4] [1 3]"},
		{"a longer reply starts one", []netip.AddrPort{v4(1), v4(2), v4(1), v4(2)}, []int{64, 64, 90, 64}, true, "[0] [2] [1 3]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r replies
			bufs := make([][]byte, len(tt.from))
			for i, ap := range tt.from {
				n := 64
				if tt.lens != nil {
					n = tt.lens[i]
				}
				bufs[i] = make([]byte, n)
				bufs[i][0] = byte(i) // the reply's index, to find it after
				r.names[i], r.namlen[i] = rawSockaddr(ap)
				r.iovs[i].Base = &bufs[i][0]
				r.iovs[i].SetLen(n)
			}
			r.k = len(tt.from)
			if tt.gso {
				r.group()
			}
			r.pack(0, tt.gso)
			var got []string
			for j := range r.m {
				h := &r.msgs[j].hdr
				iovs := unsafe.Slice(h.Iov, h.Iovlen)
				var idx []string
				for _, iov := range iovs {
					i := int(*iov.Base)
					idx = append(idx, fmt.Sprint(i))
					if ap, _ := addrPort((*syscall.RawSockaddrInet6)(unsafe.Pointer(h.Name)), h.Namelen); ap != tt.from[i] {
						t.Errorf("message %d goes to %v, but carries reply %d to %v", j, ap, i, tt.from[i])
					}
				}
				got = append(got, "["+strings.Join(idx, " ")+"]")
			}
			if g := strings.Join(got, " "); g != tt.want {
				t.Errorf("messages %s, want %s", g, tt.want)
			}
		})
	}
}

// rawSockaddr is ap as recvmmsg writes a peer's address.
func rawSockaddr(ap netip.AddrPort) (syscall.RawSockaddrInet6, uint32) {
	var sa syscall.RawSockaddrInet6
	port := ap.Port()
	if ap.Addr().Is4() {
		sa4 := (*syscall.RawSockaddrInet4)(unsafe.Pointer(&sa))
		sa4.Family = syscall.AF_INET
		sa4.Port = port>>8 | port<<8
		sa4.Addr = ap.Addr().As4()
		return sa, syscall.SizeofSockaddrInet4
	}
	sa.Family = syscall.AF_INET6
	sa.Port = port>>8 | port<<8
	sa.Addr = ap.Addr().As16()
	return sa, syscall.SizeofSockaddrInet6
}

// TestUDPInterleavedClients: queries of three clients sent interleaved
// (as dnsperf sends them, round robin over its sockets) are each answered
// once, to the client that asked, in the order each client asked, with
// some replies in GSO trains. (That the gathering per client makes one
// train per client of a read is TestRepliesGroup's; here the reads split
// the bursts as the scheduler has it.)
func TestUDPInterleavedClients(t *testing.T) {
	d := newDeployment(t, deployOpts{})
	names := []string{"play.edge.test.", "sea.edge.test.", "nosuch.edge.test."}
	answers := []int{2, 1, 0}
	conns := make([]net.Conn, len(names))
	for i := range conns {
		conns[i] = d.udpConn(t)
	}
	const bursts, each = 20, 10 // queries per client per burst
	buf := make([]byte, 4096)
	trains := d.srv.udp.trains.Load()
	for b := range bursts {
		for i := range each {
			for c, conn := range conns {
				q := new(dns.Msg)
				q.SetQuestion(names[c], dns.TypeA)
				q.Id = uint16(b*each + i)
				wire, _ := q.Pack()
				if _, err := conn.Write(wire); err != nil {
					t.Fatal(err)
				}
			}
		}
		for c, conn := range conns {
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			for i := range each {
				k, err := conn.Read(buf)
				if err != nil {
					t.Fatalf("client %d, burst %d: %d of %d replies, then: %v", c, b, i, each, err)
				}
				r := new(dns.Msg)
				if err := r.Unpack(buf[:k]); err != nil {
					t.Fatalf("client %d: a reply does not parse: %v", c, err)
				}
				if want := uint16(b*each + i); r.Id != want || len(r.Question) != 1 || r.Question[0].Name != names[c] || len(r.Answer) != answers[c] {
					t.Fatalf("client %d: reply id %d for %v with %d answers, want id %d for %s with %d", c, r.Id, r.Question, len(r.Answer), want, names[c], answers[c])
				}
			}
		}
	}
	if d.srv.udp.trains.Load() == trains && !d.srv.udp.gsoOff.Load() {
		t.Errorf("%d interleaved queries of %d clients and no GSO train", bursts*each*len(conns), len(conns))
	}
	t.Logf("%d GSO trains", d.srv.udp.trains.Load()-trains)
}

// BenchmarkRepliesGroup: gathering and packing a full read's replies, from
// 4 clients round robin (dnsperf: 4 trains) and from 32 (resolvers: none).
func BenchmarkRepliesGroup(b *testing.B) {
	for _, clients := range []int{4, 32} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			var r replies
			buf := make([]byte, 64)
			for i := range batch {
				r.names[i], r.namlen[i] = rawSockaddr(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(1000+i%clients)))
				r.iovs[i].Base = &buf[0]
				r.iovs[i].SetLen(len(buf))
			}
			r.k = batch
			b.ReportAllocs()
			for b.Loop() {
				r.group()
				r.pack(0, true)
			}
			if want := clients; r.m != want {
				b.Fatalf("%d messages, want %d", r.m, want)
			}
		})
	}
}
