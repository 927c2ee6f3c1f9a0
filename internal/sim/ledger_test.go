package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const betBody = `{"table":"bacc-07","amount":"12.50","currency":"EUR","selection":"banker"}`

type result struct {
	status int
	header http.Header
	body   []byte
}

// call sends one request and returns what came back; headers are name,
// value pairs (a name given twice is sent twice).
func call(t *testing.T, base, method, path, body string, headers ...string) result {
	t.Helper()
	r, err := send(base, method, path, body, headers...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// sendAtOnce sends n requests with send, released together, and returns
// their results in order.
func sendAtOnce(t *testing.T, n int, send func() (result, error)) []result {
	t.Helper()
	results := make([]result, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			results[i], errs[i] = send()
		})
	}
	close(start)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return results
}

// checkOneApplied checks the answers to requests that all carried one
// Idempotency-Key: every one has status and the same body, and all but
// one are marked as replays.
func checkOneApplied(t *testing.T, results []result, status int) {
	t.Helper()
	fresh := 0
	for i, r := range results {
		if r.status != status {
			t.Fatalf("request %d: expected %d, got %d %s", i, status, r.status, r.body)
		}
		if r.header.Get("Idempotent-Replayed") != "true" {
			fresh++
		}
		if !bytes.Equal(r.body, results[0].body) {
			t.Errorf("request %d body:\nexpected %s\n     got %s", i, results[0].body, r.body)
		}
	}
	if fresh != 1 {
		t.Errorf("answers not marked as replays: expected 1, got %d", fresh)
	}
}

// send is call for goroutines other than the test's, which must not stop
// the test themselves.
func send(base, method, path, body string, headers ...string) (result, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		return result{}, err
	}
	// Requests come from the edge, which always names the principal;
	// a test names another, or none with an empty value.
	req.Header.Set("X-Hedge-Principal", "anonymous")
	set := map[string]bool{}
	for i := 0; i+1 < len(headers); i += 2 {
		name := http.CanonicalHeaderKey(headers[i])
		if !set[name] {
			req.Header.Del(name)
			set[name] = true
		}
		if headers[i+1] != "" {
			req.Header.Add(name, headers[i+1])
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return result{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return result{}, fmt.Errorf("%s %s: read body: %w", method, path, err)
	}
	return result{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

func startLedger(t *testing.T, s LedgerSettings) (*Ledger, string) {
	t.Helper()
	l := NewLedger(s)
	srv := httptest.NewServer(l.Handler())
	t.Cleanup(srv.Close)
	return l, srv.URL
}

// problemType returns the problem type of a problem+json response, or ""
// with a test error when the response is not one.
func problemType(t *testing.T, r result) string {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type: expected application/problem+json, got %q (body %s)", ct, r.body)
		return ""
	}
	var p problem
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Errorf("problem body %s: %v", r.body, err)
		return ""
	}
	if p.Status != r.status {
		t.Errorf("problem status: expected %d (the HTTP status), got %d", r.status, p.Status)
	}
	if p.Title == "" {
		t.Errorf("problem title: expected non-empty, got empty (body %s)", r.body)
	}
	return p.Type
}

func decode[T any](t *testing.T, r result) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
	return v
}

func balanceOf(t *testing.T, base, account string) string {
	t.Helper()
	r := call(t, base, http.MethodGet, "/balance", "", "X-Hedge-Principal", account)
	if r.status != http.StatusOK {
		t.Fatalf("GET /balance: expected 200, got %d %s", r.status, r.body)
	}
	return decode[map[string]any](t, r)["balance"].(string)
}

