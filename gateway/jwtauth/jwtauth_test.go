package jwtauth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"hedge/configs"
)

func writePEM(t testing.TB, dir, name, typ string, der []byte) string {
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func keyPair(t testing.TB, dir, alg string) configs.JWTKey {
	var priv crypto.Signer
	switch alg {
	case "RS256":
		priv, _ = rsa.GenerateKey(rand.Reader, 2048)
	case "ES256":
		priv, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "EdDSA":
		_, priv, _ = ed25519.GenerateKey(rand.Reader)
	}
	pub, _ := x509.MarshalPKIXPublicKey(priv.Public())
	pk, _ := x509.MarshalPKCS8PrivateKey(priv)
	return configs.JWTKey{ID: alg + "-1", Alg: configs.JWTAlg(alg),
		PublicKeyFile:  writePEM(t, dir, alg+".pub", "PUBLIC KEY", pub),
		PrivateKeyFile: writePEM(t, dir, alg+".key", "PRIVATE KEY", pk)}
}

func baseJWT(keys ...configs.JWTKey) configs.JWT {
	return configs.JWT{Issuer: "hedge-test", Audience: []string{"play.edge.test"}, Keys: keys,
		DomainClaim: "ledger_domain", Leeway: configs.Duration(time.Second)}
}

func TestEveryAlgorithm(t *testing.T) {
	dir := t.TempDir()
	for _, alg := range []string{"HS256", "RS256", "ES256", "EdDSA"} {
		t.Run(alg, func(t *testing.T) {
			k := configs.JWTKey{ID: "hs", Alg: "HS256", Secret: strings.Repeat("s", 32)}
			if alg != "HS256" {
				k = keyPair(t, dir, alg)
			}
			cfg := baseJWT(k)
			tok, err := Sign(cfg, "player-7", "eu", time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			v, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			c, err := v.Verify([]byte(tok))
			if err != nil || c.Subject != "player-7" || c.Domain != "eu" {
				t.Fatalf("want player-7/eu, got %+v %v", c, err)
			}
		})
	}
}

func TestRejections(t *testing.T) {
	secret := strings.Repeat("s", 32)
	cfg := baseJWT(configs.JWTKey{ID: "hs", Alg: "HS256", Secret: secret})
	v, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(claims jwt.MapClaims, key []byte) string {
		tk := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
		s, _ := tk.SignedString(key)
		return s
	}
	now := time.Now()
	good := jwt.MapClaims{"sub": "p", "iss": "hedge-test", "aud": "play.edge.test", "exp": now.Add(time.Minute).Unix()}
	with := func(k string, val any) jwt.MapClaims {
		c := jwt.MapClaims{}
		for kk, vv := range good {
			c[kk] = vv
		}
		if val == nil {
			delete(c, k)
		} else {
			c[k] = val
		}
		return c
	}
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." +
		base64.RawURLEncoding.EncodeToString(mustJSON(good)) + "."
	cases := map[string]string{
		"expired":         sign(with("exp", now.Add(-time.Minute).Unix()), []byte(secret)),
		"no expiry":       sign(with("exp", nil), []byte(secret)),
		"not yet valid":   sign(with("nbf", now.Add(time.Minute).Unix()), []byte(secret)),
		"wrong issuer":    sign(with("iss", "someone-else"), []byte(secret)),
		"wrong audience":  sign(with("aud", "other.test"), []byte(secret)),
		"no subject":      sign(with("sub", nil), []byte(secret)),
		"wrong key":       sign(good, []byte(strings.Repeat("x", 32))),
		"alg none":        none,
		"malformed":       "not.a.token",
		"garbage":         "\x00\xff",
		"empty signature": strings.Join(strings.Split(sign(good, []byte(secret)), ".")[:2], ".") + ".",
	}
	if _, err := v.Verify([]byte(sign(good, []byte(secret)))); err != nil {
		t.Fatalf("the good token is refused: %v", err)
	}
	for name, tok := range cases {
		if c, err := v.Verify([]byte(tok)); err == nil {
			t.Errorf("%s: accepted (%+v)", name, c)
		}
	}
	if _, err := v.Verify(nil); err != ErrNoToken {
		t.Errorf("no token: want ErrNoToken, got %v", err)
	}
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

func TestJWKS(t *testing.T) {
	dir := t.TempDir()
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &priv.PublicKey, KeyID: "jwks-1", Algorithm: "ES256", Use: "sig"}}}
	file := filepath.Join(dir, "jwks.json")
	os.WriteFile(file, mustJSON(set), 0o600)
	cfg := baseJWT()
	cfg.JWKSFile = file
	v, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tk := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"sub": "p9", "iss": "hedge-test", "aud": "play.edge.test", "exp": time.Now().Add(time.Minute).Unix()})
	tk.Header["kid"] = "jwks-1"
	s, _ := tk.SignedString(priv)
	if c, err := v.Verify([]byte(s)); err != nil || c.Subject != "p9" {
		t.Fatalf("JWKS key: want p9, got %+v %v", c, err)
	}
	tk.Header["kid"] = "unknown"
	s, _ = tk.SignedString(priv)
	if _, err := v.Verify([]byte(s)); err == nil {
		t.Fatal("a token naming an unknown kid was accepted")
	}
}

