package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/playlist"

	"hedge/internal/testkit"
	"hedge/stream/streamtest"
)

// h2Config is one node with a TLS listener (HTTP/2 by default) in front of
// a proxy route, a money route and a stream route, with the protective
// layer in block mode; studios publish on a plain listener of their own.
const h2Config = `
data_dir: {{DATA}}
waf: {mode: block, paranoia_level: 1}
log: {level: debug, access: {enabled: true, path: {{DATA}}/access.log, flush_interval: 20ms}}
admin: {allow_loopback: true}
lifecycle: {drain_period: 10ms, shutdown_timeout: 5s}
` + testJWT + `routes:
  - name: bets
    kind: ledger
    match: {path_prefix: /api/bets, methods: [POST]}
    rewrite: /bets
    money: {timeout: 2s}
  - name: games
    match: {path_prefix: /games/}
    pool: games
  - name: live
    kind: stream
    match: {path_prefix: /live/}
    max_body_bytes: 64KiB
streams:
  studios: [{name: studio-a, token: studio-a-token, streams: ["bacc-*"]}]
  ice: {udp_port: {{UDP}}}
  relay: false
` + seaListener + `            tls: {mode: internal, names: [play.edge.test]}
            limits: {{LIMITS}}
            http2: {{H2}}
            http3: {{H3}}
          - name: studio
            address: {{PLAIN}}
            tls: {mode: off}
        admin: {address: {{ADMIN}}}
    pools:
      - name: games
        members: [{name: g1, url: "http://{{G1}}"}]
        health: {interval: 1s, timeout: 1s, rise: 1, fall: 10}
    writers:
      - {domain: sea, url: "http://{{WRITER}}", epoch: 3}
`

type h2Edge struct {
	*testEdge
	addr   string // the TLS listener
	plain  string // http://addr of the studios' listener
	roots  *x509.CertPool
	games  *upstreamRecorder
	writer *upstreamRecorder
}

// startH2Edge runs h2Config with the listener's limits and http2 settings
// ("{}" for the defaults).
func startH2Edge(t testing.TB, limits, h2 string) *h2Edge {
	t.Helper()
	return startH23Edge(t, limits, h2, "{}")
}

// startH23Edge is startH2Edge with the listener's http3 settings too.
func startH23Edge(t testing.TB, limits, h2, h3 string) *h2Edge {
	t.Helper()
	games, writer := newUpstream(t, "games"), newUpstream(t, "writer")
	plain := testkit.FreeAddr(t)
	e := startEdge(t, h2Config, "{{G1}}", games.addr(), "{{WRITER}}", writer.addr(), "{{LIMITS}}", limits, "{{H2}}", h2, "{{H3}}", h3,
		"{{PLAIN}}", plain, "{{UDP}}", testkit.FreeUDPPort(t))
	return &h2Edge{testEdge: e, addr: strings.TrimPrefix(e.url, "http://"), plain: "http://" + plain, roots: e.rootCAs(t), games: games, writer: writer}
}

// clientTLS is a client configuration that trusts the edge, offering protos.
func (e *h2Edge) clientTLS(protos ...string) *tls.Config {
	return &tls.Config{RootCAs: e.roots, ServerName: "play.edge.test", NextProtos: protos}
}

// client is an HTTP client that speaks proto ("1.1", "2" or "3") to the
// edge, dialling its address whatever the URL's host.
func (e *h2Edge) client(t testing.TB, proto string) *http.Client {
	t.Helper()
	if proto == "3" {
		return e.h3Client(t)
	}
	var protos http.Protocols
	tlsConf := e.clientTLS("http/1.1")
	if proto == "2" {
		protos.SetHTTP2(true)
		tlsConf = e.clientTLS("h2")
	} else {
		protos.SetHTTP1(true)
	}
	tr := &http.Transport{TLSClientConfig: tlsConf, Protocols: &protos, ForceAttemptHTTP2: proto == "2",
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, e.addr)
		}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// reply is what the table compares between protocols.
type reply struct {
	status      int
	problem     string // the problem's type, "" when the answer is not one
	contentType string
	body        string
	header      http.Header
	proto       int
}

