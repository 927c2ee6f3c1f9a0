// Package testkit is the scaffolding that tests in several folders share:
// a buffer that a test reads while other goroutines write to it, the build
// of the hedge binary that end-to-end tests run as a child (with -race when
// the tests run with it, RunWithHedge for their TestMain) and running it
// (StartHedge, WaitFor), free loopback addresses and ports, a CA
// that writes certificates to files, a raw HTTP/1.1 exchange for requests
// no client library would send, and a poll that waits for a condition with
// a deadline (WaitUntil). Only tests import it.
package testkit

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"
)

// Buffer collects what other goroutines write (a child process's output,
// a logger that may outlive the test) while the test reads it.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// RaceEnabled reports whether the running binary was built with -race.
func RaceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// BuildHedge builds the hedge command into dir and returns the binary's
// path. A race in hedge is a bug the tests should find too: when they run
// with -race, so does the binary, and its reports go to its stderr.
func BuildHedge(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "hedge")
	args := []string{"build", "-o", bin}
	if RaceEnabled() {
		args = append(args, "-race")
	}
	args = append(args, "hedge")
	if out, err := exec.CommandContext(ctx, "go", args...).CombinedOutput(); err != nil {
		return "", fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return bin, nil
}

// ChildEnv is the environment of a hedge child. A race-enabled binary
// sleeps a second on exit by default, for its reports to be written; the
// test holds its stderr anyway.
func ChildEnv() []string {
	env := os.Environ()
	if RaceEnabled() {
		env = append(env, "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	}
	return env
}

// LastLines returns the last n lines of s.
func LastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// RunWithHedge is a TestMain's body for tests that run hedge as a child:
// it sets *bin to $HEDGE_BIN when that is set, or else builds hedge into
// a temporary directory (removed after the tests), and runs the tests.
func RunWithHedge(m *testing.M, bin *string) int {
	if b := os.Getenv("HEDGE_BIN"); b != "" {
		abs, err := filepath.Abs(b)
		if err != nil {
			fmt.Fprintln(os.Stderr, "HEDGE_BIN:", err)
			return 1
		}
		*bin = abs
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "hedge-test-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "build hedge:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if *bin, err = BuildHedge(ctx, dir); err != nil {
		fmt.Fprintln(os.Stderr, "build hedge:", err)
		return 1
	}
	return m.Run()
}
