package gateway

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"hedge/configs"
	"hedge/gateway/jwtauth"
	"hedge/gateway/sim"
)

const moneySecret = "test-secret-0123456789abcdef-0123456789"

// moneyConfig: one node in sea; ledger domains sea (writer in sea) and eu
// (writer in eu), each a real ledger simulator.
const moneyConfig = `
data_dir: {{DATA}}
# The protective layer has its own tests (protect_test.go).
waf: {mode: off}
log: {access: {enabled: false}}
admin: {allow_loopback: true}
lifecycle: {drain_period: 10ms, shutdown_timeout: 5s}
auth:
  jwt:
    issuer: hedge-test
    audience: [play.edge.test]
    keys: [{id: k1, alg: HS256, secret: "` + moneySecret + `"}]
ledger:
  probe: {enabled: {{PROBE}}, interval: 50ms, timeout: 40ms, fall: 1}
routes:
  - name: bets
    kind: ledger
    match: {path_prefix: /api/bets, methods: [POST]}
    rewrite: /bets
    money: {timeout: 300ms}
  - name: balance
    kind: ledger
    match: {path_prefix: /api/wallet/balance, methods: [GET]}
    rewrite: /balance
regions:
  - name: sea
    nodes:
      - name: sea-1
        listeners: [{name: public, address: "{{EDGE}}", tls: {mode: off}}]
        admin: {address: "{{ADMIN}}"}
    writers:
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
	l := sim.NewLedger(sim.LedgerSettings{Domain: domain, Epoch: epoch, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
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

func token(t *testing.T, sub, domain string) string {
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
	if resp, body := f.bet(t, tok, "p-1", bet); resp.StatusCode != 201 {
		t.Fatalf("probed writer: want 201, got %d %s", resp.StatusCode, body)
	}
	// The sea ledger steps down: no writer left for sea → fail closed.
	do(t, "POST", "http://"+f.seaAddr+"/admin/role", "", `{"role":"replica"}`)
	waitUntil(t, "domain sea without a writer", 2*time.Second, func() bool {
		_, body := f.bet(t, tok, "p-2", bet)
		return strings.Contains(body, "writer-unavailable")
	})
	resp, body := f.bet(t, tok, "p-2", bet)
	wantProblem(t, resp, body, 503, "writer-unavailable")
	do(t, "POST", "http://"+f.seaAddr+"/admin/role", "", `{"role":"writer","epoch":2}`)
	waitUntil(t, "sea writer back at epoch 2", 2*time.Second, func() bool {
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
	if resp, body := betOn("after"); resp.StatusCode != 201 || !strings.Contains(body, `"epoch":1`) {
		t.Fatalf("bet after promotion: %d %s", resp.StatusCode, body)
	}
	if applied(sea2)["player-1/after"] != 1 || applied(sea1)["player-1/after"] != 0 {
		t.Fatalf("after promotion the bet must go to the new writer only: new %v, old %v", applied(sea2), applied(sea1))
	}
	if resp, _ := do(t, "POST", e.admin+"/admin/ledger/promotions/"+pr.ID+"/approve", "", "", bob...); resp.StatusCode != 422 {
		t.Fatalf("approving twice: want 422, got %d", resp.StatusCode)
	}
	trail, err := os.ReadFile(filepath.Join(filepath.Dir(e.file), "audit", "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range []string{`"event":"ledger_promotion_requested"`, `"event":"ledger_promotion_approved"`, `"event":"ledger_designation"`, `"source":"promotion"`} {
		if !strings.Contains(string(trail), ev) {
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
	waitUntil(t, "heavy route shed", 2*time.Second, func() bool {
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
	waitUntil(t, "heavy route back after recovery", 3*time.Second, func() bool {
		resp, _ := post("/api/missions", "m-2")
		return resp.StatusCode == 201
	})
}
