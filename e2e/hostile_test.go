package e2e

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hedge/internal/testkit"
	"hedge/stream/streamtest"
)

// The hostile-client suite: a player with a valid token of their own, the
// README in hand and a raw socket, against the real binary — headers that
// name another account, one key in two spellings through two edges, two
// keys, Connection: Idempotency-Key, smuggled subjects, a refused bet
// retried, a deposit whose outcome is unknown, request smuggling, argument
// floods, session floods, someone else's stream session, and an admin
// token used beyond its role. Every case checks the answer and what the
// writers and rails hold afterwards: money applied once, to the right
// account, or not at all.

const hostileSecret = "hostile-e2e-secret-0123456789abcdef0123"

// hostileConfig: regions sea and eu, one edge each, served by one `hedge
// serve`; each domain's writer is a `hedge ledgersim` process of the
// test's that keeps receipts; the cashier's two rails run inside serve.
// The protective layer runs as in the demo.
const hostileConfig = `deployment: hostile
data_dir: "{{DATA}}"
log: {level: info, format: text, access: {enabled: false}}
admin:
  allow_loopback: true
  tokens:
    - {name: prometheus, token: hostile-prometheus-3f9c2a71b6d04e58a1c7, roles: [read]}
    - {name: alice, token: hostile-alice-8b1e4d92c7a35f06e2d9b4a1, roles: [read, operate, promote]}
lifecycle: {drain_period: 100ms, shutdown_timeout: 2s}
auth:
  jwt:
    issuer: hedge-e2e
    audience: [play.edge.test]
    keys: [{id: k1, alg: HS256, secret: "` + hostileSecret + `"}]
waf: {mode: block, paranoia_level: 1}
routes:
  - name: bets
    kind: ledger
    match: {path_prefix: /api/bets, methods: [POST]}
    rewrite: /bets
    max_body_bytes: 16KiB
    schema: builtin:bet
    money: {timeout: 2s}
  - name: balance
    kind: ledger
    match: {path_prefix: /api/wallet/balance, methods: [GET]}
    rewrite: /balance
  - name: cashier
    match: {path_prefix: /cashier/deposit, methods: [POST]}
    pool: cashier
    auth: jwt
    idempotency: required
    schema: builtin:cashier-deposit
    limits: {content_types: [application/json]}
  - name: live
    kind: stream
    match: {path_prefix: /live/}
    max_body_bytes: 64KiB
streams:
  studios:
    - {name: studio-a, token: studio-a-token-0123456789abcdef}
    - {name: studio-b, token: studio-b-token-0123456789abcdef}
  ice: {udp_port: {{ICE}}}
regions:
  - name: sea
    nodes:
      - name: sea-1
        listeners: [{name: public, address: "{{SEA}}", tls: {mode: "off"}}]
        admin: {address: "{{SEAADMIN}}"}
    # Both regions use the same two rails (a YAML anchor, shared below).
    pools: &rails
      - name: cashier
        policy: failover
        members: [{name: rail-a, url: "http://{{RAILA}}"}, {name: rail-b, url: "http://{{RAILB}}"}]
        health: {interval: 100ms, timeout: 80ms, rise: 1, fall: 1}
        timeouts: {connect: 500ms, response: 1s}
    writers: [{domain: sea, url: "http://{{SEAW}}", epoch: 1}]
  - name: eu
    nodes:
      - name: eu-1
        listeners: [{name: public, address: "{{EU}}", tls: {mode: "off"}}]
        admin: {address: "{{EUADMIN}}"}
    pools: *rails
    writers: [{domain: eu, url: "http://{{EUW}}", epoch: 1}]
dev:
  rails:
    - {name: rail-a, address: "{{RAILA}}"}
    - {name: rail-b, address: "{{RAILB}}"}
`

type hostileEnv struct {
	dir               string
	sea, eu           string // edge base URLs
	seaAdmin, euAdmin string
	seaW, euW         string // writer addresses
	railA, railB      string // rail addresses
	serve             *proc
	client            *http.Client
}

