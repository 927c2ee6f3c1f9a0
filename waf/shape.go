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
}

// NewShape takes a route's validated limits; maxBody is its body limit (0:
// the listener's).
func NewShape(l configs.RouteLimits, maxBody int64) Shape {
	s := Shape{maxURI: int(l.MaxURIBytes), maxHeaders: l.MaxHeaders, maxHeaderBytes: int(l.MaxHeaderBytes), maxBody: int(maxBody), maxParts: l.MaxMultipartParts}
	for _, ct := range l.ContentTypes {
		s.contentTypes = append(s.contentTypes, bytes.ToLower([]byte(ct)))
	}
	return s
}

// Check answers a request of the wrong shape with its problem and returns
// the limit it broke (the limits field, for metrics and the audit log); ""
// when the request may go on.
func (s *Shape) Check(ctx *fasthttp.RequestCtx, id []byte) string {
	h := &ctx.Request.Header
	if s.maxURI > 0 && len(h.RequestURI()) > s.maxURI {
		problem.Write(ctx, problem.URITooLong, "the request target exceeds "+strconv.Itoa(s.maxURI)+" bytes", id)
		return "max_uri_bytes"
	}
	if s.maxHeaders > 0 && h.Len() > s.maxHeaders {
		problem.Write(ctx, problem.TooManyHeaders, "more than "+strconv.Itoa(s.maxHeaders)+" headers", id)
		return "max_headers"
	}
	if s.maxHeaderBytes > 0 && len(h.RawHeaders()) > s.maxHeaderBytes {
		problem.Write(ctx, problem.HeadersTooLarge, "the headers exceed "+strconv.Itoa(s.maxHeaderBytes)+" bytes", id)
		return "max_header_bytes"
	}
	body := len(ctx.Request.Body())
	if s.maxBody > 0 && (body > s.maxBody || h.ContentLength() > s.maxBody) {
		problem.Write(ctx, problem.BodyTooLarge, "the body exceeds "+strconv.Itoa(s.maxBody)+" bytes", id)
		return "max_body_bytes"
	}
	if len(s.contentTypes) > 0 && body > 0 && !s.acceptsType(h.ContentType()) {
		problem.Write(ctx, problem.UnsupportedMedia, "this route accepts "+s.typesText(), id)
		ctx.Response.Header.Set("Accept-Post", s.typesText())
		return "content_types"
	}
	if s.maxParts > 0 && body > 0 && multipartParts(h.ContentType(), ctx.Request.Body(), s.maxParts) > s.maxParts {
		problem.Write(ctx, problem.BodyTooLarge, "more than "+strconv.Itoa(s.maxParts)+" multipart parts", id)
		return "max_multipart_parts"
	}
	return ""
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

func (s *Shape) typesText() string {
	b := make([]byte, 0, 64)
	for i, t := range s.contentTypes {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, t...)
	}
	return string(b)
}
