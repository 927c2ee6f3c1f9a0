package benchkit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

// Workspace is what a harness's run works in: a temporary directory, the
// copy of hedge it measures and its own executable, which it runs again
// for its roles (StartUpstream, NewRole).
type Workspace struct {
	Dir   string // temporary; Close removes it
	Self  string // this program
	Hedge string // the copy of -hedge in Dir
}

// NewWorkspace makes a temporary directory named prefix… that nginx's
// worker can reach (it runs as an unprivileged user when the harness is
// root), and copies hedge into it: bin/hedge may be rebuilt while the run
// goes on, and every round must measure the same program. hedge is the
// -hedge flag, which every harness requires.
func NewWorkspace(prefix, hedge string) (w *Workspace, err error) {
	if hedge == "" {
		return nil, errors.New("-hedge PATH is required (make build writes bin/hedge)")
	}
	w = &Workspace{}
	if w.Self, err = os.Executable(); err != nil {
		return nil, err
	}
	if w.Dir, err = os.MkdirTemp("", prefix); err != nil {
		return nil, err
	}
	if err := os.Chmod(w.Dir, 0o755); err != nil {
		w.Close()
		return nil, err
	}
	if w.Hedge, err = w.Copy(hedge, "hedge"); err != nil {
		w.Close()
		return nil, err
	}
	return w, nil
}

// Copy copies the executable src into the workspace as name (see
// CopyExecutable) and returns the copy's path.
func (w *Workspace) Copy(src, name string) (string, error) {
	return CopyExecutable(src, filepath.Join(w.Dir, name))
}

// Close removes the workspace's directory and everything in it.
func (w *Workspace) Close() error { return os.RemoveAll(w.Dir) }

// NeedTools fails for the first of tools (names looked up in PATH, or
// paths) that is not there, saying what installs it: install is, say,
// "the Debian packages util-linux wrk (make bench-deps)".
func NeedTools(install string, tools ...string) error {
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found: install %s", tool, install)
		}
	}
	return nil
}

// Bounded is the context a harness's run goes on in: it ends after
// timeout, or when the harness is interrupted (SIGINT), terminated
// (SIGTERM), loses its terminal (SIGHUP) or whoever reads its output goes
// away (SIGPIPE), so that in every case the run returns and stops what it
// started. stop releases the timer and the signals.
func Bounded(timeout time.Duration) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	ctx, stopSignals := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE)
	return ctx, func() { stopSignals(); cancel() }
}
