package sim

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"hedge/internal/tick"
)

// A witness is the arbiter in a third location that a writer and its
// replica both reach (a Redis server, per domain two keys changed only by
// the compare-and-set scripts below). It answers two questions neither
// ledger can answer alone once they cannot reach each other:
//
//   - may the writer acknowledge bets its replica does not hold yet? Only
//     while it holds the domain's lease at its epoch, renewed at the
//     witness, and only after the witness recorded that it does so
//     ("degraded"), so that nobody promotes the replica automatically;
//   - may the replica promote itself? Only when the witness grants it the
//     domain at a higher epoch, which it does once the writer's lease has
//     expired and only if the writer's last recorded state says the replica
//     holds everything it acknowledged ("synced"; "async" when the
//     operators chose to accept the replication lag).
//
// The lease expires by the witness's clock; the writer stops acknowledging
// what its replica lacks at (renewal sent + lease − margin) by its own, so
// it has stopped before the witness could grant the domain to anyone else.
//
// Keys: <prefix><domain>:epoch, a hash {epoch, holder, state} that never
// expires (the highest epoch granted, and what its holder last said), and
// <prefix><domain>:lease, "holder|epoch" with the lease as its expiry.
const witnessPrefix = "hedge:witness:"

// Writer states as the witness records them.
const (
	// WitnessSynced: every bet the writer acknowledged is at its replicas.
	WitnessSynced = "synced"
	// WitnessAsync: the writer replicates asynchronously: its replica may
	// lack what it acknowledged within the lag (the loss the operators
	// accepted by choosing async).
	WitnessAsync = "async"
	// WitnessDegraded: a synchronous writer acknowledges bets without its
	// replica (queued for catch-up); the replica must not take over
	// automatically.
	WitnessDegraded = "degraded"
	// WitnessUnreplicated: a writer without replicas (a promoted replica).
	WitnessUnreplicated = "unreplicated"
)

const (
	defaultLease      = 2 * time.Second
	defaultLeaseRenew = 250 * time.Millisecond
)

// holdScript: a writer takes or renews the lease and records its state.
// KEYS[1] the epoch hash, KEYS[2] the lease; ARGV holder, epoch, state,
// lease ms. Returns {"ok", epoch}, {"fenced", stored epoch} when a higher
// epoch was granted, {"held", epoch} when another holds the lease, or
// {"conflict", epoch} when another ledger was granted this same epoch.
var holdScript = redis.NewScript(`
local e = tonumber(ARGV[2])
local cur = tonumber(redis.call('HGET', KEYS[1], 'epoch') or '0')
if e < cur then return {'fenced', cur} end
local me = ARGV[1] .. '|' .. ARGV[2]
local l = redis.call('GET', KEYS[2])
if l and l ~= me then return {'held', cur} end
local h = redis.call('HGET', KEYS[1], 'holder')
if e == cur and h and h ~= ARGV[1] then return {'conflict', cur} end
redis.call('HSET', KEYS[1], 'epoch', e, 'holder', ARGV[1], 'state', ARGV[3])
redis.call('SET', KEYS[2], me, 'PX', ARGV[4])
return {'ok', e}`)

// grantScript: a replica asks for the domain at epoch ARGV[2] (above the
// stored one); ARGV holder, epoch, lease ms. Granted only when no lease is
// live and the last holder's state is promotable. Returns {"ok", epoch},
// {"stale", stored epoch}, {"held", epoch, ms left}, or {"unsafe", epoch,
// state} (degraded, unreplicated, or nothing recorded).
var grantScript = redis.NewScript(`
local e = tonumber(ARGV[2])
local cur = tonumber(redis.call('HGET', KEYS[1], 'epoch') or '0')
if e <= cur then return {'stale', cur} end
local left = redis.call('PTTL', KEYS[2])
if left > 0 then return {'held', cur, left} end
local st = redis.call('HGET', KEYS[1], 'state')
if st ~= 'synced' and st ~= 'async' then return {'unsafe', cur, st or 'none'} end
redis.call('HSET', KEYS[1], 'epoch', e, 'holder', ARGV[1], 'state', 'unreplicated')
redis.call('SET', KEYS[2], ARGV[1] .. '|' .. ARGV[2], 'PX', ARGV[3])
return {'ok', e}`)

