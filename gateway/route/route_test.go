package route

import (
	"errors"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"hedge/configs"
	"hedge/gateway/jwtauth"
)

var testJWT = configs.JWT{Issuer: "hedge-test", Audience: []string{"play.edge.test"}, DomainClaim: "ledger_domain",
	Keys: []configs.JWTKey{{ID: "k1", Alg: "HS256", Secret: "route-test-secret-0123456789abcdef"}}}

func sign(t *testing.T, sub string) string {
	t.Helper()
	tok, err := jwtauth.Sign(testJWT, sub, "eu", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// A request's identity is its bearer token's verified claims, established
// once: every later reader — the protective layer's principal, the route's
// claims — gets the first answer, whatever the request carries by then.
func TestIdentityOnce(t *testing.T) {
	v, err := jwtauth.New(testJWT)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, auth string
		verifier   *jwtauth.Verifier
		subject    string // "" when there is no identity
		err        error  // the reason, when it is one of jwtauth's
	}{
		{"a valid token", "Bearer " + sign(t, "player-1"), v, "player-1", nil},
		{"the scheme in any case", "bEaReR " + sign(t, "player-2"), v, "player-2", nil},
		{"no token", "", v, "", jwtauth.ErrNoToken},
		{"another scheme", "Basic cGxheWVyLTE6eA==", v, "", jwtauth.ErrNoToken},
		{"a forged token", "Bearer " + sign(t, "player-1") + "x", v, "", nil},
		{"a node without keys", "Bearer " + sign(t, "player-1"), nil, "", jwtauth.ErrNoToken},
	}
	for _, c := range cases {
		var ctx fasthttp.RequestCtx
		if c.auth != "" {
			ctx.Request.Header.Set("Authorization", c.auth)
		}
		r := &Request{Ctx: &ctx, Verifier: c.verifier}
		claims, err := r.Identity()
		switch {
		case c.subject != "" && (err != nil || claims.Subject != c.subject || claims.Domain != "eu"):
			t.Errorf("%s: want %s of domain eu, got %+v, %v", c.name, c.subject, claims, err)
		case c.subject == "" && err == nil:
			t.Errorf("%s: want no identity, got %+v", c.name, claims)
		case c.err != nil && !errors.Is(err, c.err):
			t.Errorf("%s: want %v, got %v", c.name, c.err, err)
		}
		if got := string(r.Principal()); got != c.subject {
			t.Errorf("%s: principal %q, want %q", c.name, got, c.subject)
		}
		// Established once: another token now changes nothing.
		ctx.Request.Header.Set("Authorization", "Bearer "+sign(t, "mallory"))
		if again, err2 := r.Identity(); again != claims || !errors.Is(err2, err) {
			t.Errorf("%s: asked again, the identity changed: %+v, %v → %+v, %v", c.name, claims, err, again, err2)
		}
		if got := string(r.Principal()); got != c.subject {
			t.Errorf("%s: asked again, the principal changed to %q", c.name, got)
		}
	}
}

// Reading the identity of a request whose token was verified before (the
// verifier remembers it) allocates nothing: the protective layer asks for
// the principal on every request of a route with per-player limits.
func TestIdentityNoAllocs(t *testing.T) {
	v, err := jwtauth.New(testJWT)
	if err != nil {
		t.Fatal(err)
	}
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.Set("Authorization", "Bearer "+sign(t, "player-1"))
	r := &Request{Ctx: &ctx, Verifier: v}
	r.Principal() // the verifier's cache
	if n := testing.AllocsPerRun(100, func() {
		*r = Request{Ctx: &ctx, Verifier: v}
		if string(r.Principal()) != "player-1" {
			t.Fatal("no principal: the test measures the wrong path")
		}
	}); n != 0 {
		t.Errorf("Principal: %v allocs per request, want 0", n)
	}
}
