package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hedge/configs"
	"hedge/gateway/ledger"
	"hedge/internal/sim"
	"hedge/internal/testkit"
	"hedge/internal/testredis"
)

// chaosConfig: region sea with two edge nodes sharing one Redis, and two
// writers of domain sea that the nodes probe every 50ms: W1 (the writer,
// epoch 1) and W2 (a replica of W1 until it is promoted).
const chaosConfig = quietHead + `admin: {allow_loopback: true, tokens: [{name: alice, token: operator-alice-0123456789abcdef0123, roles: [read, operate, promote]}, {name: bob, token: operator-bob-0123456789abcdef01234, roles: [read, operate, promote]}]}
lifecycle: {drain_period: 10ms, shutdown_timeout: 5s}
` + testJWT + `ledger:
  probe: {enabled: true, interval: 50ms, timeout: 40ms, fall: 1}
routes:
` + betsRoute + `    money: {timeout: 500ms}
regions:
  - name: sea
    idempotency: {store: redis, redis: {address: "{{REDIS}}"}}
    nodes:
      - name: sea-1
        listeners: [{name: public, address: "{{EDGE1}}", tls: {mode: off}}]
        admin: {address: "{{ADMIN1}}"}
      - name: sea-2
        listeners: [{name: public, address: "{{EDGE2}}", tls: {mode: off}}]
        admin: {address: "{{ADMIN2}}"}
    writers:
      - {domain: sea, url: "http://{{W1}}", epoch: 1}
      - {domain: sea, url: "http://{{W2}}", epoch: 0}
`

// designationChange is one change of a node's designation of domain sea.
type designationChange struct {
	ledger.Designation
	// Known is when the node logged the change, which it does right after
	// storing it: every lookup the node makes from then on sees it. No
	// lookup saw it before Designation.Since.
	Known time.Time
}

// designationLog is a node's logger: it keeps the node's "ledger writer
// designation changed" lines, with the designation they announce, and
// drops everything else.
type designationLog struct {
	g  atomic.Pointer[Gateway]
	mu sync.Mutex
	// changes starts with the configured designation.
	changes []designationChange
}

func (dl *designationLog) Enabled(context.Context, slog.Level) bool { return true }
func (dl *designationLog) WithAttrs([]slog.Attr) slog.Handler       { return dl }
func (dl *designationLog) WithGroup(string) slog.Handler            { return dl }

func (dl *designationLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "ledger writer designation changed" {
		return nil
	}
	c := designationChange{Known: time.Now()}
	// The line is written while the directory still holds its lock, so the
	// current designation is the one it announces.
	if g := dl.g.Load(); g != nil {
		if st := g.Nodes()[0].state.Load(); st != nil {
			c.Designation = *st.directory.Lookup("sea")
		}
	}
	if c.Since.IsZero() { // during the node's first probe round, before its state is installed
		c.Since = c.Known
		r.Attrs(func(a slog.Attr) bool {
			switch a.Key {
			case "state":
				c.State = ledger.State(a.Value.String())
			case "writer":
				c.Writer.URL = a.Value.String()
			case "epoch":
				c.Writer.Epoch = a.Value.Int64()
			}
			return true
		})
	}
	dl.mu.Lock()
	dl.changes = append(dl.changes, c)
	dl.mu.Unlock()
	return nil
}

func (dl *designationLog) history() []designationChange {
	dl.mu.Lock()
	defer dl.mu.Unlock()
	return append([]designationChange(nil), dl.changes...)
}

func (dl *designationLog) current() designationChange {
	h := dl.history()
	return h[len(h)-1]
}

// chaosAttempt is one HTTP exchange of a bet with an edge.
type chaosAttempt struct {
	edge       int
	start, end time.Time
	status     int    // 0: no HTTP answer
	problem    string // the problem type's slug, for answers the gateway wrote
	replayed   bool
}

// chaosBet is one bet (one Idempotency-Key) and every attempt to place it.
type chaosBet struct {
	key, player string
	attempts    []chaosAttempt
	final       int // the final status: 2xx, or a 4xx other than 409; 0 if none came
}