func BenchmarkVerifyCachedES256(b *testing.B) {
	k := keyPair(b, b.TempDir(), "ES256")
	cfg := baseJWT(k)
	tok, _ := Sign(cfg, "player-1", "", time.Hour)
	v, _ := New(cfg)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify([]byte(tok)); err != nil {
			b.Fatal(err)
		}
	}
}

// TestSubjectGrammar: a validly signed token whose subject could be read
// as something else by a writer (a list of key=value pairs, a NUL that a
// C string would end at, a second header line) is refused, whatever the
// configured pattern; the pattern narrows what is accepted further.
func TestSubjectGrammar(t *testing.T) {
	secret := strings.Repeat("s", 32)
	sign := func(sub string) []byte {
		claims := jwt.MapClaims{"sub": sub, "iss": "hedge-test", "aud": "play.edge.test", "exp": time.Now().Add(time.Minute).Unix()}
		s, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
		return []byte(s)
	}
	cases := []struct {
		name, pattern, sub string
		ok                 bool
	}{
		{"plain", "", "player-1", true},
		{"email-like", "", "p.1@casino.example:eu", true},
		{"at the length bound", "", strings.Repeat("a", 128), true},
		{"over the length bound", "", strings.Repeat("a", 129), false},
		{"key=value smuggling", "", "mallory;sub=victim-3", false},
		{"comma list", "", "mallory,victim-3", false},
		{"NUL", "", "bob\x00x", false},
		{"CRLF", "", "bob\r\nLedger-Account: victim", false},
		{"space", "", "bob x", false},
		{"quote", "", `bob"x`, false},
		{"backslash", "", `bob\x`, false},
		{"non-ASCII", "", "böb", false},
		{"default pattern refuses pipe", "", "auth0|123", false},
		{"pattern admits pipe", `auth0\|[0-9a-f]+`, "auth0|123", true},
		{"pattern is anchored", `auth0\|[0-9a-f]+`, "auth0|123x", false},
		{"pattern cannot admit a separator", `.+`, "mallory;sub=victim-3", false},
		{"pattern cannot admit a NUL", `(?s).+`, "bob\x00x", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := baseJWT(configs.JWTKey{ID: "hs", Alg: "HS256", Secret: secret})
			cfg.SubjectPattern = c.pattern
			v, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			claims, err := v.Verify(sign(c.sub))
			switch {
			case c.ok && err != nil:
				t.Fatalf("subject %q: want accepted, got %v", c.sub, err)
			case !c.ok && err == nil:
				t.Fatalf("subject %q: want refused, got accepted as %q", c.sub, claims.Subject)
			case !c.ok && !errors.Is(err, ErrSubject):
				t.Fatalf("subject %q: want ErrSubject, got %v", c.sub, err)
			}
		})
	}
}

// TestCriticalHeaderRefused: a token naming any critical header parameter
// is refused (RFC 7515 §4.1.11): no extension is understood.
func TestCriticalHeaderRefused(t *testing.T) {
	secret := strings.Repeat("s", 32)
	v, err := New(baseJWT(configs.JWTKey{ID: "hs", Alg: "HS256", Secret: secret}))
	if err != nil {
		t.Fatal(err)
	}
	claims := jwt.MapClaims{"sub": "p", "iss": "hedge-test", "aud": "play.edge.test", "exp": time.Now().Add(time.Minute).Unix(), "x-bind": "dpop"}
	tk := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	good, _ := tk.SignedString([]byte(secret))
	if _, err := v.Verify([]byte(good)); err != nil {
		t.Fatalf("the token without crit is refused: %v", err)
	}
	tk.Header["crit"] = []string{"x-bind"}
	crit, _ := tk.SignedString([]byte(secret))
	if c, err := v.Verify([]byte(crit)); err == nil {
		t.Fatalf("a token with crit: want refused, got %+v", c)
	}
}
