package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
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
	trail, err := os.ReadFile(e.path("audit", "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(trail), `"requested_by":"alice"`) || !strings.Contains(string(trail), `"approved_by":"bob"`) {
		t.Errorf("audit log: want the promotion requested by alice and approved by bob:\n%s", trail)
	}
	for _, secret := range []string{aliceToken, bobToken} {
		if strings.Contains(string(trail), secret) {
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
	waitUntil(t, "the unapproved promotion leaves the list", 3*time.Second, func() bool { return len(list()) == 0 })
	if code, body := promotionCall(t, e, "/admin/ledger/promotions/"+pr.ID+"/approve", "", bobToken); code != 404 {
		t.Errorf("approving an expired promotion: want 404, got %d %s", code, body)
	}
	trail, _ := os.ReadFile(e.path("audit", "audit.log"))
	if !strings.Contains(string(trail), `"event":"ledger_promotion_expired"`) || !strings.Contains(string(trail), `"id":"`+pr.ID+`"`) {
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
