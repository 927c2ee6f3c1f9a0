package tick

import (
	"sync/atomic"
	"testing"
	"time"
)

func TestEvery(t *testing.T) {
	tests := []struct {
		name      string
		every     time.Duration
		wantCalls int32 // at least this many before stop
	}{
		{"short interval", time.Millisecond, 5},
		{"longer interval", 10 * time.Millisecond, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stop, done := make(chan struct{}), make(chan struct{})
			var calls atomic.Int32
			start := time.Now()
			var first atomic.Int64
			go func() {
				defer close(done)
				Every(stop, tc.every, func(now time.Time) {
					first.CompareAndSwap(0, int64(now.Sub(start)))
					calls.Add(1)
				})
			}()
			deadline := time.Now().Add(5 * time.Second)
			for calls.Load() < tc.wantCalls {
				if time.Now().After(deadline) {
					t.Fatalf("expected %d calls within 5s, got %d", tc.wantCalls, calls.Load())
				}
				time.Sleep(time.Millisecond)
			}
			if d := time.Duration(first.Load()); d < tc.every {
				t.Errorf("first call %v after start: expected one interval (%v) at least", d, tc.every)
			}
			close(stop)
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("Every did not return within 5s of stop being closed")
			}
		})
	}
}

// TestNow: the first call comes at once (with an hour's interval, it could
// not come otherwise), the next ones each interval, and Now returns once
// stop is closed.
func TestNow(t *testing.T) {
	for _, tc := range []struct {
		every time.Duration
		want  int
	}{{time.Hour, 1}, {5 * time.Millisecond, 3}} {
		stop, done := make(chan struct{}), make(chan struct{})
		calls := make(chan struct{}, 100)
		go func() {
			defer close(done)
			Now(stop, tc.every, func() { calls <- struct{}{} })
		}()
		for n := 0; n < tc.want; n++ {
			select {
			case <-calls:
			case <-time.After(5 * time.Second):
				t.Fatalf("every %v: %d calls within 5 s, want %d", tc.every, n, tc.want)
			}
		}
		close(stop)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("every %v: Now did not return within 5 s of stop being closed", tc.every)
		}
	}
}
