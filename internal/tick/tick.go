// Package tick is the loop of hedge's background workers that act at a
// fixed interval until they are stopped: the line writers' flushes, the
// rate limiter's sweeps, the learned model's saves, the ledger directory's
// probe rounds.
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
