package ratelimit

import (
	"math"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"
)

// Header names (draft-ietf-httpapi-ratelimit-headers-10, and RFC 9110 for
// Retry-After).
const (
	HeaderPolicy     = "RateLimit-Policy"
	HeaderRateLimit  = "RateLimit"
	HeaderRetryAfter = "Retry-After"
)

// Quota is the quota the policy advertises per window: Rate*Window whole
// tokens, at least 1. It is the sustained rate; Burst lets a quiet client
// exceed it for a moment, which the headers do not advertise (a client that
// keeps to q per w is never limited).
func (p Policy) Quota() int64 {
	return max(int64(p.Rate*float64(p.WindowSeconds())), 1)
}

// WindowSeconds is the advertised window (w=): Window rounded up to whole
// seconds, or when Window is 0, 1s — or for a rate below one per second the
// shortest whole-second window that earns a token, so that q is never 0.
func (p Policy) WindowSeconds() int64 {
	if p.Window > 0 {
		return ceilSeconds(p.Window)
	}
	if p.Rate >= 1 || p.Rate <= 0 {
		return 1
	}
	return int64(math.Ceil(1 / p.Rate))
}

// ceilSeconds rounds d up to whole seconds (never below 0).
func ceilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}

// AppendPolicy appends the RateLimit-Policy field value of p:
// "name";q=QUOTA;w=WINDOW.
func AppendPolicy(dst []byte, p Policy) []byte {
	dst = appendSFString(dst, p.Name)
	dst = append(dst, ";q="...)
	dst = strconv.AppendInt(dst, p.Quota(), 10)
	dst = append(dst, ";w="...)
	return strconv.AppendInt(dst, p.WindowSeconds(), 10)
}

// AppendRateLimit appends the RateLimit field value for decision d under p:
// "name";r=REMAINING;t=RESET. r is capped at the advertised quota, t is the
// time in whole seconds (rounded up) until the bucket is full again.
func AppendRateLimit(dst []byte, p Policy, d Decision) []byte {
	r := min(int64(max(d.Remaining, 0)), p.Quota())
	if !d.Allowed {
		r = 0
	}
	dst = appendSFString(dst, p.Name)
	dst = append(dst, ";r="...)
	dst = strconv.AppendInt(dst, r, 10)
	dst = append(dst, ";t="...)
	return strconv.AppendInt(dst, ceilSeconds(d.Reset), 10)
}

// RetryAfterSeconds is d's Retry-After in whole seconds, rounded up and at
// least 1 (a client told 0 would retry at once into the same denial).
func RetryAfterSeconds(d Decision) int64 { return max(ceilSeconds(d.RetryAfter), 1) }

// SetHeaders sets RateLimit-Policy and RateLimit on h for decision d, and
// Retry-After when d denied the request. Writing a problem resets the
// response, so on a 429 call SetHeaders after the problem is written. It
// does not allocate once h has room for the values.
func SetHeaders(h *fasthttp.ResponseHeader, p Policy, d Decision) {
	var a [160]byte
	h.SetBytesV(HeaderPolicy, AppendPolicy(a[:0], p))
	h.SetBytesV(HeaderRateLimit, AppendRateLimit(a[:0], p, d))
	if !d.Allowed {
		h.SetBytesV(HeaderRetryAfter, strconv.AppendInt(a[:0], RetryAfterSeconds(d), 10))
	}
}

// appendSFString appends s as a structured-field String (RFC 9651 §4.1.6):
// quoted, with '"' and '\' escaped. Policy.Validate admits printable ASCII
// only, the String type's whole alphabet.
func appendSFString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '"' || c == '\\' {
			dst = append(dst, '\\', c)
		} else {
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}
