package drill

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// fixture is a region-down rehearsal written by hand: two players per
// domain, the fault at t0+5s, what the players were told and what the
// ledgers recorded.
type fixture struct {
	r     *run
	t0    time.Time
	fault time.Time
}

func newFixture(t *testing.T, promotion string) *fixture {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Players = 4
	cfg.Promotion = promotion
	d := newDeployment(cfg, NewTopology(cfg.Domains(), true), "hedge", t.TempDir())
	sc, _ := ScenarioByName("region-down")
	f := &fixture{t0: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	f.fault = f.t0.Add(5 * time.Second)
	f.r = &run{sc: sc, d: d, mon: newMonitor(d), start: f.t0, fault: f.fault}
	for i, dom := range []string{"sea", "sea", "eu", "eu"} {
		f.r.players = append(f.r.players, &player{id: i, account: fmt.Sprintf("p%04d", i), domain: dom})
	}
	return f
}

func (f *fixture) at(s float64) time.Time {
	return f.fault.Add(time.Duration(s * float64(time.Second)))
}

// bet records one bet of player p placed at first (seconds from the
// fault) and acknowledged at ack (NaN: given up), with its attempts.
func (f *fixture) bet(p int, key string, first, ack float64, statuses ...int) {
	pl := f.r.players[p]
	b := Bet{Key: key, Player: p, Account: pl.account, Domain: pl.domain, First: f.at(first), Attempts: len(statuses) + 1}
	for i, st := range statuses {
		pl.attempts = append(pl.attempts, Attempt{At: f.at(first + 0.1*float64(i)), Player: p, Domain: pl.domain, Kind: "bet", Status: st, Problem: "writer-unavailable"})
	}
	if ack == ack { // not NaN
		b.Acked, b.AckAt = true, f.at(ack)
		pl.attempts = append(pl.attempts, Attempt{At: f.at(ack - 0.002), Dur: 2 * time.Millisecond, Player: p, Domain: pl.domain, Kind: "bet", Status: 201})
	} else {
		b.Refused = "deadline"
	}
	pl.bets = append(pl.bets, b)
}

// sample records what the monitor saw at s seconds from the fault.
func (f *fixture) sample(s float64, roles map[string]roleAnswer, dns map[string][]string) {
	f.r.mon.samples = append(f.r.mon.samples, Sample{At: f.at(s), Roles: roles, DNS: dns})
}

func (f *fixture) book(ledger string, receipts []receipt, applied []appliedKey) {
	f.r.mon.books[ledger] = ledgerBook{At: f.at(-0.1), Receipts: receipts, Applied: applied}
}

func (f *fixture) edgeIPs(region string) []string {
	var out []string
	for _, e := range f.r.d.edges {
		if e.Region == region {
			out = append(out, e.IP)
		}
	}
	return out
}

// clean is a region loss that goes right: sea's replica promoted at +2s,
// every acknowledged sea bet at it, DNS moved at +1s.
func (f *fixture) clean() {
	both := append(f.edgeIPs("sea"), f.edgeIPs("eu")...)
	before := map[string]roleAnswer{
		"sea-writer": {Role: "writer", Domain: "sea", Epoch: 1}, "sea-replica": {Role: "replica", Domain: "sea", Epoch: 1},
		"eu-writer": {Role: "writer", Domain: "eu", Epoch: 1}, "eu-replica": {Role: "replica", Domain: "eu", Epoch: 1},
	}
	after := map[string]roleAnswer{
		"sea-replica": {Role: "writer", Domain: "sea", Epoch: 2},
		"eu-writer":   {Role: "writer", Domain: "eu", Epoch: 1, Replication: "degraded"},
	}
	f.sample(-1, before, map[string][]string{"sea-dns": both, "eu-dns": both})
	f.sample(0.5, map[string]roleAnswer{"eu-writer": after["eu-writer"]}, map[string][]string{"eu-dns": both})
	f.sample(1.2, map[string]roleAnswer{"eu-writer": after["eu-writer"]}, map[string][]string{"eu-dns": f.edgeIPs("eu")})
	f.sample(2.0, after, map[string][]string{"eu-dns": f.edgeIPs("eu")})
	f.sample(9.0, after, map[string][]string{"eu-dns": f.edgeIPs("eu")})

	f.bet(0, "s0-before", -1, -0.99)
	f.bet(1, "s1-before", -0.5, -0.49)
	f.bet(1, "s1-warm-up", -3, -2.5, 503, 503) // retried twice, but done before the fault
	f.bet(0, "s0-after", 0.1, 2.3, 503, 503)
	f.bet(1, "s1-after", 0.4, 3.1, 503, 503, 503)
	f.bet(2, "e2-after", 0.2, 0.25)
	f.bet(3, "e3-after", 0.6, 0.7)
	var replica []appliedKey
	for _, k := range []string{"s0-before", "s0-after"} {
		replica = append(replica, appliedKey{Key: k, Account: "p0000", Count: 1})
	}
	for _, k := range []string{"s1-before", "s1-warm-up", "s1-after"} {
		replica = append(replica, appliedKey{Key: k, Account: "p0001", Count: 1})
	}
	f.book("sea-replica", []receipt{
		{Key: "s0-after", Account: "p0000", Epoch: 2, AppliedEpoch: 2, At: f.at(2.2), Outcome: "applied"},
		{Key: "s1-after", Account: "p0001", Epoch: 2, AppliedEpoch: 2, At: f.at(3.0), Outcome: "applied"},
	}, replica)
	f.book("eu-writer", []receipt{
		{Key: "e2-after", Account: "p0002", Epoch: 1, AppliedEpoch: 1, At: f.at(0.2), Outcome: "applied"},
		{Key: "e3-after", Account: "p0003", Epoch: 1, AppliedEpoch: 1, At: f.at(0.6), Outcome: "applied"},
	}, []appliedKey{{Key: "e2-after", Account: "p0002", Count: 1}, {Key: "e3-after", Account: "p0003", Count: 1}})
}

func checkNamed(res *Result, prefix string) (Check, bool) {
	for _, c := range res.Checks {
		if strings.HasPrefix(c.Name, prefix) {
			return c, true
		}
	}
	return Check{}, false
}

// TestAnalyze: RTO, DNS move, RPO, double-applies and stale-epoch writes
// come out of the players' bets, the monitor's samples and the ledgers'
// books as the README defines them, and a broken invariant fails its check.
func TestAnalyze(t *testing.T) {
	for _, tc := range []struct {
		name   string
		break_ func(f *fixture)
		// wanted numbers
		rpo, doubles, stale int
		failed              []string // checks that must fail; all others pass
	}{
		{name: "clean region loss"},
		{name: "an acknowledged bet missing from the new writer",
			break_: func(f *fixture) {
				b := f.r.mon.books["sea-replica"]
				b.Applied = b.Applied[1:] // s0-before gone
				f.r.mon.books["sea-replica"] = b
			},
			rpo: 1, failed: []string{"RPO"}},
		{name: "a key applied by two writers",
			break_: func(f *fixture) {
				b := f.r.mon.books["sea-replica"]
				b.Receipts = append(b.Receipts, receipt{Key: "e2-after", Account: "p0002", Epoch: 2, AppliedEpoch: 2, At: f.at(4), Outcome: "applied"})
				f.r.mon.books["sea-replica"] = b
			},
			doubles: 1, failed: []string{"double-applies"}},
		{name: "the old writer applies after the new epoch was seen",
			break_: func(f *fixture) {
				f.book("sea-writer", []receipt{{Key: "late", Account: "p0000", Epoch: 1, AppliedEpoch: 1, At: f.at(2.5), Outcome: "applied"}}, nil)
			},
			stale: 1, failed: []string{"stale-epoch"}},
		{name: "a surviving player gives up",
			break_: func(f *fixture) { f.bet(2, "e2-lost", 1, nanf()) },
			failed: []string{"eu: bets given up"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, PromoteAuto)
			f.clean()
			if tc.break_ != nil {
				tc.break_(f)
			}
			res := f.r.analyze(true)
			if res.RPOMissing != tc.rpo || res.DoubleApplies != tc.doubles || res.StaleEpochWrites != tc.stale {
				t.Errorf("RPO, double-applies, stale-epoch writes: expected %d, %d, %d, got %d, %d, %d",
					tc.rpo, tc.doubles, tc.stale, res.RPOMissing, res.DoubleApplies, res.StaleEpochWrites)
			}
			if res.DNSMove == nil || *res.DNSMove != 1.2 {
				t.Errorf("DNS move: expected 1.2s (the first sample naming no sea edge), got %s", fmtSecs(res.DNSMove))
			}
			sea := res.Domains[0]
			if sea.Domain != "sea" || sea.RTOFirst == nil || *sea.RTOFirst != 2.3 || sea.RTO99 == nil || *sea.RTO99 != 3.1 {
				t.Errorf("sea RTO: expected first 2.3s and 99%% 3.1s (the later of its two players), got %+v %s %s", sea, fmtSecs(sea.RTOFirst), fmtSecs(sea.RTO99))
			}
			if sea.Refusals503["writer-unavailable"] != 5 || sea.RetriedTwice != 2 {
				t.Errorf("sea refusals: expected 5 writer-unavailable and 2 bets retried more than once, got %v and %d", sea.Refusals503, sea.RetriedTwice)
			}
			for _, c := range res.Checks {
				want := true
				for _, f := range tc.failed {
					if strings.HasPrefix(c.Name, f) {
						want = false
					}
				}
				if c.OK != want {
					t.Errorf("check %q: expected ok=%v, got ok=%v (got %s, target %s)", c.Name, want, c.OK, c.Got, c.Target)
				}
			}
			for _, f := range tc.failed {
				if _, ok := checkNamed(res, f); !ok {
					t.Errorf("no check named %q in %+v", f, res.Checks)
				}
			}
		})
	}
}

