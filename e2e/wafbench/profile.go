package main

import (
	"context"

	"hedge/e2e/internal/benchkit"
)

// profileResult is a CPU profile of hedge taken during a cell.
type profileResult struct {
	File string `json:"file,omitempty"` // the pprof file, kept next to the report
	Top  string `json:"top,omitempty"`  // go tool pprof -top, the heaviest functions
	Err  string `json:"error,omitempty"`
}

// takeProfile fetches secs seconds of CPU profile from hedge's admin
// listener while the cell's load runs, stores it as dir/name.pprof and
// lists its 30 heaviest functions. The load must last longer than secs for
// the profile to show only the cell.
func takeProfile(ctx context.Context, admin string, secs int, dir, name string) profileResult {
	return profileResult(benchkit.TakeProfile(ctx, admin, secs, 30, dir, name))
}
