package waf_test

import (
	"net"
	"net/netip"
	"testing"

	"github.com/valyala/fasthttp"
)

// FuzzAdmit feeds arbitrary bodies and content types to a money route's
// guard (shape limits, schema, reduced document, Core Rule Set) as the
// gateway calls it: it must never panic, and every refusal must be a 4xx
// problem+json.
func FuzzAdmit(f *testing.F) {
	for _, s := range []struct{ ct, body string }{
		{"application/json", `{"table":"bacc-07","amount":"1.00","currency":"EUR","selection":"banker","comment":"gl hf"}`},
		{"application/json", `{"table":"bacc-07","amount":`},
		{"application/json", "{\"comment\":\"\xff\xfe\"}"},
		{"application/json", `{"table":"bacc-07","amount":"1.00","currency":"EUR","selection":"banker","comment":"<script>alert(1)</script>"}`},
		{"multipart/form-data; boundary=X", "--X\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nb\r\n--X--\r\n"},
		{"application/x-www-form-urlencoded", "a=%zz&b=1"},
		{"text/xml", "<a><b>1</a>"},
	} {
		f.Add(s.ct, s.body)
	}
	guards := testGuards(f, testConfig(f, `
routes:
  - {name: bets, kind: ledger, schema: "builtin:bet", max_body_bytes: 16KiB}
  - {name: api, waf: {allowed_methods: [GET, POST, PUT]}}
`), testListener, nil, nil)
	client := netip.MustParseAddr("198.51.100.7")
	f.Fuzz(func(t *testing.T, ct, body string) {
		for _, g := range guards {
			var req fasthttp.Request
			req.Header.SetMethod("POST")
			req.SetRequestURI("/api/bets")
			req.Header.SetHost("play.edge.test")
			req.Header.Set("User-Agent", "fuzz")
			req.Header.Set("Accept", "*/*")
			req.Header.SetContentType(ct)
			req.SetBodyString(body)
			ctx := &fasthttp.RequestCtx{}
			ctx.Init(&req, &net.TCPAddr{IP: client.AsSlice(), Port: 40000}, nil)
			pass, v := g.Admit(ctx, []byte("fuzz"), client, nil)
			if v.Allowed() {
				g.Finish(ctx, pass, []byte("fuzz"), client)
				continue
			}
			if st := v.Type.Status; st < 400 || st > 499 || v.Type.Slug == "" || v.Event.Status != st || v.Event.Layer == "" {
				t.Fatalf("refusal of %q %q: want a 4xx problem with its event, got %+v", ct, body, v)
			}
		}
	})
}
