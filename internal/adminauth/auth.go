// Package adminauth decides who may use a node's admin API and what they
// may do, and how one node reaches another's admin listener.
//
// Callers are bearer tokens, each with a name and roles (read, operate,
// promote; configs.AdminToken), or, when admin.allow_loopback is on,
// callers on the node's own machine, who get read and operate but never
// promote. Guard authenticates every request (401 otherwise) and carries
// the caller's Identity on the request; Require lets through only the
// callers holding a role (403 naming it otherwise). Logs and audit records
// name the Identity, never the token.
package adminauth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"hedge/configs"
	"hedge/internal/problem"
)

// LoopbackName is the identity of loopback callers without a token.
const LoopbackName = "loopback"

// loopbackRoles are what allow_loopback grants: reading and operating the
// node from its own machine keeps the one-liners of the demo working; a
// promotion always needs operators' own tokens (four eyes).
var loopbackRoles = []configs.Role{configs.RoleRead, configs.RoleOperate}

// Identity is an authenticated caller of the admin API.
type Identity struct {
	// Name is the token's name, or LoopbackName.
	Name  string
	Roles []configs.Role
	// Token says the caller presented a token (false: loopback).
	Token bool
}

// Has reports whether the caller holds role.
func (id Identity) Has(role configs.Role) bool { return slices.Contains(id.Roles, role) }

type ctxKey struct{}

// From returns the identity Guard put on the request.
func From(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(ctxKey{}).(Identity)
	return id, ok
}

// Authenticate finds who r comes from. A request carrying a token is that
// token's identity, whatever its address (an unknown token is refused, not
// downgraded to loopback); one without is the loopback identity when the
// configuration allows it. Tokens are compared through their SHA-256 in
// constant time, every configured token each time, so neither the
// position nor the length of a match shows in the timing.
func Authenticate(admin *configs.Admin, r *http.Request) (Identity, bool) {
	if auth := r.Header.Get("Authorization"); auth != "" {
		tok, ok := cutBearer(auth)
		if !ok {
			return Identity{}, false
		}
		sum := sha256.Sum256([]byte(tok))
		found := -1
		for i := range admin.Tokens {
			want := sha256.Sum256([]byte(admin.Tokens[i].Secret))
			if subtle.ConstantTimeCompare(sum[:], want[:]) == 1 {
				found = i
			}
		}
		if found < 0 {
			return Identity{}, false
		}
		t := &admin.Tokens[found]
		return Identity{Name: t.Name, Roles: t.Roles, Token: true}, true
	}
	if admin.AllowLoopback && loopback(r.RemoteAddr) {
		return Identity{Name: LoopbackName, Roles: loopbackRoles}, true
	}
	return Identity{}, false
}

// cutBearer takes the token out of "Bearer TOKEN" (the scheme is
// case-insensitive, RFC 9110 11.1).
func cutBearer(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

func loopback(remote string) bool {
	ap, err := netip.ParseAddrPort(remote)
	return err == nil && ap.Addr().Unmap().IsLoopback()
}

// Guard authenticates every request with the admin settings in force
// (current is called per request, so a reload rotates tokens) and puts the
// caller's Identity on it; anyone else gets 401.
func Guard(current func() *configs.Admin, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := Authenticate(current(), r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="hedge-admin"`)
			WriteProblem(w, r, problem.Unauthorized, "send Authorization: Bearer with an admin token")
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, id)))
	})
}

// Require lets through callers holding role; others get 403 naming it.
// It must run behind Guard.
func Require(role configs.Role, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := From(r.Context())
		if !id.Has(role) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="hedge-admin", error="insufficient_scope", scope="`+string(role)+`"`)
			held := make([]string, len(id.Roles))
			for i, r := range id.Roles {
				held[i] = string(r)
			}
			detail := "this needs the role " + string(role) + "; " + id.Name + " holds " + strings.Join(held, ", ")
			if !id.Token {
				detail = "this needs the role " + string(role) + ", which loopback callers without a token never hold: send an admin token that holds it"
			}
			WriteProblem(w, r, problem.RoleMissing, detail)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// RequireFunc is Require for a handler function.
func RequireFunc(role configs.Role, f http.HandlerFunc) http.Handler { return Require(role, f) }

// WriteProblem answers an admin request with problem+json from the
// registry (problem.WriteHTTP, the writer of every net/http handler).
func WriteProblem(w http.ResponseWriter, r *http.Request, t problem.Type, detail string) {
	problem.WriteHTTP(w, r, t, detail)
}

// WriteJSON answers an admin request with v as indented JSON, not to be
// cached: the one JSON writer of the admin APIs (the gateway's and the
// DNS server's).
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
