package stream

import (
	"testing"
	"time"

	"hedge/internal/testkit"
)

// TestRelayNotFoundAnywhere: a stream no region has ends its pull as soon as
// every peer has answered 404, instead of keeping its requests waiting
// ReadyTimeout; for NotFoundTTL it is not asked for again; after that, a
// stream that has gone live in the other region is pulled as before. A
// peer that cannot be asked leaves the question open.
func TestRelayNotFoundAnywhere(t *testing.T) {
	const ttl = 800 * time.Millisecond
	eu := startNode(t, Options{})
	sea := startNode(t, Options{Relay: RelayOptions{Peers: []string{eu.base}, NotFoundTTL: ttl, ReadyTimeout: 5 * time.Second, MinBackoff: 50 * time.Millisecond}})

	start := time.Now()
	h := sea.srv.Watch("bacc-11")
	if h == nil {
		t.Fatal("Watch of a stream not here: expected a pull to start, got nil")
	}
	testkit.WaitUntil(t, "the pull to end on eu's 404", 4*time.Second, h.Ended)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("expected the pull of a stream no region has to end well before ReadyTimeout (5 s), took %v", d)
	}
	if st := sea.srv.Stats(); st.Relays != 0 || sea.srv.Hub("bacc-11") != nil {
		t.Errorf("after the 404: expected no relay and no hub left, got %+v", st)
	}

	// Within the TTL: no new pull, and a WHEP viewer gets its 404 at once.
	if h := sea.srv.Watch("bacc-11"); h != nil {
		t.Error("Watch within NotFoundTTL: expected nil (remembered as not found), got a hub")
	}
	start = time.Now()
	if r := do(t, "POST", sea.base+"bacc-11/whep", "application/sdp", "", []byte(offerFor(t))); r.status != 404 {
		t.Errorf("WHEP for a stream no region has: expected 404, got %d %s", r.status, r.body)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("WHEP for a stream remembered as not found: expected an answer at once, took %v", d)
	}

	// The stream goes live in eu; once the TTL is over, sea pulls it.
	livePublisher(t, eu, "bacc-11")
	time.Sleep(time.Until(start.Add(ttl)))
	h = sea.srv.Watch("bacc-11")
	if h == nil {
		t.Fatal("Watch after NotFoundTTL of a stream live in eu: expected a pull, got nil")
	}
	select {
	case <-h.Ready():
	case <-time.After(10 * time.Second):
		t.Fatalf("the pull of a stream live in eu: expected its tracks within 10 s (hub ended: %v)", h.Ended())
	}
	if sea.srv.State("bacc-11") != StateRelayed {
		t.Errorf("expected bacc-11 relayed at sea, got %s", sea.srv.State("bacc-11"))
	}

	// One peer unreachable, the other without the stream: not a verdict,
	// the pull goes on retrying.
	mid := startNode(t, Options{Relay: RelayOptions{Peers: []string{"http://127.0.0.1:1/live/", eu.base}, NotFoundTTL: ttl, MinBackoff: 50 * time.Millisecond}})
	h = mid.srv.Watch("bacc-12")
	if h == nil {
		t.Fatal("Watch with two peers: expected a pull, got nil")
	}
	time.Sleep(time.Second)
	if h.Ended() {
		t.Error("with a peer that could not be asked: expected the pull to go on, it ended")
	}
}
