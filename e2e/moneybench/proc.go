package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat
// and of the CPU lines of /proc/stat: 100 on every Linux architecture Go
// runs on.
const clockTicks = 100

// proc is a child process this program started, in its own process group
// so that it can be stopped by that group's id, and killed by the kernel
// if this program dies without cleaning up (Pdeathsig).
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string // its stdout and stderr
	done chan struct{}
	err  error // valid once done is closed
}

// start runs bin with args, pinned to cpu with taskset when cpu ≥ 0 (and
// taskset exists). taskset execs bin, so the child keeps the pid we
// started and every thread inherits the affinity.
func start(name, dir string, cpu int, bin string, args ...string) (*proc, error) {
	logPath := filepath.Join(dir, name+".out")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd := pinned(context.Background(), cpu, bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	return p, nil
}

// pinned makes the command `taskset -c cpu bin args...`, or `bin args...`
// when cpu < 0 or taskset is missing, in its own process group.
func pinned(ctx context.Context, cpu int, bin string, args ...string) *exec.Cmd {
	var cmd *exec.Cmd
	if ts, err := exec.LookPath("taskset"); err == nil && cpu >= 0 {
		cmd = exec.CommandContext(ctx, ts, append([]string{"-c", strconv.Itoa(cpu), bin}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, bin, args...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	return cmd
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends sig to the child's process group (its pid: Setpgid made it
// the leader), and SIGKILL if it has not exited after grace. Safe to call
// twice and on nil.
func (p *proc) stop(sig syscall.Signal, grace time.Duration) {
	if p == nil || p.exited() {
		return
	}
	syscall.Kill(-p.pid(), sig)
	select {
	case <-p.done:
	case <-time.After(grace):
		syscall.Kill(-p.pid(), syscall.SIGKILL)
		<-p.done
	}
}

func (p *proc) tail() string { return tailFile(p.log, 2000) }

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.TrimSpace(string(b))
}

// waitFor calls ok every 100 ms until it succeeds, p exits, the context
// ends, or timeout passes.
func waitFor(ctx context.Context, p *proc, timeout time.Duration, ok func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		last := ok()
		if last == nil {
			return nil
		}
		if p != nil && p.exited() {
			return fmt.Errorf("%s exited: %v\n%s", p.name, p.err, p.tail())
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

// freeAddr returns a loopback address whose port was free a moment ago.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// procStat is what /proc/PID/stat says about CPU time and parentage.
type procStat struct {
	ppid           int
	utime, stime   uint64
	cutime, cstime uint64
}

func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	i := bytes.LastIndexByte(b, ')') // the command name may hold anything
	if i < 0 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3 (state)
	if len(f) < 15 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	var s procStat
	s.ppid, _ = strconv.Atoi(f[1])
	s.utime, _ = strconv.ParseUint(f[11], 10, 64)
	s.stime, _ = strconv.ParseUint(f[12], 10, 64)
	s.cutime, _ = strconv.ParseUint(f[13], 10, 64)
	s.cstime, _ = strconv.ParseUint(f[14], 10, 64)
	return s, nil
}

// othersTicks is the CPU time, in clock ticks, of every process outside
// root's process tree (root is this program's harness process): other
// users of the machine and kernel threads.
func othersTicks(root int) uint64 {
	ents, _ := os.ReadDir("/proc")
	all := make(map[int]procStat, len(ents))
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			if s, err := readStat(pid); err == nil {
				all[pid] = s
			}
		}
	}
	ours := func(pid int) bool {
		for range 64 {
			if pid == root {
				return true
			}
			s, ok := all[pid]
			if !ok || pid <= 1 {
				return false
			}
			pid = s.ppid
		}
		return false
	}
	var sum uint64
	for pid, s := range all {
		if !ours(pid) {
			sum += s.utime + s.stime + s.cutime + s.cstime
		}
	}
	return sum
}

// cpuBusy is the time CPU cpu spent running anything since boot, in clock
// ticks (user, nice, system, irq, softirq of /proc/stat).
func cpuBusy(cpu int) (uint64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	prefix := "cpu" + strconv.Itoa(cpu) + " "
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, prefix); ok {
			f := strings.Fields(rest)
			if len(f) < 7 {
				break
			}
			var sum uint64
			for _, i := range []int{0, 1, 2, 5, 6} {
				n, _ := strconv.ParseUint(f[i], 10, 64)
				sum += n
			}
			return sum, nil
		}
	}
	return 0, fmt.Errorf("/proc/stat: no line for cpu%d", cpu)
}

// loadAvg returns the first three fields of /proc/loadavg.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
