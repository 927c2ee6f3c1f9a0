package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestProcFields(t *testing.T) {
	path := filepath.Join(t.TempDir(), "status")
	if err := os.WriteFile(path, []byte("Name:\tbench\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\nno colon\nvoluntary_ctxt_switches:\t7\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	procFields(path, func(k string, n int64) { got[k] = n })
	want := map[string]int64{"Name": 0, "VmHWM": 2048, "VmRSS": 1024, "voluntary_ctxt_switches": 7}
	if len(got) != len(want) {
		t.Fatalf("procFields: got %v, want %v", got, want)
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("procFields %s: got %d, want %d", k, got[k], n)
		}
	}
	procFields(filepath.Join(t.TempDir(), "gone"), func(k string, _ int64) { t.Errorf("a missing file gave field %q", k) })
}

func TestSumFieldsOfThisProcess(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc")
	}
	self := os.Getpid()
	rss, hwm := rssKB([]int{self})
	if rss <= 0 || hwm < rss {
		t.Fatalf("rssKB(self) = %d, %d; want 0 < VmRSS ≤ VmHWM", rss, hwm)
	}
	if twice, _ := rssKB([]int{self, self}); twice < 2*rss-rss/2 {
		t.Fatalf("rssKB of self twice = %d, want about %d (summed over pids)", twice, 2*rss)
	}
	if ctxSwitches([]int{self}) <= 0 {
		t.Fatal("ctxSwitches(self) = 0")
	}
}
