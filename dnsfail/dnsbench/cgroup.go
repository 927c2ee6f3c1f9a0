package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// budget holds one server to a share of a CPU while dnsperf runs, with a
// cgroup of its own and a CFS quota (cgroup v2's cpu.max, v1's
// cpu.cfs_quota_us). Left open, every server answers as fast as dnsperf
// asks: on a 2-CPU machine dnsperf's CPU saturates first, near 120k
// queries/s, and the queries/s compare dnsperf with itself. Held to the
// same budget, a server's queries/s are what its CPU per query allows.
type budget struct {
	dir    string
	v2     bool
	period time.Duration
	quota  time.Duration
}

// cgroupRoot is where the budgets' cgroups are made: the root of the
// unified hierarchy, or of v1's cpu controller (a variable for the tests).
var cgroupRoot = "/sys/fs/cgroup"

// newBudget makes a cgroup named name holding its processes to share of
// one CPU once on.
func newBudget(name string, share float64) (*budget, error) {
	if share <= 0 || share > 1 {
		return nil, fmt.Errorf("CPU share %g: want a fraction of one CPU in (0, 1]", share)
	}
	b := new(budget)
	b.quota, b.period = quotaPeriod(share)
	if c, err := os.ReadFile(filepath.Join(cgroupRoot, "cgroup.controllers")); err == nil {
		if !slices.Contains(strings.Fields(string(c)), "cpu") {
			return nil, errors.New("cgroup v2 has no cpu controller")
		}
		// The cpu controller must be on for the root's children.
		if err := os.WriteFile(filepath.Join(cgroupRoot, "cgroup.subtree_control"), []byte("+cpu"), 0o644); err != nil {
			return nil, fmt.Errorf("enable cgroup v2 cpu controller: %w", err)
		}
		b.v2, b.dir = true, filepath.Join(cgroupRoot, name)
	} else if _, err := os.Stat(filepath.Join(cgroupRoot, "cpu", "cpu.cfs_quota_us")); err == nil {
		b.dir = filepath.Join(cgroupRoot, "cpu", name)
	} else {
		return nil, errors.New("no cgroup cpu controller (v2 or v1) under " + cgroupRoot)
	}
	if err := os.Mkdir(b.dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, err
	}
	return b, b.set(false)
}

// quotaPeriod is a CFS quota and period for share of a CPU: a period of
// 4 ms, or longer where the quota would be under the kernel's 1 ms minimum.
func quotaPeriod(share float64) (quota, period time.Duration) {
	period = 4 * time.Millisecond
	if quota = time.Duration(share * float64(period)); quota < time.Millisecond {
		quota, period = time.Millisecond, time.Duration(float64(time.Millisecond)/share)
	}
	return quota, period
}

// add moves a process, with all its threads, into the cgroup.
func (b *budget) add(pid int) error {
	return b.write("cgroup.procs", strconv.Itoa(pid))
}

// set turns the quota on or off (latencies are measured without it).
func (b *budget) set(on bool) error {
	us := func(d time.Duration) string { return strconv.FormatInt(d.Microseconds(), 10) }
	if b.v2 {
		q := "max"
		if on {
			q = us(b.quota)
		}
		return b.write("cpu.max", q+" "+us(b.period))
	}
	if err := b.write("cpu.cfs_period_us", us(b.period)); err != nil {
		return err
	}
	q := "-1"
	if on {
		q = us(b.quota)
	}
	return b.write("cpu.cfs_quota_us", q)
}

func (b *budget) write(file, v string) error {
	return os.WriteFile(filepath.Join(b.dir, file), []byte(v), 0o644)
}

// remove deletes the cgroup once its processes have ended.
func (b *budget) remove() {
	for range 50 {
		if err := os.Remove(b.dir); err == nil || errors.Is(err, os.ErrNotExist) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}