func nanf() float64 { var z float64; return z / z }

// TestAnalyzeFourEyes: with four-eyes promotion the lost domain's RTO
// target counts from the second approval, and a promotion never approved
// fails it.
func TestAnalyzeFourEyes(t *testing.T) {
	for _, tc := range []struct {
		name     string
		approved float64 // seconds after the fault; 0: never
		want     string
		ok       bool
	}{
		{"approved 1.5s after the fault", 1.5, "1.600s", true},
		{"approved at once, slow to recover", 0.5, "2.600s", false},
		{"never approved", 0, "no approval", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, PromoteFourEyes)
			f.clean()
			if tc.approved > 0 {
				f.r.approvedAt = f.at(tc.approved)
			}
			c, ok := checkNamed(f.r.analyze(true), "sea: RTO, second approval")
			if !ok || c.Got != tc.want || c.OK != tc.ok {
				t.Errorf("four-eyes RTO check: expected got=%q ok=%v, got %+v (found %v)", tc.want, tc.ok, c, ok)
			}
		})
	}
}

// TestTimelineWriters: the timeline names each domain's writer and epoch
// per second from the monitor's samples, and a degraded writer says so.
func TestTimelineWriters(t *testing.T) {
	f := newFixture(t, PromoteAuto)
	f.clean()
	res := f.r.analyze(true)
	byT := map[int]Second{}
	for _, s := range res.Timeline {
		byT[s.T] = s
	}
	for _, tc := range []struct {
		t       int
		sea, eu string
	}{
		{-1, "sea-writer@1", "eu-writer@1"},
		{0, "none", "eu-writer@1 degraded"},
		{2, "sea-replica@2", "eu-writer@1 degraded"},
	} {
		s, ok := byT[tc.t]
		if !ok || s.Writers["sea"] != tc.sea || s.Writers["eu"] != tc.eu {
			t.Errorf("writers at %ds: expected sea=%s eu=%s, got %v (present %v)", tc.t, tc.sea, tc.eu, s.Writers, ok)
		}
	}
	if s := byT[0]; s.Bets != 7 || s.Acked != 2 || s.Failed["503 writer-unavailable"] != 5 {
		t.Errorf("second 0: expected 7 attempts, 2 acknowledged, 5 × 503 writer-unavailable, got %d, %d, %v", s.Bets, s.Acked, s.Failed)
	}
}

