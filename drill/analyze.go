package drill

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"
)

// Result is one scenario's measurements.
type Result struct {
	Scenario    string        `json:"scenario"`
	Description string        `json:"description"`
	Mode        string        `json:"mode"`
	Promotion   string        `json:"promotion"`
	Replication string        `json:"replication"`
	Players     int           `json:"players"`
	LostRegion  string        `json:"lost_region"`
	LostDomain  string        `json:"lost_domain,omitempty"`
	Timeline    []Second      `json:"timeline"`
	Domains     []DomainStats `json:"domains"`
	// DNSMove: fault → no live DNS server names an edge of the lost
	// region (seconds); nil when it never happened or does not apply.
	DNSMove *float64 `json:"dns_move_s"`
	// RPO: bets acknowledged to players that the domain's surviving
	// writer does not have, and the span of their acknowledgements.
	RPOMissing       int     `json:"rpo_missing_bets"`
	RPOWindow        float64 `json:"rpo_window_s"`
	DoubleApplies    int     `json:"double_applies"`
	StaleEpochWrites int     `json:"stale_epoch_writes"`
	Steps            []Step  `json:"promotion_steps,omitempty"`
	// Video is each live table's continuity as its viewers saw it (WHEP,
	// falling back to LL-HLS).
	Video  []VideoStats `json:"video,omitempty"`
	Checks []Check      `json:"checks"`
	Notes  []string     `json:"notes,omitempty"`
}

// Second is one second of the timeline, counted from the fault.
type Second struct {
	T        int               `json:"t"`
	Bets     int               `json:"bet_attempts"`
	Acked    int               `json:"acked"`
	Failed   map[string]int    `json:"failed,omitempty"` // by status (or connection error kind)
	P50ms    float64           `json:"p50_ms"`
	P99ms    float64           `json:"p99_ms"`
	DNSEdges map[string]int    `json:"dns_edges,omitempty"` // region → edges named by the players' answers this second
	Served   map[string]int    `json:"served,omitempty"`    // region → bet attempts sent to its edges
	Writers  map[string]string `json:"writers"`             // domain → "ledger@epoch" or "none"
	// Watching: viewers that received new media (a WHEP video packet or an
	// LL-HLS part) this second, of
	// Viewers.
	Watching int `json:"watching"`
	Viewers  int `json:"viewers"`
}

// VideoStats is one live table's continuity: the longest wait for new
// media (a WHEP video packet or an LL-HLS part) each viewer had, before the fault (the baseline) and from
// the fault on (the interruption; a viewer that never got one again counts
// until the end of the run).
type VideoStats struct {
	Table   string `json:"table"`
	Viewers int    `json:"viewers"`
	// Seconds: the worst viewer's longest gap before the fault, and from
	// the fault on; the median viewer's from the fault on.
	BaselineMax    float64 `json:"baseline_max_gap_s"`
	InterruptedMax float64 `json:"interrupted_max_s"`
	InterruptedP50 float64 `json:"interrupted_p50_s"`
	// NeverResumed viewers got no media after the fault.
	NeverResumed int `json:"never_resumed"`
	// InterruptedWebRTC and InterruptedHLS split InterruptedMax by the
	// transport that ended the gap (for a viewer that never resumed, the
	// one it was on at the end): the longest interruption WebRTC recovered
	// from, and the longest LL-HLS did.
	InterruptedWebRTC float64 `json:"interrupted_webrtc_max_s"`
	InterruptedHLS    float64 `json:"interrupted_llhls_max_s"`
	// OnWebRTC and OnHLS: viewers on each transport at the end.
	OnWebRTC int `json:"on_webrtc"`
	OnHLS    int `json:"on_llhls"`
	// WHEPSessions that played video, and WHEP attempts or sessions that
	// failed (each one a fallback to LL-HLS), over the whole run.
	WHEPSessions int `json:"whep_sessions"`
	WHEPFailures int `json:"whep_failures"`
	// Studio: each WHIP session the studio held (a new one after its
	// edge was lost).
	Studio []studioSession `json:"studio_sessions"`
}

