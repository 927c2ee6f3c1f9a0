// Package problem writes RFC 9457 problem details, the one error format of
// every response the gateway writes itself.
//
// Each problem has a stable type URI (urn:hedge:problem:SLUG) that clients and
// dashboards may branch on; the title is fixed per type and the detail says
// what happened to this request. Bodies never carry internal error text.
package problem

import (
	"net/http"
	"strconv"
	"unicode/utf8"

	"github.com/valyala/fasthttp"
)

// ContentType of every problem response.
const ContentType = "application/problem+json"

// Type is one kind of problem.
type Type struct {
	Slug   string
	Title  string
	Status int
}

// URI is the stable type URI.
func (t Type) URI() string { return "urn:hedge:problem:" + t.Slug }

// The problems the edge itself answers with. The README lists them.
var (
	BadRequest         = Type{"bad-request", "Malformed request", fasthttp.StatusBadRequest}
	NotFound           = Type{"no-route", "No route for this request", fasthttp.StatusNotFound}
	MethodNotAllowed   = Type{"method-not-allowed", "Method not allowed on this route", fasthttp.StatusMethodNotAllowed}
	RequestTimeout     = Type{"request-timeout", "Request not received in time", fasthttp.StatusRequestTimeout}
	BodyTooLarge       = Type{"body-too-large", "Request body too large", fasthttp.StatusRequestEntityTooLarge}
	HeadersTooLarge    = Type{"headers-too-large", "Request headers too large", fasthttp.StatusRequestHeaderFieldsTooLarge}
	NoHealthyUpstream  = Type{"no-healthy-upstream", "No healthy upstream", fasthttp.StatusServiceUnavailable}
	UpstreamFailed     = Type{"upstream-failed", "Upstream failed", fasthttp.StatusBadGateway}
	UpstreamTimeout    = Type{"upstream-timeout", "Upstream timed out", fasthttp.StatusGatewayTimeout}
	Draining           = Type{"draining", "Node is draining", fasthttp.StatusServiceUnavailable}
	Overloaded         = Type{"overloaded", "Too many connections", fasthttp.StatusServiceUnavailable}
	Unauthorized       = Type{"unauthorized", "Authentication required", fasthttp.StatusUnauthorized}
	Forbidden          = Type{"forbidden", "Forbidden", fasthttp.StatusForbidden}
	RoleMissing        = Type{"admin-role-missing", "The admin token lacks the role this needs", fasthttp.StatusForbidden}
	UnprocessableInput = Type{"invalid-input", "Invalid input", fasthttp.StatusUnprocessableEntity}
	Internal           = Type{"internal", "Internal error", fasthttp.StatusInternalServerError}
	// ProtectedHeader: the request's Connection header names a header the
	// edge relies on, which a hop-by-hop removal would take away.
	ProtectedHeader = Type{"connection-names-protected-header", "Connection names a header the edge relies on", fasthttp.StatusBadRequest}

	// Money routes.
	InvalidToken           = Type{"invalid-token", "Missing or invalid bearer token", fasthttp.StatusUnauthorized}
	UnknownDomain          = Type{"unknown-ledger-domain", "Unknown ledger domain", fasthttp.StatusForbidden}
	KeyMissing             = Type{"idempotency-key-missing", "Idempotency-Key required", fasthttp.StatusBadRequest}
	KeyMalformed           = Type{"idempotency-key-malformed", "Malformed Idempotency-Key", fasthttp.StatusBadRequest}
	KeyReused              = Type{"idempotency-key-reused", "Idempotency-Key reused for a different request", fasthttp.StatusUnprocessableEntity}
	KeyInFlight            = Type{"idempotency-key-in-flight", "A request with this Idempotency-Key is in progress", fasthttp.StatusConflict}
	IdempotencyUnavailable = Type{"idempotency-unavailable", "Idempotency store unavailable", fasthttp.StatusServiceUnavailable}
	WriterUnavailable      = Type{"writer-unavailable", "No designated ledger writer", fasthttp.StatusServiceUnavailable}
	OutcomeUnknown         = Type{"outcome-unknown", "Outcome unknown: retry with the same Idempotency-Key", fasthttp.StatusGatewayTimeout}
	Shed                   = Type{"shed", "Temporarily unavailable while the wallet is degraded", fasthttp.StatusServiceUnavailable}
	// PromotionFailed: an approved promotion the writer did not take
	// (unreachable, or it refused the epoch); nothing was designated.
	PromotionFailed = Type{"promotion-failed", "The writer did not take the promotion", fasthttp.StatusBadGateway}
	// PinnedUnavailable: an earlier request with this key reached an
	// upstream without a known outcome, and that upstream is down; the
	// request goes nowhere else, so it cannot be applied twice.
	PinnedUnavailable = Type{"pinned-upstream-unavailable", "The upstream that holds this Idempotency-Key's outcome is unavailable", fasthttp.StatusServiceUnavailable}

	// The protective layer (waf). A blocked request learns nothing of the
	// rule that stopped it; the audit log has the details.
	AddressDenied       = Type{"address-denied", "Client address not allowed", fasthttp.StatusForbidden}
	Blocked             = Type{"request-blocked", "Request blocked", fasthttp.StatusForbidden}
	URITooLong          = Type{"uri-too-long", "Request URI too long", fasthttp.StatusRequestURITooLong}
	TooManyHeaders      = Type{"too-many-headers", "Too many request headers", fasthttp.StatusRequestHeaderFieldsTooLarge}
	UnsupportedMedia    = Type{"unsupported-media-type", "Unsupported content type", fasthttp.StatusUnsupportedMediaType}
	RateLimited         = Type{"rate-limited", "Too many requests", fasthttp.StatusTooManyRequests}
	SchemaViolation     = Type{"schema-violation", "Request body does not match the route's schema", fasthttp.StatusUnprocessableEntity}
	MalformedBody       = Type{"malformed-body", "Request body could not be parsed", fasthttp.StatusBadRequest}
	VersionNotSupported = Type{"http-version-not-supported", "HTTP version not supported", fasthttp.StatusHTTPVersionNotSupported}
	// Live streams (WHIP/WHEP).
	StreamNotFound        = Type{"stream-not-found", "No such live stream", fasthttp.StatusNotFound}
	StreamSessionNotFound = Type{"stream-session-not-found", "No such stream session", fasthttp.StatusNotFound}
	PublisherExists       = Type{"stream-publisher-exists", "The stream already has a publisher", fasthttp.StatusConflict}
	ViewerCap             = Type{"stream-viewer-cap", "WebRTC viewer cap reached: watch over LL-HLS", fasthttp.StatusServiceUnavailable}
	InvalidSDP            = Type{"invalid-sdp", "Malformed SDP", fasthttp.StatusBadRequest}
	NoUsableCodec         = Type{"no-usable-codec", "No usable codec offered", fasthttp.StatusUnprocessableEntity}
	PreconditionFailed    = Type{"precondition-failed", "If-Match does not match the session's ETag", fasthttp.StatusPreconditionFailed}
	// A client address over its share of session creation (stream.AddressLimits).
	StreamSessionRate  = Type{"stream-session-rate", "Too many stream sessions started from this address", fasthttp.StatusTooManyRequests}
	StreamSessionLimit = Type{"stream-session-limit", "Too many stream sessions open from this address: watch over LL-HLS", fasthttp.StatusTooManyRequests}
	// PATCH or DELETE on a session with credentials that are not the session's.
	StreamSessionForbidden = Type{"stream-session-forbidden", "These credentials do not control this stream session", fasthttp.StatusForbidden}

	// Framing and connections, checked before routing. BadFraming: the
	// edge cannot tell for sure where the request ends (the shapes of
	// request smuggling); the connection is closed after the answer.
	BadFraming  = Type{"bad-framing", "Ambiguous request framing", fasthttp.StatusBadRequest}
	Misdirected = Type{"misdirected-request", "Host does not match the TLS server name of the connection", fasthttp.StatusMisdirectedRequest}
	// A request that is not safe to replay (not GET, HEAD or OPTIONS)
	// arrived in TLS early data (HTTP/3's 0-RTT), which an attacker can
	// replay: the client sends it again once the handshake is done
	// (RFC 8470).
	TooEarly = Type{"too-early", "Request received in early data: send it again after the handshake", 425}

	// Argument limits (the shape layer): what the rule engine would read
	// as arguments, bounded before it runs.
	TooManyArgs     = Type{"too-many-args", "Too many arguments", fasthttp.StatusBadRequest}
	ArgNameTooLong  = Type{"arg-name-too-long", "Argument name too long", fasthttp.StatusBadRequest}
	ArgValueTooLong = Type{"arg-value-too-long", "Argument value too long", fasthttp.StatusBadRequest}
	ArgsTooLarge    = Type{"args-too-large", "Arguments too large", fasthttp.StatusBadRequest}
	JSONTooDeep     = Type{"json-too-deep", "JSON body nested too deeply", fasthttp.StatusBadRequest}
)

