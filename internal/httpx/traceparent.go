package httpx

// traceparent layout, W3C Trace Context level 1:
// version "-" trace-id "-" parent-id "-" trace-flags, all lower-case hex.
const (
	traceparentLen = 55 // 2+1+32+1+16+1+2
	traceIDStart   = 3
	parentIDStart  = 36
	flagsStart     = 53
)

// ValidTraceparent reports whether v is a well-formed W3C traceparent
// (Trace Context level 1): version 00 is exactly 55 bytes; a higher version
// is accepted when its first 55 bytes parse as version 00 and are followed by
// the end or a "-", so that traces from newer tracers are continued rather
// than restarted; version ff and all-zero trace-id or parent-id are invalid.
// Hex is lower-case only. v is expected OWS-trimmed, as fasthttp returns it;
// the edge forwards exactly the bytes it validated.
func ValidTraceparent(v []byte) bool {
	if len(v) < traceparentLen {
		return false
	}
	if !lowerHex[v[0]] || !lowerHex[v[1]] || v[0] == 'f' && v[1] == 'f' {
		return false
	}
	if len(v) > traceparentLen && (v[0] == '0' && v[1] == '0' || v[traceparentLen] != '-') {
		return false
	}
	if v[traceIDStart-1] != '-' || v[parentIDStart-1] != '-' || v[flagsStart-1] != '-' {
		return false
	}
	return nonZeroHex(v[traceIDStart:parentIDStart-1]) &&
		nonZeroHex(v[parentIDStart:flagsStart-1]) &&
		lowerHex[v[flagsStart]] && lowerHex[v[flagsStart+1]]
}

// nonZeroHex reports whether b is lower-case hex and not all zeros.
func nonZeroHex(b []byte) bool {
	zero := true
	for _, c := range b {
		if !lowerHex[c] {
			return false
		}
		if c != '0' {
			zero = false
		}
	}
	return !zero
}

var lowerHex = func() (t [256]bool) {
	for _, c := range "0123456789abcdef" {
		t[c] = true
	}
	return t
}()