// DomainStats are one ledger domain's numbers.
type DomainStats struct {
	Domain     string `json:"domain"`
	BetsPlaced int    `json:"bets_placed"`
	Acked      int    `json:"acked"`
	GivenUp    int    `json:"given_up"` // not acknowledged by the retry deadline
	Refused    int    `json:"refused"`  // a final answer other than success (not retried)
	// RetriedTwice: bets still open at the fault or placed after it that
	// needed more than one retry. Bets acknowledged before the fault are
	// the warm-up's, not the scenario's: a loaded machine's slow start
	// shows in the timeline, not in this check.
	RetriedTwice int `json:"retried_more_than_once"`
	MaxAttempts  int `json:"max_attempts"`
	// RTOFirst: fault → the first acknowledged bet placed after the fault;
	// RTO99: → 99 % of the domain's players have one (seconds).
	RTOFirst *float64 `json:"rto_first_s"`
	RTO99    *float64 `json:"rto_99_s"`
	// Refusals503 are 503 answers after the fault, by problem type: bets
	// refused while the writer was unknown, ambiguous or unreachable.
	Refusals503 map[string]int `json:"refusals_503,omitempty"`
}

// Check is one invariant or target, met or not.
type Check struct {
	Name   string `json:"name"`
	Target string `json:"target"`
	Got    string `json:"got"`
	OK     bool   `json:"ok"`
}

// Failed reports whether any check failed.
func (r *Result) Failed() bool {
	for _, c := range r.Checks {
		if !c.OK {
			return true
		}
	}
	return false
}

func secs(d time.Duration) *float64 {
	v := math.Round(d.Seconds()*1000) / 1000
	return &v
}

func (r *run) analyze(loopback bool) *Result {
	cfg := r.d.cfg
	res := &Result{Scenario: r.sc.Name, Description: r.sc.Description, Mode: modeName(loopback), Promotion: cfg.Promotion,
		Replication: cfg.Replication, Players: len(r.players), LostRegion: r.lostRegion(), Steps: r.steps}
	if r.sc.Standby {
		res.LostDomain = r.lostDomain()
	}
	if !r.d.replication {
		res.Replication = "none (this ledgersim does not replicate)"
	}
	var attempts []Attempt
	var bets []Bet
	var resolutions []Resolution
	for _, p := range r.players {
		attempts = append(attempts, p.attempts...)
		bets = append(bets, p.bets...)
		resolutions = append(resolutions, p.resolutions...)
	}
	r.mon.mu.Lock()
	samples := slices.Clone(r.mon.samples)
	books := map[string]ledgerBook{}
	for k, v := range r.mon.books {
		books[k] = v
	}
	r.mon.mu.Unlock()

	res.Timeline = r.timeline(attempts, resolutions, samples)
	edgeRegion := map[string]string{}
	for _, e := range r.d.edges {
		edgeRegion[e.IP] = e.Region
	}

	// DNS move: the first sample after the fault from which on no DNS
	// server that answered named an edge of the lost region.
	if r.sc.LosesRegion {
		var moved time.Time
		for _, s := range samples {
			// After a partition heals the region is back, and named again.
			if s.At.Before(r.fault) || (!r.healed.IsZero() && !s.At.Before(r.healed)) {
				continue
			}
			names := false
			for _, ips := range s.DNS {
				for _, ip := range ips {
					if edgeRegion[ip] == r.lostRegion() {
						names = true
					}
				}
			}
			if names {
				moved = time.Time{}
			} else if moved.IsZero() {
				moved = s.At
			}
		}
		if !moved.IsZero() {
			res.DNSMove = secs(moved.Sub(r.fault))
		}
	}

	// Per domain.
	playersOf := map[string]int{}
	for _, p := range r.players {
		playersOf[p.domain]++
	}
	for _, dom := range cfg.Domains() {
		ds := DomainStats{Domain: dom, Refusals503: map[string]int{}}
		firstAfter := map[int]time.Time{}
		for _, b := range bets {
			if b.Domain != dom {
				continue
			}
			ds.BetsPlaced++
			ds.MaxAttempts = max(ds.MaxAttempts, b.Attempts)
			if b.Attempts > 2 && !(b.Acked && b.AckAt.Before(r.fault)) {
				ds.RetriedTwice++
			}
			switch {
			case b.Acked:
				ds.Acked++
				if !b.First.Before(r.fault) {
					if t, ok := firstAfter[b.Player]; !ok || b.AckAt.Before(t) {
						firstAfter[b.Player] = b.AckAt
					}
				}
			case b.Refused == "deadline":
				ds.GivenUp++
			default:
				ds.Refused++
			}
		}
		for _, a := range attempts {
			if a.Domain == dom && a.Kind == "bet" && a.Status == 503 && !a.At.Before(r.fault) {
				ds.Refusals503[a.Problem]++
			}
		}
		var times []time.Duration
		for _, t := range firstAfter {
			times = append(times, t.Sub(r.fault))
		}
		slices.Sort(times)
		if len(times) > 0 {
			ds.RTOFirst = secs(times[0])
		}
		if need := int(math.Ceil(0.99 * float64(playersOf[dom]))); need > 0 && len(times) >= need {
			ds.RTO99 = secs(times[need-1])
		}
		res.Domains = append(res.Domains, ds)
	}

	res.Video = r.videoStats()
	r.moneyInvariants(res, bets, books, samples)
	r.checks(res)
	return res
}

