package dnsfail

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func withECS(addr string, bits uint8) func(*dns.Msg) {
	return func(m *dns.Msg) {
		m.SetEdns0(1232, false)
		e := &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: bits, Address: net.ParseIP(addr).To4()}
		m.IsEdns0().Option = append(m.IsEdns0().Option, e)
	}
}

func replyECS(m *dns.Msg) *dns.EDNS0_SUBNET {
	if opt := m.IsEdns0(); opt != nil {
		for _, o := range opt.Option {
			if e, ok := o.(*dns.EDNS0_SUBNET); ok {
				return e
			}
		}
	}
	return nil
}

// TestECS: the nearest policy locates the client by EDNS Client Subnet,
// else by the resolver's address, and answers with the scope it used.
func TestECS(t *testing.T) {
	d := newDeployment(t, deployOpts{})
	cases := []struct {
		name  string
		qname string
		ecs   string
		bits  uint8
		want  string
		scope uint8
		noECS bool
	}{
		{"10/8 prefers eu", "near.edge.test.", "10.1.0.0", 16, "127.0.0.12", 8, false},
		{"10.9/16 prefers sea", "near.edge.test.", "10.9.1.0", 24, "127.0.0.11", 16, false},
		{"no rule: service order, scope = source", "near.edge.test.", "192.0.2.0", 24, "127.0.0.11", 24, false},
		{"source prefix 0: the resolver's address", "near.edge.test.", "0.0.0.0", 0, "127.0.0.11", 0, false},
		{"no ECS: the resolver's address (127/8 → sea)", "near.edge.test.", "", 0, "127.0.0.11", 0, true},
		{"not location dependent: scope 0", "play.edge.test.", "10.1.0.0", 16, "", 0, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var edit []func(*dns.Msg)
			if !c.noECS {
				edit = append(edit, withECS(c.ecs, c.bits))
			}
			for _, proto := range []string{"udp", "tcp"} {
				r := d.query(t, proto, c.qname, dns.TypeA, edit...)
				a := answerAddrs(r)
				if c.want != "" && (len(a) != 1 || a[0] != c.want) {
					t.Errorf("%s: want [%s], got %v", proto, c.want, a)
				}
				e := replyECS(r)
				if c.noECS {
					if e != nil {
						t.Errorf("%s: ECS in the reply to a query without it", proto)
					}
					continue
				}
				if e == nil {
					t.Fatalf("%s: ECS not echoed", proto)
				}
				if e.SourceScope != c.scope || e.SourceNetmask != c.bits || e.Family != 1 {
					t.Errorf("%s: want family 1 source /%d scope /%d, got family %d source /%d scope /%d", proto, c.bits, c.scope, e.Family, e.SourceNetmask, e.SourceScope)
				}
			}
		})
	}
	t.Run("dig +subnet", func(t *testing.T) {
		r := runDig(t, "dig", d.addr, "+subnet=10.1.0.0/16", "near.edge.test", "A")
		if !strings.Contains(r.out, "CLIENT-SUBNET: 10.1.0.0/16/8") || len(r.answer) != 1 || !strings.HasSuffix(r.answer[0], "127.0.0.12") {
			t.Fatalf("want eu with CLIENT-SUBNET 10.1.0.0/16/8, got:\n%s", r.out)
		}
	})
	t.Run("nearest skips a failed region", func(t *testing.T) {
		d.eu.red.Store(true)
		defer d.eu.red.Store(false)
		deadline := time.Now().Add(5 * time.Second)
		for {
			r := d.query(t, "udp", "near.edge.test.", dns.TypeA, withECS("10.1.0.0", 16))
			a := answerAddrs(r)
			if len(a) == 1 && a[0] == "127.0.0.11" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("eu down: want sea, got %v", a)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}
