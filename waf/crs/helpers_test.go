package crs

import (
	"bufio"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/corazawaf/coraza/v3"
	"github.com/corazawaf/coraza/v3/types"
	"github.com/valyala/fasthttp"

	"hedge/waf/waftest"
)

// Compiling the CRS takes a second or more (much more under -race), so tests
// share engines by name.
var (
	enginesMu sync.Mutex
	engines   = map[string]*Engine{}
)

func engine(t testing.TB, name string, o Options) *Engine {
	t.Helper()
	enginesMu.Lock()
	defer enginesMu.Unlock()
	if e, ok := engines[name]; ok {
		return e
	}
	e, err := New(o)
	if err != nil {
		t.Fatalf("New(%s): %v", name, err)
	}
	engines[name] = e
	return e
}

func blockEngine(t testing.TB) *Engine  { return engine(t, "block", Options{Mode: Block}) }
func detectEngine(t testing.TB) *Engine { return engine(t, "detect", Options{Mode: Detect}) }

var client = netip.MustParseAddr("192.0.2.10")

// request is a raw HTTP/1.1 request, parsed by fasthttp's real parser.
type request struct {
	method, uri string
	headers     [][2]string
	body        string
}

func (r request) raw() string {
	var b strings.Builder
	b.WriteString(r.method + " " + r.uri + " HTTP/1.1\r\n")
	hasHost := false
	for _, h := range r.headers {
		if strings.EqualFold(h[0], "Host") {
			hasHost = true
		}
	}
	if !hasHost {
		b.WriteString("Host: play.edge.test\r\n")
	}
	for _, h := range r.headers {
		b.WriteString(h[0] + ": " + h[1] + "\r\n")
	}
	if r.body != "" {
		b.WriteString("Content-Length: " + strconv.Itoa(len(r.body)) + "\r\n")
	}
	b.WriteString("\r\n")
	b.WriteString(r.body)
	return b.String()
}

func (r request) ctx(t testing.TB) *fasthttp.RequestCtx {
	t.Helper()
	// The header goes through fasthttp's parser; the body is set as is, since
	// Request.Read would already reject a malformed multipart body.
	var req fasthttp.Request
	if err := req.Header.Read(bufio.NewReader(strings.NewReader(r.raw()))); err != nil {
		t.Fatalf("parsing %q: %v", r.raw(), err)
	}
	if r.body != "" {
		req.SetBodyString(r.body)
	}
	ctx := &fasthttp.RequestCtx{}
	ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}, nil)
	return ctx
}

func ids(ms []Match) []int {
	out := make([]int, 0, len(ms))
	for _, m := range ms {
		out = append(out, m.ID)
	}
	return out
}

func hasID(ms []Match, id int) bool { return slices.Contains(ids(ms), id) }

// hasIDIn reports whether any match lies in [lo, hi].
func hasIDIn(ms []Match, lo, hi int) bool {
	for _, m := range ms {
		if m.ID >= lo && m.ID <= hi {
			return true
		}
	}
	return false
}

// Fixed inputs shared by tests and benchmarks.

const jwt = "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImVkZ2UtMjAyNi0wMSJ9." +
	"eyJzdWIiOiJwbGF5ZXItMTg0MjkiLCJpc3MiOiJodHRwczovL2F1dGgucGxheS5lZGdlLnRlc3QiLCJhdWQiOiJoZWRnZSIsImV4cCI6MTc4MDAwMDAwMCwiaWF0IjoxNzc5OTk2NDAwLCJkb20iOiJzZWEifQ." +
	"MEUCIQDx4tq8n0lKZ3cW9m2bq1H4sPz7xYv0c5JgNnA6dE2rVwIgQ8sV1k3yqXh0Zt7pLm2aBcDeFgHiJkLmNoPqRsTuVw"

// browserGET is an ordinary browser's GET of the lobby, with the player's
// bearer token.
var browserGET = request{method: "GET", uri: "/api/lobby/tables?category=baccarat&limit=20&sort=popular",
	headers: append(slices.Clone(waftest.BrowserHeaders), [2]string{"Authorization", "Bearer " + jwt})}

// betJSON is a 1 KB bet as a client sends it; betReduced is what the schema
// layer leaves for the rule engine: the free-text fields only.
var betJSON = waftest.Bet

var betReduced = `{"nickname":"Zoë the lucky one","message":"good luck everyone, 100% banker tonight!","promo_code":"SPRING-2026"}`

func betPOST(body string) request {
	return request{method: "POST", uri: "/api/bets", headers: [][2]string{
		{"Host", "play.edge.test"},
		{"User-Agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"},
		{"Accept", "application/json"},
		{"Content-Type", "application/json"},
		{"Authorization", "Bearer " + jwt},
		{"Idempotency-Key", "7f1c2a9e-demo-1"},
	}, body: body}
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }

func netipAddr(a net.Addr) (netip.Addr, bool) {
	if ta, ok := a.(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		return ap.Addr().Unmap(), true
	}
	return netip.Addr{}, false
}

// plainRun feeds ctx to plain Coraza the way Begin feeds hedge's engine,
// and returns the logged rule ids and the interruption.
func plainRun(waf coraza.WAF, ctx *fasthttp.RequestCtx) ([]int, *types.Interruption) {
	tx := waf.NewTransaction()
	defer tx.Close()
	tx.ProcessConnection(client.String(), 0, "127.0.0.1", 0)
	h := &ctx.Request.Header
	tx.ProcessURI(string(h.RequestURI()), string(h.Method()), string(h.Protocol()))
	for k, v := range h.AllInOrder() {
		tx.AddRequestHeader(string(k), string(v))
	}
	it := tx.ProcessRequestHeaders()
	if it == nil {
		if body := ctx.Request.Body(); len(body) > 0 {
			it, _, _ = tx.WriteRequestBody(body)
		}
		if it == nil {
			it, _ = tx.ProcessRequestBody()
		}
	}
	tx.ProcessLogging()
	var ids []int
	for _, mr := range tx.MatchedRules() {
		if l, ok := mr.(logged); ok && !l.Log() {
			continue
		}
		ids = append(ids, mr.Rule().ID())
	}
	return ids, it
}
