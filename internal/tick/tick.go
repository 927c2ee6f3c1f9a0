// Package tick is the loop of hedge's background workers that act at a
// fixed interval until they are stopped: the line writers' flushes, the
// rate limiter's sweeps, the learned model's saves, the ledger directory's
// probe rounds; and, acting at once before they wait, the lease and
// liveness renewals and the drill's monitor.
package tick

import "time"

// Every calls f with the tick's time once every interval, the first time
// one interval from now, until stop is closed; then it returns. A call of
// f that outlasts the interval delays the next one rather than stacking
// calls up.
func Every(stop <-chan struct{}, every time.Duration, f func(now time.Time)) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			f(now)
		}
	}
}

// Now calls f at once and then once every interval until stop is closed;
// then it returns. It is for workers whose first act must not wait an
// interval: renewing a lease or a liveness key, taking the first sample.
func Now(stop <-chan struct{}, every time.Duration, f func()) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		f()
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}
