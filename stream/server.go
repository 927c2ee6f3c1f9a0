package stream

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/logging"
	"github.com/valyala/fasthttp"

	"hedge/internal/problem"
)

// Options configure a Server. The configuration (package configs) gives
// every value, defaults included: a Server uses them as they are, so a
// zero duration or size means zero. Reconfigure changes them on a running
// server, all but ICE's sockets (UDP, TCP, NAT1To1IPs, Loopback), OnHub
// and Logger.
type Options struct {
	// Prefix is the path before the stream name ("/live/").
	Prefix string
	// Studios may publish; a studio always replaces its own publisher (a
	// reconnect), another studio only when AllowTakeover is set.
	Studios       []Studio
	AllowTakeover bool
	// ViewerTokenKey, when set, makes WHEP require a token made by
	// SignViewerToken (Authorization: Bearer, or ?token=).
	ViewerTokenKey []byte
	// Caps on connected WebRTC viewers (0: no cap). Over a cap, WHEP
	// answers 503 naming the stream's LL-HLS URL. A viewer counts once its
	// ICE and DTLS have completed; until then it is connecting.
	MaxViewersPerStream int
	MaxViewersPerNode   int
	// MaxConnectingViewers bounds the node's WHEP viewers that are still
	// connecting (0: no bound); over it, WHEP answers 503 like a cap. A
	// viewer that connects while the caps are full is closed.
	MaxConnectingViewers int
	// ConnectTimeout closes a session whose ICE and DTLS have not
	// completed in time, freeing what it holds.
	ConnectTimeout time.Duration
	// PerAddress limits the sessions one client address may start.
	PerAddress AddressLimits
	// MaxBodyBytes bounds SDP offers and PATCH bodies.
	MaxBodyBytes int
	ICE          ICE
	// PublisherGrace is how long a stream outlives its publisher, waiting
	// for it to reconnect.
	PublisherGrace time.Duration
	// MediaTimeout closes a publisher whose media has not started in time.
	MediaTimeout time.Duration
	// KeyframeInterval is the minimum time between keyframe requests to a
	// publisher.
	KeyframeInterval time.Duration
	// CachePackets is how many packets per track are kept for NACKs.
	CachePackets int
	// OnHub, when set, is called when a stream starts; the returned
	// function (may be nil) is called when it ends. The LL-HLS muxer
	// attaches here as a Reader.
	OnHub func(h *Hub) func()
	// Relay pulls streams published in other regions for local viewers.
	Relay RelayOptions
	// Logger receives the server's logs (nil: slog.Default()).
	Logger *slog.Logger
}

// Server serves WHIP and WHEP for one node: POST /live/{stream}/whip and
// /whep create sessions; PATCH and DELETE on /live/{stream}/whip/{id} (and
// whep) trickle ICE, restart ICE and end them.
type Server struct {
	// opts is read once per use, never held across a request's steps
	// that may span a Reconfigure: a snapshot, swapped whole.
	opts atomic.Pointer[Options]
	eng  *engine
	log  *slog.Logger
	// reconf serialises Reconfigure (not requests).
	reconf sync.Mutex

	mu       sync.Mutex
	hubs     map[string]*hubEntry
	sessions map[string]*session
	relays   map[string]*relay
	closed   bool
	notFound notFound // streams no relay peer had, lately

	viewers    atomic.Int64 // connected WHEP viewers
	connecting atomic.Int64 // WHEP viewers not connected yet
	addrs      addrTable
	refused    [refusals]atomic.Uint64
	timeouts   atomic.Uint64 // sessions closed by ConnectTimeout

	// fanoutBehind is the lag that marks a stream's fan-out full: the
	// constant of that name; the package's tests raise it, so that a test
	// machine too busy to keep up does not refuse their viewers.
	fanoutBehind time.Duration
}

type hubEntry struct {
	hub     *Hub
	cleanup func()
}

// NewServer opens the node's ICE sockets and returns a server; Close
// releases them.
func NewServer(opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	lf := logging.NewDefaultLoggerFactory()
	lf.DefaultLogLevel = logging.LogLevelError
	eng, err := newEngine(opts.ICE, lf)
	if err != nil {
		return nil, err
	}
	s := &Server{
		eng: eng, log: opts.Logger,
		hubs: map[string]*hubEntry{}, sessions: map[string]*session{}, relays: map[string]*relay{},
		fanoutBehind: fanoutBehind,
	}
	s.opts.Store(&opts)
	return s, nil
}

