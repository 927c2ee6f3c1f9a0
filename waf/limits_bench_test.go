package waf_test

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"hedge/configs"
	"hedge/waf"
	"hedge/waf/waftest"
)

// The argument limits exist so that no request a client can send costs the
// rule engine much more than an ordinary one. BenchmarkWorstCaseVsGET
// measures that through the real guard (shape and argument limits, the
// Core Rule Set in block mode at paranoia level 1) with the shipped
// defaults: an ordinary browser GET against the most expensive requests
// that still pass every default limit.

// benchRequest is one request as a client sends it: the header block goes
// through fasthttp's parser. cookie and userAgent replace the browser's.
type benchRequest struct {
	name, method, uri, ct, body, cookie, userAgent string
}

func (r benchRequest) raw() string {
	var b strings.Builder
	b.WriteString(r.method + " " + r.uri + " HTTP/1.1\r\n")
	for _, h := range waftest.BrowserHeaders {
		if h[0] == "Cookie" && r.cookie != "" {
			h[1] = r.cookie
		}
		if h[0] == "User-Agent" && r.userAgent != "" {
			h[1] = r.userAgent
		}
		b.WriteString(h[0] + ": " + h[1] + "\r\n")
	}
	if r.body != "" {
		b.WriteString("Content-Type: " + r.ct + "\r\nContent-Length: " + strconv.Itoa(len(r.body)) + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

func (r benchRequest) ctx(tb testing.TB) *fasthttp.RequestCtx {
	tb.Helper()
	var req fasthttp.Request
	if err := req.Header.Read(bufio.NewReaderSize(strings.NewReader(r.raw()), 64<<10)); err != nil {
		tb.Fatalf("%s: %v", r.name, err)
	}
	if r.body != "" {
		req.SetBodyString(r.body)
	}
	ctx := &fasthttp.RequestCtx{}
	ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(198, 51, 100, 7), Port: 41000}, nil)
	return ctx
}

// worstCases are the most expensive requests the defaults let through, as
// found by trying: the cost is the number of arguments far more than their
// length, so each fills max_args, and then takes as many bytes, names as
// long and JSON as deep as the other limits allow. Header bytes (16 KiB by
// default) bound the cookies, max_uri_bytes (8 KiB) the query.
func worstCases() []benchRequest {
	d := struct{ args, name, value, total, depth int }{configs.DefaultMaxArgs, configs.DefaultMaxArgNameBytes,
		configs.DefaultMaxArgValueBytes, configs.DefaultMaxArgsBytes, configs.DefaultMaxJSONDepth}
	pairs := func(n, nameLen, valueLen int, sep string) string {
		var b strings.Builder
		for i := range n {
			if i > 0 {
				b.WriteString(sep)
			}
			name := fmt.Sprintf("p%d", i)
			b.WriteString(name + strings.Repeat("n", max(0, nameLen-len(name))) + "=" + strings.Repeat("v", valueLen))
		}
		return b.String()
	}
	// The JSON leaves' names are their paths: json.<key> is the key + 5.
	leaves := func(n, keyLen, valueLen int) string {
		var b strings.Builder
		b.WriteString("{")
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			k := fmt.Sprintf("k%d", i)
			fmt.Fprintf(&b, `"%s":"%s"`, k+strings.Repeat("k", max(0, keyLen-len(k))), strings.Repeat("v", valueLen))
		}
		b.WriteString("}")
		return b.String()
	}
	// n fields, or one file of fileSize bytes.
	parts := func(n, fileSize int) string {
		var b strings.Builder
		for i := range n {
			if fileSize > 0 {
				fmt.Fprintf(&b, "--XX\r\nContent-Disposition: form-data; name=\"f%d\"; filename=\"a.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n%s\r\n", i, strings.Repeat("z", fileSize))
				continue
			}
			fmt.Fprintf(&b, "--XX\r\nContent-Disposition: form-data; name=\"f%d\"\r\n\r\nv\r\n", i)
		}
		b.WriteString("--XX--\r\n")
		return b.String()
	}
	// As deep as allowed, with the leaves at the bottom.
	deep := func(n int) string {
		var b strings.Builder
		for i := range d.depth - 1 {
			fmt.Fprintf(&b, `{"l%d":`, i)
		}
		b.WriteString(leaves(n, 8, 16))
		b.WriteString(strings.Repeat("}", d.depth-1))
		return b.String()
	}
	// The browser's 4 cookies count too: the rest of max_args is the test's.
	n := d.args - 4
	arrays := strings.Repeat("[", d.depth) + "1" + strings.Repeat(",1", n-d.depth-1) + strings.Repeat("]", d.depth)
	// Bytes left for names and values beside the browser's cookies.
	perArg := (d.total - 100) / n
	return []benchRequest{
		{name: "GET max_args tiny query args", method: "GET", uri: "/api/lobby?" + pairs(n, 3, 1, "&")},
		{name: "GET max_args query args, query at max_uri_bytes", method: "GET", uri: "/api/lobby?" + pairs(n, 24, 8000/n-26, "&")},
		{name: "GET max_args cookies", method: "GET", uri: "/api/lobby", cookie: pairs(d.args, 3, 1, "; ")},
		{name: "GET max_args, query and cookies filling the header block", method: "GET", uri: "/api/lobby?" + pairs(d.args/2, 24, 6000/(d.args/2)-26, "&"),
			cookie: pairs(d.args/2, 24, 8800/(d.args/2)-27, "; ")},
		{name: "GET two values near max_arg_value_bytes", method: "GET", uri: "/api/lobby?q=" + strings.Repeat("v", 7000),
			cookie: "c=" + strings.Repeat("v", 8100)},
		{name: "POST JSON max_args tiny leaves", method: "POST", uri: "/api/profile", ct: "application/json", body: leaves(n, 2, 1)},
		{name: "POST JSON max_args leaves at max_args_bytes", method: "POST", uri: "/api/profile", ct: "application/json", body: leaves(n, perArg/4, perArg-perArg/4-5)},
		{name: "POST JSON max_args leaves, names at max_arg_name_bytes", method: "POST", uri: "/api/profile", ct: "application/json", body: leaves(n, d.name-5, 1)},
		{name: "POST JSON deepest, max_args leaves at the bottom", method: "POST", uri: "/api/profile", ct: "application/json", body: deep(n)},
		{name: "POST JSON deepest arrays", method: "POST", uri: "/api/profile", ct: "application/json", body: arrays},
		{name: "POST XML max_args text nodes", method: "POST", uri: "/api/profile", ct: "application/xml",
			body: "<a>" + strings.Repeat("<b>x</b>", n) + "</a>"},
		{name: "POST form max_args fields", method: "POST", uri: "/api/profile", ct: "application/x-www-form-urlencoded", body: pairs(n, 3, 1, "&")},
		{name: "POST multipart max_args fields", method: "POST", uri: "/api/profile", ct: "multipart/form-data; boundary=XX", body: parts(n, 0)},
		{name: "POST multipart, a file near the body limit", method: "POST", uri: "/api/profile", ct: "multipart/form-data; boundary=XX", body: parts(1, 1000<<10)},
		{name: "POST JSON padded with whitespace to the body limit", method: "POST", uri: "/api/profile", ct: "application/json",
			body: `{"a":"b"}` + strings.Repeat(" ", 1000<<10)},
		// Each level of a nested document is read again by a walk that
		// re-scans what it holds: padding at the bottom costs once per level.
		{name: "POST JSON deepest, padded with whitespace at the bottom", method: "POST", uri: "/api/profile", ct: "application/json",
			body: strings.Repeat(`{"a":`, d.depth-1) + strings.Repeat(" ", 1000<<10) + "1" + strings.Repeat("}", d.depth-1)},
	}
}

