// Package contract is what the edge sends upstream, and what it refuses to
// let a client remove on the way.
//
// The edge is the trust boundary. What it sends on a money route (a ledger
// route, or a proxy route with `idempotency: required`: a cashier in front
// of payment rails) is built from an allowlist, not copied from the
// client's request:
//
//   - method, path (rewritten), query and body, as the client sent them;
//   - Content-Type;
//   - Idempotency-Key, once, in the one spelling of the key the edge
//     enforced (httpx.AppendIdempotencyKey);
//   - X-Request-Id, and traceparent/tracestate when traceparent is valid;
//   - X-Forwarded-For, X-Forwarded-Proto and Forwarded, as the edge
//     established them;
//   - the identity the edge asserts: X-Hedge-Principal (the verified
//     subject) and, to writers, Ledger-Domain and Ledger-Epoch;
//   - client headers the route lists in upstream_headers.allow.
//
// Nothing else of the client's reaches a writer or a rail: a client can
// never name the account, the domain, the epoch or the principal. Other
// proxy routes forward the client's request minus hop-by-hop headers, the
// edge's own namespaces and the strip list (upstream_headers.strip, by
// default headers that name a client address, host or method the edge did
// not establish). Either way a request whose Connection header would remove
// a header the edge relies on is refused before it reaches any route
// (ProtectedConnection).
package contract

import (
	"bytes"

	"github.com/valyala/fasthttp"

	"hedge/configs"
	"hedge/gateway/route"
	"hedge/internal/httpx"
)

// headerSet matches header names case-insensitively: exact names, and
// prefixes written "Name-*".
type headerSet struct {
	exact    [][]byte // lower case
	prefixes [][]byte // lower case, without the '*'
}

func newHeaderSet(names ...[]string) headerSet {
	var s headerSet
	for _, list := range names {
		for _, n := range list {
			b := bytes.ToLower([]byte(n))
			if p, ok := bytes.CutSuffix(b, []byte("*")); ok {
				s.prefixes = append(s.prefixes, p)
			} else {
				s.exact = append(s.exact, b)
			}
		}
	}
	return s
}

func (s *headerSet) has(name []byte) bool {
	for _, e := range s.exact {
		if httpx.EqualFoldLower(name, e) {
			return true
		}
	}
	for _, p := range s.prefixes {
		if len(name) >= len(p) && httpx.EqualFoldLower(name[:len(p)], p) {
			return true
		}
	}
	return false
}

// edgeNamespaces are the header names the edge asserts to upstreams; a
// client's header in them never passes, on any route.
var edgeNamespaces = []string{"Ledger-*", "X-Hedge-*", "Hedge-*"}

// DefaultStripHeaders are removed from client requests on proxy routes
// unless the route's upstream_headers.strip says otherwise: headers that
// name a client address, a host, a scheme, a URL or a method that the
// edge did not establish, which an upstream might believe.
var DefaultStripHeaders = []string{
	"X-Real-IP", "X-Client-IP", "X-Cluster-Client-IP", "True-Client-IP", "CF-Connecting-IP", "Fastly-Client-IP",
	"X-Original-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Port", "X-Forwarded-Server", "X-Forwarded-Prefix",
	"X-Forwarded-Ssl", "X-Forwarded-Scheme", "X-Original-Host", "X-Host", "X-Original-URL", "X-Rewrite-URL",
	"X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override",
}

// protectedHeaders are what the edge relies on or sets itself: a request
// whose Connection header names one of them (or the edge's namespaces) is
// refused, since a hop-by-hop removal would take it away between the check
// and the upstream.
var protectedHeaders = newHeaderSet([]string{
	"Idempotency-Key", "Authorization", "Content-Type", "Content-Length", "Host", "Transfer-Encoding",
	"X-Request-Id", "Traceparent", "Tracestate", "X-Forwarded-For", "X-Forwarded-Proto", "Forwarded", "Cookie",
}, edgeNamespaces)

// ProtectedConnection returns the first token of the request's Connection
// headers that names a protected header, or nil. The returned slice aliases
// the request.
func ProtectedConnection(h *fasthttp.RequestHeader) []byte {
	if len(h.Peek(fasthttp.HeaderConnection)) == 0 {
		return nil
	}
	var found []byte
	for k, v := range h.All() {
		if found != nil || !httpx.EqualFoldLower(k, "connection") {
			continue
		}
		httpx.ConnectionTokens(v, func(t []byte) {
			if found == nil && protectedHeaders.has(t) {
				found = t
			}
		})
	}
	return found
}