// options is the current settings; callers must not modify them.
func (s *Server) options() *Options { return s.opts.Load() }

// Restart-only settings, as Reconfigure names them.
const (
	SettingICEUDP        = "ICE.UDP"
	SettingICETCP        = "ICE.TCP"
	SettingICENAT1To1IPs = "ICE.NAT1To1IPs"
	SettingICELoopback   = "ICE.Loopback"
)

// Reconfigure applies opts to the running server without touching its
// sessions, streams or relays. Each request reads the settings once as it
// needs them, so a request that is running may finish on the old ones.
//
// What changes: studios and their tokens (a studio removed, or whose token
// or patterns changed, keeps its live session but cannot publish again
// without the new credentials), takeover, the viewer token key, viewer
// caps (for new viewers: those over a lowered cap stay), the publisher
// grace (of every stream, from its publisher's next departure), the media
// and connect timeouts (of new sessions), the connecting viewers' bound
// and the per-address limits (for new requests; sessions an address holds
// stay), the ICE servers handed to clients, the body
// limit, the prefix, and relaying (new pulls use the new peers and client;
// pulls that run keep their viewers and end as before, after the grace).
//
// What does not: the ICE sockets and candidates (UDP, TCP, NAT1To1IPs,
// Loopback) keep their running values; Reconfigure returns the names
// (Setting*) of those that opts would change, so the caller can say that
// they need a restart. OnHub and Logger stay as NewServer set them.
func (s *Server) Reconfigure(opts Options) (needRestart []string) {
	s.reconf.Lock()
	defer s.reconf.Unlock()
	old := s.options()
	if opts.ICE.UDP != old.ICE.UDP {
		needRestart = append(needRestart, SettingICEUDP)
	}
	if opts.ICE.TCP != old.ICE.TCP {
		needRestart = append(needRestart, SettingICETCP)
	}
	if !slices.Equal(opts.ICE.NAT1To1IPs, old.ICE.NAT1To1IPs) {
		needRestart = append(needRestart, SettingICENAT1To1IPs)
	}
	if opts.ICE.Loopback != old.ICE.Loopback {
		needRestart = append(needRestart, SettingICELoopback)
	}
	opts.ICE.UDP, opts.ICE.TCP, opts.ICE.NAT1To1IPs, opts.ICE.Loopback = old.ICE.UDP, old.ICE.TCP, old.ICE.NAT1To1IPs, old.ICE.Loopback
	opts.OnHub, opts.Logger = old.OnHub, old.Logger
	s.opts.Store(&opts)

	if opts.PublisherGrace != old.PublisherGrace {
		s.mu.Lock()
		hubs := make([]*Hub, 0, len(s.hubs))
		for _, e := range s.hubs {
			hubs = append(hubs, e.hub)
		}
		s.mu.Unlock()
		for _, h := range hubs {
			h.setGrace(opts.PublisherGrace)
		}
	}
	if old.Relay.Client != opts.Relay.Client && old.Relay.Client != nil {
		// Pulls that run finish on the old client; its idle connections go.
		old.Relay.Client.CloseIdleConnections()
	}
	return needRestart
}

// UDPAddr is the address of the node's ICE UDP socket.
func (s *Server) UDPAddr() string { return s.eng.udpConn.LocalAddr().String() }

// Hub returns the live stream of that name, or nil.
func (s *Server) Hub(name string) *Hub {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.hubs[name]; e != nil {
		return e.hub
	}
	return nil
}

// Stats is a snapshot for status pages and tests.
type Stats struct {
	// Viewers are connected WHEP viewers (what the caps count); Connecting
	// those whose ICE and DTLS have not completed yet.
	Streams, Sessions, Viewers, Connecting, Relays, UDPMappings int
	// Datagrams sent on the ICE UDP socket, and those the kernel refused.
	DatagramsSent, DatagramsFailed uint64
	// Refused counts refusals by reason (Refusal), since the server started.
	Refused [refusals]uint64
	// ConnectTimeouts counts sessions closed because their ICE and DTLS
	// did not complete within ConnectTimeout.
	ConnectTimeouts uint64
}

