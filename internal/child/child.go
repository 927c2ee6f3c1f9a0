// Package child runs a command as a child process whose exit one goroutine
// waits for, so that whoever started it can ask whether it has exited,
// wait for that with a deadline and read how it ended. The drill's
// deployment, the benchmark harnesses and the end-to-end tests start their
// processes through it.
package child

import (
	"os/exec"
	"time"
)

// Process is a started command.
type Process struct {
	Cmd  *exec.Cmd
	done chan struct{}
	err  error // valid once done is closed
}

// Start starts cmd and waits for it in the background.
func Start(cmd *exec.Cmd) (*Process, error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Process{Cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// PID is the child's process id.
func (p *Process) PID() int { return p.Cmd.Process.Pid }

// Done is closed once the child has exited and been waited for.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the child has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err is how the child exited (cmd.Wait's error); nil while it runs.
func (p *Process) Err() error {
	if !p.Exited() {
		return nil
	}
	return p.err
}

// Wait waits up to timeout for the child to exit and returns its exit
// code; ok is false when it is still running.
func (p *Process) Wait(timeout time.Duration) (code int, ok bool) {
	select {
	case <-p.done:
		return p.Cmd.ProcessState.ExitCode(), true
	case <-time.After(timeout):
		return 0, false
	}
}
