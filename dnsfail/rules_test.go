package dnsfail

import (
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// rrText is a record as one line with single spaces: "name ttl IN type data".
func rrText(rr dns.RR) string { return strings.Join(strings.Fields(rr.String()), " ") }

func sectionText(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		if rr.Header().Rrtype != dns.TypeOPT {
			out = append(out, rrText(rr))
		}
	}
	return out
}

// TestAnswerRules: delegations (RFC 1034 §4.3.2, RFC 2181 §6.1), wildcards
// with the closest-encloser rules (RFC 4592), CNAME rules (RFC 1034 §3.6.2
// and §4.3.2, RFC 2181 §10.1) and additional addresses, over UDP and TCP.
// The answers are Knot's for the same zone (TestKnotDifferential compares
// them with a running Knot).
func TestAnswerRules(t *testing.T) {
	d := newDeployment(t, deployOpts{})
	soa := "edge.test. 30 IN SOA ns1.edge.test. hostmaster.edge.test. 1 3600 600 1209600 30"
	referral := []string{"sub.edge.test. 3600 IN NS ns.sub.edge.test.", "sub.edge.test. 3600 IN NS ns1.edge.test."}
	glue := []string{"ns.sub.edge.test. 3600 IN A 192.0.2.53", "ns.sub.edge.test. 3600 IN AAAA 2001:db8::53", "ns1.edge.test. 3600 IN A 127.0.0.1"}
	play := []string{"play.edge.test. 10 IN A 127.0.0.11", "play.edge.test. 10 IN A 127.0.0.12"}
	cases := []struct {
		name, qname string
		qtype       uint16
		rcode       int
		aa          bool
		answer      []string
		ns          []string
		extra       []string
	}{
		{"below a delegation: referral with glue", "x.sub.edge.test.", dns.TypeA, dns.RcodeSuccess, false, nil, referral, glue},
		{"the delegation point: referral", "sub.edge.test.", dns.TypeNS, dns.RcodeSuccess, false, nil, referral, glue},
		{"glue is not authoritative data", "ns.sub.edge.test.", dns.TypeA, dns.RcodeSuccess, false, nil, referral, glue},
		{"ANY at a delegation point: referral", "sub.edge.test.", dns.TypeANY, dns.RcodeSuccess, false, nil, referral, glue},
		{"DS at the delegation point: the parent answers (NODATA)", "sub.edge.test.", dns.TypeDS, dns.RcodeSuccess, true, nil, []string{soa}, nil},
		{"DS below the delegation: referral", "x.sub.edge.test.", dns.TypeDS, dns.RcodeSuccess, false, nil, referral, glue},
		{"CNAME into a delegation: the CNAME, then the referral", "tosub.edge.test.", dns.TypeA, dns.RcodeSuccess, true,
			[]string{"tosub.edge.test. 3600 IN CNAME x.sub.edge.test."}, referral, glue},
		{"wildcard synthesis", "foo.wild.edge.test.", dns.TypeA, dns.RcodeSuccess, true, []string{"foo.wild.edge.test. 3600 IN A 192.0.2.80"}, nil, nil},
		{"wildcard, more labels", "a.b.wild.edge.test.", dns.TypeTXT, dns.RcodeSuccess, true, []string{`a.b.wild.edge.test. 3600 IN TXT "wild"`}, nil, nil},
		{"wildcard NODATA", "foo.wild.edge.test.", dns.TypeAAAA, dns.RcodeSuccess, true, nil, []string{soa}, nil},
		{"wildcard ANY: the lowest type", "foo.wild.edge.test.", dns.TypeANY, dns.RcodeSuccess, true, []string{"foo.wild.edge.test. 3600 IN A 192.0.2.80"}, nil, nil},
		{"the wildcard's parent exists (empty non-terminal)", "wild.edge.test.", dns.TypeA, dns.RcodeSuccess, true, nil, []string{soa}, nil},
		{"the wildcard's own name", "*.wild.edge.test.", dns.TypeA, dns.RcodeSuccess, true, []string{"*.wild.edge.test. 3600 IN A 192.0.2.80"}, nil, nil},
		{"below the wildcard's own name: no match (RFC 4592 §2.2.1)", "x.*.wild.edge.test.", dns.TypeA, dns.RcodeNameError, true, nil, []string{soa}, nil},
		{"an existing name is never wildcard-matched", "a.b.deep.edge.test.", dns.TypeA, dns.RcodeSuccess, true, []string{"a.b.deep.edge.test. 3600 IN A 192.0.2.1"}, nil, nil},
		{"below an empty non-terminal without a wildcard", "x.b.deep.edge.test.", dns.TypeA, dns.RcodeNameError, true, nil, []string{soa}, nil},
		{"wildcard CNAME, followed", "foo.wc.edge.test.", dns.TypeA, dns.RcodeSuccess, true,
			append([]string{"foo.wc.edge.test. 3600 IN CNAME play.edge.test."}, play...), nil, nil},
		{"CNAME into a wildcard", "tow.edge.test.", dns.TypeA, dns.RcodeSuccess, true,
			[]string{"tow.edge.test. 3600 IN CNAME x.wild.edge.test.", "x.wild.edge.test. 3600 IN A 192.0.2.80"}, nil, nil},
		{"CNAME to a missing name: NXDOMAIN (RFC 6604)", "tonx.edge.test.", dns.TypeA, dns.RcodeNameError, true,
			[]string{"tonx.edge.test. 3600 IN CNAME nosuch.edge.test."}, []string{soa}, nil},
		{"CNAME loop: each CNAME once", "loop1.edge.test.", dns.TypeA, dns.RcodeSuccess, true,
			[]string{"loop1.edge.test. 3600 IN CNAME loop2.edge.test.", "loop2.edge.test. 3600 IN CNAME loop1.edge.test."}, nil, nil},
		{"ANY at a CNAME owner: the CNAME (RFC 1034 §4.3.2 step 3a)", "www.edge.test.", dns.TypeANY, dns.RcodeSuccess, true,
			[]string{"www.edge.test. 3600 IN CNAME play.edge.test."}, nil, nil},
		{"MX: addresses of in-zone targets", "mx.edge.test.", dns.TypeMX, dns.RcodeSuccess, true,
			[]string{"mx.edge.test. 3600 IN MX 10 sea.edge.test.", "mx.edge.test. 3600 IN MX 20 play.edge.test."},
			nil, append(append([]string{"sea.edge.test. 3600 IN A 127.0.0.11"}, play...), "play.edge.test. 10 IN AAAA 2001:db8::12")},
		{"SRV: addresses of in-zone targets", "srv.edge.test.", dns.TypeSRV, dns.RcodeSuccess, true,
			[]string{"srv.edge.test. 3600 IN SRV 0 0 443 sea.edge.test."}, nil, []string{"sea.edge.test. 3600 IN A 127.0.0.11"}},
		{"apex NS: in-zone addresses", "edge.test.", dns.TypeNS, dns.RcodeSuccess, true,
			[]string{"edge.test. 3600 IN NS ns1.edge.test.", "edge.test. 3600 IN NS ns2.other.test."}, nil, []string{"ns1.edge.test. 3600 IN A 127.0.0.1"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, proto := range []string{"udp", "tcp"} {
				r := d.query(t, proto, c.qname, c.qtype, func(m *dns.Msg) { m.SetEdns0(1232, false) })
				got := []any{dns.RcodeToString[r.Rcode], r.Authoritative, sectionText(r.Answer), sectionText(r.Ns), sectionText(r.Extra)}
				want := []any{dns.RcodeToString[c.rcode], c.aa, c.answer, c.ns, c.extra}
				for i, section := range []string{"rcode", "AA", "answer", "authority", "additional"} {
					if !equalAny(got[i], want[i]) {
						t.Errorf("%s %s: want %v, got %v", proto, section, want[i], got[i])
					}
				}
			}
		})
	}
}

