// Package live is the stream route kind: under a route's prefix, per
// stream, WHIP and WHEP with their session resources (package stream), the
// stream's LL-HLS (hubfeed), its playback descriptor (play.json) and the
// player and publish pages (package player) — all on the node's Server, one
// stream.Server with the LL-HLS muxers it feeds.
//
// A node owns its Server through a Host: created with the node's first
// stream route, kept by reloads (its ICE sockets, live sessions and muxers
// survive them), closed with the node. A reload's settings reach the
// running server when its state is installed (Route.Installed), never from
// a state that a failed reload throws away.
package live

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"hedge/configs"
	"hedge/gateway/route"
	"hedge/internal/certs"
	"hedge/internal/pki"
	"hedge/internal/problem"
	"hedge/stream"
	"hedge/stream/hls"
	"hedge/stream/hls/hubfeed"
	"hedge/stream/player"
)

// Host holds a node's Server across the node's states.
type Host struct {
	mu  sync.Mutex
	srv *Server
}

// Server is a node's stream.Server with the LL-HLS muxers it feeds.
type Server struct {
	srv    *stream.Server
	hls    *hubfeed.Set
	hlsH   fasthttp.RequestHandler // hls through fasthttpadaptor
	player fasthttp.RequestHandler // the player and publish pages

	// pending names the configured settings that wait for a restart
	// (streams.ice.udp_port, ...), as of the last installed state.
	pending atomic.Pointer[[]string]
}

// Setup is what a stream route is built from: the configuration, the node
// it runs on, and where it reports.
type Setup struct {
	Config *configs.Config
	Region *configs.Region
	Node   *configs.Node
	Log    *slog.Logger
}

// Route serves, under its prefix, per stream:
// whip, whep and their session resources (stream.Server);
// hls/* (LL-HLS, hubfeed); play.json (the playback descriptor);
// "", publish and the pages' scripts (package player).
type Route struct {
	*Server
	prefix string
	opts   stream.Options // this state's settings, applied when it is installed
	log    *slog.Logger
}

// Route builds the stream route rc on the host's Server, starting the
// Server with rc's settings if the node has none yet.
func (h *Host) Route(rc configs.Route, s Setup) (*Route, error) {
	prefix := strings.TrimSuffix(rc.Match.PathPrefix, "/") + "/"
	opts, err := streamOptions(s, prefix)
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.srv != nil {
		return &Route{Server: h.srv, prefix: prefix, opts: opts, log: s.Log}, nil
	}
	// Every stream of the node, published here or relayed from another
	// region, gets an LL-HLS muxer as it starts.
	set := hubfeed.New(hls.Options{})
	opts.OnHub = set.OnHub
	srv, err := stream.NewServer(opts)
	if err != nil {
		return nil, err
	}
	h.srv = &Server{
		srv: srv, hls: set,
		hlsH:   fasthttpadaptor.NewFastHTTPHandler(set),
		player: fasthttpadaptor.NewFastHTTPHandler(player.Handler()),
	}
	return &Route{Server: h.srv, prefix: prefix, opts: opts, log: s.Log}, nil
}

// Server is the node's stream server, nil when it serves no stream route.
func (h *Host) Server() *Server {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.srv
}

// Close ends the node's stream server as the node shuts down (or fails to
// start): its sessions, streams, relays, muxers and ICE sockets, and every
// goroutine they run. Reloads keep it; only this ends it. Safe to call
// twice.
func (h *Host) Close() error {
	h.mu.Lock()
	s := h.srv
	h.srv = nil
	h.mu.Unlock()
	if s == nil {
		return nil
	}
	return s.srv.Close()
}

// Stats are the server's counts (sessions, viewers, refusals, …).
func (s *Server) Stats() stream.Stats { return s.srv.Stats() }

// UDPAddr is the address of the server's ICE UDP socket.
func (s *Server) UDPAddr() string { return s.srv.UDPAddr() }

// restartFields are the configuration fields behind stream.Server's
// restart-only settings.
var restartFields = map[string]string{
	stream.SettingICEUDP:        "streams.ice.udp_port",
	stream.SettingICETCP:        "streams.ice.tcp_port",
	stream.SettingICENAT1To1IPs: "streams.ice.nat_1to1_ips",
	stream.SettingICELoopback:   "listeners[0].address (the ICE host)",
}

