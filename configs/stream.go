package configs

import (
	"net/netip"
	"runtime"
	"strings"
	"time"
)

// Streams configures live streams (routes of kind "stream"): WHIP ingest,
// WHEP playback and the relay between regions. One set for the deployment;
// each node opens its ICE ports on the host of its first listener.
//
// A reload applies every field to the running node without touching live
// sessions, except the ICE sockets (ice.udp_port, ice.tcp_port,
// ice.nat_1to1_ips, and the first listener's host they bind), which keep
// their running values until a restart; the reload logs them.
type Streams struct {
	// Studios may publish (WHIP) with their bearer token. A studio removed
	// by a reload (or whose token or streams changed) keeps its live
	// session, but cannot publish again without the new credentials.
	Studios []StreamStudio `yaml:"studios"`
	// AllowTakeover lets another studio replace a stream's live publisher
	// (a studio always replaces its own: a reconnect).
	AllowTakeover bool `yaml:"allow_takeover"`
	// ViewerTokenKey, when set, makes WHEP require a signed viewer token
	// (HMAC-SHA256 with this key, with an expiry). At least 16 characters.
	ViewerTokenKey string `yaml:"viewer_token_key"`
	// Caps on connected WebRTC viewers; over a cap, viewers are sent to
	// the stream's LL-HLS URL. 0 or absent: the default, sized from the
	// measured fan-out (DefaultStreamMaxViewersPerStream, and
	// DefaultStreamMaxViewersPerNode for this machine's cores); -1: no
	// cap. A cap lowered by a reload applies to new viewers; those
	// watching stay.
	MaxViewersPerStream int `yaml:"max_viewers_per_stream"`
	MaxViewersPerNode   int `yaml:"max_viewers_per_node"`
	// MaxConnectingViewers bounds a node's WebRTC viewers whose ICE and
	// DTLS have not completed (they do not count against the caps); over
	// it, new viewers are sent to LL-HLS too. -1: no bound.
	MaxConnectingViewers int `yaml:"max_connecting_viewers"`
	// ConnectTimeout closes a session (WHIP or WHEP) whose ICE and DTLS
	// have not completed in time.
	ConnectTimeout Duration `yaml:"connect_timeout"`
	// PerAddress limits the sessions one client address (an IPv6 client's
	// /64) may start. Signed relays are exempt.
	PerAddress StreamPerAddress `yaml:"per_address"`
	ICE        StreamICE        `yaml:"ice"`
	// PublisherGrace is how long a stream waits for its studio to
	// reconnect; viewers stay connected meanwhile. A reload's value counts
	// from a publisher's next departure, on live streams too.
	PublisherGrace Duration `yaml:"publisher_grace"`
	// MediaTimeout closes a publisher whose media has not started in time.
	MediaTimeout Duration `yaml:"media_timeout"`
	// Relay pulls streams published in other regions for local viewers,
	// from those regions' edges (their first listener). Turned off by a
	// reload, no pull starts; running ones end as usual, relay_grace after
	// their last viewer.
	Relay *bool `yaml:"relay"`
	// RelayGrace keeps a pull after its last local viewer left.
	RelayGrace Duration `yaml:"relay_grace"`
}

// StreamPerAddress limits session creation per client address: a token
// bucket over WHEP POSTs and WHIP POSTs without a valid studio token (429
// with Retry-After when it runs out),
// and the WHEP sessions, connecting or connected, an address may hold at
// once (429 naming the LL-HLS URL). Defaults a household behind one NAT
// does not reach; a client creating sessions by the hundred does.
type StreamPerAddress struct {
	Rate  Rate `yaml:"rate"`
	Burst int  `yaml:"burst"`
	// MaxSessions: -1 for no limit.
	MaxSessions int `yaml:"max_sessions"`
}

// StreamStudio is one studio's publishing credential.
type StreamStudio struct {
	Name  string `yaml:"name"`
	Token string `yaml:"token"`
	// Streams are the names it may publish (patterns: "bacc-*"; default
	// every stream).
	Streams []string `yaml:"streams"`
}

