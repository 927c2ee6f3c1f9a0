package e2e

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"hedge/internal/testkit"
	"hedge/internal/testredis"
)

// TestLedgersimPairCLI: two `hedge ledgersim` processes with the flags a
// drill uses — a synchronous writer with -replica, a replica with -writer
// and -auto-promote-after. A bet the writer acknowledged is on the replica;
// SIGKILL the writer and the replica promotes itself within
// auto-promote-after (plus a heartbeat or two); the client's retry of the
// bet there is a replay, and GET /receipts lists it as imported.
func TestLedgersimPairCLI(t *testing.T) {
	dir := t.TempDir()
	const token = "pair-admin-0123456789abcdef0123456789"
	wAddr, rAddr := testkit.FreeAddr(t), testkit.FreeAddr(t)
	replica := startHedge(t, "replica", dir, "ledgersim", "-listen", rAddr, "-domain", "sea", "-role", "replica",
		"-admin-token", token, "-receipts", "-writer", "http://"+wAddr, "-auto-promote-after", "1s")
	writer := startHedge(t, "writer", dir, "ledgersim", "-listen", wAddr, "-domain", "sea", "-role", "writer", "-epoch", "1",
		"-admin-token", token, "-receipts", "-replica", "http://"+rAddr, "-replication", "sync", "-replication-timeout", "500ms")
	testkit.WaitFor(t, replica, "the replica answers", 10*time.Second, 50*time.Millisecond, answers200(quickClient, "http://"+rAddr+"/healthz"))
	testkit.WaitFor(t, writer, "the writer answers", 10*time.Second, 50*time.Millisecond, answers200(quickClient, "http://"+wAddr+"/healthz"))

	bet := func(addr, key string, epoch int) httpResult {
		return do(t, quickClient, "POST", "http://"+addr+"/bets", `{"table":"bacc-07","amount":"5.00","currency":"EUR","selection":"banker"}`,
			"Idempotency-Key", key, "X-Hedge-Principal", "player-1", "Ledger-Epoch", fmt.Sprint(epoch), "Content-Type", "application/json")
	}
	first := bet(wAddr, "cli-1", 1)
	if first.status != 201 {
		t.Fatalf("bet at the writer: want 201, got %v", first)
	}
	if r := do(t, quickClient, "GET", "http://"+rAddr+"/receipts", ""); !strings.Contains(r.body, `"key":"cli-1"`) || !strings.Contains(r.body, `"outcome":"imported"`) ||
		!strings.Contains(r.body, `"applied_epoch":1`) || !strings.Contains(r.body, `"amount":"5.00"`) {
		t.Fatalf("replica's receipts right after the writer's 201: want cli-1 imported (amount 5.00, epoch 1), got %v", r)
	}
	if r := do(t, quickClient, "GET", "http://"+rAddr+"/role", ""); !strings.Contains(r.body, `"role":"replica"`) {
		t.Fatalf("replica while its writer answers heartbeats: want role replica, got %v", r)
	}

	writer.Signal(t, syscall.SIGKILL)
	took := testkit.WaitFor(t, replica, "the replica promotes itself", 10*time.Second, 20*time.Millisecond, func() (bool, string) {
		r, err := tryDo(quickClient, "GET", "http://"+rAddr+"/role", "")
		if err != nil {
			return false, err.Error()
		}
		return strings.Contains(r.body, `"role":"writer"`) && strings.Contains(r.body, `"epoch":2`), r.body
	})
	t.Logf("replica promoted itself %s after the writer was killed (-auto-promote-after 1s)", took.Round(time.Millisecond))
	if took < 750*time.Millisecond {
		t.Errorf("replica promoted %s after the kill: want no sooner than auto-promote-after (1s) less a heartbeat", took)
	}
	again := bet(rAddr, "cli-1", 2)
	if again.status != 201 || again.header.Get("Idempotent-Replayed") != "true" || again.body != first.body {
		t.Errorf("retry at the promoted replica: want the writer's 201 replayed, got %v", again)
	}
	if r := bet(rAddr, "cli-old", 1); r.status != 409 || !strings.Contains(r.body, "stale-epoch") {
		t.Errorf("bet with the old epoch at the promoted replica: want 409 stale-epoch, got %v", r)
	}
}

