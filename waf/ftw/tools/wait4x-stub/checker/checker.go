// Package checker defines what the waiter polls.
package checker

import "context"

// Checker is one readiness condition.
type Checker interface {
	// Identity names the checked target in logs.
	Identity() (string, error)
	// Check returns nil once the target is ready.
	Check(ctx context.Context) error
}
