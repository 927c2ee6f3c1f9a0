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
		return EqualFoldLower(name, "te")
	case 7:
		return EqualFoldLower(name, "trailer") || EqualFoldLower(name, "upgrade")
	case 10:
		return EqualFoldLower(name, "connection") || EqualFoldLower(name, "keep-alive")
	case 16:
		return EqualFoldLower(name, "proxy-connection")
	case 17:
		return EqualFoldLower(name, "transfer-encoding")
	case 18:
		return EqualFoldLower(name, "proxy-authenticate")
	case 19:
		return EqualFoldLower(name, "proxy-authorization")
	}
	return false
}

// ConnectionTokens calls fn for each comma-separated token of a Connection
// header value, OWS-trimmed, skipping empty list elements. token aliases v.
func ConnectionTokens(v []byte, fn func(token []byte)) {
	for len(v) > 0 {
		var tok []byte
		if tok, v = CutToken(v); len(tok) > 0 {
			fn(tok)
		}
	}
}

// CutToken cuts the first element off a comma-separated list such as a
// Connection header value: tok is the element, OWS-trimmed (empty for an
// empty element), rest what follows its comma. Both alias list; a loop over
// it keeps list on the stack where ConnectionTokens' callback would not.
func CutToken(list []byte) (tok, rest []byte) {
	tok = list
	if i := bytes.IndexByte(list, ','); i >= 0 {
		tok, rest = list[:i], list[i+1:]
	}
	return trimOWS(tok), rest
}
