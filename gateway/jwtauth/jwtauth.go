// Package jwtauth verifies players' bearer tokens (JWT: HS256, RS256,
// ES256, EdDSA) with github.com/golang-jwt/jwt/v5. The token's subject is
// the principal that idempotency keys are scoped to and that the edge
// asserts to writers and rails, so it must be a safe identifier (see
// httpx.ValidPrincipal); a configured claim may name the ledger domain.
package jwtauth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"hedge/configs"
	"hedge/internal/httpx"
)

// Claims is what the edge takes from a verified token.
type Claims struct {
	Subject string
	Domain  string
	Expires time.Time
}

type key struct {
	id     string
	alg    string
	verify any           // []byte, *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey
	sign   crypto.Signer // nil unless a private key was configured
	secret []byte
}

// Verifier checks tokens against the configured keys, issuer and audience.
type Verifier struct {
	keys        []key
	parser      *jwt.Parser
	audience    []string
	domainClaim string
	// subject, when set, is the operator's pattern for subjects; it
	// applies on top of ValidSubject, never instead of it.
	subject    *regexp.Regexp
	subjectMax int

	// cache remembers verified tokens until they expire, so a player's
	// token costs one signature check (ES256 is ~50 µs), not one per bet.
	mu    sync.Mutex
	cache map[[32]byte]Claims
}

// ErrNoToken means the request carried no bearer token.
var ErrNoToken = errors.New("no bearer token")

// ErrSubject means a validly signed token names a subject that is not a
// safe identifier: it is refused rather than passed on to a writer.
var ErrSubject = errors.New("token subject is not an acceptable identifier")

// DefaultSubjectPattern is what a subject may look like unless
// auth.jwt.subject_pattern says otherwise: letters, digits and ._:@-.
const DefaultSubjectPattern = `[A-Za-z0-9._:@-]+`

