package stream

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"hedge/internal/testkit"
)

// A session resource (PATCH, DELETE on its Location) answers only to the
// session's own credentials: the studio token that created a WHIP
// session (or that studio's current token after a rotation), the session
// token a WHEP 201 hands out, or the viewer token that created the
// session. The Location alone, another studio's token, another session's
// token or a valid viewer token that created another session get 401 or
// 403, and change nothing: the sessions stay and media keeps flowing.
func TestSessionResourcesNeedTheirCredentials(t *testing.T) {
	key := []byte("session-auth-viewer-key-0123")
	opts := Options{
		ViewerTokenKey: key,
		Studios: []Studio{
			{Name: "studio-a", Token: "studio-a-token", Streams: []string{"*"}},
			{Name: "studio-b", Token: "studio-b-token", Streams: []string{"*"}},
		},
	}
	n := startNode(t, opts)
	pub, res := newPublisher(t, n, "bacc-31", "studio-a-token")
	if pub == nil {
		t.Fatalf("WHIP: expected 201, got %d %s", res.status, res.body)
	}
	if tok := res.header.Get(SessionTokenHeader); tok != "" {
		t.Errorf("WHIP 201: expected no %s (the studio token controls the session), got %q", SessionTokenHeader, tok)
	}
	pub.Send(1)
	testkit.WaitUntil(t, "the stream's tracks", 10*time.Second, func() bool { h := n.srv.Hub("bacc-31"); return h != nil && len(h.Tracks()) == 2 })
	// Three different valid viewer tokens (a token is its stream and expiry).
	tokA := SignViewerToken(key, "bacc-31", time.Now().Add(time.Minute))
	tokB := SignViewerToken(key, "*", time.Now().Add(time.Minute))
	tokC := SignViewerToken(key, "bacc-31", time.Now().Add(2*time.Minute))
	va, res := newViewer(t, n, "bacc-31", "Authorization", "Bearer "+tokA)
	if va == nil {
		t.Fatalf("WHEP a: expected 201, got %d %s", res.status, res.body)
	}
	if len(va.token) < 40 || res.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("WHEP 201: expected a %s of 256 bits and Cache-Control no-store, got %q and %q", SessionTokenHeader, va.token, res.header.Get("Cache-Control"))
	}
	vb, res := newViewer(t, n, "bacc-31", "Authorization", "Bearer "+tokB)
	if vb == nil {
		t.Fatalf("WHEP b: expected 201, got %d %s", res.status, res.body)
	}
	if va.token == vb.token {
		t.Fatal("two sessions got the same session token")
	}
	testkit.WaitUntil(t, "media at both viewers", 10*time.Second, func() bool {
		a, _ := va.Snapshot()
		b, _ := vb.Snapshot()
		return len(a) >= 10 && len(b) >= 10
	})

	base := "http://" + n.ln.Addr().String()
	frag := []byte("a=ice-ufrag:zzzz\r\na=ice-pwd:zzzzzzzzzzzzzzzzzzzzzzzz\r\n") // would restart ICE if accepted
	refused := []struct {
		name, method, location, auth string
		status                       int
		typ                          string
	}{
		{"publisher: the Location alone", "DELETE", pub.location, "", 401, "invalid-token"},
		{"publisher: another studio's token", "DELETE", pub.location, "studio-b-token", 403, "stream-session-forbidden"},
		{"publisher: another studio's token, PATCH", "PATCH", pub.location, "studio-b-token", 403, "stream-session-forbidden"},
		{"publisher: a viewer's session token", "DELETE", pub.location, va.token, 403, "stream-session-forbidden"},
		{"publisher: a guess", "DELETE", pub.location, "studio-a-tokem", 403, "stream-session-forbidden"},
		{"viewer: the Location alone", "DELETE", va.location, "", 401, "invalid-token"},
		{"viewer: the Location alone, PATCH", "PATCH", va.location, "", 401, "invalid-token"},
		{"viewer: another session's token", "DELETE", va.location, vb.token, 403, "stream-session-forbidden"},
		{"viewer: the viewer token of another session", "DELETE", va.location, tokB, 403, "stream-session-forbidden"},
		{"viewer: another valid viewer token", "DELETE", va.location, tokC, 403, "stream-session-forbidden"},
		{"viewer: another session's token in the query", "DELETE", va.location + "?token=" + vb.token, "", 403, "stream-session-forbidden"},
		{"viewer: the studio's token", "DELETE", va.location, "studio-a-token", 403, "stream-session-forbidden"},
	}
	for _, c := range refused {
		t.Run(c.name, func(t *testing.T) {
			var body []byte
			ctype := ""
			if c.method == "PATCH" {
				body, ctype = frag, "application/trickle-ice-sdpfrag"
			}
			r := do(t, c.method, base+c.location, ctype, c.auth, body)
			if r.status != c.status || problemType(r.body) != "urn:hedge:problem:"+c.typ {
				t.Fatalf("expected %d %s, got %d %s", c.status, c.typ, r.status, r.body)
			}
			if c.status == 401 && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer ") {
				t.Errorf("401 without a Bearer challenge: %q", r.header.Get("WWW-Authenticate"))
			}
		})
	}
	if st := n.srv.Stats(); st.Sessions != 3 || st.Viewers != 2 || st.Refused[RefusedSessionAuth] != uint64(len(refused)) {
		t.Fatalf("after refused requests: expected the 3 sessions and 2 viewers untouched and %d auth refusals, got %+v", len(refused), st)
	}
	for name, v := range map[string]*testViewer{"a": va, "b": vb} {
		before, _ := v.Snapshot()
		testkit.WaitUntil(t, "viewer "+name+"'s media to go on after the refused requests", 5*time.Second, func() bool { now, _ := v.Snapshot(); return len(now) > len(before)+10 })
	}

	// The right credentials: viewer a's own viewer token, viewer b's session
	// token, and studio-a's token after a reload rotated it.
	if r := do(t, "DELETE", base+va.location, "", tokA, nil); r.status != http.StatusOK {
		t.Fatalf("DELETE viewer a with the viewer token that created it: expected 200, got %d %s", r.status, r.body)
	}
	if r := do(t, "DELETE", base+vb.location, "", vb.token, nil); r.status != http.StatusOK {
		t.Fatalf("DELETE viewer b with its session token: expected 200, got %d %s", r.status, r.body)
	}
	next := *n.srv.options()
	next.Studios = []Studio{{Name: "studio-a", Token: "studio-a-rotated", Streams: []string{"*"}}, opts.Studios[1]}
	n.srv.Reconfigure(next)
	if r := do(t, "DELETE", base+pub.location, "", "studio-a-rotated", nil); r.status != http.StatusOK {
		t.Fatalf("DELETE the publisher with its studio's rotated token: expected 200, got %d %s", r.status, r.body)
	}
	testkit.WaitUntil(t, "every session to end", 5*time.Second, func() bool { return n.srv.Stats().Sessions == 0 })
}

