package sim

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"hedge/internal/testkit"
)

// serveLedger runs a ledger with settings s on a loopback listener of its
// own, as `hedge ledgersim` does; Close (or the test's end) stops it.
func serveLedger(t *testing.T, s LedgerSettings) (*Ledger, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := NewLedger(s)
	go l.Serve(ln)
	t.Cleanup(func() { l.Close() })
	return l, "http://" + ln.Addr().String()
}

// link is a TCP path between two ledgers that a test can cut: while cut,
// connections are accepted and never answered (packets dropped, as in a
// partition), and the connections it was carrying are broken.
type link struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	conns  map[net.Conn]bool
}

func newLink(t *testing.T, target string) *link {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lk := &link{ln: ln, target: target, conns: map[net.Conn]bool{}}
	go lk.accept()
	t.Cleanup(func() {
		ln.Close()
		lk.mu.Lock()
		for c := range lk.conns {
			c.Close()
		}
		lk.mu.Unlock()
	})
	return lk
}

func (lk *link) url() string { return "http://" + lk.ln.Addr().String() }

func (lk *link) accept() {
	for {
		c, err := lk.ln.Accept()
		if err != nil {
			return
		}
		lk.mu.Lock()
		lk.conns[c] = true
		cut := lk.cut
		lk.mu.Unlock()
		if cut {
			continue // held open, never answered
		}
		go lk.pipe(c)
	}
}

func (lk *link) pipe(c net.Conn) {
	up, err := net.Dial("tcp", lk.target)
	if err != nil {
		c.Close()
		return
	}
	lk.mu.Lock()
	lk.conns[up] = true
	lk.mu.Unlock()
	go func() { io.Copy(up, c); up.Close() }()
	io.Copy(c, up)
	c.Close()
}

// setCut cuts the link or heals it.
func (lk *link) setCut(cut bool) {
	lk.mu.Lock()
	defer lk.mu.Unlock()
	lk.cut = cut
	if cut {
		for c := range lk.conns {
			c.Close()
		}
		lk.conns = map[net.Conn]bool{}
	}
}

// placeBet sends one bet of 1.00 for account under key.
func placeBet(t *testing.T, base, account, key string, headers ...string) result {
	t.Helper()
	return call(t, base, http.MethodPost, "/bets", `{"table":"bacc-07","amount":"1.00","currency":"EUR","selection":"banker"}`,
		append([]string{"Idempotency-Key", key, "X-Hedge-Principal", account}, headers...)...)
}

func roleOf(t *testing.T, base string) roleBody {
	t.Helper()
	return decode[roleBody](t, call(t, base, http.MethodGet, "/role", ""))
}

// receiptsBy indexes a ledger's receipts of one outcome by account/key.
func receiptsBy(l *Ledger, outcome string) map[string]Receipt {
	out := map[string]Receipt{}
	for _, r := range l.Receipts() {
		if r.Outcome == outcome {
			out[r.Account+"/"+r.Key] = r
		}
	}
	return out
}

