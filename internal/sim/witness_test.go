package sim

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"hedge/internal/testkit"
	"hedge/internal/testredis"
)

// Timings of the witness tests: short, but in the proportions of the
// drill's (renew 250ms, lease 2s).
const (
	testRenew = 50 * time.Millisecond
	testLease = 400 * time.Millisecond
)

// pair is a writer and its replica with a witness, each path between them
// (writer → replica, replica → writer, writer → witness, replica →
// witness) a link the test can cut.
type pair struct {
	writer, replica     *Ledger
	wBase, rBase        string
	toReplica, toWriter *link
	wWitness, rWitness  *link
	redis               *redis.Client
}

func newPair(t *testing.T, mode string, autoAfter time.Duration) *pair {
	t.Helper()
	witness := testredis.Start(t)
	p := &pair{redis: redis.NewClient(&redis.Options{Addr: witness})}
	t.Cleanup(func() { p.redis.Close() })
	p.wWitness, p.rWitness = newLink(t, witness), newLink(t, witness)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.wBase = "http://" + ln.Addr().String()
	p.toWriter = newLink(t, ln.Addr().String())
	p.replica, p.rBase = serveLedger(t, LedgerSettings{Domain: "sea", Role: RoleReplica, KeepReceipts: true,
		Writer: p.toWriter.url(), AutoPromoteAfter: autoAfter, HeartbeatInterval: testRenew,
		Witness: hostPort(p.rWitness), WitnessHolder: "replica", Lease: testLease, LeaseRenew: testRenew})
	p.toReplica = newLink(t, p.rBase[len("http://"):])
	p.writer = NewLedger(LedgerSettings{Domain: "sea", KeepReceipts: true, Replicas: []string{p.toReplica.url()},
		Replication: mode, ReplicationTimeout: 150 * time.Millisecond,
		Witness: hostPort(p.wWitness), WitnessHolder: "writer", Lease: testLease, LeaseRenew: testRenew})
	go p.writer.Serve(ln)
	t.Cleanup(func() { p.writer.Close() })
	// The witness records the lease before the writer does (it records
	// its own on the answer): wait for both, or a first bet may be refused.
	testkit.WaitUntil(t, "the writer takes its lease", 5*time.Second, func() bool {
		if p.witnessState(t)["holder"] != "writer" {
			return false
		}
		p.writer.mu.Lock()
		defer p.writer.mu.Unlock()
		return p.writer.repl.leaseLive()
	})
	return p
}

func hostPort(lk *link) string { return lk.ln.Addr().String() }

