// Package httpx parses the request headers the edge trusts or propagates:
// the client address behind trusted proxies (X-Forwarded-For, RFC 7239
// Forwarded), W3C traceparent, X-Request-Id, Idempotency-Key and the
// hop-by-hop set a proxy must not forward.
//
// Every function here runs on every request, so they take the []byte values
// fasthttp hands out, return sub-slices of them or append into a caller's
// buffer, and do not allocate on valid input; the benchmarks beside the tests
// keep that true. Returned slices alias the input and, like the input, must
// not outlive the request.
//
// Parsers are strict where a lenient reading would let a client choose how
// the edge sees it: a header the parser cannot read stops the walk at the
// last address it could vouch for, rather than guessing past it.
package httpx