// Contract is what one route sends upstream.
type Contract struct {
	// allowlist routes build the upstream request from the allowlist;
	// others strip the client's in place.
	allowlist bool
	allow     headerSet // client headers an allowlist route also forwards
	strip     headerSet // removed on other routes, with the edge namespaces
}

// New is the contract of route rc: an allowlist for money routes (ledger
// routes, and routes with idempotency: required), the strip list for the
// others.
func New(rc configs.Route) *Contract {
	c := &Contract{allowlist: rc.Kind == "ledger" || rc.Idempotency == "required"}
	c.allow = newHeaderSet(rc.UpstreamHeaders.Allow)
	strip := rc.UpstreamHeaders.Strip
	if strip == nil {
		strip = DefaultStripHeaders
	}
	c.strip = newHeaderSet(strip, edgeNamespaces)
	return c
}

// Allowlist reports whether the route builds its upstream requests from the
// allowlist (Build) rather than forwarding the client's (Prepare).
func (c *Contract) Allowlist() bool { return c.allowlist }

// Build writes into out the request an allowlist route sends for r: see
// the list at the top of the package. The caller sets the upstream's scheme
// and host and the identity headers. out's body aliases the client's, so
// out must not outlive the request.
func (c *Contract) Build(out *fasthttp.Request, r *route.Request, prefix, rewrite, key []byte) {
	in := &r.Ctx.Request
	oh := &out.Header
	oh.DisableNormalizing() // names are written as the edge spells them
	oh.SetMethodBytes(in.Header.Method())
	uri := out.URI()
	uri.DisablePathNormalizing = true
	path := in.URI().Path()
	if rewrite != nil && bytes.HasPrefix(path, prefix) {
		var buf [256]byte
		path = append(append(buf[:0], rewrite...), path[len(prefix):]...)
	}
	uri.SetPathBytes(path)
	uri.SetQueryStringBytes(in.URI().QueryString())
	if ct := in.Header.ContentType(); len(ct) > 0 {
		oh.SetContentTypeBytes(ct)
	}
	out.SetBodyRaw(in.Body())
	if key != nil {
		var kb [2*httpx.MaxIdempotencyKeyLen + 2]byte
		oh.SetBytesV("Idempotency-Key", httpx.AppendIdempotencyKey(kb[:0], key))
	}
	oh.SetBytesV("X-Request-Id", r.ID)
	if tp := in.Header.PeekAll("traceparent"); len(tp) == 1 && httpx.ValidTraceparent(tp[0]) {
		oh.SetBytesV("Traceparent", tp[0])
		if ts := in.Header.PeekAll("tracestate"); len(ts) == 1 && len(ts[0]) <= maxTracestate {
			oh.SetBytesV("Tracestate", ts[0])
		}
	}
	setForwarding(oh, r, &in.Header)
	if len(c.allow.exact)+len(c.allow.prefixes) > 0 {
		for k, v := range in.Header.All() {
			if c.allow.has(k) && !neverAllowed.has(k) && !httpx.IsHopByHop(k) {
				oh.AddBytesKV(k, v)
			}
		}
	}
}

// neverAllowed are what no allow list passes from a client, whatever the
// configuration says, besides hop-by-hop headers: what the edge sets
// itself and the edge's namespaces (configs refuses such allow entries too).
var neverAllowed = newHeaderSet([]string{
	"Host", "Content-Length", "Idempotency-Key", "X-Request-Id", "Traceparent",
	"Tracestate", "X-Forwarded-For", "X-Forwarded-Proto", "Forwarded", "Content-Type",
}, edgeNamespaces)

// maxTracestate bounds a forwarded tracestate (W3C Trace Context §3.3.1.5:
// 32 list members; 512 bytes is what vendors are asked to keep).
const maxTracestate = 512

// stripInPlace removes from a client's request, forwarded in place, the
// headers the route strips and the edge's namespaces.
func (c *Contract) stripInPlace(h *fasthttp.RequestHeader) {
	for {
		var name []byte
		for k := range h.All() {
			if c.strip.has(k) {
				name = k
				break
			}
		}
		if name == nil {
			return
		}
		var buf [128]byte
		h.DelBytes(append(buf[:0], name...))
	}
}

