package sim

import (
	"cmp"
	"crypto/subtle"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"hedge/internal/httpx"
)

// Ledger roles as reported by GET /role; POST /admin/role accepts the
// first two.
const (
	RoleWriter  = "writer"
	RoleReplica = "replica"
	// RoleFenced is a writer that learned from a replica that a higher
	// epoch exists (the replica was promoted): it refuses every bet with
	// 409 stale-epoch, and /role reports the epoch it learned.
	RoleFenced = "fenced"
)

const (
	defaultStartBalance = "1000.00"
	defaultCurrency     = "EUR"
	// maxKeyLen bounds what a client can make the ledger remember per key.
	maxKeyLen  = 255
	maxBodyLen = 64 << 10
)

// LedgerSettings configures a Ledger. The zero value is usable: a writer
// for an unnamed domain at epoch 1.
type LedgerSettings struct {
	Domain string // ledger domain, e.g. "sea"
	// Role is RoleWriter or RoleReplica; empty means RoleWriter, because a
	// stand-in that refuses every bet by default is a surprise nobody wants.
	Role string
	// Epoch is the fencing token this ledger holds; 0 means 1.
	Epoch int64
	// StartBalance is credited to every account on its first bet, as a
	// decimal string with at most two fraction digits; empty means "1000.00".
	StartBalance string
	// Currency is the one currency every account holds; empty means "EUR".
	// Bets in another currency are refused rather than converted.
	Currency string
	// AdminToken, when non-empty, is required as "Authorization: Bearer
	// <token>" on admin endpoints; when empty they are open.
	AdminToken string
	// KeepReceipts records every bet request received (see Receipts), for
	// tests; the record grows with every request, so leave it off for
	// anything long-running.
	KeepReceipts bool
	// NoDedupe makes the ledger apply every bet it receives, known key or
	// not, as a writer that left deduplication to the edge would. Tests
	// that prove the edge's exactly-once turn it on, so a duplicate the
	// edge forwards shows as a second debit instead of being absorbed.
	NoDedupe bool
	Logger   *slog.Logger // may be nil

	// Replicas are the base URLs of the ledgers this one streams every
	// bet it applies to (POST /replication/bets), while it is the writer.
	Replicas []string
	// Replication is ReplicationSync (empty means it) or ReplicationAsync.
	Replication string
	// ReplicationLag is how long an asynchronous writer holds a bet before
	// shipping it.
	ReplicationLag time.Duration
	// ReplicationTimeout bounds a synchronous writer's wait for its
	// replicas' acknowledgement, and each shipment; 0 means 500ms.
	ReplicationTimeout time.Duration
	// PeerTLS is how this ledger reaches https:// replicas and writer: the
	// roots that verify them and the client certificate they may require.
	PeerTLS *tls.Config
	// Writer is the base URL of the writer a replica follows; with
	// AutoPromoteAfter the replica asks its /role every HeartbeatInterval
	// (0 means 250ms) and promotes itself to the next epoch when neither
	// an answer claiming the writer role nor an import has come for
	// AutoPromoteAfter. 0 never promotes on its own.
	Writer            string
	AutoPromoteAfter  time.Duration
	HeartbeatInterval time.Duration

	// Witness is host:port of the Redis server that arbitrates between
	// this ledger and its writer or replicas (see witness.go): a writer
	// renews its lease there every LeaseRenew (0 means 250ms; the lease
	// lasts Lease, 0 means 2s) and acknowledges a bet its replicas do not
	// hold yet only while the lease is live; a replica promotes itself only
	// when the witness grants it the domain. WitnessHolder names this
	// ledger there (empty: the domain; `hedge ledgersim` uses its listen
	// address).
	Witness       string
	WitnessHolder string
	Lease         time.Duration
	LeaseRenew    time.Duration
}

