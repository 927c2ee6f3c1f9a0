package httpx

import (
	"bytes"
	"unsafe"
)

// b2s views b as a string without copying, for handing header bytes to
// standard-library parsers (netip.ParseAddr) that take strings. Converting
// with string(b) would allocate on every request. It is only safe for callees
// that do not keep the string after returning on success; netip keeps its
// input only inside the error it returns, which callers here discard.
func b2s(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// CutByte slices b around its first sep: the bytes before it and those
// after it, or all of b and nil when sep does not occur. It is bytes.Cut
// for one byte, for loops that take a header block, a list or a playlist
// apart piece by piece without allocating.
func CutByte(b []byte, sep byte) (before, after []byte) {
	if i := bytes.IndexByte(b, sep); i >= 0 {
		return b[:i], b[i+1:]
	}
	return b, nil
}

func isOWS(c byte) bool { return c == ' ' || c == '\t' }

// trimOWS drops the optional whitespace (SP, HTAB) RFC 9110 allows around
// list elements and field values.
func trimOWS(b []byte) []byte {
	for len(b) > 0 && isOWS(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isOWS(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// EqualFoldLower reports whether b equals lower (which must be lower-case
// ASCII) ignoring ASCII case, without allocating. Only A-Z are folded:
// folding by OR-ing 0x20 would also equate control bytes with punctuation
// ("\r" with "-").
func EqualFoldLower[T string | []byte](b []byte, lower T) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// tchar is RFC 9110's token character set.
var tchar = alnumAnd("!#$%&'*+-.^_`|~")

// alnumAnd is the set of ASCII letters and digits and the bytes of extra,
// as a table indexed by byte.
func alnumAnd(extra string) (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range extra {
		t[c] = true
	}
	return t
}

func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !tchar[c] {
			return false
		}
	}
	return true
}
