package configs

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// oneNode is the deployment of these tests: one region, one node (five
// lines, so the error lines below count from the sixth).
const oneNode = `regions:
  - name: sea
    nodes:
      - name: sea-1
        listeners: [{address: "127.0.0.1:8443", tls: {mode: "off"}}]
`

// Every mistake in the streams section is reported at once, each naming
// the file, the line and the field.
func TestStreamErrorsNameFileLineAndField(t *testing.T) {
	src := oneNode + `routes:
  - name: live
    kind: stream
    match: {path_prefix: /live/}
streams:
  studios:
    - {name: Studio A, token: long-enough-token}
    - name: studio-b
      token: short
      streams: ["bacc-*", "bad/pattern", ""]
    - {name: studio-b, token: another-long-token}
  viewer_token_key: too-short
  max_viewers_per_stream: -2
  max_viewers_per_node: -5
  ice:
    udp_port: 70000
    tcp_port: -1
    nat_1to1_ips: [203.0.113.7, not-an-ip]
    servers:
      - urls: []
      - urls: ["stun:ok.example.net:3478", "http://stun.example.net"]
  publisher_grace: -1s
  media_timeout: -2s
  relay_grace: -3s
  allow_takeover: maybe
  max_connecting_viewers: -3
  connect_timeout: -4s
  per_address: {rate: 1/x, burst: -1, max_sessions: -7}
`
	_, err := Parse("streams.yaml", []byte(src))
	var errs *Errors
	if !errors.As(err, &errs) {
		t.Fatalf("want *Errors, got %v", err)
	}
	want := []string{
		`streams.yaml:12: streams.studios[0].name: "Studio A" must be lower-case letters, digits, '-' or '_' (at most 63)`,
		`streams.yaml:14: streams.studios[1].token: too short: use at least 8 characters`,
		`streams.yaml:15: streams.studios[1].streams[1]: "bad/pattern" is not a stream name pattern`,
		`streams.yaml:15: streams.studios[1].streams[2]: "" is not a stream name pattern`,
		`streams.yaml:16: streams.studios[2].name: duplicate studio "studio-b"`,
		`streams.yaml:17: streams.viewer_token_key: too short: use at least 16 characters`,
		`streams.yaml:18: streams.max_viewers_per_stream: must be positive, or -1 for no limit; got -2`,
		`streams.yaml:19: streams.max_viewers_per_node: must be positive, or -1 for no limit; got -5`,
		`streams.yaml:21: streams.ice.udp_port: must be 1-65535, got 70000`,
		`streams.yaml:22: streams.ice.tcp_port: must be 0 (off) or 1-65535, got -1`,
		`streams.yaml:23: streams.ice.nat_1to1_ips[1]: "not-an-ip" is not an IP address`,
		`streams.yaml:25: streams.ice.servers[0].urls: at least one stun:, turn: or turns: URL`,
		`streams.yaml:26: streams.ice.servers[1].urls[1]: "http://stun.example.net" is not a stun:, turn: or turns: URL`,
		`streams.yaml:27: streams.publisher_grace: must be greater than zero`,
		`streams.yaml:28: streams.media_timeout: must be greater than zero`,
		`streams.yaml:29: streams.relay_grace: must be greater than zero`,
		`streams.yaml:30: streams.allow_takeover: want true or false, got "maybe"`,
		`streams.yaml:31: streams.max_connecting_viewers: must be positive, or -1 for no limit; got -3`,
		`streams.yaml:32: streams.connect_timeout: must be greater than zero`,
		`streams.yaml:33: streams.per_address.rate: "1/x" is not a rate such as 100/s: the unit is s, m or h`,
	}
	wantProblems(t, err, want...)
	msg := err.Error()
	// Valid values are not reported.
	for _, ok := range []string{"streams.studios[0].token", "streams.studios[1].streams[0]", "nat_1to1_ips[0]", "servers[1].urls[0]", "routes[0].kind"} {
		if strings.Contains(msg, ok+":") {
			t.Errorf("a valid field was reported (%s):\n%s", ok, msg)
		}
	}
}