// Validate reports whether the settings can build a Ledger. NewLedger
// panics on settings that fail it, so callers holding user input (flags,
// configuration) should call Validate first.
func (s LedgerSettings) Validate() error {
	var errs []error
	switch s.Role {
	case "", RoleWriter, RoleReplica:
	default:
		errs = append(errs, fmt.Errorf("sim: ledger role %q: want %q or %q", s.Role, RoleWriter, RoleReplica))
	}
	if s.Epoch < 0 {
		errs = append(errs, fmt.Errorf("sim: ledger epoch %d: must not be negative", s.Epoch))
	}
	if s.StartBalance != "" {
		if _, err := parseMinor(s.StartBalance); err != nil {
			errs = append(errs, fmt.Errorf("sim: ledger start balance: %w", err))
		}
	}
	if s.Currency != "" && !validCurrency(s.Currency) {
		errs = append(errs, fmt.Errorf("sim: ledger currency %q: want three upper-case letters", s.Currency))
	}
	for _, u := range s.Replicas {
		if err := validPeerURL(u); err != nil {
			errs = append(errs, fmt.Errorf("sim: ledger replica %w", err))
		}
	}
	if s.Writer != "" {
		if err := validPeerURL(s.Writer); err != nil {
			errs = append(errs, fmt.Errorf("sim: ledger writer %w", err))
		}
	}
	switch s.Replication {
	case "", ReplicationSync, ReplicationAsync:
	default:
		errs = append(errs, fmt.Errorf("sim: ledger replication %q: want %q or %q", s.Replication, ReplicationSync, ReplicationAsync))
	}
	if s.ReplicationLag < 0 || s.ReplicationTimeout < 0 || s.AutoPromoteAfter < 0 || s.HeartbeatInterval < 0 {
		errs = append(errs, errors.New("sim: ledger replication durations must not be negative"))
	}
	if s.AutoPromoteAfter > 0 && s.Writer == "" {
		errs = append(errs, errors.New("sim: ledger auto-promotion needs the writer to watch"))
	}
	if s.Witness != "" {
		if err := validWitness(s.Witness); err != nil {
			errs = append(errs, fmt.Errorf("sim: ledger witness %w", err))
		}
	}
	lease, renew := cmp.Or(s.Lease, defaultLease), cmp.Or(s.LeaseRenew, defaultLeaseRenew)
	if s.Lease < 0 || s.LeaseRenew < 0 || lease < 4*renew {
		errs = append(errs, fmt.Errorf("sim: ledger lease %v renewed every %v: want a lease of at least four renewals", lease, renew))
	}
	return errors.Join(errs...)
}

// AppliedKey is one Idempotency-Key the ledger received on POST /bets.
// Count is how many times it arrived; the debit was applied once however
// large Count is, which is what a test proving exactly-once looks for.
//
// A key imported from the writer this ledger replicates (see ReplicateTo)
// is listed with Replicated set: the debit was applied there, not here, and
// Count says how many times the key has arrived here since (each a replay).
type AppliedKey struct {
	Key        string `json:"key"` // the key itself, whichever spelling carried it
	Account    string `json:"account"`
	Count      int    `json:"count"`
	Replicated bool   `json:"replicated,omitempty"`
}

// What became of a bet request, as a Receipt records it.
const (
	ReceiptApplied  = "applied"  // a new debit
	ReceiptReplayed = "replayed" // the key was known: the stored answer was sent again
	ReceiptRefused  = "refused"  // nothing applied; Receipt.Problem says why
	// ReceiptImported is a bet the writer applied and replicated here
	// (POST /replication/bets): a debit of this ledger's copy, not a new
	// one; RequestID and RawKey are empty.
	ReceiptImported = "imported"
)

// Receipt is one POST /bets as the ledger received it, so a test can check
// fencing and exactly-once from the writer's side: which key and epoch each
// request carried, when it arrived and what became of it.
type Receipt struct {
	Key string `json:"key"` // parsed; empty when missing or malformed
	// RawKey is the Idempotency-Key header exactly as it arrived (several
	// joined with "\n"), so a test can see which spelling reached the writer.
	RawKey  string `json:"raw_key"`
	Account string `json:"account"`
	// Epoch is the request's Ledger-Epoch header; -1 when it had none (or
	// a malformed one).
	Epoch int64 `json:"epoch"`
	// At is when the request reached the ledger, before anything was
	// checked.
	At      time.Time `json:"at"`
	Outcome string    `json:"outcome"`           // ReceiptApplied, ReceiptReplayed or ReceiptRefused
	Problem string    `json:"problem,omitempty"` // the refusal's problem slug, e.g. "stale-epoch"
	// RequestID is the request's X-Request-Id, which the edge sets: it
	// ties the receipt to the edge's access-log line for the request.
	RequestID string `json:"request_id,omitempty"`
	// For applied, replayed and imported bets: the amount, the bet's id
	// and the epoch the debit was applied at (this ledger's for applied
	// ones, the writer's for imported ones).
	Amount       string `json:"amount,omitempty"`
	BetID        string `json:"bet_id,omitempty"`
	AppliedEpoch int64  `json:"applied_epoch,omitempty"`
}

// Ledger is an in-memory ledger writer. It is safe for concurrent use.
type Ledger struct {
	domain     string
	currency   string
	start      int64 // minor units
	adminToken string
	log        *slog.Logger
	*server    // Handler, Serve, Close

	// Faults for tests: delay slows every bet down before it applies;
	// failAfterApply applies a new bet, then drops the connection without
	// an answer, which is what an unknown outcome looks like to the edge.
	delay          atomic.Int64
	failAfterApply atomic.Bool

	// replica, when set, imports every bet this ledger applies.
	replica atomic.Pointer[Ledger]
	// repl is network replication (nil without replicas or writer).
	repl *replication

	keepReceipts bool
	noDedupe     bool
	receiptsMu   sync.Mutex // guards receipts only, so recording never holds mu
	receipts     []Receipt

	// mu guards everything below. A bet's check-and-apply happens under one
	// hold so concurrent duplicates cannot both debit; the hold covers map
	// lookups and integer arithmetic only, never I/O or JSON.
	mu       sync.Mutex
	role     string
	epoch    int64
	seq      int64
	balances map[string]int64   // account → minor units
	bets     map[scope]*betSlot // what each key produced
}

