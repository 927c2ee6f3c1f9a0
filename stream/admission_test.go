package stream

import (
	"fmt"
	"net/http"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"hedge/internal/testkit"
)

// halfOpenOffer is a viewer's offer that can never connect: no candidate,
// and none is trickled afterwards, like a client that posts offers and
// walks away.
func halfOpenOffer(t *testing.T) []byte {
	t.Helper()
	var b strings.Builder
	for line := range strings.SplitSeq(offerFor(t), "\r\n") {
		if line == "" || strings.HasPrefix(line, "a=candidate:") || line == "a=end-of-candidates" {
			continue
		}
		b.WriteString(line + "\r\n")
	}
	return []byte(b.String())
}

// Viewers that offer and never complete ICE and DTLS do not take the
// stream's or the node's viewer slots: with 24 of them connecting, real
// viewers still get the stream's two slots, and the third real one is
// refused by the cap, not by the half-open ones. The node's connecting
// viewers have a bound of their own; over it, WHEP answers 503 with
// Retry-After and the LL-HLS URL, and play.json would prefer LL-HLS.
func TestHalfOpenViewersTakeNoViewerSlot(t *testing.T) {
	const halfOpen, connectingBound = 24, 32
	n := startNode(t, Options{MaxViewersPerStream: 2, MaxConnectingViewers: connectingBound, ConnectTimeout: time.Minute})
	livePublisher(t, n, "bacc-41")
	offer := halfOpenOffer(t)
	for i := range halfOpen {
		if r := do(t, "POST", n.base+"bacc-41/whep", "application/sdp", "", offer); r.status != http.StatusCreated {
			t.Fatalf("half-open offer %d: expected 201, got %d %s", i, r.status, r.body)
		}
	}
	if st := n.srv.Stats(); st.Connecting != halfOpen || st.Viewers != 0 {
		t.Fatalf("after %d half-open offers: expected %d connecting and 0 viewers, got %+v", halfOpen, halfOpen, st)
	}
	if n.srv.OverViewerCap("bacc-41") {
		t.Fatal("play.json would prefer LL-HLS because of viewers that never connected")
	}

	for i := range 2 {
		v, res := newViewer(t, n, "bacc-41")
		if v == nil {
			t.Fatalf("real viewer %d beside %d half-open ones: expected 201, got %d %s", i, halfOpen, res.status, res.body)
		}
		testkit.WaitUntil(t, fmt.Sprintf("real viewer %d's media", i), 10*time.Second, func() bool { vid, _ := v.Snapshot(); return len(vid) >= 10 })
	}
	if st := n.srv.Stats(); st.Viewers != 2 || st.Connecting != halfOpen {
		t.Fatalf("expected 2 connected viewers and the %d half-open still connecting, got %+v", halfOpen, st)
	}
	if _, res := newViewer(t, n, "bacc-41"); res.status != http.StatusServiceUnavailable || problemType(res.body) != "urn:hedge:problem:stream-viewer-cap" {
		t.Fatalf("third real viewer over the stream's cap of 2: expected 503 stream-viewer-cap, got %d %s", res.status, res.body)
	}

	// The bound is the node's: more half-open viewers, of another stream,
	// reach it.
	livePublisher(t, n, "bacc-44")
	for i := halfOpen; i < connectingBound; i++ {
		if r := do(t, "POST", n.base+"bacc-44/whep", "application/sdp", "", offer); r.status != http.StatusCreated {
			t.Fatalf("half-open offer %d: expected 201, got %d %s", i, r.status, r.body)
		}
	}
	r := do(t, "POST", n.base+"bacc-44/whep", "application/sdp", "", offer)
	if r.status != http.StatusServiceUnavailable || problemType(r.body) != "urn:hedge:problem:stream-viewer-cap" ||
		r.header.Get("Retry-After") != "60" || !strings.Contains(r.header.Get("Link"), "/live/bacc-44/hls/index.m3u8") {
		t.Fatalf("over %d connecting viewers: expected 503 stream-viewer-cap with Retry-After 60 and the LL-HLS Link, got %d %v %s", connectingBound, r.status, r.header, r.body)
	}
	if !n.srv.OverViewerCap("bacc-44") {
		t.Error("with the connecting viewers at their bound, play.json should prefer LL-HLS")
	}
	st := n.srv.Stats()
	if st.Refused[RefusedConnecting] != 1 || st.Refused[RefusedViewerCap] != 1 {
		t.Errorf("refusals: expected 1 connecting_cap and 1 viewer_cap, got %v", st.Refused)
	}
}

