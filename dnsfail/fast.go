package dnsfail

import (
	"encoding/binary"
	"math"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// The fast path answers the common query — one question, class IN, no
// EDNS or EDNS0 without Client Subnet — from replies prepared in wire
// format whenever health or configuration changes: a name and type known
// in advance, NODATA at a known name (the question's type patched in), and
// NXDOMAIN below a name whose children cannot be a wildcard's or a
// delegation's (the question copied in front of the zone's SOA). Per query
// it only reads the question, copies a prepared reply and patches the id,
// two flag bits, the question's letter case (answers point at the
// question's name, so they carry its case too) and, for service names, the
// TTL. Anything else goes to the dns package's parser and the full handler
// (resolve.go).

// fastTable holds the prepared replies. The maps are built once per state;
// the slots of service names are swapped when their answers change.
type fastTable struct {
	slots map[string]*fastSlot // lower-case wire name + qtype
	names map[string]*fastName // lower-case wire name
	// signed holds, for the names of signed zones, the replies with their
	// signatures, for queries with DO; same keys as slots.
	signed map[string]*fastSlot
}

type fastSlot struct {
	cur atomic.Pointer[fastEntry]
}

// fastEntry is one prepared reply without OPT; a query with EDNS gets
// hedge's OPT appended (the full handler puts it last too).
type fastEntry struct {
	wire   []byte // id 0, question in lower case
	qlen   int    // length of the question's name
	rcode  int
	ttlOff []int    // offsets of TTLs to patch (service answers)
	ttlSvc *service // whose ttlNow fills them
	signed bool     // of a signed zone: a query with DO needs the signed reply
	// refreshAt (Unix seconds) is when the signatures of a signed reply
	// are half-way to expiring and must be made again (refreshSigned).
	refreshAt int64
}

// fastName is what the fast path knows of one name of a zone.
type fastName struct {
	// nodata is the NODATA reply at the name, for a type it has not got
	// (types); nil where a NODATA is not that simple (a CNAME owner).
	nodata *fastEntry
	types  []uint16
	// nx answers for the names below this one that do not exist; nil
	// when they may be a wildcard's, or are below a delegation.
	nx *fastNX
}

// fastNX is a zone's NXDOMAIN: the header, then the query's question,
// then the SOA, whose names point into the question where the apex is.
type fastNX struct {
	header  [12]byte
	soa     []byte
	ptrs    []int // offsets in soa of the pointers to the apex
	apexLen int   // length of the apex's wire name
	signed  bool
}

func fastKey(wireName []byte, qtype uint16) string {
	return string(wireName) + string([]byte{byte(qtype >> 8), byte(qtype)})
}

// buildFast prepares the replies of every name of st's zones.
func buildFast(st *state) *fastTable {
	ft := &fastTable{slots: map[string]*fastSlot{}, names: map[string]*fastName{}, signed: map[string]*fastSlot{}}
	for _, z := range st.zones {
		nx := st.prepareNX(z)
		for name, o := range z.names {
			wire, ok := wireName(name)
			if !ok || st.zones.find(name) != z {
				continue // a deeper zone's name (occluded here)
			}
			if o.service != nil {
				o.service.fastName = wire
			}
			// Referrals and glue, and CNAME chases (their target may be
			// a service whose answers change) take the full handler, as do
			// answers that depend on the client (policy nearest).
			// Every name is known, so that no name below a delegation
			// is taken for one that does not exist.
			fn := &fastName{types: o.types()}
			ft.names[string(wire)] = fn
			if kind, _ := z.locate(name, false); kind != exact {
				continue
			}
			if z.names[wildcardOf(name)] == nil && !o.cut {
				fn.nx = nx
			}
			types := fn.types
			if len(o.rrset(dns.TypeCNAME)) > 0 {
				types = []uint16{dns.TypeCNAME}
			} else {
				fn.nodata = st.prepareNODATA(name, fn.types, len(wire))
			}
			for _, t := range types {
				e := st.prepare(name, t, len(wire), false)
				if e == nil {
					continue
				}
				slot := &fastSlot{}
				slot.cur.Store(e)
				ft.slots[fastKey(wire, t)] = slot
				if e.signed {
					if se := st.prepare(name, t, len(wire), true); se != nil {
						slot := &fastSlot{}
						slot.cur.Store(se)
						ft.signed[fastKey(wire, t)] = slot
					}
				}
			}
		}
	}
	return ft
}

// prepareNODATA prepares the NODATA reply at name, for a type it has not
// got; the fast path writes the query's type into its question.
func (st *state) prepareNODATA(name string, types []uint16, qlen int) *fastEntry {
	for _, t := range []uint16{dns.TypeNULL, 65280, 65281} {
		if slices.Contains(types, t) {
			continue
		}
		e := st.prepare(name, t, qlen, false)
		if e == nil || e.rcode != dns.RcodeSuccess || binary.BigEndian.Uint16(e.wire[6:]) != 0 {
			return nil
		}
		return e
	}
	return nil
}

// prepareNX prepares z's NXDOMAIN reply from the full handler's answer for
// a name that does not exist.
func (st *state) prepareNX(z *zone) *fastNX {
	q := new(dns.Msg)
	q.SetQuestion(wildcardOf(z.apex), dns.TypeA) // any name: only the SOA is kept
	q.RecursionDesired = false
	m, info := st.answer(q, netip.Addr{}, true)
	if m.Rcode != dns.RcodeNameError || len(m.Answer) != 0 || len(m.Ns) != 1 || len(m.Extra) != 0 || info.dynamic {
		// The apex has a wildcard child, or something else answers.
		return nil
	}
	soa, ok := m.Ns[0].(*dns.SOA)
	if !ok {
		return nil
	}
	apex, ok := wireName(z.apex)
	if !ok {
		return nil
	}
	nx := &fastNX{apexLen: len(apex), signed: z.signer != nil}
	copy(nx.header[:], []byte{0, 0, 0x84, dns.RcodeNameError, 0, 1, 0, 0, 0, 1, 0, 0})
	// The SOA: owner (the apex), type, class, TTL, RDLENGTH, then MNAME
	// and RNAME (pointing to the apex where they end in it) and the five
	// numbers.
	b := []byte{0xC0, 0}
	nx.ptrs = append(nx.ptrs, 0)
	b = binary.BigEndian.AppendUint16(b, dns.TypeSOA)
	b = binary.BigEndian.AppendUint16(b, dns.ClassINET)
	b = binary.BigEndian.AppendUint32(b, soa.Hdr.Ttl)
	rdlen := len(b)
	b = append(b, 0, 0)
	for _, n := range []string{soa.Ns, soa.Mbox} {
		w, ok := wireName(strings.ToLower(n))
		if !ok {
			return nil
		}
		if dns.IsSubDomain(z.apex, strings.ToLower(n)) {
			b = append(b, w[:len(w)-len(apex)]...)
			nx.ptrs = append(nx.ptrs, len(b))
			b = append(b, 0xC0, 0)
		} else {
			b = append(b, w...)
		}
	}
	for _, v := range []uint32{soa.Serial, soa.Refresh, soa.Retry, soa.Expire, soa.Minttl} {
		b = binary.BigEndian.AppendUint32(b, v)
	}
	binary.BigEndian.PutUint16(b[rdlen:], uint16(len(b)-rdlen-2))
	nx.soa = b
	return nx
}

// refreshFast prepares a service's replies again after its answers changed.
func (svc *service) refreshFast() {
	st := svc.st
	if st == nil || st.fast == nil {
		return
	}
	for _, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
		if slot := st.fast.slots[fastKey(svc.fastName, t)]; slot != nil && slot.cur.Load() != nil {
			slot.cur.Store(st.prepare(svc.name, t, len(svc.fastName), false))
		}
		if slot := st.fast.signed[fastKey(svc.fastName, t)]; slot != nil {
			slot.cur.Store(st.prepare(svc.name, t, len(svc.fastName), true))
		}
	}
}