// StreamICE is how peers reach a node's media.
type StreamICE struct {
	// UDPPort is the one UDP port of every session on a node (ICE UDP mux).
	// Restart only.
	UDPPort int `yaml:"udp_port"`
	// TCPPort, when set, is a passive ICE-TCP port for UDP-blocked clients.
	// Restart only.
	TCPPort int `yaml:"tcp_port"`
	// NAT1To1IPs are the public addresses of a node behind 1:1 NAT.
	// Restart only.
	NAT1To1IPs []string `yaml:"nat_1to1_ips"`
	// Servers are STUN/TURN servers handed to clients (WHIP/WHEP Link
	// headers, play.json); a reload changes them at once.
	Servers []StreamICEServer `yaml:"servers"`
}

// StreamICEServer is one STUN or TURN server.
type StreamICEServer struct {
	URLs       []string `yaml:"urls"`
	Username   string   `yaml:"username"`
	Credential string   `yaml:"credential"`
}

// Stream defaults.
const (
	DefaultStreamUDPPort        = 8189
	DefaultStreamPublisherGrace = 10 * time.Second
	DefaultStreamMediaTimeout   = 10 * time.Second
	DefaultStreamRelayGrace     = 10 * time.Second
	// One stream's fan-out runs on one core, which serves 500–600 WebRTC
	// viewers with no loss (README, Performance): 500 leaves headroom.
	DefaultStreamMaxViewersPerStream = 500
	// A viewer completes ICE and DTLS in well under a second, and a core
	// sets up about 180 sessions a second: 200 connecting at once is more
	// than a node's cores can set up, so a real join surge never reaches
	// it.
	DefaultStreamMaxConnectingViewers = 200
	DefaultStreamConnectTimeout       = 5 * time.Second
	// Per client address: a household of a few players, each with a few
	// tables open, starts a few dozen sessions at once and then one per
	// table every 5–30 s at most (the player's retries).
	DefaultStreamPerAddressRate        = "1/s"
	DefaultStreamPerAddressBurst       = 32
	DefaultStreamPerAddressMaxSessions = 32

	// What a node's stream server (package stream) takes beyond the
	// settings above, which the configuration does not expose.

	// DefaultStreamMaxBodyBytes bounds SDP offers and PATCH bodies.
	DefaultStreamMaxBodyBytes = 64 << 10
	// DefaultStreamKeyframeInterval is the least time between keyframe
	// requests to a publisher.
	DefaultStreamKeyframeInterval = 250 * time.Millisecond
	// DefaultStreamCachePackets is how many packets per track are kept
	// for NACKs.
	DefaultStreamCachePackets = 1024
	// DefaultStreamRelayReadyTimeout bounds how long a WHEP request waits
	// for a stream's first track (a relay being set up, a publisher about
	// to send).
	DefaultStreamRelayReadyTimeout = 5 * time.Second
	// A relay pull that broke retries after 250ms, doubling up to 10s.
	DefaultStreamRelayMinBackoff = 250 * time.Millisecond
	DefaultStreamRelayMaxBackoff = 10 * time.Second
	// DefaultStreamRelayNotFoundTTL is how long a stream no peer had is
	// answered 404 without asking the peers again.
	DefaultStreamRelayNotFoundTTL = 2 * time.Second
)

// DefaultStreamMaxViewersPerNode is the node's cap: a stream's fan-out per
// core, on every core but one (kept for TLS, the rule engine, LL-HLS and
// money routes, which must not starve behind video), at least one. Cores
// are GOMAXPROCS: the CPUs the process may use.
func DefaultStreamMaxViewersPerNode() int {
	return DefaultStreamMaxViewersPerStream * max(1, runtime.GOMAXPROCS(0)-1)
}