// TestVideoStats: a table's interruption is its viewers' longest wait for
// a new part from the fault on (to the end of the run for a viewer that
// never got one again), beside the longest wait before the fault.
func TestVideoStats(t *testing.T) {
	f := newFixture(t, PromoteAuto)
	f.clean()
	st := &studio{table: "table-sea"}
	vid := &video{studios: []*studio{st}}
	every := func(from, to, step float64) []arrival {
		var out []arrival
		for s := from; s <= to+1e-9; s += step {
			out = append(out, arrival{At: f.at(s), Via: viaHLS})
		}
		return out
	}
	observe := f.r.d.cfg.Observe.Seconds()
	vid.viewers = []*viewer{
		{table: "table-sea", progress: every(-4, observe, 0.2)},                                   // never interrupted
		{table: "table-sea", progress: append(every(-4, -0.1, 0.3), every(3.4, observe, 0.2)...)}, // 3.5s gap over the fault
		{table: "table-sea", progress: every(-4, -0.5, 0.2)},                                      // never resumed
		{table: "table-eu", progress: every(-4, observe, 0.2)},
	}
	f.r.video = vid
	res := f.r.analyze(true)
	if len(res.Video) != 2 || res.Video[1].Table != "table-eu" || res.Video[1].NeverResumed != 0 {
		t.Fatalf("video stats: expected table-sea and an uninterrupted table-eu, got %+v", res.Video)
	}
	v := res.Video[0]
	want := VideoStats{Table: "table-sea", Viewers: 3, BaselineMax: 0.3, InterruptedMax: observe + 0.6, InterruptedP50: 3.5, NeverResumed: 1,
		InterruptedHLS: observe + 0.6, OnHLS: 3}
	v.Studio = nil
	if !reflect.DeepEqual(v, want) {
		t.Errorf("table-sea: expected %+v, got %+v", want, v)
	}
	byT := map[int]Second{}
	for _, s := range res.Timeline {
		byT[s.T] = s
	}
	if s := byT[1]; s.Viewers != 4 || s.Watching != 2 {
		t.Errorf("second 1: expected 2 of 4 viewers with a new part, got %d of %d", s.Watching, s.Viewers)
	}
}

