package configs

import (
	"net"
	"net/netip"
	"strings"
	"time"

	dnslib "github.com/miekg/dns"
)

// validateDNS checks the authoritative DNS section and the nodes' DNS
// settings, and reads the zones' files.
func (c *Config) validateDNS(v *validator) {
	regions := map[string]bool{}
	for i := range c.Regions {
		r := &c.Regions[i]
		regions[r.Name] = true
		for j := range r.Nodes {
			n := &r.Nodes[j]
			for k, a := range n.Advertise {
				if _, err := netip.ParseAddr(a); err != nil {
					v.bad(&n.Advertise[k], "%q is not an IP address", a)
				}
			}
			if len(n.Advertise) == 0 && len(n.Listeners) > 0 {
				host, _, _ := net.SplitHostPort(n.Listeners[0].Address)
				if _, err := netip.ParseAddr(host); err != nil && len(c.DNS.Zones) > 0 {
					v.bad(&n.Advertise, "required when the first listener's host (%q) is not an IP address", host)
				}
			}
			if n.DNS.Address != "" {
				v.address(&n.DNS.Address)
				if len(c.DNS.Zones) == 0 {
					v.bad(&n.DNS.Address, "this node serves DNS but dns.zones is empty")
				}
			}
		}
	}
	checkRegions := func(list []string) {
		seen := map[string]bool{}
		for i, r := range list {
			if !regions[r] {
				v.bad(&list[i], "region %q is not defined", r)
			}
			if seen[r] {
				v.bad(&list[i], "region %q is listed twice", r)
			}
			seen[r] = true
		}
	}
	zones := map[string]bool{}
	names := map[string]string{}
	for i := range c.DNS.Zones {
		z := &c.DNS.Zones[i]
		apex := dnslib.CanonicalName(z.Name)
		if _, ok := dnslib.IsDomainName(z.Name); z.Name == "" || !ok {
			v.bad(&z.Name, "%q is not a domain name", z.Name)
			continue
		}
		if zones[apex] {
			v.bad(&z.Name, "zone %q is defined twice", apex)
		}
		zones[apex] = true
		if len(z.NS) == 0 {
			v.bad(&z.NS, "at least one name server is required")
		}
		for j, ns := range z.NS {
			if _, ok := dnslib.IsDomainName(ns); !ok || !strings.HasSuffix(ns, ".") {
				v.bad(&z.NS[j], "%q is not an absolute domain name (end it with '.')", ns)
			}
		}
		if _, ok := dnslib.IsDomainName(z.SOA.RName); !ok {
			v.bad(&z.SOA.RName, "%q is not a domain name", z.SOA.RName)
		}
		if z.SOA.Minimum < Duration(time.Second) {
			v.bad(&z.SOA.Minimum, "must be at least 1s")
		}
		positive(v, &z.TTL)
		for j := range z.Records {
			r := &z.Records[j]
			owner, ok := DNSOwner(r.Name, apex)
			if !ok {
				v.bad(&r.Name, "%q is not inside zone %s", r.Name, apex)
				continue
			}
			if !v.among(&r.Type, strings.ToUpper(r.Type), "A", "AAAA", "CNAME", "TXT", "CAA", "MX", "SRV", "NS") {
				continue
			}
			if r.TTL < 0 {
				v.bad(&r.TTL, "must not be negative")
			}
			if _, err := dnslib.NewRR(owner + " 60 IN " + r.Type + " " + r.Value); err != nil {
				v.bad(&r.Value, "%q is not valid %s data: %v", r.Value, strings.ToUpper(r.Type), err)
			}
		}
		var fileRecords []ZoneFileRecord
		z.FileRecords = nil
		if z.File != "" {
			var err error
			if fileRecords, err = ReadZoneFileLines(z.File, apex, z.TTL.D()); err != nil {
				v.bad(&z.File, "%v", err)
			}
			for _, fr := range fileRecords {
				z.FileRecords = append(z.FileRecords, fr.RR)
			}
		}
		v.zoneRules(z, apex, fileRecords)
		v.zoneDNSSEC(c, z, apex)
		for j := range z.Services {
			s := &z.Services[j]
			owner, ok := DNSOwner(s.Name, apex)
			if !ok || s.Name == "" {
				v.bad(&s.Name, "%q is not a name inside zone %s", s.Name, apex)
				continue
			}
			sp := v.path(s)
			if other, dup := names[owner]; dup {
				v.bad(&s.Name, "%s is already a service (%s)", owner, other)
			}
			names[owner] = sp
			v.among(&s.Policy, s.Policy, "failover", "nearest", "all")
			checkRegions(s.Regions)
			if s.TTL < Duration(time.Second) {
				v.bad(&s.TTL, "must be at least 1s, got %s", s.TTL.D())
			}
			h := &s.Health
			v.slash(&h.Path)
			if h.Interval < Duration(250*time.Millisecond) {
				v.bad(&h.Interval, "must be at least 250ms, got %s", h.Interval.D())
			}
			positive(v, &h.Timeout)
			if h.Timeout > h.Interval {
				v.bad(&h.Timeout, "%s is longer than the interval %s", h.Timeout.D(), h.Interval.D())
			}
			atLeast(v, &h.Rise, 1)
			atLeast(v, &h.Fall, 1)
			v.readableIfSet(&h.CAFile)
		}
	}
	for i := range c.DNS.Nearest {
		r := &c.DNS.Nearest[i]
		if _, err := netip.ParsePrefix(r.CIDR); err != nil {
			v.bad(&r.CIDR, "%q is not a CIDR such as 10.0.0.0/8", r.CIDR)
		}
		if len(r.Regions) == 0 {
			v.bad(&r.Regions, "at least one region is required")
		}
		checkRegions(r.Regions)
	}
	rl := &c.DNS.RRL
	atLeast(v, &rl.ResponsesPerSecond, 0)
	if rl.Slip < -1 {
		v.bad(&rl.Slip, "must be -1 (never) or at least 0, got %d", rl.Slip)
	}
	if rl.IPv4Prefix < 8 || rl.IPv4Prefix > 32 {
		v.bad(&rl.IPv4Prefix, "must be 8 to 32, got %d", rl.IPv4Prefix)
	}
	if rl.IPv6Prefix < 16 || rl.IPv6Prefix > 128 {
		v.bad(&rl.IPv6Prefix, "must be 16 to 128, got %d", rl.IPv6Prefix)
	}
	for i := range rl.Exempt {
		v.prefix(&rl.Exempt[i])
	}
}