// scope keeps one player's keys from colliding with another's.
type scope struct{ account, key string }

// byScope lists m's entries, each made by entry, sorted by key and then
// account.
func byScope[S, T any](m map[scope]S, entry func(scope, S) T) []T {
	scopes := slices.SortedFunc(maps.Keys(m), func(a, b scope) int {
		return cmp.Or(strings.Compare(a.key, b.key), strings.Compare(a.account, b.account))
	})
	out := make([]T, 0, len(scopes))
	for _, sc := range scopes {
		out = append(out, entry(sc, m[sc]))
	}
	return out
}

type betSlot struct {
	req   betRequest // to tell a retry from a different bet under a reused key
	resp  betResponse
	count int
	// replicated marks a bet another ledger applied and this one imported.
	replicated bool
	// pending is open while a synchronous writer waits for its replicas'
	// acknowledgement of this bet; a retry waits for it to close, then
	// finds the bet committed, or gone (rolled back).
	pending chan struct{}
}

type betRequest struct {
	Table     string `json:"table"`
	Amount    string `json:"amount"`
	Currency  string `json:"currency"`
	Selection string `json:"selection"`
	Note      string `json:"note"`
}

type betResponse struct {
	BetID    string `json:"bet_id"`
	Account  string `json:"account"`
	Amount   string `json:"amount"`
	Currency string `json:"currency"`
	Balance  string `json:"balance"`
	Epoch    int64  `json:"epoch"`
	Domain   string `json:"domain"`
}

type roleBody struct {
	Role   string `json:"role"`
	Domain string `json:"domain"`
	Epoch  int64  `json:"epoch"`
}

// NewLedger returns a Ledger configured by s. It panics if s fails
// Validate.
func NewLedger(s LedgerSettings) *Ledger {
	if err := s.Validate(); err != nil {
		panic(err)
	}
	if s.Role == "" {
		s.Role = RoleWriter
	}
	if s.Epoch == 0 {
		s.Epoch = 1
	}
	if s.StartBalance == "" {
		s.StartBalance = defaultStartBalance
	}
	if s.Currency == "" {
		s.Currency = defaultCurrency
	}
	start, _ := parseMinor(s.StartBalance) // checked by Validate
	l := &Ledger{
		domain:       s.Domain,
		currency:     s.Currency,
		start:        start,
		adminToken:   s.AdminToken,
		log:          orDiscard(s.Logger).With("component", "ledgersim", "domain", s.Domain),
		keepReceipts: s.KeepReceipts,
		noDedupe:     s.NoDedupe,
		role:         s.Role,
		epoch:        s.Epoch,
		balances:     make(map[string]int64),
		bets:         make(map[scope]*betSlot),
	}
	l.server = newServer(http.HandlerFunc(l.route), l.log)
	l.repl = newReplication(l, s)
	return l
}

// Close stops Serve, drops open connections and stops replication. It is
// safe to call more than once.
func (l *Ledger) Close() error {
	err := l.server.Close()
	l.repl.close()
	return err
}

// Applied lists every Idempotency-Key received on POST /bets that got as far
// as the ledger's idempotency check, and every bet imported from the writer
// this ledger replicates (marked Replicated), sorted by key and then account.
func (l *Ledger) Applied() []AppliedKey {
	l.mu.Lock()
	defer l.mu.Unlock()
	return byScope(l.bets, func(sc scope, slot *betSlot) AppliedKey {
		return AppliedKey{Key: sc.key, Account: sc.account, Count: slot.count, Replicated: slot.replicated}
	})
}

// Receipts lists every bet request received since the ledger started, in
// order of arrival; it is empty unless LedgerSettings.KeepReceipts is set.
func (l *Ledger) Receipts() []Receipt {
	l.receiptsMu.Lock()
	defer l.receiptsMu.Unlock()
	return slices.Clone(l.receipts)
}

// ReplicateTo makes r a synchronous replica of l: every bet l applies from
// now on is imported into r before l answers, as a real writer's replica
// follows its ledger, so that r, once promoted, knows those keys (a retry
// of one at r is a replay, not a new debit). An imported bet is not an
// apply of r's: Applied marks it Replicated. A replica whose epoch has moved
// past the bet's (it was promoted) refuses the import, as a promoted replica
// no longer follows its old writer. Nil stops replication. The replicas of
// a set of ledgers must not form a cycle.
func (l *Ledger) ReplicateTo(r *Ledger) {
	if r == l {
		panic("sim: a ledger cannot replicate to itself")
	}
	l.replica.Store(r)
}

