package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hedge/gateway/ledger"
	"hedge/internal/sim"
	"hedge/internal/testkit"
)

// promotionEdge runs moneyConfig's sea node with two sea writers (the
// second at epoch 0, the one to promote), the role tokens of the admin
// tests and the given promotion window.
func promotionEdge(t *testing.T, window string) (e *testEdge, sea2Addr string) {
	t.Helper()
	_, sea1Addr := startLedger(t, "sea", 1, "")
	_, sea2Addr = startLedger(t, "sea", 1, "")
	_, euAddr := startLedger(t, "eu", 1, "")
	cfg := strings.Replace(moneyConfig, "admin: {allow_loopback: true}", adminTokens("allow_loopback: true"), 1)
	cfg = strings.Replace(cfg, `      - {domain: sea, url: "http://{{SEA}}", epoch: 1}`,
		`      - {domain: sea, url: "http://{{SEA}}", epoch: 1}
      - {domain: sea, url: "http://{{SEA2}}", epoch: 0}`, 1)
	cfg = strings.Replace(cfg, "ledger:\n", "ledger:\n  promotion: {window: "+window+"}\n", 1)
	tokenFile := writeTemp(t, "ops.token", opsToken)
	e = startEdgeNode(t, cfg, "sea", "sea-1", "{{SEA}}", sea1Addr, "{{SEA2}}", sea2Addr, "{{EU}}", euAddr,
		"{{PROBE}}", "false", "{{OPSFILE}}", tokenFile)
	return e, sea2Addr
}

func promotionCall(t *testing.T, e *testEdge, path, body, token string) (int, string) {
	t.Helper()
	hdr := []string{}
	if token != "" {
		hdr = []string{"Authorization", "Bearer " + token}
	}
	resp, b := do(t, "POST", e.admin+path, "", body, hdr...)
	return resp.StatusCode, b
}

// TestFourEyesNeedsTwoPromoters: only tokens holding promote take part, and
// the two must be different tokens; who did what is named in the answer,
// the list and the audit log, never the tokens.
func TestFourEyesNeedsTwoPromoters(t *testing.T) {
	e, sea2 := promotionEdge(t, "5m")
	req := `{"domain":"sea","url":"http://` + sea2 + `","epoch":2,"reason":"drill"}`
	for _, c := range []struct {
		who, token string
		status     int
	}{
		{"loopback without a token", "", 403},
		{"a read-only token (the scraper)", scraperToken, 403},
		{"an operator without promote", opsToken, 403},
	} {
		if code, body := promotionCall(t, e, "/admin/ledger/promotions", req, c.token); code != c.status || !strings.Contains(body, "admin-role-missing") {
			t.Errorf("a promotion requested by %s: want %d admin-role-missing, got %d %s", c.who, c.status, code, body)
		}
	}
	code, body := promotionCall(t, e, "/admin/ledger/promotions", req, aliceToken)
	var pr Promotion
	if json.Unmarshal([]byte(body), &pr); code != 202 || pr.RequestedBy != "alice" {
		t.Fatalf("alice requests: want 202 requested_by alice, got %d %s", code, body)
	}
	approve := "/admin/ledger/promotions/" + pr.ID + "/approve"
	for _, c := range []struct {
		who, token, slug string
	}{
		{"the scraper", scraperToken, "admin-role-missing"},
		{"an operator without promote", opsToken, "admin-role-missing"},
		{"loopback without a token", "", "admin-role-missing"},
		{"alice herself", aliceToken, "forbidden"},
	} {
		if code, body := promotionCall(t, e, approve, "", c.token); code != 403 || !strings.Contains(body, c.slug) {
			t.Errorf("approval by %s: want 403 %s, got %d %s", c.who, c.slug, code, body)
		}
	}
	code, body = promotionCall(t, e, approve, "", bobToken)
	if code != 200 || !strings.Contains(body, `"approved_by": "bob"`) || !strings.Contains(body, `"state": "designated"`) {
		t.Fatalf("approval by bob: want 200 designated, approved by bob, got %d %s", code, body)
	}
	trail := e.auditTrail(t)
	if !strings.Contains(trail, `"requested_by":"alice"`) || !strings.Contains(trail, `"approved_by":"bob"`) {
		t.Errorf("audit log: want the promotion requested by alice and approved by bob:\n%s", trail)
	}
	for _, secret := range []string{aliceToken, bobToken} {
		if strings.Contains(trail, secret) {
			t.Errorf("a token appears in the audit log")
		}
	}
}

