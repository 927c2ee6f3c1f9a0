package idempotency

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
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

// claimScript: KEYS[1] the key, KEYS[2] its pin; ARGV[1] the in-flight
// value; ARGV[2] the TTL in ms; ARGV[3] the fingerprint in hex. Returns
// {1, existing value} when the key is held, {2, pin} when it is pinned
// under another fingerprint, and {0} or {0, pin} when the claim was won.
var claimScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v then return {1, v} end
local pin = redis.call('GET', KEYS[2])
if pin and string.sub(pin, 1, 64) ~= ARGV[3] then return {2, pin} end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if pin then return {0, pin} end
return {0}`)

// ownerScript: replace (ARGV[2] set, kept ARGV[3] ms) or delete the key
// only while it still holds this owner's in-flight value ARGV[1]; when
// ARGV[4] is set, the pin KEYS[2] becomes ARGV[4] (kept ARGV[3] ms), and
// when ARGV[2] is a completed record the pin goes.
var ownerScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[4] ~= '' then
  redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[3])
  return redis.call('DEL', KEYS[1])
end
if ARGV[2] == '' then return redis.call('DEL', KEYS[1]) end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('DEL', KEYS[2])
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

// keys hashes the scoped key, so Redis keys have a fixed size whatever the
// client sent: the record's key and its pin's.
func (r *Redis) keys(scoped string) []string {
	sum := sha256.Sum256([]byte(scoped))
	k := r.prefix + hex.EncodeToString(sum[:20])
	return []string{k, k + ":pin"}
}

// A pin's value is the fingerprint in hex, a space, the upstream, a space
// and the creation time in Unix ms.
func pinValue(fp Fingerprint, upstream string, created time.Time) string {
	return hex.EncodeToString(fp[:]) + " " + upstream + " " + strconv.FormatInt(created.UnixMilli(), 10)
}

func parsePin(v string) (fp Fingerprint, upstream string, created time.Time, err error) {
	f, rest, ok := strings.Cut(v, " ")
	up, ms, ok2 := strings.Cut(rest, " ")
	n, err3 := strconv.ParseInt(ms, 10, 64)
	b, err4 := hex.DecodeString(f)
	if !ok || !ok2 || err3 != nil || err4 != nil || len(b) != len(fp) {
		return fp, "", time.Time{}, fmt.Errorf("idempotency: malformed pin %q", v)
	}
	copy(fp[:], b)
	return fp, up, time.UnixMilli(n), nil
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
	res, err := claimScript.Run(ctx, r.c, r.keys(key), v, r.inflight.Milliseconds(), hex.EncodeToString(fp[:])).Slice()
	if err != nil {
		return Claim{}, err
	}
	var state int64
	var val string
	if len(res) > 0 {
		state, _ = res[0].(int64)
	}
	if len(res) > 1 {
		val, _ = res[1].(string)
	}
	switch state {
	case 0:
		c := Claim{Won: true, token: tok, value: v}
		if val != "" {
			if _, c.Pinned, _, err = parsePin(val); err != nil {
				// The claim was won; give it back rather than send a
				// request whose pin cannot be read anywhere.
				_ = r.Release(ctx, key, c)
				return Claim{}, err
			}
		}
		return c, nil
	case 2:
		pfp, up, created, err := parsePin(val)
		if err != nil {
			return Claim{}, err
		}
		return Claim{Existing: &Record{Fingerprint: pfp, Pinned: up, Created: created}}, nil
	}
	var rv redisValue
	if err := json.Unmarshal([]byte(val), &rv); err != nil {
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
	return ownerScript.Run(ctx, r.c, r.keys(key), c.value, v, r.retention.Milliseconds(), "").Err()
}

// Release implements Store.
func (r *Redis) Release(ctx context.Context, key string, c Claim) error {
	return ownerScript.Run(ctx, r.c, r.keys(key), c.value, "", 0, "").Err()
}

// Pin implements Store.
func (r *Redis) Pin(ctx context.Context, key string, c Claim, fp Fingerprint, upstream string) error {
	var rv redisValue
	created := time.Now()
	if json.Unmarshal(c.value, &rv) == nil && rv.Created > 0 {
		created = time.UnixMilli(rv.Created)
	}
	return ownerScript.Run(ctx, r.c, r.keys(key), c.value, "", r.retention.Milliseconds(), pinValue(fp, upstream, created)).Err()
}

// Close implements Store.
func (r *Redis) Close() error { return r.c.Close() }