// Viewers that never connect are closed after ConnectTimeout, and with
// them every goroutine, session and ICE mapping they held: the node is
// back to what it was before they came.
func TestHalfOpenViewersAreReclaimed(t *testing.T) {
	const halfOpen = 30
	const timeout = time.Second
	n := startNode(t, Options{ConnectTimeout: timeout})
	livePublisher(t, n, "bacc-42")
	base := settledGoroutines()
	offer := halfOpenOffer(t)
	start := time.Now()
	for i := range halfOpen {
		if r := do(t, "POST", n.base+"bacc-42/whep", "application/sdp", "", offer); r.status != http.StatusCreated {
			t.Fatalf("half-open offer %d: expected 201, got %d %s", i, r.status, r.body)
		}
	}
	held := runtime.NumGoroutine() - base
	st := n.srv.Stats()
	t.Logf("%d half-open viewers: %d goroutines above the baseline of %d, stats %+v, posted in %v", halfOpen, held, base, st, time.Since(start).Round(time.Millisecond))
	// A busy machine may take longer than the timeout to post them all:
	// the first ones are then closed already. Every one is open or
	// counted as timed out (a session is counted just before it closes,
	// so one may be both), and each open one holds goroutines.
	open := st.Sessions - 1
	if open > halfOpen || open+int(st.ConnectTimeouts) < halfOpen || open == 0 || held < open {
		t.Fatalf("expected %d half-open sessions, each holding goroutines or closed by the timeout, got %+v and %d goroutines", halfOpen, st, held)
	}
	// Each was closed timeout after its offer; allow 2s for the closing.
	deadline := time.Now().Add(timeout + 2*time.Second)
	for {
		st = n.srv.Stats()
		g := runtime.NumGoroutine()
		if st.Sessions == 1 && st.Connecting == 0 && st.UDPMappings == 1 && g <= base+2 {
			t.Logf("reclaimed %v after the last offer (timeout %v)", time.Since(start).Round(time.Millisecond), timeout)
			break
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%v after the last offer: expected the publisher's session and mapping only and at most %d goroutines, got %+v and %d:\n%s",
				time.Since(start).Round(time.Millisecond), base+2, st, g, buf)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st.ConnectTimeouts != halfOpen {
		t.Errorf("connect timeouts: expected %d, got %d", halfOpen, st.ConnectTimeouts)
	}
}

// settledGoroutines is the goroutine count once it has stopped changing
// for 300ms (at most 5s).
func settledGoroutines() int {
	last, since := runtime.NumGoroutine(), time.Now()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if g := runtime.NumGoroutine(); g != last {
			last, since = g, time.Now()
		} else if time.Since(since) >= 300*time.Millisecond {
			break
		}
	}
	return last
}

