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

	"github.com/valyala/fasthttp"
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

var browserGET = request{method: "GET", uri: "/api/lobby/tables?category=baccarat&limit=20&sort=popular", headers: [][2]string{
	{"Host", "play.edge.test"},
	{"User-Agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"},
	{"Accept", "application/json, text/plain, */*"},
	{"Accept-Language", "en-GB,en;q=0.9,de;q=0.8"},
	{"Accept-Encoding", "gzip, deflate, br, zstd"},
	{"Referer", "https://play.edge.test/lobby"},
	{"Cookie", "sid=6f1c2a9e4b7d4e0f9a3c8b1d2e5f7a90; consent=analytics%3Dfalse%26ads%3Dfalse; theme=dark; _lang=en-GB"},
	{"Authorization", "Bearer " + jwt},
	{"sec-ch-ua", `"Chromium";v="124", "Google Chrome";v="124", "Not-A.Brand";v="99"`},
	{"sec-ch-ua-mobile", "?0"},
	{"sec-ch-ua-platform", `"Windows"`},
	{"Sec-Fetch-Site", "same-origin"},
	{"Sec-Fetch-Mode", "cors"},
	{"Sec-Fetch-Dest", "empty"},
}}

// betJSON is a 1 KB bet as a client sends it; betReduced is what the schema
// layer leaves for the rule engine: the free-text fields only.
var betJSON = `{"table":"bacc-07","round":"3f2b8c1e-7d4a-4c55-9b0e-2a6f1d9c8e47","amount":"12.50","currency":"EUR",` +
	`"selection":"banker","odds":"0.95","side_bets":[{"type":"pair_player","amount":"2.00"},{"type":"pair_banker","amount":"2.00"},` +
	`{"type":"tie","amount":"1.00"}],"client":{"device":"desktop","os":"Windows 10","browser":"Chrome 124","app_version":"5.12.3",` +
	`"locale":"en-GB","timezone":"Europe/London","screen":"1920x1080","connection":"wifi"},"session":{"id":"6f1c2a9e4b7d4e0f9a3c8b1d2e5f7a90",` +
	`"started_at":"2026-05-01T18:22:41Z","table_joined_at":"2026-05-01T18:40:03Z","stream":"webrtc","latency_ms":412},` +
	`"limits":{"min":"1.00","max":"5000.00","currency":"EUR"},"nickname":"Zoë the lucky one","message":"good luck everyone, 100% banker tonight!",` +
	`"promo_code":"SPRING-2026","chips":[{"value":"5.00","count":2},{"value":"2.50","count":1}],"auto_rebet":false,"confirm":true,` +
	`"placed_at":"2026-05-01T18:41:27.512Z","sequence":1842,"dealer":"anna-k","shoe":"shoe-2026-05-01-07","hand":37,` +
	`"idempotency_key":"7f1c2a9e-demo-1","geo":{"country":"GB","region":"ENG"},"responsible_gaming":{"session_limit_ms":7200000,"reality_check":true}}`

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