func equalAny(a, b any) bool {
	as, aok := a.([]string)
	bs, bok := b.([]string)
	if aok && bok {
		return slices.Equal(as, bs)
	}
	return a == b
}

// TestProtocolRules: what the issue found wrong in the header, EDNS and
// question handling, each over UDP and TCP and on the raw sockets.
func TestProtocolRules(t *testing.T) {
	d := newDeployment(t, deployOpts{})
	cases := []struct {
		name  string
		qname string
		qtype uint16
		edit  func(*dns.Msg)
		rcode int
		opt   bool // the reply carries an OPT
	}{
		{"IXFR in the standard form (SOA in authority): REFUSED", "edge.test.", dns.TypeIXFR, func(m *dns.Msg) {
			m.Ns = append(m.Ns, &dns.SOA{Hdr: dns.RR_Header{Name: "edge.test.", Rrtype: dns.TypeSOA, Class: dns.ClassINET}, Ns: "a.", Mbox: "b.", Serial: 1})
		}, dns.RcodeRefused, false},
		{"NOTIMP keeps the OPT (RFC 6891 §7)", "play.edge.test.", dns.TypeA, func(m *dns.Msg) { m.Opcode = dns.OpcodeUpdate; m.SetEdns0(1232, false) }, dns.RcodeNotImplemented, true},
		{"NOTIFY: NOTIMP with OPT", "edge.test.", dns.TypeSOA, func(m *dns.Msg) { m.Opcode = dns.OpcodeNotify; m.SetEdns0(1232, false) }, dns.RcodeNotImplemented, true},
		{"FORMERR keeps the OPT", "play.edge.test.", dns.TypeA, func(m *dns.Msg) {
			m.SetEdns0(1232, false)
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: "x.", Rrtype: dns.TypeA, Class: dns.ClassINET}, A: net.IPv4(1, 2, 3, 4)})
		}, dns.RcodeFormatError, true},
		{"ECS within its prefix is fine", "near.edge.test.", dns.TypeA, withECS("10.1.0.0", 16), dns.RcodeSuccess, true},
		{"two ECS options: FORMERR", "near.edge.test.", dns.TypeA, func(m *dns.Msg) {
			withECS("10.1.0.0", 16)(m)
			m.IsEdns0().Option = append(m.IsEdns0().Option, m.IsEdns0().Option[0])
		}, dns.RcodeFormatError, true},
		{"QCLASS ANY: REFUSED", "play.edge.test.", dns.TypeA, func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassANY }, dns.RcodeRefused, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, proto := range []string{"udp", "tcp"} {
				r := d.query(t, proto, c.qname, c.qtype, c.edit)
				if r.Rcode != c.rcode || (r.IsEdns0() != nil) != c.opt {
					t.Errorf("%s: want %s with OPT %v, got %s with OPT %v", proto, dns.RcodeToString[c.rcode], c.opt, dns.RcodeToString[r.Rcode], r.IsEdns0() != nil)
				}
			}
		})
	}

	// On the raw sockets: what the dns package's parser would let through.
	plainQ := func(edit func(*dns.Msg)) []byte {
		m := new(dns.Msg)
		m.SetQuestion("near.edge.test.", dns.TypeA)
		m.Id = 99
		if edit != nil {
			edit(m)
		}
		b, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	full := plainQ(nil)
	// An ECS option of family 1, /16, with 4 address octets (2 are right).
	longECS := plainQ(func(m *dns.Msg) { m.SetEdns0(1232, false) })
	longECS = append(longECS[:len(longECS)-2], 0, 12, 0, 8, 0, 8, 0, 1, 16, 0, 10, 1, 0, 0)
	// Family 1, /12, octets 10.1: a bit set beyond the prefix.
	bitsECS := plainQ(func(m *dns.Msg) { m.SetEdns0(1232, false) })
	bitsECS = append(bitsECS[:len(bitsECS)-2], 0, 10, 0, 8, 0, 6, 0, 1, 12, 0, 10, 1)
	raw := []struct {
		name string
		wire []byte
		want int
	}{
		{"question cut before QCLASS: FORMERR", full[:len(full)-2], dns.RcodeFormatError},
		{"question cut inside QTYPE: FORMERR", full[:len(full)-3], dns.RcodeFormatError},
		{"ECS address longer than its prefix needs: FORMERR", longECS, dns.RcodeFormatError},
		{"ECS address bits beyond the source prefix: FORMERR (RFC 7871 §6)", bitsECS, dns.RcodeFormatError},
		{"the same query whole: NOERROR", full, dns.RcodeSuccess},
	}
	for _, c := range raw {
		t.Run(c.name, func(t *testing.T) {
			if c.name == "ECS address longer than its prefix needs: FORMERR" {
				// The dns package reads it as a valid /16: only the wire shows it.
				if m := new(dns.Msg); m.Unpack(c.wire) != nil || replyECS(m) == nil {
					t.Fatalf("test query does not parse as one with ECS: %v", m.Unpack(c.wire))
				}
			}
			for _, proto := range []string{"udp", "tcp"} {
				r := rawExchange(t, proto, d.addr, c.wire)
				if r.Rcode != c.want || r.Id != 99 {
					t.Errorf("%s: want %s for id 99, got %s for id %d", proto, dns.RcodeToString[c.want], dns.RcodeToString[r.Rcode], r.Id)
				}
				if strings.HasPrefix(c.name, "question cut") && len(r.Question) != 0 {
					t.Errorf("%s: FORMERR echoes an invented question %v", proto, r.Question)
				}
			}
		})
	}
}