// importBet records a bet another ledger applied; it reports an error when
// this ledger is fenced off from that ledger's epoch.
func (l *Ledger) importBet(sc scope, req betRequest, resp betResponse, amount int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if resp.Epoch < l.epoch {
		return fmt.Errorf("replica at epoch %d refuses a bet applied at epoch %d", l.epoch, resp.Epoch)
	}
	if _, ok := l.bets[sc]; ok {
		return nil
	}
	balance, ok := l.balances[sc.account]
	if !ok {
		balance = l.start
	}
	// Debiting rather than copying the writer's balance keeps imports that
	// arrive out of order right.
	l.balances[sc.account] = balance - amount
	l.bets[sc] = &betSlot{req: req, resp: resp, replicated: true}
	return nil
}

func (l *Ledger) route(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/bets":
		if allow(w, r, http.MethodPost) {
			l.bet(w, r)
		}
	case "/balance":
		if allow(w, r, http.MethodGet, http.MethodHead) {
			l.balance(w, r)
		}
	case "/role":
		if allow(w, r, http.MethodGet, http.MethodHead) {
			writeJSON(w, http.StatusOK, l.roleAnswer())
		}
	case "/applied":
		if allow(w, r, http.MethodGet, http.MethodHead) {
			writeJSON(w, http.StatusOK, struct {
				Applied []AppliedKey `json:"applied"`
			}{l.Applied()})
		}
	case "/receipts":
		if allow(w, r, http.MethodGet, http.MethodHead) {
			writeJSON(w, http.StatusOK, struct {
				Receipts []Receipt `json:"receipts"`
			}{l.Receipts()})
		}
	case "/healthz":
		if allow(w, r, http.MethodGet, http.MethodHead) {
			writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
		}
	case "/admin/role":
		if allow(w, r, http.MethodPost) && l.authorized(w, r) {
			l.setRole(w, r)
		}
	case "/admin/faults":
		if allow(w, r, http.MethodPost) && l.authorized(w, r) {
			l.setFaults(w, r)
		}
	case "/admin/promote":
		if allow(w, r, http.MethodPost) && l.authorized(w, r) {
			l.promote(w, r)
		}
	case replicationPath:
		if allow(w, r, http.MethodPost) && l.authorized(w, r) {
			l.importBets(w, r)
		}
	case "/replication":
		if allow(w, r, http.MethodGet, http.MethodHead) {
			writeJSON(w, http.StatusOK, l.repl.status())
		}
	default:
		writeProblem(w, http.StatusNotFound, "not-found", "Not found", "no such endpoint: "+r.URL.Path)
	}
}

