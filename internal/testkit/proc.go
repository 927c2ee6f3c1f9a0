package testkit

import (
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"hedge/internal/child"
)

// Proc is a hedge child process a test started (StartHedge). It is killed
// (by its own pid) when the test ends if it is still running, and its
// stderr is logged when the test failed.
type Proc struct {
	*child.Process
	Name   string
	Stdout Buffer
	Stderr Buffer
}

// StartHedge runs the hedge binary bin with args in dir, as name in
// messages. A data race hedge reports on its stderr fails the test.
func StartHedge(t testing.TB, bin, name, dir string, args ...string) *Proc {
	t.Helper()
	p := &Proc{Name: name}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = ChildEnv()
	cmd.Stdout, cmd.Stderr = &p.Stdout, &p.Stderr
	// If the test binary dies, its children die with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var err error
	if p.Process, err = child.Start(cmd); err != nil {
		t.Fatalf("start %s (hedge %s): %v", name, strings.Join(args, " "), err)
	}
	t.Cleanup(func() {
		if !p.Exited() {
			p.Cmd.Process.Kill()
			select {
			case <-p.Done():
			case <-time.After(10 * time.Second):
				t.Errorf("%s (pid %d) did not exit after SIGKILL", p.Name, p.PID())
			}
		}
		if strings.Contains(p.Stderr.String(), "WARNING: DATA RACE") {
			t.Errorf("%s reported a data race:\n%s", p.Name, p.Stderr.String())
		} else if t.Failed() {
			t.Logf("%s (hedge %s) stderr, last lines:\n%s", p.Name, strings.Join(args, " "), LastLines(p.Stderr.String(), 60))
		}
	})
	return p
}

// Signal sends sig to the process.
func (p *Proc) Signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := p.Cmd.Process.Signal(sig); err != nil {
		t.Fatalf("send %v to %s: %v", sig, p.Name, err)
	}
}

// WaitFor polls cond every poll until it reports true or timeout passes;
// cond also describes what it saw, for the failure message. When p is not
// nil and exits meanwhile, waiting stops at once.
func WaitFor(t testing.TB, p *Proc, what string, timeout, poll time.Duration, cond func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	last := "(not checked)"
	for i := 0; i <= int(timeout/poll)+1; i++ {
		ok, seen := cond()
		if ok {
			return time.Since(start)
		}
		last = seen
		if p != nil && p.Exited() {
			t.Fatalf("waiting for %s: %s exited (%v); last seen: %s", what, p.Name, p.Err(), last)
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(poll)
	}
	t.Fatalf("waited %v for %s; last seen: %s", timeout, what, last)
	return 0
}
