package testkit

import (
	"testing"
	"time"
)

// WaitUntil polls cond every 5ms until it holds and returns when it first
// held; when limit passes first, the test fails naming what it waited for.
// Tests wait for other goroutines and processes with it rather than sleep.
func WaitUntil(t testing.TB, what string, limit time.Duration, cond func() bool) time.Time {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, limit)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Now()
}