// moneyInvariants computes RPO, double-applies and stale-epoch writes from
// what the ledgers recorded.
func (r *run) moneyInvariants(res *Result, bets []Bet, books map[string]ledgerBook, samples []Sample) {
	last := Sample{}
	if len(samples) > 0 {
		last = samples[len(samples)-1]
	}
	// The surviving writer of each domain: the reachable ledger claiming
	// the writer role at the highest epoch at the end.
	survivor := map[string]string{}
	best := map[string]int64{}
	for _, l := range r.d.ledgers {
		if ra, ok := last.Roles[l.Name]; ok && ra.Role == "writer" && ra.Epoch >= best[l.Domain] {
			best[l.Domain], survivor[l.Domain] = ra.Epoch, l.Name
		}
	}
	type scoped struct{ account, key string }
	has := map[string]map[scoped]bool{}
	for dom, name := range survivor {
		has[dom] = map[scoped]bool{}
		for _, a := range books[name].Applied {
			has[dom][scoped{a.Account, a.Key}] = true
		}
	}
	var first, lastMiss time.Time
	for _, b := range bets {
		if !b.Acked {
			continue
		}
		keys, ok := has[b.Domain]
		if !ok || !keys[scoped{b.Account, b.Key}] {
			res.RPOMissing++
			if first.IsZero() || b.AckAt.Before(first) {
				first = b.AckAt
			}
			if b.AckAt.After(lastMiss) {
				lastMiss = b.AckAt
			}
		}
	}
	if res.RPOMissing > 0 {
		res.RPOWindow = math.Round(lastMiss.Sub(first).Seconds()*1000) / 1000
	}
	for _, dom := range r.d.cfg.Domains() {
		if _, ok := survivor[dom]; !ok {
			res.Notes = append(res.Notes, fmt.Sprintf("domain %s has no reachable writer at the end: every acknowledged bet of it counts as missing", dom))
		}
	}

	// When each epoch of each domain was first seen.
	epochSeen := map[string]map[int64]time.Time{}
	domainOf := map[string]string{}
	for _, l := range r.d.ledgers {
		domainOf[l.Name] = l.Domain
	}
	for _, s := range samples {
		for name, ra := range s.Roles {
			dom := domainOf[name]
			if epochSeen[dom] == nil {
				epochSeen[dom] = map[int64]time.Time{}
			}
			if _, ok := epochSeen[dom][ra.Epoch]; !ok && ra.Role == "writer" {
				epochSeen[dom][ra.Epoch] = s.At
			}
		}
	}
	applied := map[scoped]int{}
	for name, b := range books {
		dom := domainOf[name]
		for _, rc := range b.Receipts {
			if rc.Outcome != "applied" {
				continue
			}
			applied[scoped{rc.Account, rc.Key}]++
			ep := rc.AppliedEpoch
			if ep == 0 {
				ep = rc.Epoch
			}
			for e, at := range epochSeen[dom] {
				if ep >= 0 && e > ep && rc.At.After(at) {
					res.StaleEpochWrites++
					break
				}
			}
		}
	}
	for _, n := range applied {
		if n > 1 {
			res.DoubleApplies += n - 1
		}
	}
	var names []string
	for name, b := range books {
		if _, up := last.Roles[name]; !up {
			names = append(names, fmt.Sprintf("%s as of %.1fs after the fault", name, b.At.Sub(r.fault).Seconds()))
		}
	}
	sort.Strings(names)
	if len(names) > 0 {
		res.Notes = append(res.Notes, "receipts of ledgers that were down at the end were read while they lived: "+strings.Join(names, ", "))
	}
}

