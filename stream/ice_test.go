package stream

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"hedge/internal/testkit"
	"hedge/stream/streamtest"
)

// iceServers of the tests' node, and the Link headers RFC 9725 §4.6 says
// its 201s carry for them.
var (
	testICEServers = []ICEServer{
		{URLs: []string{"stun:stun.example.net:3478"}},
		{URLs: []string{"turn:turn.example.net:3478?transport=udp", "turns:turn.example.net:5349"}, Username: "studio", Credential: "s3cret"},
	}
	wantLinks = []string{
		`<stun:stun.example.net:3478>; rel="ice-server"`,
		`<turn:turn.example.net:3478?transport=udp>; rel="ice-server"; username="studio"; credential="s3cret"; credential-type="password"`,
		`<turns:turn.example.net:5349>; rel="ice-server"; username="studio"; credential="s3cret"; credential-type="password"`,
	}
)

func TestCreatedAdvertisesICEServers(t *testing.T) {
	n := startNode(t, Options{ICE: ICE{Servers: testICEServers}})
	_, res := livePublisher(t, n, "bacc-21")
	if got := res.header.Values("Link"); !slices.Equal(got, wantLinks) {
		t.Errorf("WHIP 201 Link headers:\nexpected %q\ngot      %q", wantLinks, got)
	}
	v, res := newViewer(t, n, "bacc-21")
	if v == nil {
		t.Fatalf("WHEP: expected 201, got %d %s", res.status, res.body)
	}
	if got := res.header.Values("Link"); !slices.Equal(got, wantLinks) {
		t.Errorf("WHEP 201 Link headers:\nexpected %q\ngot      %q", wantLinks, got)
	}
	// Browsers read Link only when CORS exposes it.
	if exp := res.header.Get("Access-Control-Expose-Headers"); !strings.Contains(exp, "Link") {
		t.Errorf("Access-Control-Expose-Headers: expected Link among them, got %q", exp)
	}
}

// sdpAttr returns the value of the first "a=name:" line of s.
func sdpAttr(s, name string) string {
	for line := range strings.SplitSeq(s, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimRight(line, "\r"), "a="+name+":"); ok {
			return v
		}
	}
	return ""
}

// fragOf is the trickle-ICE fragment (RFC 8840) a client PATCHes: its ICE
// credentials and the candidates of its first media section.
func fragOf(offer string, withCandidates bool) string {
	var b strings.Builder
	b.WriteString("a=ice-ufrag:" + sdpAttr(offer, "ice-ufrag") + "\r\n")
	b.WriteString("a=ice-pwd:" + sdpAttr(offer, "ice-pwd") + "\r\n")
	b.WriteString("m=video 9 UDP/TLS/RTP/SAVPF 0\r\n")
	b.WriteString("a=mid:" + sdpAttr(offer, "mid") + "\r\n")
	if withCandidates {
		m := 0
		for line := range strings.SplitSeq(offer, "\n") {
			line = strings.TrimRight(line, "\r")
			if strings.HasPrefix(line, "m=") {
				m++
			}
			if m == 1 && strings.HasPrefix(line, "a=candidate:") {
				b.WriteString(line + "\r\n")
			}
		}
		b.WriteString("a=end-of-candidates\r\n")
	}
	return b.String()
}

// replaceICE returns an SDP with its ICE credentials replaced.
func replaceICE(s, ufrag, pwd string) string {
	s = strings.ReplaceAll(s, "a=ice-ufrag:"+sdpAttr(s, "ice-ufrag"), "a=ice-ufrag:"+ufrag)
	return strings.ReplaceAll(s, "a=ice-pwd:"+sdpAttr(s, "ice-pwd"), "a=ice-pwd:"+pwd)
}