// Per client address (an IPv6 client's /64), session creation is a token
// bucket over WHEP POSTs and failed WHIP POSTs, and WHEP sessions held at
// once are capped; other addresses are not affected, and signed relays and
// studios with their token are exempt.
func TestAddressLimits(t *testing.T) {
	key := []byte("address-limits-viewer-key-01")
	relayTok := "Bearer " + SignViewerToken(key, relayTokenName("bacc-43"), time.Now().Add(time.Minute))
	viewerTok := "Bearer " + SignViewerToken(key, "bacc-43", time.Now().Add(time.Minute))
	type post struct {
		endpoint, client, auth string
		hdr                    []string
		status                 int
		typ                    string // problem type, for refusals
		retryAfter             string
	}
	cases := []struct {
		name  string
		opts  Options
		posts []post
		// expect checks more, given the answers of the posts that succeeded.
		expect func(t *testing.T, n *testNode, created []httpResult)
	}{
		{
			name: "rate: a burst, then Retry-After; other addresses have their own bucket",
			opts: Options{PerAddress: AddressLimits{Rate: 0.5, Burst: 3}},
			posts: []post{
				{"whep", "198.51.100.7", "", nil, 201, "", ""},
				{"whep", "198.51.100.7", "", nil, 201, "", ""},
				{"whep", "198.51.100.7", "", nil, 201, "", ""},
				{"whep", "198.51.100.7", "", nil, 429, "stream-session-rate", "2"},
				{"whep", "198.51.100.8", "", nil, 201, "", ""},
				{"whep", "::ffff:198.51.100.7", "", nil, 429, "stream-session-rate", "2"},
			},
		},
		{
			name: "rate: an IPv6 client is its /64",
			opts: Options{PerAddress: AddressLimits{Rate: 0.5, Burst: 2}},
			posts: []post{
				{"whep", "2001:db8:0:1::1", "", nil, 201, "", ""},
				{"whep", "2001:db8:0:1:ffff::2", "", nil, 201, "", ""},
				{"whep", "2001:db8:0:1::3", "", nil, 429, "stream-session-rate", "2"},
				{"whep", "2001:db8:0:2::1", "", nil, 201, "", ""},
			},
		},
		{
			name: "rate: guessing studio tokens is throttled; the studio is not",
			opts: Options{PerAddress: AddressLimits{Rate: 0.5, Burst: 3}},
			posts: []post{
				{"whip", "198.51.100.9", "Bearer guess-1", nil, 401, "invalid-token", ""},
				{"whip", "198.51.100.9", "Bearer guess-2", nil, 401, "invalid-token", ""},
				{"whip", "198.51.100.9", "Bearer guess-3", nil, 401, "invalid-token", ""},
				{"whip", "198.51.100.9", "Bearer guess-4", nil, 429, "stream-session-rate", "2"},
				{"whip", "198.51.100.9", "", nil, 429, "stream-session-rate", "2"},
				// A studio reconnecting all its tables at once from that address.
				{"whip", "198.51.100.9", "Bearer demo-studio", nil, 201, "", ""},
				{"whip", "198.51.100.9", "Bearer demo-studio", nil, 201, "", ""},
				{"whip", "198.51.100.9", "Bearer demo-studio", nil, 201, "", ""},
				{"whip", "198.51.100.9", "Bearer demo-studio", nil, 201, "", ""},
			},
		},
		{
			name: "sessions: an address holds at most its share, connecting or connected",
			opts: Options{PerAddress: AddressLimits{MaxSessions: 2}},
			posts: []post{
				{"whep", "198.51.100.10", "", nil, 201, "", ""},
				{"whep", "198.51.100.10", "", nil, 201, "", ""},
				{"whep", "198.51.100.10", "", nil, 429, "stream-session-limit", "60"},
				{"whep", "198.51.100.11", "", nil, 201, "", ""},
			},
			expect: func(t *testing.T, n *testNode, created []httpResult) {
				a := netip.MustParseAddr("198.51.100.10")
				if got := n.srv.addrs.held(a); got != 2 {
					t.Fatalf("sessions held by %s: expected 2, got %d", a, got)
				}
				// Ending one of its sessions frees a slot.
				first := created[0]
				if r := do(t, "DELETE", "http://"+n.ln.Addr().String()+first.header.Get("Location"), "", first.header.Get(SessionTokenHeader), nil); r.status != http.StatusOK {
					t.Fatalf("DELETE: expected 200, got %d %s", r.status, r.body)
				}
				testkit.WaitUntil(t, "the slot to be released", 5*time.Second, func() bool { return n.srv.addrs.held(a) == 1 })
				if r := do(t, "POST", n.base+"bacc-43/whep", "application/sdp", "", halfOpenOffer(t), testClientHeader, a.String()); r.status != http.StatusCreated {
					t.Fatalf("POST from %s after one of its sessions ended: expected 201, got %d %s", a, r.status, r.body)
				}
			},
		},
		{
			name: "signed relays are exempt; viewers with tokens are not",
			opts: Options{ViewerTokenKey: key, PerAddress: AddressLimits{Rate: 0.1, Burst: 1, MaxSessions: 1}},
			posts: []post{
				{"whep", "198.51.100.12", relayTok, []string{relayHeader, "1"}, 201, "", ""},
				{"whep", "198.51.100.12", relayTok, []string{relayHeader, "1"}, 201, "", ""},
				{"whep", "198.51.100.12", relayTok, []string{relayHeader, "1"}, 201, "", ""},
				{"whep", "198.51.100.12", viewerTok, nil, 201, "", ""},
				{"whep", "198.51.100.12", viewerTok, nil, 429, "stream-session-rate", "10"},
				{"whep", "198.51.100.12", viewerTok, []string{relayHeader, "1"}, 429, "stream-session-rate", "10"},
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.opts.ConnectTimeout = time.Minute
			n := startNode(t, c.opts)
			// The studio publishes from an address of its own, outside the limits
			// (its POST counts for that address only).
			livePublisher(t, n, "bacc-43")
			offer := halfOpenOffer(t)
			var created []httpResult
			for i, p := range c.posts {
				hdr := append([]string{testClientHeader, p.client}, p.hdr...)
				if p.auth != "" {
					hdr = append(hdr, "Authorization", p.auth)
				}
				stream := "bacc-43"
				if p.endpoint == "whip" {
					stream = fmt.Sprintf("cam-%d", i) // a stream of its own each
				}
				r := do(t, "POST", n.base+stream+"/"+p.endpoint, "application/sdp", "", offer, hdr...)
				if r.status != p.status {
					t.Fatalf("POST %d (%s from %s): expected %d, got %d %s", i, p.endpoint, p.client, p.status, r.status, r.body)
				}
				if p.typ != "" && problemType(r.body) != "urn:hedge:problem:"+p.typ {
					t.Fatalf("POST %d: expected type %s, got %s", i, p.typ, r.body)
				}
				if got := r.header.Get("Retry-After"); got != p.retryAfter {
					t.Fatalf("POST %d: expected Retry-After %q, got %q", i, p.retryAfter, got)
				}
				if p.typ == "stream-session-limit" && !strings.Contains(r.header.Get("Link"), "/live/bacc-43/hls/index.m3u8") {
					t.Fatalf("POST %d: expected the LL-HLS Link, got %q", i, r.header.Get("Link"))
				}
				if r.status == http.StatusCreated {
					created = append(created, r)
				}
			}
			if c.expect != nil {
				c.expect(t, n, created)
			}
		})
	}
}

