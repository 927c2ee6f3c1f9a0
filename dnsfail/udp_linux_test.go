//go:build linux && (amd64 || arm64)

package dnsfail

import (
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestSpinnerAdapts: the window a UDP loop reads on after a batch grows
// when the next query came soon after a park, shrinks when it came late,
// and stays shut at rest.
func TestSpinnerAdapts(t *testing.T) {
	const us = time.Microsecond
	tests := []struct {
		name string
		gaps []time.Duration // between a batch and the next query, each after a park
		want time.Duration
	}{
		{"first query", nil, 0},
		{"one slow query", []time.Duration{time.Second}, 0},
		{"close queries open it", []time.Duration{60 * us}, spinMax / 8},
		{"and double it", []time.Duration{60 * us, 60 * us, 60 * us}, spinMax / 2},
		{"up to spinMax", []time.Duration{10 * us, 10 * us, 10 * us, 10 * us, 10 * us, 10 * us}, spinMax},
		{"a gap at spinMax still counts", []time.Duration{spinMax}, spinMax / 8},
		{"a late query halves it", []time.Duration{10 * us, 10 * us, 10 * us, 10 * us, time.Millisecond}, spinMax / 2},
		{"silence shuts it", []time.Duration{10 * us, 10 * us, 10 * us, 10 * us, time.Second, time.Second, time.Second, time.Second}, 0},
		{"below spinMax/8 is shut", []time.Duration{10 * us, time.Second}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var sp spinner
			now := time.Unix(1e9, 0)
			sp.park()
			sp.woke(now) // the first query: nothing served before it
			for _, gap := range tt.gaps {
				sp.served(now, 1)
				if sp.more(now.Add(sp.window)) {
					t.Fatalf("spins past its window %v", sp.window)
				}
				sp.park()
				now = now.Add(gap)
				sp.woke(now)
			}
			if sp.window != tt.want {
				t.Errorf("window after gaps %v: %v, want %v", tt.gaps, sp.window, tt.want)
			}
			sp.served(now, 1)
			if got := sp.more(now.Add(time.Nanosecond)); got != (tt.want > 0) {
				t.Errorf("right after a batch, more() = %v with window %v", got, sp.window)
			}
		})
	}
}

// TestSpinnerParksUnderLoad: with its window open, a loop whose reads
// find many datagrams each (load: dnsperf's ~20) parks at the first empty
// read, and reads on again once its reads come back to one datagram.
func TestSpinnerParksUnderLoad(t *testing.T) {
	const us = time.Microsecond
	tests := []struct {
		name    string
		batches []int // datagrams per read, each read ~10 µs after the last batch
		want    bool  // reads on after the last
	}{
		{"sequential", []int{1, 1, 1, 1, 1, 1}, true},
		{"two at a time still reads on", []int{1, 1, 1, 1, 1, 2}, true},
		{"loaded", []int{1, 1, 1, 1, 1, 1, 20}, false},
		{"steady load", []int{20, 18, 25, 20, 22, 19, 21}, false},
		{"a lone datagram under load", []int{20, 18, 25, 20, 22, 19, 1}, false},
		{"small batches", []int{1, 1, 1, 3, 3, 3, 3, 3, 3}, false},
		{"back to sequential", []int{20, 20, 20, 20, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var sp spinner
			now := time.Unix(1e9, 0)
			sp.park()
			sp.woke(now)
			for i, n := range tt.batches {
				if i > 0 {
					sp.park()
					now = now.Add(10 * us)
					sp.woke(now)
				}
				sp.served(now, n)
			}
			if sp.window == 0 {
				t.Fatalf("window shut after reads 10 µs apart")
			}
			if got := sp.more(now.Add(us)); got != tt.want {
				t.Errorf("after reads of %v datagrams: more() = %v, want %v (average %d/%d)", tt.batches, got, tt.want, sp.size, sizeScale)
			}
		})
	}
}

// TestUDPSpinStopsAtRest: sequential queries make the real UDP loop read
// on after its replies instead of parking, and once they stop the loop
// parks: a server at rest makes no reads.
func TestUDPSpinStopsAtRest(t *testing.T) {
	d := newDeployment(t, deployOpts{})
	c := d.udpConn(t)
	q := new(dns.Msg)
	q.SetQuestion("sea.edge.test.", dns.TypeA)
	wire, _ := q.Pack()
	buf := make([]byte, 4096)
	deadline := time.Now().Add(10 * time.Second)
	sent := 0
	for d.srv.udp.spins.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d sequential queries and the UDP loop never read on after a reply", sent)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(wire); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Read(buf); err != nil {
			t.Fatalf("query %d: %v", sent, err)
		}
		sent++
	}
	// At rest the count stops: poll until it holds still over 50 ms.
	deadline = time.Now().Add(5 * time.Second)
	for {
		before := d.srv.udp.spins.Load()
		time.Sleep(50 * time.Millisecond)
		after := d.srv.udp.spins.Load()
		if after == before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the UDP loop still reads at rest: %d reads in the last 50 ms, 5 s after the last query", after-before)
		}
	}
	t.Logf("%d queries, %d reads spent spinning", sent, d.srv.udp.spins.Load())
}