func TestLedgerBetRejections(t *testing.T) {
	tests := []struct {
		name     string
		settings LedgerSettings
		body     string
		headers  []string
		status   int
		problem  string
	}{
		{"missing key", LedgerSettings{}, betBody, nil, 400, "urn:hedge:problem:missing-idempotency-key"},
		{"key too long", LedgerSettings{}, betBody, []string{"Idempotency-Key", strings.Repeat("k", 256)}, 400, "urn:hedge:problem:malformed-idempotency-key"},
		{"replica", LedgerSettings{Role: RoleReplica}, betBody, []string{"Idempotency-Key", "k1"}, 503, "urn:hedge:problem:not-writer"},
		{"stale epoch", LedgerSettings{Epoch: 3}, betBody, []string{"Idempotency-Key", "k1", "Ledger-Epoch", "2"}, 409, "urn:hedge:problem:stale-epoch"},
		{"bad epoch header", LedgerSettings{}, betBody, []string{"Idempotency-Key", "k1", "Ledger-Epoch", "two"}, 400, "urn:hedge:problem:malformed-epoch"},
		{"not json", LedgerSettings{}, `amount=12.50`, []string{"Idempotency-Key", "k1"}, 400, "urn:hedge:problem:malformed-body"},
		{"empty body", LedgerSettings{}, ``, []string{"Idempotency-Key", "k1"}, 400, "urn:hedge:problem:malformed-body"},
		{"amount as number", LedgerSettings{}, `{"amount":12.5}`, []string{"Idempotency-Key", "k1"}, 400, "urn:hedge:problem:malformed-body"},
		{"amount missing", LedgerSettings{}, `{"table":"t"}`, []string{"Idempotency-Key", "k1"}, 422, "urn:hedge:problem:invalid-amount"},
		{"amount three decimals", LedgerSettings{}, `{"amount":"12.505"}`, []string{"Idempotency-Key", "k1"}, 422, "urn:hedge:problem:invalid-amount"},
		{"amount negative", LedgerSettings{}, `{"amount":"-1.00"}`, []string{"Idempotency-Key", "k1"}, 422, "urn:hedge:problem:invalid-amount"},
		{"amount zero", LedgerSettings{}, `{"amount":"0.00"}`, []string{"Idempotency-Key", "k1"}, 422, "urn:hedge:problem:invalid-amount"},
		{"amount exponent", LedgerSettings{}, `{"amount":"1e3"}`, []string{"Idempotency-Key", "k1"}, 422, "urn:hedge:problem:invalid-amount"},
		{"amount trailing dot", LedgerSettings{}, `{"amount":"12."}`, []string{"Idempotency-Key", "k1"}, 422, "urn:hedge:problem:invalid-amount"},
		{"amount huge", LedgerSettings{}, `{"amount":"9999999999999999999"}`, []string{"Idempotency-Key", "k1"}, 422, "urn:hedge:problem:invalid-amount"},
		{"other currency", LedgerSettings{}, `{"amount":"1.00","currency":"USD"}`, []string{"Idempotency-Key", "k1"}, 422, "urn:hedge:problem:currency-mismatch"},
		{"insufficient funds", LedgerSettings{StartBalance: "10.00"}, betBody, []string{"Idempotency-Key", "k1"}, 422, "urn:hedge:problem:insufficient-funds"},
		{"no principal", LedgerSettings{}, betBody, []string{"Idempotency-Key", "k1", "X-Hedge-Principal", ""}, 401, "urn:hedge:problem:missing-principal"},
		{"account header instead of principal", LedgerSettings{}, betBody, []string{"Idempotency-Key", "k1", "X-Hedge-Principal", "", "Ledger-Account", "victim-1"}, 401, "urn:hedge:problem:missing-principal"},
		{"two principals", LedgerSettings{}, betBody, []string{"Idempotency-Key", "k1", "X-Hedge-Principal", "mallory", "X-Hedge-Principal", "victim-1"}, 400, "urn:hedge:problem:invalid-principal"},
		{"principal as pairs", LedgerSettings{}, betBody, []string{"Idempotency-Key", "k1", "X-Hedge-Principal", "iss=casino; sub=victim-3"}, 400, "urn:hedge:problem:invalid-principal"},
		{"principal list", LedgerSettings{}, betBody, []string{"Idempotency-Key", "k1", "X-Hedge-Principal", "mallory,victim-3"}, 400, "urn:hedge:problem:invalid-principal"},
		{"principal with space", LedgerSettings{}, betBody, []string{"Idempotency-Key", "k1", "X-Hedge-Principal", "bob x"}, 400, "urn:hedge:problem:invalid-principal"},
		{"two keys", LedgerSettings{}, betBody, []string{"Idempotency-Key", "k1", "Idempotency-Key", "k2"}, 400, "urn:hedge:problem:malformed-idempotency-key"},
		{"key list", LedgerSettings{}, betBody, []string{"Idempotency-Key", "k1, k2"}, 400, "urn:hedge:problem:malformed-idempotency-key"},
		{"other domain", LedgerSettings{Domain: "sea"}, betBody, []string{"Idempotency-Key", "k1", "Ledger-Domain", "eu"}, 421, "urn:hedge:problem:wrong-domain"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, base := startLedger(t, tc.settings)
			r := call(t, base, http.MethodPost, "/bets", tc.body, tc.headers...)
			if r.status != tc.status {
				t.Fatalf("status: expected %d, got %d (body %s)", tc.status, r.status, r.body)
			}
			if got := problemType(t, r); got != tc.problem {
				t.Errorf("problem type: expected %q, got %q", tc.problem, got)
			}
			if tc.status == http.StatusServiceUnavailable && r.header.Get("Retry-After") == "" {
				t.Errorf("Retry-After: expected a value on 503, got none")
			}
			if got := l.Applied(); len(got) != 0 {
				t.Errorf("applied after a rejected bet: expected none, got %+v", got)
			}
		})
	}
}

