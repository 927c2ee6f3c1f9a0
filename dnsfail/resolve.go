package dnsfail

import (
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// The full handler: what an authoritative server answers, in the order of
// RFC 1034 §4.3.2 — the header and EDNS first, then the zone, a delegation
// on the way down to the name, the name itself or the wildcard of its
// closest encloser (RFC 4592), CNAMEs followed inside the served zones,
// additional addresses for NS, MX and SRV targets. The fast path (fast.go)
// serves prepared copies of what this code answers.

// ServeDNS answers one query (dns.Handler).
func (s *Server) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	st := s.st.Load()
	var client netip.Addr
	udp := false
	switch a := w.RemoteAddr().(type) {
	case *net.UDPAddr:
		client, udp = addrOf(a.IP), true
	case *net.TCPAddr:
		client = addrOf(a.IP)
	}
	m, info := st.answer(r, client, udp)
	if udp && st.rrl != nil {
		switch st.rrl.check(client, time.Now()) {
		case rrlDrop:
			s.metrics.rrl.WithLabelValues("drop").Inc()
			return
		case rrlSlip:
			s.metrics.rrl.WithLabelValues("slip").Inc()
			m.Answer, m.Ns, m.Truncated = nil, nil, true
			m.Extra = onlyOPT(m.Extra)
		}
	}
	m.Compress = true
	if udp {
		truncate(m, info.size, info.referral)
	}
	s.metrics.query(udp, m.Rcode)
	if err := w.WriteMsg(m); err != nil {
		s.log.Debug("dns write failed", "error", err)
	}
}

func addrOf(ip net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(ip)
	return a.Unmap()
}

func onlyOPT(extra []dns.RR) []dns.RR {
	for _, rr := range extra {
		if rr.Header().Rrtype == dns.TypeOPT {
			return []dns.RR{rr}
		}
	}
	return nil
}

// truncate makes a UDP reply fit size. Additional addresses that are not
// required go first (RFC 2181 §9); if that is not enough — or the reply is
// a referral, whose glue a resolver needs (RFC 9471) — the reply keeps only
// its question and OPT, with TC=1, as Knot does: the client asks again over
// TCP and gets all of it.
func truncate(m *dns.Msg, size int, referral bool) {
	if m.Len() <= size {
		return
	}
	opt := onlyOPT(m.Extra)
	if len(m.Extra) > len(opt) && !referral {
		m.Extra = opt
		if m.Len() <= size {
			return
		}
	}
	m.Answer, m.Ns, m.Extra, m.Truncated = nil, nil, opt, true
}

// answerInfo is what the transport and the fast path need to know about a
// reply besides the reply itself.
type answerInfo struct {
	size     int  // the UDP payload it must fit
	referral bool // a delegation: its glue must not be dropped
	dynamic  bool // it holds a service's addresses, which change with health
}

