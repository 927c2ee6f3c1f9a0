package httpx

import (
	"crypto/rand"
	"encoding/hex"
	"sync/atomic"
)

// MaxRequestIDLen bounds a propagated X-Request-Id: long enough for any
// UUID, ULID or vendor trace id, short enough to put in every log line.
const MaxRequestIDLen = 128

// ValidRequestID reports whether a propagated X-Request-Id may be kept:
// 1..MaxRequestIDLen bytes of [A-Za-z0-9._:@/+=-]. The id ends up in logs,
// audit records and problem+json bodies, so anything that could break out of
// those (quotes, spaces, control bytes) is refused and the edge makes its own.
func ValidRequestID(v []byte) bool {
	if len(v) == 0 || len(v) > MaxRequestIDLen {
		return false
	}
	for _, c := range v {
		if !requestIDChar[c] {
			return false
		}
	}
	return true
}

var requestIDChar = alnumAnd("._:@/+=-")

// IDGen makes request ids "<16 hex random>-<16 hex counter>". The random
// prefix, drawn once per generator, keeps ids from different processes and
// restarts apart; the counter keeps them unique within one, in order, and
// costs one atomic add instead of a read from the system's random source.
// Use NewIDGen: the zero IDGen has no prefix, so its ids are unique only
// within the process.
type IDGen struct {
	prefix string
	n      atomic.Uint64
}

// NewIDGen returns a generator with a fresh random prefix.
func NewIDGen() *IDGen {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails; it crashes the program instead.
	return &IDGen{prefix: hex.EncodeToString(b[:]) + "-"}
}

// Append appends the next id to dst. It is safe for concurrent use.
func (g *IDGen) Append(dst []byte) []byte {
	n := g.n.Add(1)
	dst = append(dst, g.prefix...)
	var buf [16]byte
	for i := len(buf) - 1; i >= 0; i-- {
		buf[i] = hexDigits[n&0xf]
		n >>= 4
	}
	return append(dst, buf[:]...)
}

const hexDigits = "0123456789abcdef"