// Installed applies the route's settings to the node's running stream
// server, once the state the route belongs to is installed: live sessions,
// streams and relays carry on, studios, tokens, caps, graces, ICE servers
// and relaying change at once. Settings that need new sockets keep their
// running values and are logged as needing a restart.
func (sr *Route) Installed() {
	var pending []string
	for _, f := range sr.srv.Reconfigure(sr.opts) {
		field := restartFields[f]
		pending = append(pending, field)
		sr.log.Warn("stream setting changed: needs a restart; the running value is kept",
			"field", field, "configured", iceSetting(sr.opts.ICE, f))
	}
	sr.pending.Store(&pending)
}

// iceSetting is the value of one of stream.ICE's restart-only settings.
func iceSetting(ice stream.ICE, setting string) string {
	switch setting {
	case stream.SettingICEUDP:
		return ice.UDP
	case stream.SettingICETCP:
		return ice.TCP
	case stream.SettingICENAT1To1IPs:
		return strings.Join(ice.NAT1To1IPs, ",")
	}
	return fmt.Sprint(ice.Loopback)
}

// muxerWait bounds how long an LL-HLS request for a stream that is starting
// (a relay connecting, a studio's tracks not all known yet) waits for its
// muxer before the 404.
const muxerWait = 5 * time.Second

// Serve implements route.Handler. The stream server and the LL-HLS and
// player handlers answer their own requests (through problem.Write and
// problem.WriteHTTP, with the request's id); what the route itself refuses
// it returns.
func (sr *Route) Serve(r *route.Request) problem.Refusal {
	ctx := r.Ctx
	rest, ok := strings.CutPrefix(string(ctx.Path()), sr.prefix)
	name, sub, hasSub := strings.Cut(rest, "/")
	if !ok || !stream.ValidName(name) {
		sr.srv.Handle(ctx, r.ID, r.Client) // its 404 problems
		return problem.Refusal{}
	}
	if !hasSub {
		// /live/{stream}: the player page is /live/{stream}/.
		if m := string(ctx.Method()); m == fasthttp.MethodGet || m == fasthttp.MethodHead {
			ctx.Response.Header.Set("Location", sr.prefix+name+"/")
			ctx.SetStatusCode(fasthttp.StatusPermanentRedirect)
			return problem.Refusal{}
		}
		sr.srv.Handle(ctx, r.ID, r.Client)
		return problem.Refusal{}
	}
	first, _, _ := strings.Cut(sub, "/")
	switch first {
	case "hls":
		return sr.serveHLS(r, name)
	case "play.json":
		return sr.serveDescriptor(r, name)
	case "", "publish", "player.js", "publish.js", "webrtc.js", "hls.min.js":
		if sub != first {
			return problem.Refuse(problem.NotFound, "")
		}
		// The pages' problems carry the request's id.
		ctx.Request.Header.SetBytesV("X-Request-Id", r.ID)
		sr.player(ctx)
	default:
		sr.srv.Handle(ctx, r.ID, r.Client)
	}
	return problem.Refusal{}
}

// serveHLS serves /{stream}/hls/*. A stream not published here is pulled
// from another region's edge (when relaying is on), and its first requests
// wait for its muxer; every request keeps such a pull alive.
func (sr *Route) serveHLS(r *route.Request, name string) problem.Refusal {
	if sr.hls.Muxer(name) == nil {
		if h := sr.srv.Watch(name); h != nil {
			waitMuxer(sr.hls, h, name, muxerWait)
		}
		if sr.hls.Muxer(name) == nil {
			return problem.Refusal{Type: problem.StreamNotFound, Detail: "no LL-HLS for this stream (not live, or not H.264/Opus)",
				Header: "Access-Control-Allow-Origin", Value: "*"}
		}
	} else {
		sr.srv.Watch(name)
	}
	// Package hls's problems carry the request's id.
	r.Ctx.Request.Header.SetBytesV("X-Request-Id", r.ID)
	sr.hlsH(r.Ctx)
	return problem.Refusal{}
}

// waitMuxer waits, at most limit, until the hub has its tracks and hubfeed
// has attached a muxer to it (a packageable stream) or the hub ends.
func waitMuxer(set *hubfeed.Set, h *stream.Hub, name string, limit time.Duration) {
	if !waitReady(h, limit) {
		return
	}
	// hubfeed attaches right after Ready, on its own goroutine.
	for i := 0; i < 50 && set.Muxer(name) == nil && !h.Ended(); i++ {
		time.Sleep(10 * time.Millisecond)
	}
}