func (l *Ledger) bet(w http.ResponseWriter, r *http.Request) {
	rc := Receipt{RawKey: strings.Join(r.Header.Values("Idempotency-Key"), "\n"), Epoch: -1, At: time.Now(), Outcome: ReceiptRefused,
		RequestID: r.Header.Get("X-Request-Id")}
	if l.keepReceipts {
		defer func() {
			l.receiptsMu.Lock()
			l.receipts = append(l.receipts, rc)
			l.receiptsMu.Unlock()
		}()
	}
	refuse := func(status int, slug, title, detail string) {
		rc.Problem = slug
		writeProblem(w, status, slug, title, detail)
	}
	account, status, slug, detail := principalOf(r)
	if status != 0 {
		refuse(status, slug, "Principal missing or malformed", detail)
		return
	}
	rc.Account = account
	if !l.ownDomain(w, r) {
		rc.Problem = "wrong-domain"
		return
	}
	key, err := idempotencyKey(r)
	switch {
	case errors.Is(err, httpx.ErrIdempotencyKeyMissing):
		refuse(http.StatusBadRequest, "missing-idempotency-key", "Idempotency-Key required",
			"every bet must carry an Idempotency-Key header so that a retry cannot debit twice")
		return
	case err != nil:
		refuse(http.StatusBadRequest, "malformed-idempotency-key", "Idempotency-Key malformed", err.Error())
		return
	}
	rc.Key = key
	// Read before taking the lock: the fencing check below must see the
	// epoch as it is when the bet applies, not when the request arrived.
	fence, hasFence, err := requestEpoch(r)
	if err != nil {
		refuse(http.StatusBadRequest, "malformed-epoch", "Ledger-Epoch malformed", err.Error())
		return
	}
	if hasFence {
		rc.Epoch = fence
	}
	var req betRequest
	if err := decodeBody(w, r, &req); err != nil {
		refuse(http.StatusBadRequest, "malformed-body", "Malformed request body", err.Error())
		return
	}
	amount, err := parseMinor(req.Amount)
	if err == nil && amount == 0 {
		err = errors.New("amount must be greater than zero")
	}
	if err != nil {
		refuse(http.StatusUnprocessableEntity, "invalid-amount", "Invalid amount", err.Error())
		return
	}
	if req.Currency == "" {
		req.Currency = l.currency
	}
	if req.Currency != l.currency {
		refuse(http.StatusUnprocessableEntity, "currency-mismatch", "Currency not held",
			fmt.Sprintf("accounts in this ledger hold %s, the bet is in %s", l.currency, req.Currency))
		return
	}
	// Normalise so "12.5" and "12.50" count as the same bet on a retry.
	req.Amount = formatMinor(amount)
	if d := time.Duration(l.delay.Load()); d > 0 {
		time.Sleep(d)
	}
	sc := scope{account: account, key: key}

	l.mu.Lock()
	var role string
	var epoch int64
	for {
		role, epoch = l.role, l.epoch
		slot, ok := l.bets[sc]
		if !ok || slot.pending == nil || l.noDedupe {
			break
		}
		// The first request of this key waits for its replicas: its outcome
		// decides whether this one is a replay or a new try.
		wait := slot.pending
		l.mu.Unlock()
		select {
		case <-wait:
		case <-r.Context().Done():
			rc.Problem = "client-gone"
			return
		}
		l.mu.Lock()
	}
	if role == RoleFenced {
		l.mu.Unlock()
		refuse(http.StatusConflict, "stale-epoch", "Stale epoch",
			fmt.Sprintf("this writer was fenced: a ledger of domain %q holds epoch %d", l.domain, epoch))
		return
	}
	if role != RoleWriter {
		l.mu.Unlock()
		w.Header().Set("Retry-After", "1")
		refuse(http.StatusServiceUnavailable, "not-writer", "Not the writer",
			fmt.Sprintf("ledger for domain %q is %s at epoch %d; send bets to the designated writer", l.domain, role, epoch))
		return
	}
	if hasFence && fence < epoch {
		l.mu.Unlock()
		refuse(http.StatusConflict, "stale-epoch", "Stale epoch",
			fmt.Sprintf("request carries epoch %d but this writer is at epoch %d", fence, epoch))
		return
	}
	if slot, ok := l.bets[sc]; ok && !l.noDedupe {
		if slot.req != req {
			l.mu.Unlock()
			refuse(http.StatusUnprocessableEntity, "idempotency-key-reused", "Idempotency-Key reused",
				"this key was already used for a different bet")
			return
		}
		slot.count++
		resp := slot.resp
		l.mu.Unlock()
		rc.Outcome, rc.Amount, rc.BetID, rc.AppliedEpoch = ReceiptReplayed, resp.Amount, resp.BetID, resp.Epoch
		w.Header().Set("Idempotent-Replayed", "true")
		writeJSON(w, http.StatusCreated, resp)
		return
	}
	if l.repl.needsLease() && !l.repl.leaseLive() {
		l.mu.Unlock()
		w.Header().Set("Retry-After", "1")
		refuse(http.StatusServiceUnavailable, "lease-lost", "Writer lease lost",
			"the bet was not applied: this writer cannot acknowledge bets its replica lacks without a live lease at the witness; retry with the same Idempotency-Key")
		return
	}
	balance, ok := l.balances[account]
	if !ok {
		balance = l.start
	}
	if balance < amount {
		l.mu.Unlock()
		// Not remembered: the player may top up and retry with the same key.
		refuse(http.StatusUnprocessableEntity, "insufficient-funds", "Insufficient funds",
			fmt.Sprintf("balance %s %s is less than the bet %s", formatMinor(balance), l.currency, req.Amount))
		return
	}
	balance -= amount
	l.balances[account] = balance
	l.seq++
	resp := betResponse{
		BetID:    fmt.Sprintf("%s-%d-%06d", l.domainOrLedger(), epoch, l.seq),
		Account:  account,
		Amount:   req.Amount,
		Currency: req.Currency,
		Balance:  formatMinor(balance),
		Epoch:    epoch,
		Domain:   l.domain,
	}
	slot, known := l.bets[sc]
	if known {
		slot.count++ // NoDedupe: a second debit under a known key
	} else {
		slot = &betSlot{req: req, resp: resp, count: 1}
		l.bets[sc] = slot
	}
	synchronous := l.repl.syncReplicas()
	var pending chan struct{}
	if synchronous && !known {
		pending = make(chan struct{})
		slot.pending = pending
	}
	shipped := replBet{Key: key, Account: account, Amount: req.Amount, Epoch: epoch, Request: req, Response: resp}
	if !synchronous && l.repl.queued() {
		// Queued under l.mu, so a catch-up that finds every queue empty
		// has really shipped everything acknowledged so far.
		l.repl.enqueue(shipped)
	}
	l.mu.Unlock()

	if synchronous {
		// Nothing is acknowledged that the replicas lack: without their
		// acknowledgement the debit is undone and the bet refused, unless
		// the witness has just confirmed this writer's lease and recorded
		// it degraded (then the bet waits in the catch-up queue).
		err := l.repl.replicate(shipped)
		var fe *FencedError
		degraded := false
		if err != nil && !errors.As(err, &fe) && l.repl.wit != nil {
			degraded = l.repl.renewOnce(WitnessDegraded)
		}
		l.mu.Lock()
		if pending != nil {
			slot.pending = nil
			close(pending)
		}
		if degraded && (l.role != RoleWriter || l.epoch != epoch || !l.repl.degraded || !l.repl.leaseLive()) {
			degraded = false
		}
		switch {
		case err != nil && degraded:
			l.repl.enqueue(shipped)
			err = nil
		case err != nil:
			l.balances[account] += amount
			if slot.count--; slot.count == 0 {
				delete(l.bets, sc)
			}
		}
		l.mu.Unlock()
		switch {
		case errors.As(err, &fe):
			l.fence(fe)
			refuse(http.StatusConflict, "stale-epoch", "Stale epoch",
				fmt.Sprintf("this writer was fenced: a ledger of domain %q holds epoch %d", l.domain, fe.Epoch))
			return
		case err != nil:
			l.log.Warn("bet refused: not replicated", "account", account, "key", key, "error", err)
			w.Header().Set("Retry-After", "1")
			refuse(http.StatusServiceUnavailable, "replica-unavailable", "Replica unavailable",
				"the bet was not applied: its replica did not acknowledge it in time; retry with the same Idempotency-Key")
			return
		}
	}
	rc.Outcome, rc.Amount, rc.BetID, rc.AppliedEpoch = ReceiptApplied, resp.Amount, resp.BetID, resp.Epoch

	if rep := l.replica.Load(); rep != nil {
		if err := rep.importBet(sc, req, resp, amount); err != nil {
			l.log.Warn("bet not replicated", "bet_id", resp.BetID, "account", account, "error", err)
		}
	}

	l.log.Debug("bet applied", "bet_id", resp.BetID, "account", account, "amount", resp.Amount, "balance", resp.Balance)
	if l.failAfterApply.Load() {
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
				return
			}
		}
	}
	writeJSON(w, http.StatusCreated, resp)
}

