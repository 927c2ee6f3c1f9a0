package gateway

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"hedge/internal/testkit"
	"hedge/stream"
	"hedge/stream/player"
	"hedge/stream/streamtest"
)

// streamsBefore and streamsAfter are the streams sections of the reload
// test's two states; {{UDP}} is filled in.
const (
	streamsBefore = `streams:
  studios: [{name: studio-a, token: studio-a-token, streams: ["bacc-*"]}]
  ice: {udp_port: {{UDP}}, servers: [{urls: ["stun:old.example.net:3478"]}]}
  relay: false
`
	streamsAfter = `streams:
  studios: [{name: studio-b, token: studio-b-token}]
  viewer_token_key: reload-test-viewer-key
  max_viewers_per_stream: 1
  publisher_grace: 30s
  ice: {udp_port: {{UDP2}}, servers: [{urls: ["turn:new.example.net:3478"], username: u1, credential: c1}]}
  relay: false
`
)

func playDescriptor(t *testing.T, url string) player.Descriptor {
	t.Helper()
	resp, body := do(t, "GET", url, "", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: expected 200, got %d %s", url, resp.StatusCode, body)
	}
	var d player.Descriptor
	if err := json.Unmarshal([]byte(body), &d); err != nil {
		t.Fatalf("play.json is not a descriptor: %v: %s", err, body)
	}
	return d
}

