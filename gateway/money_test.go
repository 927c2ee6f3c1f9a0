package gateway

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"hedge/configs"
	"hedge/gateway/jwtauth"
	"hedge/internal/sim"
	"hedge/internal/testkit"
)

const moneySecret = "test-secret-0123456789abcdef-0123456789"

// testJWT is how the money tests' players authenticate: tokens signed with
// moneySecret (token()).
const testJWT = `auth:
  jwt:
    issuer: hedge-test
    audience: [play.edge.test]
    keys: [{id: k1, alg: HS256, secret: "` + moneySecret + `"}]
`

// betsRoute begins the ledger route players place bets on; the route's
// money timeout follows.
const betsRoute = `  - name: bets
    kind: ledger
    match: {path_prefix: /api/bets, methods: [POST]}
    rewrite: /bets
`

// balanceRoute is the ledger route players read their balance on.
const balanceRoute = `  - name: balance
    kind: ledger
    match: {path_prefix: /api/wallet/balance, methods: [GET]}
    rewrite: /balance
`

// cashierRoute is the deposit route in front of pool cashier: a player's
// token and an Idempotency-Key on every deposit.
const cashierRoute = `  - name: cashier
    match: {path_prefix: /cashier/deposit, methods: [POST]}
    pool: cashier
    auth: jwt
    idempotency: required
`

// moneyConfig: one node in sea; ledger domains sea (writer in sea) and eu
// (writer in eu), each a real ledger simulator.
const moneyConfig = testHead + testJWT + `ledger:
  probe: {enabled: {{PROBE}}, interval: 50ms, timeout: 40ms, fall: 1}
routes:
` + betsRoute + `    money: {timeout: 300ms}
` + balanceRoute + seaNode + `    writers:
      - {domain: sea, url: "http://{{SEA}}", epoch: 1}
  - name: eu
    nodes:
      - name: eu-1
        listeners: [{name: public, address: "127.0.0.1:1", tls: {mode: off}}]
    writers:
      - {domain: eu, url: "http://{{EU}}", epoch: 1}
`

type moneyFixture struct {
	edge    *testEdge
	sea, eu *sim.Ledger
	seaAddr string
}

func startLedger(t testing.TB, domain string, epoch int64, addr string) (*sim.Ledger, string) {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	l := sim.NewLedger(sim.LedgerSettings{Domain: domain, Epoch: epoch, KeepReceipts: true, Logger: quiet})
	go l.Serve(ln)
	t.Cleanup(func() { l.Close() })
	return l, ln.Addr().String()
}

func newMoneyFixture(t *testing.T, probe bool) *moneyFixture {
	f := &moneyFixture{}
	var euAddr string
	f.sea, f.seaAddr = startLedger(t, "sea", 1, "")
	f.eu, euAddr = startLedger(t, "eu", 1, "")
	p := "false"
	if probe {
		p = "true"
	}
	f.edge = startEdgeNode(t, moneyConfig, "sea", "sea-1", "{{SEA}}", f.seaAddr, "{{EU}}", euAddr, "{{PROBE}}", p)
	return f
}