// Without a viewer token key, a viewer's session token is the only thing
// that controls its session; a studio's session still answers to its token.
func TestTokenlessViewerSessionToken(t *testing.T) {
	n := startNode(t, Options{})
	pub, _ := livePublisher(t, n, "bacc-32")
	v, res := newViewer(t, n, "bacc-32")
	if v == nil {
		t.Fatalf("WHEP: expected 201, got %d %s", res.status, res.body)
	}
	if !strings.Contains(res.header.Get("Access-Control-Expose-Headers"), SessionTokenHeader) {
		t.Errorf("a browser could not read the session token: Access-Control-Expose-Headers %q", res.header.Get("Access-Control-Expose-Headers"))
	}
	base := "http://" + n.ln.Addr().String()
	for _, c := range []struct {
		auth   string
		status int
	}{{"", 401}, {"demo-studio", 403}, {v.token[:len(v.token)-1], 403}, {v.token, 200}} {
		if r := do(t, "DELETE", base+v.location, "", c.auth, nil); r.status != c.status {
			t.Fatalf("DELETE with %q: expected %d, got %d %s", c.auth, c.status, r.status, r.body)
		}
	}
	if r := do(t, "DELETE", base+pub.location, "", "demo-studio", nil); r.status != http.StatusOK {
		t.Fatalf("DELETE the publisher with its token: expected 200, got %d %s", r.status, r.body)
	}
}

// What a PATCH or DELETE on a session costs to authorize: a SHA-256 of the
// presented token and constant-time compares, no allocation.
func BenchmarkSessionAccepts(b *testing.B) {
	x := &session{}
	x.grant(newSessionToken())
	tok := newSessionToken()
	x.grant(tok)
	b.ReportAllocs()
	for b.Loop() {
		if !x.accepts(tok) {
			b.Fatal("refused its own token")
		}
	}
}