// forceScript: operators promote a ledger (four eyes) at epoch ARGV[2]:
// granted whatever the lease and state, as long as it raises the epoch, so
// a writer still renewing learns at its next renewal that it is fenced.
var forceScript = redis.NewScript(`
local e = tonumber(ARGV[2])
local cur = tonumber(redis.call('HGET', KEYS[1], 'epoch') or '0')
if e <= cur then return {'stale', cur} end
redis.call('HSET', KEYS[1], 'epoch', e, 'holder', ARGV[1], 'state', 'unreplicated')
redis.call('SET', KEYS[2], ARGV[1] .. '|' .. ARGV[2], 'PX', ARGV[3])
return {'ok', e}`)

// witness is one ledger's client of the witness.
type witness struct {
	addr   string
	rdb    *redis.Client
	keys   []string
	holder string
	lease  time.Duration
	renew  time.Duration
	margin time.Duration
}

func newWitness(addr, domain, holder string, lease, renew time.Duration) *witness {
	if lease == 0 {
		lease = defaultLease
	}
	if renew == 0 {
		renew = defaultLeaseRenew
	}
	// Short timeouts and no retries: an answer that comes late is treated
	// as none, and the next renewal is the retry.
	rdb := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: renew, ReadTimeout: renew, WriteTimeout: renew,
		MaxRetries: -1, PoolSize: 4, MinIdleConns: 1})
	p := witnessPrefix + domain
	return &witness{addr: addr, rdb: rdb, keys: []string{p + ":epoch", p + ":lease"}, holder: holder,
		lease: lease, renew: renew, margin: lease / 4}
}

// witnessAnswer is a script's answer.
type witnessAnswer struct {
	Verdict string
	Epoch   int64
	Detail  string // held: ms left; unsafe: the recorded state
}

func (w *witness) run(ctx context.Context, s *redis.Script, args ...any) (witnessAnswer, error) {
	ctx, cancel := context.WithTimeout(ctx, w.renew)
	defer cancel()
	v, err := s.Run(ctx, w.rdb, w.keys, args...).Slice()
	if err != nil {
		return witnessAnswer{}, fmt.Errorf("witness %s: %w", w.addr, err)
	}
	var a witnessAnswer
	if len(v) < 2 {
		return a, fmt.Errorf("witness %s: malformed answer %v", w.addr, v)
	}
	a.Verdict, _ = v[0].(string)
	a.Epoch, _ = v[1].(int64)
	if len(v) > 2 {
		a.Detail = fmt.Sprint(v[2])
	}
	return a, nil
}

// hold takes or renews the lease at epoch, recording state.
func (w *witness) hold(ctx context.Context, epoch int64, state string) (witnessAnswer, error) {
	return w.run(ctx, holdScript, w.holder, epoch, state, w.lease.Milliseconds())
}

// grant asks for the domain at epoch (a replica's automatic promotion).
func (w *witness) grant(ctx context.Context, epoch int64) (witnessAnswer, error) {
	return w.run(ctx, grantScript, w.holder, epoch, w.lease.Milliseconds())
}

// force records an operators' promotion to epoch.
func (w *witness) force(ctx context.Context, epoch int64) (witnessAnswer, error) {
	return w.run(ctx, forceScript, w.holder, epoch, w.lease.Milliseconds())
}

func (w *witness) close() { w.rdb.Close() }

// witnessState is what this writer tells the witness; l.mu is held.
func (rp *replication) witnessState() string {
	switch {
	case len(rp.ships) == 0:
		return WitnessUnreplicated
	case rp.async:
		return WitnessAsync
	case rp.degraded:
		return WitnessDegraded
	}
	return WitnessSynced
}

// needsLease says whether a bet applied now would be acknowledged before
// every replica holds it, which with a witness needs a live lease; l.mu is
// held.
func (rp *replication) needsLease() bool {
	return rp != nil && rp.wit != nil && (len(rp.ships) == 0 || rp.async || rp.degraded)
}

// leaseLive reports whether the lease is live by this ledger's clock, with
// the safety margin; l.mu is held.
func (rp *replication) leaseLive() bool { return time.Now().Before(rp.leaseUntil) }

// renewLoop renews the lease while this ledger writes, recording its state.
func (rp *replication) renewLoop() {
	tick.Now(rp.ctx.Done(), rp.wit.renew, func() { rp.renewOnce("") })
}