// TestSyncReplicationRPOZero: a synchronous writer acknowledges a bet only
// once its replica holds it, so after the writer dies and the replica is
// promoted every acknowledged bet is there, and a retry of one is a replay
// of the writer's answer, not a second debit.
func TestSyncReplicationRPOZero(t *testing.T) {
	const token = "pair-token"
	replica, rBase := serveLedger(t, LedgerSettings{Domain: "sea", Role: RoleReplica, AdminToken: token, KeepReceipts: true})
	writer, wBase := serveLedger(t, LedgerSettings{Domain: "sea", AdminToken: token, KeepReceipts: true, Replicas: []string{rBase}})

	const players, perPlayer = 8, 10
	acked := map[string]result{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, players*perPlayer)
	for p := range players {
		wg.Go(func() {
			for i := range perPlayer {
				account, key := fmt.Sprintf("p%d", p), fmt.Sprintf("k%d", i)
				r, err := send(wBase, http.MethodPost, "/bets", betBody, "Idempotency-Key", key, "X-Hedge-Principal", account, "Ledger-Epoch", "1")
				if err != nil {
					errs <- err
					continue
				}
				if r.status != http.StatusCreated {
					errs <- fmt.Errorf("bet %s/%s at the writer: expected 201, got %d %s", account, key, r.status, r.body)
					continue
				}
				mu.Lock()
				acked[account+"/"+key] = r
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(acked) != players*perPlayer {
		t.Fatalf("acknowledged bets: expected %d, got %d", players*perPlayer, len(acked))
	}
	writer.Close()

	// The operators (or the drill) promote the replica through its own API.
	if r := call(t, rBase, http.MethodPost, "/admin/promote", ``, "Authorization", "Bearer "+token); r.status != http.StatusOK {
		t.Fatalf("POST /admin/promote: expected 200, got %d %s", r.status, r.body)
	}
	if got, want := roleOf(t, rBase), (roleBody{RoleWriter, "sea", 2}); got != want {
		t.Fatalf("promoted replica's /role: expected %+v, got %+v", want, got)
	}
	imported := receiptsBy(replica, ReceiptImported)
	for k, ack := range acked {
		got, ok := imported[k]
		if !ok {
			t.Errorf("acknowledged bet %s is missing from the promoted replica (RPO must be 0)", k)
			continue
		}
		want := decode[betResponse](t, ack)
		if got.BetID != want.BetID || got.Amount != "12.50" || got.AppliedEpoch != 1 {
			t.Errorf("imported receipt of %s: expected bet %s of 12.50 at epoch 1, got %+v", k, want.BetID, got)
		}
	}
	for p := range players {
		account := fmt.Sprintf("p%d", p)
		if b := balanceOf(t, rBase, account); b != "875.00" {
			t.Errorf("balance of %s at the promoted replica: expected 875.00 (10 × 12.50), got %s", account, b)
		}
		// The client retries its last bet at the new writer with the new
		// epoch: the stored answer, replayed.
		key := fmt.Sprintf("k%d", perPlayer-1)
		r := call(t, rBase, http.MethodPost, "/bets", betBody, "Idempotency-Key", key, "X-Hedge-Principal", account, "Ledger-Epoch", "2")
		if r.status != http.StatusCreated || r.header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(r.body, acked[account+"/"+key].body) {
			t.Errorf("retry of %s/%s at the promoted replica: expected the writer's 201 replayed, got %d replayed=%q %s",
				account, key, r.status, r.header.Get("Idempotent-Replayed"), r.body)
		}
		if b := balanceOf(t, rBase, account); b != "875.00" {
			t.Errorf("balance of %s after the retry: expected 875.00 (no second debit), got %s", account, b)
		}
	}
	if n := len(receiptsBy(replica, ReceiptApplied)); n != 0 {
		t.Errorf("bets applied (not imported) at the promoted replica: expected 0, got %d", n)
	}
	if r := placeBet(t, rBase, "p0", "old-epoch", "Ledger-Epoch", "1"); r.status != http.StatusConflict || problemType(t, r) != "urn:hedge:problem:stale-epoch" {
		t.Errorf("bet with epoch 1 at the promoted replica: expected 409 stale-epoch, got %d %s", r.status, r.body)
	}
}

// TestSyncWriterRefusesWithoutReplica: a synchronous writer whose replica
// is gone (refused connections) or partitioned away (no answer) refuses
// every bet with 503 replica-unavailable and applies nothing; once the
// replica is back, the client's retry with the same key applies once.
func TestSyncWriterRefusesWithoutReplica(t *testing.T) {
	for _, fault := range []string{"replica down", "partition"} {
		t.Run(fault, func(t *testing.T) {
			replica, rBase := serveLedger(t, LedgerSettings{Domain: "sea", Role: RoleReplica, KeepReceipts: true})
			lk := newLink(t, rBase[len("http://"):])
			writer, wBase := serveLedger(t, LedgerSettings{Domain: "sea", KeepReceipts: true, Replicas: []string{lk.url()},
				ReplicationTimeout: 200 * time.Millisecond})
			if r := placeBet(t, wBase, "alice", "before"); r.status != http.StatusCreated {
				t.Fatalf("bet before the fault: expected 201, got %d %s", r.status, r.body)
			}
			switch fault {
			case "replica down":
				replica.Close() // the link finds nothing to connect to: refused at once
			case "partition":
				lk.setCut(true)
			}
			for i := range 3 {
				start := time.Now()
				r := placeBet(t, wBase, "alice", fmt.Sprintf("during-%d", i))
				took := time.Since(start)
				if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
					t.Fatalf("bet %d during the fault: expected 503 with Retry-After, got %d %v %s", i, r.status, r.header, r.body)
				}
				if got := problemType(t, r); got != "urn:hedge:problem:replica-unavailable" {
					t.Errorf("bet %d during the fault: expected problem replica-unavailable, got %q", i, got)
				}
				if took > 2*time.Second {
					t.Errorf("bet %d during the fault: expected a refusal bounded by the replication timeout (200ms), took %s", i, took)
				}
			}
			if b := balanceOf(t, wBase, "alice"); b != "999.00" {
				t.Errorf("writer's balance after refused bets: expected 999.00 (only the bet before the fault), got %s", b)
			}
			if got := receiptsBy(writer, ReceiptApplied); len(got) != 1 {
				t.Errorf("writer's applied receipts: expected only the bet before the fault, got %+v", got)
			}
			for _, a := range writer.Applied() {
				if a.Key != "before" {
					t.Errorf("writer lists %s as applied after refusing it", a.Key)
				}
			}
			if fault == "replica down" {
				return
			}
			lk.setCut(false)
			r := placeBet(t, wBase, "alice", "during-0")
			if r.status != http.StatusCreated || r.header.Get("Idempotent-Replayed") != "" {
				t.Fatalf("retry after the partition healed: expected a fresh 201, got %d %s", r.status, r.body)
			}
			if b := balanceOf(t, wBase, "alice"); b != "998.00" {
				t.Errorf("writer's balance after the retry: expected 998.00, got %s", b)
			}
			if got := receiptsBy(replica, ReceiptImported); len(got) != 2 {
				t.Errorf("replica's imports: expected the bet before the fault and the retry, got %+v", got)
			}
			if b := balanceOf(t, rBase, "alice"); b != "998.00" {
				t.Errorf("replica's balance: expected 998.00, got %s", b)
			}
		})
	}
}

// TestAsyncReplicationLag: an asynchronous writer answers at once and ships
// each bet after the lag; killed, it loses only what it acknowledged within
// the lag before it died.
func TestAsyncReplicationLag(t *testing.T) {
	const lag = 400 * time.Millisecond
	replica, rBase := serveLedger(t, LedgerSettings{Domain: "sea", Role: RoleReplica, KeepReceipts: true})
	writer, wBase := serveLedger(t, LedgerSettings{Domain: "sea", KeepReceipts: true, Replicas: []string{rBase},
		Replication: ReplicationAsync, ReplicationLag: lag})

	for i := range 10 {
		if r := placeBet(t, wBase, "alice", fmt.Sprintf("a%d", i)); r.status != http.StatusCreated {
			t.Fatalf("bet a%d: expected 201, got %d %s", i, r.status, r.body)
		}
	}
	testkit.WaitUntil(t, "the replica imports the first ten bets", 10*time.Second, func() bool { return len(receiptsBy(replica, ReceiptImported)) == 10 })
	applied := receiptsBy(writer, ReceiptApplied)
	for k, imp := range receiptsBy(replica, ReceiptImported) {
		if d := imp.At.Sub(applied[k].At); d < lag {
			t.Errorf("bet %s reached the replica %s after the writer applied it: expected at least the lag, %s", k, d, lag)
		}
	}

	for i := range 5 {
		if r := placeBet(t, wBase, "alice", fmt.Sprintf("b%d", i)); r.status != http.StatusCreated {
			t.Fatalf("bet b%d: expected 201, got %d %s", i, r.status, r.body)
		}
	}
	killed := time.Now()
	writer.Close()
	applied = receiptsBy(writer, ReceiptApplied)
	imported := receiptsBy(replica, ReceiptImported)
	lost := 0
	for k, a := range applied {
		if _, ok := imported[k]; ok {
			continue
		}
		lost++
		if a.At.Before(killed.Add(-lag)) {
			t.Errorf("bet %s, acknowledged %s before the writer died, is lost: expected losses only within the lag (%s)", k, killed.Sub(a.At), lag)
		}
	}
	if _, ok := imported["alice/b4"]; ok || lost == 0 {
		t.Errorf("the last bet, acknowledged just before the writer died: expected it lost (it was still waiting out the lag), got it imported (%d lost)", lost)
	}
	if b := balanceOf(t, rBase, "alice"); b != fmt.Sprintf("%d.00", 1000-10-(5-lost)) {
		t.Errorf("replica's balance: expected %d.00 (10 + %d imported bets), got %s", 1000-10-(5-lost), 5-lost, b)
	}
}

// TestFencedWriter: once its replica is promoted, the old writer learns it
// is fenced from the replica's refusal of its next bet (sync: that bet is
// refused; async: it was acknowledged, which is the loss window), then
// refuses every bet with 409 stale-epoch, and /role says fenced with the
// epoch it learned. A writer restarted with its old flags learns it again
// on its first bet.
func TestFencedWriter(t *testing.T) {
	for _, mode := range []string{ReplicationSync, ReplicationAsync} {
		t.Run(mode, func(t *testing.T) {
			replica, rBase := serveLedger(t, LedgerSettings{Domain: "sea", Role: RoleReplica, KeepReceipts: true})
			settings := LedgerSettings{Domain: "sea", KeepReceipts: true, Replicas: []string{rBase}, Replication: mode}
			writer, wBase := serveLedger(t, settings)
			if r := placeBet(t, wBase, "alice", "k1"); r.status != http.StatusCreated {
				t.Fatalf("k1: expected 201, got %d %s", r.status, r.body)
			}
			testkit.WaitUntil(t, "the replica imports k1", 5*time.Second, func() bool { return len(receiptsBy(replica, ReceiptImported)) == 1 })
			if r := call(t, rBase, http.MethodPost, "/admin/promote", `{"epoch":5}`); r.status != http.StatusOK {
				t.Fatalf("promote: expected 200, got %d %s", r.status, r.body)
			}

			r := placeBet(t, wBase, "alice", "k2", "Ledger-Epoch", "1")
			switch mode {
			case ReplicationSync:
				if r.status != http.StatusConflict || problemType(t, r) != "urn:hedge:problem:stale-epoch" {
					t.Fatalf("k2 at the old writer: expected 409 stale-epoch, got %d %s", r.status, r.body)
				}
				if _, ok := receiptsBy(writer, ReceiptApplied)["alice/k2"]; ok {
					t.Errorf("k2 refused, yet the old writer lists it as applied")
				}
			case ReplicationAsync:
				if r.status != http.StatusCreated {
					t.Fatalf("k2 at the old async writer: expected 201 (acknowledged before shipping), got %d %s", r.status, r.body)
				}
			}
			testkit.WaitUntil(t, "the old writer reports itself fenced", 5*time.Second, func() bool { return roleOf(t, wBase).Role == RoleFenced })
			if got, want := roleOf(t, wBase), (roleBody{RoleFenced, "sea", 5}); got != want {
				t.Errorf("old writer's /role: expected %+v, got %+v", want, got)
			}
			for _, h := range [][]string{nil, {"Ledger-Epoch", "1"}, {"Ledger-Epoch", "5"}} {
				if r := placeBet(t, wBase, "bob", "k3", h...); r.status != http.StatusConflict || problemType(t, r) != "urn:hedge:problem:stale-epoch" {
					t.Errorf("bet at the fenced writer (headers %v): expected 409 stale-epoch, got %d %s", h, r.status, r.body)
				}
			}
			if _, ok := receiptsBy(replica, ReceiptImported)["alice/k2"]; ok {
				t.Errorf("the promoted replica imported k2, applied by the old writer at epoch 1")
			}
			if b := balanceOf(t, rBase, "alice"); b != "999.00" {
				t.Errorf("promoted replica's balance: expected 999.00 (k1 only), got %s", b)
			}

			// Restarted with the same flags, it believes it writes at epoch 1.
			writer.Close()
			restarted, wBase2 := serveLedger(t, settings)
			if got := roleOf(t, wBase2); got.Role != RoleWriter || got.Epoch != 1 {
				t.Fatalf("restarted writer before any bet: expected writer at 1, got %+v", got)
			}
			r = placeBet(t, wBase2, "carol", "k4")
			if mode == ReplicationSync && r.status != http.StatusConflict {
				t.Errorf("first bet at the restarted sync writer: expected 409 stale-epoch, got %d %s", r.status, r.body)
			}
			testkit.WaitUntil(t, "the restarted writer learns it is fenced", 5*time.Second, func() bool { return roleOf(t, wBase2).Role == RoleFenced })
			if mode == ReplicationSync && len(restarted.Applied()) != 0 {
				t.Errorf("restarted sync writer: expected nothing applied, got %+v", restarted.Applied())
			}
		})
	}
}

// TestPartitionAutoPromotion: the writer and its replica lose each other.
// The synchronous writer acknowledges nothing from then on; the replica,
// hearing neither bets nor heartbeats, promotes itself after
// auto-promote-after; when the link heals, the old writer's next bet tells
// it that it is fenced. Every bet acknowledged before the partition is at
// the new writer.
func TestPartitionAutoPromotion(t *testing.T) {
	const after, beat = 600 * time.Millisecond, 50 * time.Millisecond
	// The replica must know the writer's address before it starts, and
	// the writer the replica's: the writer's listener comes first. Two
	// links, one each way, are cut together.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	wBase := "http://" + ln.Addr().String()
	toWriter := newLink(t, ln.Addr().String())
	replica, rBase := serveLedger(t, LedgerSettings{Domain: "sea", Role: RoleReplica, KeepReceipts: true,
		Writer: toWriter.url(), AutoPromoteAfter: after, HeartbeatInterval: beat})
	toReplica := newLink(t, rBase[len("http://"):])
	writer := NewLedger(LedgerSettings{Domain: "sea", KeepReceipts: true, Replicas: []string{toReplica.url()},
		ReplicationTimeout: 150 * time.Millisecond})
	go writer.Serve(ln)
	t.Cleanup(func() { writer.Close() })
	partition := func(cut bool) { toWriter.setCut(cut); toReplica.setCut(cut) }

	// Heartbeats keep the replica a replica well past auto-promote-after.
	for i := range 10 {
		if r := placeBet(t, wBase, "alice", fmt.Sprintf("k%d", i)); r.status != http.StatusCreated {
			t.Fatalf("bet k%d before the partition: expected 201, got %d %s", i, r.status, r.body)
		}
	}
	time.Sleep(3 * after)
	if got := roleOf(t, rBase); got.Role != RoleReplica || got.Epoch != 1 {
		t.Fatalf("replica of a writer that answers its heartbeats, after %s: expected replica at 1, got %+v", 3*after, got)
	}

	partition(true)
	cut := time.Now()
	for i := range 3 {
		r := placeBet(t, wBase, "alice", fmt.Sprintf("p%d", i))
		if r.status != http.StatusServiceUnavailable {
			t.Errorf("bet p%d at the partitioned writer: expected 503 replica-unavailable, got %d %s", i, r.status, r.body)
		}
	}
	promoted := testkit.WaitUntil(t, "the replica promotes itself", after+5*time.Second, func() bool { return roleOf(t, rBase).Role == RoleWriter })
	if d := promoted.Sub(cut); d < after-beat {
		t.Errorf("replica promoted %s after the partition: expected no sooner than auto-promote-after (%s) less one heartbeat", d, after)
	}
	if got, want := roleOf(t, rBase), (roleBody{RoleWriter, "sea", 2}); got != want {
		t.Errorf("auto-promoted replica's /role: expected %+v, got %+v", want, got)
	}
	for i := range 10 {
		if _, ok := receiptsBy(replica, ReceiptImported)[fmt.Sprintf("alice/k%d", i)]; !ok {
			t.Errorf("bet k%d, acknowledged before the partition, is missing from the new writer", i)
		}
	}
	for k := range receiptsBy(writer, ReceiptApplied) {
		if k[len("alice/"):][0] == 'p' {
			t.Errorf("the partitioned writer acknowledged %s", k)
		}
	}

	partition(false)
	if r := placeBet(t, wBase, "alice", "after"); r.status != http.StatusConflict {
		t.Errorf("old writer's first bet after the partition healed: expected 409 stale-epoch, got %d %s", r.status, r.body)
	}
	if got, want := roleOf(t, wBase), (roleBody{RoleFenced, "sea", 2}); got != want {
		t.Errorf("old writer's /role after the partition healed: expected %+v, got %+v", want, got)
	}
}

// TestPromoteEndpoint: POST /admin/promote makes a ledger the writer at a
// higher epoch; it needs the admin token, never lowers the epoch, and a
// repeat of the epoch it already writes at is answered as done.
func TestPromoteEndpoint(t *testing.T) {
	const token = "s3cret"
	_, base := startLedger(t, LedgerSettings{Domain: "eu", Role: RoleReplica, Epoch: 3, AdminToken: token})
	auth := []string{"Authorization", "Bearer " + token}
	steps := []struct {
		name    string
		body    string
		headers []string
		status  int
		want    roleBody // on 200
		problem string
	}{
		{"no token", `{"epoch":4}`, nil, 401, roleBody{}, "urn:hedge:problem:unauthorized"},
		{"lower epoch", `{"epoch":2}`, auth, 409, roleBody{}, "urn:hedge:problem:stale-epoch"},
		{"same epoch while replica", `{"epoch":3}`, auth, 409, roleBody{}, "urn:hedge:problem:stale-epoch"},
		{"not json", `epoch=4`, auth, 400, roleBody{}, "urn:hedge:problem:malformed-body"},
		{"explicit epoch", `{"epoch":7}`, auth, 200, roleBody{RoleWriter, "eu", 7}, ""},
		{"repeat is done", `{"epoch":7}`, auth, 200, roleBody{RoleWriter, "eu", 7}, ""},
		{"omitted epoch is the next", ``, auth, 200, roleBody{RoleWriter, "eu", 8}, ""},
		{"empty object is the next", `{}`, auth, 200, roleBody{RoleWriter, "eu", 9}, ""},
	}
	for _, st := range steps {
		r := call(t, base, http.MethodPost, "/admin/promote", st.body, st.headers...)
		wantRoleAnswer(t, st.name, r, st.status, st.problem, st.want)
	}
}

// TestReplicationEndpoint: what a replica takes on POST /replication/bets.
func TestReplicationEndpoint(t *testing.T) {
	const token = "s3cret"
	auth := []string{"Authorization", "Bearer " + token}
	bet := func(key string, epoch int64) string {
		return fmt.Sprintf(`{"key":%q,"account":"alice","amount":"2.00","epoch":%d,"request":{"amount":"2.00","currency":"EUR"},"response":{"bet_id":"sea-%d-1","epoch":%d}}`, key, epoch, epoch, epoch)
	}
	batch := func(domain string, epoch int64, bets ...string) string {
		b := fmt.Sprintf(`{"domain":%q,"epoch":%d,"bets":[`, domain, epoch)
		for i, x := range bets {
			if i > 0 {
				b += ","
			}
			b += x
		}
		return b + "]}"
	}
	tests := []struct {
		name    string
		role    string
		body    string
		headers []string
		status  int
		problem string
		epoch   int64 // the refusal's epoch member, or the ledger's epoch after
		balance string
	}{
		{"imports", RoleReplica, batch("sea", 2, bet("k1", 2), bet("k2", 2)), auth, 200, "", 2, "996.00"},
		{"a known key moves no money", RoleReplica, batch("sea", 2, bet("k1", 2), bet("k1", 2)), auth, 200, "", 2, "998.00"},
		{"follows a higher epoch", RoleReplica, batch("sea", 4, bet("k1", 4)), auth, 200, "", 4, "998.00"},
		{"needs the token", RoleReplica, batch("sea", 2, bet("k1", 2)), nil, 401, "urn:hedge:problem:unauthorized", 0, "1000.00"},
		{"older epoch fences the sender", RoleReplica, batch("sea", 1, bet("k1", 1)), auth, 409, "urn:hedge:problem:stale-epoch", 2, "1000.00"},
		{"other domain", RoleReplica, batch("eu", 2, bet("k1", 2)), auth, 421, "urn:hedge:problem:wrong-domain", 0, "1000.00"},
		{"no amount", RoleReplica, batch("sea", 2, `{"key":"k1","account":"alice","epoch":2}`), auth, 422, "urn:hedge:problem:invalid-replication", 0, "1000.00"},
		{"a writer at the same epoch refuses", RoleWriter, batch("sea", 2, bet("k1", 2)), auth, 409, "urn:hedge:problem:writer-conflict", 0, "1000.00"},
		{"a writer below follows a higher epoch", RoleWriter, batch("sea", 3, bet("k1", 3)), auth, 200, "", 3, "998.00"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, base := startLedger(t, LedgerSettings{Domain: "sea", Role: tc.role, Epoch: 2, AdminToken: token})
			r := call(t, base, http.MethodPost, "/replication/bets", tc.body, tc.headers...)
			if r.status != tc.status {
				t.Fatalf("expected %d, got %d %s", tc.status, r.status, r.body)
			}
			if tc.problem != "" {
				if got := problemType(t, r); got != tc.problem {
					t.Errorf("problem: expected %q, got %q", tc.problem, got)
				}
				if tc.status == http.StatusConflict && tc.epoch != 0 {
					if got := decode[problem](t, r).Epoch; got != tc.epoch {
						t.Errorf("refusal's epoch: expected %d, got %d", tc.epoch, got)
					}
				}
			} else if got := roleOf(t, base); got.Epoch != tc.epoch || got.Role != RoleReplica {
				t.Errorf("role after the import: expected replica at %d, got %+v", tc.epoch, got)
			}
			if b := balanceOf(t, base, "alice"); b != tc.balance {
				t.Errorf("balance: expected %s, got %s", tc.balance, b)
			}
		})
	}
}

// TestSyncReplicationConcurrentDuplicates: retries of one key that arrive
// while its first request waits for the replica wait with it, then replay
// its answer (or, when it was refused, try again): one debit whichever way.
func TestSyncReplicationConcurrentDuplicates(t *testing.T) {
	for _, cut := range []bool{false, true} {
		t.Run(fmt.Sprintf("partitioned=%v", cut), func(t *testing.T) {
			replica, rBase := serveLedger(t, LedgerSettings{Domain: "sea", Role: RoleReplica, KeepReceipts: true})
			lk := newLink(t, rBase[len("http://"):])
			lk.setCut(cut)
			_, wBase := serveLedger(t, LedgerSettings{Domain: "sea", Replicas: []string{lk.url()}, ReplicationTimeout: 200 * time.Millisecond})
			n := 20
			if cut {
				n = 8 // each waits out the one before it: 200ms apiece
			}
			results := sendAtOnce(t, n, func() (result, error) {
				return send(wBase, http.MethodPost, "/bets", betBody, "Idempotency-Key", "dup", "X-Hedge-Principal", "alice")
			})
			fresh := 0
			for i, r := range results {
				switch {
				case cut && r.status != http.StatusServiceUnavailable:
					t.Errorf("request %d while partitioned: expected 503, got %d %s", i, r.status, r.body)
				case !cut && r.status != http.StatusCreated:
					t.Errorf("request %d: expected 201, got %d %s", i, r.status, r.body)
				case !cut && r.header.Get("Idempotent-Replayed") == "":
					fresh++
				}
			}
			want := "987.50"
			if cut {
				want = "1000.00"
			} else if fresh != 1 {
				t.Errorf("answers not marked as replays: expected 1, got %d", fresh)
			}
			if b := balanceOf(t, wBase, "alice"); b != want {
				t.Errorf("writer's balance: expected %s, got %s", want, b)
			}
			if !cut {
				if got := receiptsBy(replica, ReceiptImported); len(got) != 1 {
					t.Errorf("replica's imports: expected the one bet, got %+v", got)
				}
			}
		})
	}
}
