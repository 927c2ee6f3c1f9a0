package dnsfail

import (
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func TestProtocol(t *testing.T) {
	d := newDeployment(t, deployOpts{})

	t.Run("truncated over UDP, whole over TCP", func(t *testing.T) {
		r := d.query(t, "udp", "big.edge.test.", dns.TypeTXT)
		r.Compress = true // as it was sent
		if !r.Truncated || r.Len() > 512 {
			t.Fatalf("UDP without EDNS: want TC=1 within 512 bytes, got TC=%v %d bytes", r.Truncated, r.Len())
		}
		r = d.query(t, "udp", "big.edge.test.", dns.TypeTXT, func(m *dns.Msg) { m.SetEdns0(1232, false) })
		r.Compress = true
		if !r.Truncated || r.Len() > 1232 {
			t.Fatalf("UDP with EDNS 1232: want TC=1 within 1232 bytes, got TC=%v %d bytes", r.Truncated, r.Len())
		}
		r = d.query(t, "tcp", "big.edge.test.", dns.TypeTXT)
		if r.Truncated || len(r.Answer) != 40 {
			t.Fatalf("TCP: want 40 records untruncated, got TC=%v %d", r.Truncated, len(r.Answer))
		}
	})

	t.Run("OPT echoed with hedge's size and the DO bit", func(t *testing.T) {
		r := d.query(t, "udp", "play.edge.test.", dns.TypeA, func(m *dns.Msg) { m.SetEdns0(4096, true) })
		opt := r.IsEdns0()
		if opt == nil || opt.UDPSize() != advertisedUDPSize || !opt.Do() || opt.Version() != 0 {
			t.Fatalf("want OPT udp=%d DO version 0, got %v", advertisedUDPSize, opt)
		}
		r = d.query(t, "udp", "play.edge.test.", dns.TypeA)
		if r.IsEdns0() != nil {
			t.Fatal("OPT in the reply to a query without one")
		}
	})

	t.Run("BADVERS carries an OPT", func(t *testing.T) {
		r := d.query(t, "udp", "play.edge.test.", dns.TypeA, func(m *dns.Msg) {
			m.SetEdns0(1232, false)
			m.IsEdns0().SetVersion(1)
		})
		if r.Rcode != dns.RcodeBadVers || r.IsEdns0() == nil || len(r.Answer) != 0 {
			t.Fatalf("want BADVERS with OPT and no answer, got %s opt=%v", dns.RcodeToString[r.Rcode], r.IsEdns0())
		}
	})

	rcodes := []struct {
		name string
		edit func(*dns.Msg)
		want int
	}{
		{"NOTIMP for UPDATE", func(m *dns.Msg) { m.Opcode = dns.OpcodeUpdate }, dns.RcodeNotImplemented},
		{"NOTIMP for STATUS", func(m *dns.Msg) { m.Opcode = dns.OpcodeStatus }, dns.RcodeNotImplemented},
		{"NOTIMP for NOTIFY", func(m *dns.Msg) { m.Opcode = dns.OpcodeNotify }, dns.RcodeNotImplemented},
		{"FORMERR for two OPTs", func(m *dns.Msg) { m.SetEdns0(1232, false); m.Extra = append(m.Extra, m.Extra[0]) }, dns.RcodeFormatError},
		{"FORMERR for a bad ECS", func(m *dns.Msg) {
			m.SetEdns0(1232, false)
			m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, SourceScope: 8, Address: net.IPv4(10, 0, 0, 0)})
		}, dns.RcodeFormatError},
		{"REFUSED for class CH", func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassCHAOS }, dns.RcodeRefused},
		{"REFUSED for an unknown class", func(m *dns.Msg) { m.Question[0].Qclass = 77 }, dns.RcodeRefused},
		{"REFUSED for AXFR", func(m *dns.Msg) { m.Question[0].Qtype = dns.TypeAXFR }, dns.RcodeRefused},
		{"REFUSED for class ANY", func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassANY }, dns.RcodeRefused},
	}
	for _, c := range rcodes {
		t.Run(c.name, func(t *testing.T) {
			for _, proto := range []string{"udp", "tcp"} {
				r := d.query(t, proto, "play.edge.test.", dns.TypeA, c.edit)
				if r.Rcode != c.want {
					t.Errorf("%s: want %s, got %s", proto, dns.RcodeToString[c.want], dns.RcodeToString[r.Rcode])
				}
			}
		})
	}

	t.Run("FORMERR for no question", func(t *testing.T) {
		m := new(dns.Msg)
		m.Id = 7
		r, _, err := (&dns.Client{Timeout: time.Second}).Exchange(m, d.addr)
		if err != nil || r.Rcode != dns.RcodeFormatError {
			t.Fatalf("want FORMERR, got %v %v", r, err)
		}
	})
}