// DNSOwner turns a record name relative to apex ("www", "@") or absolute
// into its canonical owner name, and says whether it lies inside the zone.
func DNSOwner(name, apex string) (string, bool) {
	switch {
	case name == "" || name == "@":
		return apex, true
	case strings.HasSuffix(name, "."):
	default:
		name += "." + apex
	}
	if _, ok := dnslib.IsDomainName(name); !ok {
		return "", false
	}
	owner := dnslib.CanonicalName(name)
	return owner, dnslib.IsSubDomain(apex, owner)
}

// zoneFileTypes are the record types a zone file may hold; the SOA comes
// from the configuration.
var zoneFileTypes = []uint16{dnslib.TypeA, dnslib.TypeAAAA, dnslib.TypeCNAME, dnslib.TypeTXT,
	dnslib.TypeCAA, dnslib.TypeMX, dnslib.TypeSRV, dnslib.TypeNS}

// ReadZoneFile parses an RFC 1035 master file of static records for the
// zone apex; records without a TTL get defaultTTL. Errors name the file's
// line. Loading a configuration reads each zone's file (Zone.FileRecords).
func ReadZoneFile(file, apex string, defaultTTL time.Duration) ([]dnslib.RR, error) {
	recs, err := ReadZoneFileLines(file, apex, defaultTTL)
	if err != nil {
		return nil, err
	}
	out := make([]dnslib.RR, len(recs))
	for i, r := range recs {
		out[i] = r.RR
	}
	return out, nil
}
