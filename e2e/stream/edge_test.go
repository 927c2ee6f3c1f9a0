package streame2e

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"hedge/internal/testkit"
)

// hedgeBin is the hedge under test: $HEDGE_BIN, or built by TestMain
// (with -race when the test runs with it).
var hedgeBin string

func TestMain(m *testing.M) { os.Exit(testkit.RunWithHedge(m, &hedgeBin)) }

// edgeConfig is one node with the demo's stream route and studio token,
// behind the whole request path (WAF in block mode, as the demo runs it).
const edgeConfig = `
data_dir: {{DATA}}
waf: {mode: block, paranoia_level: 1}
log: {level: info, access: {enabled: false}}
admin: {allow_loopback: true}
lifecycle: {drain_period: 10ms, shutdown_timeout: 5s}
routes:
  - name: live
    kind: stream
    match: {path_prefix: /live/}
    max_body_bytes: 64KiB
streams:
  studios: [{name: demo, token: demo-studio}]
  ice: {udp_port: {{UDP}}}
  relay: false
regions:
  - name: lab
    nodes:
      - name: lab-1
        listeners:
          - name: public
            address: {{EDGE}}
            tls: {mode: off}
        admin: {address: {{ADMIN}}}
`

// edge is a real `hedge serve` with a stream route, and in front of it the
// test's WebRTC breaker: an HTTP proxy that passes every request to hedge
// and rewrites WHEP's SDP so that the viewer's media flows through a UDP
// proxy, which the test blocks and unblocks (POST /_test/block, /unblock).
// Publishers' media goes to hedge directly.
type edge struct {
	base  string // http://127.0.0.1:port of the front
	hedge string // http://address of hedge's listener
	proxy *udpProxy

	mu      sync.Mutex
	deletes []int // statuses of the DELETEs of WHEP sessions the page sent
}

// whepDeletes returns the statuses hedge answered the page's DELETEs of
// WHEP sessions with.
func (e *edge) whepDeletes() []int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]int(nil), e.deletes...)
}

func startEdge(t *testing.T) *edge {
	t.Helper()
	e := &edge{}
	dir := t.TempDir()
	edgeAddr, adminAddr, udp := testkit.FreeAddr(t), testkit.FreeAddr(t), testkit.FreeUDPPort(t)
	cfg := strings.NewReplacer("{{DATA}}", dir, "{{EDGE}}", edgeAddr, "{{ADMIN}}", adminAddr, "{{UDP}}", udp).Replace(edgeConfig)
	e.hedge = "http://" + edgeAddr
	serveHedge(t, dir, cfg, http.DefaultClient, e.hedge+"/healthz")

	var err error
	e.proxy, err = newUDPProxy(net.JoinHostPort("127.0.0.1", udp))
	if err != nil {
		t.Fatal(err)
	}
	target, _ := url.Parse(e.hedge)
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
			if isWHEPOffer(pr.In) {
				// hedge learns the viewer's address from its connectivity
				// checks, which come through the UDP proxy.
				b, _ := io.ReadAll(pr.Out.Body)
				b = stripCandidates(b)
				pr.Out.Body, pr.Out.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b))
			}
		},
		// hls.js abandons blocking playlist requests it no longer needs:
		// the browser went away, there is nobody to answer.
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() == nil {
				t.Logf("front proxy: %s %s: %v", r.Method, r.URL.Path, err)
				w.WriteHeader(http.StatusBadGateway)
			}
		},
		ModifyResponse: func(r *http.Response) error {
			if r.Request.Method == http.MethodDelete && strings.Contains(r.Request.URL.Path, "/whep/") {
				e.mu.Lock()
				e.deletes = append(e.deletes, r.StatusCode)
				e.mu.Unlock()
			}
			if !isWHEPOffer(r.Request) || r.StatusCode != http.StatusCreated {
				return nil
			}
			b, err := io.ReadAll(r.Body)
			r.Body.Close()
			if err != nil {
				return err
			}
			b = viaProxy(b, e.proxy.Addr())
			r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b))
			r.Header.Set("Content-Length", strconv.Itoa(len(b)))
			return nil
		},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /_test/block", func(http.ResponseWriter, *http.Request) { e.proxy.SetBlocked(true) })
	mux.HandleFunc("POST /_test/unblock", func(http.ResponseWriter, *http.Request) { e.proxy.SetBlocked(false) })
	mux.Handle("/", rp)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	front := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan struct{})
	go func() { defer close(served); _ = front.Serve(ln) }()
	e.base = "http://" + ln.Addr().String()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := front.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Logf("front proxy shutdown: %v", err)
		}
		_ = front.Close()
		<-served
		e.proxy.Close()
	})
	return e
}