// A reload changes a running node's stream settings: the new studio's token
// is accepted and the removed one's refused, the viewer token and the
// lowered cap apply to new viewers, WHIP and play.json hand out the new ICE
// servers, and the publisher and viewer that were live carry on. A changed
// ICE port waits for a restart; a reload that is rejected after the stream
// route was built changes nothing.
func TestStreamSettingsApplyOnReload(t *testing.T) {
	region := "sea"
	udp, udp2 := testkit.FreeUDPPort(t), testkit.FreeUDPPort(t)
	logs := &testkit.Buffer{}
	e := startEdgeWith(t, edgeOptions{log: logs}, streamRouteYAML+streamsBefore+streamNodeYAML,
		"{{UDP}}", udp, "{{REGION}}", region)
	api := streamPeerAPI(t)
	whip := func(stream, token string) (*streamtest.Publisher, *http.Response, string) {
		t.Helper()
		p := streamtest.NewPublisher(t, api)
		resp, body := do(t, "POST", e.url+"/live/"+stream+"/whip", "", streamtest.Offer(t, p.PC),
			"Content-Type", "application/sdp", "Authorization", "Bearer "+token)
		if resp.StatusCode == http.StatusCreated {
			if err := p.PC.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: body}); err != nil {
				t.Fatal(err)
			}
		}
		return p, resp, body
	}
	whep := func(hdr ...string) (*streamtest.Viewer, *http.Response, string) {
		t.Helper()
		v := streamtest.NewViewer(t, api)
		resp, body := do(t, "POST", e.url+"/live/bacc-01/whep", "", streamtest.Offer(t, v.PC), append([]string{"Content-Type", "application/sdp"}, hdr...)...)
		if resp.StatusCode == http.StatusCreated {
			if err := v.PC.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: body}); err != nil {
				t.Fatal(err)
			}
		}
		return v, resp, body
	}
	receiving := func(v *streamtest.Viewer, more int, what string) {
		t.Helper()
		before, _ := v.Snapshot()
		deadline := time.Now().Add(15 * time.Second)
		for vid, _ := v.Snapshot(); len(vid) < len(before)+more; vid, _ = v.Snapshot() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: expected %d more video packets within 15s, got %d", what, more, len(vid)-len(before))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	// State A: studio-a publishes bacc-01, a player watches.
	pub, resp, body := whip("bacc-01", "studio-a-token")
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("WHIP with studio-a before the reload: expected 201, got %d %s", resp.StatusCode, body)
	}
	pub.Send(1)
	viewer, resp, body := whep()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("WHEP before the reload: expected 201, got %d %s", resp.StatusCode, body)
	}
	receiving(viewer, 50, "viewer before the reload")
	n := e.g.Nodes()[0].live.Server()
	udpAddr := n.UDPAddr()

	// A reload rejected after its stream route was built (a new listener
	// whose address is taken) leaves the running settings alone.
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	rewriteConfig(t, e, strings.ReplaceAll(streamsBefore, "{{UDP}}", udp), strings.ReplaceAll(streamsAfter, "{{UDP2}}", udp2))
	rewriteConfig(t, e, "        admin:", "          - name: extra\n            address: "+taken.Addr().String()+"\n            tls: {mode: off}\n        admin:")
	if err := e.g.Reload(context.Background()); err == nil {
		t.Fatal("reload with a listener on a taken address: expected it rejected, got nil")
	}
	if _, resp, body := whip("bacc-02", "studio-b-token"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("WHIP with studio-b after a rejected reload: expected 401, got %d %s", resp.StatusCode, body)
	}
	if d := playDescriptor(t, e.url+"/live/bacc-01/play.json"); len(d.ICEServers) != 1 || d.ICEServers[0].URLs[0] != "stun:old.example.net:3478" {
		t.Errorf("play.json after a rejected reload: expected the old STUN server, got %+v", d.ICEServers)
	}

	// State B, installed.
	rewriteConfig(t, e, "          - name: extra\n            address: "+taken.Addr().String()+"\n            tls: {mode: off}\n", "")
	if err := e.g.Reload(context.Background()); err != nil {
		t.Fatalf("reload to state B: %v", err)
	}
	if st := e.g.Nodes()[0].Status().Streams; st == nil || !slices.Equal(st.PendingRestart, []string{"streams.ice.udp_port"}) {
		t.Errorf("/status streams after the reload: expected pending_restart [streams.ice.udp_port], got %+v", st)
	}
	wantLine := `msg="stream setting changed: needs a restart; the running value is kept" region=` + region +
		` node=` + region + `-1 field=streams.ice.udp_port configured=127.0.0.1:` + udp2
	if got := logs.String(); strings.Count(got, wantLine) != 1 || strings.Count(got, "needs a restart") != 1 {
		t.Errorf("log after the reload: expected one line with %q, got:\n%s", wantLine, got)
	}
	if got := n.UDPAddr(); got != udpAddr {
		t.Errorf("ICE UDP socket after the reload: expected %s kept until a restart, got %s", udpAddr, got)
	}

	// Studios: the removed one's token is refused, also on the stream it
	// is live on; the new one's is accepted, with the new ICE servers.
	if _, resp, body := whip("bacc-02", "studio-a-token"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("WHIP with removed studio-a: expected 401, got %d %s", resp.StatusCode, body)
	}
	if _, resp, body := whip("bacc-01", "studio-a-token"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("WHIP again by removed studio-a on its live stream: expected 401, got %d %s", resp.StatusCode, body)
	}
	_, resp, body = whip("roulette-9", "studio-b-token")
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("WHIP with new studio-b: expected 201, got %d %s", resp.StatusCode, body)
	}
	if l, want := resp.Header.Get("Link"), `<turn:new.example.net:3478>; rel="ice-server"; username="u1"; credential="c1"; credential-type="password"`; l != want {
		t.Errorf("WHIP Link after the reload: expected %q, got %q", want, l)
	}

	// play.json: new ICE servers; the stream is at its new cap of one
	// WebRTC viewer, so players start on LL-HLS.
	d := playDescriptor(t, e.url+"/live/bacc-01/play.json")
	if len(d.ICEServers) != 1 || d.ICEServers[0].URLs[0] != "turn:new.example.net:3478" || d.ICEServers[0].Username != "u1" {
		t.Errorf("play.json after the reload: expected the new TURN server, got %+v", d.ICEServers)
	}
	if d.State != string(stream.StateLive) || d.Preferred != player.ModeHLS {
		t.Errorf("play.json after the reload: expected live, preferring hls (cap 1 reached), got %s, %s", d.State, d.Preferred)
	}

	// Viewers: a token is now required; with one, the lowered cap refuses
	// a second viewer, and the one watching stays.
	_, resp, body = whep()
	wantProblem(t, resp, body, http.StatusUnauthorized, "invalid-token")
	tok := stream.SignViewerToken([]byte("reload-test-viewer-key"), "bacc-01", time.Now().Add(time.Minute))
	_, resp, body = whep("Authorization", "Bearer "+tok)
	wantProblem(t, resp, body, http.StatusServiceUnavailable, "stream-viewer-cap")

	// The live publisher and viewer carried on through both reloads.
	receiving(viewer, 50, "viewer after the reload")
	got, _ := viewer.Snapshot()
	for i := 1; i < len(got); i++ {
		if c, prev := streamtest.Counter(got[i]), streamtest.Counter(got[i-1]); c <= prev {
			t.Fatalf("viewer's video across the reload out of order at packet %d: counter %d after %d", i, c, prev)
		}
	}
	if pub.PC.ConnectionState() != webrtc.PeerConnectionStateConnected {
		t.Errorf("studio-a's publisher after the reload: expected connected, got %s", pub.PC.ConnectionState())
	}
}