// TestPlaylistParsing: the viewer follows the first media playlist of a
// multivariant playlist and the newest part of a media playlist.
func TestPlaylistParsing(t *testing.T) {
	multi := "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-STREAM-INF:BANDWIDTH=1000000,CODECS=\"avc1.42e01f\"\nvideo1_stream.m3u8\n"
	if got := firstURI([]byte(multi)); got != "video1_stream.m3u8" {
		t.Errorf("firstURI: expected video1_stream.m3u8, got %q", got)
	}
	for _, tc := range []struct{ name, playlist, want string }{
		{"parts after the last segment", "#EXTM3U\n#EXTINF:1.0,\nseg7.mp4\n#EXT-X-PART:DURATION=0.2,URI=\"part8.0.mp4\",INDEPENDENT=YES\n#EXT-X-PART:DURATION=0.2,URI=\"part8.1.mp4\"\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part8.2.mp4\"\n", "part8.1.mp4"},
		{"a segment just completed", "#EXTM3U\n#EXT-X-PART:DURATION=0.2,URI=\"part8.4.mp4\"\n#EXTINF:1.0,\nseg8.mp4\n", "seg8.mp4"},
		{"empty", "#EXTM3U\n", ""},
	} {
		if got := lastPart([]byte(tc.playlist)); got != tc.want {
			t.Errorf("lastPart, %s: expected %q, got %q", tc.name, tc.want, got)
		}
	}
}

