package stream

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"hedge/internal/testkit"
)

// With the deployment's viewer token key, a relay pull proves it comes from
// another region's edge and feeds that whole region, so the origin's viewer
// cap and fan-out protection do not refuse it. The relay header alone, or a
// viewer's token (even one for every stream), earns nothing of the kind.
func TestSignedRelayPassesCaps(t *testing.T) {
	key := []byte("relay-trust-test-key-0123456789")
	eu := startNode(t, Options{ViewerTokenKey: key, MaxViewersPerStream: 1})
	sea := startNode(t, Options{ViewerTokenKey: key, Relay: RelayOptions{Peers: []string{eu.base}, Grace: 300 * time.Millisecond, MinBackoff: 50 * time.Millisecond, ReadyTimeout: 15 * time.Second}})

	livePublisher(t, eu, "bacc-11")
	tok := func(name string) string { return "Bearer " + SignViewerToken(key, name, time.Now().Add(time.Minute)) }

	// eu's one WebRTC slot goes to a local viewer.
	local, res := newViewer(t, eu, "bacc-11", "Authorization", tok("bacc-11"))
	if local == nil {
		t.Fatalf("local viewer at eu: expected 201, got %d %s", res.status, res.body)
	}
	testkit.WaitUntil(t, "eu's local viewer to connect", 10*time.Second, func() bool { return eu.srv.Stats().Viewers == 1 })
	if _, res := newViewer(t, eu, "bacc-11", "Authorization", tok("bacc-11")); res.status != http.StatusServiceUnavailable {
		t.Fatalf("second viewer at eu over its cap of 1: expected 503, got %d %s", res.status, res.body)
	}
	// Posing as a relay does not pass the cap: not with the header alone,
	// nor with a viewer token for every stream.
	for _, auth := range []string{tok("bacc-11"), tok("*")} {
		if _, res := newViewer(t, eu, "bacc-11", relayHeader, "1", "Authorization", auth); res.status != http.StatusServiceUnavailable {
			t.Fatalf("relay header with a viewer token at eu over its cap: expected 503, got %d %s", res.status, res.body)
		}
	}
	if _, res := newViewer(t, eu, "bacc-11", relayHeader, "1", "Authorization", tok("relay:bacc-12")); res.status != http.StatusUnauthorized {
		t.Fatalf("a relay token for another stream: expected 401, got %d %s", res.status, res.body)
	}

	// sea's viewer makes sea pull from eu: the signed relay passes the cap.
	v, res := newViewer(t, sea, "bacc-11", "Authorization", tok("bacc-11"))
	if v == nil {
		t.Fatalf("viewer at sea: expected 201, got %d %s", res.status, res.body)
	}
	testkit.WaitUntil(t, "relayed media at sea's viewer", 15*time.Second, func() bool { vid, aud := v.Snapshot(); return len(vid) >= 20 && aud >= 5 })
	if st := eu.srv.Stats(); st.Viewers != 2 {
		t.Fatalf("eu: expected its local viewer and sea's relay, got %+v", st)
	}

	// The same holds while eu's fan-out is behind.
	h := eu.srv.Hub("bacc-11")
	h.AddReader(&stallReader{stall: 2 * testFanoutBehind})
	testkit.WaitUntil(t, "eu's fan-out to be marked full", 5*time.Second, h.FanoutFull)
	var pulled *session
	eu.srv.mu.Lock()
	for _, x := range eu.srv.sessions {
		if x.endpoint == "whep" && !strings.HasSuffix(local.location, "/"+x.id) {
			pulled = x
		}
	}
	eu.srv.mu.Unlock()
	if pulled == nil {
		t.Fatal("expected sea's relay session at eu")
	}
	pulled.closeSync() // sea's pull breaks and comes back
	r := sea.srv.relays["bacc-11"]
	testkit.WaitUntil(t, "sea's relay to reconnect while eu's fan-out is full", 15*time.Second, func() bool { return r.pulls.Load() >= 2 && eu.srv.Stats().Viewers == 2 })
}