// Two viewers admitted while neither had connected, for the last slot:
// the first to connect takes it, the other is closed as it connects, so
// the cap holds for connected viewers.
func TestViewerConnectingOverCapIsClosed(t *testing.T) {
	n := startNode(t, Options{MaxViewersPerStream: 1})
	livePublisher(t, n, "bacc-45")
	var vs [2]*testViewer
	var answers [2]httpResult
	for i := range vs {
		vs[i], answers[i] = postViewer(t, n, "bacc-45")
		if answers[i].status != http.StatusCreated {
			t.Fatalf("viewer %d, before either connected: expected 201, got %d %s", i, answers[i].status, answers[i].body)
		}
	}
	for i, v := range vs {
		v.answer(t, answers[i])
	}
	testkit.WaitUntil(t, "one viewer in, the other closed", 10*time.Second, func() bool {
		st := n.srv.Stats()
		return st.Viewers == 1 && st.Connecting == 0 && st.Sessions == 2 && st.Refused[RefusedCapAtConnect] == 1
	})
	testkit.WaitUntil(t, "media at the viewer that got the slot", 10*time.Second, func() bool {
		a, _ := vs[0].Snapshot()
		b, _ := vs[1].Snapshot()
		return len(a) >= 10 || len(b) >= 10
	})
}

// The address table forgets an address once it holds no session and its
// bucket is full again, so memory follows the addresses active lately;
// full, it refuses new addresses until a sweep frees room.
func TestAddrTableBounded(t *testing.T) {
	var tab addrTable
	l := AddressLimits{Rate: 1, Burst: 2, MaxSessions: 4}
	t0 := time.Unix(1_000_000, 0)
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}) }
	for i := range maxTrackedAddrs {
		if ok, _ := tab.allow(addr(i), t0, l); !ok {
			t.Fatalf("address %d: first session refused", i)
		}
	}
	if ok, wait := tab.allow(addr(maxTrackedAddrs), t0, l); ok || wait <= 0 {
		t.Fatalf("new address with the table full of refilling buckets: expected a refusal with a wait, got %v %v", ok, wait)
	}
	held := netip.MustParseAddr("192.0.2.1")
	if ok, _ := tab.hold(held, t0, l); ok { // the table is full
		t.Fatal("hold in a full table: expected a refusal")
	}
	// A second later every bucket is full again: a sweep frees them all.
	t1 := t0.Add(time.Second)
	if ok, counted := tab.hold(held, t1, l); !ok || !counted {
		t.Fatalf("hold after the buckets refilled: expected a counted slot, got %v %v", ok, counted)
	}
	if got := tab.size(); got != 1 {
		t.Fatalf("after the sweep: expected only the address holding a session, got %d entries", got)
	}
	// An address holding a session stays however long it is idle.
	tab.sweep(t1.Add(time.Hour))
	if tab.held(held) != 1 {
		t.Fatal("the sweep forgot an address that holds a session")
	}
	tab.release(held)
	tab.sweep(t1.Add(2 * time.Hour))
	if got := tab.size(); got != 0 {
		t.Fatalf("after the last session ended: expected an empty table, got %d entries", got)
	}
}

// The per-address check every WHIP and WHEP POST makes (rate, then a
// session slot and its release), for 10,000 addresses in turn: it must not
// allocate once an address is known.
func BenchmarkAddressLimits(b *testing.B) {
	var tab addrTable
	l := AddressLimits{Rate: 1e9, Burst: 1 << 20, MaxSessions: 1 << 20}
	addrs := make([]netip.Addr, 10_000)
	for i := range addrs {
		addrs[i] = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(i >> 8), byte(i), 15: 1})
	}
	now := time.Unix(1_000_000, 0)
	for _, a := range addrs {
		tab.allow(a, now, l)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		a := addrs[i%len(addrs)]
		i++
		if ok, _ := tab.allow(a, now, l); !ok {
			b.Fatal("refused")
		}
		if ok, _ := tab.hold(a, now, l); !ok {
			b.Fatal("no slot")
		}
		tab.release(a)
	}
}
