package drill

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"hedge/internal/child"
)

// Kinds of process in a deployment.
const (
	KindEdge   = "edge"
	KindDNS    = "dns"
	KindRedis  = "redis"
	KindLedger = "ledger"
)

// proc is one process of the deployment, in its own process group so a
// signal reaches whatever it started too.
type proc struct {
	*child.Process
	Name, Region, Kind string
	logPath            string
}

// signal sends sig to p's process group.
func (p *proc) signal(sig syscall.Signal) error {
	if p.Exited() {
		return nil
	}
	return syscall.Kill(-p.PID(), sig)
}

// procs owns every process a drill starts.
type procs struct {
	mu   sync.Mutex
	all  []*proc
	logs string
}

func (ps *procs) start(name, region, kind string, cmd *exec.Cmd) (*proc, error) {
	logPath := filepath.Join(ps.logs, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	// The child has its own copy of the log file once started.
	defer f.Close()
	cmd.Stdout, cmd.Stderr = f, f
	// Its own group, so signals reach it and anything it runs; and if
	// the drill dies, its children die with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	c, err := child.Start(cmd)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{Process: c, Name: name, Region: region, Kind: kind, logPath: logPath}
	ps.mu.Lock()
	ps.all = append(ps.all, p)
	ps.mu.Unlock()
	return p, nil
}

// find returns the processes matching region and kind ("" matches any).
func (ps *procs) find(region, kind string) []*proc {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	var out []*proc
	for _, p := range ps.all {
		if (region == "" || p.Region == region) && (kind == "" || p.Kind == kind) {
			out = append(out, p)
		}
	}
	return out
}

func (ps *procs) byName(name string) *proc {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for _, p := range ps.all {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// stopAll sends SIGTERM to every process still running, waits up to
// grace, then SIGKILLs what is left and waits for it.
func (ps *procs) stopAll(grace time.Duration) error {
	ps.mu.Lock()
	all := append([]*proc(nil), ps.all...)
	ps.mu.Unlock()
	for _, p := range all {
		p.signal(syscall.SIGCONT) // a stopped process cannot act on SIGTERM
		p.signal(syscall.SIGTERM)
	}
	deadline := time.After(grace)
	var errs []error
	for _, p := range all {
		select {
		case <-p.Done():
		case <-deadline:
		}
		if !p.Exited() {
			p.signal(syscall.SIGKILL)
			select {
			case <-p.Done():
			case <-time.After(10 * time.Second):
				errs = append(errs, fmt.Errorf("%s (pid %d) did not exit after SIGKILL", p.Name, p.PID()))
			}
		}
	}
	return errors.Join(errs...)
}
