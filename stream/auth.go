package stream

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"path"
	"strconv"
	"strings"
	"time"
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
