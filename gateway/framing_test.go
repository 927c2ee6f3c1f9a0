package gateway

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hedge/internal/testkit"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// framingConfig is baseConfig with the access log in a file, to check that
// refusals fasthttp reports (onError) are logged like any request.
var framingConfig = strings.Replace(baseConfig, "log: {level: debug, access: {enabled: false}}",
	"log: {level: debug, access: {enabled: true, path: {{DATA}}/access.log, flush_interval: 50ms}}", 1)

// pipelined sends first and second in one write on a fresh connection and
// returns the answers read until the edge closes the connection (or 5 s
// pass, which fails the test: the edge kept a connection open it must close,
// or never answered).
func pipelined(t *testing.T, addr, first, second string) (answers []*http.Response, bodies []string, closed bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c, first+second); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return answers, bodies, false
			}
			// EOF, or a reset: the edge closed the connection.
			return answers, bodies, true
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		answers = append(answers, resp)
		bodies = append(bodies, string(b))
	}
}

// seenPath reports whether an upstream received a request for path.
func (u *upstreamRecorder) seenPath(path string) bool { return u.request(path) != nil }

// request is the last request for path the upstream received, or nil.
func (u *upstreamRecorder) request(path string) *http.Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	for i := len(u.seen) - 1; i >= 0; i-- {
		if u.seen[i].URL.Path == path {
			return u.seen[i]
		}
	}
	return nil
}

