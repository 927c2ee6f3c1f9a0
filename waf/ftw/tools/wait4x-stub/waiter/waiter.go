// Package waiter polls checkers until they pass or time runs out.
package waiter

import (
	"context"
	"fmt"
	"time"

	"github.com/go-logr/logr"

	"wait4x.dev/v3/checker"
)

type options struct {
	timeout  time.Duration
	interval time.Duration
	log      logr.Logger
}

// Option configures a wait.
type Option func(*options)

// WithTimeout bounds the whole wait (0: unbounded).
func WithTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// WithInterval sets the pause between probes.
func WithInterval(d time.Duration) Option { return func(o *options) { o.interval = d } }

// WithLogger logs each failed probe.
func WithLogger(l logr.Logger) Option { return func(o *options) { o.log = l } }

// WaitParallelContext waits until every checker passes.
func WaitParallelContext(ctx context.Context, checkers []checker.Checker, opts ...Option) error {
	o := options{timeout: 10 * time.Second, interval: time.Second, log: logr.Discard()}
	for _, opt := range opts {
		opt(&o)
	}
	if o.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.timeout)
		defer cancel()
	}
	errs := make(chan error, len(checkers))
	for _, c := range checkers {
		go func() { errs <- wait(ctx, c, o) }()
	}
	var first error
	for range checkers {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

func wait(ctx context.Context, c checker.Checker, o options) error {
	id, _ := c.Identity()
	for {
		err := c.Check(ctx)
		if err == nil {
			return nil
		}
		o.log.Info("not ready", "target", id, "error", err.Error())
		t := time.NewTimer(o.interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s: %w (last: %v)", id, ctx.Err(), err)
		case <-t.C:
		}
	}
}