// TestLedgersimWitnessCLI: a writer/replica pair of `hedge ledgersim`
// processes with a Redis witness, as a drill runs them. The replica stops
// (SIGSTOP): the synchronous writer has the witness record it degraded and
// keeps acknowledging; the replica comes back: it catches up, and although
// it heard nothing from its writer for a while, the witness refuses it the
// domain while the writer holds its lease. The writer dies (SIGKILL): the
// replica is granted the domain only once the lease has run out, and holds
// every bet the writer acknowledged.
func TestLedgersimWitnessCLI(t *testing.T) {
	dir := t.TempDir()
	witness := testredis.Start(t)
	const token = "pair-admin-0123456789abcdef0123456789"
	wAddr, rAddr := testkit.FreeAddr(t), testkit.FreeAddr(t)
	replica := startHedge(t, "replica", dir, "ledgersim", "-listen", rAddr, "-domain", "sea", "-role", "replica",
		"-admin-token", token, "-receipts", "-writer", "http://"+wAddr, "-auto-promote-after", "300ms",
		"-witness", witness, "-lease", "1s", "-lease-renew", "100ms")
	writer := startHedge(t, "writer", dir, "ledgersim", "-listen", wAddr, "-domain", "sea", "-role", "writer", "-epoch", "1",
		"-admin-token", token, "-receipts", "-replica", "http://"+rAddr, "-replication", "sync", "-replication-timeout", "300ms",
		"-witness", witness, "-lease", "1s", "-lease-renew", "100ms")
	role := func(addr string) string {
		r, err := tryDo(quickClient, "GET", "http://"+addr+"/role", "")
		if err != nil {
			return err.Error()
		}
		return r.body
	}
	testkit.WaitFor(t, writer, "the writer holds its lease, synced", 10*time.Second, 50*time.Millisecond, func() (bool, string) {
		b := role(wAddr)
		return strings.Contains(b, `"replication":"synced"`), b
	})
	bet := func(addr, key string, epoch int) httpResult {
		return do(t, quickClient, "POST", "http://"+addr+"/bets", `{"table":"bacc-07","amount":"5.00","currency":"EUR","selection":"banker"}`,
			"Idempotency-Key", key, "X-Hedge-Principal", "player-1", "Ledger-Epoch", fmt.Sprint(epoch), "Content-Type", "application/json")
	}
	if r := bet(wAddr, "k0", 1); r.status != 201 {
		t.Fatalf("bet with the replica up: want 201, got %v", r)
	}

	replica.Signal(t, syscall.SIGSTOP)
	for _, k := range []string{"alone-1", "alone-2", "alone-3"} {
		if r := bet(wAddr, k, 1); r.status != 201 {
			t.Fatalf("bet %s with the replica stopped: want 201 (the witness records the writer degraded), got %v", k, r)
		}
	}
	if b := role(wAddr); !strings.Contains(b, `"replication":"degraded"`) {
		t.Errorf("writer's /role with its replica stopped: want replication degraded, got %s", b)
	}

	replica.Signal(t, syscall.SIGCONT)
	testkit.WaitFor(t, writer, "the writer is synced again", 10*time.Second, 50*time.Millisecond, func() (bool, string) {
		b := role(wAddr)
		return strings.Contains(b, `"replication":"synced"`), b
	})
	r := do(t, quickClient, "GET", "http://"+rAddr+"/receipts", "")
	for _, k := range []string{"k0", "alone-1", "alone-2", "alone-3"} {
		if !strings.Contains(r.body, `"key":"`+k+`"`) {
			t.Errorf("replica's receipts after the catch-up: want %s imported, got %s", k, r.body)
		}
	}
	// The replica's heartbeats stopped while it was stopped: it may have
	// asked the witness for the domain, which the writer's live lease
	// refuses. Two leases later it is still a replica.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if b := role(rAddr); !strings.Contains(b, `"role":"replica"`) {
			t.Fatalf("replica whose writer holds its lease: want it to stay a replica, got %s", b)
		}
		time.Sleep(100 * time.Millisecond)
	}

	writer.Signal(t, syscall.SIGKILL)
	took := testkit.WaitFor(t, replica, "the witness grants the replica the domain", 10*time.Second, 20*time.Millisecond, func() (bool, string) {
		b := role(rAddr)
		return strings.Contains(b, `"role":"writer"`) && strings.Contains(b, `"epoch":2`), b
	})
	t.Logf("replica granted the domain %s after the writer was killed (lease 1s)", took.Round(time.Millisecond))
	if took < 900*time.Millisecond {
		t.Errorf("replica promoted %s after the kill: want no sooner than the lease (1s) less a renewal", took)
	}
	if again := bet(rAddr, "alone-3", 2); again.status != 201 || again.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("retry of a bet acknowledged while degraded, at the new writer: want 201 replayed, got %v", again)
	}
}
