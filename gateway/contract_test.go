package gateway

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"hedge/internal/httpx"
)

// contractConfig: a ledger route whose writer, a cashier route whose rail
// and a plain proxy route whose pool are all recorders, so a test sees
// exactly what the edge sent upstream.
const contractConfig = testHead + testJWT + `routes:
` + betsRoute + `    money: {timeout: 2s}
` + balanceRoute + `    upstream_headers: {allow: [Accept-Language]}
` + cashierRoute + `  - name: games
    match: {path_prefix: /games/}
    pool: games
  - name: lobby
    match: {path_prefix: /lobby/}
    pool: games
    upstream_headers: {strip: [X-Tenant-*]}
` + seaNode + `    pools:
      - name: cashier
        members: [{name: rail, url: "http://{{RAIL}}"}]
        health: {interval: 1s, timeout: 500ms}
      - name: games
        members: [{name: g, url: "http://{{GAMES}}"}]
        health: {interval: 1s, timeout: 500ms}
    writers:
      - {domain: sea, url: "http://{{WRITER}}", epoch: 3}
`

type contractFixture struct {
	edge                *testEdge
	writer, rail, games *upstreamRecorder
}

func newContractFixture(t testing.TB) *contractFixture {
	f := &contractFixture{writer: newUpstream(t, "writer"), rail: newUpstream(t, "rail"), games: newUpstream(t, "games")}
	f.edge = startEdgeNode(t, contractConfig, "sea", "sea-1", "{{WRITER}}", f.writer.addr(), "{{RAIL}}", f.rail.addr(), "{{GAMES}}", f.games.addr())
	return f
}

// hostileHeaders are what a player who read the README might add to a
// money call, hoping the writer believes one of them.
var hostileHeaders = []string{
	"Ledger-Account", "victim-1",
	"Ledger-Domain", "eu",
	"Ledger-Epoch", "99",
	"X-Hedge-Principal", "victim-2",
	"Hedge-Principal", "victim-3",
	"X-Real-IP", "10.1.2.3",
	"X-Forwarded-Host", "admin.internal",
	"X-HTTP-Method-Override", "DELETE",
	"X-Account", "victim-4",
	"Cookie", "session=victim",
	"User-Agent", "hostile/1.0",
	"Accept-Language", "de",
	"Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	"Tracestate", "vendor=1",
}

// moneyAllowlist is every header a writer or rail may see from the edge
// on a money route (net/http's canonical spelling); User-Agent is the
// edge's own ("hedge").
var moneyAllowlist = []string{
	"Host", "Content-Type", "Content-Length", "Idempotency-Key", "X-Request-Id", "Traceparent", "Tracestate",
	"X-Forwarded-For", "X-Forwarded-Proto", "Forwarded", "X-Hedge-Principal", "Ledger-Domain", "Ledger-Epoch",
	"User-Agent",
}

// sentHeaderNames lists the names of r's header, Host included.
func sentHeaderNames(r *http.Request) []string {
	names := []string{"Host"}
	for k := range r.Header {
		names = append(names, k)
	}
	if r.ContentLength >= 0 && r.Header.Get("Content-Length") == "" && r.Method != http.MethodGet {
		names = append(names, "Content-Length") // net/http moves it out of the map
	}
	slices.Sort(names)
	return names
}

