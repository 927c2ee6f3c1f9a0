package dnsfail

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"

	"hedge/configs"
)

func TestRRLBuckets(t *testing.T) {
	r := newRRL(configs.RRL{ResponsesPerSecond: 10, Slip: 2, IPv4Prefix: 24, IPv6Prefix: 56, Exempt: []string{"192.0.2.7"}})
	now := time.Unix(1000, 0)
	a := netip.MustParseAddr("198.51.100.1")
	b := netip.MustParseAddr("198.51.100.200") // same /24 as a
	c := netip.MustParseAddr("203.0.113.1")
	count := map[rrlAction]int{}
	for i := range 30 {
		addr := a
		if i%2 == 1 {
			addr = b
		}
		count[r.check(addr, now)]++
	}
	if count[rrlSend] != 10 || count[rrlSlip] != 10 || count[rrlDrop] != 10 {
		t.Fatalf("30 responses to one /24 at 10/s, slip 2: want 10 sent, 10 slipped, 10 dropped, got %v", count)
	}
	if got := r.check(c, now); got != rrlSend {
		t.Fatalf("another prefix is not limited: got %v", got)
	}
	for range 100 {
		if got := r.check(netip.MustParseAddr("192.0.2.7"), now); got != rrlSend {
			t.Fatalf("exempt address limited: %v", got)
		}
	}
	if got := r.check(a, now.Add(200*time.Millisecond)); got != rrlSend {
		t.Fatalf("after 200ms two responses are allowed again, got %v", got)
	}
}

// TestRRLOverUDP floods the real server from one address: beyond the rate
// responses are dropped, every second one slips out truncated, and TCP is
// never limited.
func TestRRLOverUDP(t *testing.T) {
	const rate, queries = 5, 30
	d := newDeployment(t, deployOpts{rrl: "{responses_per_second: 5, slip: 2}"})
	// The queries go out at once and the answers are read after, so the
	// flood is as fast as the server reads it, whatever a round trip costs
	// on a busy machine; the answers allowed are bounded by how long it
	// took.
	co, err := dns.Dial("udp", d.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer co.Close()
	start := time.Now()
	for i := range queries {
		m := new(dns.Msg)
		m.SetQuestion("play.edge.test.", dns.TypeA)
		m.Id = uint16(i + 1)
		if err := co.WriteMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	var sent, truncated int
	seen := map[uint16]bool{}
	last := start
	for len(seen) < queries {
		_ = co.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		r, err := co.ReadMsg()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			break // the rest were dropped
		}
		if err != nil {
			t.Fatal(err)
		}
		if r.Id == 0 || r.Id > queries || seen[r.Id] {
			t.Fatalf("an answer to no query of the flood: id %d", r.Id)
		}
		seen[r.Id], last = true, time.Now()
		if r.Truncated && len(r.Answer) == 0 {
			truncated++
		} else {
			sent++
		}
	}
	dropped := queries - len(seen)
	window := last.Sub(start)
	allowed := rate + int(rate*window.Seconds()) + 1 // a second's burst, the refill meanwhile
	t.Logf("%d queries: %d answered, %d truncated, %d dropped, within %s", queries, sent, truncated, dropped, window.Round(time.Millisecond))
	if sent > allowed || truncated == 0 || dropped == 0 {
		t.Fatalf("want at most %d answered (a burst of %d + the refill over %s), some truncated and some dropped; got %d/%d/%d",
			allowed, rate, window.Round(time.Millisecond), sent, truncated, dropped)
	}
	for range 20 {
		if r := d.query(t, "tcp", "play.edge.test.", dns.TypeA); r.Truncated || len(r.Answer) != 2 {
			t.Fatalf("TCP limited: %v", r)
		}
	}
}