func TestLedgerBetApplies(t *testing.T) {
	tests := []struct {
		name        string
		headers     []string
		body        string
		wantAccount string
		wantAmount  string
		wantBalance string
		wantStatus  int
	}{
		{"principal", []string{"X-Hedge-Principal", "bob"}, betBody, "bob", "12.50", "987.50", 201},
		{"principal with email-like subject", []string{"X-Hedge-Principal", "p.7@casino.example"}, betBody, "p.7@casino.example", "12.50", "987.50", 201},
		{"other headers name no account", []string{"X-Hedge-Principal", "bob", "Ledger-Account", "victim-1", "X-Account", "victim-1"}, betBody, "bob", "12.50", "987.50", 201},
		{"anonymous", nil, betBody, "anonymous", "12.50", "987.50", 201},
		{"amount normalised", nil, `{"amount":"7.5"}`, "anonymous", "7.50", "992.50", 201},
		{"whole amount", nil, `{"amount":"1000"}`, "anonymous", "1000.00", "0.00", 201},
		{"current epoch", []string{"Ledger-Epoch", "1"}, betBody, "anonymous", "12.50", "987.50", 201},
		{"newer epoch", []string{"Ledger-Epoch", "9"}, betBody, "anonymous", "12.50", "987.50", 201},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, base := startLedger(t, LedgerSettings{Domain: "sea"})
			r := call(t, base, http.MethodPost, "/bets", tc.body, append([]string{"Idempotency-Key", "k1"}, tc.headers...)...)
			if r.status != tc.wantStatus {
				t.Fatalf("status: expected %d, got %d (body %s)", tc.wantStatus, r.status, r.body)
			}
			got := decode[betResponse](t, r)
			want := betResponse{BetID: "sea-1-000001", Account: tc.wantAccount, Amount: tc.wantAmount,
				Currency: "EUR", Balance: tc.wantBalance, Epoch: 1, Domain: "sea"}
			if got != want {
				t.Errorf("bet response:\nexpected %+v\n     got %+v", want, got)
			}
			if v := r.header.Get("Idempotent-Replayed"); v != "" {
				t.Errorf("Idempotent-Replayed on first apply: expected none, got %q", v)
			}
			if b := balanceOf(t, base, tc.wantAccount); b != tc.wantBalance {
				t.Errorf("balance: expected %s, got %s", tc.wantBalance, b)
			}
		})
	}
}

