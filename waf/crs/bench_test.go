package crs

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	coreruleset "github.com/corazawaf/coraza-coreruleset/v4"
	"github.com/corazawaf/coraza/v3"
	txhttp "github.com/corazawaf/coraza/v3/http"
	"github.com/valyala/fasthttp"
)

// The reference hedge is measured against: a plain
// coraza.NewWAF with the same CRS configuration (block mode, PL1) behind
// Coraza's own net/http middleware, with no accelerations. Its @rx is Go's
// regexp even in re2_cgo builds (see rx_re2.go).
var (
	refOnce sync.Once
	ref     http.Handler
	refErr  error
)

func reference(b *testing.B) http.Handler {
	refOnce.Do(func() {
		var waf coraza.WAF
		waf, refErr = coraza.NewWAF(coraza.NewWAFConfig().WithRootFS(coreruleset.FS).WithDirectives(
			"Include @coraza.conf-recommended\nSecRuleEngine On\nInclude @crs-setup.conf.example\nInclude @owasp_crs/*.conf\n"))
		ref = txhttp.WrapHandler(waf, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.WriteHeader(http.StatusOK)
		}))
	})
	if refErr != nil {
		b.Fatal(refErr)
	}
	return ref
}

func benchHedge(b *testing.B, r request, body []byte) {
	e := blockEngine(b)
	ctx := r.ctx(b)
	id := []byte("bench-request-id")
	b.ReportAllocs()
	b.ResetTimer()
	defer cpuPerOp(b)()
	for b.Loop() {
		tx := e.Begin(ctx, id, client, body)
		if tx.Blocked() || tx.BodyError() != nil {
			b.Fatalf("fixed input blocked: %v", ids(tx.Matches()))
		}
		tx.End()
	}
}

func benchReference(b *testing.B, r request, body string) {
	h := reference(b)
	if body == "" {
		body = r.body
	}
	b.ReportAllocs()
	b.ResetTimer()
	defer cpuPerOp(b)()
	for b.Loop() {
		serveReference(b, h, r, strings.NewReader(body))
	}
}

// serveReference sends r, with body, through the reference handler h as a
// client of 192.0.2.10 would, and fails unless it is let through.
func serveReference(b *testing.B, h http.Handler, r request, body io.Reader) {
	req := httptest.NewRequest(r.method, r.uri, body)
	req.RemoteAddr = "192.0.2.10:40000"
	for _, kv := range r.headers {
		req.Header.Add(kv[0], kv[1])
	}
	req.Host = "play.edge.test"
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusOK {
		b.Fatalf("reference answered %d", w.Code)
	}
}

func BenchmarkGETBrowser(b *testing.B) {
	b.Run("hedge", func(b *testing.B) { benchHedge(b, browserGET, nil) })
	b.Run("reference", func(b *testing.B) { benchReference(b, browserGET, "") })
}

func BenchmarkPOSTBet1KB(b *testing.B) {
	b.Run("hedge", func(b *testing.B) { benchHedge(b, betPOST(betJSON), nil) })
	b.Run("reference", func(b *testing.B) { benchReference(b, betPOST(betJSON), "") })
}

// BenchmarkGETBrowserFresh is the browser GET with every header value and
// argument made new for each request (a counter appended), so that rule
// pruning's memo never knows them: the hook evaluates every value itself.
// Real traffic lies between this and GETBrowser (session cookies, tokens
// and some arguments change, the browser's headers repeat).
func BenchmarkGETBrowserFresh(b *testing.B) {
	const pool = 4000
	reqs := make([]request, pool)
	for i := range reqs {
		r := browserGET
		r.uri += "&page=" + strconv.Itoa(i)
		r.headers = nil
		for _, h := range browserGET.headers {
			v := h[1]
			if !strings.EqualFold(h[0], "Host") {
				v += " " + strconv.Itoa(i)
			}
			if strings.EqualFold(h[0], "Cookie") {
				v = h[1] + "; n=" + strconv.Itoa(i)
			}
			r.headers = append(r.headers, [2]string{h[0], v})
		}
		reqs[i] = r
	}
	b.Run("hedge", func(b *testing.B) {
		e, err := New(Options{Mode: Block}) // an empty memo
		if err != nil {
			b.Fatal(err)
		}
		ctxs := make([]*fasthttp.RequestCtx, pool)
		for i, r := range reqs {
			ctxs[i] = r.ctx(b)
		}
		b.ReportAllocs()
		b.ResetTimer()
		defer cpuPerOp(b)()
		i := 0
		for b.Loop() {
			if i == pool {
				b.Fatalf("more than %d iterations: values would repeat", pool)
			}
			tx := e.Begin(ctxs[i], nil, client, nil)
			if tx.Blocked() {
				b.Fatalf("request %d blocked: %v", i, ids(tx.Matches()))
			}
			tx.End()
			i++
		}
	})
	b.Run("reference", func(b *testing.B) {
		i := 0
		h := reference(b)
		b.ReportAllocs()
		b.ResetTimer()
		defer cpuPerOp(b)()
		for b.Loop() {
			serveReference(b, h, reqs[i%pool], nil)
			i++
		}
	})
}

// The reduced bet: the schema layer hands the rule engine only the free-text
// fields while the upstream gets the full body.
func BenchmarkPOSTBetReduced(b *testing.B) {
	b.Run("hedge", func(b *testing.B) { benchHedge(b, betPOST(betJSON), []byte(betReduced)) })
	b.Run("reference", func(b *testing.B) { benchReference(b, betPOST(betJSON), betReduced) })
}

// cpuPerOp reports the process's CPU time (user+system) per operation as
// cpu-ns/op: on a shared, loaded machine wall time per op mostly measures
// the wait for a core, CPU time what the request costs.
func cpuPerOp(b *testing.B) func() {
	start := cpuTime()
	return func() {
		if b.N > 0 {
			b.ReportMetric(float64((cpuTime()-start).Nanoseconds())/float64(b.N), "cpu-ns/op")
		}
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