// Refusal is why the server refused a session, or a request on one.
type Refusal uint8

// Refusals, each a label of the refusal metric.
const (
	RefusedViewerCap       Refusal = iota // a viewer cap or the stream's fan-out: 503 stream-viewer-cap
	RefusedConnecting                     // MaxConnectingViewers: 503 stream-viewer-cap
	RefusedAddressRate                    // PerAddress.Rate: 429 stream-session-rate
	RefusedAddressSessions                // PerAddress.MaxSessions: 429 stream-session-limit
	RefusedSessionAuth                    // PATCH or DELETE without the session's credentials: 401, 403
	RefusedCapAtConnect                   // connected while the caps were full: closed
	refusals
)

// String is the refusal's metric label.
func (r Refusal) String() string {
	switch r {
	case RefusedViewerCap:
		return "viewer_cap"
	case RefusedConnecting:
		return "connecting_cap"
	case RefusedAddressRate:
		return "address_rate"
	case RefusedAddressSessions:
		return "address_sessions"
	case RefusedSessionAuth:
		return "session_auth"
	case RefusedCapAtConnect:
		return "cap_at_connect"
	}
	return "unknown"
}

// Stats counts what the server holds now.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	st := Stats{
		Streams: len(s.hubs), Sessions: len(s.sessions), Viewers: int(s.viewers.Load()),
		Connecting: int(s.connecting.Load()), Relays: len(s.relays), UDPMappings: s.eng.udp.mappings(),
		DatagramsSent: s.eng.out.sent.Load(), DatagramsFailed: s.eng.out.failed.Load(),
		ConnectTimeouts: s.timeouts.Load(),
	}
	s.mu.Unlock()
	for i := range st.Refused {
		st.Refused[i] = s.refused[i].Load()
	}
	return st
}

// Close ends every session and stream and closes the ICE sockets.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	sessions := make([]*session, 0, len(s.sessions))
	for _, x := range s.sessions {
		sessions = append(sessions, x)
	}
	relays := make([]*relay, 0, len(s.relays))
	for _, r := range s.relays {
		relays = append(relays, r)
	}
	hubs := make([]*Hub, 0, len(s.hubs))
	for _, e := range s.hubs {
		hubs = append(hubs, e.hub)
	}
	s.mu.Unlock()
	for _, r := range relays {
		r.stop()
	}
	for _, x := range sessions {
		x.close()
	}
	for _, h := range hubs {
		h.end()
	}
	s.eng.close()
	return nil
}

// hubFor returns the stream's hub, creating it when create is set.
func (s *Server) hubFor(name string, create bool) (*Hub, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, errors.New("server closed")
	}
	if e := s.hubs[name]; e != nil {
		s.mu.Unlock()
		return e.hub, nil
	}
	if !create {
		s.mu.Unlock()
		return nil, nil
	}
	o := s.options()
	e := &hubEntry{}
	e.hub = newHub(name, hubConfig{
		grace: o.PublisherGrace, keyframeEvery: o.KeyframeInterval, behind: s.fanoutBehind, cacheSize: o.CachePackets, out: s.eng.out,
		onFull: func(h *Hub, lag time.Duration) {
			s.log.Warn("stream fan-out behind its studio: new WebRTC viewers are sent to LL-HLS",
				"stream", h.Name(), "lag", lag.Round(time.Millisecond), "viewers", h.Viewers(), "for", fanoutCooldown)
		},
		onEnd: func(h *Hub) {
			s.mu.Lock()
			if s.hubs[name] == e {
				delete(s.hubs, name)
			}
			r := s.relays[name]
			s.mu.Unlock()
			if r != nil {
				go r.stop()
			}
			if e.cleanup != nil {
				e.cleanup()
			}
		},
	})
	s.hubs[name] = e
	s.mu.Unlock()
	if o.OnHub != nil {
		e.cleanup = o.OnHub(e.hub)
	}
	return e.hub, nil
}