// TestLedgerKeySpellings: the structured-field string and the bare token
// are one key, so a writer reached directly by a client's spelling and by
// the edge's canonical one still applies the bet once.
func TestLedgerKeySpellings(t *testing.T) {
	l, base := startLedger(t, LedgerSettings{Domain: "sea", KeepReceipts: true})
	first := call(t, base, http.MethodPost, "/bets", betBody, "Idempotency-Key", `"k1"`, "X-Hedge-Principal", "bob")
	again := call(t, base, http.MethodPost, "/bets", betBody, "Idempotency-Key", `k1`, "X-Hedge-Principal", "bob")
	if first.status != 201 || again.status != 201 || again.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf(`"k1" then k1: want 201 and a replayed 201, got %d and %d (replayed %q)`, first.status, again.status, again.header.Get("Idempotent-Replayed"))
	}
	if b := balanceOf(t, base, "bob"); b != "987.50" {
		t.Fatalf("balance: want 987.50 (one debit), got %s", b)
	}
	rs := l.Receipts()
	if len(rs) != 2 || rs[0].Key != "k1" || rs[0].RawKey != `"k1"` || rs[1].Key != "k1" || rs[1].RawKey != "k1" {
		t.Fatalf("receipts: want key k1 under both spellings, got %+v", rs)
	}
}

func TestLedgerExactDecimal(t *testing.T) {
	_, base := startLedger(t, LedgerSettings{StartBalance: "0.30"})
	for i, amount := range []string{"0.10", "0.20"} {
		body := `{"amount":"` + amount + `"}`
		r := call(t, base, http.MethodPost, "/bets", body, "Idempotency-Key", "k"+amount)
		if r.status != http.StatusCreated {
			t.Fatalf("bet %d: expected 201, got %d %s", i, r.status, r.body)
		}
	}
	if b := balanceOf(t, base, "anonymous"); b != "0.00" {
		t.Errorf("0.30 - 0.10 - 0.20: expected 0.00, got %s", b)
	}
}

func TestLedgerReplay(t *testing.T) {
	l, base := startLedger(t, LedgerSettings{Domain: "sea"})
	first := call(t, base, http.MethodPost, "/bets", betBody, "Idempotency-Key", "k1", "X-Hedge-Principal", "alice")
	if first.status != http.StatusCreated {
		t.Fatalf("first: expected 201, got %d %s", first.status, first.body)
	}
	// Same bet, amount written differently: still the same bet.
	second := call(t, base, http.MethodPost, "/bets", strings.Replace(betBody, "12.50", "12.5", 1),
		"Idempotency-Key", "k1", "X-Hedge-Principal", "alice")

	if second.status != first.status {
		t.Errorf("replay status: expected %d, got %d", first.status, second.status)
	}
	if !bytes.Equal(second.body, first.body) {
		t.Errorf("replay body:\nexpected %s\n     got %s", first.body, second.body)
	}
	if v := second.header.Get("Idempotent-Replayed"); v != "true" {
		t.Errorf("Idempotent-Replayed: expected \"true\", got %q", v)
	}
	if b := balanceOf(t, base, "alice"); b != "987.50" {
		t.Errorf("balance after replay: expected 987.50 (debited once), got %s", b)
	}

	reused := call(t, base, http.MethodPost, "/bets", strings.Replace(betBody, "12.50", "99.00", 1),
		"Idempotency-Key", "k1", "X-Hedge-Principal", "alice")
	if reused.status != http.StatusUnprocessableEntity {
		t.Fatalf("key reused for another bet: expected 422, got %d %s", reused.status, reused.body)
	}
	if got := problemType(t, reused); got != "urn:hedge:problem:idempotency-key-reused" {
		t.Errorf("key reused: expected problem idempotency-key-reused, got %q", got)
	}

	// Another player using the same key string is a different bet.
	other := call(t, base, http.MethodPost, "/bets", betBody, "Idempotency-Key", "k1", "X-Hedge-Principal", "bob")
	if other.status != http.StatusCreated || other.header.Get("Idempotent-Replayed") != "" {
		t.Errorf("same key, other account: expected a fresh 201, got %d replayed=%q %s",
			other.status, other.header.Get("Idempotent-Replayed"), other.body)
	}

	want := []AppliedKey{{Key: "k1", Account: "alice", Count: 2}, {Key: "k1", Account: "bob", Count: 1}}
	if got := l.Applied(); !slices.Equal(got, want) {
		t.Errorf("Applied:\nexpected %+v\n     got %+v", want, got)
	}
}