func startHostileEnv(t *testing.T) *hostileEnv {
	t.Helper()
	e := &hostileEnv{dir: t.TempDir(), client: &http.Client{Timeout: 10 * time.Second}}
	e.seaW, e.euW = testkit.FreeAddr(t), testkit.FreeAddr(t)
	startHedge(t, "ledgersim sea", e.dir, "ledgersim", "-listen", e.seaW, "-domain", "sea", "-receipts")
	startHedge(t, "ledgersim eu", e.dir, "ledgersim", "-listen", e.euW, "-domain", "eu", "-receipts", "-balance", "10.00")
	// Each node takes ICE on its listener's host: two hosts, one port.
	sea, eu, seaAdmin, euAdmin := testkit.FreeAddrOn(t, "127.0.77.1"), testkit.FreeAddrOn(t, "127.0.77.2"), testkit.FreeAddr(t), testkit.FreeAddr(t)
	e.railA, e.railB = testkit.FreeAddr(t), testkit.FreeAddr(t)
	cfg := strings.NewReplacer("{{DATA}}", filepath.Join(e.dir, "data"), "{{SEA}}", sea, "{{EU}}", eu, "{{ICE}}", testkit.FreeUDPPort(t, "127.0.77.1", "127.0.77.2"),
		"{{SEAADMIN}}", seaAdmin, "{{EUADMIN}}", euAdmin, "{{SEAW}}", e.seaW, "{{EUW}}", e.euW,
		"{{RAILA}}", e.railA, "{{RAILB}}", e.railB).Replace(hostileConfig)
	file := filepath.Join(e.dir, "hedge.yaml")
	writeFile(t, file, cfg)
	e.serve = startHedge(t, "hedge serve", e.dir, "serve", "-c", file)
	e.sea, e.eu, e.seaAdmin, e.euAdmin = "http://"+sea, "http://"+eu, "http://"+seaAdmin, "http://"+euAdmin
	for _, admin := range []string{e.seaAdmin, e.euAdmin} {
		testkit.WaitFor(t, e.serve, "hedge serve ready: "+admin+"/healthz answers 200", 30*time.Second, 50*time.Millisecond, answers200(quickClient, admin+"/healthz"))
	}
	for _, w := range []string{e.seaW, e.euW} {
		testkit.WaitFor(t, nil, "ledgersim "+w+" ready", 10*time.Second, 50*time.Millisecond, answers200(quickClient, "http://"+w+"/healthz"))
	}
	return e
}

// hostileToken signs an HS256 token for sub with the configuration's key,
// as the platform's identity provider would: the subject is whatever the
// provider put there, bytes a command line cannot carry included.
func hostileToken(sub string) string { return hostileTokenWithDomain(sub, "") }

