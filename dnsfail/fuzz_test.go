package dnsfail

import (
	"encoding/binary"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// fakeWriter captures what the handler writes.
type fakeWriter struct {
	remote net.Addr
	msg    *dns.Msg
	wire   []byte
}

func (w *fakeWriter) LocalAddr() net.Addr  { return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53} }
func (w *fakeWriter) RemoteAddr() net.Addr { return w.remote }
func (w *fakeWriter) WriteMsg(m *dns.Msg) error {
	b, err := m.Pack()
	if err != nil {
		return err
	}
	w.msg, w.wire = m, b
	return nil
}
func (w *fakeWriter) Write(b []byte) (int, error) { w.wire = b; return len(b), nil }
func (w *fakeWriter) Close() error                { return nil }
func (w *fakeWriter) TsigStatus() error           { return nil }
func (w *fakeWriter) TsigTimersOnly(bool)         {}
func (w *fakeWriter) Hijack()                     {}

func seedQueries() [][]byte {
	var out [][]byte
	add := func(name string, t uint16, edit func(*dns.Msg)) {
		m := new(dns.Msg)
		m.SetQuestion(name, t)
		if edit != nil {
			edit(m)
		}
		b, _ := m.Pack()
		out = append(out, b)
	}
	add("play.edge.test.", dns.TypeA, nil)
	add("PLAY.edge.test.", dns.TypeAAAA, func(m *dns.Msg) { m.SetEdns0(4096, true) })
	add("near.edge.test.", dns.TypeA, withECS("10.1.0.0", 16))
	add("www.edge.test.", dns.TypeANY, nil)
	add("big.edge.test.", dns.TypeTXT, nil)
	add("nosuch.edge.test.", dns.TypeMX, nil)
	add("example.com.", dns.TypeA, nil)
	return out
}

// FuzzServeDNS feeds random messages to the handler: no panic, and every
// reply packs, unpacks again, answers the query's id and fits UDP.
func FuzzServeDNS(f *testing.F) {
	for _, s := range seedQueries() {
		f.Add(s, true)
	}
	f.Add([]byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1}, true) // compression loop
	f.Add([]byte{0, 1, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, false)
	d := newDeployment(f, deployOpts{})
	st := d.srv.st.Load()
	f.Fuzz(func(t *testing.T, data []byte, udp bool) {
		// The fast path reads the raw bytes first: what it answers must
		// parse, and be what the full handler answers.
		out, res := st.serveFast(data, nil, netip.MustParseAddr("10.1.2.3"), d.srv.metrics)
		q := new(dns.Msg)
		qerr := q.Unpack(data)
		if res == fastReply {
			got := new(dns.Msg)
			if err := got.Unpack(out); err != nil {
				t.Fatalf("fast reply does not parse: %v", err)
			}
			if qerr != nil {
				t.Fatalf("fast path answered a query the parser rejects (%v)", qerr)
			}
			w := &fakeWriter{remote: &net.UDPAddr{IP: net.IPv4(10, 1, 2, 3), Port: 5353}}
			d.srv.ServeDNS(w, q)
			want := new(dns.Msg)
			want.Unpack(w.wire)
			if !strings.EqualFold(got.String(), want.String()) {
				t.Fatalf("fast path and handler differ:\n%s\n%s", got, want)
			}
		}
		if qerr != nil {
			return // the dns package answers FORMERR itself (TestBadInput)
		}
		w := &fakeWriter{remote: &net.TCPAddr{IP: net.IPv4(10, 1, 2, 3), Port: 5353}}
		if udp {
			w.remote = &net.UDPAddr{IP: net.IPv4(10, 1, 2, 3), Port: 5353}
		}
		d.srv.ServeDNS(w, q)
		if w.msg == nil {
			t.Fatalf("no reply (or it did not pack) to %v", q)
		}
		back := new(dns.Msg)
		if err := back.Unpack(w.wire); err != nil {
			t.Fatalf("reply does not unpack: %v\n%v", err, w.msg)
		}
		if back.Id != q.Id || !back.Response {
			t.Fatalf("reply id %d response %v to query %d", back.Id, back.Response, q.Id)
		}
		if udp && len(w.wire) > dns.MaxMsgSize {
			t.Fatalf("UDP reply of %d bytes", len(w.wire))
		}
		if udp && q.IsEdns0() == nil && len(w.wire) > 512 {
			t.Fatalf("UDP reply of %d bytes to a query without EDNS", len(w.wire))
		}
	})
}

