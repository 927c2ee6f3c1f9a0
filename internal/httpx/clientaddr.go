package httpx

import (
	"bytes"
	"net/netip"
)

// Trusted is a set of proxy CIDRs whose forwarding headers are believed.
// The zero value trusts nothing.
type Trusted struct {
	prefixes []netip.Prefix
}

// NewTrusted copies prefixes into a Trusted set. Invalid prefixes are dropped,
// and IPv4-mapped IPv6 prefixes (::ffff:10.0.0.0/104) become plain IPv4 ones,
// because Contains compares unmapped addresses: a proxy is the same proxy
// whether it reached the edge over an IPv4 or a dual-stack socket.
func NewTrusted(prefixes []netip.Prefix) Trusted {
	out := make([]netip.Prefix, 0, len(prefixes))
	for _, p := range prefixes {
		if !p.IsValid() {
			continue
		}
		if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	if len(out) == 0 {
		return Trusted{}
	}
	return Trusted{prefixes: out}
}

// Contains reports whether a is inside one of the trusted prefixes.
// A linear scan beats anything cleverer for the handful of prefixes a
// deployment has in front of its edge.
func (t Trusted) Contains(a netip.Addr) bool {
	if len(t.prefixes) == 0 || !a.IsValid() {
		return false
	}
	a = a.Unmap()
	if a.Zone() != "" {
		// netip never matches a zoned address; the zone says which link a
		// link-local peer is on, not who it is.
		a = a.WithZone("")
	}
	for _, p := range t.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ClientAddr returns the client's address: the peer itself unless the peer is
// trusted, in which case X-Forwarded-For is walked right to left, skipping
// trusted hops, and the first untrusted address is returned (if all are
// trusted, the leftmost). Counting from the right, only the entries up to
// the first untrusted one were written by our proxies; everything further
// left is whatever the client chose to send.
//
// A malformed entry stops the walk and the last good hop is returned, so a
// client cannot push its real address out of view with garbage. Empty list
// elements are skipped, as RFC 9110 asks of list parsers. xff may hold
// several header lines already joined with ", ".
//
// Entries may be "192.0.2.1", "2001:db8::1", and, since some load balancers
// append the source port, "192.0.2.1:4711" and "[2001:db8::1]:4711". Zoned
// addresses are malformed: a zone means nothing outside the host that wrote
// it. Returned addresses are unmapped (netip.Addr.Unmap) so that one IPv4
// client has one form whichever way it arrived.
func ClientAddr(peer netip.Addr, xff []byte, t Trusted) netip.Addr {
	last := peer.Unmap()
	if !t.Contains(last) {
		return last
	}
	for end := len(xff); end >= 0; {
		start := bytes.LastIndexByte(xff[:end], ',') + 1
		entry := trimOWS(xff[start:end])
		end = start - 1
		if len(entry) == 0 {
			continue
		}
		a, ok := parseNode(entry, true, false)
		if !ok {
			return last
		}
		last = a
		if !t.Contains(a) {
			return a
		}
	}
	return last
}

// parseNode parses an address with an optional port as proxies write it:
// "192.0.2.1", "192.0.2.1:4711", "[2001:db8::1]", "[2001:db8::1]:4711", and,
// when bareV6, "2001:db8::1" (without brackets a port cannot be told from
// the address, so a bare IPv6 address never has one). obfPort admits RFC 7239
// obfuscated ports ("_abc"). The address is returned unmapped.
func parseNode(b []byte, bareV6, obfPort bool) (netip.Addr, bool) {
	if len(b) == 0 {
		return netip.Addr{}, false
	}
	if b[0] == '[' {
		end := bytes.IndexByte(b, ']')
		if end < 0 {
			return netip.Addr{}, false
		}
		if rest := b[end+1:]; len(rest) > 0 && (rest[0] != ':' || !validPort(rest[1:], obfPort)) {
			return netip.Addr{}, false
		}
		a, ok := parseIP(b[1:end])
		if !ok || !a.Is6() {
			return netip.Addr{}, false
		}
		return a.Unmap(), true
	}
	colon := bytes.IndexByte(b, ':')
	if colon < 0 {
		a, ok := parseIP(b)
		return a, ok && a.Is4()
	}
	if bytes.IndexByte(b[colon+1:], ':') < 0 {
		// One colon: IPv4 with a port; every IPv6 text form has at least two.
		if !validPort(b[colon+1:], obfPort) {
			return netip.Addr{}, false
		}
		a, ok := parseIP(b[:colon])
		return a, ok && a.Is4()
	}
	if !bareV6 {
		return netip.Addr{}, false
	}
	a, ok := parseIP(b)
	if !ok || !a.Is6() {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// maxIPText is the longest textual IP without a zone:
// "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255".
const maxIPText = 45

func parseIP(b []byte) (netip.Addr, bool) {
	if len(b) == 0 || len(b) > maxIPText || bytes.IndexByte(b, '%') >= 0 {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(b2s(b))
	return a, err == nil
}

// validPort accepts RFC 7239's port (1*5DIGIT) and, if obf, its obfport
// ("_" 1*(ALPHA / DIGIT / "." / "_" / "-")).
func validPort(b []byte, obf bool) bool {
	if len(b) == 0 {
		return false
	}
	if obf && b[0] == '_' {
		return isObfuscated(b)
	}
	if len(b) > 5 {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// isObfuscated reports whether b is an RFC 7239 obfnode/obfport.
func isObfuscated(b []byte) bool {
	if len(b) < 2 || b[0] != '_' {
		return false
	}
	for _, c := range b[1:] {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}
