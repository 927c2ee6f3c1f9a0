package ledger

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"hedge/configs"
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
