package main

import (
	"context"

	"hedge/e2e/internal/benchkit"
)

// profileResult is hedge's CPU profile during one step's window.
type profileResult = benchkit.Profile

// takeProfile fetches secs seconds (at least one) of CPU profile from
// hedge's admin listener, stores it as dir/name.pprof and lists its 25
// heaviest functions.
func takeProfile(ctx context.Context, admin string, secs int, dir, name string) profileResult {
	return benchkit.TakeProfile(ctx, admin, max(1, secs), 25, dir, name)
}