// TestChaosPromotionUnderLoad: thousands of bets, retried by their clients
// with the same key, go through two edge nodes sharing one Redis while the
// writer of their ledger domain is first made ambiguous, then promoted to a
// new one with a higher epoch, the old one is killed, the new one drops its
// answers for a while and then slows down. The writers run without their
// own deduplication, so every duplicate the edges forward is a second
// debit: the edges must forward a key again only after an attempt whose
// outcome they could not know (504), never after a success they had, and
// never while another attempt holds the key. Every acknowledged bet is
// applied, nothing reaches a writer with a stale epoch once the new
// designation is known, and while the designation is ambiguous the edges
// answer 503 instead of guessing. Each fault phase is checked to have
// happened.
func TestChaosPromotionUnderLoad(t *testing.T) {
	bets, clients := 5000, 32
	if testing.Short() {
		bets = 1500
	}
	const (
		ambiguity = 300 * time.Millisecond // how long both writers claim epoch 1
		betLimit  = 20 * time.Second       // per bet, retries included
	)

	// Writers: W2 is a replica of W1 (it holds W1's ledger) until promoted.
	// Neither deduplicates: a key the edges forward twice is applied twice.
	w1 := sim.NewLedger(sim.LedgerSettings{Domain: "sea", Epoch: 1, KeepReceipts: true, NoDedupe: true, Logger: quiet})
	w2 := sim.NewLedger(sim.LedgerSettings{Domain: "sea", Role: sim.RoleReplica, Epoch: 1, KeepReceipts: true, NoDedupe: true, Logger: quiet})
	w1.ReplicateTo(w2)
	w1Addr, w2Addr := serveLedger(t, w1), serveLedger(t, w2)

	redisAddr := testredis.Start(t)
	edges := []string{testkit.FreeAddr(t), testkit.FreeAddr(t)}
	admins := []string{testkit.FreeAddr(t), testkit.FreeAddr(t)}
	dir := t.TempDir()
	file := filepath.Join(dir, "hedge.yaml")
	yaml := strings.NewReplacer("{{DATA}}", dir, "{{REDIS}}", redisAddr, "{{W1}}", w1Addr, "{{W2}}", w2Addr,
		"{{EDGE1}}", edges[0], "{{ADMIN1}}", admins[0], "{{EDGE2}}", edges[1], "{{ADMIN2}}", admins[1]).Replace(chaosConfig)
	writeFile(t, file, yaml)
	var logs [2]*designationLog
	var gws [2]*Gateway
	var accessLogs [2]string
	for i, node := range []string{"sea-1", "sea-2"} {
		cfg, err := configs.Load(file)
		if err != nil {
			t.Fatalf("config:\n%v", err)
		}
		// Each node's access log says how it answered each request id.
		accessLogs[i] = filepath.Join(dir, node+".access.log")
		on := true
		cfg.Log.Access = configs.AccessLog{Enabled: &on, Path: accessLogs[i], FlushInterval: configs.Duration(10 * time.Millisecond)}
		logs[i] = &designationLog{}
		g, err := New(cfg, Options{Region: "sea", Node: node, Logger: slog.New(logs[i])})
		if err != nil {
			t.Fatal(err)
		}
		logs[i].g.Store(g)
		if err := g.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			g.Shutdown(ctx)
		})
		gws[i] = g
		// The history starts with the configured designation, unless the
		// first probe round already changed it.
		logs[i].mu.Lock()
		if len(logs[i].changes) == 0 {
			logs[i].changes = append(logs[i].changes, designationChange{Designation: *g.Nodes()[0].state.Load().directory.Lookup("sea")})
		}
		logs[i].mu.Unlock()
	}
	w1URL, w2URL := "http://"+w1Addr, "http://"+w2Addr
	for i, dl := range logs {
		// A node's first probe round may time out while everything starts.
		deadline := time.Now().Add(3 * time.Second)
		for c := dl.current(); !c.OK() || c.Writer.URL != w1URL || c.Writer.Epoch != 1; c = dl.current() {
			if time.Now().After(deadline) {
				t.Fatalf("edge %d before the run: want W1 designated at epoch 1, got %+v\n%+v", i+1, c.Designation, gws[i].Nodes()[0].Status().Ledger)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	// Players: one token each, shared by the clients.
	players := make([]string, 64)
	tokens := make([]string, len(players))
	for i := range players {
		players[i] = fmt.Sprintf("chaos-player-%02d", i)
		tokens[i] = token(t, players[i], "")
	}
	tr := &http.Transport{MaxIdleConns: 2 * clients, MaxIdleConnsPerHost: clients, IdleConnTimeout: 30 * time.Second}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 3 * time.Second}

	all := make([]*chaosBet, bets)
	var next, finished atomic.Int64
	var stop, impatient atomic.Bool
	var seen phaseCounts
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for !stop.Load() {
				i := int(next.Add(1)) - 1
				if i >= bets {
					return
				}
				b := &chaosBet{key: fmt.Sprintf("chaos-bet-%05d", i), player: players[i%len(players)]}
				all[i] = b
				placeBet(client, edges, c+i, tokens[i%len(tokens)], b, betLimit, &stop, &impatient, &seen)
				finished.Add(1)
			}
		})
	}
	// abort stops the load before failing, so no client outlives the test.
	abort := func(format string, args ...any) {
		t.Helper()
		stop.Store(true)
		wg.Wait()
		t.Fatalf(format, args...)
	}
	await := func(what string, limit time.Duration, cond func() bool) time.Time {
		t.Helper()
		deadline := time.Now().Add(limit)
		for !cond() {
			if time.Now().After(deadline) {
				abort("%s: not within %s", what, limit)
			}
			time.Sleep(2 * time.Millisecond)
		}
		return time.Now()
	}
	both := func(cond func(designationChange) bool) func() bool {
		return func() bool { return cond(logs[0].current()) && cond(logs[1].current()) }
	}

	// A third of the way in, W2 claims the writer role at W1's epoch: two
	// claims at one epoch, the designation is ambiguous.
	await("a third of the bets", 60*time.Second, func() bool { return finished.Load() >= int64(bets/3) })
	if err := setRole(w2URL, `{"role":"writer"}`); err != nil {
		abort("W2 to writer at epoch 1: %v", err)
	}
	ambiguousAt := time.Now()
	bothAmbiguous := await("both edges see the ambiguity", 3*time.Second, both(func(c designationChange) bool { return c.State == ledger.Ambiguous }))
	time.Sleep(ambiguity)

	// W2 is promoted to epoch 2: probes designate it (the highest epoch
	// wins), and on sea-1 the operators promote it too (four eyes).
	if err := setRole(w2URL, `{"epoch":2}`); err != nil {
		abort("W2 to epoch 2: %v", err)
	}
	promotedAt := time.Now()
	fourEyes := promoteFourEyes(client, "http://"+admins[0], w2URL)
	epoch2 := func(c designationChange) bool { return c.OK() && c.Writer.URL == w2URL && c.Writer.Epoch == 2 }
	bothEpoch2 := await("both edges designate W2 at epoch 2", 3*time.Second, both(epoch2))

	// A moment later the old writer dies, with bets in flight; then the
	// new one applies bets without confirming them, so clients see unknown
	// outcomes and retry them, until several have.
	time.Sleep(50 * time.Millisecond)
	w1.Close()
	killedAt := time.Now()
	killedAfter := finished.Load()
	time.Sleep(50 * time.Millisecond)
	unknownBefore := seen.unknown.Load()
	w2.SetFailAfterApply(true)
	await("clients see unknown outcomes", 10*time.Second, func() bool { return seen.unknown.Load() >= unknownBefore+5 })
	w2.SetFailAfterApply(false)
	// Then it slows down while clients lose patience before the edges
	// do: their retries find the first request still in flight.
	inFlightBefore := seen.inFlight.Load()
	w2.SetDelay(300 * time.Millisecond)
	impatient.Store(true)
	await("clients find their bets in flight", 10*time.Second, func() bool { return seen.inFlight.Load() >= inFlightBefore+3 })
	impatient.Store(false)
	w2.SetDelay(0)
	wg.Wait()
	end := time.Now()

	// A violation is reported five times at most; the summary counts them all.
	shown := map[string]int{}
	failf := func(format string, args ...any) {
		t.Helper()
		switch shown[format]++; {
		case shown[format] <= 5:
			t.Errorf(format, args...)
		case shown[format] == 6:
			t.Errorf("(more failures like the one above are not shown)")
		}
	}

	// What the clients saw.
	var acked, replayed, attempts, final4xx, unfinished, wu503, other503, unknown504, inFlight409, transport int
	for _, b := range all {
		attempts += len(b.attempts)
		switch {
		case b.final >= 200 && b.final < 300:
			acked++
			if b.attempts[len(b.attempts)-1].replayed {
				replayed++
			}
		case b.final >= 400:
			final4xx++
			last := b.attempts[len(b.attempts)-1]
			failf("bet %s ended in %d %s", b.key, last.status, last.problem)
		default:
			unfinished++
		}
		for _, a := range b.attempts {
			switch {
			case a.status == 503 && a.problem == "writer-unavailable":
				wu503++
			case a.status == 503:
				other503++
			case a.status == 504:
				unknown504++
			case a.status == 409:
				inFlight409++
			case a.status == 0:
				transport++
			}
		}
	}

	// What the writers saw. A bet is applied where a receipt says so;
	// imports into the replica are not applies.
	r1, r2 := w1.Receipts(), w2.Receipts()
	appliedAt := map[string][]string{} // player/key → ledgers that applied it
	count := func(name string, rs []sim.Receipt) int {
		n := 0
		for _, r := range rs {
			if r.Outcome == sim.ReceiptApplied {
				appliedAt[r.Account+"/"+r.Key] = append(appliedAt[r.Account+"/"+r.Key], name)
				n++
			}
		}
		return n
	}
	appliedW1, appliedW2 := count("W1", r1), count("W2", r2)
	for name, l := range map[string]*sim.Ledger{"W1": w1, "W2": w2} {
		for _, a := range l.Applied() {
			if !a.Replicated && !slices.Contains(appliedAt[a.Account+"/"+a.Key], name) {
				failf("%s lists %s/%s as applied without a receipt saying so", name, a.Account, a.Key)
			}
		}
	}
	imported := 0
	for _, a := range w2.Applied() {
		if a.Replicated {
			imported++
		}
	}

	// 1: every acknowledged bet applied; 2: a key applied twice only
	// after the edge could not know the first apply's outcome. The writers
	// do not deduplicate, so this is the edges' doing alone: an edge that
	// forwarded a key again after a success it had stored, or while
	// another attempt held the key, shows as an earlier apply whose
	// request the edge answered with the writer's own status, not 504.
	time.Sleep(100 * time.Millisecond) // the access logs flush every 10ms
	edgeStatus := map[string]int{}     // request id → the status the edge answered
	for _, file := range accessLogs {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
			var e struct {
				ID     string `json:"id"`
				Status int    `json:"status"`
			}
			if json.Unmarshal([]byte(line), &e) == nil && e.ID != "" {
				edgeStatus[e.ID] = e.Status
			}
		}
	}
	appliedReceipts := map[string][]sim.Receipt{} // player/key → applies, in order of arrival
	for _, r := range append(append([]sim.Receipt(nil), r1...), r2...) {
		if r.Outcome == sim.ReceiptApplied {
			appliedReceipts[r.Account+"/"+r.Key] = append(appliedReceipts[r.Account+"/"+r.Key], r)
		}
	}
	edgeDuplicates, reforwards, ackedNotApplied, unlogged := 0, 0, 0, 0
	for k, rs := range appliedReceipts {
		slices.SortFunc(rs, func(a, b sim.Receipt) int { return a.At.Compare(b.At) })
		for i := 1; i < len(rs); i++ {
			prev := rs[i-1]
			status, ok := edgeStatus[prev.RequestID]
			switch {
			case !ok:
				unlogged++
				failf("bet %s was applied by request %s, which no edge logged", k, prev.RequestID)
			case status == 504:
				reforwards++ // the outcome was unknown: the client's retry had to go through
			default:
				edgeDuplicates++
				failf("bet %s: an edge answered %d to request %s, which the writer applied at %s, and forwarded the key again (request %s, applied at %s)",
					k, status, prev.RequestID, prev.At.Format(time.StampMicro), rs[i].RequestID, rs[i].At.Format(time.StampMicro))
			}
		}
	}
	for _, b := range all {
		if b.final >= 200 && b.final < 300 && len(appliedReceipts[b.player+"/"+b.key]) == 0 {
			ackedNotApplied++
			failf("bet %s of %s acknowledged with %d but applied nowhere", b.key, b.player, b.final)
		}
	}

	// Each fault phase happened: unknown outcomes, retries that found their
	// key in flight, and successes the edges replayed from their own store
	// (the writers never replay: they do not deduplicate).
	if unknown504 == 0 || reforwards == 0 {
		failf("the unknown-outcome phase did not happen: %d answers 504, %d keys forwarded again after one", unknown504, reforwards)
	}
	if inFlight409 == 0 {
		failf("the in-flight phase did not happen: no 409")
	}
	if replayed == 0 {
		failf("no acknowledged bet was replayed by an edge")
	}

	// Which attempt of a bet carried the request a writer received.
	attemptOf := func(r sim.Receipt) *chaosAttempt {
		var i int
		if _, err := fmt.Sscanf(r.Key, "chaos-bet-%05d", &i); err != nil || i < 0 || i >= bets {
			return nil
		}
		for j := range all[i].attempts {
			if a := &all[i].attempts[j]; !r.At.Before(a.start) && !r.At.After(a.end) {
				return a
			}
		}
		return nil
	}
	receipts := append(append([]sim.Receipt(nil), r1...), r2...)

	// 3: fencing. Once both edges knew the epoch-2 designation, nothing
	// reached a writer with a lower epoch; nor did any request an edge
	// took after it knew.
	var known2 [2]time.Time
	for i, dl := range logs {
		for _, c := range dl.history() {
			if c.OK() && c.Writer.Epoch >= 2 {
				known2[i] = c.Known
				break
			}
		}
	}
	bothKnew := known2[0]
	if known2[1].After(bothKnew) {
		bothKnew = known2[1]
	}
	stale := 0
	for _, r := range receipts {
		if r.Epoch >= 2 {
			continue
		}
		if r.At.After(bothKnew) {
			stale++
			failf("after both edges knew epoch 2 (%s), a writer received %s of %s with epoch %d (%s %s)",
				bothKnew.Format(time.StampMicro), r.Key, r.Account, r.Epoch, r.Outcome, r.Problem)
		} else if a := attemptOf(r); a != nil && a.start.After(known2[a.edge]) {
			stale++
			failf("edge %d knew epoch 2 at %s, then took %s of %s at %s and forwarded it with epoch %d",
				a.edge+1, known2[a.edge].Format(time.StampMicro), r.Key, r.Account, a.start.Format(time.StampMicro), r.Epoch)
		}
	}

	// Nor did an edge ever go back to a lower epoch than one it had
	// designated.
	regressions := 0
	for i, dl := range logs {
		var top int64
		for _, c := range dl.history() {
			if c.OK() && c.Writer.Epoch < top {
				regressions++
				failf("edge %d designated %s at epoch %d after epoch %d (%s)", i+1, c.Writer.URL, c.Writer.Epoch, top, c.Reason)
			}
			if c.OK() {
				top = max(top, c.Writer.Epoch)
			}
		}
	}

	// 4: ambiguity. From the moment an edge saw both writers claim epoch 1
	// until it knew of epoch 2, it had no single writer: every exchange it
	// had entirely inside that window was answered 503 writer-unavailable
	// and forwarded nothing. W2 claimed epoch 1 only as the rival of W1, so
	// a bet reaching W2 with epoch 1 was a guess between the two.
	type window struct{ open, close time.Time }
	var windows [2][]window
	for i, dl := range logs {
		w := window{close: end}
		for _, c := range dl.history() {
			if c.State == ledger.Ambiguous && w.open.IsZero() {
				w.open = c.Known
			}
			if c.OK() && c.Writer.Epoch >= 2 {
				w.close = c.Since
				break
			}
		}
		if !w.open.IsZero() {
			windows[i] = append(windows[i], w)
		}
	}
	guesses := 0
	for _, r := range r2 {
		if r.Epoch < 2 {
			guesses++
			failf("W2, the rival claimant of epoch 1, received %s of %s with epoch %d at %s (%s)",
				r.Key, r.Account, r.Epoch, r.At.Format(time.StampMicro), r.Outcome)
		}
	}
	inWindow, wuInWindow, forwardedInWindow := 0, 0, 0
	byKey := map[string][]sim.Receipt{}
	for _, r := range receipts {
		byKey[r.Key] = append(byKey[r.Key], r)
	}
	for _, b := range all {
		for _, a := range b.attempts {
			for _, w := range windows[a.edge] {
				if a.start.Before(w.open) || a.end.After(w.close) {
					continue
				}
				inWindow++
				if a.status == 503 && a.problem == "writer-unavailable" {
					wuInWindow++
				} else {
					failf("edge %d answered %s with %d %q during the ambiguity", a.edge+1, b.key, a.status, a.problem)
				}
				for _, r := range byKey[b.key] {
					if !r.At.Before(a.start) && !r.At.After(a.end) {
						forwardedInWindow++
						failf("edge %d forwarded %s during the ambiguity: a writer received it at %s with epoch %d",
							a.edge+1, b.key, r.At.Format(time.StampMicro), r.Epoch)
					}
				}
			}
		}
	}
	if wuInWindow == 0 {
		failf("no 503 writer-unavailable was observed during the ambiguity (windows %v)", windows)
	}

	// 5: every bet got a final answer.
	if acked+final4xx != bets || unfinished != 0 {
		failf("bets with a final answer: want %d, got %d acknowledged + %d refused (%d unfinished after %s each)",
			bets, acked, final4xx, unfinished, betLimit)
	}
	if appliedW2 == 0 || killedAfter >= int64(bets) {
		failf("the new writer applied %d bets and the old one died after %d of %d: the chaos missed the load", appliedW2, killedAfter, bets)
	}

	for i, dl := range logs {
		var steps []string
		for _, c := range dl.history() {
			s := string(c.State)
			if c.OK() {
				w := "W1"
				if c.Writer.URL == w2URL {
					w = "W2"
				}
				s = fmt.Sprintf("%s@%d(%s)", w, c.Writer.Epoch, c.Source)
			}
			if !c.Known.IsZero() {
				s += fmt.Sprintf("+%s", c.Known.Sub(ambiguousAt).Round(time.Millisecond))
			}
			steps = append(steps, s)
		}
		t.Logf("edge sea-%d designations (time since W2 claimed epoch 1): %s", i+1, strings.Join(steps, " → "))
	}
	t.Logf("ambiguity: W2 claimed epoch 1 at +0, both edges ambiguous at +%s, W2 promoted to epoch 2 at +%s (four-eyes on sea-1: %s), both edges on epoch 2 at +%s, W1 killed at +%s after %d bets, load over at +%s",
		bothAmbiguous.Sub(ambiguousAt).Round(time.Millisecond), promotedAt.Sub(ambiguousAt).Round(time.Millisecond), fourEyes,
		bothEpoch2.Sub(ambiguousAt).Round(time.Millisecond), killedAt.Sub(ambiguousAt).Round(time.Millisecond), killedAfter,
		end.Sub(ambiguousAt).Round(time.Millisecond))
	t.Logf("edge exchanges entirely inside the ambiguity windows: %d, answered 503 writer-unavailable: %d, forwarded: %d; bets guessed to the rival W2 at epoch 1: %d; epoch regressions: %d; other 503s: %d, transport errors: %d; receipts W1 %d, W2 %d; replicated into W2: %d",
		inWindow, wuInWindow, forwardedInWindow, guesses, regressions, other503, transport, len(r1), len(r2), imported)
	summary := fmt.Sprintf("chaos: bets=%d acknowledged=%d replayed-by-edge=%d retries=%d 503-writer-unavailable=%d 504-outcome-unknown=%d 409-in-flight=%d applied-W1=%d applied-W2=%d reforwarded-after-504=%d edge-duplicates=%d unlogged=%d stale-epoch-forwards-after-designation=%d",
		bets, acked, replayed, attempts-bets, wu503, unknown504, inFlight409, appliedW1, appliedW2, reforwards, edgeDuplicates, unlogged, stale)
	t.Log(summary)
	fmt.Println(summary)
}