// TestPromotionsArePrunedAndBounded: a promotion left unapproved past the
// window leaves the list (audited as expired) and cannot be approved; no
// more than maxPendingPromotions wait at once.
func TestPromotionsArePrunedAndBounded(t *testing.T) {
	e, sea2 := promotionEdge(t, "300ms")
	req := `{"domain":"sea","url":"http://` + sea2 + `","epoch":2,"reason":"drill"}`
	code, body := promotionCall(t, e, "/admin/ledger/promotions", req, aliceToken)
	var pr Promotion
	if json.Unmarshal([]byte(body), &pr); code != 202 {
		t.Fatalf("request: %d %s", code, body)
	}
	list := func() []Promotion {
		resp, body := do(t, "GET", e.admin+"/admin/ledger/promotions", "", "", "Authorization", "Bearer "+scraperToken)
		var l struct{ Promotions []Promotion }
		if err := json.Unmarshal([]byte(body), &l); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("list: %d %v %s", resp.StatusCode, err, body)
		}
		return l.Promotions
	}
	if l := list(); len(l) != 1 || l[0].ID != pr.ID || l[0].Status != "pending" {
		t.Fatalf("list: want the one pending promotion, got %+v", l)
	}
	testkit.WaitUntil(t, "the unapproved promotion leaves the list", 3*time.Second, func() bool { return len(list()) == 0 })
	if code, body := promotionCall(t, e, "/admin/ledger/promotions/"+pr.ID+"/approve", "", bobToken); code != 404 {
		t.Errorf("approving an expired promotion: want 404, got %d %s", code, body)
	}
	trail := e.auditTrail(t)
	if !strings.Contains(trail, `"event":"ledger_promotion_expired"`) || !strings.Contains(trail, `"id":"`+pr.ID+`"`) {
		t.Errorf("audit log: want the promotion recorded as expired:\n%s", trail)
	}

	// The bound: requests within one window, faster than they expire.
	rewriteConfig(t, e, "promotion: {window: 300ms}", "promotion: {window: 5m}")
	if resp, body := do(t, "POST", e.admin+"/admin/reload", "", "", "Authorization", "Bearer "+opsToken); resp.StatusCode != 200 {
		t.Fatalf("reload: %d %s", resp.StatusCode, body)
	}
	for i := range maxPendingPromotions {
		if code, body := promotionCall(t, e, "/admin/ledger/promotions", strings.Replace(req, "drill", fmt.Sprint("drill ", i), 1), aliceToken); code != 202 {
			t.Fatalf("pending promotion %d: want 202, got %d %s", i+1, code, body)
		}
	}
	code, body = promotionCall(t, e, "/admin/ledger/promotions", req, aliceToken)
	if code != 422 || !strings.Contains(body, "promotions are already pending") {
		t.Fatalf("promotion %d: want 422 naming the bound, got %d %s", maxPendingPromotions+1, code, body)
	}
	if n := len(list()); n != maxPendingPromotions {
		t.Fatalf("list: want %d pending, got %d", maxPendingPromotions, n)
	}
}

// crossNodeConfig: two regions, nodes sea-1, eu-1 and eu-2, each run as a
// Gateway of its own with its own data directory (as separate processes
// would be); ledger domain sea has its writer W1 in sea and its replica W2
// in eu, each with its own admin token. Probes run at the default interval.
const crossNodeConfig = quietHead + `{{ADMINTOKENS}}
lifecycle: {drain_period: 10ms, shutdown_timeout: 5s}
` + testJWT + `ledger:
  probe: {enabled: true, timeout: 200ms, fall: 2}
routes:
` + betsRoute + `    money: {timeout: 2s}
regions:
  - name: sea
    nodes:
      - name: sea-1
        listeners: [{name: public, address: "{{SEA1}}", tls: {mode: off}}]
        admin: {address: "{{SEA1ADMIN}}"}
    writers:
      - {domain: sea, url: "http://{{W1}}", epoch: 1, admin_token_file: "{{W1TOKEN}}"}
  - name: eu
    nodes:
      - name: eu-1
        listeners: [{name: public, address: "{{EU1}}", tls: {mode: off}}]
        admin: {address: "{{EU1ADMIN}}"}
      - name: eu-2
        listeners: [{name: public, address: "{{EU2}}", tls: {mode: off}}]
        admin: {address: "{{EU2ADMIN}}"}
    writers:
      - {domain: sea, url: "http://{{W2}}", epoch: 0, admin_token_file: "{{W2TOKEN}}"}
`

