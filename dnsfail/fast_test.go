package dnsfail

import (
	"net"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestFastPathMatchesHandler: for every query the fast path answers, its
// reply is the full handler's reply.
func TestFastPathMatchesHandler(t *testing.T) {
	d := newDeployment(t, deployOpts{})
	st := d.srv.st.Load()
	names := []string{"play.edge.test.", "PlAy.EdGe.TeSt.", "edge.test.", "EDGE.test.", "sea.edge.test.", "www.edge.test.",
		"near.edge.test.", "big.edge.test.", "b.deep.edge.test.", "a.b.deep.edge.test.", "nosuch.edge.test.", "example.com.", "fo.edge.test.",
		"NoSuch.Deep.Edge.Test.", "x.y.b.deep.edge.test.", "sub.edge.test.", "x.sub.edge.test.", "ns.sub.edge.test.", "y.ns.sub.edge.test.",
		"foo.wild.edge.test.", "wild.edge.test.", "*.wild.edge.test.", "x.*.wild.edge.test.", "foo.wc.edge.test.", "tow.edge.test.",
		"tonx.edge.test.", "loop1.edge.test.", "mx.edge.test.", "x.mx.edge.test.", "x.play.edge.test.", "x.near.edge.test.", "edge.test.edge.test."}
	types := []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeSOA, dns.TypeNS, dns.TypeTXT, dns.TypeCAA, dns.TypeCNAME, dns.TypeMX, dns.TypeANY, dns.TypeAXFR, 65000,
		dns.TypeDS, dns.TypeRRSIG, dns.TypeNSEC, dns.TypeNULL}
	variants := []struct {
		name string
		edit func(*dns.Msg)
	}{
		{"plain", func(*dns.Msg) {}},
		{"rd cd", func(m *dns.Msg) { m.RecursionDesired, m.CheckingDisabled = true, true }},
		{"edns", func(m *dns.Msg) { m.SetEdns0(1232, false) }},
		{"edns do", func(m *dns.Msg) { m.SetEdns0(4096, true) }},
		{"edns cookie", func(m *dns.Msg) {
			m.SetEdns0(1232, false)
			m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0123456789abcdef"})
		}},
		{"ecs", withECS("10.1.0.0", 16)},
		{"edns v1", func(m *dns.Msg) { m.SetEdns0(1232, false); m.IsEdns0().SetVersion(1) }},
	}
	fast, byRcode := 0, map[string]int{}
	client := netip.MustParseAddr("127.0.0.1")
	for _, name := range names {
		for _, qt := range types {
			for _, v := range variants {
				q := new(dns.Msg)
				q.SetQuestion(name, qt)
				q.Id = 4242
				q.RecursionDesired = false
				v.edit(q)
				wire, err := q.Pack()
				if err != nil {
					t.Fatal(err)
				}
				out, res := st.serveFast(wire, nil, client, d.srv.metrics)
				if res != fastReply {
					continue
				}
				fast++
				got := new(dns.Msg)
				if err := got.Unpack(out); err != nil {
					t.Fatalf("%s %s %s: fast reply does not parse: %v", name, dns.TypeToString[qt], v.name, err)
				}
				kind := dns.RcodeToString[got.Rcode]
				if got.Rcode == dns.RcodeSuccess && len(got.Answer) == 0 {
					kind = "NODATA"
				}
				byRcode[kind]++
				w := &fakeWriter{remote: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}}
				d.srv.ServeDNS(w, q)
				want := new(dns.Msg)
				want.Unpack(w.wire)
				// Names compressed into the question's name take its letter
				// case (as in Knot); DNS names compare case-insensitively.
				if !strings.EqualFold(got.String(), want.String()) || got.Question[0] != want.Question[0] ||
					(len(got.Answer) > 0 && got.Answer[0].Header().Name != want.Answer[0].Header().Name) {
					t.Errorf("%s %s %s: fast path and handler differ:\nfast:\n%s\nhandler:\n%s", name, dns.TypeToString[qt], v.name, got, want)
				}
			}
		}
	}
	t.Logf("fast path answered %d of %d queries: %v", fast, len(names)*len(types)*len(variants), byRcode)
	for kind, least := range map[string]int{"NOERROR": 60, "NODATA": 100, "NXDOMAIN": 40} {
		if byRcode[kind] < least {
			t.Errorf("the fast path answered only %d %s queries, want at least %d", byRcode[kind], kind, least)
		}
	}
}

// TestFastPathFollowsHealth: a service's prepared replies change with its
// answers.
func TestFastPathFollowsHealth(t *testing.T) {
	d := newDeployment(t, deployOpts{})
	if err := d.srv.SetEdgeDraining("eu-1", true, "test"); err != nil {
		t.Fatal(err)
	}
	q := new(dns.Msg)
	q.SetQuestion("play.edge.test.", dns.TypeA)
	wire, _ := q.Pack()
	out, res := d.srv.st.Load().serveFast(wire, nil, netip.Addr{}, d.srv.metrics)
	if res != fastReply {
		t.Fatal("play A not on the fast path")
	}
	m := new(dns.Msg)
	m.Unpack(out)
	if a := answerAddrs(m); len(a) != 1 || a[0] != "127.0.0.11" {
		t.Fatalf("eu drained: want [127.0.0.11], got %v", a)
	}
	// A name whose CNAME leads to the service follows it too.
	if a := answerAddrs(d.query(t, "udp", "www.edge.test.", dns.TypeA)); len(a) != 1 || a[0] != "127.0.0.11" {
		t.Fatalf("www → play with eu drained: want [127.0.0.11], got %v", a)
	}
}