// SetDelay makes every bet wait d before it applies (slow mode).
func (l *Ledger) SetDelay(d time.Duration) { l.delay.Store(int64(d)) }

// SetFailAfterApply makes new bets apply and then drop the connection.
func (l *Ledger) SetFailAfterApply(on bool) { l.failAfterApply.Store(on) }

// setFaults is POST /admin/faults {"delay":"2s","fail_after_apply":true}.
func (l *Ledger) setFaults(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Delay          *string `json:"delay"`
		FailAfterApply *bool   `json:"fail_after_apply"`
	}
	if !readBody(w, r, &body) {
		return
	}
	if !setDelay(w, body.Delay, l.SetDelay) {
		return
	}
	if body.FailAfterApply != nil {
		l.SetFailAfterApply(*body.FailAfterApply)
	}
	l.log.Info("faults set", "delay", time.Duration(l.delay.Load()), "fail_after_apply", l.failAfterApply.Load())
	writeJSON(w, http.StatusOK, map[string]any{"delay": time.Duration(l.delay.Load()).String(), "fail_after_apply": l.failAfterApply.Load()})
}

func (l *Ledger) balance(w http.ResponseWriter, r *http.Request) {
	account, status, slug, detail := principalOf(r)
	if status != 0 {
		writeProblem(w, status, slug, "Principal missing or malformed", detail)
		return
	}
	if !l.ownDomain(w, r) {
		return
	}
	l.mu.Lock()
	balance, ok := l.balances[account]
	epoch := l.epoch
	l.mu.Unlock()
	if !ok {
		// Reads do not create accounts, so probing cannot grow the ledger.
		balance = l.start
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"account":  account,
		"balance":  formatMinor(balance),
		"currency": l.currency,
		"domain":   l.domain,
		"epoch":    epoch,
	})
}

// roleAnswer is GET /role: the role, and for a writer with replicas or a
// witness how it replicates (a WitnessSynced… state).
type roleAnswer struct {
	roleBody
	Replication string `json:"replication,omitempty"`
}

func (l *Ledger) roleAnswer() roleAnswer {
	l.mu.Lock()
	defer l.mu.Unlock()
	a := roleAnswer{roleBody: roleBody{Role: l.role, Domain: l.domain, Epoch: l.epoch}}
	if l.role == RoleWriter && l.repl != nil && (len(l.repl.ships) > 0 || l.repl.wit != nil) {
		a.Replication = l.repl.witnessState()
	}
	return a
}

func (l *Ledger) roleBody() roleBody {
	l.mu.Lock()
	defer l.mu.Unlock()
	return roleBody{Role: l.role, Domain: l.domain, Epoch: l.epoch}
}

