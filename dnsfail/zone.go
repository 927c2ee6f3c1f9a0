package dnsfail

import (
	"fmt"
	"slices"
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
	signer *signer // nil: not signed
}

// owner is everything at one name: static RRsets and, for a service name,
// the service that computes its A and AAAA answers. An owner with neither is
// an empty non-terminal (it exists: queries for it get NODATA).
type owner struct {
	sets    []rrset // in configuration order
	service *service
	// cut: NS records below the apex make this name a delegation point;
	// the zone is not authoritative at or below it (glue lives there).
	cut bool
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
	for name, o := range z.names {
		o.cut = name != apex && len(o.rrset(dns.TypeNS)) > 0
	}
	return z, nil
}

// types are the types o answers with, in ascending order.
func (o *owner) types() []uint16 {
	var out []uint16
	if o.service != nil {
		out = append(out, dns.TypeA, dns.TypeAAAA)
	}
	for _, set := range o.sets {
		if !slices.Contains(out, set.t) {
			out = append(out, set.t)
		}
	}
	slices.Sort(out)
	return out
}

// found says what answers a name of a zone.
type found int

const (
	exact     found = iota // the name itself
	wildcard               // the wildcard of its closest encloser (RFC 4592 §3.3.1)
	delegated              // a delegation point at or above it
	nxdomain               // nothing: the name does not exist
)

// locate finds what answers lname (lower case, inside z), walking down from
// the apex as RFC 1034 §4.3.2 step 3 does: the first delegation point on
// the way wins (except for a DS query at the delegation point itself, which
// the parent side answers, RFC 4035 §3.1.4.1); below the closest encloser
// only its wildcard child can answer. The owner is the name's node, the
// wildcard's or the delegation point's.
func (z *zone) locate(lname string, ds bool) (found, *owner) {
	labels := dns.Split(lname) // where each label starts
	// The names below the apex, from the apex's child down to lname.
	for i := len(labels) - dns.CountLabel(z.apex) - 1; i >= 0; i-- {
		o := z.names[lname[labels[i]:]]
		if o == nil {
			closest := z.apex
			if i+1 < len(labels) {
				closest = lname[labels[i+1]:]
			}
			if w := z.names[wildcardOf(closest)]; w != nil {
				return wildcard, w
			}
			return nxdomain, nil
		}
		if o.cut && (i > 0 || !ds) {
			return delegated, o
		}
	}
	return exact, z.names[lname]
}

// wildcardOf is the wildcard name directly below name.
func wildcardOf(name string) string {
	if name == "." {
		return "*."
	}
	return "*." + name
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
			// An RRset holds each record once (RFC 2181 §5).
			if slices.ContainsFunc(o.sets[i].rrs, func(have dns.RR) bool { return dns.IsDuplicate(have, rr) }) {
				return
			}
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