func (r *run) checks(res *Result) {
	cfg := r.d.cfg
	add := func(name, target, got string, ok bool) {
		res.Checks = append(res.Checks, Check{Name: name, Target: target, Got: got, OK: ok})
	}
	add("double-applies", "0", fmt.Sprint(res.DoubleApplies), res.DoubleApplies == 0)
	add("stale-epoch writes accepted", "0", fmt.Sprint(res.StaleEpochWrites), res.StaleEpochWrites == 0)
	if cfg.Replication == "sync" {
		add("RPO (acknowledged bets missing from the surviving writer)", "0", fmt.Sprint(res.RPOMissing), res.RPOMissing == 0)
	} else {
		add("RPO (acknowledged bets missing from the surviving writer)", "measured (async)", fmt.Sprintf("%d bets over %.3fs", res.RPOMissing, res.RPOWindow), true)
	}
	for _, ds := range res.Domains {
		lost := ds.Domain == res.LostDomain
		if !lost {
			add(ds.Domain+": bets given up after retries", "0", fmt.Sprint(ds.GivenUp), ds.GivenUp == 0)
		}
		add(ds.Domain+": bets refused for good", "0", fmt.Sprint(ds.Refused), ds.Refused == 0)
		if r.sc.Name == "drain" {
			add(ds.Domain+": bets that needed more than one retry", "0", fmt.Sprint(ds.RetriedTwice), ds.RetriedTwice == 0)
		}
		if lost {
			if cfg.Promotion == PromoteAuto {
				add(ds.Domain+": RTO, fault → 99 % of players acknowledged again", "≤ "+cfg.Targets.RTOAuto.String(), fmtSecs(ds.RTO99),
					ds.RTO99 != nil && *ds.RTO99 <= cfg.Targets.RTOAuto.Seconds())
			} else {
				got, ok := "no approval", false
				if !r.approvedAt.IsZero() {
					got = "approved, never acknowledged again"
				}
				if !r.approvedAt.IsZero() && ds.RTO99 != nil {
					after := *ds.RTO99 - r.approvedAt.Sub(r.fault).Seconds()
					got, ok = fmt.Sprintf("%.3fs", after), after <= cfg.Targets.RTOFourEyes.Seconds()
				}
				add(ds.Domain+": RTO, second approval → 99 % of players acknowledged again", "≤ "+cfg.Targets.RTOFourEyes.String(), got, ok)
			}
		}
	}
	if r.sc.LosesRegion {
		add("DNS stops naming "+res.LostRegion, "≤ "+cfg.Targets.DNSMove.String(), fmtSecs(res.DNSMove),
			res.DNSMove != nil && *res.DNSMove <= cfg.Targets.DNSMove.Seconds())
	}
}

func fmtSecs(v *float64) string {
	if v == nil {
		return "never"
	}
	return fmt.Sprintf("%.3fs", *v)
}

// timeline buckets attempts, answers and samples by second from the fault.
func (r *run) timeline(attempts []Attempt, resolutions []Resolution, samples []Sample) []Second {
	from := int(math.Floor(r.start.Sub(r.fault).Seconds()))
	to := from
	for _, a := range attempts {
		to = max(to, int(math.Floor(a.At.Sub(r.fault).Seconds())))
	}
	secsOf := func(t time.Time) int { return int(math.Floor(t.Sub(r.fault).Seconds())) }
	out := make([]Second, to-from+1)
	lat := make([][]time.Duration, len(out))
	for i := range out {
		out[i] = Second{T: from + i, Failed: map[string]int{}, DNSEdges: map[string]int{}, Served: map[string]int{}, Writers: map[string]string{}}
	}
	edgeRegion := map[string]string{}
	for _, e := range r.d.edges {
		edgeRegion[e.IP] = e.Region
	}
	for _, a := range attempts {
		if a.Kind != "bet" {
			continue
		}
		i := secsOf(a.At) - from
		if i < 0 || i >= len(out) {
			continue
		}
		out[i].Bets++
		out[i].Served[edgeRegion[a.Edge]]++
		switch {
		case a.Status == 201:
			out[i].Acked++
			lat[i] = append(lat[i], a.Dur)
		case a.Status == 0:
			out[i].Failed["conn: "+a.Err]++
		default:
			out[i].Failed[fmt.Sprintf("%d %s", a.Status, a.Problem)]++
		}
	}
	for i := range out {
		if l := lat[i]; len(l) > 0 {
			slices.Sort(l)
			out[i].P50ms = float64(l[len(l)/2].Microseconds()) / 1000
			out[i].P99ms = float64(l[min(len(l)-1, int(math.Ceil(0.99*float64(len(l))))-1)].Microseconds()) / 1000
		}
	}
	for _, rs := range resolutions {
		i := secsOf(rs.At) - from
		if i < 0 || i >= len(out) {
			continue
		}
		for _, ip := range rs.IPs {
			out[i].DNSEdges[edgeRegion[ip]]++
		}
	}
	if r.video != nil {
		for i := range out {
			out[i].Viewers = len(r.video.viewers)
		}
		for _, v := range r.video.viewers {
			seen := map[int]bool{}
			for _, a := range v.progress {
				i := secsOf(a.At) - from
				if i >= 0 && i < len(out) && !seen[i] {
					seen[i] = true
					out[i].Watching++
				}
			}
		}
	}
	for _, s := range samples {
		i := secsOf(s.At) - from
		if i < 0 || i >= len(out) {
			continue
		}
		for _, dom := range r.d.cfg.Domains() {
			w, e := "none", int64(-1)
			for _, l := range r.d.ledgers {
				if ra, ok := s.Roles[l.Name]; ok && l.Domain == dom && ra.Role == "writer" && ra.Epoch > e {
					w, e = fmt.Sprintf("%s@%d", l.Name, ra.Epoch), ra.Epoch
					if ra.Replication == "degraded" {
						w += " degraded"
					}
				}
			}
			out[i].Writers[dom] = w
		}
	}
	return out
}