// TestMoneyRouteSendsOnlyTheContract: whatever a player adds, the writer of
// a ledger route and the rail of a cashier route receive the allowlist
// only, with the identity the edge established: the token's subject, the
// domain and epoch of the designation, and the key in its one spelling.
func TestMoneyRouteSendsOnlyTheContract(t *testing.T) {
	f := newContractFixture(t)
	tok := token(t, "player-1", "")
	for _, tc := range []struct {
		route, path string
		up          *upstreamRecorder
		ledger      bool
	}{
		{"bets", "/api/bets", f.writer, true},
		{"cashier", "/cashier/deposit", f.rail, false},
	} {
		t.Run(tc.route, func(t *testing.T) {
			hdr := append([]string{"Authorization", "Bearer " + tok, "Content-Type", "application/json",
				"Idempotency-Key", `  "k-` + tc.route + `" `}, hostileHeaders...)
			resp, body := do(t, "POST", f.edge.url+tc.path+"?account=victim-1", "", bet, hdr...)
			if resp.StatusCode != 200 {
				t.Fatalf("want 200 from the upstream, got %d %s", resp.StatusCode, body)
			}
			got := tc.up.last()
			for _, name := range sentHeaderNames(got) {
				if !slices.Contains(moneyAllowlist, name) {
					t.Errorf("the upstream received %s: %q", name, got.Header.Values(name))
				}
			}
			want := map[string]string{
				"Idempotency-Key":   `"k-` + tc.route + `"`,
				"X-Hedge-Principal": "player-1",
				"Content-Type":      "application/json",
				"Traceparent":       "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
				"Tracestate":        "vendor=1",
				"X-Forwarded-For":   "127.0.0.1",
				"X-Request-Id":      resp.Header.Get("X-Request-Id"),
				"User-Agent":        "hedge",
			}
			if tc.ledger {
				want["Ledger-Domain"], want["Ledger-Epoch"] = "sea", "3"
			}
			for name, v := range want {
				if vs := got.Header.Values(name); len(vs) != 1 || vs[0] != v {
					t.Errorf("%s: want exactly %q, got %q", name, v, vs)
				}
			}
			if got.Method != "POST" || got.URL.RawQuery != "account=victim-1" {
				t.Errorf("method and query: want POST account=victim-1 (the query is the client's data), got %s %q", got.Method, got.URL.RawQuery)
			}
			if b, _ := io.ReadAll(got.Body); string(b) != bet {
				t.Errorf("body: want the client's, got %q", b)
			}
		})
	}
	// A route's allow list adds client headers, never the edge's own.
	resp, body := do(t, "GET", f.edge.url+"/api/wallet/balance", "", "", append([]string{"Authorization", "Bearer " + tok}, hostileHeaders...)...)
	if resp.StatusCode != 200 {
		t.Fatalf("balance: want 200, got %d %s", resp.StatusCode, body)
	}
	got := f.writer.last()
	if got.Header.Get("Accept-Language") != "de" || got.Header.Get("Idempotency-Key") != "" || got.Header.Get("User-Agent") != "hedge" {
		t.Errorf("balance read: want Accept-Language (allowed), no key and the edge's own User-Agent, got %v", got.Header)
	}
	if vs := got.Header.Values("X-Hedge-Principal"); len(vs) != 1 || vs[0] != "player-1" {
		t.Errorf("balance read: principal %q", vs)
	}
}

// TestProxyRouteStripsWhatTheEdgeAsserts: a plain proxy route forwards the
// client's headers except the edge's namespaces and the strip list (by
// default the headers that name a client address, host or method).
func TestProxyRouteStripsWhatTheEdgeAsserts(t *testing.T) {
	f := newContractFixture(t)
	hdr := append([]string{"X-Custom", "kept", "X-Tenant-Id", "t1"}, hostileHeaders...)
	resp, _ := do(t, "GET", f.edge.url+"/games/a", "", "", hdr...)
	if resp.StatusCode != 200 {
		t.Fatalf("games: want 200, got %d", resp.StatusCode)
	}
	got := f.games.last()
	for _, name := range []string{"Ledger-Account", "Ledger-Domain", "Ledger-Epoch", "X-Hedge-Principal", "Hedge-Principal",
		"X-Real-Ip", "X-Forwarded-Host", "X-Http-Method-Override"} {
		if v := got.Header.Values(name); len(v) > 0 {
			t.Errorf("default strip list: %s reached the upstream: %q", name, v)
		}
	}
	for name, v := range map[string]string{"X-Custom": "kept", "X-Tenant-Id": "t1", "X-Account": "victim-4", "Cookie": "session=victim"} {
		if got.Header.Get(name) != v {
			t.Errorf("%s: want %q passed through, got %q", name, v, got.Header.Get(name))
		}
	}
	// A route's own strip list replaces the default one; the edge's
	// namespaces are stripped whatever it says.
	do(t, "GET", f.edge.url+"/lobby/a", "", "", hdr...)
	got = f.games.last()
	if got.Header.Get("X-Tenant-Id") != "" || got.Header.Get("X-Real-Ip") != "10.1.2.3" || got.Header.Get("X-Hedge-Principal") != "" || got.Header.Get("Ledger-Account") != "" {
		t.Errorf("route strip list [X-Tenant-*]: got %v", got.Header)
	}
}