// A stream route needs at least one studio that may publish.
func TestStreamRouteNeedsStudios(t *testing.T) {
	src := oneNode + `routes:
  - name: live
    kind: stream
    match: {path_prefix: /live/}
`
	_, err := Parse("nostudio.yaml", []byte(src))
	want := "nostudio.yaml:8: routes[0].kind: stream routes need streams.studios"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("want %q, got %v", want, err)
	}
}

// The defaults a streams section without settings gets, and studios'
// default stream patterns.
func TestStreamDefaults(t *testing.T) {
	src := oneNode + `streams:
  studios: [{name: studio-a, token: long-enough-token}]
`
	c, err := Parse("d.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	s := c.Streams
	if s.ICE.UDPPort != DefaultStreamUDPPort || s.PublisherGrace.D() != DefaultStreamPublisherGrace ||
		s.MediaTimeout.D() != DefaultStreamMediaTimeout || s.RelayGrace.D() != DefaultStreamRelayGrace ||
		s.Relay == nil || !*s.Relay || s.AllowTakeover {
		t.Fatalf("stream defaults not applied: %+v", s)
	}
	if got := s.Studios[0].Streams; len(got) != 1 || got[0] != "*" {
		t.Fatalf("studio streams: want [*] by default, got %q", got)
	}
}

// Viewer caps, the connecting bound, the connect timeout and the
// per-address limits: defaults sized from the measured fan-out when absent,
// -1 for no limit, explicit values kept.
func TestStreamLimits(t *testing.T) {
	cases := []struct {
		name, yaml                           string
		perStream, perNode, connecting, maxS int
		burst                                int
		rate                                 float64
		timeout                              string
	}{
		{"defaults", "", DefaultStreamMaxViewersPerStream, DefaultStreamMaxViewersPerNode(), DefaultStreamMaxConnectingViewers,
			DefaultStreamPerAddressMaxSessions, DefaultStreamPerAddressBurst, 1, "5s"},
		{"no limits", `  max_viewers_per_stream: -1
  max_viewers_per_node: -1
  max_connecting_viewers: -1
  per_address: {max_sessions: -1}
`, -1, -1, -1, -1, DefaultStreamPerAddressBurst, 1, "5s"},
		{"explicit", `  max_viewers_per_stream: 300
  max_viewers_per_node: 1200
  max_connecting_viewers: 50
  connect_timeout: 3s
  per_address: {rate: 30/m, burst: 10, max_sessions: 8}
`, 300, 1200, 50, 8, 10, 0.5, "3s"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := oneNode + "streams:\n  studios: [{name: studio-a, token: long-enough-token}]\n" + c.yaml
			cfg, err := Parse("limits.yaml", []byte(src))
			if err != nil {
				t.Fatal(err)
			}
			s := cfg.Streams
			got := []any{s.MaxViewersPerStream, s.MaxViewersPerNode, s.MaxConnectingViewers, s.PerAddress.MaxSessions, s.PerAddress.Burst, s.PerAddress.Rate.PerSecond, s.ConnectTimeout.D().String()}
			want := []any{c.perStream, c.perNode, c.connecting, c.maxS, c.burst, c.rate, c.timeout}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("per stream, per node, connecting, per-address sessions, burst, rate, connect timeout:\nexpected %v\ngot      %v", want, got)
			}
		})
	}
	if n := DefaultStreamMaxViewersPerNode(); n < DefaultStreamMaxViewersPerStream || n%DefaultStreamMaxViewersPerStream != 0 {
		t.Errorf("the node's default cap: expected a multiple of the stream's (one per core), got %d", n)
	}

	src := oneNode + `streams:
  studios: [{name: studio-a, token: long-enough-token}]
  per_address:
    rate: 2/s
    burst: -1
    max_sessions: -7
`
	_, err := Parse("limits.yaml", []byte(src))
	wantProblems(t, err,
		`limits.yaml:10: streams.per_address.burst: must be greater than zero`,
		`limits.yaml:11: streams.per_address.max_sessions: must be positive, or -1 for no limit; got -7`,
	)
}
