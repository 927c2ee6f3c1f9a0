package main

import (
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