// New loads the keys of cfg.
func New(cfg configs.JWT) (*Verifier, error) {
	v := &Verifier{audience: cfg.Audience, domainClaim: cfg.DomainClaim, cache: map[[32]byte]Claims{},
		subjectMax: cfg.SubjectMaxLength}
	if v.subjectMax <= 0 {
		v.subjectMax = configs.DefaultSubjectMaxLength
	}
	pattern := cfg.SubjectPattern
	if pattern == "" {
		pattern = DefaultSubjectPattern
	}
	re, err := regexp.Compile(`^(?:` + pattern + `)$`)
	if err != nil {
		return nil, fmt.Errorf("auth.jwt.subject_pattern: %w", err)
	}
	v.subject = re
	for _, kc := range cfg.Keys {
		k, err := loadKey(kc)
		if err != nil {
			return nil, fmt.Errorf("auth.jwt key %q: %w", kc.ID, err)
		}
		v.keys = append(v.keys, k)
	}
	if cfg.JWKSFile != "" {
		ks, err := loadJWKS(cfg.JWKSFile)
		if err != nil {
			return nil, fmt.Errorf("auth.jwt.jwks_file: %w", err)
		}
		v.keys = append(v.keys, ks...)
	}
	if len(v.keys) == 0 {
		return nil, errors.New("auth.jwt has no keys")
	}
	var algs []string
	for _, k := range v.keys {
		if !slices.Contains(algs, k.alg) {
			algs = append(algs, k.alg)
		}
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(algs), // never "none", never an algorithm not configured
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(cfg.Leeway.D()),
		jwt.WithIssuedAt(),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	v.parser = jwt.NewParser(opts...)
	return v, nil
}

// Verify checks a token and returns its claims.
func (v *Verifier) Verify(token []byte) (Claims, error) {
	if len(token) == 0 {
		return Claims{}, ErrNoToken
	}
	sum := sha256.Sum256(token)
	now := time.Now()
	v.mu.Lock()
	c, ok := v.cache[sum]
	v.mu.Unlock()
	if ok && now.Before(c.Expires) {
		return c, nil
	}
	claims := jwt.MapClaims{}
	if _, err := v.parser.ParseWithClaims(string(token), claims, v.keyFor); err != nil {
		return Claims{}, err
	}
	if len(v.audience) > 0 {
		aud, _ := claims.GetAudience()
		if !slices.ContainsFunc(aud, func(a string) bool { return slices.Contains(v.audience, a) }) {
			return Claims{}, fmt.Errorf("%w: audience %v not accepted", jwt.ErrTokenInvalidAudience, []string(aud))
		}
	}
	sub, _ := claims.GetSubject()
	if sub == "" {
		return Claims{}, errors.New("token has no subject")
	}
	if !httpx.ValidPrincipal(sub, v.subjectMax) || !v.subject.MatchString(sub) {
		return Claims{}, ErrSubject
	}
	exp, _ := claims.GetExpirationTime()
	c = Claims{Subject: sub, Expires: exp.Time}
	if d, ok := claims[v.domainClaim].(string); ok {
		c.Domain = d
	}
	v.mu.Lock()
	if len(v.cache) >= 100_000 {
		clear(v.cache) // bounded; a cleared cache only costs re-verification
	}
	v.cache[sum] = c
	v.mu.Unlock()
	return c, nil
}

// keyFor picks the verification key: by kid when the token names one,
// else the only key of the token's algorithm.
func (v *Verifier) keyFor(t *jwt.Token) (any, error) {
	// No extension is understood, so a token that names one as critical
	// must be refused (RFC 7515 §4.1.11).
	if _, ok := t.Header["crit"]; ok {
		return nil, errors.New("the token names critical header parameters; none is understood")
	}
	kid, _ := t.Header["kid"].(string)
	alg := t.Method.Alg()
	var found *key
	for i := range v.keys {
		k := &v.keys[i]
		if k.alg != alg || (kid != "" && k.id != kid) {
			continue
		}
		if found != nil {
			return nil, errors.New("several keys fit: the token must name one with kid")
		}
		found = k
	}
	if found == nil {
		return nil, fmt.Errorf("no %s key with kid %q", alg, kid)
	}
	return found.verify, nil
}

// Sign makes a token with the first configured key that can sign — for
// `hedge token`, operators' tests and the demo.
func Sign(cfg configs.JWT, subject, domain string, ttl time.Duration) (string, error) {
	for _, kc := range cfg.Keys {
		k, err := loadKey(kc)
		if err != nil {
			return "", fmt.Errorf("auth.jwt key %q: %w", kc.ID, err)
		}
		var signKey any
		switch {
		case k.secret != nil:
			signKey = k.secret
		case k.sign != nil:
			signKey = k.sign
		default:
			continue
		}
		now := time.Now()
		claims := jwt.MapClaims{"sub": subject, "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(ttl).Unix()}
		if cfg.Issuer != "" {
			claims["iss"] = cfg.Issuer
		}
		if len(cfg.Audience) > 0 {
			claims["aud"] = cfg.Audience
		}
		if domain != "" {
			claims[cfg.DomainClaim] = domain
		}
		t := jwt.NewWithClaims(jwt.GetSigningMethod(k.alg), claims)
		if k.id != "" {
			t.Header["kid"] = k.id
		}
		return t.SignedString(signKey)
	}
	return "", errors.New("no key can sign: configure an HS256 secret or a private_key_file")
}

func loadKey(kc configs.JWTKey) (key, error) {
	k := key{id: kc.ID, alg: string(kc.Alg)}
	if kc.Alg == "HS256" {
		secret := []byte(kc.Secret)
		if kc.SecretFile != "" {
			b, err := os.ReadFile(kc.SecretFile)
			if err != nil {
				return k, err
			}
			secret = []byte(strings.TrimRight(string(b), "\r\n"))
		}
		k.verify, k.secret = secret, secret
		return k, nil
	}
	parsed, err := readPEM(kc.PublicKeyFile, x509.ParsePKIXPublicKey)
	if err != nil {
		return k, err
	}
	if err := checkKeyType(string(kc.Alg), parsed); err != nil {
		return k, fmt.Errorf("%s: %w", kc.PublicKeyFile, err)
	}
	k.verify = parsed
	if kc.PrivateKeyFile != "" {
		priv, err := readPEM(kc.PrivateKeyFile, x509.ParsePKCS8PrivateKey)
		if err != nil {
			return k, err
		}
		k.sign, _ = priv.(crypto.Signer)
	}
	return k, nil
}

func checkKeyType(alg string, k any) error {
	ok := false
	switch alg {
	case "RS256":
		_, ok = k.(*rsa.PublicKey)
	case "ES256":
		var ec *ecdsa.PublicKey
		ec, ok = k.(*ecdsa.PublicKey)
		ok = ok && ec.Curve.Params().Name == "P-256"
	case "EdDSA":
		_, ok = k.(ed25519.PublicKey)
	}
	if !ok {
		return fmt.Errorf("the key is not a %s key", alg)
	}
	return nil
}

// readPEM parses the first PEM block of file with parse; its errors name
// the file.
func readPEM[T any](file string, parse func([]byte) (T, error)) (T, error) {
	var zero T
	b, err := os.ReadFile(file)
	if err != nil {
		return zero, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return zero, fmt.Errorf("%s: no PEM block", file)
	}
	v, err := parse(blk.Bytes)
	if err != nil {
		return zero, fmt.Errorf("%s: %w", file, err)
	}
	return v, nil
}

// loadJWKS reads public keys from a JSON Web Key Set.
func loadJWKS(file string) ([]key, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	var keys []key
	for _, jk := range set.Keys {
		if jk.Use != "" && jk.Use != "sig" {
			continue
		}
		alg := jk.Algorithm
		if alg == "" {
			switch jk.Key.(type) {
			case *rsa.PublicKey:
				alg = "RS256"
			case *ecdsa.PublicKey:
				alg = "ES256"
			case ed25519.PublicKey:
				alg = "EdDSA"
			}
		}
		if err := checkKeyType(alg, jk.Key); err != nil {
			return nil, fmt.Errorf("%s: key %q: %w", file, jk.KeyID, err)
		}
		keys = append(keys, key{id: jk.KeyID, alg: alg, verify: jk.Key})
	}
	return keys, nil
}
