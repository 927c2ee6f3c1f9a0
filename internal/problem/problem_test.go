package problem

import (
	"encoding/json"
	"net/http/httptest"
	"testing"

	"github.com/valyala/fasthttp"
)

func TestWriteIsValidProblemJSON(t *testing.T) {
	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI("/api/x%22y%FF")
	ctx.Response.SetBodyString("stale upstream body")
	Write(&ctx, NoHealthyUpstream, "pool \"ledger\" has no healthy member", []byte("req-1"))
	if got := string(ctx.Response.Header.ContentType()); got != ContentType {
		t.Fatalf("content type: want %s, got %s", ContentType, got)
	}
	if got := string(ctx.Response.Header.Peek("X-Request-Id")); got != "req-1" {
		t.Fatalf("X-Request-Id: want req-1, got %q", got)
	}
	var doc map[string]any
	if err := json.Unmarshal(ctx.Response.Body(), &doc); err != nil {
		t.Fatalf("body is not JSON: %v\n%s", err, ctx.Response.Body())
	}
	want := map[string]any{
		"type": "urn:hedge:problem:no-healthy-upstream", "title": "No healthy upstream",
		"status": float64(503), "detail": `pool "ledger" has no healthy member`,
		"request_id": "req-1", "instance": "/api/x\"y\ufffd",
	}
	for k, v := range want {
		if doc[k] != v {
			t.Errorf("%s: want %#v, got %#v", k, v, doc[k])
		}
	}
	if ctx.Response.StatusCode() != 503 {
		t.Errorf("status: want 503, got %d", ctx.Response.StatusCode())
	}
}

// WriteHTTP writes the same document for net/http handlers, echoing the
// request id the edge handed over, and no body to a HEAD.
func TestWriteHTTP(t *testing.T) {
	for _, method := range []string{"GET", "HEAD"} {
		r := httptest.NewRequest(method, "/live/x/hls/nothing.mp4", nil)
		r.Header.Set("X-Request-Id", "req-7")
		w := httptest.NewRecorder()
		WriteHTTP(w, r, StreamNotFound, "gone")
		if w.Code != 404 || w.Header().Get("Content-Type") != ContentType || w.Header().Get("X-Request-Id") != "req-7" ||
			w.Header().Get("Cache-Control") != "no-store" {
			t.Errorf("%s: want 404 %s with X-Request-Id req-7, got %d %v", method, ContentType, w.Code, w.Header())
		}
		if method == "HEAD" {
			if w.Body.Len() != 0 {
				t.Errorf("HEAD: want no body, got %q", w.Body)
			}
			continue
		}
		want := `{"type":"urn:hedge:problem:stream-not-found","title":"No such live stream","status":404,"detail":"gone","instance":"/live/x/hls/nothing.mp4","request_id":"req-7"}` + "\n"
		if w.Body.String() != want {
			t.Errorf("GET: want body %s, got %s", want, w.Body)
		}
	}
}

func BenchmarkWrite(b *testing.B) {
	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI("/api/unknown")
	id := []byte("0123456789abcdef-42")
	b.ReportAllocs()
	for b.Loop() {
		Write(&ctx, NotFound, "", id)
	}
}