// Refusal is a decision to refuse a request with a problem, made by a
// layer that does not write answers itself (the protective layer, a money
// route's key guard, a route handler): the server it runs in writes it, in
// one place per server type. The zero Refusal refuses nothing.
type Refusal struct {
	Type   Type
	Detail string
	// RetryAfter is the Retry-After value in seconds ("" for none).
	RetryAfter string
	// Header and Value are one more response header the answer carries
	// (Allow, Accept-Post, WWW-Authenticate), when Header is not empty.
	Header, Value string
	// Close ends the connection after the answer.
	Close bool
}

// Refuse is a Refusal of type t with detail.
func Refuse(t Type, detail string) Refusal { return Refusal{Type: t, Detail: detail} }

// Refused reports whether r refuses the request.
func (r *Refusal) Refused() bool { return r.Type.Status != 0 }

// Write answers ctx with problem t. detail may be empty; requestID is echoed
// in the body and the X-Request-Id header. Any body already set is replaced.
func Write(ctx *fasthttp.RequestCtx, t Type, detail string, requestID []byte) {
	resp := &ctx.Response
	resp.Reset()
	resp.SetStatusCode(t.Status)
	resp.Header.SetContentType(ContentType)
	resp.Header.Set("Cache-Control", "no-store")
	if len(requestID) > 0 {
		resp.Header.SetBytesV("X-Request-Id", requestID)
	}
	b := AppendJSON(resp.Body()[:0], t, detail, requestID, ctx.Path())
	resp.SetBodyRaw(b)
}

