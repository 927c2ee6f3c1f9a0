package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hedge/internal/pki"
	"hedge/internal/testkit"
)

var (
	// hedgeBin is the binary under test, built once by TestMain.
	hedgeBin string
	// moduleRoot is the directory holding go.mod.
	moduleRoot string
)

// TestMain builds hedge once (with -race when the tests run with it: its
// race reports fail the test that started it, see startHedge), or takes
// $HEDGE_BIN.
func TestMain(m *testing.M) {
	root, err := findModuleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	moduleRoot = root
	os.Exit(testkit.RunWithHedge(m, &hedgeBin))
}

// findModuleRoot asks the go command where go.mod is.
func findModuleRoot() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("go env GOMOD: not inside a module")
	}
	return filepath.Dir(gomod), nil
}

// proc is a hedge child process a test started.
type proc = testkit.Proc

// startHedge runs hedgeBin with args in dir (see testkit.StartHedge).
func startHedge(t testing.TB, name, dir string, args ...string) *proc {
	t.Helper()
	return testkit.StartHedge(t, hedgeBin, name, dir, args...)
}

// result is what a hedge command that runs to completion did.
type result struct {
	stdout, stderr string
	code           int
}

// runHedge runs hedgeBin with args in dir and waits for it (at most 30 s).
func runHedge(t testing.TB, dir string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, hedgeBin, args...)
	cmd.Dir = dir
	cmd.Env = testkit.ChildEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("hedge %s: %v", strings.Join(args, " "), err)
	}
	if ctx.Err() != nil {
		t.Fatalf("hedge %s: did not finish in 30s", strings.Join(args, " "))
	}
	return result{stdout: stdout.String(), stderr: stderr.String(), code: cmd.ProcessState.ExitCode()}
}

// bindable reports whether addr can be listened on now.
func bindable(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return ln.Close()
}

// httpResult is one HTTP exchange, from curl or Go's client.
type httpResult struct {
	proto  string // as curl printed it: HTTP/1.1, HTTP/2
	status int
	header http.Header
	body   string
}

func (r httpResult) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d", r.status)
	for _, k := range []string{"Content-Type", "X-Request-Id", "Strict-Transport-Security", "Idempotent-Replayed"} {
		if v := r.header.Get(k); v != "" {
			fmt.Fprintf(&b, " %s: %q", k, v)
		}
	}
	fmt.Fprintf(&b, " body %q", strings.TrimSpace(r.body))
	return b.String()
}

// curl runs the real curl with -sS -i and the given arguments and parses
// what it printed. A transport failure fails the test.
func curl(t testing.TB, args ...string) httpResult {
	t.Helper()
	r, err := tryCurl(args...)
	if err != nil {
		t.Fatalf("curl %s: %v", strings.Join(args, " "), err)
	}
	return r
}