// videoStats measures each table's continuity from its viewers' parts.
func (r *run) videoStats() []VideoStats {
	if r.video == nil {
		return nil
	}
	end := r.fault.Add(r.d.cfg.Observe)
	var out []VideoStats
	for _, reg := range r.d.cfg.Regions {
		vs := VideoStats{Table: "table-" + reg.Name}
		for _, st := range r.video.studios {
			if st.table == vs.Table {
				st.mu.Lock()
				vs.Studio = append(vs.Studio, st.sessions...)
				st.mu.Unlock()
			}
		}
		var after []float64
		for _, v := range r.video.viewers {
			if v.table != vs.Table {
				continue
			}
			vs.Viewers++
			if transport(v.mode.Load()) == viaWebRTC {
				vs.OnWebRTC++
			} else {
				vs.OnHLS++
			}
			g := videoGaps(v.progress, r.fault, end, transport(v.mode.Load()))
			if !g.Resumed {
				vs.NeverResumed++
			}
			vs.BaselineMax = max(vs.BaselineMax, g.Baseline)
			vs.InterruptedWebRTC = max(vs.InterruptedWebRTC, g.By[viaWebRTC])
			vs.InterruptedHLS = max(vs.InterruptedHLS, g.By[viaHLS])
			vs.WHEPSessions += v.whep
			vs.WHEPFailures += v.whepFail
			after = append(after, g.Interrupted)
		}
		vs.InterruptedWebRTC = math.Round(vs.InterruptedWebRTC*1000) / 1000
		vs.InterruptedHLS = math.Round(vs.InterruptedHLS*1000) / 1000
		slices.Sort(after)
		if len(after) > 0 {
			vs.InterruptedMax = math.Round(after[len(after)-1]*1000) / 1000
			vs.InterruptedP50 = math.Round(after[len(after)/2]*1000) / 1000
		}
		vs.BaselineMax = math.Round(vs.BaselineMax*1000) / 1000
		out = append(out, vs)
	}
	return out
}

// gaps is one viewer's continuity: its longest wait for new media before
// the fault and from the fault on, the latter also by the transport that
// ended it.
type gaps struct {
	Baseline    float64
	Interrupted float64
	By          [2]float64 // by transport
	Resumed     bool
}

// videoGaps measures a viewer's arrivals (in time order) around fault; a
// viewer's wait after its last arrival runs until end, charged to its
// transport at the end (now).
func videoGaps(progress []arrival, fault, end time.Time, now transport) gaps {
	var g gaps
	var prev time.Time
	for _, a := range progress {
		if a.At.After(fault) {
			from := prev
			if from.IsZero() {
				from = fault
			}
			gap := a.At.Sub(from).Seconds()
			g.Resumed = true
			g.Interrupted = max(g.Interrupted, gap)
			g.By[a.Via] = max(g.By[a.Via], gap)
		} else if !prev.IsZero() {
			g.Baseline = max(g.Baseline, a.At.Sub(prev).Seconds())
		}
		prev = a.At
	}
	if prev.IsZero() {
		prev = fault
	}
	tail := end.Sub(prev).Seconds()
	g.Interrupted = max(g.Interrupted, tail)
	g.By[now] = max(g.By[now], tail)
	return g
}