// TestDNSMoveBeforeHealing: after a partition heals, DNS names the region
// again; the move is measured on the samples before the healing.
func TestDNSMoveBeforeHealing(t *testing.T) {
	f := newFixture(t, PromoteAuto)
	f.clean()
	both := append(f.edgeIPs("sea"), f.edgeIPs("eu")...)
	f.r.healed = f.at(20)
	f.sample(21, nil, map[string][]string{"eu-dns": both, "sea-dns": both})
	if res := f.r.analyze(true); res.DNSMove == nil || *res.DNSMove != 1.2 {
		t.Errorf("DNS move with a healed partition: expected 1.2s, got %s", fmtSecs(res.DNSMove))
	}
	f.r.healed = time.Time{}
	if res := f.r.analyze(true); res.DNSMove != nil {
		t.Errorf("DNS move when the region is named again without healing: expected never, got %s", fmtSecs(res.DNSMove))
	}
}

// TestVideoGaps: a viewer's interruption is its longest wait for new media
// from the fault on, whichever transport brought it, and is charged to the
// transport that ended it (the wait after the last arrival, to the one the
// viewer is on at the end).
func TestVideoGaps(t *testing.T) {
	fault := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return fault.Add(time.Duration(s * float64(time.Second))) }
	run := func(via transport, from, to, step float64) []arrival {
		var out []arrival
		for s := from; s <= to+1e-9; s += step {
			out = append(out, arrival{At: at(s), Via: via})
		}
		return out
	}
	cat := func(parts ...[]arrival) []arrival {
		var out []arrival
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	end := at(10)
	tests := []struct {
		name     string
		progress []arrival
		now      transport
		want     gaps
	}{
		{"WebRTC throughout", run(viaWebRTC, -2, 10, 0.5), viaWebRTC,
			gaps{Baseline: 0.5, Interrupted: 0.5, By: [2]float64{viaWebRTC: 0.5}, Resumed: true}},
		{"WebRTC lost, LL-HLS resumes, WebRTC takes over again",
			cat(run(viaWebRTC, -2, -0.5, 0.5), run(viaHLS, 2.5, 5, 0.5), run(viaWebRTC, 5.25, 10, 0.25)), viaWebRTC,
			gaps{Baseline: 0.5, Interrupted: 3, By: [2]float64{viaHLS: 3, viaWebRTC: 0.25}, Resumed: true}},
		{"LL-HLS lost, WebRTC resumes", cat(run(viaHLS, -2, 0, 1), run(viaWebRTC, 4, 10, 1)), viaWebRTC,
			gaps{Baseline: 1, Interrupted: 4, By: [2]float64{viaWebRTC: 4}, Resumed: true}},
		{"never resumed: waits to the end on its last transport", run(viaWebRTC, -2, -1, 1), viaHLS,
			gaps{Baseline: 1, Interrupted: 11, By: [2]float64{viaHLS: 11}}},
		{"stalls at the end", run(viaHLS, -1, 6, 1), viaHLS,
			gaps{Baseline: 1, Interrupted: 4, By: [2]float64{viaHLS: 4}, Resumed: true}},
		{"nothing at all", nil, viaWebRTC, gaps{Interrupted: 10, By: [2]float64{viaWebRTC: 10}}},
	}
	for _, tc := range tests {
		got := videoGaps(tc.progress, fault, end, tc.now)
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: expected %+v, got %+v", tc.name, tc.want, got)
		}
	}
}
