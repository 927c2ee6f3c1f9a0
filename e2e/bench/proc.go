package main

import (
	"bytes"
	"context"
	"errors"
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

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat. It
// is 100 on every Linux architecture Go runs on (getconf CLK_TCK); the
// kernel exports jiffies to user space in this fixed unit.
const clockTicks = 100

// proc is a child process the harness started, pinned to one CPU with
// taskset, in its own process group so that it and everything it forks
// (nginx's worker) can be stopped together by that group's id.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string // its stdout and stderr
	done chan struct{}
	err  error // valid once done is closed
}

// startPinned runs `taskset -c cpu bin args...`. taskset execs bin, so the
// child keeps the pid we started, and the affinity is inherited by every
// thread and child process. Pdeathsig kills the child if the harness itself
// dies without cleaning up.
func startPinned(name, dir string, cpu int, bin string, args ...string) (*proc, error) {
	logPath := filepath.Join(dir, name+".out")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd := exec.Command("taskset", append([]string{"-c", strconv.Itoa(cpu), bin}, args...)...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	return p, nil
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

// stop sends sig to the child's process group, and SIGKILL to the group
// if it has not exited after grace. Safe to call twice. (nginx's master
// waits for its worker before it exits, so the group is empty by then.)
func (p *proc) stop(sig syscall.Signal, grace time.Duration) {
	if p == nil || p.exited() {
		return
	}
	pgid := p.pid() // Setpgid made the child the leader of its own group
	syscall.Kill(-pgid, sig)
	select {
	case <-p.done:
	case <-time.After(grace):
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
}

// tail returns the end of the child's output, for error messages.
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

// procStat is what /proc/PID/stat says about CPU time and parentage.
type procStat struct {
	ppid           int
	utime, stime   uint64 // clock ticks, all threads of the process
	cutime, cstime uint64 // of its children that exited and were waited for
}

func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	// The command name (field 2) is in parentheses and may hold spaces or
	// parentheses itself: the fields we want come after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3 (state)
	if len(f) < 15 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	var s procStat
	s.ppid, _ = strconv.Atoi(f[1])                 // field 4
	s.utime, _ = strconv.ParseUint(f[11], 10, 64)  // field 14
	s.stime, _ = strconv.ParseUint(f[12], 10, 64)  // field 15
	s.cutime, _ = strconv.ParseUint(f[13], 10, 64) // field 16
	s.cstime, _ = strconv.ParseUint(f[14], 10, 64) // field 17
	return s, nil
}

// allStats reads /proc/PID/stat of every process.
func allStats() map[int]procStat {
	ents, _ := os.ReadDir("/proc")
	all := make(map[int]procStat, len(ents))
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			if s, err := readStat(pid); err == nil {
				all[pid] = s
			}
		}
	}
	return all
}

// children lists the processes whose parent is pid (nginx's workers).
func children(pid int) []int {
	var out []int
	for c, s := range allStats() {
		if s.ppid == pid {
			out = append(out, c)
		}
	}
	return out
}

// othersTicks is the CPU time, in clock ticks, of every process outside
// this program's own tree (it, the servers, the upstream, the clients),
// kernel threads included. Processes that exited are still counted: their
// time moves to their parent's cutime and cstime when it reaps them, so the
// sum grows by what other processes ran, short-lived ones (compilers, test
// binaries) included. On the two-CPU machines this benchmark is meant for,
// that is what disturbed the measurement; on a bigger machine it also
// counts work on the other CPUs.
func othersTicks() uint64 {
	all := allStats()
	self := os.Getpid()
	ours := func(pid int) bool {
		for range 64 { // parent chains are short; the bound guards against a loop
			if pid == self {
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

// othersSince is the CPU time, in seconds, other processes used since
// othersTicks returned t0.
func othersSince(t0 uint64) float64 { return ticksBetween(t0, othersTicks()) }

// ticksBetween converts the growth of a tick count to seconds. The sum of
// others' ticks can shrink when an exited process is reaped without its
// time being passed on (a parent that ignores SIGCHLD, another PID
// namespace); that counts as no time.
func ticksBetween(t0, t1 uint64) float64 {
	if t1 < t0 {
		return 0
	}
	return float64(t1-t0) / clockTicks
}

// cpuTicks sums utime+stime of pids.
func cpuTicks(pids []int) (uint64, error) {
	var sum uint64
	for _, pid := range pids {
		s, err := readStat(pid)
		if err != nil {
			return 0, err
		}
		sum += s.utime + s.stime
	}
	return sum, nil
}

// rssKB sums VmRSS (resident now) and VmHWM (resident at peak) of pids, in
// KiB. For nginx this counts pages the master and worker share twice; the
// master is small, so the sum is close to what the pair costs.
func rssKB(pids []int) (rss, hwm int64) {
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			switch k {
			case "VmRSS":
				rss += n
			case "VmHWM":
				hwm += n
			}
		}
	}
	return rss, hwm
}

// freeAddr returns a loopback address with a port that was free a moment
// ago. Another program could take it before the server binds it; the
// server then fails to start and the run says so.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// waitFor calls ok every 100 ms until it succeeds, p exits, or timeout.
func waitFor(ctx context.Context, p *proc, timeout time.Duration, ok func() error) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		if last = ok(); last == nil {
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

var errNoOutput = errors.New("no result line in output")

// cpuBusy is the time CPU cpu spent running anything (user, nice, system,
// irq, softirq) since boot, in clock ticks, from /proc/stat.
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
			for _, i := range []int{0, 1, 2, 5, 6} { // user nice system irq softirq
				n, _ := strconv.ParseUint(f[i], 10, 64)
				sum += n
			}
			return sum, nil
		}
	}
	return 0, fmt.Errorf("/proc/stat: no line for cpu%d", cpu)
}

// ctxSwitches sums the voluntary and involuntary context switches of every
// thread of pids. Each switch is a trip through the scheduler; a server
// that parks and wakes a goroutine (or a thread) per read pays for it.
func ctxSwitches(pids []int) int64 {
	var sum int64
	for _, pid := range pids {
		tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		for _, t := range tasks {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", pid, t.Name()))
			if err != nil {
				continue
			}
			for _, line := range strings.Split(string(b), "\n") {
				if k, v, ok := strings.Cut(line, ":"); ok && strings.HasSuffix(k, "ctxt_switches") {
					n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
					sum += n
				}
			}
		}
	}
	return sum
}

// ioCalls sums the read-like and write-like system calls (recv, send,
// readv, writev and the rest) of pids, from /proc/PID/io. Next to the CPU
// time they tell whether a server does more kernel round trips per request
// or more work per round trip.
func ioCalls(pids []int) (reads, writes int64) {
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			k, v, _ := strings.Cut(line, ":")
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			switch k {
			case "syscr":
				reads += n
			case "syscw":
				writes += n
			}
		}
	}
	return reads, writes
}
