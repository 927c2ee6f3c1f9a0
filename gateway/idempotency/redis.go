package idempotency

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"hedge/internal/tick"
)

// Redis is the store shared by the nodes of a region. A claim is one round
// trip on the happy path: a script returns the existing record or sets the
// in-flight one, atomically.
//
// Each store keeps a liveness key of its own (prefix + "node:" + owner),
// renewed by one goroutine every third of its TTL: a claim held by a store
// whose liveness key is gone (its process was killed, or it lost Redis)
// is taken over by the next claim of the same request from another node,
// instead of blocking the key for the in-flight period. A live holder's
// claim still lasts the in-flight period at most.
type Redis struct {
	c         redis.UniversalClient
	prefix    string
	retention time.Duration
	inflight  time.Duration
	liveness  time.Duration
	owner     string // this store, so tokens are unique across nodes
	alive     string // this store's liveness key
	next      atomic.Uint64

	stop      chan struct{}
	done      chan struct{}
	haltOnce  sync.Once
	closeOnce sync.Once
}

// NewRedis keeps records under prefix: completed ones for retention,
// in-flight claims for inflight, and this store's liveness key for
// liveness, renewed until Close.
func NewRedis(client redis.UniversalClient, prefix string, retention, inflight, liveness time.Duration) *Redis {
	var b [8]byte
	_, _ = rand.Read(b[:])
	owner := hex.EncodeToString(b[:])
	r := &Redis{c: client, prefix: prefix, retention: retention, inflight: inflight, liveness: liveness,
		owner: owner, alive: livenessKey(prefix, owner), stop: make(chan struct{}), done: make(chan struct{})}
	go r.renew()
	return r
}

func livenessKey(prefix, owner string) string { return prefix + "node:" + owner }

// renew keeps the liveness key until Close. A renewal that fails is not
// retried early: the key lapses after its TTL, and then this store's own
// claims find it gone and renew it first (see Claim).
func (r *Redis) renew() {
	defer close(r.done)
	tick.Now(r.stop, r.liveness/3, func() {
		ctx, cancel := context.WithTimeout(context.Background(), r.liveness/3)
		_ = r.beAlive(ctx)
		cancel()
	})
}

// halt stops the renewals and waits for the goroutine to end.
func (r *Redis) halt() {
	r.haltOnce.Do(func() {
		close(r.stop)
		<-r.done
	})
}

func (r *Redis) beAlive(ctx context.Context) error {
	return r.c.Set(ctx, r.alive, strconv.FormatInt(time.Now().UnixMilli(), 10), r.liveness).Err()
}

// ErrNotAlive means this store could not prove to Redis that it is alive,
// so it claims nothing: another node could take the claim over at once.
var ErrNotAlive = errors.New("idempotency: this node's liveness key cannot be renewed")

// claimScript: KEYS[1] the key, KEYS[2] its pin, KEYS[3] the claimant's
// liveness key; ARGV[1] the in-flight value; ARGV[2] the TTL in ms;
// ARGV[3] the fingerprint in hex. Returns {1, existing value} when the key
// is held, {2, pin} when it is pinned under another fingerprint, {3} when
// the claimant's liveness key is gone (it must renew it before claiming),
// and {0} or {0, pin} when the claim was won.
var claimScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v then return {1, v} end
local pin = redis.call('GET', KEYS[2])
if pin and string.sub(pin, 1, 64) ~= ARGV[3] then return {2, pin} end
if redis.call('EXISTS', KEYS[3]) == 0 then return {3} end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if pin then return {0, pin} end
return {0}`)

// takeoverScript replaces an in-flight claim whose holder's liveness key
// is gone. KEYS[1] the key, KEYS[2] its pin, KEYS[3] the holder's liveness
// key, KEYS[4] the claimant's; ARGV[1] the holder's in-flight value as the
// claimant read it, ARGV[2..4] as in claimScript; ARGV[5] the pin of the
// upstream the holder's value names (” for none), kept ARGV[6] ms unless
// the key is pinned already: the dead holder may have sent the request
// there, so it goes nowhere else. Returns as claimScript, and {4} when the
// key changed since it was read (claim again).
var takeoverScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v ~= ARGV[1] then return {4} end
if redis.call('EXISTS', KEYS[3]) == 1 then return {1, v} end
if redis.call('EXISTS', KEYS[4]) == 0 then return {3} end
local pin = redis.call('GET', KEYS[2])
if pin and string.sub(pin, 1, 64) ~= ARGV[4] then return {2, pin} end
if not pin and ARGV[5] ~= '' then
  redis.call('SET', KEYS[2], ARGV[5], 'PX', ARGV[6])
  pin = ARGV[5]
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
if pin then return {0, pin} end
return {0}`)

