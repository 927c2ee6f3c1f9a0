package main

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"
)

// measureRelay starts region b's node, joins one viewer at a and one at b
// (which makes b pull the stream from a over WHEP), and compares the
// one-way delay of every packet both received.
func measureRelay(ctx context.Context, o options, hedgeBin, dir, conf, baseA, baseB, streamName string, vw *child) (*relayResult, error) {
	hB, err := startHedge(ctx, hedgeBin, dir, conf, "b", o.hedgeCPU, baseB)
	if err != nil {
		return nil, err
	}
	defer hB.Stop(syscall.SIGTERM, 5*time.Second)
	var add struct {
		Added  int
		Errors []string
	}
	for _, base := range []string{baseA, baseB} {
		if err := vw.call(60*time.Second, &add, "add", 1, base+streamName+"/whep", "record"); err != nil {
			return nil, err
		}
		if add.Added != 1 {
			return nil, fmt.Errorf("viewer at %s did not join: %v", base, add.Errors)
		}
	}
	time.Sleep(o.settle)
	from := time.Now().Add(200 * time.Millisecond)
	to := from.Add(o.window)
	if err := vw.call(10*time.Second, nil, "window", from.UnixNano(), to.UnixNano()); err != nil {
		return nil, err
	}
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(time.Until(to) + time.Second):
	}
	var d struct {
		Delays []map[string]map[uint32]int64 `json:"delays"`
	}
	if err := vw.call(30*time.Second, &d, "delays"); err != nil {
		return nil, err
	}
	_ = vw.call(30*time.Second, nil, "close")
	if len(d.Delays) != 2 {
		return nil, fmt.Errorf("expected 2 recording viewers, got %d", len(d.Delays))
	}
	return relayDelays(d.Delays[0], d.Delays[1])
}

// relayDelays compares per-packet one-way delays at a and at b (ns).
func relayDelays(a, b map[string]map[uint32]int64) (*relayResult, error) {
	r := &relayResult{}
	var da, db, diff []float64
	for _, kind := range []string{"v", "a"} {
		for c, x := range a[kind] {
			y, ok := b[kind][c]
			if !ok {
				r.MissingAtB++
				continue
			}
			da = append(da, float64(x)/1e6)
			db = append(db, float64(y)/1e6)
			diff = append(diff, float64(y-x)/1e6)
		}
	}
	r.Packets = len(diff)
	if r.Packets == 0 {
		return nil, errors.New("no packet reached both viewers")
	}
	r.AP50Ms, r.AP99Ms = quantile(da, 0.5), quantile(da, 0.99)
	r.BP50Ms, r.BP99Ms = quantile(db, 0.5), quantile(db, 0.99)
	r.DiffP50Ms, r.DiffP99 = quantile(diff, 0.5), quantile(diff, 0.99)
	return r, nil
}