func token(t testing.TB, sub, domain string) string {
	t.Helper()
	tok, err := jwtauth.Sign(configs.JWT{Issuer: "hedge-test", Audience: []string{"play.edge.test"}, DomainClaim: "ledger_domain",
		Keys: []configs.JWTKey{{ID: "k1", Alg: "HS256", Secret: moneySecret}}}, sub, domain, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

const bet = `{"table":"bacc-07","amount":"12.50","currency":"EUR","selection":"banker"}`

func (f *moneyFixture) bet(t *testing.T, tok, key, body string) (*http.Response, string) {
	hdr := []string{"Content-Type", "application/json"}
	if tok != "" {
		hdr = append(hdr, "Authorization", "Bearer "+tok)
	}
	if key != "" {
		hdr = append(hdr, "Idempotency-Key", key)
	}
	return do(t, "POST", f.edge.url+"/api/bets", "", body, hdr...)
}

func applied(l *sim.Ledger) map[string]int {
	m := map[string]int{}
	for _, a := range l.Applied() {
		m[a.Account+"/"+a.Key] = a.Count
	}
	return m
}

func TestMoneyAuthentication(t *testing.T) {
	f := newMoneyFixture(t, false)
	resp, body := f.bet(t, "", "k1", bet)
	wantProblem(t, resp, body, 401, "invalid-token")
	if resp.Header.Get("WWW-Authenticate") == "" {
		t.Error("401 without WWW-Authenticate")
	}
	resp, body = f.bet(t, token(t, "p1", "")+"x", "k1", bet)
	wantProblem(t, resp, body, 401, "invalid-token")
	if len(f.sea.Applied()) != 0 {
		t.Fatal("an unauthenticated bet reached the ledger")
	}
}

func TestMoneyIdempotency(t *testing.T) {
	f := newMoneyFixture(t, false)
	tok := token(t, "player-1", "")

	resp, body := f.bet(t, tok, "", bet)
	wantProblem(t, resp, body, 400, "idempotency-key-missing")
	resp, body = f.bet(t, tok, strings.Repeat("k", 256), bet)
	wantProblem(t, resp, body, 400, "idempotency-key-malformed")
	resp, body = f.bet(t, tok, "caf\xc3\xa9", bet)
	wantProblem(t, resp, body, 400, "idempotency-key-malformed")

	resp, first := f.bet(t, tok, "bet-1", bet)
	if resp.StatusCode != 201 || resp.Header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("first bet: want 201 not replayed, got %d %q %s", resp.StatusCode, resp.Header.Get("Idempotent-Replayed"), first)
	}
	resp, again := f.bet(t, tok, "bet-1", bet)
	if resp.StatusCode != 201 || resp.Header.Get("Idempotent-Replayed") != "true" || again != first {
		t.Fatalf("same key again: want the stored 201 replayed by the edge, got %d %q %s", resp.StatusCode, resp.Header.Get("Idempotent-Replayed"), again)
	}
	if resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("replay lost the Content-Type: %q", resp.Header.Get("Content-Type"))
	}
	if got := applied(f.sea)["player-1/bet-1"]; got != 1 {
		t.Fatalf("the ledger received bet-1 %d times; the edge must answer the repeat itself", got)
	}
	resp, body = f.bet(t, tok, "bet-1", strings.Replace(bet, "12.50", "99.00", 1))
	wantProblem(t, resp, body, 422, "idempotency-key-reused")
	// Another player's identical key is another bet.
	resp, _ = f.bet(t, token(t, "player-2", ""), "bet-1", bet)
	if resp.StatusCode != 201 || resp.Header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("player-2 with player-1's key: want a new 201, got %d", resp.StatusCode)
	}
	// The writer saw the verified principal, the domain and the epoch —
	// not whatever the client claimed.
	resp, body = do(t, "GET", f.edge.url+"/api/wallet/balance", "", "", "Authorization", "Bearer "+tok, "X-Hedge-Principal", "player-2")
	var bal struct{ Account, Balance, Domain string }
	json.Unmarshal([]byte(body), &bal)
	if resp.StatusCode != 200 || bal.Account != "player-1" || bal.Balance != "987.50" || bal.Domain != "sea" {
		t.Fatalf("balance: want player-1 987.50 in sea, got %d %s", resp.StatusCode, body)
	}
}

func TestMoneyInFlightConflict(t *testing.T) {
	f := newMoneyFixture(t, false)
	tok := token(t, "player-1", "")
	f.sea.SetDelay(200 * time.Millisecond)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if resp, body := f.bet(t, tok, "slow-1", bet); resp.StatusCode != 201 {
			t.Errorf("slow bet: want 201, got %d %s", resp.StatusCode, body)
		}
	}()
	time.Sleep(50 * time.Millisecond)
	resp, body := f.bet(t, tok, "slow-1", bet)
	wantProblem(t, resp, body, 409, "idempotency-key-in-flight")
	wg.Wait()
	if got := applied(f.sea)["player-1/slow-1"]; got != 1 {
		t.Fatalf("slow-1 reached the ledger %d times, want 1", got)
	}
}

