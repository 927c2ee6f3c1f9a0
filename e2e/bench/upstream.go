package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// The upstream is a stand-in for the ledger writer: it answers every bet at
// once, so the servers under test are compared on their own work. It runs
// in a child process pinned to the load generator's CPU, leaving the
// server's CPU to the server alone.

// betResponse is what the upstream answers to a bet (~100 bytes, like a
// ledger's acknowledgement).
var betResponse = []byte(`{"bet_id":"b-7f3a9c21","status":"accepted","balance":"987.50","currency":"EUR","round":"r-000417"}`)

// probeHeader marks the harness's correctness probe: only that request's
// headers are recorded, so the measured path costs the upstream nothing.
const probeHeader = "X-Bench-Probe"

// serveUpstream runs the upstream on addr until the process is killed.
func serveUpstream(addr string) error {
	var (
		mu   sync.Mutex
		seen = map[string]string{} // headers of the last probe request
	)
	handler := func(ctx *fasthttp.RequestCtx) {
		switch string(ctx.Path()) {
		case "/healthz":
			ctx.SetStatusCode(http.StatusOK)
			ctx.SetBodyString("ok")
		case "/_probe": // what the last probe carried, for the harness
			mu.Lock()
			b, _ := json.Marshal(seen)
			mu.Unlock()
			ctx.SetContentType("application/json")
			ctx.SetBody(b)
		default:
			if !ctx.IsPost() {
				ctx.SetStatusCode(http.StatusMethodNotAllowed)
				return
			}
			if len(ctx.Request.Header.Peek(probeHeader)) > 0 {
				h := map[string]string{"_path": string(ctx.Path()), "_body_len": fmt.Sprint(len(ctx.PostBody()))}
				for k, v := range ctx.Request.Header.All() {
					h[string(k)] = string(v)
				}
				mu.Lock()
				seen = h
				mu.Unlock()
			}
			ctx.SetStatusCode(http.StatusCreated)
			ctx.SetContentType("application/json")
			ctx.SetBody(betResponse)
		}
	}
	s := &fasthttp.Server{
		Handler:              handler,
		Name:                 "bench-upstream",
		ReadTimeout:          time.Minute,
		IdleTimeout:          time.Minute,
		NoDefaultDate:        true,
		NoDefaultContentType: true,
	}
	return s.ListenAndServe(addr)
}

// probeSeen returns the headers the upstream recorded for the last probe.
func probeSeen(upstreamAddr string) (map[string]string, error) {
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil}}
	resp, err := c.Get("http://" + upstreamAddr + "/_probe")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var h map[string]string
	return h, json.NewDecoder(resp.Body).Decode(&h)
}
