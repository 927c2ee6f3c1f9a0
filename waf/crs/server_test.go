package crs

import (
	"net"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// The engine in a real fasthttp server on loopback, called the way the
// gateway calls it: an attack is refused, a broken body is a 400, an
// ordinary request reaches the handler.
func TestInRealServer(t *testing.T) {
	e := blockEngine(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		client, _ := netipAddr(ctx.RemoteAddr())
		tx := e.Begin(ctx, ctx.Request.Header.Peek("X-Request-Id"), client, nil)
		defer tx.End()
		switch {
		case tx.Blocked():
			ctx.SetStatusCode(tx.Status())
		case tx.BodyError() != nil:
			ctx.SetStatusCode(fasthttp.StatusBadRequest)
		default:
			ctx.SetBodyString("ok")
		}
	}, ReadTimeout: 5 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	defer func() {
		_ = srv.Shutdown()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()

	c := &fasthttp.Client{ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}
	cases := []struct {
		name string
		r    request
		want int
	}{
		{"browser GET", browserGET, 200},
		{"bet", betPOST(betJSON), 200},
		{"sqli", attacks[0].req, 403},
		{"xss json", attacks[1].req, 403},
		{"truncated json", betPOST(`{"amount":"12.5`), 400},
	}
	for _, cs := range cases {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		req.SetRequestURI("http://" + ln.Addr().String() + cs.r.uri)
		req.Header.SetMethod(cs.r.method)
		for _, h := range cs.r.headers {
			if h[0] == "Host" {
				continue
			}
			req.Header.Set(h[0], h[1])
		}
		req.Header.Set("X-Request-Id", "srv-"+cs.name)
		req.SetBodyString(cs.r.body)
		if err := c.DoTimeout(req, resp, 20*time.Second); err != nil {
			t.Fatalf("%s: %v", cs.name, err)
		}
		if resp.StatusCode() != cs.want {
			t.Errorf("%s: status %d, want %d", cs.name, resp.StatusCode(), cs.want)
		}
		fasthttp.ReleaseRequest(req)
		fasthttp.ReleaseResponse(resp)
	}
}