// waitReady waits, at most limit, until the hub has its tracks (true) or
// ends (false): a pull whose peers all answered that they do not have the
// stream ends its hub at once, and its waiting requests answer 404 then,
// not after limit.
func waitReady(h *stream.Hub, limit time.Duration) bool {
	t := time.NewTimer(limit)
	defer t.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-h.Ready():
			return true
		case <-t.C:
			return false
		case <-tick.C:
			if h.Ended() {
				return false
			}
		}
	}
}

// descriptorWait bounds how long play.json waits for a stream being pulled
// from another region, so that its state says "relayed" rather than
// "offline" on the first request.
const descriptorWait = 2 * time.Second

// serveDescriptor answers GET /{stream}/play.json with a player.Descriptor.
func (sr *Route) serveDescriptor(r *route.Request, name string) problem.Refusal {
	ctx := r.Ctx
	if m := string(ctx.Method()); m != fasthttp.MethodGet && m != fasthttp.MethodHead {
		return problem.Refusal{Type: problem.MethodNotAllowed, Header: "Allow", Value: "GET, HEAD"}
	}
	if h := sr.srv.Watch(name); h != nil {
		waitReady(h, descriptorWait)
	}
	d := player.Descriptor{
		Stream:     name,
		WHEP:       sr.srv.WHEPURL(name),
		HLS:        sr.srv.HLSURL(name),
		ICEServers: []player.ICEServer{},
		State:      string(sr.srv.State(name)),
		Preferred:  player.ModeWebRTC,
	}
	for _, s := range sr.srv.ICEServers() {
		d.ICEServers = append(d.ICEServers, player.ICEServer{URLs: s.URLs, Username: s.Username, Credential: s.Credential})
	}
	if sr.srv.OverViewerCap(name) {
		d.Preferred = player.ModeHLS
	}
	b, err := json.Marshal(d)
	if err != nil {
		return problem.Refuse(problem.Internal, "")
	}
	h := &ctx.Response.Header
	h.SetContentType("application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Access-Control-Allow-Origin", "*")
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetBody(b)
	return problem.Refusal{}
}

func streamOptions(b Setup, prefix string) (stream.Options, error) {
	c := b.Config.Streams
	host := "127.0.0.1"
	if len(b.Node.Listeners) > 0 {
		if h, _, err := net.SplitHostPort(b.Node.Listeners[0].Address); err == nil && h != "" {
			host = h
		}
	}
	o := stream.Options{
		Prefix: prefix, AllowTakeover: c.AllowTakeover,
		MaxViewersPerStream: noLimit(c.MaxViewersPerStream), MaxViewersPerNode: noLimit(c.MaxViewersPerNode),
		MaxConnectingViewers: noLimit(c.MaxConnectingViewers), ConnectTimeout: c.ConnectTimeout.D(),
		PerAddress: stream.AddressLimits{
			Rate: c.PerAddress.Rate.PerSecond, Burst: c.PerAddress.Burst, MaxSessions: noLimit(c.PerAddress.MaxSessions),
		},
		PublisherGrace: c.PublisherGrace.D(), MediaTimeout: c.MediaTimeout.D(),
		MaxBodyBytes: configs.DefaultStreamMaxBodyBytes, KeyframeInterval: configs.DefaultStreamKeyframeInterval,
		CachePackets: configs.DefaultStreamCachePackets,
		ICE: stream.ICE{
			UDP:        net.JoinHostPort(host, fmt.Sprint(c.ICE.UDPPort)),
			NAT1To1IPs: c.ICE.NAT1To1IPs,
			Loopback:   net.ParseIP(host).IsLoopback(),
		},
		Relay: stream.RelayOptions{
			Grace: c.RelayGrace.D(), ReadyTimeout: configs.DefaultStreamRelayReadyTimeout, NotFoundTTL: configs.DefaultStreamRelayNotFoundTTL,
			MinBackoff: configs.DefaultStreamRelayMinBackoff, MaxBackoff: configs.DefaultStreamRelayMaxBackoff,
		},
	}
	if c.ViewerTokenKey != "" {
		o.ViewerTokenKey = []byte(c.ViewerTokenKey)
	}
	if c.ICE.TCPPort > 0 {
		o.ICE.TCP = net.JoinHostPort(host, fmt.Sprint(c.ICE.TCPPort))
	}
	for _, s := range c.ICE.Servers {
		o.ICE.Servers = append(o.ICE.Servers, stream.ICEServer{URLs: s.URLs, Username: s.Username, Credential: s.Credential})
	}
	for _, s := range c.Studios {
		o.Studios = append(o.Studios, stream.Studio{Name: s.Name, Token: s.Token, Streams: s.Streams})
	}
	if c.Relay != nil && *c.Relay {
		peers, client, err := relayPeers(b, prefix)
		if err != nil {
			return o, err
		}
		o.Relay.Peers, o.Relay.Client = peers, client
	}
	return o, nil
}

