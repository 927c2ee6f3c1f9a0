package httpx

import "bytes"

// IsHopByHop reports whether name (any case) is one of the fixed hop-by-hop
// headers a proxy must not forward (RFC 9110 §7.6.1, plus the Proxy-*
// headers that are addressed to the proxy itself, as net/http/httputil also
// treats them): Connection, Keep-Alive, Proxy-Connection, TE, Trailer,
// Transfer-Encoding, Upgrade, Proxy-Authenticate, Proxy-Authorization.
// Names listed in the request's Connection header are hop-by-hop too; find
// them with ConnectionTokens.
func IsHopByHop(name []byte) bool {
	switch len(name) {
	case 2:
		return equalFoldLower(name, "te")
	case 7:
		return equalFoldLower(name, "trailer") || equalFoldLower(name, "upgrade")
	case 10:
		return equalFoldLower(name, "connection") || equalFoldLower(name, "keep-alive")
	case 16:
		return equalFoldLower(name, "proxy-connection")
	case 17:
		return equalFoldLower(name, "transfer-encoding")
	case 18:
		return equalFoldLower(name, "proxy-authenticate")
	case 19:
		return equalFoldLower(name, "proxy-authorization")
	}
	return false
}

// ConnectionTokens calls fn for each comma-separated token of a Connection
// header value, OWS-trimmed, skipping empty list elements. token aliases v.
func ConnectionTokens(v []byte, fn func(token []byte)) {
	for len(v) > 0 {
		tok := v
		if i := bytes.IndexByte(v, ','); i >= 0 {
			tok, v = v[:i], v[i+1:]
		} else {
			v = nil
		}
		if tok = trimOWS(tok); len(tok) > 0 {
			fn(tok)
		}
	}
}
