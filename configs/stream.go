package configs

import (
	"fmt"
	"net/netip"
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
	// Caps on WebRTC viewers (0: none); over a cap, viewers are sent to
	// the stream's LL-HLS URL. A cap lowered by a reload applies to new
	// viewers; those watching stay.
	MaxViewersPerStream int       `yaml:"max_viewers_per_stream"`
	MaxViewersPerNode   int       `yaml:"max_viewers_per_node"`
	ICE                 StreamICE `yaml:"ice"`
	// PublisherGrace is how long a stream waits for its studio to
	// reconnect; viewers stay connected meanwhile. A reload's value counts
	// from a publisher's next departure, on live streams too.
	PublisherGrace Duration `yaml:"publisher_grace"`
	// MediaTimeout closes a session whose media has not started in time.
	MediaTimeout Duration `yaml:"media_timeout"`
	// Relay pulls streams published in other regions for local viewers,
	// from those regions' edges (their first listener). Turned off by a
	// reload, no pull starts; running ones end as usual, relay_grace after
	// their last viewer.
	Relay *bool `yaml:"relay"`
	// RelayGrace keeps a pull after its last local viewer left.
	RelayGrace Duration `yaml:"relay_grace"`
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
)

func streamDefaults(c *Config) {
	s := &c.Streams
	setInt(&s.ICE.UDPPort, DefaultStreamUDPPort)
	setDur(&s.PublisherGrace, DefaultStreamPublisherGrace)
	setDur(&s.MediaTimeout, DefaultStreamMediaTimeout)
	setDur(&s.RelayGrace, DefaultStreamRelayGrace)
	setBool(&s.Relay, true)
	for i := range s.Studios {
		if len(s.Studios[i].Streams) == 0 {
			s.Studios[i].Streams = []string{"*"}
		}
	}
}

func (v *validator) streams(c *Config) {
	s := &c.Streams
	seen := map[string]bool{}
	for i, st := range s.Studios {
		p := fmt.Sprintf("streams.studios[%d]", i)
		v.name(p+".name", st.Name)
		if seen[st.Name] {
			v.bad(p+".name", "duplicate studio %q", st.Name)
		}
		seen[st.Name] = true
		if len(st.Token) < 8 {
			v.bad(p+".token", "too short: use at least 8 characters")
		}
		for j, pat := range st.Streams {
			if pat == "" || strings.ContainsAny(pat, "/ ") {
				v.bad(fmt.Sprintf("%s.streams[%d]", p, j), "%q is not a stream name pattern", pat)
			}
		}
	}
	if s.ViewerTokenKey != "" && len(s.ViewerTokenKey) < 16 {
		v.bad("streams.viewer_token_key", "too short: use at least 16 characters")
	}
	if s.MaxViewersPerStream < 0 {
		v.bad("streams.max_viewers_per_stream", "must not be negative")
	}
	if s.MaxViewersPerNode < 0 {
		v.bad("streams.max_viewers_per_node", "must not be negative")
	}
	if s.ICE.UDPPort < 1 || s.ICE.UDPPort > 65535 {
		v.bad("streams.ice.udp_port", "must be 1-65535, got %d", s.ICE.UDPPort)
	}
	if s.ICE.TCPPort < 0 || s.ICE.TCPPort > 65535 {
		v.bad("streams.ice.tcp_port", "must be 0 (off) or 1-65535, got %d", s.ICE.TCPPort)
	}
	for i, ip := range s.ICE.NAT1To1IPs {
		if _, err := netip.ParseAddr(ip); err != nil {
			v.bad(fmt.Sprintf("streams.ice.nat_1to1_ips[%d]", i), "%q is not an IP address", ip)
		}
	}
	for i, srv := range s.ICE.Servers {
		p := fmt.Sprintf("streams.ice.servers[%d]", i)
		if len(srv.URLs) == 0 {
			v.bad(p+".urls", "at least one stun:, turn: or turns: URL")
		}
		for j, u := range srv.URLs {
			if !strings.HasPrefix(u, "stun:") && !strings.HasPrefix(u, "turn:") && !strings.HasPrefix(u, "turns:") {
				v.bad(fmt.Sprintf("%s.urls[%d]", p, j), "%q is not a stun:, turn: or turns: URL", u)
			}
		}
	}
	v.positive("streams.publisher_grace", int64(s.PublisherGrace))
	v.positive("streams.media_timeout", int64(s.MediaTimeout))
	v.positive("streams.relay_grace", int64(s.RelayGrace))
	for i, r := range c.Routes {
		if r.Kind == "stream" && len(s.Studios) == 0 {
			v.bad(fmt.Sprintf("routes[%d].kind", i), "stream routes need streams.studios")
		}
	}
}
