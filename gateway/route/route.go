// Package route is the contract between the edge and its route kinds. A
// kind (proxy, ledger, stream) builds a Handler from its configuration;
// the edge matches each request to a route, lets the protective layer
// admit it, and calls the route's Handler with the Request it established.
// A Handler answers the request itself (the upstream's answer, a replay,
// a stream) or returns the refusal the edge answers with: layers decide,
// the edge answers.
package route

import (
	"bytes"
	"net/netip"

	"github.com/valyala/fasthttp"

	"hedge/gateway/jwtauth"
	"hedge/internal/problem"
)

// Handler serves the requests of one route. Serve returns the zero Refusal
// when it has answered; otherwise the edge answers with the refusal.
type Handler interface {
	Serve(r *Request) problem.Refusal
}

// Request is one request on its way through the edge: what the earlier
// steps established (id, client address, identity) for the later ones. It
// lives for one fasthttp request: nothing may keep it, or its byte slices,
// after Serve returns.
type Request struct {
	Ctx *fasthttp.RequestCtx
	// ID is the X-Request-Id, propagated when the client sent a valid one.
	ID []byte
	// Client is the client's address as established from trusted proxies.
	Client netip.Addr
	// Peer is the address of the connection's other end.
	Peer netip.Addr
	// TrustedPeer reports whether the peer's forwarding headers are believed.
	TrustedPeer bool
	// Proto is the scheme the client used ("https" or "http").
	Proto string

	// Upstream and Attempts are filled in by proxying, for the access log.
	Upstream string
	Attempts int

	// Verifier checks the request's bearer token (nil: the node has no
	// auth.jwt keys, and no request has an identity).
	Verifier   *jwtauth.Verifier
	identified bool
	claims     jwtauth.Claims
	authErr    error
	principal  []byte
	subjectBuf [128]byte
}

var bearer = []byte("bearer ")

// Identity is who the request is from: the claims of its verified bearer
// token, or why it has none (jwtauth.ErrNoToken when it sent none). The
// token is verified once per request, when first asked — by the protective
// layer's principal rate limits or by a route that authenticates, and by
// no other route — and every later reader gets the same answer.
func (r *Request) Identity() (jwtauth.Claims, error) {
	if r.identified {
		return r.claims, r.authErr
	}
	r.identified = true
	if r.Verifier == nil {
		r.authErr = jwtauth.ErrNoToken
		return r.claims, r.authErr
	}
	auth := r.Ctx.Request.Header.Peek(fasthttp.HeaderAuthorization)
	var tok []byte
	if len(auth) > len(bearer) && bytes.EqualFold(auth[:len(bearer)], bearer) {
		tok = auth[len(bearer):]
	}
	r.claims, r.authErr = r.Verifier.Verify(tok)
	if r.authErr == nil {
		r.principal = append(r.subjectBuf[:0], r.claims.Subject...)
	}
	return r.claims, r.authErr
}

// Principal is the verified subject of the request's token, nil when it
// has none (waf.Identity: principal rate limits then key by address).
func (r *Request) Principal() []byte {
	r.Identity()
	return r.principal
}
