package main

import (
	"os"
	"testing"
)

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