func TestMoneyUnknownOutcomeIsNotResent(t *testing.T) {
	f := newMoneyFixture(t, false)
	tok := token(t, "player-1", "")
	f.sea.SetFailAfterApply(true)
	resp, body := f.bet(t, tok, "lost-1", bet)
	wantProblem(t, resp, body, 504, "outcome-unknown")
	if got := applied(f.sea)["player-1/lost-1"]; got != 1 {
		t.Fatalf("after a dropped connection the edge must not re-send: ledger saw %d", got)
	}
	// The client retries with the same key: it reaches the writer again,
	// which answers with what it applied.
	f.sea.SetFailAfterApply(false)
	resp, body = f.bet(t, tok, "lost-1", bet)
	if resp.StatusCode != 201 || resp.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("retry after an unknown outcome: want the writer's replayed 201, got %d %s", resp.StatusCode, body)
	}
	// A timeout is an unknown outcome too.
	f.sea.SetDelay(time.Second)
	resp, body = f.bet(t, tok, "slow-2", bet)
	wantProblem(t, resp, body, 504, "outcome-unknown")
}

func TestMoneyFailsClosedWhenWriterIsDown(t *testing.T) {
	f := newMoneyFixture(t, false)
	tok := token(t, "player-1", "")
	f.sea.Close()
	resp, body := f.bet(t, tok, "down-1", bet)
	wantProblem(t, resp, body, 503, "writer-unavailable")
	if resp.Header.Get("Retry-After") == "" {
		t.Fatal("503 without Retry-After")
	}
	// Nothing is left behind: the writer comes back and the retry goes through.
	l, _ := startLedger(t, "sea", 1, f.seaAddr)
	resp, body = f.bet(t, tok, "down-1", bet)
	if resp.StatusCode != 201 || resp.Header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("retry once the writer is back: want a fresh 201, got %d %s", resp.StatusCode, body)
	}
	if got := applied(l)["player-1/down-1"]; got != 1 {
		t.Fatalf("ledger saw down-1 %d times, want 1", got)
	}
}

func TestMoneyCrossRegionDomain(t *testing.T) {
	f := newMoneyFixture(t, false)
	resp, body := f.bet(t, token(t, "player-9", "eu"), "eu-1", bet)
	if resp.StatusCode != 201 || !strings.Contains(body, `"domain":"eu"`) {
		t.Fatalf("a player of domain eu betting through sea: want 201 from the eu writer, got %d %s", resp.StatusCode, body)
	}
	resp, body = f.bet(t, token(t, "player-9", "mars"), "m-1", bet)
	wantProblem(t, resp, body, 403, "unknown-ledger-domain")
}

// TestMoneyProbedDesignation: with probing, the writer claiming the
// highest epoch is designated; two claims at one epoch fail closed.
func TestMoneyProbedDesignation(t *testing.T) {
	f := newMoneyFixture(t, true)
	tok := token(t, "player-1", "")
	// The probes run every 50 ms with a 40 ms timeout: on a busy machine
	// the first may time out, and the domain waits for the next.
	testkit.WaitUntil(t, "the probed writer designated", 2*time.Second, func() bool {
		resp, _ := f.bet(t, tok, "p-1", bet)
		return resp.StatusCode == 201
	})
	// The sea ledger steps down: no writer left for sea → fail closed.
	do(t, "POST", "http://"+f.seaAddr+"/admin/role", "", `{"role":"replica"}`)
	testkit.WaitUntil(t, "domain sea without a writer", 2*time.Second, func() bool {
		_, body := f.bet(t, tok, "p-2", bet)
		return strings.Contains(body, "writer-unavailable")
	})
	resp, body := f.bet(t, tok, "p-2", bet)
	wantProblem(t, resp, body, 503, "writer-unavailable")
	// The player learns the domain's state; the writers' addresses and
	// the probes' errors stay in /status and the log.
	if !strings.Contains(body, `"detail":"ledger domain sea has no designated writer (unknown)"`) || strings.Contains(body, f.seaAddr) {
		t.Errorf("writer-unavailable detail: want the domain and its state only, got %s", body)
	}
	do(t, "POST", "http://"+f.seaAddr+"/admin/role", "", `{"role":"writer","epoch":2}`)
	testkit.WaitUntil(t, "sea writer back at epoch 2", 2*time.Second, func() bool {
		resp, _ := f.bet(t, tok, "p-2", bet)
		return resp.StatusCode == 201
	})
	_, st := do(t, "GET", f.edge.admin+"/status", "", "")
	if !strings.Contains(st, `"epoch": 2`) {
		t.Fatalf("status does not show the epoch-2 designation:\n%s", st)
	}
}

