package sim

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"hedge/internal/fetch"
	"hedge/internal/tick"
)

// Replication modes of a writer that has replicas (LedgerSettings.Replicas).
const (
	// ReplicationSync answers a bet only after every replica holds it, so
	// nothing acknowledged is missing from a promoted replica (RPO 0); a
	// bet no replica acknowledges in time is rolled back and refused.
	ReplicationSync = "sync"
	// ReplicationAsync answers at once and ships each bet after
	// LedgerSettings.ReplicationLag: a writer lost inside the lag loses
	// what it acknowledged in it.
	ReplicationAsync = "async"
)

const (
	defaultReplicationTimeout = 500 * time.Millisecond
	defaultHeartbeat          = 250 * time.Millisecond
	// maxBatch bounds one POST /replication/bets.
	maxBatch = 512
	// maxAsyncQueue bounds what an asynchronous writer holds for a replica
	// it cannot reach; beyond it the oldest bets are dropped, loudly.
	maxAsyncQueue   = 100_000
	replicationPath = "/replication/bets"
)

// replBet is one applied bet as a writer ships it to its replicas.
type replBet struct {
	Key      string      `json:"key"`
	Account  string      `json:"account"`
	Amount   string      `json:"amount"`
	Epoch    int64       `json:"epoch"` // the writer's epoch when it applied the bet
	Request  betRequest  `json:"request"`
	Response betResponse `json:"response"`

	due time.Time // async: when to ship
	seq uint64    // async: order in the queue
}

// replBatch is the body of POST /replication/bets.
type replBatch struct {
	Domain string    `json:"domain"`
	Epoch  int64     `json:"epoch"` // the sender's epoch when it sent the batch
	Bets   []replBet `json:"bets"`
}

// FencedError is a replica's refusal of a writer's bets: the replica holds
// a higher epoch (it was promoted), so the writer no longer writes.
type FencedError struct {
	Replica string
	Epoch   int64
}

func (e *FencedError) Error() string {
	return fmt.Sprintf("replica %s is at epoch %d: this writer is fenced", e.Replica, e.Epoch)
}

