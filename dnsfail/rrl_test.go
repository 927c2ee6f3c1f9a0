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
	d := newDeployment(t, deployOpts{rrl: "{responses_per_second: 5, slip: 2}"})
	c := &dns.Client{Net: "udp", Timeout: 150 * time.Millisecond}
	var sent, truncated, dropped int
	for range 30 {
		m := new(dns.Msg)
		m.SetQuestion("play.edge.test.", dns.TypeA)
		r, _, err := c.Exchange(m, d.addr)
		var ne net.Error
		switch {
		case errors.As(err, &ne) && ne.Timeout():
			dropped++
		case err != nil:
			t.Fatal(err)
		case r.Truncated && len(r.Answer) == 0:
			truncated++
		default:
			sent++
		}
	}
	t.Logf("30 queries: %d answered, %d truncated, %d dropped", sent, truncated, dropped)
	if sent > 12 || truncated == 0 || dropped == 0 {
		t.Fatalf("want about 5 answered (+ refill), some truncated and some dropped; got %d/%d/%d", sent, truncated, dropped)
	}
	for range 20 {
		if r := d.query(t, "tcp", "play.edge.test.", dns.TypeA); r.Truncated || len(r.Answer) != 2 {
			t.Fatalf("TCP limited: %v", r)
		}
	}
}
