package drill

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Options are what `hedge drill` passes in.
type Options struct {
	Config    *Config
	Scenarios []Scenario
	Hedge     string // the hedge binary every process runs
	Dir       string // reports, logs, configurations
	Loopback  bool
	Log       io.Writer // progress lines
}

// run is one scenario's rehearsal on a fresh deployment.
type run struct {
	sc  Scenario
	d   *deployment
	mon *monitor

	players []*player
	video   *video
	start   time.Time // players start
	fault   time.Time
	healed  time.Time

	mu         sync.Mutex
	steps      []Step
	approvedAt time.Time
}

// Run rehearses each scenario on a fresh deployment and returns their
// results. An error means a drill could not be run at all; a result may
// still carry failed checks.
func Run(ctx context.Context, o Options) ([]*Result, error) {
	if !o.Loopback {
		if err := CheckNamespaces(); err != nil {
			return nil, err
		}
	}
	replicates, err := ledgersimReplicates(o.Hedge)
	if err != nil {
		return nil, err
	}
	for _, sc := range o.Scenarios {
		if sc.Standby && !replicates {
			return nil, fmt.Errorf("%s: %s ledgersim does not replicate over the network (no -replica, -writer, -replication, -auto-promote-after flags): "+
				"there is no standby to promote, so it cannot be rehearsed with this binary", sc.Name, o.Hedge)
		}
	}
	var out []*Result
	for _, sc := range o.Scenarios {
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
		fmt.Fprintf(o.Log, "drill %s: %s\n", sc.Name, sc.Description)
		res, err := runScenario(ctx, o, sc)
		if err != nil {
			return out, fmt.Errorf("%s: %w", sc.Name, err)
		}
		out = append(out, res)
		for _, f := range []struct {
			name string
			fn   func(io.Writer, *Result) error
		}{{"report.txt", WriteText}, {"report.json", WriteJSON}, {"timeline.svg", WriteSVG}} {
			if err := writeFile(filepath.Join(o.Dir, sc.Name, f.name), res, f.fn); err != nil {
				return out, err
			}
		}
		WriteText(o.Log, res)
	}
	return out, nil
}

func writeFile(path string, res *Result, fn func(io.Writer, *Result) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := fn(f, res); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func runScenario(ctx context.Context, o Options, sc Scenario) (res *Result, err error) {
	cfg := o.Config
	dir := filepath.Join(o.Dir, sc.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	topo := NewTopology(cfg.Domains(), o.Loopback)
	if sc.Name == "partition" && o.Loopback {
		return nil, errors.New("a partition needs network namespaces: on --loopback every process shares the host's interface (run as root without --loopback)")
	}
	d := newDeployment(cfg, topo, o.Hedge, dir)
	defer func() {
		if serr := d.stop(); serr != nil && err == nil {
			err = fmt.Errorf("stopping the deployment: %w", serr)
		}
	}()
	t0 := time.Now()
	if err := d.start(ctx); err != nil {
		return nil, err
	}
	fmt.Fprintf(o.Log, "drill %s: %d processes ready in %.1fs (%s)\n", sc.Name, len(d.procs.find("", "")), time.Since(t0).Seconds(), modeName(o.Loopback))

	r := &run{sc: sc, d: d, mon: newMonitor(d)}
	go r.mon.run()
	defer r.mon.close()
	if r.video, err = d.startVideo(ctx); err != nil {
		return nil, err
	}
	defer r.video.close()

	// Players: half of each domain; each asks its own region's DNS
	// server first (the nearest), the other next.
	runID := randomToken()[:6]
	doms := cfg.Domains()
	for i := 0; i < cfg.Players; i++ {
		near := i % len(d.dns)
		var resolvers []string
		for k := range d.dns {
			n := d.dns[(near+k)%len(d.dns)]
			resolvers = append(resolvers, net.JoinHostPort(n.IP, fmt.Sprint(portDNS)))
		}
		p, err := newPlayer(d, i, doms[(i/len(d.dns))%len(doms)], resolvers, float64(i%100) < cfg.BalanceShare*100, runID)
		if err != nil {
			return nil, err
		}
		r.players = append(r.players, p)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	r.start = time.Now()
	for _, p := range r.players {
		wg.Go(func() { p.run(stop, r.start) })
	}
	stopped := false
	stopPlayers := func() {
		if !stopped {
			close(stop)
			stopped = true
		}
	}
	defer func() { stopPlayers(); wg.Wait() }()

	if !sleepCtx(ctx, cfg.Warmup) {
		return nil, ctx.Err()
	}
	r.mon.snapshot()
	r.fault = time.Now()
	if err := sc.inject(r); err != nil {
		return nil, fmt.Errorf("injecting the fault: %w", err)
	}
	fmt.Fprintf(o.Log, "drill %s: fault injected after %.1fs of play; observing for %v\n", sc.Name, cfg.Warmup.Seconds(), cfg.Observe)
	opStop := make(chan struct{})
	var opWG sync.WaitGroup
	if sc.Standby && cfg.Promotion == PromoteFourEyes {
		opWG.Go(func() { r.fourEyes(opStop) })
	}
	ok := sleepCtx(ctx, cfg.Observe)
	close(opStop)
	opWG.Wait()
	stopPlayers()
	r.video.close()
	wg.Wait() // bets under way finish: acknowledged or given up at their deadline
	if !ok {
		return nil, ctx.Err()
	}
	if sc.Name == "partition" {
		if err := d.topo.Heal(r.lostRegion()); err != nil {
			return nil, err
		}
		r.healed = time.Now()
		// Let the old writer hear it has been fenced before reading it.
		sleepCtx(ctx, 2*time.Second)
	}
	r.mon.close() // no periodic read may land after the final one
	r.mon.final()
	return r.analyze(o.Loopback), nil
}

func modeName(loopback bool) string {
	if loopback {
		return "loopback: 127.x addresses, faults by signals"
	}
	return "network namespaces: one per region, veth pairs to a WAN bridge"
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}