func TestLedgerExactlyOnceConcurrent(t *testing.T) {
	const n = 50
	l, base := startLedger(t, LedgerSettings{Domain: "sea"})

	results := sendAtOnce(t, n, func() (result, error) {
		return send(base, http.MethodPost, "/bets", betBody,
			"Idempotency-Key", "same-key", "X-Hedge-Principal", "alice", "Ledger-Epoch", "1")
	})
	checkOneApplied(t, results, http.StatusCreated)
	if b := balanceOf(t, base, "alice"); b != "987.50" {
		t.Errorf("balance: expected 987.50 (one debit of 12.50), got %s", b)
	}

	want := []AppliedKey{{Key: "same-key", Account: "alice", Count: n}}
	if got := l.Applied(); !slices.Equal(got, want) {
		t.Errorf("Applied():\nexpected %+v\n     got %+v", want, got)
	}
	r := call(t, base, http.MethodGet, "/applied", "")
	got := decode[struct {
		Applied []AppliedKey `json:"applied"`
	}](t, r).Applied
	if !slices.Equal(got, want) {
		t.Errorf("GET /applied:\nexpected %+v\n     got %+v", want, got)
	}
}

func TestLedgerRoleChange(t *testing.T) {
	const token = "s3cret"
	_, base := startLedger(t, LedgerSettings{Domain: "eu", Role: RoleReplica, Epoch: 1, AdminToken: token})
	auth := "Bearer " + token

	steps := []struct {
		name     string
		method   string
		path     string
		body     string
		headers  []string
		status   int
		problem  string   // for error responses
		wantRole roleBody // for successful /role and /admin/role responses
	}{
		{"starts as replica", "GET", "/role", "", nil, 200, "", roleBody{"replica", "eu", 1}},
		{"replica refuses bets", "POST", "/bets", betBody, []string{"Idempotency-Key", "k1"}, 503, "urn:hedge:problem:not-writer", roleBody{}},
		{"admin needs token", "POST", "/admin/role", `{"role":"writer","epoch":2}`, nil, 401, "urn:hedge:problem:unauthorized", roleBody{}},
		{"admin wrong token", "POST", "/admin/role", `{"role":"writer","epoch":2}`, []string{"Authorization", "Bearer nope"}, 401, "urn:hedge:problem:unauthorized", roleBody{}},
		{"admin bad role", "POST", "/admin/role", `{"role":"leader"}`, []string{"Authorization", auth}, 422, "urn:hedge:problem:invalid-role", roleBody{}},
		{"admin wrong method", "GET", "/admin/role", "", []string{"Authorization", auth}, 405, "urn:hedge:problem:method-not-allowed", roleBody{}},
		{"promote", "POST", "/admin/role", `{"role":"writer","epoch":2}`, []string{"Authorization", auth}, 200, "", roleBody{"writer", "eu", 2}},
		{"role reflects promotion", "GET", "/role", "", nil, 200, "", roleBody{"writer", "eu", 2}},
		{"old epoch fenced", "POST", "/bets", betBody, []string{"Idempotency-Key", "k1", "Ledger-Epoch", "1"}, 409, "urn:hedge:problem:stale-epoch", roleBody{}},
		{"epoch never decreases", "POST", "/admin/role", `{"epoch":1}`, []string{"Authorization", auth}, 409, "urn:hedge:problem:stale-epoch", roleBody{}},
		{"epoch only", "POST", "/admin/role", `{"epoch":3}`, []string{"Authorization", auth}, 200, "", roleBody{"writer", "eu", 3}},
		{"demote", "POST", "/admin/role", `{"role":"replica"}`, []string{"Authorization", auth}, 200, "", roleBody{"replica", "eu", 3}},
		{"demoted refuses bets", "POST", "/bets", betBody, []string{"Idempotency-Key", "k2", "Ledger-Epoch", "3"}, 503, "urn:hedge:problem:not-writer", roleBody{}},
	}
	for _, st := range steps {
		r := call(t, base, st.method, st.path, st.body, st.headers...)
		wantRoleAnswer(t, st.name, r, st.status, st.problem, st.wantRole)
	}
}