// replication is a writer's side of network replication, and a replica's
// heartbeat towards its writer. It owns every goroutine it starts; close
// stops them.
type replication struct {
	l       *Ledger
	async   bool
	lag     time.Duration
	timeout time.Duration
	client  *http.Client
	ships   []*shipper

	writer     string        // replica side: the writer's base URL
	autoAfter  time.Duration // 0: never promote on its own
	heartbeat  time.Duration
	lastHeard  time.Time // guarded by l.mu: last import or heartbeat from the writer
	writerSeen int64     // guarded by l.mu: highest epoch the writer reported

	// wit is the witness (nil without one). witMu serialises this
	// ledger's lease renewals and state changes at it.
	wit   *witness
	witMu sync.Mutex
	// Guarded by l.mu: degraded is a synchronous writer acknowledging
	// without its replicas (queued for catch-up); leaseUntil is when its
	// lease stops being live by this ledger's clock (renewal sent + lease
	// − margin); witnessSeen the highest epoch the witness reported.
	degraded    bool
	leaseUntil  time.Time
	witnessSeen int64
	// renewFailures (under witMu) and grantRefusals (heartbeat loop only)
	// thin out repeated log lines.
	renewFailures int
	grantRefusals int

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// shipper holds an asynchronous writer's queue for one replica.
type shipper struct {
	url   string
	mu    sync.Mutex
	queue []replBet
	wake  chan struct{}
	// dropped counts bets dropped from a full queue.
	dropped int
	seq     uint64
}

func newReplication(l *Ledger, s LedgerSettings) *replication {
	if len(s.Replicas) == 0 && s.Writer == "" && s.Witness == "" {
		return nil
	}
	rp := &replication{l: l, async: s.Replication == ReplicationAsync, lag: s.ReplicationLag,
		timeout: s.ReplicationTimeout, writer: strings.TrimSuffix(s.Writer, "/"), autoAfter: s.AutoPromoteAfter,
		heartbeat: s.HeartbeatInterval, lastHeard: time.Now()}
	if rp.timeout == 0 {
		rp.timeout = defaultReplicationTimeout
	}
	if rp.heartbeat == 0 {
		rp.heartbeat = defaultHeartbeat
	}
	var tc *tls.Config
	if s.PeerTLS != nil {
		tc = s.PeerTLS.Clone()
	}
	rp.client = &http.Client{Transport: &http.Transport{TLSClientConfig: tc, MaxIdleConnsPerHost: 64,
		IdleConnTimeout: 30 * time.Second, ForceAttemptHTTP2: false}}
	for _, u := range s.Replicas {
		rp.ships = append(rp.ships, &shipper{url: strings.TrimSuffix(u, "/"), wake: make(chan struct{}, 1)})
	}
	if s.Witness != "" {
		holder := s.WitnessHolder
		if holder == "" {
			holder = s.Domain
		}
		rp.wit = newWitness(s.Witness, s.Domain, holder, s.Lease, s.LeaseRenew)
	}
	rp.ctx, rp.cancel = context.WithCancel(context.Background())
	// A synchronous writer with a witness queues for catch-up what it
	// acknowledged while degraded.
	if rp.async || rp.wit != nil {
		for _, sh := range rp.ships {
			rp.wg.Go(func() { rp.shipLoop(sh) })
		}
	}
	if rp.writer != "" && rp.autoAfter > 0 {
		rp.wg.Go(rp.heartbeatLoop)
	}
	if rp.wit != nil {
		rp.wg.Go(rp.renewLoop)
	}
	return rp
}

func (rp *replication) close() {
	if rp == nil {
		return
	}
	rp.once.Do(func() {
		rp.cancel()
		rp.wg.Wait()
		rp.client.CloseIdleConnections()
		if rp.wit != nil {
			rp.wit.close()
		}
	})
}

// syncReplicas reports whether bets wait for replicas' acknowledgements
// (not while degraded); l.mu is held.
func (rp *replication) syncReplicas() bool {
	return rp != nil && !rp.async && len(rp.ships) > 0 && !rp.degraded
}

// queued reports whether bets go to the shippers' queues; l.mu is held.
func (rp *replication) queued() bool {
	return rp != nil && len(rp.ships) > 0 && (rp.async || rp.degraded)
}

// replicate ships b to every replica and waits for all of them, within
// the replication timeout. A replica that says this writer is fenced wins
// over any other failure.
func (rp *replication) replicate(b replBet) error {
	ctx, cancel := context.WithTimeout(rp.ctx, rp.timeout)
	defer cancel()
	batch := []replBet{b}
	if len(rp.ships) == 1 {
		return rp.send(ctx, rp.ships[0].url, batch)
	}
	errs := make([]error, len(rp.ships))
	var wg sync.WaitGroup
	for i, sh := range rp.ships {
		wg.Go(func() { errs[i] = rp.send(ctx, sh.url, batch) })
	}
	wg.Wait()
	for _, err := range errs {
		if fe := (*FencedError)(nil); errors.As(err, &fe) {
			return fe
		}
	}
	return errors.Join(errs...)
}

// enqueue hands b to every replica's shipper, to be sent after the lag.
func (rp *replication) enqueue(b replBet) {
	b.due = time.Now().Add(rp.lag)
	for _, sh := range rp.ships {
		sh.mu.Lock()
		if len(sh.queue) >= maxAsyncQueue {
			sh.queue = sh.queue[1:]
			sh.dropped++
			if sh.dropped == 1 || sh.dropped%1000 == 0 {
				rp.l.log.Error("replication queue full: oldest bets dropped", "replica", sh.url, "dropped", sh.dropped)
			}
		}
		sh.seq++
		b.seq = sh.seq
		sh.queue = append(sh.queue, b)
		sh.mu.Unlock()
		select {
		case sh.wake <- struct{}{}:
		default:
		}
	}
}

// shipLoop sends sh's bets in the order they were applied, each once its
// lag has passed, retrying a replica that does not answer until it does
// or says this writer is fenced.
func (rp *replication) shipLoop(sh *shipper) {
	backoff := 50 * time.Millisecond
	for {
		sh.mu.Lock()
		var batch []replBet
		var wait time.Duration = -1
		now := time.Now()
		for _, b := range sh.queue {
			if b.due.After(now) {
				if len(batch) == 0 {
					wait = b.due.Sub(now)
				}
				break
			}
			batch = append(batch, b)
			if len(batch) == maxBatch {
				break
			}
		}
		sh.mu.Unlock()
		if len(batch) == 0 {
			var timer *time.Timer
			var due <-chan time.Time
			if wait >= 0 {
				timer = time.NewTimer(wait)
				due = timer.C
			}
			select {
			case <-rp.ctx.Done():
			case <-sh.wake:
			case <-due:
			}
			if timer != nil {
				timer.Stop()
			}
			if rp.ctx.Err() != nil {
				return
			}
			continue
		}
		ctx, cancel := context.WithTimeout(rp.ctx, rp.timeout)
		err := rp.send(ctx, sh.url, batch)
		cancel()
		var fe *FencedError
		switch {
		case err == nil:
			backoff = 50 * time.Millisecond
			// Drop what was sent; a full queue may have dropped some of
			// it from the head meanwhile.
			last := batch[len(batch)-1].seq
			sh.mu.Lock()
			n := 0
			for n < len(sh.queue) && sh.queue[n].seq <= last {
				n++
			}
			sh.queue = sh.queue[n:]
			empty := len(sh.queue) == 0
			sh.mu.Unlock()
			if empty && !rp.async {
				rp.caughtUp()
			}
		case errors.As(err, &fe):
			rp.l.fence(fe)
			sh.mu.Lock()
			sh.queue = nil
			sh.mu.Unlock()
		default:
			if rp.ctx.Err() != nil {
				return
			}
			rp.l.log.Warn("replication failed: retrying", "replica", sh.url, "bets", len(batch), "error", err)
			select {
			case <-rp.ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, time.Second)
		}
	}
}

// send posts batch to the replica at base.
func (rp *replication) send(ctx context.Context, base string, batch []replBet) error {
	l := rp.l
	l.mu.Lock()
	epoch := l.epoch
	l.mu.Unlock()
	status, b, err := fetch.PostJSON(ctx, rp.client, base+replicationPath, l.adminToken,
		replBatch{Domain: l.domain, Epoch: epoch, Bets: batch}, 64<<10)
	if err != nil || status == http.StatusOK {
		return err
	}
	var p problem
	if json.Unmarshal(b, &p) == nil && p.Type == "urn:hedge:problem:stale-epoch" && p.Epoch > 0 {
		return &FencedError{Replica: base, Epoch: p.Epoch}
	}
	return fmt.Errorf("replica %s answered %d %s", base, status, p.Type)
}

// heartbeatLoop is a replica's watch on its writer: it asks the writer's
// /role every heartbeat interval and promotes this ledger when neither a
// heartbeat nor an import has come for autoAfter.
func (rp *replication) heartbeatLoop() {
	tick.Every(rp.ctx.Done(), rp.heartbeat, func(time.Time) { rp.watchWriter() })
}

// watchWriter is one heartbeat of a replica.
func (rp *replication) watchWriter() {
	if rp.l.roleBody().Role != RoleReplica {
		return
	}
	ans, err := rp.askWriter()
	l := rp.l
	l.mu.Lock()
	if err == nil {
		rp.writerSeen = max(rp.writerSeen, ans.Epoch)
		// Only a writer still claiming the role at this replica's
		// epoch or above is alive for it; a fenced or demoted one
		// writes nothing this replica could follow.
		if ans.Role == RoleWriter && ans.Epoch >= l.epoch {
			rp.lastHeard = time.Now()
			l.epoch = max(l.epoch, ans.Epoch)
		}
	}
	silent := time.Since(rp.lastHeard)
	replica := l.role == RoleReplica
	l.mu.Unlock()
	if replica && silent >= rp.autoAfter {
		rp.autoPromote(silent, err)
	}
}

func (rp *replication) askWriter() (roleBody, error) {
	var ans roleBody
	ctx, cancel := context.WithTimeout(rp.ctx, rp.heartbeat)
	defer cancel()
	err := fetch.JSON(ctx, rp.client, rp.writer+"/role", 64<<10, &ans)
	if se, ok := errors.AsType[*fetch.StatusError](err); ok {
		err = fmt.Errorf("writer's /role answered %d", se.Code)
	}
	return ans, err
}

// heard records contact from the writer (an import); l.mu is held.
func (rp *replication) heard() {
	if rp != nil {
		rp.lastHeard = time.Now()
	}
}

// ReplicationStatus is GET /replication: how this ledger replicates.
type ReplicationStatus struct {
	Mode     string          `json:"mode,omitempty"` // sync | async, for a ledger with replicas
	Lag      string          `json:"lag,omitempty"`
	Timeout  string          `json:"timeout,omitempty"`
	Replicas []ReplicaStatus `json:"replicas"`
	// Writer is the writer a replica watches, and LastHeard when it last
	// heard from it (an import or a heartbeat).
	Writer           string    `json:"writer,omitempty"`
	LastHeard        time.Time `json:"last_heard,omitzero"`
	AutoPromoteAfter string    `json:"auto_promote_after,omitempty"`
	// Witness is the arbiter's address; State what this writer last
	// recorded there and LeaseUntil when its lease stops being live by
	// this ledger's clock.
	Witness    string    `json:"witness,omitempty"`
	Lease      string    `json:"lease,omitempty"`
	State      string    `json:"state,omitempty"`
	LeaseUntil time.Time `json:"lease_until,omitzero"`
}

// ReplicaStatus is one replica of a writer.
type ReplicaStatus struct {
	URL string `json:"url"`
	// Queued bets wait to be shipped (asynchronous replication).
	Queued  int `json:"queued"`
	Dropped int `json:"dropped,omitempty"`
}

func (rp *replication) status() ReplicationStatus {
	st := ReplicationStatus{Replicas: []ReplicaStatus{}}
	if rp == nil {
		return st
	}
	if len(rp.ships) > 0 {
		st.Mode, st.Timeout = ReplicationSync, rp.timeout.String()
		if rp.async {
			st.Mode, st.Lag = ReplicationAsync, rp.lag.String()
		}
	}
	for _, sh := range rp.ships {
		sh.mu.Lock()
		st.Replicas = append(st.Replicas, ReplicaStatus{URL: sh.url, Queued: len(sh.queue), Dropped: sh.dropped})
		sh.mu.Unlock()
	}
	if rp.writer != "" {
		st.Writer = rp.writer
		rp.l.mu.Lock()
		st.LastHeard = rp.lastHeard
		rp.l.mu.Unlock()
		if rp.autoAfter > 0 {
			st.AutoPromoteAfter = rp.autoAfter.String()
		}
	}
	if rp.wit != nil {
		st.Witness, st.Lease = rp.wit.addr, rp.wit.lease.String()
		rp.l.mu.Lock()
		if rp.l.role == RoleWriter {
			st.State, st.LeaseUntil = rp.witnessState(), rp.leaseUntil
		}
		rp.l.mu.Unlock()
	}
	return st
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// validPeerURL checks a replica's or writer's base URL.
func validPeerURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return fmt.Errorf("%q: want a base URL such as http://127.0.0.22:7000", s)
	}
	return nil
}

