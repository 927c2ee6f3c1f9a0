package waf

import (
	"bytes"

	"github.com/valyala/fasthttp"
)

// LL-HLS is the hot path of live tables: every player polls the playlist
// and fetches a part about five times a second. Those requests have a tiny,
// fixed shape — GET {prefix}{stream}/hls/{file} with at most the blocking-
// reload parameters, prefix being the stream route's (/live/ in the demo) —
// and hedge answers them itself from memory, so there is no upstream the
// rule engine could protect. A request of exactly that shape (the positive
// model) skips the rule engine; anything else on a stream route — another
// parameter, a character outside the names' alphabet, a body — is
// inspected as usual. ACLs, shape and rate limits apply to all.
func hlsPositive(ctx *fasthttp.RequestCtx, prefix []byte) bool {
	m := ctx.Method()
	if string(m) != fasthttp.MethodGet && string(m) != fasthttp.MethodHead || len(ctx.Request.Body()) > 0 {
		return false
	}
	p := ctx.Request.Header.RequestURI()
	q := []byte(nil)
	if i := bytes.IndexByte(p, '?'); i >= 0 {
		p, q = p[:i], p[i+1:]
	}
	rest, ok := bytes.CutPrefix(p, prefix)
	if !ok || len(prefix) == 0 {
		return false
	}
	name, rest, ok := bytes.Cut(rest, []byte("/"))
	if !ok || !nameChars(name, 64) {
		return false
	}
	file, ok := bytes.CutPrefix(rest, []byte("hls/"))
	if !ok {
		return false
	}
	base, ext, ok := bytes.Cut(file, []byte("."))
	if !ok || !nameChars(base, 96) || string(ext) != "m3u8" && string(ext) != "mp4" {
		return false
	}
	return hlsQuery(q)
}

// nameChars reports whether b is 1..max characters of [A-Za-z0-9_-].
func nameChars(b []byte, max int) bool {
	if len(b) == 0 || len(b) > max {
		return false
	}
	for _, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// hlsQuery accepts only LL-HLS's delivery directives with their values:
// _HLS_msn and _HLS_part (numbers) and _HLS_skip (YES or v2).
func hlsQuery(q []byte) bool {
	for len(q) > 0 {
		var kv []byte
		kv, q, _ = bytes.Cut(q, []byte("&"))
		k, v, ok := bytes.Cut(kv, []byte("="))
		if !ok {
			return false
		}
		switch string(k) {
		case "_HLS_msn", "_HLS_part":
			if len(v) == 0 || len(v) > 10 {
				return false
			}
			for _, c := range v {
				if c < '0' || c > '9' {
					return false
				}
			}
		case "_HLS_skip":
			if string(v) != "YES" && string(v) != "v2" {
				return false
			}
		default:
			return false
		}
	}
	return true
}