// TestFourEyesPromotion: one operator requests, the same one cannot
// approve, a second one does; calls then go to the new writer with the new
// epoch, and every step is in the audit log.
func TestFourEyesPromotion(t *testing.T) {
	sea1, sea1Addr := startLedger(t, "sea", 1, "")
	sea2, sea2Addr := startLedger(t, "sea", 1, "")
	_, euAddr := startLedger(t, "eu", 1, "")
	cfg := strings.Replace(moneyConfig, "admin: {allow_loopback: true}",
		"admin: {allow_loopback: true, tokens: [{name: alice, token: operator-alice-0123456789abcdef0123, roles: [read, operate, promote]}, {name: bob, token: operator-bob-0123456789abcdef01234, roles: [read, operate, promote]}]}", 1)
	cfg = strings.Replace(cfg, `      - {domain: sea, url: "http://{{SEA}}", epoch: 1}`,
		`      - {domain: sea, url: "http://{{SEA}}", epoch: 1}
      - {domain: sea, url: "http://{{SEA2}}", epoch: 0}`, 1)
	e := startEdgeNode(t, cfg, "sea", "sea-1", "{{SEA}}", sea1Addr, "{{SEA2}}", sea2Addr, "{{EU}}", euAddr, "{{PROBE}}", "false")
	tok := token(t, "player-1", "")
	betOn := func(key string) (*http.Response, string) {
		return do(t, "POST", e.url+"/api/bets", "", bet, "Authorization", "Bearer "+tok, "Idempotency-Key", key, "Content-Type", "application/json")
	}
	if resp, _ := betOn("before"); resp.StatusCode != 201 {
		t.Fatalf("bet before promotion: %d", resp.StatusCode)
	}
	req := `{"domain":"sea","url":"http://` + sea2Addr + `","epoch":2,"reason":"drill: sea-1 wallet maintenance"}`
	alice := []string{"Authorization", "Bearer operator-alice-0123456789abcdef0123"}
	bob := []string{"Authorization", "Bearer operator-bob-0123456789abcdef01234"}

	resp, body := do(t, "POST", e.admin+"/admin/ledger/promotions", "", req)
	if resp.StatusCode != 403 {
		t.Fatalf("promotion without an operator token (loopback): want 403, got %d %s", resp.StatusCode, body)
	}
	resp, body = do(t, "POST", e.admin+"/admin/ledger/promotions", "", strings.Replace(req, `"epoch":2`, `"epoch":1`, 1), alice...)
	if resp.StatusCode != 422 {
		t.Fatalf("promotion to an epoch that is not higher: want 422, got %d %s", resp.StatusCode, body)
	}
	resp, body = do(t, "POST", e.admin+"/admin/ledger/promotions", "", req, alice...)
	var pr Promotion
	if json.Unmarshal([]byte(body), &pr); resp.StatusCode != 202 || pr.Status != "pending" {
		t.Fatalf("promotion request: want 202 pending, got %d %s", resp.StatusCode, body)
	}
	if resp, _ := do(t, "POST", e.admin+"/admin/ledger/promotions/"+pr.ID+"/approve", "", "", alice...); resp.StatusCode != 403 {
		t.Fatalf("approval by the requester: want 403, got %d", resp.StatusCode)
	}
	if resp, _ := betOn("between"); resp.StatusCode != 201 || applied(sea1)["player-1/between"] != 1 {
		t.Fatal("before approval the old writer must keep the domain")
	}
	resp, body = do(t, "POST", e.admin+"/admin/ledger/promotions/"+pr.ID+"/approve", "", "", bob...)
	if resp.StatusCode != 200 || !strings.Contains(body, `"state": "designated"`) {
		t.Fatalf("approval by a second operator: want 200 designated, got %d %s", resp.StatusCode, body)
	}
	// The promotion was carried out at the writer: it applies at epoch 2.
	if resp, body := betOn("after"); resp.StatusCode != 201 || !strings.Contains(body, `"epoch":2`) {
		t.Fatalf("bet after promotion: want 201 applied by the new writer at epoch 2, got %d %s", resp.StatusCode, body)
	}
	if applied(sea2)["player-1/after"] != 1 || applied(sea1)["player-1/after"] != 0 {
		t.Fatalf("after promotion the bet must go to the new writer only: new %v, old %v", applied(sea2), applied(sea1))
	}
	// The fencing token hedge forwarded, as each writer received it: the
	// old designation's epoch before the approval, the promoted one after.
	epochs := map[string]int64{}
	for _, r := range append(sea1.Receipts(), sea2.Receipts()...) {
		epochs[r.Key] = r.Epoch
	}
	for key, want := range map[string]int64{"before": 1, "between": 1, "after": 2} {
		if epochs[key] != want {
			t.Errorf("bet %q reached its writer with Ledger-Epoch %d, want %d", key, epochs[key], want)
		}
	}
	if resp, _ := do(t, "POST", e.admin+"/admin/ledger/promotions/"+pr.ID+"/approve", "", "", bob...); resp.StatusCode != 422 {
		t.Fatalf("approving twice: want 422, got %d", resp.StatusCode)
	}
	trail := e.auditTrail(t)
	for _, ev := range []string{`"event":"ledger_promotion_requested"`, `"event":"ledger_promotion_approved"`, `"event":"ledger_designation"`, `"source":"promotion"`} {
		if !strings.Contains(trail, ev) {
			t.Errorf("audit log lacks %s:\n%s", ev, trail)
		}
	}
}