func tryCurl(args ...string) (httpResult, error) {
	path, err := exec.LookPath("curl")
	if err != nil {
		return httpResult{}, errors.New("curl is not installed (Debian package curl; `make deps` installs it)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, append([]string{"-sS", "-i", "--max-time", "10"}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return httpResult{}, fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr.String()))
	}
	return parseCurl(stdout.String())
}

// parseCurl reads what curl -i printed: one head per response (interim
// 1xx ones first), then the body curl already decoded, so framing headers
// such as Transfer-Encoding describe nothing left to undo.
func parseCurl(out string) (httpResult, error) {
	for {
		head, body, ok := strings.Cut(out, "\r\n\r\n")
		if !ok {
			return httpResult{}, fmt.Errorf("no response head in curl's output %q", out)
		}
		tp := textproto.NewReader(bufio.NewReader(strings.NewReader(head + "\r\n\r\n")))
		line, err := tp.ReadLine()
		if err != nil {
			return httpResult{}, fmt.Errorf("parse curl's output %q: %v", out, err)
		}
		proto, status, _ := strings.Cut(line, " ")
		code, err := strconv.Atoi(strings.SplitN(status, " ", 2)[0])
		if !strings.HasPrefix(proto, "HTTP/") || err != nil {
			return httpResult{}, fmt.Errorf("parse status line %q in curl's output", line)
		}
		mime, err := tp.ReadMIMEHeader()
		if err != nil {
			return httpResult{}, fmt.Errorf("parse headers in curl's output %q: %v", head, err)
		}
		if code >= 100 && code < 200 {
			out = body
			continue
		}
		return httpResult{proto: proto, status: code, header: http.Header(mime), body: body}, nil
	}
}

// do sends one request with client and reads the whole answer, so the
// connection can be reused.
func do(t testing.TB, client *http.Client, method, url, body string, header ...string) httpResult {
	t.Helper()
	r, err := tryDo(client, method, url, body, header...)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return r
}

func tryDo(client *http.Client, method, url, body string, header ...string) (httpResult, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return httpResult{}, err
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		return httpResult{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return httpResult{}, err
	}
	return httpResult{status: resp.StatusCode, header: resp.Header, body: string(b)}, nil
}

// firstAnswer waits up to 10 s for p to answer a GET of url with client
// at all (any status), and returns that answer.
func firstAnswer(t testing.TB, p *proc, what string, client *http.Client, url string) httpResult {
	t.Helper()
	var r httpResult
	testkit.WaitFor(t, p, what, 10*time.Second, 50*time.Millisecond, func() (bool, string) {
		var err error
		r, err = tryDo(client, "GET", url, "")
		if err != nil {
			return false, err.Error()
		}
		return true, r.String()
	})
	return r
}

// answers200 is a waitUntil condition: a GET of url with client (and the
// header pairs) answers 200.
func answers200(client *http.Client, url string, header ...string) func() (bool, string) {
	return func() (bool, string) {
		r, err := tryDo(client, "GET", url, "", header...)
		if err != nil {
			return false, err.Error()
		}
		return r.status == 200, r.String()
	}
}

// quickClient is for one-off plain HTTP calls (admin listeners,
// simulators); it keeps no connections, so nothing holds a server open.
var quickClient = &http.Client{
	Timeout:   5 * time.Second,
	Transport: &http.Transport{DisableKeepAlives: true},
}

// countingClient keeps one connection alive and counts how many it dialled.
type countingClient struct {
	*http.Client
	dials atomic.Int64

	mu     sync.Mutex
	dialed []string // when each dial started, for a failure message
}

// dialTimes says when each dial started (UTC, as hedge's log writes
// times), to set beside the log of the hedge it dialled.
func (c *countingClient) dialTimes() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.dialed, ", ")
}

func newCountingClient(t testing.TB, tlsConfig *tls.Config) *countingClient {
	c := &countingClient{}
	tr := &http.Transport{
		MaxConnsPerHost:     1,
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     time.Minute,
		TLSClientConfig:     tlsConfig,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c.dials.Add(1)
			c.mu.Lock()
			c.dialed = append(c.dialed, time.Now().UTC().Format("15:04:05.000"))
			c.mu.Unlock()
			return (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, addr)
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	c.Client = &http.Client{Transport: tr, Timeout: 10 * time.Second}
	return c
}

func decodeJSON(t testing.TB, what, body string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("%s: want a JSON body, got %q: %v", what, body, err)
	}
}

// certPool reads a PEM root certificate file.
func certPool(t testing.TB, file string) *x509.CertPool {
	t.Helper()
	pool, err := pki.ReadPool(file)
	if err != nil {
		t.Fatalf("root certificate: %v", err)
	}
	return pool
}

// sample is one Prometheus sample from a text exposition.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

var sampleRE = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$`)
var labelRE = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)

// parseMetrics reads the samples named name from a text exposition.
func parseMetrics(text, name string) []sample {
	var out []sample
	for line := range strings.SplitSeq(text, "\n") {
		m := sampleRE.FindStringSubmatch(line)
		if m == nil || m[1] != name {
			continue
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			continue
		}
		s := sample{name: m[1], labels: map[string]string{}, value: v}
		for _, l := range labelRE.FindAllStringSubmatch(m[2], -1) {
			s.labels[l[1]] = l[2]
		}
		out = append(out, s)
	}
	return out
}

// findSample returns the value of the sample whose labels include want.
func findSample(samples []sample, want map[string]string) (float64, bool) {
next:
	for _, s := range samples {
		for k, v := range want {
			if s.labels[k] != v {
				continue next
			}
		}
		return s.value, true
	}
	return 0, false
}
