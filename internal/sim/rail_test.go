package sim

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func startRail(t *testing.T, name string) (*Rail, string) {
	t.Helper()
	r := NewRail(RailSettings{Name: name})
	srv := httptest.NewServer(r.Handler())
	t.Cleanup(srv.Close)
	return r, srv.URL
}

func TestRailDeposit(t *testing.T) {
	tests := []struct {
		name    string
		path    string
		headers []string
		want    depositResponse
	}{
		{"plain path", "/deposit", []string{"Idempotency-Key", "d1"}, depositResponse{"primary", "primary-dep-000001", "d1"}},
		{"gateway path", "/cashier/deposit", []string{"Idempotency-Key", "d1"}, depositResponse{"primary", "primary-dep-000001", "d1"}},
		{"nested cashier path", "/cashier/v2/deposit", []string{"Idempotency-Key", "d1"}, depositResponse{"primary", "primary-dep-000001", "d1"}},
		{"no key", "/deposit", nil, depositResponse{"primary", "primary-dep-000001", ""}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, base := startRail(t, "primary")
			r := call(t, base, http.MethodPost, tc.path, `{"amount":"20.00","currency":"EUR"}`, tc.headers...)
			if r.status != http.StatusOK {
				t.Fatalf("status: expected 200, got %d %s", r.status, r.body)
			}
			if got := decode[depositResponse](t, r); got != tc.want {
				t.Errorf("deposit:\nexpected %+v\n     got %+v", tc.want, got)
			}
		})
	}
}

func TestRailIdempotent(t *testing.T) {
	_, base := startRail(t, "primary")
	const n = 20
	results := sendAtOnce(t, n, func() (result, error) {
		return send(base, http.MethodPost, "/cashier/deposit", `{}`, "Idempotency-Key", "d1")
	})
	checkOneApplied(t, results, http.StatusOK)

	// Requests without a key are never replays of each other.
	a := decode[depositResponse](t, call(t, base, http.MethodPost, "/deposit", `{}`))
	b := decode[depositResponse](t, call(t, base, http.MethodPost, "/deposit", `{}`))
	if a.DepositID == b.DepositID {
		t.Errorf("two deposits without a key: expected distinct ids, got %q twice", a.DepositID)
	}
}

func TestRailHealthToggle(t *testing.T) {
	rail, base := startRail(t, "backup")
	steps := []struct {
		name    string
		act     func(t *testing.T)
		health  int
		deposit int
	}{
		{"starts healthy", func(*testing.T) {}, 200, 200},
		{"SetHealthy(false)", func(*testing.T) { rail.SetHealthy(false) }, 503, 503},
		{"SetHealthy(true)", func(*testing.T) { rail.SetHealthy(true) }, 200, 200},
		{"admin down", func(t *testing.T) {
			r := call(t, base, http.MethodPost, "/admin/health", `{"healthy":false}`)
			if r.status != http.StatusOK {
				t.Fatalf("POST /admin/health: expected 200, got %d %s", r.status, r.body)
			}
		}, 503, 503},
		{"admin up", func(t *testing.T) {
			r := call(t, base, http.MethodPost, "/admin/health", `{"healthy":true}`)
			if r.status != http.StatusOK {
				t.Fatalf("POST /admin/health: expected 200, got %d %s", r.status, r.body)
			}
		}, 200, 200},
	}
	for _, st := range steps {
		st.act(t)
		h := call(t, base, http.MethodGet, "/healthz", "")
		if h.status != st.health {
			t.Errorf("%s: /healthz expected %d, got %d", st.name, st.health, h.status)
		}
		d := call(t, base, http.MethodPost, "/cashier/deposit", `{}`, "Idempotency-Key", "k-"+strings.ReplaceAll(st.name, " ", "-"))
		if d.status != st.deposit {
			t.Errorf("%s: deposit expected %d, got %d %s", st.name, st.deposit, d.status, d.body)
		}
		if st.deposit == http.StatusServiceUnavailable {
			if got := problemType(t, d); got != "urn:hedge:problem:rail-unavailable" {
				t.Errorf("%s: problem expected rail-unavailable, got %q", st.name, got)
			}
			if d.header.Get("Retry-After") == "" {
				t.Errorf("%s: Retry-After expected on 503, got none", st.name)
			}
		}
	}
}

func TestRailErrors(t *testing.T) {
	_, base := startRail(t, "primary")
	tests := []struct {
		method, path, body string
		status             int
		problem            string
	}{
		{"GET", "/deposit", "", 405, "urn:hedge:problem:method-not-allowed"},
		{"GET", "/cashier/deposit", "", 405, "urn:hedge:problem:method-not-allowed"},
		{"POST", "/withdraw", "{}", 404, "urn:hedge:problem:not-found"},
		{"POST", "/admin/health", "{", 400, "urn:hedge:problem:malformed-body"},
		{"POST", "/admin/health", "{}", 422, "urn:hedge:problem:missing-field"},
	}
	for _, tc := range tests {
		r := call(t, base, tc.method, tc.path, tc.body)
		if r.status != tc.status {
			t.Errorf("%s %s: status expected %d, got %d %s", tc.method, tc.path, tc.status, r.status, r.body)
			continue
		}
		if got := problemType(t, r); got != tc.problem {
			t.Errorf("%s %s: problem expected %q, got %q", tc.method, tc.path, tc.problem, got)
		}
	}
}

func TestRailServeClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	rail := NewRail(RailSettings{})
	done := make(chan error, 1)
	go func() { done <- rail.Serve(ln) }()

	r := call(t, "http://"+ln.Addr().String(), http.MethodPost, "/deposit", `{}`)
	if got := decode[depositResponse](t, r); got.Rail != "rail" {
		t.Errorf("default name: expected \"rail\", got %q", got.Rail)
	}
	checkCloseStopsServe(t, rail, done)
}