func send(t testing.TB, c *http.Client, method, url, body string, hdr ...string) reply {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body == "" {
		req.Body, req.ContentLength = nil, 0
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	a := reply{status: resp.StatusCode, contentType: resp.Header.Get("Content-Type"), body: string(b), header: resp.Header, proto: resp.ProtoMajor}
	if a.contentType == "application/problem+json" {
		var p struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(b, &p); err != nil {
			t.Fatalf("%s %s: a problem that is not JSON: %s", method, url, b)
		}
		a.problem = p.Type
	}
	return a
}

// The same requests over HTTP/1.1, HTTP/2 and HTTP/3 against one node get the same
// answers: status, problem type, content type and body. Every route kind
// and every layer that answers is in the table, so a second implementation
// of any of them, or an adapter that loses a header, a body or a status,
// shows as a difference.
func TestSameAnswersOverHTTP1AndHTTP2(t *testing.T) {
	e := startH23Edge(t, "{}", "{}", "{enabled: true}")
	// A studio publishes over plain HTTP/1.1; players read over TLS.
	streamtest.PublishSample(t, streamtest.DefaultAPI(t), e.plain+"/live/bacc-07/whip", "studio-a-token",
		streamtest.Frames(t, "../stream/hls/testdata/sample.h264"), 0)
	waitLLHLS(t, e.plain+"/live/bacc-07/hls/", 20*time.Second)
	media := mediaPlaylistName(t, e.plain+"/live/bacc-07/hls/index.m3u8")
	bet := `{"table":"bacc-07","amount":"12.50","currency":"EUR","selection":"banker"}`
	auth := "Bearer " + token(t, "player-1", "sea")
	base := "https://play.edge.test"

	type step struct {
		name, method, path, body string
		hdr                      []string
		status                   int
		problem                  string // slug
		sameBody                 bool   // bodies are equal across protocols (no ids, no SDP)
		// mask, when set, rewrites what may differ between two requests of
		// one protocol before bodies are compared.
		mask  func(string) string
		check func(t *testing.T, a reply)
	}
	steps := []step{
		{name: "proxy route", method: "GET", path: "/games/lobby?x=1", status: 200, sameBody: true},
		{name: "proxy route with a body", method: "POST", path: "/games/chat", body: `{"msg":"hi"}`, hdr: []string{"Content-Type", "application/json"}, status: 200, sameBody: true},
		{name: "no route: 404 problem", method: "GET", path: "/nope", status: 404, problem: "no-route"},
		{name: "method not allowed", method: "GET", path: "/api/bets", status: 405, problem: "method-not-allowed"},
		{name: "CRS refuses an injection", method: "GET", path: "/games/lobby?id=1%27%20OR%201=1--", status: 403, problem: "request-blocked"},
		{name: "money: no token", method: "POST", path: "/api/bets", body: bet, hdr: []string{"Content-Type", "application/json", "Idempotency-Key", "KEY-a"}, status: 401, problem: "invalid-token"},
		{name: "money: no key", method: "POST", path: "/api/bets", body: bet, hdr: []string{"Authorization", auth, "Content-Type", "application/json"}, status: 400, problem: "idempotency-key-missing"},
		{name: "money: a bet", method: "POST", path: "/api/bets", body: bet, hdr: []string{"Authorization", auth, "Content-Type", "application/json", "Idempotency-Key", "KEY-b"}, status: 200, sameBody: true,
			check: func(t *testing.T, a reply) {
				if a.header.Get("Idempotent-Replayed") != "" {
					t.Errorf("first bet: want no Idempotent-Replayed, got %q", a.header.Get("Idempotent-Replayed"))
				}
			}},
		{name: "money: the bet again is replayed", method: "POST", path: "/api/bets", body: bet, hdr: []string{"Authorization", auth, "Content-Type", "application/json", "Idempotency-Key", "KEY-b"}, status: 200, sameBody: true,
			check: func(t *testing.T, a reply) {
				if a.header.Get("Idempotent-Replayed") != "true" {
					t.Errorf("replay: want Idempotent-Replayed: true, got %q", a.header.Get("Idempotent-Replayed"))
				}
			}},
		{name: "money: the key with another bet", method: "POST", path: "/api/bets", body: strings.Replace(bet, "12.50", "99.00", 1), hdr: []string{"Authorization", auth, "Content-Type", "application/json", "Idempotency-Key", "KEY-b"}, status: 422, problem: "idempotency-key-reused"},
		{name: "body over the route's limit", method: "POST", path: "/live/bacc-07/whep", body: strings.Repeat("v", 70<<10), hdr: []string{"Content-Type", "application/sdp"}, status: 413, problem: "body-too-large"},
		{name: "play.json", method: "GET", path: "/live/bacc-07/play.json", status: 200, sameBody: true},
		{name: "LL-HLS multivariant playlist", method: "GET", path: "/live/bacc-07/hls/index.m3u8", status: 200, sameBody: true,
			// The bandwidths are measured from the stream as it plays, so they
			// move between any two requests whatever the protocol.
			mask: func(b string) string { return bandwidthAttr.ReplaceAllString(b, "${1}BANDWIDTH=N") }},
		{name: "LL-HLS media playlist", method: "GET", path: "/live/bacc-07/hls/" + media, status: 200,
			check: func(t *testing.T, a reply) {
				if !strings.HasPrefix(a.body, "#EXTM3U") || !strings.Contains(a.body, "#EXT-X-PART:") || a.contentType != "application/vnd.apple.mpegurl" {
					t.Errorf("media playlist: want an LL-HLS playlist with parts, got %q %.200s", a.contentType, a.body)
				}
			}},
		{name: "the player page", method: "GET", path: "/live/bacc-07/", status: 200, sameBody: true},
		{name: "WHEP offer", method: "POST", path: "/live/bacc-07/whep", hdr: []string{"Content-Type", "application/sdp"}, status: 201,
			check: func(t *testing.T, a reply) {
				if a.contentType != "application/sdp" || !strings.HasPrefix(a.body, "v=0") || a.header.Get("Location") == "" {
					t.Errorf("WHEP: want an SDP answer and a Location, got %q %q %.100s", a.contentType, a.header.Get("Location"), a.body)
				}
			}},
	}
	whepOffer := func(t *testing.T) string {
		v := streamtest.NewViewer(t, streamtest.DefaultAPI(t))
		t.Cleanup(v.Close)
		return streamtest.Offer(t, v.PC)
	}
	protos := []string{"1.1", "2", "3"}
	got := map[string][3]reply{}
	for i, proto := range protos {
		c := e.client(t, proto)
		for _, s := range steps {
			body := s.body
			if s.name == "WHEP offer" {
				body = whepOffer(t)
			}
			hdr := s.hdr
			for j := 0; j+1 < len(hdr); j += 2 {
				if hdr[j] == "Idempotency-Key" {
					hdr = append(append([]string(nil), hdr[:j+1]...), append([]string{hdr[j+1] + "-" + proto}, hdr[j+2:]...)...)
				}
			}
			a := send(t, c, s.method, base+s.path, body, hdr...)
			if want := map[string]int{"1.1": 1, "2": 2, "3": 3}[proto]; a.proto != want {
				t.Fatalf("%s over %s: answered over HTTP/%d", s.name, proto, a.proto)
			}
			if a.status != s.status {
				t.Errorf("%s over HTTP/%s: want %d, got %d %.300s", s.name, proto, s.status, a.status, a.body)
			}
			if want := map[bool]string{true: "urn:hedge:problem:" + s.problem, false: ""}[s.problem != ""]; a.problem != want {
				t.Errorf("%s over HTTP/%s: want problem %q, got %q (%s)", s.name, proto, want, a.problem, a.body)
			}
			if s.check != nil {
				s.check(t, a)
			}
			pair := got[s.name]
			pair[i] = a
			got[s.name] = pair
		}
	}
	wantAltSvc := `h3=":` + e.addr[strings.LastIndexByte(e.addr, ':')+1:] + `"; ma=86400`
	for _, s := range steps {
		answers := got[s.name]
		h1 := answers[0]
		for i, h2 := range answers[1:] {
			p := protos[i+1]
			if h1.status != h2.status || h1.problem != h2.problem || h1.contentType != h2.contentType {
				t.Errorf("%s: HTTP/1.1 answered %d %q %q, HTTP/%s %d %q %q", s.name, h1.status, h1.problem, h1.contentType, p, h2.status, h2.problem, h2.contentType)
			}
			if s.sameBody && masked(s.mask, h1.body) != masked(s.mask, h2.body) {
				t.Errorf("%s: bodies differ:\nHTTP/1.1: %.300s\nHTTP/%s:   %.300s", s.name, h1.body, p, h2.body)
			}
			if h1.header.Get("X-Request-Id") == "" || h2.header.Get("X-Request-Id") == "" {
				t.Errorf("%s: want X-Request-Id over HTTP/1.1 and HTTP/%s, got %q and %q", s.name, p, h1.header.Get("X-Request-Id"), h2.header.Get("X-Request-Id"))
			}
			if (h1.header.Get("Strict-Transport-Security") == "") != (h2.header.Get("Strict-Transport-Security") == "") {
				t.Errorf("%s: Strict-Transport-Security %q over HTTP/1.1, %q over HTTP/%s", s.name, h1.header.Get("Strict-Transport-Security"), h2.header.Get("Strict-Transport-Security"), p)
			}
		}
		for i, a := range answers {
			// HTTP/3 is on: every TLS answer advertises it.
			if v := a.header.Get("Alt-Svc"); v != wantAltSvc {
				t.Errorf("%s over HTTP/%s: want Alt-Svc %q, got %q", s.name, protos[i], wantAltSvc, v)
			}
		}
	}
	// LL-HLS blocking playlist reload (the player asks for the next part,
	// and the answer waits for it) works over both.
	for _, proto := range protos {
		c := e.client(t, proto)
		a := send(t, c, "GET", base+"/live/bacc-07/hls/"+media, "")
		var pl playlist.Media
		if err := pl.Unmarshal([]byte(a.body)); err != nil {
			t.Fatalf("media playlist over HTTP/%s: %v", proto, err)
		}
		next := pl.MediaSequence + len(pl.Segments)
		began := time.Now()
		a = send(t, c, "GET", fmt.Sprintf("%s/live/bacc-07/hls/%s?_HLS_msn=%d&_HLS_part=0", base, media, next), "")
		var later playlist.Media
		if err := later.Unmarshal([]byte(a.body)); a.status != 200 || err != nil {
			t.Fatalf("blocking reload over HTTP/%s: want 200 and a playlist, got %d %v %.200s", proto, a.status, err, a.body)
		}
		if later.MediaSequence+len(later.Segments) <= next && len(later.Parts) == 0 {
			t.Errorf("blocking reload over HTTP/%s: want segment %d's first part, got a playlist up to %d without parts", proto, next, later.MediaSequence+len(later.Segments))
		}
		t.Logf("blocking reload over HTTP/%s answered after %v", proto, time.Since(began).Round(time.Millisecond))
	}
	// The writer saw each protocol's bet once.
	bets := 0
	e.writer.mu.Lock()
	for _, r := range e.writer.seen {
		if r.URL.Path == "/bets" {
			bets++
		}
	}
	e.writer.mu.Unlock()
	if bets != len(protos) {
		t.Errorf("writer: want one bet per protocol (%d), got %d", len(protos), bets)
	}
}

// mediaPlaylistName is the first variant's playlist named in the
// multivariant playlist at url.
func mediaPlaylistName(t testing.TB, url string) string {
	t.Helper()
	_, b := getOK(t, url)
	for line := range strings.SplitSeq(string(b), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			return line
		}
	}
	t.Fatalf("%s names no variant: %s", url, b)
	return ""
}