// TestBadInput sends malformed messages to the real sockets: each is
// answered (FORMERR, NOTIMP) or dropped, and the server keeps serving.
func TestBadInput(t *testing.T) {
	d := newDeployment(t, deployOpts{})
	header := func(id, flags, qd, an, ns, ar uint16) []byte {
		b := make([]byte, 12)
		for i, v := range []uint16{id, flags, qd, an, ns, ar} {
			binary.BigEndian.PutUint16(b[2*i:], v)
		}
		return b
	}
	q := func(b ...byte) []byte { return b }
	inputs := []struct {
		name string
		wire []byte
		want int // expected rcode, or -1 for no answer
	}{
		{"empty", nil, -1},
		{"truncated header", []byte{0, 1, 0}, -1},
		{"header only, no question", header(1, 0, 0, 0, 0, 0), dns.RcodeFormatError},
		{"absurd counts", header(2, 0, 0xffff, 0xffff, 0xffff, 0xffff), dns.RcodeFormatError},
		{"compression loop", append(header(3, 0, 1, 0, 0, 0), q(0xc0, 12, 0, 1, 0, 1)...), dns.RcodeFormatError},
		{"label past the end", append(header(4, 0, 1, 0, 0, 0), q(60, 'a', 'b')...), dns.RcodeFormatError},
		{"a response", append(header(5, 0x8000, 1, 0, 0, 0), q(0, 0, 1, 0, 1)...), -1},
		{"UPDATE opcode", append(header(6, 5<<11, 1, 0, 0, 0), q(0, 0, 6, 0, 1)...), dns.RcodeNotImplemented},
		{"unknown opcode", append(header(7, 9<<11, 1, 0, 0, 0), q(0, 0, 6, 0, 1)...), dns.RcodeNotImplemented},
		{"unknown class and type", append(header(8, 0, 1, 0, 0, 0), q(4, 'p', 'l', 'a', 'y', 4, 'e', 'd', 'g', 'e', 4, 't', 'e', 's', 't', 0, 0xfe, 0xdc, 0x12, 0x34)...), dns.RcodeRefused},
		// Trailing bytes are ignored (as by the dns package); the root
		// zone is not served.
		{"trailing garbage", append(append(header(9, 0, 1, 0, 0, 0), q(0, 0, 6, 0, 1)...), 1, 2, 3), dns.RcodeRefused},
	}
	conn := d.udpConn(t)
	buf := make([]byte, 65535)
	for _, in := range inputs {
		t.Run(in.name, func(t *testing.T) {
			conn.Write(in.wire)
			conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			n, err := conn.Read(buf)
			if in.want < 0 {
				if err == nil {
					t.Fatalf("want no answer, got %d bytes", n)
				}
				return
			}
			if err != nil {
				t.Fatalf("want %s, got no answer: %v", dns.RcodeToString[in.want], err)
			}
			r := new(dns.Msg)
			if err := r.Unpack(buf[:n]); err != nil {
				t.Fatalf("reply does not unpack: %v", err)
			}
			if r.Rcode != in.want {
				t.Fatalf("want %s, got %s", dns.RcodeToString[in.want], dns.RcodeToString[r.Rcode])
			}
		})
	}
	t.Run("TCP length larger than what follows", func(t *testing.T) {
		c, err := net.Dial("tcp", d.addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte{0xff, 0xff, 0, 1, 0, 0})
		c.Close()
	})
	t.Run("TCP zero length", func(t *testing.T) {
		c, err := net.Dial("tcp", d.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte{0, 0})
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		c.Read(buf) // closed or nothing: either is fine
	})
	if r := d.query(t, "udp", "play.edge.test.", dns.TypeA); len(r.Answer) != 2 {
		t.Fatalf("still serving over UDP: %v", r)
	}
	if r := d.query(t, "tcp", "play.edge.test.", dns.TypeA); len(r.Answer) != 2 {
		t.Fatalf("still serving over TCP: %v", r)
	}
}

// TestGarbageFlood: random datagrams, random bytes over TCP and
// connections left half-open do not stop the server: it keeps answering
// over both transports, and answers every well-formed query among them.
func TestGarbageFlood(t *testing.T) {
	d := newDeployment(t, deployOpts{})
	rng := rand.New(rand.NewPCG(7, 14))
	seeds := seedQueries()
	u := d.udpConn(t)
	// 20,000 datagrams: random bytes, and seed queries with random bytes
	// changed, as fast as the socket takes them.
	for i := range 20000 {
		var b []byte
		if i%2 == 0 {
			b = make([]byte, rng.IntN(600))
			for j := range b {
				b[j] = byte(rng.IntN(256))
			}
		} else {
			b = append([]byte(nil), seeds[rng.IntN(len(seeds))]...)
			for range 1 + rng.IntN(4) {
				b[rng.IntN(len(b))] = byte(rng.IntN(256))
			}
		}
		u.Write(b)
	}
	// Half-open and garbage TCP: connections that send nothing, half a
	// length, a length and half a message, or noise.
	var conns []net.Conn
	for i := range 50 {
		c, err := net.Dial("tcp", d.addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		switch i % 4 {
		case 1:
			c.Write([]byte{0})
		case 2:
			c.Write([]byte{0, 40, 0, 1, 0, 0})
		case 3:
			noise := make([]byte, 300)
			for j := range noise {
				noise[j] = byte(rng.IntN(256))
			}
			c.Write(noise)
		}
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	// Still serving, over both transports, while those connections hang.
	deadline := time.Now().Add(5 * time.Second)
	for _, proto := range []string{"udp", "tcp"} {
		for {
			m := new(dns.Msg)
			m.SetQuestion("play.edge.test.", dns.TypeA)
			r, _, err := (&dns.Client{Net: proto, Timeout: 500 * time.Millisecond}).Exchange(m, d.addr)
			if err == nil && len(r.Answer) == 2 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not answering after the flood: %v %v", proto, r, err)
			}
		}
	}
}