// restartICE restarts the ICE session of pc, whose WHIP/WHEP resource is
// location (answered with answer and etag), the RFC 9725 §4.3.2 way: a
// PATCH with the client's new credentials, answered 200 with the edge's new
// credentials and a new ETag, which the client then applies. It returns the
// fragment it sent.
func restartICE(t *testing.T, n *testNode, pc *webrtc.PeerConnection, location, token, answer, etag string) string {
	t.Helper()
	oldUfrag := sdpAttr(pc.LocalDescription().SDP, "ice-ufrag")
	restart := streamtest.OfferWith(t, pc, &webrtc.OfferOptions{ICERestart: true})
	if sdpAttr(restart, "ice-ufrag") == oldUfrag {
		t.Fatal("pion did not change the client's ICE credentials")
	}
	frag := fragOf(restart, true)
	r := do(t, "PATCH", "http://"+n.ln.Addr().String()+location, "application/trickle-ice-sdpfrag", token, []byte(frag), "If-Match", etag)
	if r.status != http.StatusOK {
		t.Fatalf("PATCH ICE restart: expected 200, got %d %s", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/trickle-ice-sdpfrag" {
		t.Errorf("PATCH ICE restart: expected Content-Type application/trickle-ice-sdpfrag, got %q", ct)
	}
	if newETag := r.header.Get("ETag"); newETag == "" || newETag == etag {
		t.Errorf("PATCH ICE restart: expected a new ETag (old %s), got %q", etag, newETag)
	}
	ufrag, pwd := sdpAttr(r.body, "ice-ufrag"), sdpAttr(r.body, "ice-pwd")
	if ufrag == "" || pwd == "" || ufrag == sdpAttr(answer, "ice-ufrag") || pwd == sdpAttr(answer, "ice-pwd") {
		t.Fatalf("PATCH ICE restart: expected new ice-ufrag and ice-pwd (old %q/%q), got fragment:\n%s", sdpAttr(answer, "ice-ufrag"), sdpAttr(answer, "ice-pwd"), r.body)
	}
	if !strings.Contains(r.body, "a=candidate:") {
		t.Errorf("PATCH ICE restart: expected the edge's candidates in the fragment, got:\n%s", r.body)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: replaceICE(answer, ufrag, pwd)}); err != nil {
		t.Fatalf("applying the edge's new credentials: %v", err)
	}
	return frag
}

// videoContinues waits for 100 more video packets at v and checks that
// they are the stream's content in order, without a gap.
func videoContinues(t *testing.T, v *testViewer, what string) {
	t.Helper()
	vid, _ := v.Snapshot()
	before := len(vid)
	testkit.WaitUntil(t, "video "+what, 15*time.Second, func() bool { vid, _ := v.Snapshot(); return len(vid) >= before+100 })
	vid, _ = v.Snapshot()
	for j := max(1, before); j < len(vid); j++ {
		if ds, dc := vid[j].SequenceNumber-vid[j-1].SequenceNumber, streamtest.Counter(vid[j])-streamtest.Counter(vid[j-1]); ds != uint16(dc) {
			t.Fatalf("%s, packet %d: sequence advanced by %d but content by %d", what, j, ds, dc)
		}
	}
}

// ICE restarts of a viewer and of the studio: after each, media flows on
// over the restarted ICE session (the edge's agent answers to the new
// credentials only, so a half-applied restart stops the media), and the
// ETag from before the restart no longer matches.
func TestICERestartByPATCH(t *testing.T) {
	for _, who := range []string{"whep viewer", "whip studio"} {
		t.Run(who, func(t *testing.T) {
			n := startNode(t, Options{})
			pub, res := livePublisher(t, n, "bacc-22")
			pubAnswer, pubETag := res.body, res.header.Get("ETag")
			v, res := newViewer(t, n, "bacc-22")
			if v == nil {
				t.Fatalf("WHEP: expected 201, got %d %s", res.status, res.body)
			}
			testkit.WaitUntil(t, "video before the restart", 10*time.Second, func() bool { vid, _ := v.Snapshot(); return len(vid) >= 20 })

			pc, location, token, answer, etag := v.PC, v.location, v.token, res.body, res.header.Get("ETag")
			if who == "whip studio" {
				pc, location, token, answer, etag = pub.PC, pub.location, pub.token, pubAnswer, pubETag
			}
			frag := restartICE(t, n, pc, location, token, answer, etag)
			videoContinues(t, v, "after the "+who+"'s ICE restart")
			if st := pc.ICEConnectionState(); st != webrtc.ICEConnectionStateConnected && st != webrtc.ICEConnectionStateCompleted {
				t.Errorf("%s's ICE state after the restart: expected connected, got %s", who, st)
			}
			if st := n.srv.Stats(); st.Sessions != 2 || st.Streams != 1 {
				t.Errorf("after the restart: expected the same 2 sessions of 1 stream, got %+v", st)
			}
			if r := do(t, "PATCH", "http://"+n.ln.Addr().String()+location, "application/trickle-ice-sdpfrag", token, []byte(frag), "If-Match", etag); r.status != http.StatusPreconditionFailed {
				t.Errorf("PATCH with the ETag from before the restart: expected 412, got %d %s", r.status, r.body)
			}
		})
	}
}

