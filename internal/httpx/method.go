package httpx

// IsSafeMethod reports whether m is a safe method (RFC 9110 §9.2.1: GET,
// HEAD, OPTIONS, TRACE), one a retry or a second upstream cannot apply
// twice.
func IsSafeMethod(m []byte) bool {
	switch string(m) {
	case "GET", "HEAD", "OPTIONS", "TRACE":
		return true
	}
	return false
}