func benchQuery(b *testing.B, name string, qt uint16, edns bool) []byte {
	q := new(dns.Msg)
	q.SetQuestion(name, qt)
	if edns {
		q.SetEdns0(1232, false)
	}
	wire, err := q.Pack()
	if err != nil {
		b.Fatal(err)
	}
	return wire
}

// BenchmarkFastPath is the per-query work of the fast path (no sockets).
func BenchmarkFastPath(b *testing.B) {
	d := newDeployment(b, deployOpts{})
	st := d.srv.st.Load()
	for _, c := range []struct {
		name string
		q    []byte
	}{
		{"service", benchQuery(b, "PLAY.edge.test.", dns.TypeA, false)},
		{"service-edns", benchQuery(b, "play.edge.test.", dns.TypeA, true)},
		{"static", benchQuery(b, "sea.edge.test.", dns.TypeA, false)},
		{"nodata", benchQuery(b, "sea.edge.test.", dns.TypeAAAA, true)},
		{"nxdomain", benchQuery(b, "NoSuch.edge.test.", dns.TypeA, true)},
		{"nxdomain-deep", benchQuery(b, "a.b.c.nosuch.edge.test.", dns.TypeA, true)},
	} {
		b.Run(c.name, func(b *testing.B) {
			out := make([]byte, 0, 4096)
			client := netip.MustParseAddr("127.0.0.1")
			b.ReportAllocs()
			for b.Loop() {
				if _, res := st.serveFast(c.q, out, client, d.srv.metrics); res != fastReply {
					b.Fatal("not on the fast path")
				}
			}
		})
	}
}

// BenchmarkHandler is the full handler (parse, answer, pack), for
// comparison: what every query would cost without the fast path.
func BenchmarkHandler(b *testing.B) {
	d := newDeployment(b, deployOpts{})
	wire := benchQuery(b, "play.edge.test.", dns.TypeA, false)
	w := &fakeWriter{remote: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}}
	b.ReportAllocs()
	for b.Loop() {
		q := new(dns.Msg)
		q.Unpack(wire)
		d.srv.ServeDNS(w, q)
	}
}

// BenchmarkUDP is one query over a real UDP socket, client included; its
// allocations are the whole process's per query (the fast path makes none;
// the socket layer allocates the sender's address).
func BenchmarkUDP(b *testing.B) {
	d := newDeployment(b, deployOpts{})
	c := d.udpConn(b)
	q := benchQuery(b, "play.edge.test.", dns.TypeA, false)
	buf := make([]byte, 4096)
	b.ReportAllocs()
	for b.Loop() {
		c.Write(q)
		if _, err := c.Read(buf); err != nil {
			b.Fatal(err)
		}
	}
}

// TestUDPBurst: a burst of queries from one client is answered whole,
// each query once, and replies of equal length to that client leave in
// GSO trains (where the kernel takes them).
func TestUDPBurst(t *testing.T) {
	d := newDeployment(t, deployOpts{})
	c := d.udpConn(t)
	// Bursts of 30, each read back before the next (the client's socket
	// buffer holds a few hundred small datagrams at most).
	const bursts, size, n = 20, 30, 20 * 30
	seen := map[uint16]bool{}
	buf := make([]byte, 4096)
	for b := range bursts {
		for i := b * size; i < (b+1)*size; i++ {
			q := new(dns.Msg)
			q.SetQuestion([]string{"play.edge.test.", "sea.edge.test.", "nosuch.edge.test."}[i%3], dns.TypeA)
			q.Id = uint16(i)
			wire, _ := q.Pack()
			if _, err := c.Write(wire); err != nil {
				t.Fatal(err)
			}
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		for len(seen) < (b+1)*size {
			k, err := c.Read(buf)
			if err != nil {
				t.Fatalf("%d of %d replies, then: %v", len(seen), n, err)
			}
			r := new(dns.Msg)
			if err := r.Unpack(buf[:k]); err != nil {
				t.Fatalf("a reply does not parse: %v", err)
			}
			want := []int{2, 1, 0}[r.Id%3]
			if seen[r.Id] || len(r.Answer) != want {
				t.Fatalf("reply %d: seen before %v, %d answers (want %d)", r.Id, seen[r.Id], len(r.Answer), want)
			}
			seen[r.Id] = true
		}
	}
	if d.srv.udp.trains.Load() == 0 && !d.srv.udp.gsoOff.Load() && runtime.GOOS == "linux" {
		t.Errorf("no GSO train sent for %d queries in a burst", n)
	}
	t.Logf("%d GSO trains", d.srv.udp.trains.Load())
}
