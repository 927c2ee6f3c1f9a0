package health

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hedge/internal/testkit"
)

func TestRiseFallHysteresis(t *testing.T) {
	var healthy atomic.Bool
	healthy.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !healthy.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()

	var mu sync.Mutex
	var changes []Change
	spec := Spec{URL: srv.URL + "/healthz", Interval: 20 * time.Millisecond, Timeout: 100 * time.Millisecond, Rise: 2, Fall: 3}
	tg := NewTarget("m1", spec, func(c Change) { mu.Lock(); changes = append(changes, c); mu.Unlock() })
	c := NewChecker(tg)
	c.Start()
	defer c.Close()

	healthy.Store(false)
	start := time.Now()
	took := testkit.WaitUntil(t, "down after 3 failed probes", 2*time.Second, func() bool { return !tg.Healthy() }).Sub(start)
	if took < 2*spec.Interval {
		t.Errorf("went down after %s: fall=3 at %s needs at least %s", took, spec.Interval, 2*spec.Interval)
	}
	healthy.Store(true)
	testkit.WaitUntil(t, "up after 2 good probes", 2*time.Second, tg.Healthy)
	c.Close()
	c.Close() // twice is fine

	mu.Lock()
	defer mu.Unlock()
	if len(changes) != 2 || changes[0].Up || !changes[1].Up {
		t.Fatalf("want changes [down up], got %+v", changes)
	}
	if st := tg.Status(); !st.Healthy || st.LastError != "" {
		t.Fatalf("status after recovery: %+v", st)
	}
}

func TestUnreachableTargetGoesDown(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	tg := NewTarget("gone", Spec{URL: url, Interval: 10 * time.Millisecond, Timeout: 50 * time.Millisecond, Rise: 1, Fall: 1}, nil)
	c := NewChecker(tg)
	c.Start()
	defer c.Close()
	testkit.WaitUntil(t, "down", time.Second, func() bool { return !tg.Healthy() })
	if tg.Status().LastError == "" {
		t.Fatal("want the probe error in status")
	}
}

func TestPassiveEjection(t *testing.T) {
	tg := NewTarget("m", Spec{MaxFails: 3, EjectFor: 50 * time.Millisecond, ActiveOff: true}, nil)
	boom := errors.New("connection refused")
	tg.ReportFailure(boom)
	tg.ReportFailure(boom)
	tg.ReportSuccess() // a success resets the run
	tg.ReportFailure(boom)
	tg.ReportFailure(boom)
	if !tg.Healthy() {
		t.Fatal("ejected before 3 consecutive failures")
	}
	tg.ReportFailure(boom)
	if tg.Healthy() {
		t.Fatal("not ejected after 3 consecutive failures")
	}
	testkit.WaitUntil(t, "ejection ends", time.Second, tg.Healthy)
}

func TestInheritKeepsState(t *testing.T) {
	old := NewTarget("m", Spec{}, nil)
	old.Set(false, "test")
	n := NewTarget("m", Spec{}, nil)
	n.Inherit(old)
	if n.Healthy() {
		t.Fatal("a reload revived a failed member")
	}
}

func BenchmarkHealthy(b *testing.B) {
	tg := NewTarget("m", Spec{}, nil)
	b.ReportAllocs()
	for b.Loop() {
		if !tg.Healthy() {
			b.Fatal("unhealthy")
		}
	}
}

// TestSetRestartsRunsAndPending: after Set (an edge announcing its drain),
// a probe that was already in flight cannot undo the verdict, and Pending
// counts the probes that disagree with it.
func TestSetRestartsRunsAndPending(t *testing.T) {
	tg := NewTarget("edge", Spec{Rise: 2, Fall: 2, Interval: time.Second}, nil)
	for range 5 {
		tg.observe(nil)
	}
	tg.Set(false, "draining")
	tg.observe(nil) // the probe in flight when the drain was announced
	if tg.Up() {
		t.Fatal("one success after Set(false) brought the target back; want Rise successes")
	}
	if got := tg.Pending(); got != 1 {
		t.Fatalf("Pending after one success while down: want 1, got %d", got)
	}
	tg.observe(nil)
	if !tg.Up() || tg.Pending() != 0 {
		t.Fatalf("after Rise successes: want up with nothing pending, got up=%v pending=%d", tg.Up(), tg.Pending())
	}
	tg.observe(errors.New("refused"))
	if tg.Pending() != 1 || !tg.Up() {
		t.Fatalf("one failure while up: want up with 1 pending, got up=%v pending=%d", tg.Up(), tg.Pending())
	}
}
