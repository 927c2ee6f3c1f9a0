package configs

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	dnslib "github.com/miekg/dns"
)

// The rules a zone's data must follow before hedge serves it: what Knot's
// zone loader refuses (a CNAME beside other data, at the apex, or twice at
// one name), what RFC 2181 asks of an RRset (one TTL), and what only hedge
// has to say (a static address at a service name would never be served).

// ZoneFileRecord is one record of a zone file and the line it ends on.
type ZoneFileRecord struct {
	RR   dnslib.RR
	Line int
}

// zoneEntry is one piece of a zone's data as the checks see it: a record,
// or a service name (rr nil), with the field that wrote it.
type zoneEntry struct {
	owner string
	rtype uint16 // 0 for a service name
	rr    dnslib.RR
	field any    // the field an error names
	path  string // its path, for messages naming another entry
	where string // "" for the YAML; "FILE:LINE" for a zone file record
}

func (e *zoneEntry) what() string {
	t := "service"
	if e.rtype != 0 {
		t = dnslib.TypeToString[e.rtype]
	}
	if e.where != "" {
		return fmt.Sprintf("%s (%s)", t, e.where)
	}
	return fmt.Sprintf("%s (%s)", t, e.path)
}

// zoneRules checks a zone's records, zone-file records and service names
// together. apex NS records come from z.NS.
func (v *validator) zoneRules(z *Zone, apex string, file []ZoneFileRecord) {
	entry := func(e *zoneEntry) *zoneEntry {
		e.path = v.path(e.field)
		return e
	}
	var all []*zoneEntry
	for j, ns := range z.NS {
		if _, ok := dnslib.IsDomainName(ns); ok {
			rr := &dnslib.NS{Hdr: dnslib.RR_Header{Name: apex, Rrtype: dnslib.TypeNS, Class: dnslib.ClassINET, Ttl: uint32(z.TTL.D() / time.Second)}, Ns: dnslib.CanonicalName(ns)}
			all = append(all, entry(&zoneEntry{owner: apex, rtype: dnslib.TypeNS, rr: rr, field: &z.NS[j]}))
		}
	}
	for j := range z.Records {
		r := &z.Records[j]
		owner, ok := DNSOwner(r.Name, apex)
		if !ok {
			continue
		}
		ttl := z.TTL
		if r.TTL > 0 {
			ttl = r.TTL
		}
		rr, err := dnslib.NewRR(fmt.Sprintf("%s %d IN %s %s", owner, uint32(ttl.D()/time.Second), strings.ToUpper(r.Type), r.Value))
		if err != nil || rr == nil {
			continue // reported as the record's value
		}
		rr.Header().Name = owner
		all = append(all, entry(&zoneEntry{owner: owner, rtype: rr.Header().Rrtype, rr: rr, field: r}))
	}
	for _, fr := range file {
		all = append(all, entry(&zoneEntry{owner: fr.RR.Header().Name, rtype: fr.RR.Header().Rrtype, rr: fr.RR,
			field: &z.File, where: fmt.Sprintf("%s:%d", z.File, fr.Line)}))
	}
	for j := range z.Services {
		if owner, ok := DNSOwner(z.Services[j].Name, apex); ok && z.Services[j].Name != "" {
			all = append(all, entry(&zoneEntry{owner: owner, field: &z.Services[j].Name}))
		}
	}
	bad := func(e *zoneEntry, format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		if e.where != "" {
			msg = e.where + ": " + msg
		}
		v.bad(e.field, "%s", msg)
	}
	byOwner := map[string][]*zoneEntry{}
	var owners []string
	for _, e := range all {
		if byOwner[e.owner] == nil {
			owners = append(owners, e.owner)
		}
		byOwner[e.owner] = append(byOwner[e.owner], e)
	}
	// Delegation points: NS records below the apex.
	var cuts []string
	for _, o := range owners {
		if o == apex {
			continue
		}
		if slices.ContainsFunc(byOwner[o], func(e *zoneEntry) bool { return e.rtype == dnslib.TypeNS }) {
			cuts = append(cuts, o)
		}
	}
	for _, o := range owners {
		es := byOwner[o]
		var cname *zoneEntry
		for _, e := range es {
			if e.rtype != dnslib.TypeCNAME {
				continue
			}
			switch {
			case cname == nil:
				cname = e
			case !dnslib.IsDuplicate(cname.rr, e.rr):
				bad(e, "%s has a second CNAME (the first is %s): a name has at most one (RFC 2181 §10.1)", o, cname.what())
			}
		}
		if cname != nil {
			if o == apex {
				bad(cname, "a CNAME at the zone apex %s: the apex has the zone's SOA and NS, and a CNAME cannot share its name with other data (RFC 1034 §3.6.2, RFC 2181 §10.1)", apex)
			} else if i := slices.IndexFunc(es, func(e *zoneEntry) bool { return e.rtype != dnslib.TypeCNAME }); i >= 0 {
				bad(cname, "%s has a CNAME and other data (%s): a CNAME cannot share its name with other data (RFC 1034 §3.6.2, RFC 2181 §10.1)", o, es[i].what())
			}
		}
		service := slices.IndexFunc(es, func(e *zoneEntry) bool { return e.rtype == 0 })
		for _, e := range es {
			if service < 0 || e.rtype == 0 || e.rtype == dnslib.TypeCNAME {
				continue
			}
			switch e.rtype {
			case dnslib.TypeA, dnslib.TypeAAAA:
				bad(e, "%s is a service name (%s): its A and AAAA answers are the healthy edges, so a static %s there would never be served", o, es[service].path, dnslib.TypeToString[e.rtype])
			case dnslib.TypeNS:
				if o != apex {
					bad(e, "%s is a service name (%s): NS records would delegate it away and its answers would never be served", o, es[service].path)
				}
			}
		}
		if strings.HasPrefix(o, "*.") {
			for _, e := range es {
				switch e.rtype {
				case 0:
					bad(e, "%s: a service name cannot be a wildcard", o)
				case dnslib.TypeNS:
					bad(e, "%s: NS records at a wildcard are not served (RFC 4592 §4.2)", o)
				}
			}
		}
		// One TTL per RRset (RFC 2181 §5.2).
		first := map[uint16]*zoneEntry{}
		for _, e := range es {
			if e.rr == nil {
				continue
			}
			f, ok := first[e.rtype]
			if !ok {
				first[e.rtype] = e
				continue
			}
			if f.rr.Header().Ttl != e.rr.Header().Ttl {
				bad(e, "%s %s: TTL %ds differs from the %ds of the same RRset's %s: an RRset has one TTL (RFC 2181 §5.2)",
					o, dnslib.TypeToString[e.rtype], e.rr.Header().Ttl, f.rr.Header().Ttl, f.what())
			}
		}
		if service >= 0 {
			for _, c := range cuts {
				if c != o && dnslib.IsSubDomain(c, o) {
					bad(es[service], "%s is below the delegation at %s: its answers would never be served (RFC 1034 §4.3.2)", o, c)
				}
			}
		}
	}
}