// refreshSigned prepares again the signed replies whose signatures are
// half-way to expiring (the signer then makes new ones).
func (ft *fastTable) refreshSigned(st *state, now time.Time) {
	for k, slot := range ft.signed {
		if e := slot.cur.Load(); e != nil && now.Unix() >= e.refreshAt {
			name, _, err := dns.UnpackDomainName([]byte(k), 0)
			if err == nil {
				t := uint16(k[len(k)-2])<<8 | uint16(k[len(k)-1])
				slot.cur.Store(st.prepare(name, t, len(k)-2, true))
			}
		}
	}
}

// prepare runs the full handler once for (name, qtype) and keeps its reply
// (do: the signed reply to a query with DO, kept when it is an answer).
func (st *state) prepare(name string, qtype uint16, qlen int, do bool) *fastEntry {
	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	q.Id = 0
	q.RecursionDesired = false
	if do {
		q.SetEdns0(advertisedUDPSize, true)
	}
	m, info := st.answer(q, netip.Addr{}, true)
	var refreshAt int64
	if do {
		// The fast path adds the OPT itself; only positive answers.
		if len(m.Extra) == 0 || m.Extra[len(m.Extra)-1].Header().Rrtype != dns.TypeOPT || m.Rcode != dns.RcodeSuccess || len(m.Answer) == 0 {
			return nil
		}
		m.Extra = m.Extra[:len(m.Extra)-1]
		refreshAt = math.MaxInt64
		for _, rr := range append(append([]dns.RR{}, m.Answer...), m.Ns...) {
			if sig, ok := rr.(*dns.RRSIG); ok {
				refreshAt = min(refreshAt, int64(sig.Expiration)-int64(st.zones.find(name).signer.validity/2/time.Second))
			}
		}
	}
	m.Compress = true
	wire, err := m.Pack()
	if err != nil || len(m.Extra) > 0 && m.Extra[len(m.Extra)-1].Header().Rrtype == dns.TypeOPT {
		return nil
	}
	// A service's own addresses are prepared again when they change
	// (refreshFast); other replies that hold a service's addresses, and
	// every answer of policy nearest, depend on more than the name.
	o := st.owner(name)
	own := o != nil && o.service != nil && (qtype == dns.TypeA || qtype == dns.TypeAAAA)
	if own {
		if _, near := o.service.policy.(nearestPolicy); near {
			return nil
		}
	}
	if info.dynamic && !own {
		return nil
	}
	e := &fastEntry{wire: wire, qlen: qlen, rcode: m.Rcode, refreshAt: refreshAt}
	if z := st.zones.find(name); z != nil && z.signer != nil && !do {
		e.signed = true
	}
	if own {
		e.ttlSvc = o.service
		e.ttlOff = answerTTLOffsets(e.wire)
	}
	return e
}

