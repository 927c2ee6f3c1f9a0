package httpx

import "errors"

// Errors from ParseIdempotencyKey; both map to 400 on money routes.
var (
	ErrIdempotencyKeyMissing   = errors.New("httpx: Idempotency-Key missing")
	ErrIdempotencyKeyMalformed = errors.New("httpx: Idempotency-Key malformed")
)

// MaxIdempotencyKeyLen bounds a key; stores size their entries by it.
const MaxIdempotencyKeyLen = 255

// ParseIdempotencyKey appends the key carried by an Idempotency-Key value
// (draft-ietf-httpapi-idempotency-key-header) to dst and returns it.
//
// The draft makes the value a Structured Field String (RFC 8941): "..." of
// printable ASCII (0x20-0x7E) with \" and \\ as the only escapes, and SP
// allowed around it. Many clients send the bare form instead, a UUID without
// quotes, so an unquoted run of VCHAR is accepted too, except '"' and ','
// which would make it ambiguous with a broken String or with two keys joined
// into one line. Parameters (`"k";a=1`) are refused rather than dropped: the
// draft defines none, and a money call must not be keyed on a guess.
//
// The key, unquoted and unescaped, must be 1..MaxIdempotencyKeyLen bytes.
// An empty value gives ErrIdempotencyKeyMissing; anything else wrong gives
// ErrIdempotencyKeyMalformed, and dst is returned unchanged.
func ParseIdempotencyKey(dst, v []byte) ([]byte, error) {
	v = trimOWS(v)
	if len(v) == 0 {
		return dst, ErrIdempotencyKeyMissing
	}
	if v[0] != '"' {
		if len(v) > MaxIdempotencyKeyLen {
			return dst, ErrIdempotencyKeyMalformed
		}
		for _, c := range v {
			if c <= ' ' || c > '~' || c == '"' || c == ',' {
				return dst, ErrIdempotencyKeyMalformed
			}
		}
		return append(dst, v...), nil
	}
	n0 := len(dst)
	for i := 1; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '"':
			if i != len(v)-1 || len(dst) == n0 {
				return dst[:n0], ErrIdempotencyKeyMalformed
			}
			return dst, nil
		case c == '\\':
			i++
			if i == len(v) || (v[i] != '"' && v[i] != '\\') {
				return dst[:n0], ErrIdempotencyKeyMalformed
			}
			c = v[i]
		case c < ' ' || c > '~':
			return dst[:n0], ErrIdempotencyKeyMalformed
		}
		if len(dst)-n0 == MaxIdempotencyKeyLen {
			return dst[:n0], ErrIdempotencyKeyMalformed
		}
		dst = append(dst, c)
	}
	return dst[:n0], ErrIdempotencyKeyMalformed // no closing quote
}

// AppendIdempotencyKey appends the one spelling of key that the edge sends
// upstream: a Structured Field String (RFC 8941 §3.3.3), `"` + key with `"`
// and `\` escaped + `"`. Whatever form the client used (quoted, bare, with
// surrounding space), a writer sees the same bytes for the same key, so a
// retry through any edge deduplicates at the writer too. key is what
// ParseIdempotencyKey returned: printable ASCII only.
func AppendIdempotencyKey(dst, key []byte) []byte {
	return appendQuoted(dst, key)
}

// appendQuoted appends v as a quoted string with '"' and '\\' escaped, the
// form RFC 9110's quoted-string and RFC 8941's String share. v holds no
// control bytes (callers check).
func appendQuoted(dst, v []byte) []byte {
	dst = append(dst, '"')
	for _, c := range v {
		if c == '"' || c == '\\' {
			dst = append(dst, '\\')
		}
		dst = append(dst, c)
	}
	return append(dst, '"')
}