// hostileTokenWithDomain also names a ledger domain (claim ledger_domain)
// unless d is empty.
func hostileTokenWithDomain(sub, d string) string {
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	now := time.Now().Unix()
	claims := map[string]any{"sub": sub, "iss": "hedge-e2e", "aud": "play.edge.test", "iat": now, "exp": now + 3600}
	if d != "" {
		claims["ledger_domain"] = d
	}
	signing := enc(map[string]any{"alg": "HS256", "typ": "JWT", "kid": "k1"}) + "." + enc(claims)
	mac := hmac.New(sha256.New, []byte(hostileSecret))
	mac.Write([]byte(signing))
	return signing + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

const hostileBet = `{"table":"bacc-07","amount":"12.50","currency":"EUR","selection":"banker"}`

// bet places hostileBet through edge with tok and key, plus hdr.
func (e *hostileEnv) bet(t *testing.T, edge, tok, key string, hdr ...string) httpResult {
	t.Helper()
	h := append([]string{"Authorization", "Bearer " + tok, "Content-Type", "application/json", "Idempotency-Key", key}, hdr...)
	return do(t, e.client, "POST", edge+"/api/bets", hostileBet, h...)
}

// writerBalance asks a writer directly, as its operators would, for an
// account's balance.
func (e *hostileEnv) writerBalance(t *testing.T, writer, account string) string {
	t.Helper()
	r := do(t, quickClient, "GET", "http://"+writer+"/balance", "", "X-Hedge-Principal", account)
	var b struct{ Balance string }
	decodeJSON(t, "writer balance", r.body, &b)
	return b.Balance
}

type receipt struct {
	Key       string `json:"key"`
	RawKey    string `json:"raw_key"`
	Account   string `json:"account"`
	Outcome   string `json:"outcome"`
	Problem   string `json:"problem"`
	RequestID string `json:"request_id"`
}

// writerReceipts lists every bet request a writer received.
func (e *hostileEnv) writerReceipts(t *testing.T, writer string) []receipt {
	t.Helper()
	r := do(t, quickClient, "GET", "http://"+writer+"/receipts", "")
	var v struct{ Receipts []receipt }
	decodeJSON(t, "writer receipts", r.body, &v)
	return v.Receipts
}

func receiptsFor(rs []receipt, key string) []receipt {
	var out []receipt
	for _, r := range rs {
		if r.Key == key {
			out = append(out, r)
		}
	}
	return out
}

type deposit struct {
	Key     string `json:"key"`
	Account string `json:"account"`
	Count   int    `json:"count"`
}

// railDeposits lists the keyed deposits a rail booked.
func (e *hostileEnv) railDeposits(t *testing.T, rail, key string) []deposit {
	t.Helper()
	r := do(t, quickClient, "GET", "http://"+rail+"/deposits", "")
	var v struct{ Deposits []deposit }
	decodeJSON(t, "rail deposits", r.body, &v)
	var out []deposit
	for _, d := range v.Deposits {
		if d.Key == key {
			out = append(out, d)
		}
	}
	return out
}

func problemSlug(body string) string {
	var p struct{ Type string }
	json.Unmarshal([]byte(body), &p)
	return strings.TrimPrefix(p.Type, "urn:hedge:problem:")
}

func TestHostileClients(t *testing.T) {
	e := startHostileEnv(t)
	mallory := hostileToken("mallory")
	seaAddr := strings.TrimPrefix(e.sea, "http://")

	t.Run("headers cannot name another account, domain or epoch", func(t *testing.T) {
		hostile := []string{"Ledger-Account", "victim-1", "X-Hedge-Principal", "victim-1", "Hedge-Principal", "victim-1",
			"Ledger-Domain", "eu", "Ledger-Epoch", "0", "X-Account", "victim-1"}
		r := e.bet(t, e.sea, mallory, "acct-1", hostile...)
		if r.status != 201 || !strings.Contains(r.body, `"account":"mallory"`) || !strings.Contains(r.body, `"domain":"sea"`) {
			t.Fatalf("a bet naming victim-1 in every header it could: want 201 booked to mallory in sea, got %v", r)
		}
		read := do(t, e.client, "GET", e.sea+"/api/wallet/balance", "", append([]string{"Authorization", "Bearer " + mallory}, hostile...)...)
		if !strings.Contains(read.body, `"account":"mallory"`) {
			t.Errorf("a balance read naming victim-1: want mallory's own, got %v", read)
		}
		if b := e.writerBalance(t, e.seaW, "victim-1"); b != "1000.00" {
			t.Errorf("victim-1's balance at the sea writer: want 1000.00 untouched, got %s", b)
		}
		if b := e.writerBalance(t, e.seaW, "mallory"); b != "987.50" {
			t.Errorf("mallory's balance at the sea writer: want 987.50, got %s", b)
		}
		if rs := receiptsFor(e.writerReceipts(t, e.euW), "acct-1"); len(rs) != 0 {
			t.Errorf("Ledger-Domain: eu was believed: the eu writer received %+v", rs)
		}
	})

	t.Run("one key in two spellings through two edges is one bet", func(t *testing.T) {
		// alice's domain is sea (her token names none; sea's edge uses
		// region sea's), so a bet through eu's edge needs a domain claim:
		// use one token naming sea for both.
		alice := hostileTokenWithDomain("alice", "sea")
		first := e.bet(t, e.sea, alice, `"spell-1"`)
		second := e.bet(t, e.eu, alice, `spell-1`)
		if first.status != 201 || second.status != 201 {
			t.Fatalf("the same bet through sea then eu: want 201 twice, got %v and %v", first, second)
		}
		rs := receiptsFor(e.writerReceipts(t, e.seaW), "spell-1")
		if len(rs) != 2 || rs[0].RawKey != `"spell-1"` || rs[1].RawKey != `"spell-1"` {
			t.Fatalf("the writer must see one spelling from both edges: got %+v", rs)
		}
		if rs[0].Outcome != "applied" || rs[1].Outcome != "replayed" {
			t.Errorf("want applied then replayed at the writer, got %s then %s", rs[0].Outcome, rs[1].Outcome)
		}
		if b := e.writerBalance(t, e.seaW, "alice"); b != "987.50" {
			t.Errorf("alice's balance: want 987.50 (one debit), got %s", b)
		}
	})

	t.Run("two key headers are refused", func(t *testing.T) {
		raw := "POST /api/bets HTTP/1.1\r\nHost: play.edge.test\r\nAuthorization: Bearer " + mallory +
			"\r\nContent-Type: application/json\r\nIdempotency-Key: dup-1\r\nIdempotency-Key: dup-2\r\nContent-Length: " +
			fmt.Sprint(len(hostileBet)) + "\r\n\r\n" + hostileBet
		resp, body, _ := testkit.RawExchange(t, seaAddr, raw, false)
		if resp.StatusCode != 400 || problemSlug(body) != "idempotency-key-malformed" {
			t.Fatalf("two Idempotency-Key headers: want 400 idempotency-key-malformed, got %d %s", resp.StatusCode, body)
		}
		all := e.writerReceipts(t, e.seaW)
		if len(receiptsFor(all, "dup-1"))+len(receiptsFor(all, "dup-2")) != 0 {
			t.Errorf("a request with two keys reached the writer")
		}
	})

	t.Run("Connection cannot strip the key", func(t *testing.T) {
		for i, edge := range []string{seaAddr, strings.TrimPrefix(e.eu, "http://")} {
			body := `{"amount":"50.00","currency":"EUR"}`
			raw := "POST /cashier/deposit HTTP/1.1\r\nHost: play.edge.test\r\nAuthorization: Bearer " + mallory +
				"\r\nContent-Type: application/json\r\nIdempotency-Key: conn-1\r\nConnection: Idempotency-Key\r\nContent-Length: " +
				fmt.Sprint(len(body)) + "\r\n\r\n" + body + "GET /api/wallet/balance HTTP/1.1\r\nHost: play.edge.test\r\nAuthorization: Bearer " + mallory + "\r\n\r\n"
			resp, b, closed := testkit.RawExchange(t, edge, raw, true)
			if resp.StatusCode != 400 || problemSlug(b) != "connection-names-protected-header" || !closed {
				t.Fatalf("edge %d, Connection: Idempotency-Key: want 400 connection-names-protected-header and the connection closed, got %d %s (closed %v)", i, resp.StatusCode, b, closed)
			}
		}
		if n := len(e.railDeposits(t, e.railA, "conn-1")) + len(e.railDeposits(t, e.railB, "conn-1")); n != 0 {
			t.Fatalf("deposits booked for conn-1: %d, want none", n)
		}
	})

	t.Run("a subject cannot smuggle another", func(t *testing.T) {
		for _, sub := range []string{"mallory;sub=victim-3", "victim-3,mallory", "victim-3\x00x", "victim-3\r\nX: y", "vïctim-3"} {
			r := e.bet(t, e.sea, hostileToken(sub), "smuggle-1")
			if r.status != 401 || problemSlug(r.body) != "invalid-token" {
				t.Errorf("subject %q: want 401 invalid-token, got %v", sub, r)
			}
		}
		if rs := receiptsFor(e.writerReceipts(t, e.seaW), "smuggle-1"); len(rs) != 0 {
			t.Errorf("a smuggled subject reached the writer: %+v", rs)
		}
		if b := e.writerBalance(t, e.seaW, "victim-3"); b != "1000.00" {
			t.Errorf("victim-3's balance: want 1000.00, got %s", b)
		}
	})

	t.Run("a refused bet is not stored", func(t *testing.T) {
		// eu's writer starts every account at 10.00: a 12.50 bet is refused
		// with 422, and the player's retry with the key reaches it again.
		bob := hostileTokenWithDomain("bob", "eu")
		for i := range 2 {
			r := e.bet(t, e.eu, bob, "funds-1")
			if r.status != 422 || problemSlug(r.body) != "insufficient-funds" || r.header.Get("Idempotent-Replayed") != "" {
				t.Fatalf("attempt %d: want the writer's 422 insufficient-funds, not a replay, got %v", i+1, r)
			}
		}
		if rs := receiptsFor(e.writerReceipts(t, e.euW), "funds-1"); len(rs) != 2 {
			t.Fatalf("the retry of a refused bet must reach the writer: it received %d", len(rs))
		}
	})

	t.Run("a deposit whose outcome is unknown stays with its rail", func(t *testing.T) {
		slow := func(d string) {
			if r := do(t, quickClient, "POST", "http://"+e.railA+"/admin/faults", `{"delay":"`+d+`"}`); r.status != 200 {
				t.Fatalf("rail-a faults: %v", r)
			}
		}
		depositVia := func(edge string) httpResult {
			return do(t, e.client, "POST", edge+"/cashier/deposit", `{"amount":"50.00","currency":"EUR"}`,
				"Authorization", "Bearer "+mallory, "Content-Type", "application/json", "Idempotency-Key", "unknown-1")
		}
		slow("3s")
		if r := depositVia(e.sea); r.status != 504 || problemSlug(r.body) != "outcome-unknown" {
			t.Fatalf("a deposit that timed out at rail-a: want 504 outcome-unknown, got %v", r)
		}
		if r := depositVia(e.sea); r.status != 504 {
			t.Fatalf("its retry while rail-a is still slow: want 504 again (rail-a only), got %v", r)
		}
		slow("0s")
		r := depositVia(e.sea)
		if r.status != 200 || !strings.Contains(r.body, `"rail":"rail-a"`) {
			t.Fatalf("the retry once rail-a answers: want rail-a's deposit, got %v", r)
		}
		a, b := e.railDeposits(t, e.railA, "unknown-1"), e.railDeposits(t, e.railB, "unknown-1")
		if len(a) != 1 || len(b) != 0 {
			t.Fatalf("unknown-1: want one deposit, at rail-a; got rail-a %+v, rail-b %+v", a, b)
		}
	})

	t.Run("ambiguous framing is refused and the connection closed", func(t *testing.T) {
		before := len(e.writerReceipts(t, e.seaW))
		smuggled := "POST /api/wallet/balance HTTP/1.1\r\nHost: play.edge.test\r\nAuthorization: Bearer " + mallory + "\r\n\r\n"
		for name, head := range map[string]string{
			"CL with chunked, empty body": "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n",
			"chunked then CL":             "Transfer-Encoding: chunked\r\nContent-Length: 0\r\n",
			"two lengths":                 "Content-Length: 0\r\nContent-Length: 5\r\n",
			"coding other than chunked":   "Transfer-Encoding: gzip\r\n",
		} {
			raw := "POST /api/bets HTTP/1.1\r\nHost: play.edge.test\r\nAuthorization: Bearer " + mallory +
				"\r\nIdempotency-Key: frame-1\r\nContent-Type: application/json\r\n" + head + "\r\n0\r\n\r\n" + smuggled
			resp, body, closed := testkit.RawExchange(t, seaAddr, raw, true)
			if resp.StatusCode != 400 || problemSlug(body) != "bad-framing" || !closed {
				t.Errorf("%s: want 400 bad-framing and the connection closed before the smuggled request, got %d %s (closed %v)", name, resp.StatusCode, body, closed)
			}
		}
		if after := len(e.writerReceipts(t, e.seaW)); after != before {
			t.Errorf("framing refusals reached the writer: %d requests", after-before)
		}
	})

	t.Run("thousands of arguments are refused before the rule engine", func(t *testing.T) {
		var q strings.Builder
		for i := range 500 {
			fmt.Fprintf(&q, "a%d=%d&", i, i)
		}
		start := time.Now()
		r := do(t, e.client, "GET", e.sea+"/api/wallet/balance?"+q.String(), "", "Authorization", "Bearer "+mallory)
		if r.status != 400 || problemSlug(r.body) != "too-many-args" {
			t.Fatalf("a query of 500 arguments: want 400 too-many-args, got %v", r)
		}
		t.Logf("500 arguments refused in %s", time.Since(start).Round(time.Millisecond))
		// 2,000 of them do not fit the listener's header buffer at all.
		q.Reset()
		for i := range 2000 {
			fmt.Fprintf(&q, "a%d=%d&", i, i)
		}
		if r := do(t, e.client, "GET", e.sea+"/api/wallet/balance?"+q.String(), "", "Authorization", "Bearer "+mallory); r.status != 431 && r.status != 414 {
			t.Fatalf("a query of 2,000 arguments: want 431 or 414, got %v", r)
		}
		deep := strings.Repeat(`{"a":`, 40) + `1` + strings.Repeat(`}`, 40)
		r = do(t, e.client, "POST", e.sea+"/cashier/deposit", deep, "Authorization", "Bearer "+mallory, "Content-Type", "application/json", "Idempotency-Key", "deep-1")
		// The cashier's schema (a positive model) or the depth limit stops it.
		if slug := problemSlug(r.body); !(r.status == 400 && slug == "json-too-deep" || r.status == 422 && slug == "schema-violation") {
			t.Fatalf("JSON nested 40 deep: want 400 json-too-deep or 422 schema-violation, got %v", r)
		}
		if n := len(e.railDeposits(t, e.railA, "deep-1")) + len(e.railDeposits(t, e.railB, "deep-1")); n != 0 {
			t.Fatalf("the deep deposit was booked %d times", n)
		}
	})

	t.Run("one address cannot create sessions by the hundred", func(t *testing.T) {
		var statuses []int
		limited := false
		for range 60 {
			r := do(t, e.client, "POST", e.sea+"/live/bacc-99/whep", "v=0 not an offer", "Content-Type", "application/sdp")
			statuses = append(statuses, r.status)
			if r.status == 429 {
				limited = problemSlug(r.body) == "stream-session-rate" && r.header.Get("Retry-After") != ""
				break
			}
		}
		if !limited {
			t.Fatalf("60 WHEP offers from one address: want 429 stream-session-rate with Retry-After before the end, got %v", statuses)
		}
		if statuses[0] == 429 {
			t.Fatalf("the first offer was already refused: %v", statuses)
		}
	})

	t.Run("a session answers only to its own credentials", func(t *testing.T) {
		api := streamtest.DefaultAPI(t)
		pub := streamtest.NewPublisher(t, api)
		offer := streamtest.Offer(t, pub.PC)
		r := do(t, e.client, "POST", e.sea+"/live/bacc-07/whip", offer, "Content-Type", "application/sdp", "Authorization", "Bearer studio-a-token-0123456789abcdef")
		loc := r.header.Get("Location")
		if r.status != 201 || loc == "" {
			t.Fatalf("studio-a publishes bacc-07: want 201 with a Location, got %v", r)
		}
		url := e.sea + loc
		if !strings.HasPrefix(loc, "/") {
			url = loc
		}
		if r := do(t, e.client, "DELETE", url, ""); r.status != 401 {
			t.Errorf("DELETE of studio-a's session without a credential: want 401, got %v", r)
		}
		if r := do(t, e.client, "DELETE", url, "", "Authorization", "Bearer studio-b-token-0123456789abcdef"); r.status != 403 || problemSlug(r.body) != "stream-session-forbidden" {
			t.Errorf("DELETE of studio-a's session by studio-b: want 403 stream-session-forbidden, got %v", r)
		}
		if r := do(t, e.client, "DELETE", url, "", "Authorization", "Bearer studio-a-token-0123456789abcdef"); r.status != 200 {
			t.Errorf("studio-a ends its own session: want 200, got %v", r)
		}
	})

	t.Run("a scraper's token cannot drain or be the second pair of eyes", func(t *testing.T) {
		scraper := []string{"Authorization", "Bearer hostile-prometheus-3f9c2a71b6d04e58a1c7"}
		alice := []string{"Authorization", "Bearer hostile-alice-8b1e4d92c7a35f06e2d9b4a1"}
		if r := do(t, quickClient, "GET", e.seaAdmin+"/metrics", "", scraper...); r.status != 200 {
			t.Fatalf("the scraper reads metrics: want 200, got %v", r)
		}
		if r := do(t, quickClient, "POST", e.seaAdmin+"/admin/drain", "", scraper...); r.status != 403 || problemSlug(r.body) != "admin-role-missing" {
			t.Errorf("the scraper drains the node: want 403 admin-role-missing, got %v", r)
		}
		req := `{"domain":"sea","url":"http://` + e.euW + `","epoch":5,"reason":"hostile: move sea's money to eu's writer"}`
		if r := do(t, quickClient, "POST", e.seaAdmin+"/admin/ledger/promotions", req, scraper...); r.status != 403 {
			t.Errorf("the scraper requests a promotion: want 403, got %v", r)
		}
		r := do(t, quickClient, "POST", e.seaAdmin+"/admin/ledger/promotions", req, alice...)
		var pr struct{ ID string }
		decodeJSON(t, "promotion request", r.body, &pr)
		if r.status != 202 || pr.ID == "" {
			t.Fatalf("alice requests a promotion: want 202, got %v", r)
		}
		for who, hdr := range map[string][]string{"the scraper": scraper, "alice herself": alice, "loopback without a token": nil} {
			if r := do(t, quickClient, "POST", e.seaAdmin+"/admin/ledger/promotions/"+pr.ID+"/approve", "", hdr...); r.status != 403 {
				t.Errorf("%s approves alice's promotion: want 403, got %v", who, r)
			}
		}
		// Nothing moved: sea's bets still go to sea's writer.
		r = e.bet(t, e.sea, mallory, "after-promotion-1")
		if r.status != 201 || len(receiptsFor(e.writerReceipts(t, e.seaW), "after-promotion-1")) != 1 {
			t.Fatalf("after the refused approvals: want the bet at sea's writer, got %v", r)
		}
	})
}