// WriteHTTP answers a net/http request with problem t: the one writer of
// hedge's net/http handlers (the admin APIs, the stream pages and LL-HLS).
// The request's X-Request-Id, which the edge sets to its own id before it
// hands a request to a net/http handler, is echoed in the body and the
// response header; a HEAD request gets no body.
func WriteHTTP(w http.ResponseWriter, r *http.Request, t Type, detail string) {
	h := w.Header()
	h.Set("Content-Type", ContentType)
	h.Set("Cache-Control", "no-store")
	id := r.Header.Get("X-Request-Id")
	if id != "" {
		h.Set("X-Request-Id", id)
	}
	w.WriteHeader(t.Status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(AppendJSON(nil, t, detail, []byte(id), []byte(r.URL.Path)))
	}
}

// AppendJSON appends the problem document to dst.
func AppendJSON(dst []byte, t Type, detail string, requestID, instance []byte) []byte {
	dst = append(dst, `{"type":"urn:hedge:problem:`...)
	dst = append(dst, t.Slug...)
	dst = append(dst, `","title":`...)
	dst = appendString(dst, t.Title)
	dst = append(dst, `,"status":`...)
	dst = strconv.AppendInt(dst, int64(t.Status), 10)
	if detail != "" {
		dst = append(dst, `,"detail":`...)
		dst = appendString(dst, detail)
	}
	if len(instance) > 0 {
		dst = append(dst, `,"instance":`...)
		dst = appendString(dst, instance)
	}
	if len(requestID) > 0 {
		dst = append(dst, `,"request_id":`...)
		dst = appendString(dst, requestID)
	}
	return append(dst, "}\n"...)
}

const hex = "0123456789abcdef"

// appendString appends s as a JSON string; invalid UTF-8 becomes U+FFFD so
// the document stays valid whatever the client sent.
func appendString[T string | []byte](dst []byte, s T) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c < 0x20 || c == 0x7f:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(string(s[i:min(i+utf8.UTFMax, len(s))]))
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, `\ufffd`...)
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}

// AppendString is the JSON string encoder used for problem bodies, exported
// for the access log, which must stay valid JSON on any input too.
func AppendString[T string | []byte](dst []byte, s T) []byte { return appendString(dst, s) }