func (l *Ledger) setRole(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Role  *string `json:"role"`
		Epoch *int64  `json:"epoch"`
	}
	if !readBody(w, r, &req) {
		return
	}
	if req.Role != nil && *req.Role != RoleWriter && *req.Role != RoleReplica {
		writeProblem(w, http.StatusUnprocessableEntity, "invalid-role", "Invalid role",
			fmt.Sprintf("role %q: want %q or %q", *req.Role, RoleWriter, RoleReplica))
		return
	}
	l.mu.Lock()
	before := roleBody{Role: l.role, Domain: l.domain, Epoch: l.epoch}
	// Epochs only move forward: a lowered epoch would let requests fenced
	// off by a promotion through again.
	if req.Epoch != nil && *req.Epoch < l.epoch {
		l.mu.Unlock()
		writeProblem(w, http.StatusConflict, "stale-epoch", "Stale epoch",
			fmt.Sprintf("epoch %d is lower than the current epoch %d; epochs never decrease", *req.Epoch, before.Epoch))
		return
	}
	if req.Role != nil {
		l.role = *req.Role
	}
	if req.Epoch != nil {
		l.epoch = *req.Epoch
	}
	after := roleBody{Role: l.role, Domain: l.domain, Epoch: l.epoch}
	l.mu.Unlock()

	if after != before {
		l.log.Info("ledger role changed",
			"from_role", before.Role, "from_epoch", before.Epoch,
			"to_role", after.Role, "to_epoch", after.Epoch,
			"remote", r.RemoteAddr)
	}
	writeJSON(w, http.StatusOK, after)
}