func (st *state) owner(name string) *owner {
	if z := st.zones.find(name); z != nil {
		return z.names[name]
	}
	return nil
}

// wireName converts a canonical presentation name to its wire form.
func wireName(name string) ([]byte, bool) {
	buf := make([]byte, 256)
	n, err := dns.PackDomainName(name, buf, 0, nil, false)
	if err != nil || strings.ContainsRune(name, '\\') {
		return nil, false
	}
	return buf[:n], true
}

// answerTTLOffsets finds the TTL fields of the answer section of a packed
// reply whose answers' owner names are compression pointers or plain.
func answerTTLOffsets(wire []byte) []int {
	an := int(binary.BigEndian.Uint16(wire[6:]))
	off := 12
	off = skipName(wire, off) + 4
	var out []int
	for range an {
		off = skipName(wire, off)
		if off < 0 || off+10 > len(wire) {
			return nil
		}
		out = append(out, off+4)
		off += 10 + int(binary.BigEndian.Uint16(wire[off+8:]))
	}
	return out
}

func skipName(wire []byte, off int) int {
	for off >= 0 && off < len(wire) {
		l := int(wire[off])
		switch {
		case l == 0:
			return off + 1
		case l&0xC0 == 0xC0:
			return off + 2
		default:
			off += 1 + l
		}
	}
	return -1
}

// optRR is hedge's OPT record: root, type 41, UDP size 1232, version 0.
var optRR = [11]byte{0, 0, 41, advertisedUDPSize >> 8, advertisedUDPSize & 0xff, 0, 0, 0, 0, 0, 0}

// fastResult says what the fast path did with a query.
type fastResult int

const (
	fastSlow  fastResult = iota // not handled: use the full handler
	fastReply                   // reply written to out
	fastDrop                    // rate limited: send nothing
)

