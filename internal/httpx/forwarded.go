package httpx

import (
	"bytes"
	"net/netip"
)

// ForwardedFor is ClientAddr for an RFC 7239 Forwarded header: the peer
// itself unless it is trusted, else the for= of the elements walked right to
// left, skipping trusted hops, up to the first untrusted one (if all are
// trusted, the leftmost). An element the walk cannot vouch for stops it and
// the last good hop is returned: an element that is malformed, has no for=,
// or whose for= is "unknown", obfuscated ("_gazonk") or not an IP address.
// IPv6 must be bracketed and quoted, as RFC 7239 requires: for="[2001:db8::1]:4711".
//
// Quoted-strings may hide commas, so elements can only be found scanning
// forward. After a syntax error the scan resumes at the first comma after the
// broken element's start, ignoring quotes: otherwise a client could send an
// unterminated quote that swallows the elements our proxies append after it.
func ForwardedFor(peer netip.Addr, forwarded []byte, t Trusted) netip.Addr {
	peer = peer.Unmap()
	if !t.Contains(peer) {
		return peer
	}
	// One forward pass computes what the right-to-left walk would return:
	// ans is the walk's answer if it reached this point, needNext says the
	// next good element replaces it (it stands right of a stop, or is the
	// leftmost one).
	ans, needNext := peer, true
	for i := 0; i <= len(forwarded); {
		var e element
		e, i = nextElement(forwarded, i)
		if e.empty {
			continue
		}
		a, ok := e.forAddr()
		switch {
		case !ok:
			ans, needNext = peer, true
		case !t.Contains(a):
			ans, needNext = a, false
		case needNext:
			ans, needNext = a, false
		}
	}
	return ans
}

// ForwardedProto returns the proto= of the nearest (rightmost) element, or
// nil if that element has none, is malformed, or its proto is not a URI
// scheme. Only the nearest element was written by the proxy the edge talks
// to; whether to believe it at all is the caller's decision (is the peer
// trusted?). The result aliases forwarded.
func ForwardedProto(forwarded []byte) []byte {
	var proto []byte
	for i := 0; i <= len(forwarded); {
		var e element
		e, i = nextElement(forwarded, i)
		if e.empty {
			continue
		}
		proto = nil
		if e.ok && e.hasProto && !e.protoEsc && isScheme(e.proto) {
			proto = e.proto
		}
	}
	return proto
}

// AppendForwardedElement appends the RFC 7239 element
// for=...;proto=...;host=... to dst. IPv6 is written as "[...]" in quotes,
// an invalid client as for=unknown, and an empty proto or host is left
// out. proto and host are quoted when they are not tokens (host:port is not)
// and left out when they hold control bytes, which no quoting can carry
// and which must never reach an upstream's header block.
func AppendForwardedElement(dst []byte, client netip.Addr, proto, host []byte) []byte {
	dst = append(dst, "for="...)
	switch client = client.Unmap(); {
	case !client.IsValid():
		dst = append(dst, "unknown"...)
	case client.Is4():
		dst = client.AppendTo(dst)
	default:
		dst = append(dst, `"[`...)
		dst = client.WithZone("").AppendTo(dst)
		dst = append(dst, `]"`...)
	}
	dst = appendParam(dst, ";proto=", proto)
	return appendParam(dst, ";host=", host)
}

func appendParam(dst []byte, name string, v []byte) []byte {
	if len(v) == 0 {
		return dst
	}
	if isToken(v) {
		return append(append(dst, name...), v...)
	}
	for _, c := range v {
		if (c < 0x20 && c != '\t') || c == 0x7f {
			return dst
		}
	}
	return appendQuoted(append(dst, name...), v)
}

// element is one forwarded-element. Values are raw, without their quotes;
// forEsc and protoEsc say a quoted value held a quoted-pair, so its raw bytes
// are not its value (no node or scheme needs escaping, so such values are
// refused rather than unescaped into a buffer).
type element struct {
	empty, ok        bool
	hasFor, hasProto bool
	forEsc, protoEsc bool
	forVal, proto    []byte
}