// TestHeavyRoutesShedWhileDegraded: failing money calls degrade the domain;
// its heavy routes answer 503 while bets are still forwarded, and they come
// back after the recovery period.
func TestHeavyRoutesShedWhileDegraded(t *testing.T) {
	sea, seaAddr := startLedger(t, "sea", 1, "")
	_, euAddr := startLedger(t, "eu", 1, "")
	cfg := strings.Replace(moneyConfig, "  probe: {enabled: {{PROBE}}, interval: 50ms, timeout: 40ms, fall: 1}",
		"  probe: {enabled: false}\n  degradation: {window: 100ms, min_requests: 5, error_rate: 0.2, recover_after: 300ms}", 1)
	cfg = strings.Replace(cfg, "routes:\n", `routes:
  - name: missions
    kind: ledger
    match: {path_prefix: /api/missions, methods: [POST]}
    rewrite: /bets
    money: {heavy: true}
`, 1)
	e := startEdgeNode(t, cfg, "sea", "sea-1", "{{SEA}}", seaAddr, "{{EU}}", euAddr)
	tok := token(t, "player-1", "")
	post := func(path, key string) (*http.Response, string) {
		return do(t, "POST", e.url+path, "", bet, "Authorization", "Bearer "+tok, "Idempotency-Key", key, "Content-Type", "application/json")
	}
	if resp, _ := post("/api/missions", "m-0"); resp.StatusCode != 201 {
		t.Fatalf("heavy route on a healthy domain: want 201, got %d", resp.StatusCode)
	}
	// The writer starts refusing (503): the domain degrades.
	do(t, "POST", "http://"+seaAddr+"/admin/role", "", `{"role":"replica"}`)
	for i := range 10 {
		post("/api/bets", fmt.Sprintf("fail-%d", i))
	}
	testkit.WaitUntil(t, "heavy route shed", 2*time.Second, func() bool {
		_, body := post("/api/missions", "m-1")
		return strings.Contains(body, "urn:hedge:problem:shed")
	})
	resp, body := post("/api/missions", "m-1")
	wantProblem(t, resp, body, 503, "shed")
	// Bets are not shed: they still reach the writer.
	do(t, "POST", "http://"+seaAddr+"/admin/role", "", `{"role":"writer"}`)
	if resp, body := post("/api/bets", "ok-1"); resp.StatusCode != 201 {
		t.Fatalf("bets while degraded: want 201, got %d %s", resp.StatusCode, body)
	}
	if applied(sea)["player-1/m-1"] != 0 {
		t.Fatal("a shed call reached the writer")
	}
	testkit.WaitUntil(t, "heavy route back after recovery", 3*time.Second, func() bool {
		resp, _ := post("/api/missions", "m-2")
		return resp.StatusCode == 201
	})
}