func streamDefaults(c *Config) {
	s := &c.Streams
	setInt(&s.ICE.UDPPort, DefaultStreamUDPPort)
	setDur(&s.PublisherGrace, DefaultStreamPublisherGrace)
	setDur(&s.MediaTimeout, DefaultStreamMediaTimeout)
	setInt(&s.MaxViewersPerStream, DefaultStreamMaxViewersPerStream)
	setInt(&s.MaxViewersPerNode, DefaultStreamMaxViewersPerNode())
	setInt(&s.MaxConnectingViewers, DefaultStreamMaxConnectingViewers)
	setDur(&s.ConnectTimeout, DefaultStreamConnectTimeout)
	if s.PerAddress.Rate.Text == "" {
		s.PerAddress.Rate, _ = ParseRate(DefaultStreamPerAddressRate)
	}
	setInt(&s.PerAddress.Burst, DefaultStreamPerAddressBurst)
	setInt(&s.PerAddress.MaxSessions, DefaultStreamPerAddressMaxSessions)
	setDur(&s.RelayGrace, DefaultStreamRelayGrace)
	setBool(&s.Relay, true)
	for i := range s.Studios {
		if len(s.Studios[i].Streams) == 0 {
			s.Studios[i].Streams = []string{"*"}
		}
	}
}

// validate checks the streams section; routes of kind stream need a
// studio that may publish.
func (s *Streams) validate(v *validator, routes []Route) {
	seen := map[string]bool{}
	for i := range s.Studios {
		st := &s.Studios[i]
		v.uniqueName(seen, &st.Name, "duplicate studio %q")
		if len(st.Token) < 8 {
			v.bad(&st.Token, "too short: use at least 8 characters")
		}
		for j, pat := range st.Streams {
			if pat == "" || strings.ContainsAny(pat, "/ ") {
				v.bad(&st.Streams[j], "%q is not a stream name pattern", pat)
			}
		}
	}
	if s.ViewerTokenKey != "" && len(s.ViewerTokenKey) < 16 {
		v.bad(&s.ViewerTokenKey, "too short: use at least 16 characters")
	}
	for _, n := range []*int{&s.MaxViewersPerStream, &s.MaxViewersPerNode, &s.MaxConnectingViewers, &s.PerAddress.MaxSessions} {
		if *n < -1 {
			v.bad(n, "must be positive, or -1 for no limit; got %d", *n)
		}
	}
	positive(v, &s.ConnectTimeout)
	positive(v, &s.PerAddress.Burst)
	if s.ICE.UDPPort < 1 || s.ICE.UDPPort > 65535 {
		v.bad(&s.ICE.UDPPort, "must be 1-65535, got %d", s.ICE.UDPPort)
	}
	if s.ICE.TCPPort < 0 || s.ICE.TCPPort > 65535 {
		v.bad(&s.ICE.TCPPort, "must be 0 (off) or 1-65535, got %d", s.ICE.TCPPort)
	}
	for i, ip := range s.ICE.NAT1To1IPs {
		if _, err := netip.ParseAddr(ip); err != nil {
			v.bad(&s.ICE.NAT1To1IPs[i], "%q is not an IP address", ip)
		}
	}
	for i := range s.ICE.Servers {
		srv := &s.ICE.Servers[i]
		if len(srv.URLs) == 0 {
			v.bad(&srv.URLs, "at least one stun:, turn: or turns: URL")
		}
		for j, u := range srv.URLs {
			if !strings.HasPrefix(u, "stun:") && !strings.HasPrefix(u, "turn:") && !strings.HasPrefix(u, "turns:") {
				v.bad(&srv.URLs[j], "%q is not a stun:, turn: or turns: URL", u)
			}
		}
	}
	positive(v, &s.PublisherGrace)
	positive(v, &s.MediaTimeout)
	positive(v, &s.RelayGrace)
	for i := range routes {
		if routes[i].Kind == KindStream && len(s.Studios) == 0 {
			v.bad(&routes[i].Kind, "stream routes need streams.studios")
		}
	}
}