// fence makes a writer told by a replica that a higher epoch exists refuse
// every later bet: it cannot know what the new writer applied, and any
// bet it acknowledged now would be one the new writer lacks.
func (l *Ledger) fence(fe *FencedError) {
	l.mu.Lock()
	was, from := l.role, l.epoch
	if l.role == RoleWriter || l.role == RoleFenced {
		l.role = RoleFenced
		l.epoch = max(l.epoch, fe.Epoch)
	}
	to := l.epoch
	l.mu.Unlock()
	if was == RoleWriter {
		l.log.Warn("writer fenced: a replica holds a higher epoch", "replica", fe.Replica, "from_epoch", from, "to_epoch", to)
	}
}

// importBets is POST /replication/bets: a replica takes the bets its
// writer applied. A ledger at a higher epoch than a bet refuses the batch
// with 409 stale-epoch naming its epoch, which fences the sender; bets from
// a higher epoch than its own make it follow that epoch (a writer or fenced
// ledger becomes a replica: a newer writer exists and streams to it).
func (l *Ledger) importBets(w http.ResponseWriter, r *http.Request) {
	var batch replBatch
	if err := decodeBody(w, r, &batch); err != nil {
		writeProblem(w, http.StatusBadRequest, "malformed-body", "Malformed request body", err.Error())
		return
	}
	if batch.Domain != l.domain {
		writeProblem(w, http.StatusMisdirectedRequest, "wrong-domain", "Wrong ledger domain",
			fmt.Sprintf("this ledger holds domain %q, the bets are of %q", l.domain, batch.Domain))
		return
	}
	type parsed struct {
		sc     scope
		amount int64
		b      replBet
	}
	bets := make([]parsed, 0, len(batch.Bets))
	lowest, highest := int64(-1), int64(0)
	for _, b := range batch.Bets {
		amount, err := parseMinor(b.Amount)
		if err != nil || b.Key == "" || b.Account == "" || b.Epoch <= 0 {
			writeProblem(w, http.StatusUnprocessableEntity, "invalid-replication", "Invalid replicated bet",
				"every bet needs a key, an account, an amount and a positive epoch")
			return
		}
		if lowest < 0 || b.Epoch < lowest {
			lowest = b.Epoch
		}
		highest = max(highest, b.Epoch)
		bets = append(bets, parsed{scope{account: b.Account, key: b.Key}, amount, b})
	}
	highest = max(highest, batch.Epoch)
	now := time.Now()
	var receipts []Receipt
	l.mu.Lock()
	if lowest >= 0 && lowest < l.epoch || batch.Epoch < l.epoch {
		epoch, role := l.epoch, l.role
		l.mu.Unlock()
		writeProblemBody(w, problem{Type: "urn:hedge:problem:stale-epoch", Title: "Stale epoch", Status: http.StatusConflict, Epoch: epoch,
			Detail: fmt.Sprintf("this ledger is %s at epoch %d and takes no bets applied at epoch %d", role, epoch, min(lowest, batch.Epoch))})
		return
	}
	if l.role != RoleReplica {
		if highest == l.epoch {
			role, epoch := l.role, l.epoch
			l.mu.Unlock()
			writeProblem(w, http.StatusConflict, "writer-conflict", "Two writers at one epoch",
				fmt.Sprintf("this ledger is %s at epoch %d too: it imports from no writer at its own epoch", role, epoch))
			return
		}
		l.log.Warn("a writer at a higher epoch replicates here: following it", "from_role", l.role, "from_epoch", l.epoch, "to_epoch", highest)
		l.role = RoleReplica
	}
	l.epoch = max(l.epoch, highest)
	l.repl.heard()
	imported := 0
	for _, p := range bets {
		if slot, ok := l.bets[p.sc]; ok {
			// Known already: a writer's retry of a bet it rolled back and
			// applied again. The money moved once; keep its latest answer.
			if slot.replicated && slot.req == p.b.Request {
				slot.resp = p.b.Response
			}
			continue
		}
		balance, ok := l.balances[p.sc.account]
		if !ok {
			balance = l.start
		}
		// Debiting rather than copying the writer's balance keeps imports
		// that arrive out of order right.
		l.balances[p.sc.account] = balance - p.amount
		l.bets[p.sc] = &betSlot{req: p.b.Request, resp: p.b.Response, replicated: true}
		imported++
		if l.keepReceipts {
			receipts = append(receipts, Receipt{Key: p.b.Key, Account: p.b.Account, Epoch: p.b.Epoch, At: now, Outcome: ReceiptImported,
				Amount: p.b.Amount, BetID: p.b.Response.BetID, AppliedEpoch: p.b.Epoch})
		}
	}
	epoch := l.epoch
	l.mu.Unlock()
	if len(receipts) > 0 {
		l.receiptsMu.Lock()
		l.receipts = append(l.receipts, receipts...)
		l.receiptsMu.Unlock()
	}
	writeJSON(w, http.StatusOK, map[string]any{"imported": imported, "received": len(bets), "epoch": epoch})
}