// railsConfig: a cashier in front of two independent payment rails (a
// failover pool: rail-a first), each deduplicating only its own deposits.
const railsConfig = testHead + testJWT + `routes:
` + cashierRoute + seaNode + `    pools:
      - name: cashier
        policy: failover
        members: [{name: rail-a, url: "http://{{RAILA}}"}, {name: rail-b, url: "http://{{RAILB}}"}]
        # Probes slow enough that a busy machine does not take a rail down
        # by accident; a slow deposit is not a failed probe.
        health: {interval: 200ms, timeout: 150ms, rise: 1, fall: 2}
        passive: {max_fails: 100}
        timeouts: {connect: 200ms, response: 300ms}
        retries: {attempts: 2}
`

func startRail(t testing.TB, name string) (*sim.Rail, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := sim.NewRail(sim.RailSettings{Name: name})
	go r.Serve(ln)
	t.Cleanup(func() { r.Close() })
	return r, ln.Addr().String()
}

// booked counts the deposits a rail booked for key.
func booked(r *sim.Rail, key string) int {
	n := 0
	for _, d := range r.Deposits() {
		if d.Key == key {
			n++
		}
	}
	return n
}

// TestUnknownDepositStaysWithItsRail: a deposit that reached a slow rail-a
// and timed out may have been booked there; it is never sent to rail-b. The
// client gets 504 and retries with the same key: while rail-a is slow the
// retry goes to rail-a again, while rail-a is down it fails closed (503),
// and once rail-a answers, its own deduplication replays the booking. One
// deposit in all. A new deposit still fails over to rail-b.
func TestUnknownDepositStaysWithItsRail(t *testing.T) {
	railA, addrA := startRail(t, "rail-a")
	railB, addrB := startRail(t, "rail-b")
	e := startEdgeNode(t, railsConfig, "sea", "sea-1", "{{RAILA}}", addrA, "{{RAILB}}", addrB)
	tok := token(t, "player-1", "")
	deposit := func(key string) (*http.Response, string) {
		return do(t, "POST", e.url+"/cashier/deposit", "", `{"amount":"50.00","currency":"EUR"}`,
			"Authorization", "Bearer "+tok, "Idempotency-Key", key, "Content-Type", "application/json")
	}
	railA.SetDelay(time.Second)
	resp, body := deposit("dep-1")
	wantProblem(t, resp, body, 504, "outcome-unknown")
	if booked(railA, "dep-1") != 1 || booked(railB, "dep-1") != 0 {
		t.Fatalf("after the timeout: want dep-1 booked at rail-a only, got a=%d b=%d", booked(railA, "dep-1"), booked(railB, "dep-1"))
	}
	// Still slow: the retry goes to rail-a again, not to rail-b.
	resp, body = deposit("dep-1")
	wantProblem(t, resp, body, 504, "outcome-unknown")
	// rail-a goes down: the key fails closed instead of moving to rail-b.
	railA.SetHealthy(false)
	testkit.WaitUntil(t, "rail-a down at the edge", 2*time.Second, func() bool {
		resp, _ := do(t, "GET", e.admin+"/status", "", "")
		_, st := do(t, "GET", e.admin+"/status", "", "")
		return resp.StatusCode == 200 && strings.Contains(st, `"healthy": 1`)
	})
	resp, body = deposit("dep-1")
	wantProblem(t, resp, body, 503, "pinned-upstream-unavailable")
	if resp.Header.Get("Retry-After") == "" {
		t.Fatal("503 without Retry-After")
	}
	// A different deposit under the used key is refused, not sent anywhere.
	resp, body = do(t, "POST", e.url+"/cashier/deposit", "", `{"amount":"99.00","currency":"EUR"}`,
		"Authorization", "Bearer "+tok, "Idempotency-Key", "dep-1", "Content-Type", "application/json")
	wantProblem(t, resp, body, 422, "idempotency-key-reused")
	// A new deposit fails over to rail-b as before.
	resp, body = deposit("dep-2")
	if resp.StatusCode != 200 || !strings.Contains(body, `"rail":"rail-b"`) {
		t.Fatalf("a new deposit with rail-a down: want 200 from rail-b, got %d %s", resp.StatusCode, body)
	}
	// rail-a is back and fast: the retry finds its booking there.
	railA.SetDelay(0)
	railA.SetHealthy(true)
	testkit.WaitUntil(t, "rail-a back", 2*time.Second, func() bool {
		resp, _ := deposit("dep-1")
		return resp.StatusCode == 200
	})
	resp, body = deposit("dep-1")
	if resp.StatusCode != 200 || !strings.Contains(body, `"rail":"rail-a"`) || resp.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("retry once rail-a is back: want rail-a's booking replayed, got %d %s", resp.StatusCode, body)
	}
	if a, b := booked(railA, "dep-1"), booked(railB, "dep-1"); a+b != 1 || a != 1 {
		t.Fatalf("dep-1: want one deposit, at rail-a; got rail-a %d, rail-b %d", a, b)
	}
}