// moveScript: KEYS[1] the key; replace the owner's in-flight value ARGV[1]
// with ARGV[2], keeping its TTL; 0 when the claim is no longer the owner's.
var moveScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
return 1`)

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
	FP    []byte `json:"f"`
	Done  bool   `json:"d,omitempty"`
	Owner string `json:"o,omitempty"`
	// Upstream is where an in-flight request goes (ClaimFor, Move); a
	// pin of the key, when there is one, says the same.
	Upstream string   `json:"u,omitempty"`
	Status   int      `json:"s,omitempty"`
	Header   []string `json:"h,omitempty"`
	Body     []byte   `json:"b,omitempty"`
	Created  int64    `json:"c"`
}

// keys hashes the scoped key, so Redis keys have a fixed size whatever the
// client sent: the record's key, its pin's, and this store's liveness key
// (the claim script's third; the others ignore it).
func (r *Redis) keys(scoped string) []string {
	sum := sha256.Sum256([]byte(scoped))
	k := r.prefix + hex.EncodeToString(sum[:20])
	return []string{k, k + ":pin", r.alive}
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

func (r *Redis) inflightValue(fp Fingerprint, tok uint64, upstream string) ([]byte, error) {
	return json.Marshal(redisValue{FP: fp[:], Owner: r.owner + "-" + strconv.FormatUint(tok, 10), Upstream: upstream, Created: time.Now().UnixMilli()})
}

// Claim implements Store.
func (r *Redis) Claim(ctx context.Context, key string, fp Fingerprint) (Claim, error) {
	return r.ClaimFor(ctx, key, fp, "")
}

// ClaimFor implements Store. A key held in flight by another node whose
// liveness key is gone is taken over (Claim.TakenOver) when the request is
// the same; the check and the takeover are one script, so a holder that is
// alive keeps its claim, and two nodes never take over the same claim. The
// upstream the dead holder's claim named becomes the key's pin in the same
// script. The upstream rides in the in-flight value: no extra round trip.
func (r *Redis) ClaimFor(ctx context.Context, key string, fp Fingerprint, upstream string) (Claim, error) {
	tok := r.next.Add(1)
	v, err := r.inflightValue(fp, tok, upstream)
	if err != nil {
		return Claim{}, err
	}
	keys := r.keys(key)
	fpHex := hex.EncodeToString(fp[:])
	renewed := false
	for range 4 {
		res, err := claimScript.Run(ctx, r.c, keys, v, r.inflight.Milliseconds(), fpHex).Slice()
		if err != nil {
			return Claim{}, err
		}
		state, val := scriptResult(res)
		var holder string
		won, goes := v, upstream
		if state == 1 {
			var rec *Record
			var sent string
			if rec, holder, sent, err = parseRecord(val); err != nil {
				return Claim{}, err
			}
			if rec.Done || rec.Fingerprint != fp || holder == "" || holder == r.owner {
				return Claim{Existing: rec}, nil
			}
			pin := ""
			if sent != "" {
				// The holder may have sent the request to sent: so does
				// this claim, and so does the pin a third node would find.
				pin, goes = pinValue(fp, sent, rec.Created), sent
				if won, err = r.inflightValue(fp, tok, sent); err != nil {
					return Claim{}, err
				}
			}
			res, err = takeoverScript.Run(ctx, r.c, []string{keys[0], keys[1], livenessKey(r.prefix, holder), r.alive},
				val, won, r.inflight.Milliseconds(), fpHex, pin, r.retention.Milliseconds()).Slice()
			if err != nil {
				return Claim{}, err
			}
			switch state, val = scriptResult(res); state {
			case 1: // the holder is alive: it keeps the claim
				return Claim{Existing: rec}, nil
			case 4: // completed, released or taken over meanwhile
				continue
			}
		}
		switch state {
		case 0:
			c := Claim{Won: true, TakenOver: holder, Upstream: goes, token: tok, value: won}
			if val != "" {
				if _, c.Pinned, _, err = parsePin(val); err != nil {
					// The claim was won; give it back rather than send a
					// request whose pin cannot be read anywhere.
					_ = r.Release(ctx, key, c)
					return Claim{}, err
				}
				// A pin outranks the upstream the value names: the pin
				// stays while the claim is held, and is read first.
				c.Upstream = c.Pinned
			}
			return c, nil
		case 2:
			pfp, up, created, err := parsePin(val)
			if err != nil {
				return Claim{}, err
			}
			return Claim{Existing: &Record{Fingerprint: pfp, Pinned: up, Created: created}}, nil
		case 3:
			// This store's liveness key lapsed (Redis was out of reach):
			// renew it before claiming, or claim nothing.
			if renewed {
				return Claim{}, ErrNotAlive
			}
			if err := r.beAlive(ctx); err != nil {
				return Claim{}, fmt.Errorf("%w: %w", ErrNotAlive, err)
			}
			renewed = true
		default:
			return Claim{}, fmt.Errorf("idempotency: unexpected claim result %v", res)
		}
	}
	return Claim{}, errors.New("idempotency: the key kept changing while it was claimed")
}

// Move implements Store: one round trip, replacing the in-flight value
// only while it is still c's.
func (r *Redis) Move(ctx context.Context, key string, c *Claim, upstream string) error {
	if !c.Won {
		return ErrClaimLost
	}
	var rv redisValue
	if err := json.Unmarshal(c.value, &rv); err != nil {
		return err
	}
	rv.Upstream = upstream
	v, err := json.Marshal(rv)
	if err != nil {
		return err
	}
	n, err := moveScript.Run(ctx, r.c, r.keys(key)[:1], c.value, v).Int()
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrClaimLost
	}
	c.value, c.Upstream = v, upstream
	return nil
}

func scriptResult(res []any) (state int64, val string) {
	if len(res) > 0 {
		state, _ = res[0].(int64)
	}
	if len(res) > 1 {
		val, _ = res[1].(string)
	}
	return state, val
}

// parseRecord reads a stored value, and the store that holds it when it is
// in flight, with the upstream the holder's request goes to.
func parseRecord(val string) (rec *Record, holder, upstream string, err error) {
	var rv redisValue
	if err := json.Unmarshal([]byte(val), &rv); err != nil {
		return nil, "", "", err
	}
	rec = &Record{Done: rv.Done, Created: time.UnixMilli(rv.Created),
		Response: Response{Status: rv.Status, Header: rv.Header, Body: rv.Body}}
	copy(rec.Fingerprint[:], rv.FP)
	holder, _, _ = strings.Cut(rv.Owner, "-")
	return rec, holder, rv.Upstream, nil
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

// Close implements Store: it stops renewing the liveness key and deletes
// it, so the claims this store still holds (it can no longer complete
// them) are taken over at once. Close is safe to call twice.
func (r *Redis) Close() error {
	var err error
	r.closeOnce.Do(func() {
		r.halt()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = r.c.Del(ctx, r.alive).Err()
		cancel()
		err = r.c.Close()
	})
	return err
}
