package main

// What this harness reads of /proc beyond what benchkit shares.

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"hedge/e2e/internal/benchkit"
)

// othersTicks is the CPU time, in clock ticks, of every process outside
// this program's own tree (it, the servers, the upstream, the clients),
// kernel threads included (see benchkit.OthersTicks). On the two-CPU
// machines this benchmark is meant for, that is what disturbed the
// measurement; on a bigger machine it also counts work on the other CPUs.
func othersTicks() uint64 { return benchkit.OthersTicks(os.Getpid()) }

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
	return float64(t1-t0) / benchkit.ClockTicks
}

// rssKB sums VmRSS (resident now) and VmHWM (resident at peak) of pids, in
// KiB. For nginx this counts pages the master and worker share twice; the
// master is small, so the sum is close to what the pair costs.
func rssKB(pids []int) (rss, hwm int64) {
	v := benchkit.SumFields(pids, "status", "VmRSS", "VmHWM")
	return v[0], v[1]
}

var errNoOutput = errors.New("no result line in output")

// ctxSwitches sums the voluntary and involuntary context switches of every
// thread of pids. Each switch is a trip through the scheduler; a server
// that parks and wakes a goroutine (or a thread) per read pays for it.
func ctxSwitches(pids []int) int64 {
	var sum int64
	for _, pid := range pids {
		tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		for _, t := range tasks {
			benchkit.ProcFields(fmt.Sprintf("/proc/%d/task/%s/status", pid, t.Name()), func(k string, n int64) {
				if strings.HasSuffix(k, "ctxt_switches") {
					sum += n
				}
			})
		}
	}
	return sum
}

// ioCalls sums the read-like and write-like system calls (recv, send,
// readv, writev and the rest) of pids, from /proc/PID/io. Next to the CPU
// time they tell whether a server does more kernel round trips per request
// or more work per round trip.
func ioCalls(pids []int) (reads, writes int64) {
	v := benchkit.SumFields(pids, "io", "syscr", "syscw")
	return v[0], v[1]
}
