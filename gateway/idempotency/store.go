// Package idempotency keeps the Idempotency-Key records of money calls
// (draft-ietf-httpapi-idempotency-key-header): the first request with a key
// claims it, a concurrent one with the same key sees it in flight, and a
// later one gets the stored response replayed. Keys are scoped by the
// authenticated principal before they reach a Store.
//
// Two stores implement one interface: Memory (bounded, one node) and Redis
// (shared by the nodes of a region; a claim is one round trip, and a claim
// held by a node that stopped renewing its liveness key is taken over).
package idempotency

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"time"
)

// Fingerprint identifies a request's content: method, path and body digest.
type Fingerprint [32]byte

// FingerprintOf hashes method, path (with query) and body.
func FingerprintOf(method, path, body []byte) Fingerprint {
	h := sha256.New()
	h.Write(method)
	h.Write([]byte{'\n'})
	h.Write(path)
	h.Write([]byte{'\n'})
	h.Write(body)
	var fp Fingerprint
	h.Sum(fp[:0])
	return fp
}

// Response is a stored final response.
type Response struct {
	Status int
	// Header holds "Name: value" lines of the headers to replay.
	Header []string
	Body   []byte
}

// Record is what a Store holds for one key.
type Record struct {
	Fingerprint Fingerprint
	// Done is false while the first request is in flight, and for a key
	// pinned after an unknown outcome (Pinned set).
	Done     bool
	Response Response
	Created  time.Time
	// Pinned is the upstream an earlier request with this key was sent to
	// without a known outcome (see Store.Pin).
	Pinned string
}

// Claim is the outcome of claiming a key.
type Claim struct {
	// Won is true when this request owns the key and must Complete,
	// Release or Pin it; otherwise Existing is the record that was there.
	Won      bool
	Existing *Record
	// Pinned, on a won claim, is the upstream that an earlier request with
	// this key reached without a known outcome: the request must go there
	// and nowhere else, since another upstream that does not share its
	// deduplication could apply it a second time.
	Pinned string
	// Upstream, on a won claim, is where the request goes: Pinned when
	// set, else the upstream given to ClaimFor or to Move. The store keeps
	// it with the in-flight record, so a claim taken over from a dead node
	// is pinned to the upstream that node may have sent the request to.
	Upstream string
	// TakenOver, on a won claim, names the node (a store's owner id) that
	// held the key in flight and stopped proving it is alive: it was
	// killed or lost the shared store, and this request took its place.
	TakenOver string
	// token identifies the owner, so only it can complete or release;
	// value is the in-flight record as a shared store holds it.
	token uint64
	value []byte
}

// ErrFull means the store cannot take another key now.
var ErrFull = errors.New("idempotency store is full")

// ErrClaimLost means a claim is no longer its owner's (it expired, or was
// taken over from a node that looked dead).
var ErrClaimLost = errors.New("idempotency: the claim is no longer this request's")

// Store keeps idempotency records.
type Store interface {
	// Claim creates an in-flight record for key unless one exists.
	Claim(ctx context.Context, key string, fp Fingerprint) (Claim, error)
	// ClaimFor is Claim for a request that goes to upstream unless the key
	// is pinned elsewhere: the record says so before the request is sent,
	// so that when its holder dies mid-call the claim passes on pinned to
	// upstream (see Move), never free to reach an upstream that does not
	// share upstream's deduplication.
	ClaimFor(ctx context.Context, key string, fp Fingerprint, upstream string) (Claim, error)
	// Move records, before anything is sent there, that the owner's claim
	// now goes to another upstream (the first one was not reached, or
	// refused without applying the request); c.Upstream becomes upstream.
	// It fails with ErrClaimLost when the claim is no longer c's owner's:
	// the request must then not be sent at all.
	Move(ctx context.Context, key string, c *Claim, upstream string) error
	// Complete stores the final response of the claim's owner.
	Complete(ctx context.Context, key string, c Claim, fp Fingerprint, resp Response) error
	// Release forgets an in-flight claim whose outcome is not final (the
	// request failed before the writer, or its outcome is unknown), so the
	// client's retry with the same key is forwarded again. A pin the key
	// had stays.
	Release(ctx context.Context, key string, c Claim) error
	// Pin releases an in-flight claim whose request reached upstream but
	// got no answer, and remembers for the retention period which upstream
	// that was: the next claim of the key with the same fingerprint wins
	// with Claim.Pinned set; one with another fingerprint finds the pinned
	// record (a different request under a used key). Complete removes the
	// pin.
	Pin(ctx context.Context, key string, c Claim, fp Fingerprint, upstream string) error
	Close() error
}

// ScopedKey joins the principal and the client's key; one player's keys can
// never meet another's.
func ScopedKey(principal, key []byte) string {
	b := make([]byte, 0, 2+len(principal)+len(key))
	b = binary.BigEndian.AppendUint16(b, uint16(len(principal)))
	b = append(b, principal...)
	b = append(b, key...)
	return string(b)
}
