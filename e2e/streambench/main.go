// Command streambench measures hedge's live-stream fan-out, in one bounded
// run on one machine:
//
//	go run ./e2e/streambench -hedge ./bin/hedge      (make bench runs it)
//
// hedge runs as region a's node, plain-HTTP listener, the stream route as
// the demo configures it, pinned with taskset to -hedge-cpu. A publisher
// process (pion, WHIP) sends a synthesized 2.5 Mbit/s stream: H.264 at
// 30 fps, ~1200-byte packets, an IDR every 2 s and on every PLI, plus Opus
// at 50 packets/s. A viewers process joins K WHEP viewers, each built from
// pion's ICE/STUN, DTLS and SRTP packages on one socket read in batches
// (whep.go): a full pion PeerConnection per viewer filled the client core
// at about 400 viewers, before the node did.
// Both run pinned to -client-cpu. Every payload ends with a tag carrying a
// per-kind counter and its send time, so loss is counted from content:
// the publisher says which counters it sent in a window, each viewer
// counts what it received of them (see media.go).
//
// Per step K (-steps, cumulative): K viewers, a settle pause, then a
// window of -window; reported: loss per viewer for video and audio (max,
// mean, viewers ≥ 1 %), hedge's CPU % over the window (/proc/PID/stat),
// its RSS and RSS per viewer, and the clients' CPU % (when that is near
// 100 % the clients, not hedge, may be the limit). The run reports the
// largest K at < 1 % loss for every viewer.
//
// Then: WHEP time to first packet and to first keyframe for -joins
// viewers joining one by one (the keyframe request on join makes it
// short), and, with -relay, what the inter-region relay adds: region b's
// node (also on -hedge-cpu) pulls the stream from a; one viewer at a and
// one at b record every packet's one-way delay; the report gives the p50
// and p99 of the difference, packet by packet.
//
// Needs Linux, two CPUs and taskset (util-linux). Every process started is
// stopped by its id; the whole run is bounded by -max. Results go to
// -out as stream-<time>.{md,json}.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"

	"hedge/e2e/internal/benchkit"
)

type options struct {
	hedge      string
	steps      []int
	window     time.Duration
	settle     time.Duration
	joins      int
	relay      bool
	bitrate    int
	hedgeCPU   int
	clientCPU  int
	max        time.Duration
	out        string
	stopAtLoss float64
	profile    bool
}

func main() {
	var o options
	role := flag.String("role", "", "internal: run as `publisher` or viewers")
	whip := flag.String("whip", "", "internal: the publisher's WHIP URL")
	steps := flag.String("steps", "50,100,200,300,400,500,600,700,800,900,1000", "viewer counts to step through, ascending")
	flag.StringVar(&o.hedge, "hedge", "", "path of the hedge `binary` to measure (required)")
	flag.DurationVar(&o.window, "window", 10*time.Second, "measured time per step")
	flag.DurationVar(&o.settle, "settle", 2*time.Second, "pause after viewers joined, before the window")
	flag.IntVar(&o.joins, "joins", 20, "viewers joining one by one for time to first frame")
	flag.BoolVar(&o.relay, "relay", true, "measure the delay the inter-region relay adds")
	flag.IntVar(&o.bitrate, "bitrate", 2_500_000, "publisher's bits per second, video and audio")
	flag.IntVar(&o.hedgeCPU, "hedge-cpu", 0, "`cpu` hedge is pinned to")
	flag.IntVar(&o.clientCPU, "client-cpu", 1, "`cpu` the publisher and the viewers are pinned to")
	flag.DurationVar(&o.max, "max", 8*time.Minute, "bound of the whole run")
	flag.Float64Var(&o.stopAtLoss, "stop-at-loss", 0.05, "stop stepping after a step whose mean loss is above this `fraction`")
	flag.BoolVar(&o.profile, "profile", false, "take hedge's CPU profile during each step's window; the report lists the top functions")
	flag.StringVar(&o.out, "out", "e2e/bench/results", "`dir`ectory for the reports")
	flag.Parse()

	switch *role {
	case "publisher":
		benchkit.ExitOnError("publisher:", runPublisher(*whip, studioToken, o.bitrate))
		return
	case "viewers":
		benchkit.ExitOnError("viewers:", runViewers())
		return
	case "":
	default:
		benchkit.ExitOnError("streambench:", fmt.Errorf("unknown -role %q", *role))
	}
	for _, s := range strings.Split(*steps, ",") {
		k, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || k < 1 || (len(o.steps) > 0 && k <= o.steps[len(o.steps)-1]) {
			benchkit.ExitOnError("streambench:", fmt.Errorf("-steps: %q is not an ascending list of counts", *steps))
		}
		o.steps = append(o.steps, k)
	}
	benchkit.ExitOnError("streambench:", run(o))
}