// serve answers query into out when it can. It never keeps query or out.
func (st *state) serveFast(query []byte, out []byte, client netip.Addr, m *metrics) ([]byte, fastResult) {
	ft := st.fast
	if ft == nil || len(query) < 17 {
		return nil, fastSlow
	}
	// Header: a standard query (QR=0, opcode 0), one question, no answer
	// or authority, at most one additional record (OPT).
	if query[2]&0xF8 != 0 || binary.BigEndian.Uint32(query[4:]) != 0x00010000 || query[8] != 0 || query[9] != 0 || query[10] != 0 || query[11] > 1 {
		return nil, fastSlow
	}
	// The question's name, lower-cased into a key buffer.
	var key [258]byte
	off, n := 12, 0
	for {
		if off >= len(query) {
			return nil, fastSlow
		}
		l := int(query[off])
		if l&0xC0 != 0 || off+1+l > len(query) || n+1+l > 255 {
			return nil, fastSlow
		}
		key[n] = byte(l)
		n++
		off++
		if l == 0 {
			break
		}
		for _, c := range query[off : off+l] {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			key[n] = c
			n++
		}
		off += l
	}
	qlen := off - 12
	if off+4 > len(query) {
		return nil, fastSlow
	}
	qtype := binary.BigEndian.Uint16(query[off:])
	if binary.BigEndian.Uint16(query[off+2:]) != dns.ClassINET || qtype == 0 || qtype == dns.TypeOPT || qtype >= 128 && qtype < 256 || qtype == 255 {
		return nil, fastSlow
	}
	off += 4
	edns, do, size := false, false, dns.MinMsgSize
	if query[11] == 1 {
		// OPT: root name, type 41, version 0, options other than Client
		// Subnet ignored (as the full handler does).
		if off+11 > len(query) || query[off] != 0 || binary.BigEndian.Uint16(query[off+1:]) != dns.TypeOPT || query[off+6] != 0 {
			return nil, fastSlow
		}
		size = min(max(int(binary.BigEndian.Uint16(query[off+3:])), dns.MinMsgSize), advertisedUDPSize)
		do = query[off+7]&0x80 != 0
		rdlen := int(binary.BigEndian.Uint16(query[off+9:]))
		opts := query[off+11:]
		if len(opts) != rdlen {
			return nil, fastSlow
		}
		for len(opts) > 0 {
			if len(opts) < 4 {
				return nil, fastSlow
			}
			code, olen := binary.BigEndian.Uint16(opts), int(binary.BigEndian.Uint16(opts[2:]))
			if code == dns.EDNS0SUBNET || 4+olen > len(opts) {
				return nil, fastSlow
			}
			opts = opts[4+olen:]
		}
		edns = true
	} else if off != len(query) {
		return nil, fastSlow
	}
	k := key[:n+2]
	k[n], k[n+1] = byte(qtype>>8), byte(qtype)
	var e *fastEntry
	var nx *fastNX
	nodata := false
	if slot := ft.slots[string(k)]; slot != nil {
		e = slot.cur.Load()
		if do && e != nil && e.signed {
			// The signed reply, while its signatures are fresh.
			e = nil
			if slot := ft.signed[string(k)]; slot != nil {
				if se := slot.cur.Load(); se != nil && time.Now().Unix() < se.refreshAt {
					e = se
				}
			}
			if e == nil {
				return nil, fastSlow
			}
		}
	} else if fn := ft.names[string(key[:n])]; fn != nil {
		// A known name without this type: NODATA. (A type it has but
		// that was not prepared — policy nearest — is not.)
		if fn.nodata == nil || slices.Contains(fn.types, qtype) ||
			fn.nodata.signed && (qtype == dns.TypeNSEC || qtype == dns.TypeRRSIG) {
			return nil, fastSlow // a signed zone answers those (resolve.go)
		}
		e, nodata = fn.nodata, true
	} else {
		// A name that does not exist: its closest encloser, the longest
		// suffix that does, says whether NXDOMAIN is the answer.
		for i := 1 + int(key[0]); i < n; i += 1 + int(key[i]) {
			if fn := ft.names[string(key[i:n])]; fn != nil {
				nx = fn.nx
				break
			}
		}
		if nx == nil {
			return nil, fastSlow
		}
	}
	replyLen := 0
	switch {
	case do && (nx != nil && nx.signed || e != nil && e.signed):
		return nil, fastSlow // signatures are the handler's
	case nx != nil:
		replyLen = 12 + qlen + 4 + len(nx.soa)
	case e != nil && e.qlen == qlen:
		replyLen = len(e.wire)
	default:
		return nil, fastSlow
	}
	if edns {
		replyLen += len(optRR)
	}
	if replyLen > size {
		return nil, fastSlow // truncation is the full handler's job
	}
	if st.rrl != nil {
		switch st.rrl.check(client, time.Now()) {
		case rrlDrop:
			m.rrl.WithLabelValues("drop").Inc()
			return nil, fastDrop
		case rrlSlip:
			m.rrl.WithLabelValues("slip").Inc()
			out = append(out[:0], query[:12+qlen+4]...)
			out[2] = out[2]&0x01 | 0x80 | 0x04 | 0x02
			out[3] &= 0x10
			out[7], out[11] = 0, 0
			return out, fastReply
		}
	}
	rcode := dns.RcodeNameError
	if nx != nil {
		out = append(out[:0], nx.header[:]...)
		out = append(out, query[12:12+qlen+4]...)
		soa := len(out)
		out = append(out, nx.soa...)
		ptr := uint16(0xC000 | (12 + qlen - nx.apexLen))
		for _, p := range nx.ptrs {
			binary.BigEndian.PutUint16(out[soa+p:], ptr)
		}
	} else {
		out = append(out[:0], e.wire...)
		copy(out[12:12+qlen], query[12:12+qlen])
		if nodata {
			out[12+qlen], out[13+qlen] = byte(qtype>>8), byte(qtype)
		}
		rcode = e.rcode
	}
	out[0], out[1] = query[0], query[1]
	out[2] |= query[2] & 0x01 // RD
	out[3] |= query[3] & 0x10 // CD
	if edns {
		out = append(out, optRR[:]...)
		binary.BigEndian.PutUint16(out[10:], binary.BigEndian.Uint16(out[10:])+1)
		if do {
			out[len(out)-4] |= 0x80
		}
	}
	if e != nil && e.ttlSvc != nil {
		ttl := e.ttlSvc.ttlNow()
		for _, o := range e.ttlOff {
			binary.BigEndian.PutUint32(out[o:], ttl)
		}
	}
	m.query(true, rcode)
	return out, fastReply
}
