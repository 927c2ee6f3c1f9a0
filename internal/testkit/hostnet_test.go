package testkit

import (
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestHoldHostNetwork: browser tests (shared holds) run together; a test
// that changes the host's network (exclusive) waits until they have ended.
func TestHoldHostNetwork(t *testing.T) {
	defer func(p string) { hostNetworkLock = p }(hostNetworkLock)
	hostNetworkLock = filepath.Join(t.TempDir(), "host-network.lock")
	var browsers atomic.Int32
	both := make(chan struct{})
	var ended, changed atomic.Int64
	// Subtests started from goroutines run at once, whatever -parallel.
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			t.Run("browser", func(t *testing.T) {
				HoldHostNetwork(t, false)
				if browsers.Add(1) == 2 {
					close(both) // both shared holds at once
				}
				select {
				case <-both:
				case <-time.After(5 * time.Second):
					t.Error("a second browser test could not hold the network beside the first")
				}
				time.Sleep(200 * time.Millisecond)
				ended.Store(time.Now().UnixNano()) // the hold ends just after
			})
		})
	}
	wg.Go(func() {
		t.Run("namespaces", func(t *testing.T) {
			select {
			case <-both:
			case <-time.After(6 * time.Second):
				return // reported by the browsers
			}
			HoldHostNetwork(t, true)
			changed.Store(time.Now().UnixNano())
		})
	})
	wg.Wait()
	if changed.Load() < ended.Load() {
		t.Errorf("the exclusive hold began %s before the browser tests ended", time.Duration(ended.Load()-changed.Load()))
	}
}