// Trickle ICE (RFC 9725 §4.3.1): a viewer posts an offer without
// candidates and PATCHes them afterwards (same credentials: not a
// restart); the edge answers 204 and knows the viewer's host candidate
// from the PATCH, not only as a peer-reflexive address learned from
// connectivity checks.
func TestTrickleICEByPATCH(t *testing.T) {
	n := startNode(t, Options{})
	livePublisher(t, n, "bacc-23")

	v := streamtest.NewViewer(t, clientAPI(t, false))
	pc := v.PC
	off, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(off.SDP, "a=candidate:") {
		t.Fatal("the offer already carries candidates; the test needs one without")
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(off); err != nil {
		t.Fatal(err)
	}
	r := do(t, "POST", n.base+"bacc-23/whep", "application/sdp", "", []byte(off.SDP))
	if r.status != http.StatusCreated {
		t.Fatalf("WHEP without candidates: expected 201, got %d %s", r.status, r.body)
	}
	location, etag, token := r.header.Get("Location"), r.header.Get("ETag"), r.header.Get(SessionTokenHeader)
	if ap := r.header.Get("Accept-Patch"); ap != "application/trickle-ice-sdpfrag" {
		t.Errorf("WHEP 201: expected Accept-Patch application/trickle-ice-sdpfrag, got %q", ap)
	}
	select {
	case <-gathered:
	case <-time.After(5 * time.Second):
		t.Fatal("client ICE gathering timed out")
	}
	full := pc.LocalDescription().SDP
	frag := fragOf(full, true)
	if !strings.Contains(frag, "a=candidate:") {
		t.Fatalf("no client candidate to trickle in:\n%s", full)
	}
	p := do(t, "PATCH", "http://"+n.ln.Addr().String()+location, "application/trickle-ice-sdpfrag", token, []byte(frag), "If-Match", etag)
	if p.status != http.StatusNoContent {
		t.Fatalf("trickle PATCH: expected 204, got %d %s", p.status, p.body)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: r.body}); err != nil {
		t.Fatal(err)
	}
	testkit.WaitUntil(t, "media after the trickled candidates", 10*time.Second, func() bool {
		vid, audio := v.Snapshot()
		return len(vid) > 0 || audio > 0
	})
	// The edge's PeerConnection has the viewer's host candidate, with the
	// port the viewer gathered.
	id := location[strings.LastIndexByte(location, '/')+1:]
	x := n.srv.session(id)
	if x == nil {
		t.Fatalf("no session %s at the edge", id)
	}
	// pion's GetStats reads a field that Close clears without a lock, so
	// the edge's PeerConnection is closed here, after the stats are read,
	// and not by pion's DTLS goroutine when the client's close_notify
	// arrives at the end of the test.
	stats := x.pc.GetStats()
	x.closeSync()
	port := candidatePort(t, sdpAttr(frag, "candidate"))
	var remote []string
	for _, s := range stats {
		if c, ok := s.(webrtc.ICECandidateStats); ok && c.Type == webrtc.StatsTypeRemoteCandidate {
			remote = append(remote, c.CandidateType.String()+" "+c.IP+":"+strconv.Itoa(int(c.Port)))
			if c.CandidateType == webrtc.ICECandidateTypeHost && int(c.Port) == port {
				return
			}
		}
	}
	t.Fatalf("edge's remote candidates: expected the trickled host candidate on port %d, got %v", port, remote)
}

// candidatePort is the port of an RFC 8839 candidate attribute value.
func candidatePort(t *testing.T, cand string) int {
	t.Helper()
	f := strings.Fields(cand)
	if len(f) < 6 {
		t.Fatalf("candidate %q: too few fields", cand)
	}
	p, err := strconv.Atoi(f[5])
	if err != nil {
		t.Fatalf("candidate %q: port: %v", cand, err)
	}
	return p
}