// TestPromotionReachesEveryNode: W1, the writer of domain sea, dies; a
// four-eyes promotion of its replica W2 is approved on sea-1. It is
// carried out at W2 (its own admin API), so eu-1, another gateway with
// another data directory, designates W2 within a second too, by probing;
// eu-2, started afterwards, designates W2 from its first probes. Each node
// leaves an audit record of the change naming its source, and a bet W1
// acknowledged before it died is replayed by W2, not applied again.
func TestPromotionReachesEveryNode(t *testing.T) {
	dir := t.TempDir()
	// A writer and its replica share one admin token: the writer presents
	// it with every shipment of bets.
	const pairToken = "sea-pair-admin-0123456789abcdef0123"
	w1Token, w2Token := filepath.Join(dir, "w1.token"), filepath.Join(dir, "w2.token")
	writeFile(t, w1Token, pairToken)
	writeFile(t, w2Token, pairToken+"\n")
	w2 := sim.NewLedger(sim.LedgerSettings{Domain: "sea", Role: sim.RoleReplica, AdminToken: pairToken, KeepReceipts: true, Logger: quiet})
	w2Addr := serveLedger(t, w2)
	w1 := sim.NewLedger(sim.LedgerSettings{Domain: "sea", AdminToken: pairToken, KeepReceipts: true, Logger: quiet,
		Replicas: []string{"http://" + w2Addr}})
	w1Addr := serveLedger(t, w1)
	w1URL, w2URL := "http://"+w1Addr, "http://"+w2Addr

	opsFile := filepath.Join(dir, "ops.token")
	os.WriteFile(opsFile, []byte(opsToken), 0o600)
	addrs := map[string]string{}
	for _, k := range []string{"SEA1", "SEA1ADMIN", "EU1", "EU1ADMIN", "EU2", "EU2ADMIN"} {
		addrs[k] = testkit.FreeAddr(t)
	}
	// node starts one node as a gateway of its own: its own data directory
	// and configuration file, with {{EDGE}} and {{ADMIN}} its addresses.
	node := func(region, name, edgeKey string) *testEdge {
		tmpl := crossNodeConfig
		for k, v := range addrs {
			if k == edgeKey {
				v = "{{EDGE}}"
			} else if k == edgeKey+"ADMIN" {
				v = "{{ADMIN}}"
			}
			tmpl = strings.ReplaceAll(tmpl, "{{"+k+"}}", v)
		}
		tmpl = strings.Replace(tmpl, "{{ADMINTOKENS}}", adminTokens("allow_loopback: true"), 1)
		return startEdgeNode(t, tmpl, region, name, "{{W1}}", w1Addr, "{{W2}}", w2Addr, "{{W1TOKEN}}", w1Token, "{{W2TOKEN}}", w2Token, "{{OPSFILE}}", opsFile)
	}
	designation := func(e *testEdge) *ledger.Designation { return e.g.Nodes()[0].state.Load().directory.Lookup("sea") }
	is := func(e *testEdge, url string, epoch int64) bool {
		d := designation(e)
		return d.OK() && d.Writer.URL == url && d.Writer.Epoch == epoch
	}
	sea1, eu1 := node("sea", "sea-1", "SEA1"), node("eu", "eu-1", "EU1")
	for _, e := range []*testEdge{sea1, eu1} {
		testkit.WaitUntil(t, "W1 designated at epoch 1 before the fault", 3*time.Second, func() bool { return is(e, w1URL, 1) })
	}

	// A player of domain sea bets through the eu edge: W1 applies it, W2
	// holds it before the answer (synchronous replication).
	tok := token(t, "player-1", "sea")
	betVia := func(e *testEdge, key string) (*http.Response, string) {
		return do(t, "POST", e.url+"/api/bets", "", bet, "Authorization", "Bearer "+tok, "Idempotency-Key", key, "Content-Type", "application/json")
	}
	resp, first := betVia(eu1, "before-the-fault")
	if resp.StatusCode != 201 || !strings.Contains(first, `"epoch":1`) {
		t.Fatalf("bet before the fault: want 201 from W1 at epoch 1, got %d %s", resp.StatusCode, first)
	}
	w1.Close()

	code, body := promotionCall(t, sea1, "/admin/ledger/promotions", `{"domain":"sea","url":"`+w2URL+`","epoch":2,"reason":"sea writer lost"}`, aliceToken)
	var pr Promotion
	if json.Unmarshal([]byte(body), &pr); code != 202 {
		t.Fatalf("alice requests W2's promotion on sea-1: want 202, got %d %s", code, body)
	}
	code, body = promotionCall(t, sea1, "/admin/ledger/promotions/"+pr.ID+"/approve", "", bobToken)
	approved := time.Now()
	if code != 200 {
		t.Fatalf("bob approves on sea-1: want 200, got %d %s", code, body)
	}
	if got := w2.Receipts(); len(got) != 1 || got[0].Outcome != sim.ReceiptImported {
		t.Errorf("W2's receipts: want the one bet imported from W1, got %+v", got)
	}
	for _, e := range []struct {
		name string
		edge *testEdge
	}{{"sea-1 (approved here)", sea1}, {"eu-1 (another gateway)", eu1}} {
		testkit.WaitUntil(t, e.name+" designates W2 at epoch 2", 5*time.Second, func() bool { return is(e.edge, w2URL, 2) })
		lag := designation(e.edge).Since.Sub(approved)
		if lag > time.Second {
			t.Errorf("%s designated W2 %s after the approval: want within 1s", e.name, lag)
		}
		t.Logf("%s designated W2 %s after the approval returned", e.name, lag.Round(time.Millisecond))
	}

	// A node started afterwards learns it from its first probes.
	eu2 := node("eu", "eu-2", "EU2")
	testkit.WaitUntil(t, "eu-2, started after the promotion, designates W2 at epoch 2", 2*time.Second, func() bool { return is(eu2, w2URL, 2) })

	// The acknowledged bet, retried through an edge that never saw it,
	// reaches W2, which replays W1's answer: no second debit.
	resp, again := betVia(eu2, "before-the-fault")
	if resp.StatusCode != 201 || resp.Header.Get("Idempotent-Replayed") != "true" || again != first {
		t.Errorf("retry of the acknowledged bet at the promoted writer: want W1's 201 replayed, got %d replayed=%q %s",
			resp.StatusCode, resp.Header.Get("Idempotent-Replayed"), again)
	}
	if resp, body := betVia(eu1, "after-the-promotion"); resp.StatusCode != 201 || !strings.Contains(body, `"epoch":2`) {
		t.Errorf("a new bet through eu-1: want 201 from W2 at epoch 2, got %d %s", resp.StatusCode, body)
	}

	for _, e := range []struct {
		name, source string
		edge         *testEdge
	}{{"sea-1", "promotion", sea1}, {"eu-1", "probe", eu1}, {"eu-2", "probe", eu2}} {
		trail := e.edge.auditTrail(t)
		found := false
		for _, line := range strings.Split(strings.TrimSpace(trail), "\n") {
			var rec struct {
				Event, Node, Source string
				State               ledger.State
				Writer, Previous    ledger.Writer
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Event == "ledger_designation" && rec.State == ledger.Designated &&
				rec.Writer.URL == w2URL && rec.Writer.Epoch == 2 && rec.Node == e.name {
				found = true
				if rec.Source != e.source || rec.Previous.URL != w1URL || rec.Previous.Epoch != 1 {
					t.Errorf("%s's audit record of W2's designation: want source %s, previous W1 at epoch 1, got %s", e.name, e.source, line)
				}
			}
		}
		if !found {
			t.Errorf("%s's audit log: want a ledger_designation record of W2 at epoch 2, got:\n%s", e.name, trail)
		}
	}
}
