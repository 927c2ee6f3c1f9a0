package httpx

import "bytes"

// FramingFault is what makes a request's message framing ambiguous: a
// reading under which the edge and an upstream (or a proxy in between)
// could disagree on where the request ends, so that bytes one of them takes
// for the body the other takes for the next request (request smuggling).
type FramingFault uint8

// The faults CheckFraming reports. fasthttp already refuses some of these
// shapes while reading (two Content-Length fields, two Transfer-Encoding
// fields, a coding it cannot decode); CheckFraming refuses them again so the
// edge's verdict does not rest on how a library version happens to read
// them.
const (
	FramingOK FramingFault = iota
	// FramingCLAndTE: Content-Length beside Transfer-Encoding (RFC 9112
	// §6.1: such a message is a smuggling attempt; §6.3: the connection
	// must be closed after answering it).
	FramingCLAndTE
	// FramingTECoding: a Transfer-Encoding other than exactly "chunked"
	// (RFC 9112 §6.1, §7: chunked is the only coding the edge decodes, and
	// it must be the last one).
	FramingTECoding
	// FramingTERepeated: more than one Transfer-Encoding field.
	FramingTERepeated
	// FramingCLInvalid: more than one Content-Length field, or a value that
	// is not a single decimal number (RFC 9112 §6.3: "5, 5" or "5, 7" is
	// unrecoverable framing).
	FramingCLInvalid
	// FramingTEHTTP10: Transfer-Encoding on an HTTP/1.0 request (RFC 9112
	// §6.1: HTTP/1.0 does not define it; the framing is faulty).
	FramingTEHTTP10
	// FramingObsFold: a field value continued on the next line (RFC 9112
	// §5.2: obsolete line folding, refused with 400).
	FramingObsFold
	// FramingFieldName: a field name that is not a token, such as a space
	// before the colon (RFC 9112 §5.1: "Transfer-Encoding : chunked" must be
	// refused with 400; a recipient that strips the space reads a different
	// request than one that does not).
	FramingFieldName
)

var framingText = [...]struct{ rule, detail string }{
	FramingOK:         {"", ""},
	FramingCLAndTE:    {"cl-te", "Content-Length beside Transfer-Encoding is not accepted (RFC 9112 §6.1)"},
	FramingTECoding:   {"te-coding", "the only transfer coding accepted is chunked (RFC 9112 §6.1)"},
	FramingTERepeated: {"te-repeated", "more than one Transfer-Encoding field (RFC 9112 §6.1)"},
	FramingCLInvalid:  {"cl-invalid", "Content-Length must be one decimal number (RFC 9112 §6.3)"},
	FramingTEHTTP10:   {"te-http10", "Transfer-Encoding is not defined for HTTP/1.0 (RFC 9112 §6.1)"},
	FramingObsFold:    {"obs-fold", "a header field continues on the next line (RFC 9112 §5.2)"},
	FramingFieldName:  {"field-name", "a header field name is not a token (RFC 9112 §5.1)"},
}

// Rule is a short stable name of the fault, for metrics and the audit log.
func (f FramingFault) Rule() string { return framingText[f].rule }

// Detail says what was wrong, for the problem answer.
func (f FramingFault) Detail() string { return framingText[f].detail }

// CheckFraming reads the raw header block of a request as received — the
// field lines after the request line, as fasthttp's RequestHeader.RawHeaders
// keeps them — and reports the first framing fault it finds. http10 says the
// request line named HTTP/1.0 (or anything but HTTP/1.1). It reads the block
// once and does not allocate.
func CheckFraming(raw []byte, http10 bool) FramingFault {
	cl, te := 0, 0
	for len(raw) > 0 {
		var line []byte
		line, raw = CutByte(raw, '\n')
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		if len(line) == 0 {
			break // the empty line that ends the header block
		}
		// A line starting with whitespace continues the one before it:
		// refuse before reading the field it would change.
		if isOWS(line[0]) || len(raw) > 0 && isOWS(raw[0]) {
			return FramingObsFold
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return FramingFieldName
		}
		name := line[:colon]
		for _, c := range name {
			if !tchar[c] {
				return FramingFieldName
			}
		}
		switch {
		case len(name) == len("content-length") && EqualFoldLower(name, "content-length"):
			cl++
			if cl > 1 || !isDecimal(trimOWS(line[colon+1:])) {
				return FramingCLInvalid
			}
		case len(name) == len("transfer-encoding") && EqualFoldLower(name, "transfer-encoding"):
			te++
			if te > 1 {
				return FramingTERepeated
			}
			if !EqualFoldLower(trimOWS(line[colon+1:]), "chunked") {
				return FramingTECoding
			}
		}
	}
	switch {
	case te > 0 && cl > 0:
		return FramingCLAndTE
	case te > 0 && http10:
		return FramingTEHTTP10
	}
	return FramingOK
}

func isDecimal(b []byte) bool {
	if len(b) == 0 || len(b) > 18 {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