// answer builds the reply to r.
func (st *state) answer(r *dns.Msg, client netip.Addr, udp bool) (*dns.Msg, answerInfo) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.RecursionDesired = r.RecursionDesired
	m.CheckingDisabled = r.CheckingDisabled
	info := answerInfo{size: dns.MinMsgSize}
	// Every reply to a query with an OPT carries one, errors included
	// (RFC 6891 §7); its size is hedge's, and UDP replies fit the smaller
	// of the two sizes (RFC 6891 §6.2.5, RFC 9715 §3.2).
	var opt *dns.OPT
	optBad := false
	for _, rr := range r.Extra {
		if o, ok := rr.(*dns.OPT); ok {
			if opt != nil || o.Hdr.Name != "." {
				optBad = true
			}
			if opt == nil {
				opt = o
			}
		}
	}
	// A query with two OPTs gets none back: its EDNS is what is wrong.
	var ro *dns.OPT
	if opt != nil && !optBad {
		ro = &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
		ro.SetUDPSize(advertisedUDPSize)
		if opt.Do() {
			ro.SetDo()
		}
		// Added last, after any additional records.
		defer func() { m.Extra = append(m.Extra, ro) }()
		info.size = min(max(int(opt.UDPSize()), dns.MinMsgSize), advertisedUDPSize)
	}
	var ecs *dns.EDNS0_SUBNET
	switch {
	case r.Opcode != dns.OpcodeQuery:
		m.Rcode = dns.RcodeNotImplemented
		return m, info
	case optBad:
		m.Rcode = dns.RcodeFormatError
		return m, info
	case opt != nil && opt.Version() != 0:
		m.Rcode = dns.RcodeBadVers
		return m, info
	case len(r.Question) != 1:
		m.Rcode = dns.RcodeFormatError
		return m, info
	}
	if opt != nil {
		for _, o := range opt.Option {
			if e, ok := o.(*dns.EDNS0_SUBNET); ok {
				if ecs != nil || !validECS(e) {
					m.Rcode = dns.RcodeFormatError
					return m, info
				}
				ecs = e
			}
		}
	}
	q := r.Question[0]
	switch {
	case q.Qtype == dns.TypeAXFR || q.Qtype == dns.TypeIXFR:
		// Before the section counts: an IXFR carries the client's SOA in
		// its authority section (RFC 1995 §3).
		m.Rcode = dns.RcodeRefused
		return m, info
	case len(r.Answer) != 0 || len(r.Ns) != 0:
		m.Rcode = dns.RcodeFormatError
		return m, info
	case q.Qclass != dns.ClassINET:
		m.Rcode = dns.RcodeRefused
		return m, info
	case q.Qtype == dns.TypeOPT || q.Qtype == dns.TypeTSIG || q.Qtype == dns.TypeTKEY:
		m.Rcode = dns.RcodeFormatError
		return m, info
	case q.Qtype == dns.TypeMAILA || q.Qtype == dns.TypeMAILB:
		m.Rcode = dns.RcodeNotImplemented
		return m, info
	}
	lname := strings.ToLower(q.Name)
	z := st.zones.find(lname)
	if z == nil {
		m.Rcode = dns.RcodeRefused
		return m, info
	}
	m.Authoritative = true
	where := client
	if ecs != nil && ecs.SourceNetmask > 0 {
		where, _ = netip.AddrFromSlice(ecs.Address)
		where = where.Unmap()
	}
	res := resolver{st: st, m: m, client: where, do: opt != nil && opt.Do()}
	res.resolve(z, q.Name, lname, q.Qtype)
	info.referral, info.dynamic = res.referral, res.dynamic
	if ecs != nil {
		e := *ecs
		e.SourceScope = 0
		if res.scope != 0 && ecs.SourceNetmask > 0 {
			e.SourceScope = uint8(res.scope)
			if res.scope < 0 {
				e.SourceScope = ecs.SourceNetmask
			}
		}
		ro.Option = append(ro.Option, &e)
	}
	return m, info
}

// validECS checks an EDNS Client Subnet option of a query (RFC 7871 §7.1.2
// and §6: no scope, a known family, and no address bits beyond the source
// prefix). That the address has no more octets than the prefix needs is
// checked on the wire (wire.go): the dns package pads them away.
func validECS(e *dns.EDNS0_SUBNET) bool {
	var a netip.Addr
	switch {
	case e.SourceScope != 0:
		return false
	case e.Family == 1 && e.SourceNetmask <= 32 && len(e.Address.To4()) == net.IPv4len:
		a, _ = netip.AddrFromSlice(e.Address.To4())
	case e.Family == 2 && e.SourceNetmask <= 128 && len(e.Address) == net.IPv6len:
		a, _ = netip.AddrFromSlice(e.Address)
	default:
		return false
	}
	p, err := a.Prefix(int(e.SourceNetmask))
	return err == nil && p.Addr() == a
}

// resolver fills one reply.
type resolver struct {
	st       *state
	m        *dns.Msg
	client   netip.Addr // where the client is, for policy nearest
	scope    int        // the ECS scope the answer depends on
	referral bool
	dynamic  bool
	do       bool // the client takes DNSSEC records (RFC 3225)
}

// sign adds the signatures of rrs when the client takes them and z is
// signed; origTTL as signer.signed.
func (res *resolver) sign(z *zone, rrs []dns.RR, origTTL uint32) []dns.RR {
	if !res.do || z.signer == nil || len(rrs) == 0 {
		return rrs
	}
	return z.signer.signed(rrs, origTTL)
}

