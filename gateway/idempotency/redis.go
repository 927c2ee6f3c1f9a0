package idempotency

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is the store shared by the nodes of a region. A claim is one round
// trip on the happy path: a script returns the existing record or sets the
// in-flight one, atomically.
type Redis struct {
	c         redis.UniversalClient
	prefix    string
	retention time.Duration
	inflight  time.Duration
	owner     string // this process, so tokens are unique across nodes
	next      atomic.Uint64
}

// NewRedis keeps records under prefix: completed ones for retention,
// in-flight claims for inflight.
func NewRedis(client redis.UniversalClient, prefix string, retention, inflight time.Duration) *Redis {
	var b [8]byte
	now := time.Now().UnixNano()
	for i := range b {
		b[i] = byte(now >> (8 * i))
	}
	return &Redis{c: client, prefix: prefix, retention: retention, inflight: inflight, owner: hex.EncodeToString(b[:])}
}

// claimScript: KEYS[1] the key; ARGV[1] the in-flight value; ARGV[2] the TTL
// in ms. Returns the existing value, or nothing when the claim was won.
var claimScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v then return v end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false`)

// ownerScript: replace (ARGV[2] set, kept ARGV[3] ms) or delete the key
// only while it still holds this owner's in-flight value ARGV[1].
var ownerScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then return redis.call('DEL', KEYS[1]) end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1`)

type redisValue struct {
	FP      []byte   `json:"f"`
	Done    bool     `json:"d,omitempty"`
	Owner   string   `json:"o,omitempty"`
	Status  int      `json:"s,omitempty"`
	Header  []string `json:"h,omitempty"`
	Body    []byte   `json:"b,omitempty"`
	Created int64    `json:"c"`
}

// key hashes the scoped key, so Redis keys have a fixed size whatever the
// client sent.
func (r *Redis) key(scoped string) string {
	sum := sha256.Sum256([]byte(scoped))
	return r.prefix + hex.EncodeToString(sum[:20])
}

func (r *Redis) inflightValue(fp Fingerprint, tok uint64) ([]byte, error) {
	return json.Marshal(redisValue{FP: fp[:], Owner: r.owner + "-" + strconv.FormatUint(tok, 10), Created: time.Now().UnixMilli()})
}

// Claim implements Store.
func (r *Redis) Claim(ctx context.Context, key string, fp Fingerprint) (Claim, error) {
	tok := r.next.Add(1)
	v, err := r.inflightValue(fp, tok)
	if err != nil {
		return Claim{}, err
	}
	res, err := claimScript.Run(ctx, r.c, []string{r.key(key)}, v, r.inflight.Milliseconds()).Text()
	if errors.Is(err, redis.Nil) {
		return Claim{Won: true, token: tok, value: v}, nil
	}
	if err != nil {
		return Claim{}, err
	}
	var rv redisValue
	if err := json.Unmarshal([]byte(res), &rv); err != nil {
		return Claim{}, err
	}
	rec := &Record{Done: rv.Done, Created: time.UnixMilli(rv.Created),
		Response: Response{Status: rv.Status, Header: rv.Header, Body: rv.Body}}
	copy(rec.Fingerprint[:], rv.FP)
	return Claim{Existing: rec}, nil
}

// Complete implements Store: one round trip, replacing the in-flight value
// only if it is still this claim's.
func (r *Redis) Complete(ctx context.Context, key string, c Claim, fp Fingerprint, resp Response) error {
	v, err := json.Marshal(redisValue{FP: fp[:], Done: true, Status: resp.Status, Header: resp.Header, Body: resp.Body, Created: time.Now().UnixMilli()})
	if err != nil {
		return err
	}
	return ownerScript.Run(ctx, r.c, []string{r.key(key)}, c.value, v, r.retention.Milliseconds()).Err()
}

// Release implements Store.
func (r *Redis) Release(ctx context.Context, key string, c Claim) error {
	return ownerScript.Run(ctx, r.c, []string{r.key(key)}, c.value, "", 0).Err()
}

// Close implements Store.
func (r *Redis) Close() error { return r.c.Close() }