// BenchmarkH2Adapter runs BenchmarkServeParsed's browser GET as x/net hands
// it to the adapter (an http.Request and a ResponseWriter) through the
// same edge to the same upstream: its cost over BenchmarkServeParsed's is
// the adapter's (head written and parsed again, the answer copied into
// the ResponseWriter's header map). x/net's own per-stream work is not in
// it (h2load measures the whole).
func BenchmarkH2Adapter(b *testing.B) {
	el := benchEdgeListener(b)
	conn := benchConn{remote: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}}
	hc := &h2Conn{sniConn: &sniConn{Conn: tls.Server(conn, &tls.Config{})}, el: el, state: &h2State{maxHeader: 4 << 10}}
	hc.view.c = hc
	benchAdapter(b, hc, context.Background(), nil)
}

// benchAdapter serves a browser's GET through h (an adapter's handler) in
// a loop and reports CPU per request; ctx and tlsState are what the
// protocol's server would put on the request.
func benchAdapter(b *testing.B, h http.Handler, ctx context.Context, tlsState *tls.ConnectionState) {
	r := (&http.Request{Method: "GET", RequestURI: "/games/lobby?category=baccarat&limit=20", Host: "play.edge.test", Body: http.NoBody,
		TLS: tlsState,
		Header: http.Header{
			"User-Agent":      {"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"},
			"Accept":          {"application/json, text/plain, */*"},
			"Accept-Language": {"en-GB,en;q=0.9"},
			"Accept-Encoding": {"gzip, deflate, br"},
			"Referer":         {"https://play.edge.test/lobby"},
			"Cookie":          {"sid=6f1c2a9e4b7d4e0f9a3c8b1d2e5f7a90; theme=dark"},
		}}).WithContext(ctx)
	w := &benchResponse{h: http.Header{}}
	b.ReportAllocs()
	n, cpu := 0, cpuClock()
	for b.Loop() {
		n++
		clear(w.h)
		h.ServeHTTP(w, r)
		if w.status != 200 {
			b.Fatalf("want 200, got %d", w.status)
		}
	}
	reportCPU(b, cpu, n)
}

// benchResponse is a ResponseWriter that keeps nothing but the status.
type benchResponse struct {
	h      http.Header
	status int
}

func (w *benchResponse) Header() http.Header         { return w.h }
func (w *benchResponse) Write(p []byte) (int, error) { return len(p), nil }
func (w *benchResponse) WriteHeader(s int)           { w.status = s }

// bandwidthAttr is an EXT-X-STREAM-INF bandwidth attribute with its value.
var bandwidthAttr = regexp.MustCompile(`(AVERAGE-)?BANDWIDTH=[0-9]+`)

// masked is body rewritten by mask, or body when there is none.
func masked(mask func(string) string, body string) string {
	if mask == nil {
		return body
	}
	return mask(body)
}