// Handle serves one request under the prefix. requestID is echoed in
// problem bodies; client is the address the request comes from, as the
// edge established it (trusted proxies), which PerAddress limits (when it
// is not valid, the connection's peer). The handler may block while ICE
// candidates are gathered (milliseconds: host candidates on the node's
// muxed sockets only).
func (s *Server) Handle(ctx *fasthttp.RequestCtx, requestID []byte, client netip.Addr) {
	if !client.IsValid() {
		client, _ = netip.AddrFromSlice(ctx.RemoteIP())
	}
	rest, ok := strings.CutPrefix(string(ctx.Path()), s.options().Prefix)
	if !ok {
		problem.Write(ctx, problem.NotFound, "", requestID)
		return
	}
	parts := strings.Split(rest, "/")
	if len(parts) < 2 || !validName(parts[0]) {
		problem.Write(ctx, problem.StreamNotFound, "no stream of that name", requestID)
		return
	}
	stream, endpoint := parts[0], parts[1]
	if endpoint != "whip" && endpoint != "whep" {
		problem.Write(ctx, problem.NotFound, "", requestID)
		return
	}
	cors(ctx)
	method := string(ctx.Method())
	switch {
	case len(parts) == 2 && method == fasthttp.MethodOptions:
		ctx.Response.Header.Set("Accept-Post", "application/sdp")
		ctx.SetStatusCode(fasthttp.StatusNoContent)
	case len(parts) == 2 && method == fasthttp.MethodPost:
		if endpoint == "whip" {
			s.publish(ctx, stream, requestID, client)
		} else {
			s.play(ctx, stream, requestID, client)
		}
	case len(parts) == 3 && method == fasthttp.MethodOptions:
		ctx.Response.Header.Set("Accept-Patch", "application/trickle-ice-sdpfrag")
		ctx.SetStatusCode(fasthttp.StatusNoContent)
	case len(parts) == 3 && (method == fasthttp.MethodDelete || method == fasthttp.MethodPatch):
		x := s.session(parts[2])
		if x == nil || x.stream != stream || x.endpoint != endpoint {
			problem.Write(ctx, problem.StreamSessionNotFound, "", requestID)
			return
		}
		if !s.authorized(ctx, x, requestID) {
			return
		}
		if method == fasthttp.MethodDelete {
			x.close()
			ctx.SetStatusCode(fasthttp.StatusOK)
			return
		}
		x.patch(ctx, requestID)
	default:
		allow := "OPTIONS, POST"
		if len(parts) == 3 {
			allow = "OPTIONS, PATCH, DELETE"
		}
		problem.Write(ctx, problem.MethodNotAllowed, "", requestID)
		ctx.Response.Header.Set("Allow", allow)
	}
}

func cors(ctx *fasthttp.RequestCtx) {
	h := &ctx.Response.Header
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Methods", "OPTIONS, POST, PATCH, DELETE")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, If-Match")
	h.Set("Access-Control-Expose-Headers", "Location, ETag, Link, Accept-Patch, Retry-After, "+SessionTokenHeader)
}

