package benchkit

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
)

// ClockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat and
// of the CPU lines of /proc/stat. It is 100 on every Linux architecture Go
// runs on (getconf CLK_TCK); the kernel exports jiffies to user space in
// this fixed unit.
const ClockTicks = 100

// Stat is what /proc/PID/stat says about CPU time and parentage.
type Stat struct {
	PPID           int
	Utime, Stime   uint64 // clock ticks, all threads of the process
	Cutime, Cstime uint64 // of its children that exited and were waited for
}

// ReadStat reads /proc/PID/stat.
func ReadStat(pid int) (Stat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return Stat{}, err
	}
	// The command name (field 2) is in parentheses and may hold spaces or
	// parentheses itself: the fields we want come after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return Stat{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3 (state)
	if len(f) < 15 {
		return Stat{}, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	var s Stat
	s.PPID, _ = strconv.Atoi(f[1])                 // field 4
	s.Utime, _ = strconv.ParseUint(f[11], 10, 64)  // field 14
	s.Stime, _ = strconv.ParseUint(f[12], 10, 64)  // field 15
	s.Cutime, _ = strconv.ParseUint(f[13], 10, 64) // field 16
	s.Cstime, _ = strconv.ParseUint(f[14], 10, 64) // field 17
	return s, nil
}

// AllStats reads /proc/PID/stat of every process.
func AllStats() map[int]Stat {
	ents, _ := os.ReadDir("/proc")
	all := make(map[int]Stat, len(ents))
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			if s, err := ReadStat(pid); err == nil {
				all[pid] = s
			}
		}
	}
	return all
}

// Children lists the processes whose parent is pid (nginx's workers).
func Children(pid int) []int {
	var out []int
	for c, s := range AllStats() {
		if s.PPID == pid {
			out = append(out, c)
		}
	}
	return out
}

// CPUTicks sums utime+stime of pids, in clock ticks. It fails, with 0, if
// any of them cannot be read (it exited).
func CPUTicks(pids ...int) (uint64, error) {
	var sum uint64
	for _, pid := range pids {
		s, err := ReadStat(pid)
		if err != nil {
			return 0, err
		}
		sum += s.Utime + s.Stime
	}
	return sum, nil
}

// OthersTicks is the CPU time, in clock ticks, of every process outside
// root's process tree (root is the harness: it, the servers, the load
// generators), kernel threads included. Processes that exited are still
// counted: their time moves to their parent's cutime and cstime when it
// reaps them, so the sum grows by what other processes ran, short-lived
// ones (compilers, test binaries) included.
func OthersTicks(root int) uint64 {
	all := AllStats()
	ours := func(pid int) bool {
		for range 64 { // parent chains are short; the bound guards against a loop
			if pid == root {
				return true
			}
			s, ok := all[pid]
			if !ok || pid <= 1 {
				return false
			}
			pid = s.PPID
		}
		return false
	}
	var sum uint64
	for pid, s := range all {
		if !ours(pid) {
			sum += s.Utime + s.Stime + s.Cutime + s.Cstime
		}
	}
	return sum
}

// DistinctCPUs fails unless a and b are two different CPUs of this
// machine: online ones, read from /proc/stat, so that the answer does not
// depend on the CPUs this process is pinned to. flagA and flagB name the
// flags that chose them, for the error.
func DistinctCPUs(flagA string, a int, flagB string, b int) error {
	_, errA := CPUBusy(a)
	_, errB := CPUBusy(b)
	if a == b || errA != nil || errB != nil {
		return fmt.Errorf("need two distinct CPUs of this machine for %s (%d) and %s (%d)", flagA, a, flagB, b)
	}
	return nil
}

// CPUBusy is the time CPU cpu spent running anything (user, nice, system,
// irq, softirq) since boot, in clock ticks, from /proc/stat.
func CPUBusy(cpu int) (uint64, error) {
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

// SumFields sums, over pids, the values of keys in /proc/PID/file, in the
// order of keys.
func SumFields(pids []int, file string, keys ...string) []int64 {
	sums := make([]int64, len(keys))
	for _, pid := range pids {
		ProcFields(fmt.Sprintf("/proc/%d/%s", pid, file), func(k string, n int64) {
			if i := slices.Index(keys, k); i >= 0 {
				sums[i] += n
			}
		})
	}
	return sums
}

// ProcFields calls f with each "key: number" line of a /proc file (a
// "kB" unit dropped); a missing file (the process has gone) has none.
func ProcFields(path string, f func(k string, n int64)) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		f(k, n)
	}
}