// Loopback addresses of the two regions' nodes: not the demo's, so a demo
// running on this machine is left alone.
const hostA, hostB = "127.0.0.61", "127.0.0.62"

func run(o options) error {
	if err := benchkit.NeedTools("util-linux (make bench-deps)", "taskset"); err != nil {
		return err
	}
	if err := benchkit.DistinctCPUs("-hedge-cpu", o.hedgeCPU, "-client-cpu", o.clientCPU); err != nil {
		return err
	}
	ctx, stop := benchkit.Bounded(o.max)
	defer stop()

	w, err := benchkit.NewWorkspace("hedge-streambench-", o.hedge)
	if err != nil {
		return err
	}
	defer w.Close()
	dir, hedgeBin := w.Dir, w.Hedge
	conf, ports, err := writeConfig(hedgeBin, dir, hostA, hostB)
	if err != nil {
		return err
	}
	port := strconv.Itoa(ports.http)
	baseA := "http://" + net.JoinHostPort(hostA, port) + "/live/"
	baseB := "http://" + net.JoinHostPort(hostB, port) + "/live/"
	const streamName = "bench-1"

	r := &report{Started: time.Now().UTC(), Machine: benchkit.Machine(hedgeBin), Bitrate: o.bitrate, WindowS: o.window.Seconds(),
		HedgeCPU: o.hedgeCPU, ClientCPU: o.clientCPU}
	hA, err := startHedge(ctx, hedgeBin, dir, conf, "a", o.hedgeCPU, baseA)
	if err != nil {
		return err
	}
	defer hA.Stop(syscall.SIGTERM, 5*time.Second)
	r.RSSIdle = rssBytes(hA.PID())

	pub, err := startChild("publisher", dir, o.clientCPU, "-role", "publisher", "-whip", baseA+streamName+"/whip", "-bitrate", strconv.Itoa(o.bitrate))
	if err != nil {
		return err
	}
	defer pub.stop(5 * time.Second)
	if err := pub.read(20*time.Second, nil); err != nil {
		return fmt.Errorf("publisher did not start: %w", err)
	}
	vw, err := startChild("viewers", dir, o.clientCPU, "-role", "viewers")
	if err != nil {
		return err
	}
	defer vw.stop(20 * time.Second)
	time.Sleep(time.Second)
	r.RSSPublisher = rssBytes(hA.PID())
	fmt.Printf("streambench: hedge (pid %d) on cpu %d, publisher and viewers on cpu %d, %s\n", hA.PID(), o.hedgeCPU, o.clientCPU, baseA+streamName)

	// Time to first frame first, on an otherwise idle node.
	var tt struct {
		Joins []join `json:"joins"`
		Error string `json:"error"`
	}
	if err := vw.call(time.Duration(o.joins)*8*time.Second, &tt, "ttff", o.joins, 250, baseA+streamName+"/whep"); err != nil {
		return err
	}
	r.TTFF = summarizeJoins(tt.Joins, tt.Error)
	fmt.Println(r.TTFF.line())

	cur := 0
	for _, k := range o.steps {
		if ctx.Err() != nil {
			r.Notes = append(r.Notes, fmt.Sprintf("stopped before K=%d: %v", k, ctx.Err()))
			break
		}
		var prof func() profileResult
		if o.profile {
			admin := net.JoinHostPort(hostA, strconv.Itoa(ports.admin))
			name := fmt.Sprintf("stream-%s-K%d", r.Started.Format("20060102-150405"), k)
			prof = func() profileResult { return takeProfile(ctx, admin, int(o.window.Seconds())-1, o.out, name) }
		}
		s, err := measureStep(ctx, o, hA.PID(), pub, vw, baseA+streamName+"/whep", k, &cur, prof)
		if err != nil {
			// The steps measured so far still make a report.
			r.Notes = append(r.Notes, fmt.Sprintf("stepping stopped at K=%d: %v", k, err))
			fmt.Println("streambench: K =", k, err)
			break
		}
		r.Steps = append(r.Steps, s)
		fmt.Println(s.line())
		if s.Video.Mean > o.stopAtLoss || s.Audio.Mean > o.stopAtLoss || s.JoinFailed > k/10 {
			r.Notes = append(r.Notes, fmt.Sprintf("stepping stopped after K=%d: mean loss above %.0f %% or more than 10 %% failed joins", k, 100*o.stopAtLoss))
			break
		}
	}
	if err := vw.call(time.Duration(cur)*200*time.Millisecond+time.Minute, nil, "close"); err != nil {
		return err
	}
	r.summarize()

	if o.relay && ctx.Err() == nil {
		rel, err := measureRelay(ctx, o, hedgeBin, dir, conf, baseA, baseB, streamName, vw)
		if err != nil {
			r.Notes = append(r.Notes, "relay: "+err.Error())
		} else {
			r.Relay = rel
			fmt.Println(rel.line())
		}
	}
	var ps map[string]int64
	if err := pub.call(5*time.Second, &ps, "stats"); err == nil {
		r.Publisher = ps
	}
	r.Finished = time.Now().UTC()
	md := r.markdown()
	fmt.Print("\n" + md)
	return benchkit.WriteResults(o.out, "stream-"+r.Started.Format("20060102-150405"), r, md)
}