// validName: 1–64 of [A-Za-z0-9._-], not starting with a dot.
func validName(n string) bool {
	if n == "" || len(n) > 64 || n[0] == '.' {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func (s *Server) session(id string) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions[id]
}

// HLSURL is the LL-HLS playlist of a stream, named to viewers over a cap.
func (s *Server) HLSURL(stream string) string {
	return s.options().Prefix + stream + "/hls/index.m3u8"
}

// readOffer checks the body of a POST or PATCH; it writes the problem and
// returns false when the request cannot go on.
func (s *Server) readBody(ctx *fasthttp.RequestCtx, contentType string, requestID []byte) ([]byte, bool) {
	ct := string(ctx.Request.Header.ContentType())
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	if !strings.EqualFold(strings.TrimSpace(ct), contentType) {
		problem.Write(ctx, problem.UnsupportedMedia, "Content-Type must be "+contentType, requestID)
		return nil, false
	}
	b := ctx.PostBody()
	if limit := s.options().MaxBodyBytes; len(b) > limit {
		problem.Write(ctx, problem.BodyTooLarge, "at most "+strconv.Itoa(limit)+" bytes", requestID)
		return nil, false
	}
	return b, true
}

// linkICEServers advertises the ICE servers (RFC 9725 §4.6).
func (s *Server) linkICEServers(ctx *fasthttp.RequestCtx) {
	for _, srv := range s.options().ICE.Servers {
		for _, u := range srv.URLs {
			v := "<" + u + `>; rel="ice-server"`
			if srv.Username != "" {
				v += fmt.Sprintf("; username=%q; credential=%q; credential-type=\"password\"", srv.Username, srv.Credential)
			}
			ctx.Response.Header.Add("Link", v)
		}
	}
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ValidName reports whether n may name a stream: 1–64 of [A-Za-z0-9._-],
// not starting with a dot.
func ValidName(n string) bool { return validName(n) }

// WHEPURL is the WHEP endpoint of a stream, as play.json names it.
func (s *Server) WHEPURL(stream string) string {
	return s.options().Prefix + stream + "/whep"
}

// ICEServers are the STUN/TURN servers handed to clients.
func (s *Server) ICEServers() []ICEServer {
	return append([]ICEServer(nil), s.options().ICE.Servers...)
}

// State is how a stream is available on a node.
type State string

// States of a stream.
const (
	StateLive    State = "live"    // a studio publishes it to this node
	StateRelayed State = "relayed" // pulled from another region's edge, media flowing
	StateOffline State = "offline" // neither (or between a studio's reconnects)
)

// State reports how the stream is available here now.
func (s *Server) State(stream string) State {
	s.mu.Lock()
	e, relayed := s.hubs[stream], s.relays[stream] != nil
	s.mu.Unlock()
	switch {
	case e == nil || !e.hub.Live():
		return StateOffline
	case relayed:
		return StateRelayed
	}
	return StateLive
}

// OverViewerCap reports whether one more WebRTC viewer of the stream would
// be refused, by the node's or the stream's cap, because too many viewers
// are connecting, or because the stream's fan-out is full: players should
// start on LL-HLS.
func (s *Server) OverViewerCap(stream string) bool {
	if h := s.Hub(stream); h != nil && h.FanoutFull() {
		return true
	}
	o := s.options()
	if c := o.MaxViewersPerNode; c > 0 && int(s.viewers.Load()) >= c {
		return true
	}
	if c := o.MaxConnectingViewers; c > 0 && int(s.connecting.Load()) >= c {
		return true
	}
	if c := o.MaxViewersPerStream; c > 0 {
		if h := s.Hub(stream); h != nil && h.Viewers() >= c {
			return true
		}
	}
	return false
}

// Watch returns the stream's hub for a reader that is not a WHEP viewer
// (LL-HLS requests, play.json): the stream published here or, when it is
// not and relay peers are configured, one pulled from another region's edge
// (the pull starts now). Each call counts as a viewer's activity: a pull
// lasts at least the relay grace after the last one. nil when the stream
// is neither here nor can be pulled.
func (s *Server) Watch(stream string) *Hub {
	if h := s.Hub(stream); h != nil {
		s.mu.Lock()
		r := s.relays[stream]
		s.mu.Unlock()
		if r != nil {
			r.viewerLeft() // restarts the idle countdown
		}
		return h
	}
	return s.startRelay(stream)
}

// publishedHere: a studio now publishes the stream to this node. A pull of
// it from another region, started by a viewer (or an LL-HLS or play.json
// request) before the studio arrived, stops; the hub, which the studio
// feeds now, stays.
func (s *Server) publishedHere(stream string) {
	s.mu.Lock()
	r := s.relays[stream]
	if r != nil {
		delete(s.relays, stream)
	}
	s.mu.Unlock()
	if r != nil {
		s.log.Info("stream relay stopped: published here", "stream", stream)
		go r.stop()
	}
}

// setGrace sets how long the stream outlives its publisher from the
// publisher's next departure (a grace already counting keeps its length).
func (h *Hub) setGrace(d time.Duration) {
	h.mu.Lock()
	h.cfg.grace = d
	h.mu.Unlock()
}

// publishedHere reports whether a local studio (not a relay) feeds the hub.
func (h *Hub) publishedHere() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, relayed := h.src.(*relaySource)
	return h.src != nil && !relayed
}