func (l *Ledger) authorized(w http.ResponseWriter, r *http.Request) bool {
	if l.adminToken == "" {
		return true
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if ok && subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(l.adminToken)) == 1 {
		return true
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="ledgersim"`)
	writeProblem(w, http.StatusUnauthorized, "unauthorized", "Unauthorized",
		"admin endpoints need Authorization: Bearer <token>")
	return false
}

func (l *Ledger) domainOrLedger() string {
	if l.domain == "" {
		return "ledger"
	}
	return l.domain
}

// maxPrincipalLen bounds the principal header; the edge's own bound
// (auth.jwt.subject_max_length) is lower.
const maxPrincipalLen = 1024

// principalOf names the account a request acts on: the principal the edge
// authenticated, from exactly one X-Hedge-Principal header that holds a
// safe identifier (httpx.ValidPrincipal) and nothing else. No other header
// can name an account, and the value is never parsed for parts: a writer
// that took the account from a header a client can set, or read
// "sub=..." out of a list, would let a player debit someone else. On
// failure it returns the status and problem to answer with.
func principalOf(r *http.Request) (account string, status int, slug, detail string) {
	vs := r.Header.Values(httpx.PrincipalHeader)
	switch {
	case len(vs) == 0:
		return "", http.StatusUnauthorized, "missing-principal", "the request carries no " + httpx.PrincipalHeader + ": it did not come through the edge"
	case len(vs) > 1:
		return "", http.StatusBadRequest, "invalid-principal", "more than one " + httpx.PrincipalHeader + " header"
	case !httpx.ValidPrincipal(vs[0], maxPrincipalLen):
		return "", http.StatusBadRequest, "invalid-principal", httpx.PrincipalHeader + " is not a safe identifier"
	}
	return vs[0], 0, "", ""
}

// idempotencyKey parses the request's one Idempotency-Key header, in
// either spelling the draft's clients use (the edge always sends the
// structured-field string).
func idempotencyKey(r *http.Request) (string, error) {
	vs := r.Header.Values("Idempotency-Key")
	switch len(vs) {
	case 0:
		return "", httpx.ErrIdempotencyKeyMissing
	case 1:
		k, err := httpx.ParseIdempotencyKey(nil, []byte(vs[0]))
		if errors.Is(err, httpx.ErrIdempotencyKeyMalformed) {
			return "", fmt.Errorf("Idempotency-Key %q: want 1 to %d printable characters, bare or as a quoted string", vs[0], maxKeyLen)
		}
		return string(k), err
	}
	return "", errors.New("more than one Idempotency-Key header")
}

// ownDomain refuses, with 421, a request the edge addressed to another
// ledger domain than this ledger's: a misrouted call is not applied here.
func (l *Ledger) ownDomain(w http.ResponseWriter, r *http.Request) bool {
	d := r.Header.Get("Ledger-Domain")
	if d == "" || l.domain == "" || d == l.domain {
		return true
	}
	writeProblem(w, http.StatusMisdirectedRequest, "wrong-domain", "Wrong ledger domain",
		fmt.Sprintf("this ledger holds domain %q, the request is for %q", l.domain, d))
	return false
}

func requestEpoch(r *http.Request) (epoch int64, ok bool, err error) {
	v := r.Header.Get("Ledger-Epoch")
	if v == "" {
		return 0, false, nil
	}
	epoch, err = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || epoch < 0 {
		return 0, false, fmt.Errorf("header Ledger-Epoch %q: want a non-negative integer", v)
	}
	return epoch, true, nil
}

// maxWholeDigits keeps amounts well inside int64 minor units.
const maxWholeDigits = 15

// parseMinor parses a non-negative decimal amount with at most two fraction
// digits into minor units. Floats never touch money: "0.1"+"0.2" must be
// exactly "0.30".
func parseMinor(s string) (int64, error) {
	whole, frac, hasDot := strings.Cut(s, ".")
	if whole == "" || len(whole) > maxWholeDigits || !allDigits(whole) ||
		(hasDot && (frac == "" || len(frac) > 2 || !allDigits(frac))) {
		return 0, fmt.Errorf("amount %q: want a decimal string like \"12.50\" (at most %d digits, 2 decimals, no sign)", s, maxWholeDigits)
	}
	for len(frac) < 2 {
		frac += "0"
	}
	w, _ := strconv.ParseInt(whole, 10, 64) // digits only and short, cannot fail
	f, _ := strconv.ParseInt(frac, 10, 64)
	return w*100 + f, nil
}

func formatMinor(v int64) string {
	sign := ""
	if v < 0 {
		sign, v = "-", -v
	}
	return fmt.Sprintf("%s%d.%02d", sign, v/100, v%100)
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func validCurrency(c string) bool {
	if len(c) != 3 {
		return false
	}
	for i := 0; i < 3; i++ {
		if c[i] < 'A' || c[i] > 'Z' {
			return false
		}
	}
	return true
}

// The helpers below are shared by every stand-in in this package.

// allow answers 405 with an Allow header unless r uses one of methods; the
// standard mux would answer in text/plain, and every error here is
// problem+json.
func allow(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m {
			return true
		}
	}
	w.Header().Set("Allow", strings.Join(methods, ", "))
	writeProblem(w, http.StatusMethodNotAllowed, "method-not-allowed", "Method not allowed",
		fmt.Sprintf("%s %s: allowed methods are %s", r.Method, r.URL.Path, strings.Join(methods, ", ")))
	return false
}

func decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyLen))
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("request body is empty; want a JSON object")
		}
		return fmt.Errorf("request body: %w", err)
	}
	if dec.More() {
		return errors.New("request body: want exactly one JSON object")
	}
	return nil
}

// readBody decodes an admin request's JSON body into v, or answers 400
// malformed-body and returns false.
func readBody(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := decodeBody(w, r, v); err != nil {
		writeProblem(w, http.StatusBadRequest, "malformed-body", "Malformed request body", err.Error())
		return false
	}
	return true
}

// setDelay applies the delay a faults request names, if it names one,
// with set, or answers 422 invalid-delay and returns false.
func setDelay(w http.ResponseWriter, delay *string, set func(time.Duration)) bool {
	if delay == nil {
		return true
	}
	d, err := time.ParseDuration(*delay)
	if err != nil || d < 0 {
		writeProblem(w, http.StatusUnprocessableEntity, "invalid-delay", "Invalid delay", "delay is a duration such as 2s")
		return false
	}
	set(d)
	return true
}

type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	// Epoch, on a stale-epoch refusal of replicated bets, is the epoch the
	// refusing ledger holds: the writer that sent them learns it is fenced.
	Epoch int64 `json:"epoch,omitempty"`
}

// writeProblem writes an RFC 9457 problem whose type is
// urn:hedge:problem:<slug>, the same namespace the gateway uses, so a client
// cannot tell from the format whether the gateway or a stand-in refused it.
func writeProblem(w http.ResponseWriter, status int, slug, title, detail string) {
	writeProblemBody(w, problem{Type: "urn:hedge:problem:" + slug, Title: title, Status: status, Detail: detail})
}

func writeProblemBody(w http.ResponseWriter, p problem) {
	status := p.Status
	body, _ := json.Marshal(p)
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		writeProblem(w, http.StatusInternalServerError, "internal", "Internal error", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

func orDiscard(log *slog.Logger) *slog.Logger {
	if log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return log
}

// server is a stand-in's HTTP API and the one http.Server that serves it,
// so Handler, Serve and Close behave the same for every stand-in: Close is
// idempotent and Serve reports a Close as nil.
type server struct {
	handler  http.Handler
	srv      *http.Server
	once     sync.Once
	closeErr error
}

func newServer(h http.Handler, log *slog.Logger) *server {
	return &server{handler: h, srv: &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}}
}

// Handler returns the stand-in's HTTP API, for callers that run their own
// server (httptest, or a mux shared with other stand-ins).
func (s *server) Handler() http.Handler { return s.handler }

// Serve answers on ln until Close. It returns nil after Close and the
// listener's error otherwise.
func (s *server) Serve(ln net.Listener) error {
	err := s.srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Close stops Serve and drops open connections. It is safe to call more
// than once.
func (s *server) Close() error {
	s.once.Do(func() { s.closeErr = s.srv.Close() })
	return s.closeErr
}
