package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"hedge/configs"
	"hedge/internal/sim"
)

// roleServer is a writer candidate whose role endpoint the test controls.
type roleServer struct {
	*httptest.Server
	mu    sync.Mutex
	role  string
	epoch int64
	down  bool
}

func newRole(t *testing.T, role string, epoch int64) *roleServer {
	rs := &roleServer{role: role, epoch: epoch}
	rs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rs.mu.Lock()
		defer rs.mu.Unlock()
		if rs.down {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"role": rs.role, "domain": "sea", "epoch": rs.epoch})
	}))
	t.Cleanup(rs.Close)
	return rs
}

func (rs *roleServer) set(role string, epoch int64, down bool) {
	rs.mu.Lock()
	rs.role, rs.epoch, rs.down = role, epoch, down
	rs.mu.Unlock()
}

func directory(t *testing.T, probe bool, writers ...configs.Writer) (*Directory, *[]Designation) {
	cfg := &configs.Config{Regions: []configs.Region{{Name: "sea", Writers: writers}}}
	cfg.Ledger.Probe = configs.WriterProbe{Enabled: probe, Path: "/role", Interval: configs.Duration(time.Hour), Timeout: configs.Duration(time.Second), Fall: 1}
	var mu sync.Mutex
	changes := &[]Designation{}
	d := New(cfg, func(_, cur Designation) { mu.Lock(); *changes = append(*changes, cur); mu.Unlock() })
	t.Cleanup(d.Close)
	return d, changes
}

func TestStaticDesignation(t *testing.T) {
	d, _ := directory(t, false,
		configs.Writer{Domain: "sea", URL: "http://a:1", Epoch: 3}, configs.Writer{Domain: "sea", URL: "http://b:1", Epoch: 2})
	des := d.Lookup("sea")
	if !des.OK() || des.Writer.URL != "http://a:1" || des.Writer.Epoch != 3 || des.Source != "config" {
		t.Fatalf("want a@3 from config, got %+v", des)
	}
	if d.Lookup("mars") != nil {
		t.Fatal("an unknown domain must have no designation")
	}
	if _, err := d.Promote(Writer{Domain: "sea", URL: "http://b:1", Epoch: 3}); err == nil {
		t.Fatal("a promotion must raise the epoch")
	}
	if _, err := d.Promote(Writer{Domain: "sea", URL: "http://c:1", Epoch: 9}); err == nil {
		t.Fatal("only configured writers can be promoted")
	}
	des2, err := d.Promote(Writer{Domain: "sea", URL: "http://b:1", Epoch: 4})
	if err != nil || des2.Writer.URL != "http://b:1" || des2.Writer.Epoch != 4 || des2.Source != "promotion" {
		t.Fatalf("promotion: want b@4, got %+v %v", des2, err)
	}
}

func TestProbedDesignation(t *testing.T) {
	a, b := newRole(t, "writer", 1), newRole(t, "replica", 1)
	d, _ := directory(t, true, configs.Writer{Domain: "sea", URL: a.URL, Epoch: 1}, configs.Writer{Domain: "sea", URL: b.URL})
	ctx := context.Background()
	step := func(want State, wantURL string, wantEpoch int64) {
		t.Helper()
		d.round(ctx)
		des := d.Lookup("sea")
		if des.State != want || (want == Designated && (des.Writer.URL != wantURL || des.Writer.Epoch != wantEpoch)) {
			t.Fatalf("want %s %s@%d, got %+v", want, wantURL, wantEpoch, des)
		}
	}
	step(Designated, a.URL, 1)
	b.set("writer", 1, false) // two writers claim epoch 1
	step(Ambiguous, "", 0)
	// A rival that stops answering has not stepped down: still ambiguous,
	// never a guess for the one that answers.
	a.set("writer", 1, true)
	step(Ambiguous, "", 0)
	a.set("writer", 1, false)
	b.set("writer", 2, false) // the higher epoch wins
	step(Designated, b.URL, 2)
	// The epoch-2 writer stops answering: the old epoch-1 writer is fenced,
	// so the domain has no writer rather than falling back.
	b.set("writer", 2, true)
	step(Unreachable, "", 0)
	a.set("writer", 1, false)
	step(Unreachable, "", 0)
	b.set("writer", 2, false)
	step(Designated, b.URL, 2)
	b.set("replica", 2, false)
	a.set("replica", 1, false)
	step(Unknown, "", 0)
}