// TestOneKeyOneSpelling: the key reaches the writer in one spelling
// whatever form the client used, so retries through any edge deduplicate at
// the writer too; two key headers are refused before anything is sent.
func TestOneKeyOneSpelling(t *testing.T) {
	f := newContractFixture(t)
	tok := token(t, "player-1", "")
	send := func(keys ...string) (*http.Response, string) {
		req, _ := http.NewRequest("POST", f.edge.url+"/api/bets", strings.NewReader(bet))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		for _, k := range keys {
			req.Header.Add("Idempotency-Key", k)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	for i, spelling := range []string{`k-1`, `"k-1"`, ` "k-1"`, "k-1\t"} {
		resp, body := send(spelling)
		if resp.StatusCode != 200 {
			t.Fatalf("spelling %q: want 200, got %d %s", spelling, resp.StatusCode, body)
		}
		if i > 0 && resp.Header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("spelling %q: the edge must treat it as the same key and replay", spelling)
		}
	}
	if n := f.writer.hits.Load(); n != 1 {
		t.Fatalf("one key in four spellings: want the writer reached once, got %d", n)
	}
	if k := f.writer.last().Header.Values("Idempotency-Key"); len(k) != 1 || k[0] != `"k-1"` {
		t.Fatalf("writer saw Idempotency-Key %q, want exactly [\"\\\"k-1\\\"\"]", k)
	}
	// An escaped key keeps its escapes on the way out.
	if resp, body := send(`"a\"b\\c"`); resp.StatusCode != 200 || f.writer.last().Header.Get("Idempotency-Key") != `"a\"b\\c"` {
		t.Fatalf("escaped key: got %d %s, writer saw %q", resp.StatusCode, body, f.writer.last().Header.Get("Idempotency-Key"))
	}
	before := f.writer.hits.Load()
	resp, body := send("k-2", "k-3")
	wantProblem(t, resp, body, 400, "idempotency-key-malformed")
	resp, body = send("k-2, k-3")
	wantProblem(t, resp, body, 400, "idempotency-key-malformed")
	if n := f.writer.hits.Load() - before; n != 0 {
		t.Fatalf("two keys: want nothing sent, the writer was reached %d times", n)
	}
}

// TestConnectionCannotRemoveWhatTheEdgeReliesOn: a Connection header that
// names Idempotency-Key (or another header the edge relies on) is refused
// with 400 and the connection closed, on every route, before any upstream
// is reached; harmless Connection tokens still work.
func TestConnectionCannotRemoveWhatTheEdgeReliesOn(t *testing.T) {
	f := newContractFixture(t)
	tok := token(t, "player-1", "")
	addr := strings.TrimPrefix(f.edge.url, "http://")
	for _, conn := range []string{"Idempotency-Key", "close, Idempotency-Key", "keep-alive, authorization",
		"Content-Type", "X-Hedge-Principal", "Ledger-Epoch", "X-Request-Id", "traceparent", "Forwarded"} {
		t.Run(conn, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			first := "POST /cashier/deposit HTTP/1.1\r\nHost: play.edge.test\r\nAuthorization: Bearer " + tok +
				"\r\nIdempotency-Key: dep-1\r\nContent-Type: application/json\r\nConnection: " + conn +
				"\r\nContent-Length: " + itoa(len(bet)) + "\r\n\r\n" + bet
			second := "GET /games/pipelined HTTP/1.1\r\nHost: play.edge.test\r\n\r\n"
			io.WriteString(c, first+second)
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			wantProblem(t, resp, string(b), 400, "connection-names-protected-header")
			if !resp.Close {
				t.Error("the 400 does not close the connection")
			}
			if _, err := http.ReadResponse(br, nil); err == nil {
				t.Error("the pipelined request behind the refused one was served")
			}
		})
	}
	if n := f.rail.hits.Load() + f.games.hits.Load(); n != 0 {
		t.Fatalf("refused requests reached upstreams %d times", n)
	}
	resp, body := do(t, "GET", f.edge.url+"/games/a", "", "", "Connection", "keep-alive, X-Hop", "X-Hop", "1")
	if resp.StatusCode != 200 || f.games.last().Header.Get("X-Hop") != "" {
		t.Fatalf("a harmless Connection token: want 200 with X-Hop removed, got %d %s (upstream saw X-Hop %q)", resp.StatusCode, body, f.games.last().Header.Get("X-Hop"))
	}
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

// FuzzMoneyRouteHeaders throws header sets at a ledger route and checks
// that nothing but the allowlist reaches the recording writer, with the
// identity the edge asserts (never the client's), and the key, when one
// was sent, exactly once in its one spelling.
func FuzzMoneyRouteHeaders(f *testing.F) {
	for _, seed := range []string{
		"Ledger-Account: victim\nX-Hedge-Principal: victim",
		"Idempotency-Key: \"k\"\nIdempotency-Key: k",
		"Connection: Idempotency-Key",
		"Connection: close, X-Hedge-Principal\nX-Hedge-Principal: victim",
		"Hedge-Foo: 1\nledger-epoch: 0\nLEDGER-DOMAIN: eu",
		"Transfer-Encoding: chunked",
		"Traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\nTracestate: a=b",
		"X-Forwarded-For: 10.0.0.1\nForwarded: for=10.0.0.1\nX-Real-IP: 10.0.0.2",
	} {
		f.Add(seed, "k-seed")
	}
	fx := newContractFixture(f)
	tok := token(f, "player-1", "")
	client := &http.Client{Timeout: 5 * time.Second}
	f.Fuzz(func(t *testing.T, headers, key string) {
		req, err := http.NewRequest("POST", fx.edge.url+"/api/bets", strings.NewReader(bet))
		if err != nil {
			t.Skip()
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", key)
		for _, line := range strings.Split(headers, "\n") {
			name, value, ok := strings.Cut(line, ":")
			if !ok || strings.EqualFold(strings.TrimSpace(name), "Authorization") || strings.EqualFold(strings.TrimSpace(name), "Content-Length") {
				continue
			}
			req.Header.Add(strings.TrimSpace(name), strings.TrimSpace(value))
		}
		before := fx.writer.hits.Load()
		resp, err := client.Do(req)
		if err != nil {
			return // net/http refused to send it (invalid field), or the edge closed
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if fx.writer.hits.Load() == before {
			return // refused at the edge: nothing reached the writer
		}
		got := fx.writer.last()
		for _, name := range sentHeaderNames(got) {
			if !slices.Contains(moneyAllowlist, name) {
				t.Fatalf("the writer received %s: %q (request headers %q)", name, got.Header.Values(name), headers)
			}
		}
		for name, v := range map[string]string{"X-Hedge-Principal": "player-1", "Ledger-Domain": "sea", "Ledger-Epoch": "3", "User-Agent": "hedge"} {
			if vs := got.Header.Values(name); len(vs) != 1 || vs[0] != v {
				t.Fatalf("%s: want exactly %q, got %q (request headers %q)", name, v, vs, headers)
			}
		}
		ks := got.Header.Values("Idempotency-Key")
		if len(ks) != 1 {
			t.Fatalf("Idempotency-Key: want exactly one, got %q", ks)
		}
		sent, err := httpx.ParseIdempotencyKey(nil, []byte(strings.TrimSpace(req.Header.Get("Idempotency-Key"))))
		if err != nil || string(httpx.AppendIdempotencyKey(nil, sent)) != ks[0] {
			t.Fatalf("Idempotency-Key: the client sent %q, the writer got %q", req.Header.Values("Idempotency-Key"), ks[0])
		}
	})
}
