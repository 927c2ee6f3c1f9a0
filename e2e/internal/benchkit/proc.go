package benchkit

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"hedge/internal/child"
)

// Proc is a child process a harness started, in its own process group so
// that it and everything it forks (nginx's worker) can be stopped together
// by that group's id, and killed by the kernel if the harness dies without
// cleaning up (Pdeathsig).
type Proc struct {
	*child.Process
	name string
	log  string // its stdout and stderr
}

// Command makes the command `taskset -c cpu bin args...`, or `bin args...`
// when cpu < 0 or taskset is missing, in its own process group and with
// Pdeathsig SIGKILL. taskset execs bin, so the child keeps the pid that was
// started, and every thread and child process inherits the affinity.
func Command(ctx context.Context, cpu int, bin string, args ...string) *exec.Cmd {
	var cmd *exec.Cmd
	if ts, err := exec.LookPath("taskset"); err == nil && cpu >= 0 {
		cmd = exec.CommandContext(ctx, ts, append([]string{"-c", strconv.Itoa(cpu), bin}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, bin, args...)
	}
	cmd.SysProcAttr = sysProcAttr()
	return cmd
}

func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// Start runs bin with args in dir, pinned to cpu with taskset when cpu ≥ 0
// and taskset exists (see Command). Its output goes to dir/name.out.
func Start(name, dir string, cpu int, bin string, args ...string) (*Proc, error) {
	cmd := Command(context.Background(), cpu, bin, args...)
	cmd.Dir = dir
	return StartCmd(name, dir, cmd)
}

// StartPinned runs `taskset -c cpu bin args...` in the harness's own
// working directory. Unlike Start it always pins: without taskset it
// fails. Its output goes to dir/name.out.
func StartPinned(name, dir string, cpu int, bin string, args ...string) (*Proc, error) {
	cmd := exec.Command("taskset", append([]string{"-c", strconv.Itoa(cpu), bin}, args...)...)
	cmd.SysProcAttr = sysProcAttr()
	return StartCmd(name, dir, cmd)
}

// StartCmd starts cmd (made by Command, or with the same SysProcAttr) with
// its stderr, and its stdout unless the caller took it (StdoutPipe), in
// dir/name.out, and waits for it in the background.
func StartCmd(name, dir string, cmd *exec.Cmd) (*Proc, error) {
	logPath := filepath.Join(dir, name+".out")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if cmd.Stdout == nil {
		cmd.Stdout = f
	}
	cmd.Stderr = f
	c, err := child.Start(cmd)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	return &Proc{Process: c, name: name, log: logPath}, nil
}

// Name is the name the process was started with.
func (p *Proc) Name() string { return p.name }

// Stop sends sig to the child's process group (its pid: Setpgid made it
// the leader), and SIGKILL to the group if it has not exited after grace.
// Safe to call twice and on nil. (nginx's master waits for its worker
// before it exits, so the group is empty by then.)
func (p *Proc) Stop(sig syscall.Signal, grace time.Duration) {
	if p == nil || p.Exited() {
		return
	}
	pgid := p.PID()
	syscall.Kill(-pgid, sig)
	select {
	case <-p.Done():
	case <-time.After(grace):
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.Done()
	}
}

// Tail returns the end of the child's output, for error messages.
func (p *Proc) Tail() string { return TailFile(p.log, 2000) }

// TailFile returns the last n bytes of the file at path, trimmed of space,
// or "" if it cannot be read.
func TailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.TrimSpace(string(b))
}

// WaitFor calls ok every 100 ms until it succeeds, p exits, the context
// ends, or timeout passes.
func WaitFor(ctx context.Context, p *Proc, timeout time.Duration, ok func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		last := ok()
		if last == nil {
			return nil
		}
		if p != nil && p.Exited() {
			return fmt.Errorf("%s exited: %v\n%s", p.name, p.Err(), p.Tail())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %s: %w", p.name, timeout, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// FreeAddr returns a loopback address with a port that was free a moment
// ago. Another program could take it before the server binds it; the
// server then fails to start and the run says so.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// ExitOnError prints prefix and err to stderr and exits with status 1 when
// err is not nil.
func ExitOnError(prefix string, err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, prefix, err)
		os.Exit(1)
	}
}

// GetOK fetches url with c and fails unless it answers 200: a readiness
// probe for WaitFor.
func GetOK(c *http.Client, url string) error { return Expect(c, http.MethodGet, url, http.StatusOK) }

// Expect sends a bodiless method request for url with c and fails unless
// it answers status.
func Expect(c *http.Client, method, url string, status int) error {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != status {
		return fmt.Errorf("%s %s: %s, want %d", method, url, resp.Status, status)
	}
	return nil
}

// CopyExecutable copies src to dst and returns dst. A harness measures a
// copy: bin/hedge may be rebuilt while it runs.
func CopyExecutable(src, dst string) (string, error) {
	b, err := os.ReadFile(src)
	if err != nil {
		return "", err
	}
	return dst, os.WriteFile(dst, b, 0o755)
}