// promote is POST /admin/promote {"epoch": N}: this ledger becomes the
// writer at epoch N (omitted: the current epoch + 1). N must be above the
// current epoch, so every bet and import of the old writer is fenced off;
// asking again for the epoch it already writes at is answered as done, so
// an operator's retry is safe.
func (l *Ledger) promote(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Epoch *int64 `json:"epoch"`
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyLen))
	if err == nil && len(bytes.TrimSpace(b)) > 0 {
		err = json.Unmarshal(b, &req)
	}
	if err != nil {
		writeProblem(w, http.StatusBadRequest, "malformed-body", "Malformed request body", `want {"epoch": N} or nothing`)
		return
	}
	l.mu.Lock()
	before := roleBody{Role: l.role, Domain: l.domain, Epoch: l.epoch}
	to := l.epoch + 1
	if req.Epoch != nil {
		to = *req.Epoch
	}
	if rp := l.repl; rp != nil && rp.wit != nil && to > l.epoch {
		// Recorded at the witness first, so a writer still renewing there
		// learns at its next renewal that it is fenced. Operators decide
		// without the witness when it cannot be reached.
		l.mu.Unlock()
		sent := time.Now()
		a, err := rp.wit.force(r.Context(), to)
		switch {
		case err != nil:
			l.log.Warn("promotion not recorded at the witness: promoting anyway (operators decide)", "witness", rp.wit.addr, "error", err)
		case a.Verdict == "stale":
			writeProblemBody(w, problem{Type: "urn:hedge:problem:stale-epoch", Title: "Stale epoch", Status: http.StatusConflict, Epoch: a.Epoch,
				Detail: fmt.Sprintf("the witness already granted epoch %d: %d is not above it", a.Epoch, to)})
			return
		}
		l.mu.Lock()
		if err == nil {
			rp.leaseUntil = sent.Add(rp.wit.lease - rp.wit.margin)
		}
		before = roleBody{Role: l.role, Domain: l.domain, Epoch: l.epoch}
	}
	switch {
	case to == l.epoch && l.role == RoleWriter:
	case to <= l.epoch:
		l.mu.Unlock()
		writeProblemBody(w, problem{Type: "urn:hedge:problem:stale-epoch", Title: "Stale epoch", Status: http.StatusConflict, Epoch: before.Epoch,
			Detail: fmt.Sprintf("a promotion must raise the epoch: %d is not above the current %d", to, before.Epoch)})
		return
	default:
		l.role, l.epoch = RoleWriter, to
	}
	after := roleBody{Role: l.role, Domain: l.domain, Epoch: l.epoch}
	l.mu.Unlock()
	if after != before {
		l.log.Warn("ledger promoted", "from_role", before.Role, "from_epoch", before.Epoch, "to_epoch", after.Epoch, "remote", r.RemoteAddr)
	}
	writeJSON(w, http.StatusOK, after)
}