// wantRoleAnswer checks one answer of the role admin: its status, then
// the problem type when one is expected, else the role it reports.
func wantRoleAnswer(t *testing.T, step string, r result, status int, problem string, role roleBody) {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s: status expected %d, got %d (body %s)", step, status, r.status, r.body)
	}
	if problem != "" {
		if got := problemType(t, r); got != problem {
			t.Errorf("%s: problem expected %q, got %q", step, problem, got)
		}
		return
	}
	if got := decode[roleBody](t, r); got != role {
		t.Errorf("%s: role expected %+v, got %+v", step, role, got)
	}
}

func TestLedgerOpenAdmin(t *testing.T) {
	_, base := startLedger(t, LedgerSettings{Domain: "sea"})
	r := call(t, base, http.MethodPost, "/admin/role", `{"role":"replica"}`)
	if r.status != http.StatusOK {
		t.Fatalf("admin without token configured: expected 200, got %d %s", r.status, r.body)
	}
	if got, want := decode[roleBody](t, r), (roleBody{"replica", "sea", 1}); got != want {
		t.Errorf("role: expected %+v, got %+v", want, got)
	}
}

func TestLedgerReadEndpoints(t *testing.T) {
	_, base := startLedger(t, LedgerSettings{Domain: "sea", Epoch: 4, StartBalance: "50"})
	tests := []struct {
		method, path string
		status       int
		want         string // JSON, or the problem type
	}{
		{"GET", "/healthz", 200, `{"status":"ok"}`},
		{"GET", "/role", 200, `{"role":"writer","domain":"sea","epoch":4}`},
		{"GET", "/applied", 200, `{"applied":[]}`},
		{"GET", "/balance", 200, `{"account":"anonymous","balance":"50.00","currency":"EUR","domain":"sea","epoch":4}`},
		{"GET", "/bets", 405, "urn:hedge:problem:method-not-allowed"},
		{"DELETE", "/role", 405, "urn:hedge:problem:method-not-allowed"},
		{"GET", "/nope", 404, "urn:hedge:problem:not-found"},
	}
	for _, tc := range tests {
		r := call(t, base, tc.method, tc.path, "")
		if r.status != tc.status {
			t.Errorf("%s %s: status expected %d, got %d (body %s)", tc.method, tc.path, tc.status, r.status, r.body)
			continue
		}
		if tc.status >= 400 {
			if got := problemType(t, r); got != tc.want {
				t.Errorf("%s %s: problem expected %q, got %q", tc.method, tc.path, tc.want, got)
			}
			continue
		}
		if got := string(bytes.TrimSpace(r.body)); got != tc.want {
			t.Errorf("%s %s: body expected %s, got %s", tc.method, tc.path, tc.want, got)
		}
	}
}

func TestLedgerSettingsValidate(t *testing.T) {
	tests := []struct {
		name    string
		s       LedgerSettings
		wantErr bool
	}{
		{"zero value", LedgerSettings{}, false},
		{"full", LedgerSettings{Domain: "sea", Role: RoleReplica, Epoch: 7, StartBalance: "0", Currency: "GBP"}, false},
		{"bad role", LedgerSettings{Role: "primary"}, true},
		{"negative epoch", LedgerSettings{Epoch: -1}, true},
		{"bad balance", LedgerSettings{StartBalance: "1,000.00"}, true},
		{"bad currency", LedgerSettings{Currency: "euro"}, true},
	}
	for _, tc := range tests {
		err := tc.s.Validate()
		if (err != nil) != tc.wantErr {
			t.Errorf("%s: expected error=%v, got %v", tc.name, tc.wantErr, err)
		}
	}
}

func TestParseMinor(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"12.50", 1250, true},
		{"12.5", 1250, true},
		{"0.01", 1, true},
		{"999999999999999.99", 99999999999999999, true},
		{"", 0, false},
		{".50", 0, false},
		{"1.", 0, false},
		{"1.234", 0, false},
		{"+1", 0, false},
		{"-1", 0, false},
		{" 1", 0, false},
		{"1,00", 0, false},
		{"NaN", 0, false},
		{"1000000000000000", 0, false},
	}
	for _, tc := range tests {
		got, err := parseMinor(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseMinor(%q): expected (%d, ok=%v), got (%d, %v)", tc.in, tc.want, tc.ok, got, err)
		}
	}
}

func TestLedgerServeClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	l := NewLedger(LedgerSettings{Domain: "sea"})
	done := make(chan error, 1)
	go func() { done <- l.Serve(ln) }()

	r := call(t, "http://"+ln.Addr().String(), http.MethodGet, "/healthz", "")
	if r.status != http.StatusOK {
		t.Fatalf("healthz over a real listener: expected 200, got %d", r.status)
	}
	checkCloseStopsServe(t, l, done)
	if _, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		t.Errorf("dial after Close: expected the listener to be closed, got a connection")
	}
}

// checkCloseStopsServe closes a stand-in twice, each Close returning nil,
// and expects its Serve, running in the background, to report nil on done.
func checkCloseStopsServe(t *testing.T, c io.Closer, done <-chan error) {
	t.Helper()
	for i := range 2 {
		if err := c.Close(); err != nil {
			t.Errorf("Close #%d: expected nil, got %v", i+1, err)
		}
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve after Close: expected nil, got %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return within 5s of Close")
	}
}

func TestServeAfterClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	l := NewLedger(LedgerSettings{})
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := l.Serve(ln); err != nil {
		t.Errorf("Serve after Close: expected nil, got %v", err)
	}
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("listener after Serve returned: expected closed, got %v", err)
	}
}

// TestLedgerReplication: a replica imports what its writer applies, so once
// promoted it answers a retry of those keys as a replay; an import is not
// an apply of the replica's, and a replica promoted past the writer's epoch
// no longer follows it.
func TestLedgerReplication(t *testing.T) {
	w1, base1 := startLedger(t, LedgerSettings{Domain: "sea", Epoch: 1})
	w2, base2 := startLedger(t, LedgerSettings{Domain: "sea", Role: RoleReplica, Epoch: 1})
	w1.ReplicateTo(w2)

	first := call(t, base1, http.MethodPost, "/bets", betBody, "Idempotency-Key", "k1", "X-Hedge-Principal", "alice", "Ledger-Epoch", "1")
	if first.status != http.StatusCreated {
		t.Fatalf("bet at the writer: expected 201, got %d %s", first.status, first.body)
	}
	if got, want := w2.Applied(), []AppliedKey{{Key: "k1", Account: "alice", Replicated: true}}; !slices.Equal(got, want) {
		t.Fatalf("replica's Applied() after the writer applied k1:\nexpected %+v\n     got %+v", want, got)
	}
	if b := balanceOf(t, base2, "alice"); b != "987.50" {
		t.Errorf("replica's balance: expected 987.50 (the writer's debit), got %s", b)
	}

	call(t, base2, http.MethodPost, "/admin/role", `{"role":"writer","epoch":2}`)
	again := call(t, base2, http.MethodPost, "/bets", betBody, "Idempotency-Key", "k1", "X-Hedge-Principal", "alice", "Ledger-Epoch", "2")
	if again.status != http.StatusCreated || again.header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(again.body, first.body) {
		t.Fatalf("retry of k1 at the promoted replica: expected the writer's 201 replayed, got %d %q %s",
			again.status, again.header.Get("Idempotent-Replayed"), again.body)
	}
	if got, want := w2.Applied(), []AppliedKey{{Key: "k1", Account: "alice", Count: 1, Replicated: true}}; !slices.Equal(got, want) {
		t.Errorf("replica's Applied() after the retry:\nexpected %+v\n     got %+v", want, got)
	}

	// The old writer, still claiming epoch 1, applies k2: the promoted
	// replica refuses to import it.
	if r := call(t, base1, http.MethodPost, "/bets", betBody, "Idempotency-Key", "k2", "X-Hedge-Principal", "alice", "Ledger-Epoch", "1"); r.status != http.StatusCreated {
		t.Fatalf("bet at the old writer: expected 201, got %d %s", r.status, r.body)
	}
	for _, a := range w2.Applied() {
		if a.Key == "k2" {
			t.Errorf("the replica promoted to epoch 2 imported a bet the old writer applied at epoch 1: %+v", a)
		}
	}
	if b := balanceOf(t, base2, "alice"); b != "987.50" {
		t.Errorf("promoted replica's balance: expected 987.50 (k2 not imported), got %s", b)
	}

	w1.ReplicateTo(nil)
	call(t, base1, http.MethodPost, "/bets", betBody, "Idempotency-Key", "k3", "X-Hedge-Principal", "alice", "Ledger-Epoch", "1")
	if n := len(w2.Applied()); n != 1 {
		t.Errorf("after ReplicateTo(nil): expected the replica to hold 1 key, got %d", n)
	}
}

