package stream

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"hedge/internal/problem"
)

// Studio may publish the streams whose names match one of Streams (path.Match
// patterns; "*" is every stream) with its bearer token.
type Studio struct {
	Name    string
	Token   string
	Streams []string
}

// studioFor returns the studio whose token is tok and that may publish stream.
func studioFor(studios []Studio, tok, stream string) (string, bool) {
	found := ""
	for _, s := range studios {
		// Compare every token in constant time so timing says nothing about
		// which one (if any) almost matched.
		if subtle.ConstantTimeCompare([]byte(s.Token), []byte(tok)) == 1 && found == "" {
			for _, p := range s.Streams {
				if ok, _ := path.Match(p, stream); ok {
					found = s.Name
					break
				}
			}
		}
	}
	return found, found != ""
}

// bearer returns the token of an "Authorization: Bearer" header value.
func bearer(h string) string {
	const p = "bearer "
	if len(h) > len(p) && strings.EqualFold(h[:len(p)], p) {
		return strings.TrimSpace(h[len(p):])
	}
	return ""
}

// Viewer token errors.
var (
	ErrTokenMalformed = errors.New("malformed viewer token")
	ErrTokenSignature = errors.New("viewer token signature does not verify")
	ErrTokenExpired   = errors.New("viewer token expired")
	ErrTokenStream    = errors.New("viewer token is for another stream")
)

// SignViewerToken returns a token that lets its holder watch stream (or
// every stream, for "*") until exp: base64url("stream\nexpiry-unix") "."
// base64url(HMAC-SHA256(key, that payload)).
func SignViewerToken(key []byte, stream string, exp time.Time) string {
	payload := stream + "\n" + strconv.FormatInt(exp.Unix(), 10)
	m := hmac.New(sha256.New, key)
	m.Write([]byte(payload))
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(payload)) + "." + enc.EncodeToString(m.Sum(nil))
}

// VerifyViewerToken checks tok for stream at time now.
func VerifyViewerToken(key []byte, tok, stream string, now time.Time) error {
	name, err := verifyToken(key, tok, now)
	if err != nil {
		return err
	}
	if name != "*" && name != stream {
		return ErrTokenStream
	}
	return nil
}

// relayTokenName is what a relay's token is signed for: not a stream name
// (those have no colon), so no viewer token, not even "*", is one.
func relayTokenName(stream string) string { return "relay:" + stream }

// verifyRelayToken checks that tok is a relay's token for stream: signed
// with the deployment's key by another region's edge.
func verifyRelayToken(key []byte, tok, stream string, now time.Time) bool {
	name, err := verifyToken(key, tok, now)
	return err == nil && name == relayTokenName(stream)
}

// verifyToken checks tok's signature and expiry and returns what it was
// signed for.
func verifyToken(key []byte, tok string, now time.Time) (string, error) {
	p, sig, ok := strings.Cut(tok, ".")
	if !ok || len(tok) > 1024 {
		return "", ErrTokenMalformed
	}
	enc := base64.RawURLEncoding
	payload, err1 := enc.DecodeString(p)
	mac, err2 := enc.DecodeString(sig)
	if err1 != nil || err2 != nil {
		return "", ErrTokenMalformed
	}
	m := hmac.New(sha256.New, key)
	m.Write(payload)
	if !hmac.Equal(mac, m.Sum(nil)) {
		return "", ErrTokenSignature
	}
	name, expS, ok := strings.Cut(string(payload), "\n")
	if !ok {
		return "", ErrTokenMalformed
	}
	exp, err := strconv.ParseInt(expS, 10, 64)
	if err != nil {
		return "", ErrTokenMalformed
	}
	if now.Unix() >= exp {
		return "", ErrTokenExpired
	}
	return name, nil
}

// SessionTokenHeader carries, in a WHEP 201, the session's own token: the
// bearer token that PATCH and DELETE on the session's Location need (the
// viewer token that created the session, if any, works too). The Location
// alone is not enough: it shows up in logs, referrers and traces.
const SessionTokenHeader = "Session-Token"

// newSessionToken is 256 random bits, base64url.
func newSessionToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// credential is the request's bearer token, or its ?token= (a player's
// viewer token may come in the URL).
func credential(ctx *fasthttp.RequestCtx) string {
	if tok := bearer(string(ctx.Request.Header.Peek("Authorization"))); tok != "" {
		return tok
	}
	return string(ctx.QueryArgs().Peek("token"))
}

// credentialHash is what a session keeps of a credential it accepts.
type credentialHash [sha256.Size]byte

func hashCredential(tok string) credentialHash {
	// Tokens of the usual sizes are hashed from the stack: authorizing a
	// PATCH or DELETE allocates nothing.
	var buf [512]byte
	if len(tok) <= len(buf) {
		return sha256.Sum256(append(buf[:0], tok...))
	}
	return sha256.Sum256([]byte(tok))
}

// grant lets tok control the session (PATCH, DELETE).
func (x *session) grant(tok string) {
	if tok == "" {
		return
	}
	x.mu.Lock()
	x.creds = append(x.creds, hashCredential(tok))
	x.mu.Unlock()
}

// accepts reports whether tok was granted control of the session. Every
// granted credential is compared, in constant time.
func (x *session) accepts(tok string) bool {
	h := hashCredential(tok)
	x.mu.Lock()
	defer x.mu.Unlock()
	ok := 0
	for i := range x.creds {
		ok |= subtle.ConstantTimeCompare(h[:], x.creds[i][:])
	}
	return ok == 1
}

// authorized checks that a PATCH or DELETE carries the session's
// credentials (RFC 9725 §4.4: the session URL is protected like the
// endpoint that created it): for a WHIP session, the studio token that
// created it or that studio's current token (after a reload rotated it);
// for a WHEP session, its session token or the viewer token that created
// it. Otherwise it answers 401 (no credential) or 403 (not this
// session's), counts the refusal, and returns false.
func (s *Server) authorized(ctx *fasthttp.RequestCtx, x *session, requestID []byte) bool {
	tok := credential(ctx)
	if tok != "" && x.accepts(tok) {
		return true
	}
	if tok != "" && x.studio != "" {
		if name, ok := studioFor(s.options().Studios, tok, x.stream); ok && name == x.studio {
			return true
		}
	}
	s.refused[RefusedSessionAuth].Add(1)
	if tok == "" {
		what := "the studio token that created this session"
		if x.endpoint == "whep" {
			what = "the session's token (" + SessionTokenHeader + " of its 201) or the viewer token that created it"
		}
		problem.Write(ctx, problem.InvalidToken, "a bearer token is required: "+what, requestID)
		ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="`+x.endpoint+`"`)
		return false
	}
	problem.Write(ctx, problem.StreamSessionForbidden, "", requestID)
	return false
}