// setForwarding sets X-Forwarded-For, X-Forwarded-Proto and Forwarded on
// dst for r: from a trusted peer the incoming chain (read from in) is kept
// and the peer appended; from anyone else the values are the edge's own.
// dst and in may be the same header.
func setForwarding(dst *fasthttp.RequestHeader, r *route.Request, in *fasthttp.RequestHeader) {
	var buf [256]byte
	client := r.Client.AppendTo(buf[:0])
	if !r.TrustedPeer {
		dst.SetBytesV("X-Forwarded-For", client)
		dst.Set("X-Forwarded-Proto", r.Proto)
		dst.SetBytesV("Forwarded", httpx.AppendForwardedElement(buf[len(client):len(client)], r.Client, []byte(r.Proto), r.Ctx.Host()))
		return
	}
	if prior := in.Peek("X-Forwarded-For"); len(prior) > 0 {
		b := append(append(append(buf[len(client):len(client)], prior...), ", "...), r.Peer.String()...)
		dst.SetBytesV("X-Forwarded-For", b)
	} else {
		dst.SetBytesV("X-Forwarded-For", client)
	}
	dst.Set("X-Forwarded-Proto", r.Proto) // the trusted peer's, when it said http or https
	prior := in.Peek("Forwarded")
	f := httpx.AppendForwardedElement(nil, r.Peer, []byte(r.Proto), r.Ctx.Host())
	if len(prior) > 0 {
		f = append(append(append([]byte(nil), prior...), ", "...), f...)
	}
	dst.SetBytesV("Forwarded", f)
}

// Prepare turns the client's request into the request the edge sends on,
// in place, for routes that forward the client's headers: hop-by-hop
// headers and the strip list out, the path rewritten, the forwarding
// headers, request id and trace context set.
func (c *Contract) Prepare(r *route.Request, prefix, rewrite []byte) {
	h := &r.Ctx.Request.Header
	removeHopByHop(h)
	c.stripInPlace(h)

	if rewrite != nil {
		uri := r.Ctx.Request.URI()
		path := uri.Path()
		if bytes.HasPrefix(path, prefix) {
			var buf [256]byte
			np := append(append(buf[:0], rewrite...), path[len(prefix):]...)
			uri.SetPathBytes(np)
		}
	}
	setForwarding(h, r, h)
	h.SetBytesV("X-Request-Id", r.ID)
	if tp := h.Peek("traceparent"); len(tp) > 0 && !httpx.ValidTraceparent(tp) {
		// An invalid traceparent must not be passed on; tracestate is
		// meaningless without it (W3C Trace Context §3.2, §3.3).
		h.Del("traceparent")
		h.Del("tracestate")
	}
}

// CleanResponse removes hop-by-hop headers of the upstream's response; the
// client connection's own keep-alive is the edge's decision.
func CleanResponse(resp *fasthttp.Response) {
	var buf [256]byte
	conn := buf[:0]
	for k, v := range resp.Header.All() {
		conn = appendConnection(conn, k, v)
	}
	dropHopByHop(&resp.Header, conn)
}

// removeHopByHop deletes in place what the client meant for its connection
// to the edge only.
func removeHopByHop(h *fasthttp.RequestHeader) {
	var buf [256]byte
	conn := buf[:0]
	for k, v := range h.All() {
		conn = appendConnection(conn, k, v)
	}
	dropHopByHop(h, conn)
}

// Headers meant for one connection only (RFC 9110 §7.6.1) are the
// hop-by-hop headers (httpx.IsHopByHop, the one list) and every header the
// message's Connection headers name, however many they name and however
// many there are. The Connection values are copied first (appendConnection):
// deleting headers moves the message's own.

// appendConnection appends to conn the value of header name when it is a
// Connection header.
func appendConnection(conn, name, value []byte) []byte {
	if !httpx.EqualFoldLower(name, "connection") {
		return conn
	}
	return append(append(conn, ','), value...)
}

// header is a request's or a response's header, as dropHopByHop edits it.
type header interface {
	PeekKeys() [][]byte
	DelBytes(key []byte)
	ResetConnectionClose()
}

// dropHopByHop deletes from h the hop-by-hop headers and those the
// Connection values conn name.
func dropHopByHop(h header, conn []byte) {
	for {
		var name []byte
		for _, k := range h.PeekKeys() {
			if httpx.IsHopByHop(k) || connectionNames(conn, k) {
				name = k
				break
			}
		}
		if name == nil {
			break
		}
		h.DelBytes(name) // copies name before it deletes
	}
	h.ResetConnectionClose()
}

// connectionNames reports whether the Connection values conn name name.
func connectionNames(conn, name []byte) bool {
	for len(conn) > 0 {
		var tok []byte
		if tok, conn = httpx.CutToken(conn); len(tok) > 0 && bytes.EqualFold(tok, name) {
			return true
		}
	}
	return false
}