var normalGET = benchRequest{name: "browser GET", method: "GET", uri: "/api/lobby/tables?category=baccarat&limit=20&sort=popular"}

// shippedGuard is the guard of a route without a schema with every default:
// block mode, paranoia level 1, default limits (what a JSON API route gets
// when it names none).
func shippedGuard(tb testing.TB) *waf.Guard {
	tb.Helper()
	cfg := testConfig(tb, `
routes:
  - {name: api, pool: api}
regions:
  - name: r
    nodes:
      - name: n
        listeners: [{name: public, address: "127.0.0.1:8443", tls: {mode: "off"}}]
`)
	return testGuards(tb, cfg, cfg.Regions[0].Nodes[0].Listeners[0], nil, nil)["api"]
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

var benchClient = netip.MustParseAddr("198.51.100.7")

// admitCPU runs one request through the guard and returns the process CPU
// time it took; the request must pass.
func admitCPU(tb testing.TB, g *waf.Guard, r benchRequest, ctx *fasthttp.RequestCtx) time.Duration {
	start := processCPU()
	pass, v := g.Admit(ctx, []byte("bench"), benchClient, nil)
	if v.Allowed() {
		g.Finish(ctx, pass, nil, benchClient)
	}
	took := processCPU() - start
	if !v.Allowed() {
		tb.Fatalf("%s: refused under the defaults: %d %s", r.name, v.Type.Status, v.Detail)
	}
	return took
}

// TestWorstCasesPassDefaults keeps the benchmark honest: every "worst case"
// is a request the defaults let through, and one argument more (or a level
// deeper) than it is refused, so it is the most the limits allow.
func TestWorstCasesPassDefaults(t *testing.T) {
	g := shippedGuard(t)
	for _, r := range append([]benchRequest{normalGET}, worstCases()...) {
		// The listener reads at most max_header_bytes of request line and
		// headers (431 past it); the guard does not check that.
		if n := len(r.raw()); n > configs.DefaultMaxHeaderBytes {
			t.Fatalf("%s: %d bytes of request line and headers, over the listener's default %d", r.name, n, configs.DefaultMaxHeaderBytes)
		}
		ctx := r.ctx(t)
		pass, v := g.Admit(ctx, []byte("t"), benchClient, nil)
		if !v.Allowed() {
			t.Fatalf("%s: refused under the defaults: %d %s", r.name, v.Type.Status, v.Detail)
		}
		g.Finish(ctx, pass, nil, benchClient)
	}
	over := []benchRequest{
		{name: "one query argument too many", method: "GET", uri: "/api/lobby?" + strings.Repeat("a=1&", configs.DefaultMaxArgs-3) + "a=1"},
		{name: "one JSON level too deep", method: "POST", uri: "/api/profile", ct: "application/json",
			body: strings.Repeat(`{"a":`, configs.DefaultMaxJSONDepth+1) + "1" + strings.Repeat("}", configs.DefaultMaxJSONDepth+1)},
	}
	for _, r := range over {
		ctx := r.ctx(t)
		if _, v := g.Admit(ctx, []byte("t"), benchClient, nil); v.Type.Status != 400 {
			t.Errorf("%s: want 400, got %d %s", r.name, v.Type.Status, v.Detail)
		}
	}
}

// BenchmarkWorstCaseVsGET reports, per request kind, the CPU time per
// request (cpu-µs/…) and its ratio to the ordinary GET (x-…), measured
// interleaved — each iteration runs the GET and every worst case once — so
// that a machine getting busier or quieter during the run moves them
// together. worst-x is the largest ratio; the target is ≤ 10.
func BenchmarkWorstCaseVsGET(b *testing.B) {
	g := shippedGuard(b)
	reqs := append([]benchRequest{normalGET}, worstCases()...)
	cpu := make([]time.Duration, len(reqs))
	ctxs := make([]*fasthttp.RequestCtx, len(reqs))
	for i, r := range reqs {
		ctxs[i] = r.ctx(b)
		admitCPU(b, g, r, ctxs[i]) // warm up: engine caches, pools
	}
	b.ResetTimer()
	n := 0
	for b.Loop() {
		for i, r := range reqs {
			ctxs[i].Response.Reset()
			cpu[i] += admitCPU(b, g, r, ctxs[i])
		}
		n++
	}
	base := float64(cpu[0]) / float64(n)
	b.ReportMetric(base/1e3, "cpu-µs/GET")
	worst := 0.0
	for i, r := range reqs[1:] {
		per := float64(cpu[i+1]) / float64(n)
		ratio := per / base
		worst = max(worst, ratio)
		b.Logf("%-60s %8.0f µs  %5.1f×", r.name, per/1e3, ratio)
	}
	b.ReportMetric(worst, "worst-x")
}