// rawExchange sends wire as one query and parses the reply.
func rawExchange(t *testing.T, proto, addr string, wire []byte) *dns.Msg {
	t.Helper()
	c, err := net.DialTimeout(proto, addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if proto == "tcp" {
		wire = append([]byte{byte(len(wire) >> 8), byte(len(wire))}, wire...)
	}
	if _, err := c.Write(wire); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65535)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("%s: no reply: %v", proto, err)
	}
	b := buf[:n]
	if proto == "tcp" {
		for len(b) < 2 || len(b) < 2+int(b[0])<<8|int(b[1]) {
			m, err := c.Read(buf[n:])
			if err != nil {
				t.Fatalf("tcp: reply cut: %v", err)
			}
			n += m
			b = buf[:n]
		}
		b = b[2:]
	}
	r := new(dns.Msg)
	if err := r.Unpack(b); err != nil {
		t.Fatalf("%s: reply does not parse: %v", proto, err)
	}
	return r
}

// TestUDPSizeCap: a UDP reply never exceeds the 1232 bytes hedge
// advertises, whatever buffer the client offers (RFC 9715 §3.2), in the
// full handler and on the fast path; the same query over TCP is whole.
func TestUDPSizeCap(t *testing.T) {
	d := newDeployment(t, deployOpts{})
	st := d.srv.st.Load()
	for _, bufsize := range []uint16{512, 1232, 1400, 4096, 65535} {
		edit := func(m *dns.Msg) { m.SetEdns0(bufsize, false) }
		r := d.query(t, "udp", "big.edge.test.", dns.TypeTXT, edit)
		r.Compress = true
		if !r.Truncated || r.Len() > advertisedUDPSize || len(r.Answer) != 0 {
			t.Errorf("UDP bufsize %d: want TC=1, an empty answer, at most %d bytes; got TC=%v %d records %d bytes", bufsize, advertisedUDPSize, r.Truncated, len(r.Answer), r.Len())
		}
		q := new(dns.Msg)
		q.SetQuestion("big.edge.test.", dns.TypeTXT)
		edit(q)
		wire, _ := q.Pack()
		if out, res := st.serveFast(wire, nil, netip.MustParseAddr("127.0.0.1"), d.srv.metrics); res == fastReply && len(out) > advertisedUDPSize {
			t.Errorf("fast path, bufsize %d: a %d-byte reply", bufsize, len(out))
		}
	}
	if r := d.query(t, "tcp", "big.edge.test.", dns.TypeTXT, func(m *dns.Msg) { m.SetEdns0(1232, false) }); r.Truncated || len(r.Answer) != 40 {
		t.Errorf("TCP: want all 40 records, got TC=%v %d", r.Truncated, len(r.Answer))
	}
	// A reply that fits 1232 but not 512 is whole with EDNS.
	r := d.query(t, "udp", "mx.edge.test.", dns.TypeMX, func(m *dns.Msg) { m.SetEdns0(65535, false) })
	if r.Truncated || len(r.Extra) != 5 {
		t.Errorf("MX with EDNS: want whole (4 addresses + OPT), got TC=%v extra %d", r.Truncated, len(r.Extra))
	}
}