// TestLedgerReceipts: with KeepReceipts, every bet request is recorded with
// its key, account, epoch, arrival time and outcome.
func TestLedgerReceipts(t *testing.T) {
	l, base := startLedger(t, LedgerSettings{Domain: "sea", Epoch: 2, KeepReceipts: true})
	before := time.Now()
	steps := []struct {
		headers []string
		want    Receipt
	}{
		{[]string{"Idempotency-Key", "k1", "X-Hedge-Principal", "alice", "Ledger-Epoch", "2"}, Receipt{Key: "k1", RawKey: "k1", Account: "alice", Epoch: 2, Outcome: ReceiptApplied, Amount: "12.50", BetID: "sea-2-000001", AppliedEpoch: 2}},
		{[]string{"Idempotency-Key", "k1", "X-Hedge-Principal", "alice", "Ledger-Epoch", "3"}, Receipt{Key: "k1", RawKey: "k1", Account: "alice", Epoch: 3, Outcome: ReceiptReplayed, Amount: "12.50", BetID: "sea-2-000001", AppliedEpoch: 2}},
		{[]string{"Idempotency-Key", "k2", "X-Hedge-Principal", "bob", "Ledger-Epoch", "1"}, Receipt{Key: "k2", RawKey: "k2", Account: "bob", Epoch: 1, Outcome: ReceiptRefused, Problem: "stale-epoch"}},
		{[]string{"Idempotency-Key", "k3", "X-Hedge-Principal", "carol"}, Receipt{Key: "k3", RawKey: "k3", Account: "carol", Epoch: -1, Outcome: ReceiptApplied, Amount: "12.50", BetID: "sea-2-000002", AppliedEpoch: 2}},
		{[]string{"X-Hedge-Principal", "dave"}, Receipt{Account: "dave", Epoch: -1, Outcome: ReceiptRefused, Problem: "missing-idempotency-key"}},
	}
	for _, st := range steps {
		call(t, base, http.MethodPost, "/bets", betBody, st.headers...)
	}
	call(t, base, http.MethodPost, "/admin/role", `{"role":"replica"}`)
	call(t, base, http.MethodPost, "/bets", betBody, "Idempotency-Key", "k4", "X-Hedge-Principal", "erin", "Ledger-Epoch", "2")
	steps = append(steps, struct {
		headers []string
		want    Receipt
	}{nil, Receipt{Key: "k4", RawKey: "k4", Account: "erin", Epoch: 2, Outcome: ReceiptRefused, Problem: "not-writer"}})

	got := l.Receipts()
	if len(got) != len(steps) {
		t.Fatalf("Receipts(): expected %d, got %d: %+v", len(steps), len(got), got)
	}
	for i, st := range steps {
		r := got[i]
		if r.At.Before(before) || r.At.After(time.Now()) || (i > 0 && r.At.Before(got[i-1].At)) {
			t.Errorf("receipt %d: arrival time %v out of order or outside the test", i, r.At)
		}
		r.At = time.Time{}
		if r != st.want {
			t.Errorf("receipt %d:\nexpected %+v\n     got %+v", i, st.want, r)
		}
	}

	quiet, qbase := startLedger(t, LedgerSettings{Domain: "sea"})
	call(t, qbase, http.MethodPost, "/bets", betBody, "Idempotency-Key", "k1")
	if n := len(quiet.Receipts()); n != 0 {
		t.Errorf("without KeepReceipts: expected no receipts, got %d", n)
	}
}