// The edge refuses every request whose framing it cannot vouch for, before
// any route, with 400 problem+json and Connection: close, and closes the
// connection: a request pipelined behind it is never served (RFC 9112
// §6.1, §6.3). Each case names the rule it exercises.
func TestFramingRefusedAndConnectionClosed(t *testing.T) {
	f := &fixture{l1: newUpstream(t, "l1"), g1: newUpstream(t, "g1"), g2: newUpstream(t, "g2")}
	f.edge = startEdge(t, framingConfig, "{{L1}}", f.l1.addr(), "{{G1}}", f.g1.addr(), "{{G2}}", f.g2.addr())
	addr := strings.TrimPrefix(f.edge.url, "http://")
	post := func(headers, body string) string {
		return "POST /games/a HTTP/1.1\r\nHost: play.edge.test\r\n" + headers + "\r\n" + body
	}
	cases := []struct {
		name   string
		first  string
		status int
		slugs  []string // the problem types accepted
		rule   string   // the framing rule counted, when the edge names one
	}{
		{"RFC 9112 §6.1: CL with TE chunked and an empty chunked body",
			post("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"), 400, []string{"bad-framing"}, "cl-te"},
		{"RFC 9112 §6.1: CL with TE chunked and a chunk",
			post("Content-Length: 4\r\nTransfer-Encoding: chunked\r\n", "2\r\n{}\r\n0\r\n\r\n"), 400, []string{"bad-framing"}, "cl-te"},
		{"RFC 9112 §6.1: TE chunked before CL",
			post("Transfer-Encoding: chunked\r\nContent-Length: 0\r\n", "0\r\n\r\n"), 400, []string{"bad-framing"}, "cl-te"},
		{"RFC 9112 §6.1: TE identity beside CL",
			post("Transfer-Encoding: identity\r\nContent-Length: 2\r\n", "{}"), 400, []string{"bad-framing"}, "te-coding"},
		{"RFC 9112 §6.1: TE with chunked not the only coding",
			post("Transfer-Encoding: gzip, chunked\r\n", "0\r\n\r\n"), 400, []string{"bad-framing"}, "te-coding"},
		{"RFC 9112 §6.1: TE with an unknown coding",
			post("Transfer-Encoding: xchunked\r\n", "0\r\n\r\n"), 400, []string{"bad-framing"}, "te-coding"},
		{"RFC 9112 §6.1: two TE fields",
			post("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"), 400, []string{"bad-framing"}, "te-coding"},
		{"RFC 9112 §6.1: TE on HTTP/1.0",
			"POST /games/a HTTP/1.0\r\nHost: play.edge.test\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, []string{"bad-framing"}, "te-http10"},
		{"RFC 9112 §6.3: two equal CL fields",
			post("Content-Length: 2\r\nContent-Length: 2\r\n", "{}"), 400, []string{"bad-framing"}, "cl-invalid"},
		{"RFC 9112 §6.3: two different CL fields",
			post("Content-Length: 2\r\nContent-Length: 0\r\n", "{}"), 400, []string{"bad-framing"}, "cl-invalid"},
		{"RFC 9112 §6.3: a comma-listed CL",
			post("Content-Length: 2, 2\r\n", "{}"), 400, []string{"bad-framing"}, "cl-invalid"},
		{"RFC 9112 §6.3: a malformed CL",
			post("Content-Length: zz\r\n", ""), 400, []string{"bad-framing"}, "cl-invalid"},
		{"RFC 9112 §5.2: obs-fold of TE",
			post("Transfer-Encoding:\r\n chunked\r\n", "0\r\n\r\n"), 400, []string{"bad-framing"}, "obs-fold"},
		{"RFC 9112 §5.1: whitespace before the colon",
			post("Transfer-Encoding : chunked\r\n", "0\r\n\r\n"), 400, []string{"bad-request", "bad-framing"}, ""},
		{"RFC 9112 §5.1: whitespace inside a field name",
			post("Content Length: 2\r\n", "{}"), 400, []string{"bad-framing"}, "field-name"},
		{"RFC 9112 §7.1: a chunk size that is not hex",
			post("Transfer-Encoding: chunked\r\n", "zz\r\n{}\r\n0\r\n\r\n"), 400, []string{"bad-framing"}, "chunk"},
		{"RFC 9112 §7.1: a chunk without its CRLF",
			post("Transfer-Encoding: chunked\r\n", "2\r\n{}XX0\r\n\r\n"), 400, []string{"bad-framing"}, "chunk"},
		{"RFC 9112 §3: a malformed request line",
			"GET /games/a HTTP/1.1 extra\r\nHost: play.edge.test\r\n\r\n", 400, []string{"bad-request"}, ""},
		{"RFC 9112 §2.3: an HTTP version the edge does not speak",
			"GET /games/a HTTP/1.2\r\nHost: play.edge.test\r\n\r\n", 505, []string{"http-version-not-supported"}, ""},
		{"RFC 6585 §5: headers over the listener's limit",
			"GET /games/a HTTP/1.1\r\nHost: play.edge.test\r\nX-Big: " + strings.Repeat("a", 8192) + "\r\n\r\n", 431, []string{"headers-too-large"}, ""},
		{"RFC 9110 §15.5.14: a body over the listener's limit",
			post("Content-Length: 5000000\r\n", ""), 413, []string{"body-too-large"}, ""},
	}
	var ids []string
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// Each case smuggles its own path, so a leak is pinned to it.
			behind := fmt.Sprintf("/games/smuggled-%d", i)
			answers, bodies, closed := pipelined(t, addr, c.first, "GET "+behind+" HTTP/1.1\r\nHost: play.edge.test\r\n\r\n")
			if len(answers) == 0 {
				t.Fatalf("no answer at all (connection closed: %v)", closed)
			}
			resp, body := answers[0], bodies[0]
			var p struct {
				Type      string `json:"type"`
				RequestID string `json:"request_id"`
			}
			_ = json.Unmarshal([]byte(body), &p)
			slug := strings.TrimPrefix(p.Type, "urn:hedge:problem:")
			if resp.StatusCode != c.status || resp.Header.Get("Content-Type") != "application/problem+json" || !slices.Contains(c.slugs, slug) {
				t.Fatalf("want %d problem+json of type %v, got %d %q %s", c.status, c.slugs, resp.StatusCode, resp.Header.Get("Content-Type"), body)
			}
			if !resp.Close {
				t.Errorf("want Connection: close on the refusal, got header %q", resp.Header.Get("Connection"))
			}
			if len(answers) > 1 {
				t.Fatalf("the request pipelined behind the refused one was answered: %d %s", answers[1].StatusCode, bodies[1])
			}
			if !closed {
				t.Fatal("the edge kept the connection open after the refusal (no EOF within 5 s)")
			}
			if f.g1.seenPath(behind) || f.g2.seenPath(behind) {
				t.Fatal("the pipelined request reached an upstream")
			}
			ids = append(ids, p.RequestID)
		})
	}

	// The control: the same harness sees a pipelined request answered when
	// the first one is fine, so the refusals above are not an artefact of
	// how it reads.
	t.Run("control: a valid request and a pipelined one are both served", func(t *testing.T) {
		answers, bodies, closed := pipelined(t, addr, post("Content-Length: 2\r\n", "{}"),
			"GET /games/second HTTP/1.1\r\nHost: play.edge.test\r\nConnection: close\r\n\r\n")
		if len(answers) != 2 || answers[0].StatusCode != 200 || answers[1].StatusCode != 200 || !closed {
			t.Fatalf("want two 200 answers and then the close the second asked for, got %d answers %v (closed %v)", len(answers), bodies, closed)
		}
		if !f.g1.seenPath("/games/second") && !f.g2.seenPath("/games/second") {
			t.Fatal("the pipelined control request did not reach an upstream")
		}
	})

	// Every refusal, those fasthttp reports included, is an access-log
	// line with its request id and status, and framing faults are counted.
	logPath := f.edge.path("access.log")
	testkit.WaitUntil(t, "every refusal in the access log", 5*time.Second, func() bool {
		b, _ := os.ReadFile(logPath)
		for _, id := range ids {
			if !strings.Contains(string(b), `"id":"`+id+`"`) {
				return false
			}
		}
		return true
	})
	metrics := get(t, f.edge.admin+"/metrics")
	for _, c := range cases {
		if c.rule == "" {
			continue
		}
		if !strings.Contains(grepLines(metrics, "hedge_waf_blocked_total{"), `layer="framing",node="sea-1",region="sea",route="-",rule="`+c.rule+`"`) {
			t.Errorf("%s: no hedge_waf_blocked_total{layer=\"framing\",rule=%q}:\n%s", c.name, c.rule, grepLines(metrics, "hedge_waf_blocked_total"))
		}
	}
}