// witnessState is the domain's record at the witness.
func (p *pair) witnessState(t *testing.T) map[string]string {
	t.Helper()
	m, err := p.redis.HGetAll(context.Background(), witnessPrefix+"sea:epoch").Result()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func replicationOf(t *testing.T, base string) string {
	t.Helper()
	return decode[roleAnswer](t, call(t, base, http.MethodGet, "/role", "")).Replication
}

// TestWitnessDegradedWriter: a synchronous writer whose replica is gone
// keeps acknowledging once the witness has recorded it degraded, queues
// those bets, and hands every one of them to the replica when it is back,
// then records itself synced again.
func TestWitnessDegradedWriter(t *testing.T) {
	p := newPair(t, ReplicationSync, 0)
	if r := placeBet(t, p.wBase, "alice", "before"); r.status != http.StatusCreated {
		t.Fatalf("bet with the replica up: expected 201, got %d %s", r.status, r.body)
	}
	if got := p.witnessState(t)["state"]; got != WitnessSynced {
		t.Fatalf("witness state with the replica up: expected %q, got %q", WitnessSynced, got)
	}

	p.toReplica.setCut(true)
	for i := range 5 {
		if r := placeBet(t, p.wBase, "alice", fmt.Sprintf("alone%d", i)); r.status != http.StatusCreated {
			t.Fatalf("bet alone%d with the replica cut off: expected 201 (degraded, lease at the witness), got %d %s", i, r.status, r.body)
		}
	}
	if got := p.witnessState(t)["state"]; got != WitnessDegraded {
		t.Errorf("witness state while acknowledging alone: expected %q, got %q", WitnessDegraded, got)
	}
	if got := replicationOf(t, p.wBase); got != WitnessDegraded {
		t.Errorf("writer's /role replication while alone: expected %q, got %q", WitnessDegraded, got)
	}
	if n := len(receiptsBy(p.replica, ReceiptImported)); n != 1 {
		t.Errorf("bets at the cut-off replica: expected 1 (the one before), got %d", n)
	}

	p.toReplica.setCut(false)
	testkit.WaitUntil(t, "the writer records itself synced again", 5*time.Second, func() bool {
		return p.witnessState(t)["state"] == WitnessSynced && replicationOf(t, p.wBase) == WitnessSynced
	})
	imported := receiptsBy(p.replica, ReceiptImported)
	for _, k := range []string{"before", "alone0", "alone1", "alone2", "alone3", "alone4"} {
		if _, ok := imported["alice/"+k]; !ok {
			t.Errorf("bet %s is missing from the replica after the catch-up", k)
		}
	}
	if got := balanceOf(t, p.rBase, "alice"); got != "994.00" {
		t.Errorf("alice's balance at the replica after the catch-up: expected 994.00 (6 × 1.00), got %s", got)
	}
}

// TestWitnessGrantsAfterLease: the writer dies; its replica asks the
// witness, which grants the domain at the next epoch only once the
// writer's lease has run out; every acknowledged bet is at the new writer.
func TestWitnessGrantsAfterLease(t *testing.T) {
	p := newPair(t, ReplicationSync, testRenew)
	for i := range 10 {
		if r := placeBet(t, p.wBase, "alice", fmt.Sprintf("k%d", i)); r.status != http.StatusCreated {
			t.Fatalf("bet k%d: expected 201, got %d %s", i, r.status, r.body)
		}
	}
	p.writer.Close()
	died := time.Now()
	promoted := testkit.WaitUntil(t, "the replica is granted the domain", 5*time.Second, func() bool { return roleOf(t, p.rBase).Role == RoleWriter })
	// The writer's last renewal was at most one renewal before it died.
	if d := promoted.Sub(died); d < testLease-testRenew {
		t.Errorf("replica promoted %s after the writer died: expected no sooner than the lease (%s) less one renewal", d, testLease)
	}
	if got, want := roleOf(t, p.rBase), (roleBody{RoleWriter, "sea", 2}); got != want {
		t.Errorf("promoted replica's /role: expected %+v, got %+v", want, got)
	}
	if st := p.witnessState(t); st["epoch"] != "2" || st["holder"] != "replica" {
		t.Errorf("witness after the grant: expected epoch 2 held by the replica, got %v", st)
	}
	for i := range 10 {
		if _, ok := receiptsBy(p.replica, ReceiptImported)[fmt.Sprintf("alice/k%d", i)]; !ok {
			t.Errorf("acknowledged bet k%d is missing from the new writer (RPO must be 0)", i)
		}
	}
	if r := placeBet(t, p.rBase, "alice", "after"); r.status != http.StatusCreated {
		t.Errorf("bet at the new writer: expected 201, got %d %s", r.status, r.body)
	}
}

// TestWitnessPartitionedWriter: the writer is cut off from its replica
// and from the witness (the split-brain case). It acknowledges nothing its
// replica lacks; the replica is granted the domain only after the lease;
// when the partition heals the old writer learns it is fenced.
func TestWitnessPartitionedWriter(t *testing.T) {
	p := newPair(t, ReplicationSync, testRenew)
	if r := placeBet(t, p.wBase, "alice", "before"); r.status != http.StatusCreated {
		t.Fatalf("bet before the partition: expected 201, got %d %s", r.status, r.body)
	}
	partition := func(cut bool) { p.toReplica.setCut(cut); p.toWriter.setCut(cut); p.wWitness.setCut(cut) }
	partition(true)
	cut := time.Now()
	for i := range 3 {
		r := placeBet(t, p.wBase, "alice", fmt.Sprintf("p%d", i))
		if r.status != http.StatusServiceUnavailable {
			t.Errorf("bet p%d at the partitioned writer: expected 503, got %d %s", i, r.status, r.body)
		}
	}
	promoted := testkit.WaitUntil(t, "the replica is granted the domain", 5*time.Second, func() bool { return roleOf(t, p.rBase).Role == RoleWriter })
	if d := promoted.Sub(cut); d < testLease-testRenew {
		t.Errorf("replica promoted %s after the partition: expected no sooner than the lease (%s) less one renewal", d, testLease)
	}
	for k := range receiptsBy(p.writer, ReceiptApplied) {
		if strings.HasPrefix(k, "alice/p") {
			t.Errorf("the partitioned writer acknowledged %s", k)
		}
	}
	if _, ok := receiptsBy(p.replica, ReceiptImported)["alice/before"]; !ok {
		t.Error("the bet acknowledged before the partition is missing from the new writer")
	}

	partition(false)
	testkit.WaitUntil(t, "the old writer learns it is fenced", 5*time.Second, func() bool { return roleOf(t, p.wBase).Role == RoleFenced })
	if r := placeBet(t, p.wBase, "alice", "late"); r.status != http.StatusConflict {
		t.Errorf("bet at the fenced old writer: expected 409 stale-epoch, got %d %s", r.status, r.body)
	}
}

// TestWitnessRefusesDegradedTakeover: a writer that acknowledged bets its
// replica lacks, then died, is not replaced automatically (the replica
// would lose those bets); operators can still promote the replica, and the
// witness records it.
func TestWitnessRefusesDegradedTakeover(t *testing.T) {
	p := newPair(t, ReplicationSync, testRenew)
	p.toReplica.setCut(true)
	if r := placeBet(t, p.wBase, "alice", "alone"); r.status != http.StatusCreated {
		t.Fatalf("bet with the replica cut off: expected 201, got %d %s", r.status, r.body)
	}
	p.writer.Close()
	died := time.Now()
	// Well past the lease, the witness still refuses the replica.
	testkit.WaitUntil(t, "the lease runs out", 5*time.Second, func() bool {
		n, err := p.redis.Exists(context.Background(), witnessPrefix+"sea:lease").Result()
		return err == nil && n == 0
	})
	for time.Since(died) < 3*testLease {
		if got := roleOf(t, p.rBase); got.Role != RoleReplica {
			t.Fatalf("replica of a writer that died degraded: expected it to stay a replica, got %+v", got)
		}
		time.Sleep(testRenew)
	}
	if r := call(t, p.rBase, http.MethodPost, "/admin/promote", ``); r.status != http.StatusOK {
		t.Fatalf("operators' POST /admin/promote: expected 200, got %d %s", r.status, r.body)
	}
	if st := p.witnessState(t); st["epoch"] != "2" || st["holder"] != "replica" {
		t.Errorf("witness after the operators' promotion: expected epoch 2 held by the replica, got %v", st)
	}
}

// TestWitnessAsyncWriterNeedsLease: an asynchronous writer acknowledges
// ahead of its replica, so without a live lease (the witness unreachable)
// it refuses bets with 503 lease-lost; it acknowledges again once it renews.
func TestWitnessAsyncWriterNeedsLease(t *testing.T) {
	p := newPair(t, ReplicationAsync, 0)
	if r := placeBet(t, p.wBase, "alice", "k0"); r.status != http.StatusCreated {
		t.Fatalf("bet with a live lease: expected 201, got %d %s", r.status, r.body)
	}
	p.wWitness.setCut(true)
	cut := time.Now()
	var r result
	n := 0
	refused := testkit.WaitUntil(t, "the async writer refuses without its lease", 5*time.Second, func() bool {
		n++
		r = placeBet(t, p.wBase, "alice", fmt.Sprintf("cut%d", n))
		return r.status == http.StatusServiceUnavailable
	})
	if pt := problemType(t, r); pt != "urn:hedge:problem:lease-lost" {
		t.Errorf("refusal without a lease: expected lease-lost, got %s", pt)
	}
	// It stops no later than the lease less the margin after its last
	// renewal, which came before the cut.
	if d := refused.Sub(cut); d > testLease {
		t.Errorf("async writer still acknowledged %s after losing the witness: expected it to stop within the lease (%s)", d, testLease)
	}
	p.wWitness.setCut(false)
	testkit.WaitUntil(t, "the async writer acknowledges again", 5*time.Second, func() bool {
		n++
		return placeBet(t, p.wBase, "alice", fmt.Sprintf("healed%d", n)).status == http.StatusCreated
	})
}