// noLimit turns the configuration's -1 (no limit) into package stream's 0.
func noLimit(n int) int { return max(n, 0) }

// relayPeers are the other regions' edges (each node's first listener), and
// a client that reaches them by their TLS name, trusting the internal CA
// when they use it.
func relayPeers(b Setup, prefix string) ([]string, *http.Client, error) {
	dial := map[string]string{} // name:port → listener address
	var peers []string
	internal := false
	for i := range b.Config.Regions {
		reg := &b.Config.Regions[i]
		if reg.Name == b.Region.Name {
			continue
		}
		for j := range reg.Nodes {
			n := &reg.Nodes[j]
			if len(n.Listeners) == 0 {
				continue
			}
			l := n.Listeners[0]
			_, port, err := net.SplitHostPort(l.Address)
			if err != nil {
				continue
			}
			if l.TLS.Mode == "off" || l.TLS.Mode == "" {
				peers = append(peers, "http://"+l.Address+prefix)
				continue
			}
			name := l.Address
			if len(l.TLS.Names) > 0 {
				name = net.JoinHostPort(strings.TrimPrefix(l.TLS.Names[0], "*."), port)
			}
			// The same name may be served by several regions: address each
			// peer by a name of its own that the dialer maps back.
			alias := reg.Name + "." + n.Name + ".relay:" + port
			dial[alias] = l.Address
			peers = append(peers, "https://"+alias+prefix+"#"+name)
			internal = internal || l.TLS.Mode == "internal"
		}
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if internal {
		root, err := certs.InternalRoot(b.Config.DataDir, configs.InternalCANames(b.Config)...)
		if err != nil {
			return nil, nil, err
		}
		if tlsCfg.RootCAs, err = pki.ReadPool(root); err != nil {
			return nil, nil, err
		}
	}
	// Verify each peer against the name it serves, not the alias.
	names := map[string]string{}
	for i, p := range peers {
		if base, name, ok := strings.Cut(p, "#"); ok {
			peers[i] = base
			host := strings.TrimPrefix(base, "https://")
			host = host[:strings.IndexByte(host, '/')]
			names[host] = name
		}
	}
	d := &net.Dialer{Timeout: 3 * time.Second}
	tr := &http.Transport{
		TLSClientConfig: tlsCfg,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if a, ok := dial[addr]; ok {
				addr = a
			}
			return d.DialContext(ctx, network, addr)
		},
		DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			target := addr
			if a, ok := dial[addr]; ok {
				target = a
			}
			raw, err := d.DialContext(ctx, network, target)
			if err != nil {
				return nil, err
			}
			cfg := tlsCfg.Clone()
			if n, ok := names[addr]; ok {
				cfg.ServerName, _, _ = net.SplitHostPort(n)
			}
			c := tls.Client(raw, cfg)
			if err := c.HandshakeContext(ctx); err != nil {
				raw.Close()
				return nil, err
			}
			return c, nil
		},
	}
	return peers, &http.Client{Timeout: 10 * time.Second, Transport: tr}, nil
}

// Status is what /status reports about a node's live streams.
type Status struct {
	Streams  int `json:"streams"`
	Sessions int `json:"sessions"`
	Viewers  int `json:"viewers"`
	Relays   int `json:"relays"`
	// PendingRestart names configured settings the running node does not
	// use yet: they need new ICE sockets, so a restart.
	PendingRestart []string `json:"pending_restart,omitempty"`
}

// Status is the node's live-stream status, nil when it serves none.
func (h *Host) Status() *Status {
	s := h.Server()
	if s == nil {
		return nil
	}
	st := s.srv.Stats()
	out := &Status{Streams: st.Streams, Sessions: st.Sessions, Viewers: st.Viewers, Relays: st.Relays}
	if p := s.pending.Load(); p != nil {
		out.PendingRestart = *p
	}
	return out
}