// deny writes a negative answer for lname in z: NXDOMAIN (o nil) or
// NODATA at o. Signed, both are NOERROR with the zone's SOA and the name's
// own NSEC (RFC 9824).
func (res *resolver) deny(z *zone, lname string, o *owner, qtype uint16) {
	m := res.m
	soa := negativeSOA(z)
	if !res.do || z.signer == nil {
		if o == nil {
			m.Rcode = dns.RcodeNameError
		}
		m.Ns = append(m.Ns, soa)
		return
	}
	types := []uint16{typeNXNAME}
	if o != nil {
		types = o.typesNow(lname, res.client, qtype)
	}
	m.Ns = append(m.Ns, z.signer.signed([]dns.RR{soa}, z.soa.Hdr.Ttl)...)
	m.Ns = append(m.Ns, z.signer.signed([]dns.RR{z.signer.nsec(lname, types)}, 0)...)
}

// resolve answers name (lname: lower case) of type qtype from z into the
// reply, following CNAMEs inside the served zones.
func (res *resolver) resolve(z *zone, name, lname string, qtype uint16) {
	m := res.m
	var chain []string // the names whose CNAME is in the answer
	for {
		kind, o := z.locate(lname, qtype == dns.TypeDS)
		switch kind {
		case delegated:
			// A referral (RFC 1034 §4.3.2 step 3b): not authoritative,
			// unless a CNAME of this zone led here.
			if len(m.Answer) == 0 {
				m.Authoritative = false
			}
			res.referral = len(m.Answer) == 0
			ns := o.rrset(dns.TypeNS)
			m.Ns = append(m.Ns, ns...)
			if res.do && z.signer != nil {
				// No DS: the delegation is insecure, and the NSEC of
				// the delegation point proves it (RFC 4035 §3.1.4).
				m.Ns = append(m.Ns, z.signer.signed([]dns.RR{z.signer.nsec(strings.ToLower(ns[0].Header().Name), o.types())}, 0)...)
			}
			res.additional(z, ns)
			return
		case nxdomain:
			res.deny(z, lname, nil, qtype)
			return
		}
		if cn := o.rrset(dns.TypeCNAME); len(cn) > 0 && followsCNAME(qtype) {
			m.Answer = append(m.Answer, res.sign(z, []dns.RR{rename(cn[0], name)}, 0)...)
			chain = append(chain, lname)
			target := cn[0].(*dns.CNAME).Target
			lt := strings.ToLower(target)
			// A loop ends where it began (RFC 2181 §10.1.1, RFC 1034
			// §3.6.2): each CNAME once.
			if slices.Contains(chain, lt) || len(chain) >= maxCNAMEChain {
				return
			}
			if z = res.st.zones.find(lt); z == nil {
				return
			}
			name, lname = target, lt
			continue
		}
		if z.signer != nil && (qtype == dns.TypeNSEC || qtype == dns.TypeRRSIG) {
			// In a signed zone every name has its own NSEC (compact
			// denial): asked for, it is the answer, and RRSIG gets its
			// signature — a NODATA would contradict the NSEC's bitmap.
			nsec := z.signer.nsec(lname, o.typesNow(lname, res.client, 0))
			nsec.Header().Name = name
			signed := z.signer.signed([]dns.RR{nsec}, 0)
			if qtype == dns.TypeNSEC {
				m.Answer = append(m.Answer, res.sign(z, []dns.RR{nsec}, 0)...)
			} else {
				m.Answer = append(m.Answer, signed[1:]...)
			}
			return
		}
		rrs, scope := o.lookup(name, qtype, res.client)
		origTTL := uint32(0)
		if o.service != nil && (qtype == dns.TypeA || qtype == dns.TypeAAAA || qtype == dns.TypeANY) {
			res.scope, res.dynamic = scope, true
			if len(rrs) > 0 && (rrs[0].Header().Rrtype == dns.TypeA || rrs[0].Header().Rrtype == dns.TypeAAAA) {
				// Signed for the service's TTL; the TTL handed out
				// may be shorter (health.go).
				origTTL = uint32(o.service.ttl / time.Second)
			}
		}
		if len(rrs) == 0 {
			res.deny(z, lname, o, qtype)
			return
		}
		m.Answer = append(m.Answer, res.sign(z, rrs, origTTL)...)
		res.additional(z, rrs)
		return
	}
}

