package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestQuotaPeriod(t *testing.T) {
	for _, c := range []struct {
		share         float64
		quota, period time.Duration
	}{
		{1, 4 * time.Millisecond, 4 * time.Millisecond},
		{0.5, 2 * time.Millisecond, 4 * time.Millisecond},
		{0.25, time.Millisecond, 4 * time.Millisecond},
		{0.1, time.Millisecond, 10 * time.Millisecond}, // the quota at the kernel's minimum
	} {
		q, p := quotaPeriod(c.share)
		if q != c.quota || p != c.period {
			t.Errorf("share %g: quota %s per %s, want %s per %s", c.share, q, p, c.quota, c.period)
		}
	}
	if _, err := newBudget("dnsbench-test", 0); err == nil {
		t.Error("a share of 0 made a budget")
	}
	if _, err := newBudget("dnsbench-test", 1.5); err == nil {
		t.Error("a share above one CPU made a budget")
	}
}

// TestBudgetWritesTheControllerFiles: against a directory laid out as
// cgroup v2's root, then as v1's, a budget makes its cgroup, turns the
// quota on and off in the files of that version and moves a process in.
func TestBudgetWritesTheControllerFiles(t *testing.T) {
	defer func(root string) { cgroupRoot = root }(cgroupRoot)
	read := func(file string) string {
		t.Helper()
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	write := func(file, v string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		name, dir string
		setup     func(root string)
		files     []string // the quota's files, in the cgroup
		off, on   string
	}{
		{name: "v2", dir: "dnsbench-x", setup: func(root string) {
			write(filepath.Join(root, "cgroup.controllers"), "cpuset cpu io memory pids\n")
			write(filepath.Join(root, "cgroup.subtree_control"), "")
		}, files: []string{"cpu.max"}, off: "max 4000", on: "1000 4000"},
		{name: "v1", dir: "cpu/dnsbench-x", setup: func(root string) {
			write(filepath.Join(root, "cpu", "cpu.cfs_quota_us"), "-1\n")
		}, files: []string{"cpu.cfs_period_us", "cpu.cfs_quota_us"}, off: "4000 -1", on: "4000 1000"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cgroupRoot = t.TempDir()
			c.setup(cgroupRoot)
			b, err := newBudget("dnsbench-x", 0.25)
			if err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(cgroupRoot, c.dir)
			quota := func() string {
				var v []string
				for _, f := range c.files {
					v = append(v, read(filepath.Join(dir, f)))
				}
				return strings.Join(v, " ")
			}
			if got := quota(); got != c.off {
				t.Errorf("made: %s = %q, want %q (off)", strings.Join(c.files, ", "), got, c.off)
			}
			if c.name == "v2" && read(filepath.Join(cgroupRoot, "cgroup.subtree_control")) != "+cpu" {
				t.Error("the cpu controller was not enabled for the root's children")
			}
			if err := b.set(true); err != nil {
				t.Fatal(err)
			}
			if got := quota(); got != c.on {
				t.Errorf("on: %q, want %q", got, c.on)
			}
			if err := b.add(4242); err != nil || read(filepath.Join(dir, "cgroup.procs")) != "4242" {
				t.Errorf("add: %v, cgroup.procs %q", err, read(filepath.Join(dir, "cgroup.procs")))
			}
			if err := b.set(false); err != nil || quota() != c.off {
				t.Errorf("off again: %v, %q", err, quota())
			}
		})
	}
	cgroupRoot = t.TempDir()
	if _, err := newBudget("dnsbench-x", 0.25); err == nil || !strings.Contains(err.Error(), "no cgroup cpu controller") {
		t.Errorf("without a cpu controller: %v", err)
	}
}