// measureStep brings the viewers to k and measures one window.
func measureStep(ctx context.Context, o options, hedgePID int, pub, vw *child, whep string, k int, cur *int, profile func() profileResult) (step, error) {
	s := step{K: k}
	if n := k - *cur; n > 0 {
		var add struct {
			Added, Failed int
			Errors        []string
		}
		t0 := time.Now()
		if err := vw.call(time.Duration(n)*2*time.Second+30*time.Second, &add, "add", n, whep); err != nil {
			return s, err
		}
		s.JoinSeconds = time.Since(t0).Seconds()
		s.JoinFailed = add.Failed
		s.JoinErrors = add.Errors
		*cur += add.Added
	}
	s.Viewers = *cur
	select {
	case <-ctx.Done():
		return s, ctx.Err()
	case <-time.After(o.settle):
	}
	from := time.Now().Add(200 * time.Millisecond)
	to := from.Add(o.window)
	if err := vw.call(10*time.Second, nil, "window", from.UnixNano(), to.UnixNano()); err != nil {
		return s, err
	}
	time.Sleep(time.Until(from))
	t0 := time.Now()
	h0, c0 := cpuTicks(hedgePID), cpuTicks(vw.PID())+cpuTicks(pub.PID())
	b0, _ := benchkit.CPUBusy(o.hedgeCPU)
	if profile != nil {
		s.Profile = profile() // returns about a second before the window ends
	}
	time.Sleep(time.Until(to))
	h1, c1 := cpuTicks(hedgePID), cpuTicks(vw.PID())+cpuTicks(pub.PID())
	b1, _ := benchkit.CPUBusy(o.hedgeCPU)
	// The readings' own interval: a late profile or a slow machine may
	// stretch it beyond the window.
	secs := time.Since(t0).Seconds()
	s.HedgeCPU = float64(h1-h0) / benchkit.ClockTicks / secs * 100
	s.ClientCPU = float64(c1-c0) / benchkit.ClockTicks / secs * 100
	s.HedgeCPUBusy = float64(b1-b0) / benchkit.ClockTicks / secs * 100
	s.RSS = rssBytes(hedgePID)
	time.Sleep(time.Second) // packets sent at the window's end arrive
	var sent map[string][2]int64
	if err := pub.call(10*time.Second, &sent, "range", from.UnixNano(), to.UnixNano()); err != nil {
		return s, err
	}
	var rep struct {
		Counts [][2]int64 `json:"counts"`
	}
	if err := vw.call(30*time.Second, &rep, "report"); err != nil {
		return s, err
	}
	s.SentVideo = sent["v"][1] - sent["v"][0] + 1
	s.SentAudio = sent["a"][1] - sent["a"][0] + 1
	s.Video = lossOf(rep.Counts, 0, s.SentVideo)
	s.Audio = lossOf(rep.Counts, 1, s.SentAudio)
	return s, nil
}

// freePort finds a port of network free on both hosts.
func freePort(hostA, hostB, network string) (int, error) {
	for range 20 {
		port, err := tryPort(hostA, 0, network)
		if err != nil {
			return 0, err
		}
		if _, err := tryPort(hostB, port, network); err == nil {
			return port, nil
		}
	}
	return 0, fmt.Errorf("no %s port free on both %s and %s", network, hostA, hostB)
}

func tryPort(host string, port int, network string) (int, error) {
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	if network == "udp" {
		c, err := net.ListenPacket("udp", addr)
		if err != nil {
			return 0, err
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port, nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
