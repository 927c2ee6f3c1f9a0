package stream

import (
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hedge/internal/testkit"
)

// Reconfigure swaps studios, caps and ICE servers on a running server while
// a publisher and a viewer stay connected and keep receiving; settings that
// need new sockets are named and keep their running values.
func TestReconfigureKeepsLiveSessions(t *testing.T) {
	opts := Options{
		Studios: []Studio{{Name: "studio-a", Token: "token-a-123", Streams: []string{"bacc-*"}}},
		ICE:     ICE{Servers: []ICEServer{{URLs: []string{"stun:old.example.net:3478"}}}},
	}
	n := startNode(t, opts)
	pub, res := newPublisher(t, n, "bacc-01", "token-a-123")
	if pub == nil {
		t.Fatalf("WHIP before reconfigure: expected 201, got %d %s", res.status, res.body)
	}
	pub.Send(1)
	v, res := newViewer(t, n, "bacc-01")
	if v == nil {
		t.Fatalf("WHEP before reconfigure: expected 201, got %d %s", res.status, res.body)
	}
	testkit.WaitUntil(t, "media at the viewer", 10*time.Second, func() bool { vid, _ := v.Snapshot(); return len(vid) >= 20 })

	next := *n.srv.options()
	next.Studios = []Studio{{Name: "studio-b", Token: "token-b-456", Streams: []string{"*"}}}
	next.MaxViewersPerStream = 1
	next.PublisherGrace = 3 * time.Second
	next.ICE = ICE{
		UDP: "127.0.0.1:1", TCP: "127.0.0.1:2", NAT1To1IPs: []string{"203.0.113.7"},
		Servers: []ICEServer{{URLs: []string{"turn:new.example.net:3478"}, Username: "u", Credential: "c"}},
	}
	udp := n.srv.UDPAddr()
	got := n.srv.Reconfigure(next)
	want := []string{SettingICEUDP, SettingICETCP, SettingICENAT1To1IPs, SettingICELoopback}
	if !slices.Equal(got, want) {
		t.Errorf("Reconfigure with new sockets: expected %v to need a restart, got %v", want, got)
	}
	if cur := n.srv.options().ICE; cur.UDP != "127.0.0.1:0" || cur.TCP != "" || cur.NAT1To1IPs != nil || !cur.Loopback {
		t.Errorf("restart-only ICE settings: expected the running ones kept, got %+v", cur)
	}
	if n.srv.UDPAddr() != udp {
		t.Errorf("ICE UDP socket: expected %s kept, got %s", udp, n.srv.UDPAddr())
	}
	if got := n.srv.Hub("bacc-01").cfg.grace; got != 3*time.Second {
		t.Errorf("live stream's publisher grace: expected 3s after reconfigure, got %v", got)
	}

	// The old studio's token is refused, the new one accepted (on another
	// stream: bacc-01 is still the old studio's, live).
	if _, res := newPublisher(t, n, "bacc-02", "token-a-123"); res.status != http.StatusUnauthorized {
		t.Errorf("WHIP with the removed studio's token: expected 401, got %d %s", res.status, res.body)
	}
	pub2, res := newPublisher(t, n, "roulette-1", "token-b-456")
	if pub2 == nil {
		t.Fatalf("WHIP with the new studio's token: expected 201, got %d %s", res.status, res.body)
	}
	if l := res.header.Get("Link"); l != `<turn:new.example.net:3478>; rel="ice-server"; username="u"; credential="c"; credential-type="password"` {
		t.Errorf("WHIP Link after reconfigure: expected the new TURN server, got %q", l)
	}
	if s := n.srv.ICEServers(); len(s) != 1 || s[0].URLs[0] != "turn:new.example.net:3478" {
		t.Errorf("ICEServers after reconfigure: expected the new TURN server, got %+v", s)
	}

	// The lowered cap applies to the next viewer; the one watching stays.
	if _, res := newViewer(t, n, "bacc-01"); res.status != http.StatusServiceUnavailable || problemType(res.body) != "urn:hedge:problem:stream-viewer-cap" {
		t.Errorf("second viewer over the new cap of 1: expected 503 stream-viewer-cap, got %d %s", res.status, res.body)
	}
	before, _ := v.Snapshot()
	testkit.WaitUntil(t, "the first viewer still receiving after reconfigure", 10*time.Second, func() bool {
		vid, _ := v.Snapshot()
		return len(vid) >= len(before)+20
	})
	if st := n.srv.Stats(); st.Viewers != 1 || st.Streams != 2 {
		t.Errorf("after reconfigure: expected 1 viewer and 2 streams, got %+v", st)
	}

	// The removed studio's live stream keeps running, but the studio cannot
	// publish it again once it has left.
	if n.srv.State("bacc-01") != StateLive {
		t.Errorf("removed studio's stream: expected live, got %s", n.srv.State("bacc-01"))
	}
	if _, res := newPublisher(t, n, "bacc-01", "token-a-123"); res.status != http.StatusUnauthorized {
		t.Errorf("removed studio reconnecting: expected 401, got %d %s", res.status, res.body)
	}
}

