package crs

import (
	"net"
	"testing"

	"github.com/valyala/fasthttp"
)

// FuzzBegin feeds the body-inspection entry point arbitrary bodies under
// arbitrary content types, as the original body or as the reduced document.
// Whatever comes in, Begin must not panic and must decide: a body the engine
// could not parse is never a silent pass.
func FuzzBegin(f *testing.F) {
	seeds := []struct {
		ct, body string
		reduced  bool
	}{
		{"application/json", betJSON, false},
		{"application/json", betReduced, true},
		{"application/json", `{"table":"bacc-07","amount":"12.5`, false},
		{"application/json", "{\"m\":\"\xff\xfe\"}", false},
		{"application/json", `[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`, false},
		{"application/x-www-form-urlencoded", "a=1&b=%ff%zz&c", false},
		{"multipart/form-data; boundary=XyZ", "--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--XyZ--\r\n", false},
		{"multipart/form-data; boundary=XyZ", "--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nunterminated", false},
		{"multipart/form-data", "garbage", false},
		{"text/xml", "<a><b>x</b></a>", false},
		{"text/plain", "<script>alert(1)</script>", true},
	}
	for _, s := range seeds {
		f.Add(s.ct, []byte(s.body), s.reduced)
	}
	e := blockEngine(f)
	f.Fuzz(func(t *testing.T, ct string, body []byte, reduced bool) {
		var req fasthttp.Request
		req.Header.SetMethod(fasthttp.MethodPost)
		req.SetRequestURI("/api/bets")
		req.Header.SetHost("play.edge.test")
		req.Header.SetContentType(ct)
		req.SetBody(body)
		ctx := &fasthttp.RequestCtx{}
		ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}, nil)
		var inspect []byte
		if reduced {
			inspect = body
			if inspect == nil {
				inspect = []byte{}
			}
		}
		tx := e.Begin(ctx, []byte("fuzz"), client, inspect)
		defer tx.End()
		if err := tx.BodyError(); err != nil && (!tx.Blocked() || tx.Status() != fasthttp.StatusBadRequest) {
			t.Fatalf("body error %v but Blocked=%v Status=%d; want blocked with 400", err, tx.Blocked(), tx.Status())
		}
		if tx.Blocked() {
			switch tx.Status() {
			case fasthttp.StatusBadRequest, fasthttp.StatusForbidden, fasthttp.StatusRequestEntityTooLarge:
			default:
				t.Fatalf("blocked with status %d (rule %d)", tx.Status(), tx.RuleID())
			}
		}
		_ = tx.Matches()
	})
}