func TestInheritKeepsFenceAndProbes(t *testing.T) {
	a, b := newRole(t, "writer", 1), newRole(t, "writer", 5)
	ws := []configs.Writer{{Domain: "sea", URL: a.URL, Epoch: 1}, {Domain: "sea", URL: b.URL}}
	old, _ := directory(t, true, ws...)
	old.round(context.Background())
	if des := old.Lookup("sea"); des.Writer.URL != b.URL {
		t.Fatalf("want b designated, got %+v", des)
	}
	d, _ := directory(t, true, ws...)
	d.Inherit(old)
	if des := d.Lookup("sea"); !des.OK() || des.Writer.URL != b.URL || des.Writer.Epoch != 5 {
		t.Fatalf("after a reload the probed designation must stay, got %+v", des)
	}
}

// TestPromoteAt: a promotion is carried out at the writer's own admin API
// with the writer's token; the writer's answer decides whether it took.
func TestPromoteAt(t *testing.T) {
	const tok = "writer-admin-token"
	serve := func(role string, epoch int64) string {
		l := sim.NewLedger(sim.LedgerSettings{Domain: "sea", Role: role, Epoch: epoch, AdminToken: tok})
		srv := httptest.NewServer(l.Handler())
		t.Cleanup(srv.Close)
		return srv.URL
	}
	replica, writer3 := serve(sim.RoleReplica, 1), serve(sim.RoleWriter, 3)
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	tests := []struct {
		name       string
		url, token string
		epoch      int64
		wantStatus int    // of the PromoteError; -1: no error; 0: unreachable
		wantType   string // the refusal's problem type
	}{
		{"replica promoted", replica, tok, 2, -1, ""},
		{"a repeat is done", replica, tok, 2, -1, ""},
		{"wrong token", replica, "nope", 5, 401, "urn:hedge:problem:unauthorized"},
		{"epoch not above the writer's", writer3, tok, 2, 409, "urn:hedge:problem:stale-epoch"},
		{"unreachable", gone.URL, tok, 4, 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &configs.Config{Regions: []configs.Region{{Name: "sea", Writers: []configs.Writer{{Domain: "sea", URL: tc.url, Epoch: 1, AdminToken: tc.token}}}}}
			cfg.Ledger.Probe = configs.WriterProbe{Path: "/role", Timeout: configs.Duration(time.Second), Fall: 1}
			d := New(cfg, nil)
			err := d.PromoteAt(context.Background(), Writer{Domain: "sea", URL: tc.url, Epoch: tc.epoch})
			if tc.wantStatus == -1 {
				if err != nil {
					t.Fatalf("expected the writer to take the promotion, got %v", err)
				}
				return
			}
			var pe *PromoteError
			if !errors.As(err, &pe) || pe.Status != tc.wantStatus || pe.Problem != tc.wantType {
				t.Fatalf("expected a PromoteError with status %d %q, got %#v (%v)", tc.wantStatus, tc.wantType, pe, err)
			}
		})
	}
	var role struct {
		Role  string
		Epoch int64
	}
	resp, err := http.Get(replica + "/role")
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&role)
	resp.Body.Close()
	if role.Role != "writer" || role.Epoch != 2 {
		t.Errorf("the promoted replica's /role: expected writer at 2, got %+v", role)
	}
	d, _ := directory(t, false, configs.Writer{Domain: "sea", URL: replica, Epoch: 1})
	if err := d.PromoteAt(context.Background(), Writer{Domain: "sea", URL: "http://elsewhere:1", Epoch: 9}); err == nil {
		t.Error("a writer that is not configured: expected an error, got none")
	}
}

// TestPromoteAfterProbes: the probes may designate the promoted writer
// before the approving node applies the promotion; that is success.
func TestPromoteAfterProbes(t *testing.T) {
	a, b := newRole(t, "replica", 1), newRole(t, "writer", 2)
	d, _ := directory(t, true, configs.Writer{Domain: "sea", URL: a.URL, Epoch: 1}, configs.Writer{Domain: "sea", URL: b.URL})
	d.round(context.Background())
	des, err := d.Promote(Writer{Domain: "sea", URL: b.URL, Epoch: 2})
	if err != nil || !des.OK() || des.Writer.URL != b.URL || des.Writer.Epoch != 2 {
		t.Fatalf("promotion of the writer probes already designate: expected b@2, got %+v %v", des, err)
	}
}