// A Reconfigure with the same sockets needs no restart.
func TestReconfigureSameSocketsNeedsNoRestart(t *testing.T) {
	n := startNode(t, Options{ICE: ICE{NAT1To1IPs: []string{"203.0.113.7"}}})
	next := *n.srv.options()
	next.ICE.NAT1To1IPs = []string{"203.0.113.7"}
	next.AllowTakeover = true
	if got := n.srv.Reconfigure(next); len(got) != 0 {
		t.Errorf("Reconfigure with unchanged sockets: expected nothing to need a restart, got %v", got)
	}
	if !n.srv.options().AllowTakeover {
		t.Error("AllowTakeover: expected true after reconfigure, got false")
	}
}

// Requests reading the settings and streams starting while Reconfigure
// swaps them race with nothing (run with -race), and every stream ends up
// with the last publisher grace.
func TestReconfigureWhileServing(t *testing.T) {
	n := startNode(t, Options{})
	var wg sync.WaitGroup
	var finished atomic.Int32
	for g := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer finished.Add(1)
			for i := range 50 {
				_ = n.srv.OverViewerCap("bacc-01")
				_ = n.srv.ICEServers()
				_ = n.srv.WHEPURL("bacc-01")
				_, _ = studioFor(n.srv.options().Studios, "token-x", "bacc-01")
				if _, err := n.srv.hubFor(fmt.Sprintf("s%d-%d", g, i), true); err != nil {
					t.Errorf("hubFor: %v", err)
					return
				}
			}
		}()
	}
	// At least 50 rounds, and on until both readers are done (bounded).
	last := 0
	for i := 1; i <= 1_000_000 && (i <= 50 || finished.Load() < 2); i++ {
		o := *n.srv.options()
		o.PublisherGrace = time.Duration(i) * time.Millisecond
		o.MaxViewersPerNode = i
		o.Studios = []Studio{{Name: "s", Token: fmt.Sprintf("token-%d", i), Streams: []string{"*"}}}
		o.ICE.Servers = []ICEServer{{URLs: []string{fmt.Sprintf("stun:s%d.example.net", i)}}}
		if got := n.srv.Reconfigure(o); len(got) != 0 {
			t.Fatalf("round %d: expected no restart-only change, got %v", i, got)
		}
		last = i
	}
	wg.Wait()
	want := time.Duration(last) * time.Millisecond
	n.srv.mu.Lock()
	defer n.srv.mu.Unlock()
	if len(n.srv.hubs) != 100 {
		t.Errorf("streams started: expected 100, got %d", len(n.srv.hubs))
	}
	for name, e := range n.srv.hubs {
		e.hub.mu.Lock()
		g := e.hub.cfg.grace
		e.hub.mu.Unlock()
		if g != want {
			t.Errorf("stream %s: expected the last publisher grace %v, got %v", name, want, g)
		}
	}
}

// Reading the options is the per-request cost Reconfigure adds.
func BenchmarkOptionsRead(b *testing.B) {
	s := &Server{}
	s.opts.Store(&Options{MaxViewersPerStream: 10})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		n := 0
		for pb.Next() {
			n += s.options().MaxViewersPerStream
		}
		_ = n
	})
}

// Relaying turned off by Reconfigure starts no new pull; a pull that runs
// carries on until its viewers are gone.
func TestReconfigureRelayOff(t *testing.T) {
	n := startNode(t, Options{Relay: RelayOptions{
		Peers: []string{"http://127.0.0.1:9/live/"}, ReadyTimeout: 100 * time.Millisecond, Grace: time.Minute,
	}})
	if n.srv.Watch("bacc-01") == nil {
		t.Fatal("Watch with a relay peer: expected a pull to start, got nil")
	}
	o := *n.srv.options()
	o.Relay.Peers = nil
	if got := n.srv.Reconfigure(o); len(got) != 0 {
		t.Fatalf("Reconfigure relay off: expected no restart-only change, got %v", got)
	}
	if h := n.srv.Watch("bacc-02"); h != nil {
		t.Errorf("Watch after relaying was turned off: expected nil, got the hub of %s", h.name)
	}
	if st := n.srv.Stats(); st.Relays != 1 {
		t.Errorf("pulls after relaying was turned off: expected the running one kept (1), got %d", st.Relays)
	}
}
