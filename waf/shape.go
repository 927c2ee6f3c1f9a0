package waf

import (
	"bytes"
	"strconv"

	"github.com/valyala/fasthttp"

	"hedge/configs"
	"hedge/internal/problem"
)

// Shape holds a route's request shape limits. The listener already bounds
// header bytes and body bytes while reading (fasthttp's read buffer and
// MaxRequestBodySize), and the edge refuses ambiguous framing before
// routing (gateway, httpx.CheckFraming); Shape adds the route's tighter
// limits, checked before anything looks inside the request. Methods are the
// route's match.methods, answered 405 with Allow by the router.
type Shape struct {
	maxURI         int
	maxHeaders     int
	maxHeaderBytes int
	maxBody        int
	contentTypes   [][]byte // lower-case media types; empty accepts any
	maxParts       int
	// The refusals, made once when the route is built.
	uriTooLong, tooManyHeaders, headersTooLarge, bodyTooLarge, mediaType, tooManyParts problem.Refusal
}

// NewShape takes a route's validated limits; maxBody is its body limit (0:
// the listener's).
func NewShape(l configs.RouteLimits, maxBody int64) Shape {
	s := Shape{maxURI: int(l.MaxURIBytes), maxHeaders: l.MaxHeaders, maxHeaderBytes: int(l.MaxHeaderBytes), maxBody: int(maxBody), maxParts: l.MaxMultipartParts}
	for _, ct := range l.ContentTypes {
		s.contentTypes = append(s.contentTypes, bytes.ToLower([]byte(ct)))
	}
	s.uriTooLong = problem.Refuse(problem.URITooLong, "the request target exceeds "+strconv.Itoa(s.maxURI)+" bytes")
	s.tooManyHeaders = problem.Refuse(problem.TooManyHeaders, "more than "+strconv.Itoa(s.maxHeaders)+" headers")
	s.headersTooLarge = problem.Refuse(problem.HeadersTooLarge, "the headers exceed "+strconv.Itoa(s.maxHeaderBytes)+" bytes")
	s.bodyTooLarge = problem.Refuse(problem.BodyTooLarge, "the body exceeds "+strconv.Itoa(s.maxBody)+" bytes")
	types := string(bytes.Join(s.contentTypes, []byte(", ")))
	s.mediaType = problem.Refusal{Type: problem.UnsupportedMedia, Detail: "this route accepts " + types, Header: "Accept-Post", Value: types}
	s.tooManyParts = problem.Refuse(problem.BodyTooLarge, "more than "+strconv.Itoa(s.maxParts)+" multipart parts")
	return s
}

// Check returns the refusal of a request of the wrong shape and the limit
// it broke (the limits field, for metrics and the audit log); the zero
// Refusal when the request may go on.
func (s *Shape) Check(ctx *fasthttp.RequestCtx) (problem.Refusal, string) {
	h := &ctx.Request.Header
	if s.maxURI > 0 && len(h.RequestURI()) > s.maxURI {
		return s.uriTooLong, "max_uri_bytes"
	}
	if s.maxHeaders > 0 && h.Len() > s.maxHeaders {
		return s.tooManyHeaders, "max_headers"
	}
	if s.maxHeaderBytes > 0 && len(h.RawHeaders()) > s.maxHeaderBytes {
		return s.headersTooLarge, "max_header_bytes"
	}
	body := len(ctx.Request.Body())
	if s.maxBody > 0 && (body > s.maxBody || h.ContentLength() > s.maxBody) {
		return s.bodyTooLarge, "max_body_bytes"
	}
	if len(s.contentTypes) > 0 && body > 0 && !s.acceptsType(h.ContentType()) {
		return s.mediaType, "content_types"
	}
	if s.maxParts > 0 && body > 0 && multipartParts(h.ContentType(), ctx.Request.Body(), s.maxParts) > s.maxParts {
		return s.tooManyParts, "max_multipart_parts"
	}
	return problem.Refusal{}, ""
}

// multipartParts counts the parts of a multipart body, stopping past max;
// 0 when the content type is not multipart.
func multipartParts(ct, body []byte, max int) int {
	if len(ct) < 10 || !bytes.EqualFold(ct[:10], []byte("multipart/")) {
		return 0
	}
	i := indexFold(ct, "boundary=")
	if i < 0 {
		return 0
	}
	b := ct[i+len("boundary="):]
	if j := bytes.IndexByte(b, ';'); j >= 0 {
		b = b[:j]
	}
	b = bytes.Trim(bytes.TrimSpace(b), `"`)
	if len(b) == 0 {
		return 0
	}
	delim := append([]byte("--"), b...)
	n := 0
	for rest := body; n <= max+1; n++ {
		k := bytes.Index(rest, delim)
		if k < 0 {
			break
		}
		rest = rest[k+len(delim):]
	}
	return n - 1 // the closing delimiter ends the last part
}

func (s *Shape) acceptsType(ct []byte) bool {
	if i := bytes.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = bytes.TrimSpace(ct)
	for _, t := range s.contentTypes {
		if bytes.EqualFold(ct, t) {
			return true
		}
	}
	return false
}