// serveLedger serves l on a loopback port until the test ends.
func serveLedger(t *testing.T, l *sim.Ledger) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go l.Serve(ln)
	t.Cleanup(func() { l.Close() })
	return ln.Addr().String()
}

// placeBet sends bet b until it gets a final answer (2xx, or a 4xx other
// than 409), the limit passes or stop is set: the same key and body every
// time, alternating between the edges. An impatient client gives up on an
// attempt after 200ms, before the edge does.
func placeBet(client *http.Client, edges []string, first int, tok string, b *chaosBet, limit time.Duration, stop, impatient *atomic.Bool, seen *phaseCounts) {
	const body = `{"table":"bacc-07","amount":"1.00","currency":"EUR","selection":"banker"}`
	deadline := time.Now().Add(limit)
	for n := 0; time.Now().Before(deadline) && !stop.Load(); n++ {
		a := chaosAttempt{edge: (first + n) % len(edges)}
		ctx, cancel := context.Background(), context.CancelFunc(func() {})
		if impatient.Load() {
			ctx, cancel = context.WithTimeout(ctx, 200*time.Millisecond)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+edges[a.edge]+"/api/bets", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Idempotency-Key", b.key)
		a.start = time.Now()
		resp, err := client.Do(req)
		if err == nil {
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			a.status, a.replayed = resp.StatusCode, resp.Header.Get("Idempotent-Replayed") == "true"
			if resp.Header.Get("Content-Type") == "application/problem+json" {
				var p struct{ Type string }
				json.Unmarshal(raw, &p)
				a.problem = strings.TrimPrefix(p.Type, "urn:hedge:problem:")
			}
		}
		a.end = time.Now()
		cancel()
		b.attempts = append(b.attempts, a)
		seen.note(a)
		switch {
		case a.status >= 200 && a.status < 300, a.status >= 400 && a.status < 500 && a.status != 409:
			b.final = a.status
			return
		case a.status == 503:
			time.Sleep(20 * time.Millisecond)
		default: // 504, 409, no answer
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// phaseCounts are what the clients have seen so far, for the test to
// wait until each fault phase has really happened.
type phaseCounts struct{ unknown, inFlight atomic.Int64 }

func (p *phaseCounts) note(a chaosAttempt) {
	switch {
	case a.status == 504 && a.problem == "outcome-unknown":
		p.unknown.Add(1)
	case a.status == 409:
		p.inFlight.Add(1)
	}
}

// setRole changes a ledger simulator's role or epoch.
func setRole(base, body string) error {
	resp, err := http.Post(base+"/admin/role", "application/json", strings.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%d %s", resp.StatusCode, b)
	}
	return nil
}

// promoteFourEyes has one operator request W2's promotion to epoch 2 on an
// edge's admin API and another approve it, and says how it went: the
// probes may have designated W2 first, which makes the request moot.
func promoteFourEyes(client *http.Client, admin, url string) string {
	call := func(path, body, tok string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, admin+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := client.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	status, body := call("/admin/ledger/promotions",
		`{"domain":"sea","url":"`+url+`","epoch":2,"reason":"chaos drill: W1 is going away"}`, "operator-alice-0123456789abcdef0123")
	if status != http.StatusAccepted {
		return fmt.Sprintf("request answered %d %s", status, strings.TrimSpace(body))
	}
	var pr Promotion
	json.Unmarshal([]byte(body), &pr)
	status, body = call("/admin/ledger/promotions/"+pr.ID+"/approve", "", "operator-bob-0123456789abcdef01234")
	if status != http.StatusOK {
		return fmt.Sprintf("approval answered %d %s", status, strings.TrimSpace(body))
	}
	return "approved"
}
