package gateway

import (
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// betBody is a 200-byte bet, the shape `make bench` sends end to end.
var betBody = []byte(`{"table":"bacc-07","amount":"12.50","currency":"EUR","selection":"banker","note":"` +
	strings.Repeat("x", 200-88) + `"}`)

// cpuClock is the process's CPU time, user and system. On a shared machine
// its growth per request (cpu-ns/op) is the steadier figure: time spent
// descheduled does not count.
func cpuClock() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the CPU time per request of n requests served since
// start (cpuClock).
func reportCPU(b *testing.B, start time.Duration, n int) {
	if n > 0 {
		b.ReportMetric(float64(cpuClock()-start)/float64(n), "cpu-ns/op")
	}
}

// benchWriter is a writer on loopback that books every bet: fasthttp, so
// its own allocations are near zero. It stops when the benchmark ends.
func benchWriter(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	up := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.SetStatusCode(201)
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"bet_id":"sea-1-000001","balance":"987.50"}`)
	}}
	go up.Serve(ln)
	b.Cleanup(func() { up.Shutdown() })
	return ln.Addr().String()
}

var benchRemote = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}

// serveBet runs the edge handler of el for a bet (with the Authorization
// auth, when not empty, and Idempotency-Key key) and wants the writer's 201.
func serveBet(b *testing.B, el *edgeListener, ctx *fasthttp.RequestCtx, req *fasthttp.Request, auth string, key []byte) {
	servePost(b, el, ctx, req, "/api/bets", betBody, auth, key)
}

// servePost runs the edge handler of el for a JSON POST of body to path
// (with the Authorization auth, when not empty, and Idempotency-Key key)
// and wants the upstream's 201.
func servePost(b *testing.B, el *edgeListener, ctx *fasthttp.RequestCtx, req *fasthttp.Request, path string, body []byte, auth string, key []byte) {
	req.Reset()
	req.Header.SetMethod("POST")
	req.SetRequestURI(path)
	req.Header.SetHost("play.edge.test")
	req.Header.SetContentType("application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	req.Header.SetBytesV("Idempotency-Key", key)
	req.SetBody(body)
	ctx.Init(req, benchRemote, nil)
	el.serve(ctx)
	if ctx.Response.StatusCode() != 201 {
		b.Fatalf("want 201, got %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
	}
}

// onlyListener is the listener of e's first node, which has only one.
func onlyListener(e *testEdge) *edgeListener {
	var el *edgeListener
	for _, l := range e.g.Nodes()[0].listeners {
		el = l
	}
	return el
}

// benchKeyedPosts measures e's edge handler for player-1's JSON POSTs of
// body to path, each with an Idempotency-Key of its own, as a money route
// takes them.
func benchKeyedPosts(b *testing.B, e *testEdge, path string, body []byte) {
	el := onlyListener(e)
	auth := "Bearer " + token(b, "player-1", "")
	var req fasthttp.Request
	var ctx fasthttp.RequestCtx
	var key [40]byte
	copy(key[:], "0b6e2f8c-5d7a-4d0e-9a51-000000000000")
	b.ReportAllocs()
	i, cpu := 0, cpuClock()
	for b.Loop() {
		i++
		for j, n := 35, i; j > 23 && n > 0; j, n = j-1, n/10 {
			key[j] = byte('0' + n%10)
		}
		servePost(b, el, &ctx, &req, path, body, auth, key[:36])
	}
	reportCPU(b, cpu, i)
}

// BenchmarkProxyPath runs the whole edge handler for a bet — request id,
// client address, routing, header rewriting, proxying to a real upstream on
// loopback, metrics and the access log — and reports allocations per
// request. The upstream is fasthttp, so its own allocations are near zero.
func BenchmarkProxyPath(b *testing.B) {
	addr := benchWriter(b)
	cfg := strings.Replace(baseConfig, "log: {level: debug, access: {enabled: false}}",
		"log: {level: warn, access: {enabled: true, path: {{DATA}}/access.log}}", 1)
	e := startEdge(b, cfg, "{{L1}}", addr, "{{G1}}", addr, "{{G2}}", addr)
	el := onlyListener(e)
	var req fasthttp.Request
	var ctx fasthttp.RequestCtx
	b.ReportAllocs()
	b.SetBytes(int64(len(betBody)))
	n, cpu := 0, cpuClock()
	for b.Loop() {
		n++
		serveBet(b, el, &ctx, &req, "", []byte("0b6e2f8c-5d7a-4d0e-9a51-3f2a0c9e8b11"))
	}
	reportCPU(b, cpu, n)
}

// BenchmarkMoneyPath runs the whole edge handler for a bet on a ledger
// route — token (cached after the first), Idempotency-Key claim and
// completion in the memory store, the designation, the upstream request
// built from the edge's contract, proxying to a real writer on loopback —
// and reports allocations per request.
func BenchmarkMoneyPath(b *testing.B) { benchMoney(b, contractConfig) }

// BenchmarkMoneyPathPlayerLimit is BenchmarkMoneyPath with a per-player
// rate limit on the route, as the demo's bets have: the protective layer
// keys it by the principal, which the route reads too — the token is
// verified once for both.
func BenchmarkMoneyPathPlayerLimit(b *testing.B) {
	benchMoney(b, strings.Replace(contractConfig, "    money: {timeout: 2s}\n",
		"    money: {timeout: 2s}\n    rate_limits: [{name: per-player, key: principal, principal: jwt, rate: 1000000/s, burst: 1000000}]\n", 1))
}

func benchMoney(b *testing.B, cfg string) {
	addr := benchWriter(b)
	e := startEdgeNode(b, cfg, "sea", "sea-1", "{{WRITER}}", addr, "{{RAIL}}", addr, "{{GAMES}}", addr)
	b.SetBytes(int64(len(betBody)))
	benchKeyedPosts(b, e, "/api/bets", betBody)
}