// serveHedge runs `hedge serve` with cfg (written to dir) until the test
// ends (SIGTERM first, then testkit's SIGKILL), and waits until health
// answers 200 through client; the process's output is testkit's.
func serveHedge(t *testing.T, dir, cfg string, client *http.Client, health string) {
	t.Helper()
	file := filepath.Join(dir, "hedge.yaml")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p := testkit.StartHedge(t, hedgeBin, "hedge serve", dir, "serve", "-c", file)
	// Registered after StartHedge's, so it runs first: a graceful stop,
	// then StartHedge's SIGKILL if hedge is still there.
	t.Cleanup(func() {
		_ = p.Cmd.Process.Signal(syscall.SIGTERM)
		p.Wait(15 * time.Second)
	})
	testkit.WaitFor(t, p, "hedge serve: "+health+" 200", 60*time.Second, 200*time.Millisecond, func() (bool, string) {
		resp, err := client.Get(health)
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
}

// isWHEPOffer: POST /live/{stream}/whep (not a session resource).
func isWHEPOffer(r *http.Request) bool {
	if r.Method != http.MethodPost || !strings.HasPrefix(r.URL.Path, "/live/") {
		return false
	}
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/live/"), "/")
	return len(parts) == 2 && parts[1] == "whep"
}

// stripCandidates removes the ICE candidates of an SDP offer.
func stripCandidates(sdp []byte) []byte {
	var out []string
	for _, l := range strings.Split(string(sdp), "\r\n") {
		if strings.HasPrefix(l, "a=candidate:") {
			continue
		}
		out = append(out, l)
	}
	return []byte(strings.Join(out, "\r\n"))
}

// viaProxy points the UDP candidates of an SDP answer at the proxy and drops
// the TCP ones, so that the viewer's media can only flow through the proxy.
func viaProxy(sdp []byte, proxy *net.UDPAddr) []byte {
	var out []string
	for _, l := range strings.Split(string(sdp), "\r\n") {
		if strings.HasPrefix(l, "a=candidate:") {
			f := strings.Fields(l)
			if len(f) < 8 || !strings.EqualFold(f[2], "udp") {
				continue
			}
			f[4], f[5] = proxy.IP.String(), strconv.Itoa(proxy.Port)
			l = strings.Join(f, " ")
		}
		out = append(out, l)
	}
	return []byte(strings.Join(out, "\r\n"))
}

// udpProxy relays datagrams between browsers and the node's ICE socket, one
// upstream socket per browser address, and drops everything while blocked:
// to both ends it looks like a network that stopped carrying the path.
type udpProxy struct {
	front   *net.UDPConn
	target  *net.UDPAddr
	blocked atomic.Bool
	dropped atomic.Uint64

	mu     sync.Mutex
	peers  map[string]*net.UDPConn
	closed bool
	wg     sync.WaitGroup
}

func newUDPProxy(target string) (*udpProxy, error) {
	ta, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		return nil, err
	}
	front, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	p := &udpProxy{front: front, target: ta, peers: map[string]*net.UDPConn{}}
	p.wg.Add(1)
	go p.fromBrowsers()
	return p, nil
}

func (p *udpProxy) Addr() *net.UDPAddr { return p.front.LocalAddr().(*net.UDPAddr) }

func (p *udpProxy) SetBlocked(b bool) { p.blocked.Store(b) }

func (p *udpProxy) fromBrowsers() {
	defer p.wg.Done()
	buf := make([]byte, 1600)
	for {
		n, from, err := p.front.ReadFromUDP(buf)
		if err != nil {
			return
		}
		if p.blocked.Load() {
			p.dropped.Add(1)
			continue
		}
		up := p.upstream(from)
		if up == nil {
			return
		}
		_, _ = up.Write(buf[:n])
	}
}

func (p *udpProxy) upstream(browser *net.UDPAddr) *net.UDPConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	if c := p.peers[browser.String()]; c != nil {
		return c
	}
	c, err := net.DialUDP("udp", nil, p.target)
	if err != nil {
		return nil
	}
	p.peers[browser.String()] = c
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		buf := make([]byte, 1600)
		for {
			n, err := c.Read(buf)
			if err != nil {
				if ne, ok := err.(net.Error); ok && !ne.Timeout() && strings.Contains(err.Error(), "refused") {
					continue // ICMP from a closed session; keep the path
				}
				return
			}
			if p.blocked.Load() {
				p.dropped.Add(1)
				continue
			}
			_, _ = p.front.WriteToUDP(buf[:n], browser)
		}
	}()
	return c
}

func (p *udpProxy) Close() {
	p.mu.Lock()
	p.closed = true
	for _, c := range p.peers {
		_ = c.Close()
	}
	p.mu.Unlock()
	_ = p.front.Close()
	p.wg.Wait()
}