// scriptedWriter is a writer that answers each bet with the next status
// of its script (201 once the script is used up) and counts the bets that
// reached it.
type scriptedWriter struct {
	mu     sync.Mutex
	script []int
	body   string
	hits   int
}

func (w *scriptedWriter) start(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/bets" {
			rw.WriteHeader(http.StatusNotFound)
			return
		}
		io.Copy(io.Discard, r.Body)
		w.mu.Lock()
		w.hits++
		status := http.StatusCreated
		if len(w.script) > 0 {
			status, w.script = w.script[0], w.script[1:]
		}
		body := w.body
		w.mu.Unlock()
		rw.Header().Set("Content-Type", "application/json")
		rw.WriteHeader(status)
		io.WriteString(rw, body)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func (w *scriptedWriter) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.hits
}

// TestMoneyKeyReleasedUnlessSuccess: only a writer's success is stored and
// replayed. A refusal the player can fix (422 insufficient funds), a
// conflict, a server error, and a success too large to store all release
// the key, so the player's retry with it reaches the writer again.
func TestMoneyKeyReleasedUnlessSuccess(t *testing.T) {
	for _, tc := range []struct {
		name   string
		first  int
		body   string
		stored bool
	}{
		{"created", 201, `{"bet_id":"b-1"}`, true},
		{"insufficient funds", 422, `{"type":"urn:hedge:problem:insufficient-funds"}`, false},
		{"bad request", 400, `{"type":"urn:hedge:problem:malformed-body"}`, false},
		{"conflict", 409, `{"type":"urn:hedge:problem:stale-epoch"}`, false},
		{"server error", 500, `{"type":"urn:hedge:problem:internal"}`, false},
		{"unavailable", 503, `{"type":"urn:hedge:problem:not-writer"}`, false},
		{"success too large to store", 201, `{"bet_id":"b-1","pad":"` + strings.Repeat("x", 2048) + `"}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &scriptedWriter{script: []int{tc.first}, body: tc.body}
			addr := w.start(t)
			_, euAddr := startLedger(t, "eu", 1, "")
			cfg := strings.Replace(moneyConfig, "regions:\n  - name: sea\n", "regions:\n  - name: sea\n    idempotency: {max_response_bytes: 1KiB}\n", 1)
			e := startEdgeNode(t, cfg, "sea", "sea-1", "{{SEA}}", addr, "{{EU}}", euAddr, "{{PROBE}}", "false")
			tok := token(t, "player-1", "")
			betOn := func() (*http.Response, string) {
				return do(t, "POST", e.url+"/api/bets", "", bet, "Authorization", "Bearer "+tok, "Idempotency-Key", "k-1", "Content-Type", "application/json")
			}
			resp, _ := betOn()
			if resp.StatusCode != tc.first {
				t.Fatalf("first answer: want the writer's %d, got %d", tc.first, resp.StatusCode)
			}
			resp, _ = betOn()
			replayed := resp.Header.Get("Idempotent-Replayed") == "true"
			switch {
			case tc.stored && (!replayed || w.count() != 1):
				t.Fatalf("a stored success: want the retry replayed at the edge, got replayed=%v and %d writer hits", replayed, w.count())
			case !tc.stored && (replayed || w.count() != 2 || resp.StatusCode != 201):
				t.Fatalf("a released key: want the retry forwarded and the writer's 201, got %d replayed=%v and %d writer hits", resp.StatusCode, replayed, w.count())
			}
		})
	}
}

// TestMoneyFailsClosedWithoutIdempotencyStore: when the region's Redis is
// unreachable, an unsafe money call is refused with 503 before anything is
// forwarded: without its key record the edge could not stop a duplicate.
func TestMoneyFailsClosedWithoutIdempotencyStore(t *testing.T) {
	w := &scriptedWriter{body: `{}`}
	addr := w.start(t)
	_, euAddr := startLedger(t, "eu", 1, "")
	dead := testkit.FreeAddr(t) // nothing listens here
	cfg := strings.Replace(moneyConfig, "regions:\n  - name: sea\n", "regions:\n  - name: sea\n    idempotency: {store: redis, redis: {address: \""+dead+"\"}}\n", 1)
	e := startEdgeNode(t, cfg, "sea", "sea-1", "{{SEA}}", addr, "{{EU}}", euAddr, "{{PROBE}}", "false")
	resp, body := do(t, "POST", e.url+"/api/bets", "", bet, "Authorization", "Bearer "+token(t, "player-1", ""), "Idempotency-Key", "k-1", "Content-Type", "application/json")
	wantProblem(t, resp, body, 503, "idempotency-unavailable")
	if resp.Header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	if strings.Contains(body, dead) || strings.Contains(body, "connection refused") {
		t.Errorf("the problem leaks internal error text: %s", body)
	}
	if n := w.count(); n != 0 {
		t.Fatalf("the writer was reached %d times without an idempotency store", n)
	}
	// A safe read needs no key record and still goes through.
	if resp, _ := do(t, "GET", e.url+"/api/wallet/balance", "", "", "Authorization", "Bearer "+token(t, "player-1", "")); resp.StatusCode == 503 {
		t.Fatalf("a balance read without the store: want it forwarded, got 503")
	}
}

// TestHostilePlayerStaysInOwnAccount: with a valid token of their own, a
// player cannot name another account, domain or epoch through headers, nor
// smuggle another subject inside a signed token's subject: the bet is
// booked to the token's subject or refused, and the victim's balance does
// not move.
func TestHostilePlayerStaysInOwnAccount(t *testing.T) {
	f := newMoneyFixture(t, false)
	mallory := token(t, "mallory", "")
	hostile := []string{"Authorization", "Bearer " + mallory, "Content-Type", "application/json",
		"Ledger-Account", "victim-1", "X-Hedge-Principal", "victim-1", "Ledger-Domain", "eu", "Ledger-Epoch", "0"}
	resp, body := do(t, "POST", f.edge.url+"/api/bets", "", bet, append(hostile, "Idempotency-Key", "h-1")...)
	if resp.StatusCode != 201 || !strings.Contains(body, `"account":"mallory"`) || !strings.Contains(body, `"domain":"sea"`) {
		t.Fatalf("a bet naming victim-1 in headers: want it booked to mallory in sea, got %d %s", resp.StatusCode, body)
	}
	resp, body = do(t, "GET", f.edge.url+"/api/wallet/balance", "", "", hostile...)
	if resp.StatusCode != 200 || !strings.Contains(body, `"account":"mallory"`) || !strings.Contains(body, `"balance":"987.50"`) {
		t.Fatalf("a balance read naming victim-1: want mallory's balance, got %d %s", resp.StatusCode, body)
	}
	for _, sub := range []string{"mallory;sub=victim-1", "victim-1,mallory", "victim-1\x00x", "victim-1 ", "victim-1\r\nX: y"} {
		resp, body := f.bet(t, token(t, sub, ""), "h-2", bet)
		wantProblem(t, resp, body, 401, "invalid-token")
	}
	_, body = do(t, "GET", f.edge.url+"/api/wallet/balance", "", "", "Authorization", "Bearer "+token(t, "victim-1", ""))
	if !strings.Contains(body, `"balance":"1000.00"`) {
		t.Fatalf("victim-1's balance moved: %s", body)
	}
	for _, a := range f.sea.Applied() {
		if a.Account != "mallory" {
			t.Fatalf("the sea ledger applied a bet to %s", a.Account)
		}
	}
	if n := len(f.eu.Applied()); n != 0 {
		t.Fatalf("the eu ledger applied %d bets: Ledger-Domain from a client was believed", n)
	}
}