// renewOnce holds the lease once. With to set it records that state
// (degraded) instead of the current one and, on success, switches this
// writer to it. It reports whether the lease is live afterwards.
// Renewals are serialised, so a renewal reading "synced" cannot land at
// the witness after a switch to degraded.
func (rp *replication) renewOnce(to string) bool {
	rp.witMu.Lock()
	defer rp.witMu.Unlock()
	l := rp.l
	l.mu.Lock()
	role, epoch, state := l.role, l.epoch, rp.witnessState()
	if to != "" && state == to {
		live := rp.leaseLive()
		l.mu.Unlock()
		if live {
			return true
		}
	} else {
		l.mu.Unlock()
	}
	if role != RoleWriter {
		return false
	}
	if to != "" {
		state = to
	}
	sent := time.Now()
	a, err := rp.wit.hold(rp.ctx, epoch, state)
	switch {
	case err != nil:
		if rp.renewFailures++; rp.renewFailures == 1 || rp.renewFailures%40 == 0 {
			l.log.Warn("witness unreachable: lease not renewed", "witness", rp.wit.addr, "error", err, "failures", rp.renewFailures)
		}
		return false
	case a.Verdict == "fenced":
		l.fence(&FencedError{Replica: "witness " + rp.wit.addr, Epoch: a.Epoch})
		return false
	case a.Verdict != "ok":
		l.log.Error("witness refused the lease", "witness", rp.wit.addr, "verdict", a.Verdict, "epoch", epoch, "witness_epoch", a.Epoch)
		return false
	}
	rp.renewFailures = 0
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.role != RoleWriter || l.epoch != epoch {
		return false
	}
	rp.leaseUntil = sent.Add(rp.wit.lease - rp.wit.margin)
	if to == WitnessDegraded && !rp.degraded {
		rp.degraded = true
		l.log.Warn("replica unavailable: writer degraded, acknowledging alone with its lease at the witness",
			"witness", rp.wit.addr, "epoch", epoch, "lease", rp.wit.lease)
	}
	return true
}

// caughtUp ends a degraded spell once every replica holds every bet; the
// next renewal tells the witness. l.mu is not held.
func (rp *replication) caughtUp() {
	l := rp.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if !rp.degraded {
		return
	}
	for _, sh := range rp.ships {
		sh.mu.Lock()
		n := len(sh.queue)
		sh.mu.Unlock()
		if n > 0 {
			return
		}
	}
	rp.degraded = false
	l.log.Warn("replicas caught up: writer synchronous again", "epoch", l.epoch)
}

// autoPromote is a replica's promotion once its writer has been silent:
// with a witness, only what the witness grants; without, on its own.
func (rp *replication) autoPromote(silent time.Duration, lastErr error) {
	l := rp.l
	l.mu.Lock()
	from := l.epoch
	to := max(l.epoch, rp.writerSeen, rp.witnessSeen) + 1
	l.mu.Unlock()
	var sent time.Time
	if rp.wit != nil {
		sent = time.Now()
		a, err := rp.wit.grant(rp.ctx, to)
		switch {
		case err != nil:
			if rp.grantRefusals++; rp.grantRefusals == 1 || rp.grantRefusals%40 == 0 {
				l.log.Warn("writer silent, witness unreachable: not promoting", "witness", rp.wit.addr, "error", err)
			}
			return
		case a.Verdict == "stale":
			l.mu.Lock()
			rp.witnessSeen = max(rp.witnessSeen, a.Epoch)
			l.mu.Unlock()
			return
		case a.Verdict == "unsafe":
			if rp.grantRefusals++; rp.grantRefusals == 1 || rp.grantRefusals%40 == 0 {
				l.log.Error("writer silent, but the witness says this replica may lack acknowledged bets: not promoting (operators decide)",
					"writer_state", a.Detail, "epoch", a.Epoch)
			}
			return
		case a.Verdict != "ok":
			return // the writer's lease is still live
		}
		rp.grantRefusals = 0
	}
	l.mu.Lock()
	if l.role != RoleReplica || l.epoch >= to {
		l.mu.Unlock()
		return
	}
	l.role, l.epoch = RoleWriter, to
	if rp.wit != nil {
		// The grant is this writer's first lease.
		rp.leaseUntil = sent.Add(rp.wit.lease - rp.wit.margin)
	}
	l.mu.Unlock()
	l.log.Warn("replica promoted itself: its writer was silent", "writer", rp.writer, "silent", silent.Round(time.Millisecond),
		"auto_promote_after", rp.autoAfter, "from_epoch", from, "to_epoch", to, "witness", rp.witAddr(), "last_error", errString(lastErr))
}

func (rp *replication) witAddr() string {
	if rp.wit == nil {
		return ""
	}
	return rp.wit.addr
}

// validWitness checks a witness address (host:port of a Redis server).
func validWitness(s string) error {
	if i := strings.LastIndexByte(s, ':'); i <= 0 || i == len(s)-1 || strings.Contains(s, "/") {
		return fmt.Errorf("%q: want host:port of a Redis server", s)
	}
	return nil
}