// followsCNAME says whether a query of type qtype at a CNAME owner gets the
// CNAME's target: not when it asks for the CNAME itself, or ANY (RFC 1034
// §4.3.2 step 3a), or the DNSSEC records that live beside a CNAME (RFC
// 4035 §2.5: RRSIG and NSEC).
func followsCNAME(qtype uint16) bool {
	switch qtype {
	case dns.TypeCNAME, dns.TypeANY, dns.TypeRRSIG, dns.TypeNSEC:
		return false
	}
	return true
}

// additional adds the addresses of the NS, MX and SRV targets in rrs that
// are names of z (in-zone glue included), each once, A before AAAA.
func (res *resolver) additional(z *zone, rrs []dns.RR) {
	var seen []string
	for _, rr := range rrs {
		var target string
		switch v := rr.(type) {
		case *dns.NS:
			target = v.Ns
		case *dns.MX:
			target = v.Mx
		case *dns.SRV:
			target = v.Target
		default:
			continue
		}
		target = strings.ToLower(target)
		if slices.Contains(seen, target) || !dns.IsSubDomain(z.apex, target) {
			continue
		}
		seen = append(seen, target)
		o := z.names[target]
		if o == nil {
			continue
		}
		for _, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
			rrs, _ := o.lookup(target, t, res.client)
			if o.service != nil {
				res.dynamic = true
			}
			res.m.Extra = append(res.m.Extra, rrs...)
		}
	}
}

// typesNow are the types o answers with now, for the NSEC of a NODATA
// answer: a service name has A or AAAA only while it gives addresses of
// that family; never qtype, which has just been found empty.
func (o *owner) typesNow(name string, client netip.Addr, qtype uint16) []uint16 {
	var out []uint16
	for _, t := range o.types() {
		if t == qtype {
			continue
		}
		if o.service != nil && (t == dns.TypeA || t == dns.TypeAAAA) {
			if rrs, _ := o.service.records(name, t, client); len(rrs) == 0 {
				continue
			}
		}
		out = append(out, t)
	}
	return out
}

// lookup returns the records of type qtype at o, named as the query wrote
// them. ANY gets one RRset, the lowest type (RFC 8482 §4.1; as Knot).
func (o *owner) lookup(name string, qtype uint16, client netip.Addr) ([]dns.RR, int) {
	if qtype == dns.TypeANY {
		for _, t := range o.types() {
			if rrs, scope := o.lookup(name, t, client); len(rrs) > 0 {
				return rrs, scope
			}
		}
		return nil, 0
	}
	if o.service != nil && (qtype == dns.TypeA || qtype == dns.TypeAAAA) {
		return o.service.records(name, qtype, client)
	}
	set := o.rrset(qtype)
	out := make([]dns.RR, len(set))
	for i, rr := range set {
		out[i] = rename(rr, name)
	}
	return out, 0
}

// records are a service's A or AAAA answer for a client.
func (s *service) records(name string, qtype uint16, client netip.Addr) ([]dns.RR, int) {
	addrs, scope := s.policy.pick(s.view.Load(), client)
	ttl := s.ttlNow()
	var out []dns.RR
	for _, a := range addrs {
		hdr := dns.RR_Header{Name: name, Class: dns.ClassINET, Ttl: ttl}
		switch {
		case a.Is4() && qtype == dns.TypeA:
			hdr.Rrtype = dns.TypeA
			out = append(out, &dns.A{Hdr: hdr, A: a.AsSlice()})
		case a.Is6() && qtype == dns.TypeAAAA:
			hdr.Rrtype = dns.TypeAAAA
			out = append(out, &dns.AAAA{Hdr: hdr, AAAA: a.AsSlice()})
		}
	}
	return out, scope
}

func rename(rr dns.RR, name string) dns.RR {
	c := dns.Copy(rr)
	c.Header().Name = name
	return c
}

// negativeSOA is the zone's SOA as the authority of a negative answer, with
// the negative-caching TTL (RFC 2308 §3).
func negativeSOA(z *zone) dns.RR {
	soa := dns.Copy(z.soa)
	soa.Header().Ttl = z.negTTL
	return soa
}
