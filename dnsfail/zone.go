package dnsfail

import (
	"fmt"
	"strings"
	"time"

	"github.com/miekg/dns"

	"hedge/configs"
)

// zone is one zone's static data, keyed by lower-case owner name.
type zone struct {
	apex   string
	soa    *dns.SOA
	negTTL uint32
	names  map[string]*owner
}

// owner is everything at one name: static RRsets and, for a service name,
// the service that computes its A and AAAA answers. An owner with neither is
// an empty non-terminal (it exists: queries for it get NODATA).
type owner struct {
	sets    []rrset // in configuration order (ANY answers the first)
	service *service
}

// rrset is the records of one type at one name.
type rrset struct {
	t   uint16
	rrs []dns.RR
}

// rrset returns the records of type t.
func (o *owner) rrset(t uint16) []dns.RR {
	for i := range o.sets {
		if o.sets[i].t == t {
			return o.sets[i].rrs
		}
	}
	return nil
}

func secs(d configs.Duration) uint32 { return uint32(d.D() / time.Second) }

// buildZone turns a validated configuration zone into lookup tables.
func buildZone(zc configs.Zone) (*zone, error) {
	apex := dns.CanonicalName(zc.Name)
	z := &zone{apex: apex, names: map[string]*owner{}}
	z.soa = &dns.SOA{
		Hdr:     dns.RR_Header{Name: apex, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: secs(zc.SOA.TTL)},
		Ns:      dns.Fqdn(zc.SOA.MName),
		Mbox:    dns.Fqdn(zc.SOA.RName),
		Serial:  zc.SOA.Serial,
		Refresh: secs(zc.SOA.Refresh),
		Retry:   secs(zc.SOA.Retry),
		Expire:  secs(zc.SOA.Expire),
		Minttl:  secs(zc.SOA.Minimum),
	}
	z.negTTL = min(z.soa.Hdr.Ttl, z.soa.Minttl)
	z.add(apex, z.soa)
	for _, ns := range zc.NS {
		z.add(apex, &dns.NS{Hdr: dns.RR_Header{Name: apex, Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: secs(zc.TTL)}, Ns: dns.Fqdn(ns)})
	}
	for i, r := range zc.Records {
		name, ok := configs.DNSOwner(r.Name, apex)
		if !ok {
			return nil, fmt.Errorf("records[%d]: %q is outside %s", i, r.Name, apex)
		}
		ttl := zc.TTL
		if r.TTL > 0 {
			ttl = r.TTL
		}
		rr, err := dns.NewRR(fmt.Sprintf("%s %d IN %s %s", name, secs(ttl), strings.ToUpper(r.Type), r.Value))
		if err != nil || rr == nil {
			return nil, fmt.Errorf("records[%d]: %v", i, err)
		}
		z.add(name, rr)
	}
	for _, rr := range zc.FileRecords {
		z.add(rr.Header().Name, rr)
	}
	return z, nil
}

func (z *zone) node(name string) *owner {
	o := z.names[name]
	if o == nil {
		o = &owner{}
		z.names[name] = o
		// Every name between this one and the apex exists too.
		for parent := name; parent != z.apex; {
			i := strings.IndexByte(parent, '.')
			if i < 0 || i == len(parent)-1 {
				break
			}
			parent = parent[i+1:]
			if _, ok := z.names[parent]; ok {
				break
			}
			z.names[parent] = &owner{}
		}
	}
	return o
}

func (z *zone) add(name string, rr dns.RR) {
	o := z.node(name)
	t := rr.Header().Rrtype
	for i := range o.sets {
		if o.sets[i].t == t {
			o.sets[i].rrs = append(o.sets[i].rrs, rr)
			return
		}
	}
	o.sets = append(o.sets, rrset{t: t, rrs: []dns.RR{rr}})
}

// zoneSet finds the zone that holds a name: the longest matching apex.
type zoneSet []*zone

func (zs zoneSet) find(lname string) *zone {
	var best *zone
	for _, z := range zs {
		if dns.IsSubDomain(z.apex, lname) && (best == nil || len(z.apex) > len(best.apex)) {
			best = z
		}
	}
	return best
}