// countingReader reads a zone file byte by byte for the zone parser and
// counts the lines it has read, so each record knows where it ends.
type countingReader struct {
	r     io.ByteReader
	lines int
	last  byte
}

func (c *countingReader) ReadByte() (byte, error) {
	b, err := c.r.ReadByte()
	if err == nil {
		c.last = b
		if b == '\n' {
			c.lines++
		}
	}
	return b, err
}

// Read is never called: the zone parser reads a ByteReader one byte at a
// time (it only wraps other readers in a buffer).
func (c *countingReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	b, err := c.ReadByte()
	if err != nil {
		return 0, err
	}
	p[0] = b
	return 1, nil
}

// line is the line the last record read ends on.
func (c *countingReader) line() int {
	if c.last == '\n' {
		return c.lines
	}
	return c.lines + 1
}

// ReadZoneFileLines is ReadZoneFile with the line each record ends on.
func ReadZoneFileLines(file, apex string, defaultTTL time.Duration) ([]ZoneFileRecord, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %v", file, unwrapPathError(err))
	}
	cr := &countingReader{r: strings.NewReader(string(data))}
	zp := dnslib.NewZoneParser(cr, apex, file)
	zp.SetDefaultTTL(uint32(defaultTTL / time.Second))
	zp.SetIncludeAllowed(false)
	var out []ZoneFileRecord
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		h := rr.Header()
		line := cr.line()
		if !slices.Contains(zoneFileTypes, h.Rrtype) {
			return nil, fmt.Errorf("%s:%d: type %s is not served from a zone file (the SOA comes from the configuration)", file, line, dnslib.TypeToString[h.Rrtype])
		}
		h.Name = dnslib.CanonicalName(h.Name)
		if !dnslib.IsSubDomain(apex, h.Name) {
			return nil, fmt.Errorf("%s:%d: %s is outside the zone %s", file, line, h.Name, apex)
		}
		out = append(out, ZoneFileRecord{RR: rr, Line: line})
	}
	if err := zp.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// DNSSECKeyDir is where the DNSSEC keys of the zone apex live.
func DNSSECKeyDir(c *Config, apex string) string {
	name := strings.TrimSuffix(dnslib.CanonicalName(apex), ".")
	if name == "" {
		name = "root"
	}
	return filepath.Join(c.DataDir, "dnssec", name)
}

// zoneDNSSEC checks a zone's signing settings, and that its keys exist.
func (v *validator) zoneDNSSEC(c *Config, z *Zone, apex string) {
	d := &z.DNSSEC
	v.among(&d.Algorithm, d.Algorithm, "ecdsap256sha256", "ed25519")
	v.among(&d.Keys, d.Keys, "csk", "ksk+zsk")
	if d.SignatureValidity < Duration(time.Hour) {
		v.bad(&d.SignatureValidity, "must be at least 1h, got %s", d.SignatureValidity.D())
	}
	if d.Enabled && !v.keygen {
		dir := DNSSECKeyDir(c, apex)
		if keys, _ := filepath.Glob(filepath.Join(dir, "K*.private")); len(keys) == 0 {
			v.bad(&d.Enabled, "no keys in %s: make them with hedge dnssec keygen -c %s", dir, c.File)
		}
	}
}