// benchEdgeListener starts baseConfig's edge with every upstream on one
// loopback fasthttp server answering "ok", and returns its listener, for
// benchmarks that drive the edge handler directly.
func benchEdgeListener(b *testing.B) *edgeListener {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	up := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("ok") }}
	go up.Serve(ln)
	b.Cleanup(func() { up.Shutdown() })
	e := startEdge(b, baseConfig, "{{L1}}", ln.Addr().String(), "{{G1}}", ln.Addr().String(), "{{G2}}", ln.Addr().String())
	return onlyListener(e)
}

// BenchmarkServeParsed runs a browser's GET as it arrives — parsed by
// fasthttp's reader, so the framing check reads a real header block — through
// the whole edge handler to an upstream on loopback, and reports allocations
// per request (0 is the target: the framing check must not add any).
func BenchmarkServeParsed(b *testing.B) {
	el := benchEdgeListener(b)
	raw := []byte("GET /games/lobby?category=baccarat&limit=20 HTTP/1.1\r\nHost: play.edge.test\r\n" +
		"User-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36\r\n" +
		"Accept: application/json, text/plain, */*\r\nAccept-Language: en-GB,en;q=0.9\r\nAccept-Encoding: gzip, deflate, br\r\n" +
		"Referer: https://play.edge.test/lobby\r\nCookie: sid=6f1c2a9e4b7d4e0f9a3c8b1d2e5f7a90; theme=dark\r\n\r\n")
	src := bytes.NewReader(raw)
	br := bufio.NewReader(src)
	var ctx fasthttp.RequestCtx
	// One connection for every request, as on a keep-alive connection
	// (ctx.Init would allocate a stand-in connection per request).
	ctx.Init2(benchConn{remote: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}}, nil, false)
	b.ReportAllocs()
	n, cpu := 0, cpuClock()
	for b.Loop() {
		n++
		src.Reset(raw)
		br.Reset(src)
		ctx.Request.Reset()
		ctx.Response.Reset()
		if err := ctx.Request.Header.Read(br); err != nil {
			b.Fatal(err)
		}
		el.serve(&ctx)
		if ctx.Response.StatusCode() != 200 {
			b.Fatalf("want 200, got %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
	}
	reportCPU(b, cpu, n)
}

// benchConn stands for a client connection in handler benchmarks: only its
// addresses are asked for.
type benchConn struct {
	net.Conn
	remote net.Addr
}

var benchLocal = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 11), Port: 8443}

func (c benchConn) RemoteAddr() net.Addr { return c.remote }
func (c benchConn) LocalAddr() net.Addr  { return benchLocal }