// forAddr returns the element's for= address, if it has a usable one.
func (e *element) forAddr() (netip.Addr, bool) {
	if !e.ok || !e.hasFor || e.forEsc || len(e.forVal) == 0 {
		return netip.Addr{}, false
	}
	// "unknown" and obfuscated identifiers are not addresses; refusing them
	// here also keeps them off netip's error path, which allocates.
	if c := e.forVal[0]; c != '[' && (c < '0' || c > '9') {
		return netip.Addr{}, false
	}
	return parseNode(e.forVal, false, true)
}

// nextElement parses the element starting at s[i] and returns it with the
// index where the next one starts (len(s)+1 after the last).
//
//	forwarded-element = [ forwarded-pair ] *( ";" [ forwarded-pair ] )
//	forwarded-pair    = token "=" ( token / quoted-string )
//
// OWS is allowed around ";" as well as around ",": some proxies write
// "for=192.0.2.1; proto=https", and the space changes no meaning.
func nextElement(s []byte, i int) (e element, next int) {
	start := i
	i = skipOWS(s, i)
	if i == len(s) || s[i] == ',' {
		return element{empty: true}, i + 1
	}
	for {
		if s[i] != ';' && s[i] != ',' {
			nameStart := i
			for i < len(s) && tchar[s[i]] {
				i++
			}
			name := s[nameStart:i]
			if len(name) == 0 || i == len(s) || s[i] != '=' {
				return resync(s, start)
			}
			i++
			var val []byte
			var esc bool
			if i < len(s) && s[i] == '"' {
				end, escaped, ok := scanQuoted(s, i)
				if !ok {
					return resync(s, start)
				}
				val, esc, i = s[i+1:end-1], escaped, end
			} else {
				valStart := i
				for i < len(s) && tchar[s[i]] {
					i++
				}
				if i == valStart {
					return resync(s, start)
				}
				val = s[valStart:i]
			}
			switch {
			case EqualFoldLower(name, "for"):
				if e.hasFor {
					// Two for= in one element: which hop is it?
					return resync(s, start)
				}
				e.hasFor, e.forVal, e.forEsc = true, val, esc
			case EqualFoldLower(name, "proto"):
				if e.hasProto {
					return resync(s, start)
				}
				e.hasProto, e.proto, e.protoEsc = true, val, esc
			}
			i = skipOWS(s, i)
		}
		if i == len(s) || s[i] == ',' {
			e.ok = true
			return e, i + 1
		}
		if s[i] != ';' {
			return resync(s, start)
		}
		i = skipOWS(s, i+1)
		if i == len(s) {
			e.ok = true
			return e, i + 1
		}
	}
}

// resync reports a malformed element that began at start and skips to the
// first comma after it, quotes or not (see ForwardedFor).
func resync(s []byte, start int) (element, int) {
	j := bytes.IndexByte(s[start:], ',')
	if j < 0 {
		return element{}, len(s) + 1
	}
	return element{}, start + j + 1
}

// scanQuoted scans the RFC 9110 quoted-string opening at s[i] and returns
// the index after its closing quote, and whether it held a quoted-pair.
func scanQuoted(s []byte, i int) (end int, escaped, ok bool) {
	for j := i + 1; j < len(s); j++ {
		c := s[j]
		switch {
		case c == '"':
			return j + 1, escaped, true
		case c == '\\':
			j++
			if j == len(s) || !isQuotable(s[j]) {
				return 0, false, false
			}
			escaped = true
		case !isQuotable(c):
			return 0, false, false
		}
	}
	return 0, false, false
}

// isQuotable: HTAB, SP, VCHAR, obs-text; what qdtext and quoted-pair allow.
func isQuotable(c byte) bool { return c == '\t' || (c >= 0x20 && c != 0x7f) }

func skipOWS(s []byte, i int) int {
	for i < len(s) && isOWS(s[i]) {
		i++
	}
	return i
}

// isScheme: RFC 3986 scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ).
func isScheme(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for i, c := range b {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return true
}
