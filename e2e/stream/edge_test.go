package streame2e

import (
	"encoding/json"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"hedge/stream"
	"hedge/stream/hls"
	"hedge/stream/hls/hubfeed"
	"hedge/stream/player"
)

// edge is one hedge stream node assembled from the real parts: stream.Server
// (WHIP, WHEP, hub) on a fasthttp listener, an LL-HLS muxer attached to every
// hub by hubfeed, the player pages and play.json, and a UDP proxy between
// WHEP viewers and the node's ICE socket through which the test breaks and
// restores a viewer's WebRTC path.
type edge struct {
	srv   *stream.Server
	http  *fasthttp.Server
	base  string // http://127.0.0.1:port
	proxy *udpProxy

	feeds *hubfeed.Set
	hls   fasthttp.RequestHandler
	pages fasthttp.RequestHandler
	reqID atomic.Uint64
	wg    sync.WaitGroup
}

func startEdge(t *testing.T) *edge {
	t.Helper()
	e := &edge{
		feeds: hubfeed.New(hls.Options{OnError: func(err error) { t.Logf("LL-HLS muxer: %v", err) }}),
		pages: fasthttpadaptor.NewFastHTTPHandler(player.Handler()),
	}
	e.hls = fasthttpadaptor.NewFastHTTPHandler(e.feeds)
	srv, err := stream.NewServer(stream.Options{
		Studios: []stream.Studio{{Name: "studio", Token: "demo-studio", Streams: []string{"*"}}},
		ICE:     stream.ICE{UDP: "127.0.0.1:0", Loopback: true},
		OnHub:   e.feeds.OnHub,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	e.proxy, err = newUDPProxy(srv.UDPAddr())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.http = &fasthttp.Server{Handler: e.handle, MaxRequestBodySize: 1 << 20, ReadTimeout: 30 * time.Second}
	e.wg.Add(1)
	go func() { defer e.wg.Done(); _ = e.http.Serve(ln) }()
	e.base = "http://" + ln.Addr().String()
	t.Cleanup(func() {
		_ = e.http.Shutdown()
		e.wg.Wait()
		_ = srv.Close()
		e.proxy.Close()
	})
	return e
}

func (e *edge) muxer(name string) *hls.Muxer { return e.feeds.Muxer(name) }

func (e *edge) handle(ctx *fasthttp.RequestCtx) {
	path := string(ctx.Path())
	switch path {
	case "/_test/block":
		e.proxy.SetBlocked(true)
		return
	case "/_test/unblock":
		e.proxy.SetBlocked(false)
		return
	}
	rest, ok := strings.CutPrefix(path, "/live/")
	if !ok {
		ctx.SetStatusCode(404)
		return
	}
	name, sub, _ := strings.Cut(rest, "/")
	sub, _, _ = strings.Cut(sub, "/")
	id := []byte("e2e-" + strconv.FormatUint(e.reqID.Add(1), 10))
	switch sub {
	case "whep":
		post := ctx.IsPost() && !strings.Contains(strings.TrimPrefix(rest, name+"/whep"), "/")
		if post {
			// The node learns the viewer's address from its connectivity
			// checks, which come through the proxy.
			ctx.Request.SetBody(stripCandidates(ctx.Request.Body()))
		}
		e.srv.Handle(ctx, id)
		if post && ctx.Response.StatusCode() == fasthttp.StatusCreated {
			ctx.Response.SetBody(viaProxy(ctx.Response.Body(), e.proxy.Addr()))
		}
	case "whip":
		e.srv.Handle(ctx, id)
	case "hls":
		e.hls(ctx)
	case "play.json":
		state := "waiting"
		if h := e.srv.Hub(name); h != nil && h.Live() {
			state = "live"
		}
		b, _ := json.Marshal(player.Descriptor{
			Stream: name, WHEP: "/live/" + name + "/whep", HLS: "/live/" + name + "/hls/index.m3u8",
			ICEServers: []player.ICEServer{}, State: state, Preferred: player.ModeWebRTC,
		})
		ctx.SetContentType("application/json")
		ctx.Response.Header.Set("Cache-Control", "no-store")
		ctx.SetBody(b)
	default:
		e.pages(ctx)
	}
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
