package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hedge/drill"
	"hedge/internal/testkit"
)

// drillShort is the make-test drill: few players, short phases, so that
// two scenarios on fresh deployments take well under a minute.
// Replication is synchronous with the witness (the defaults): RPO 0.
const drillShort = `players: 40
warmup: 4s
observe: 10s
retry_deadline: 10s
`

// TestDrill runs `hedge drill` as an operator does — every edge, DNS
// server, Redis, ledger and the witness its own process, in network
// namespaces when this runs as root (else --loopback) — for a region loss
// (synchronous replication, automatic promotion through the witness) and a
// planned drain, and checks the money invariants and targets in the JSON
// reports it wrote, besides its exit status.
func TestDrill(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("redis-server is needed (make deps installs it): %v", err)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "drill.yaml")
	writeFile(t, cfg, drillShort)
	const scenarios = "region-down,drain"
	args := []string{"drill", "-c", cfg, "-scenario", scenarios, "-out", filepath.Join(dir, "out")}
	if err := drill.CheckNamespaces(); err != nil {
		t.Logf("network namespaces unavailable (%v): using --loopback", err)
		args = append(args, "--loopback")
	} else {
		// Its veth pairs would fail a browser test's requests.
		testkit.HoldHostNetwork(t, true)
	}
	p := startHedge(t, "hedge drill", dir, args...)
	start := time.Now()
	code, ok := p.Wait(2 * time.Minute)
	if !ok {
		t.Fatalf("hedge drill did not finish in 2 minutes; output:\n%s", p.Stdout.String())
	}
	t.Logf("hedge drill -scenario %s took %.1fs", scenarios, time.Since(start).Seconds())
	if code != 0 {
		t.Errorf("hedge drill: want exit 0 (every invariant and target met), got %d; output:\n%s\n%s", code, p.Stdout.String(), p.Stderr.String())
	}
	for _, sc := range strings.Split(scenarios, ",") {
		b, err := os.ReadFile(filepath.Join(dir, "out", sc, "report.json"))
		if err != nil {
			t.Errorf("%s: no JSON report: %v", sc, err)
			continue
		}
		var res drill.Result
		if err := json.Unmarshal(b, &res); err != nil {
			t.Errorf("%s: report.json: %v", sc, err)
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, "out", sc, "timeline.svg")); err != nil {
			t.Errorf("%s: no SVG timeline: %v", sc, err)
		}
		if res.DoubleApplies != 0 || res.StaleEpochWrites != 0 || res.RPOMissing != 0 {
			t.Errorf("%s: want 0 double-applies, 0 stale-epoch writes and RPO 0 (synchronous), got %d, %d and %d",
				sc, res.DoubleApplies, res.StaleEpochWrites, res.RPOMissing)
		}
		if res.Replication != "sync" {
			t.Errorf("%s: want synchronous replication rehearsed, got %q", sc, res.Replication)
		}
		if res.DNSMove == nil || *res.DNSMove > 3 {
			t.Errorf("%s: want DNS to stop naming %s within 3s, got %v", sc, res.LostRegion, fmtPtr(res.DNSMove))
		}
		for _, d := range res.Domains {
			if d.Acked == 0 || d.Refused != 0 {
				t.Errorf("%s: domain %s: want bets acknowledged and none refused for good, got %+v", sc, d.Domain, d)
			}
			if d.Domain != res.LostDomain && d.GivenUp != 0 {
				t.Errorf("%s: domain %s (not lost): want no bet given up after retries, got %d", sc, d.Domain, d.GivenUp)
			}
			if sc == "drain" && d.RetriedTwice != 0 {
				t.Errorf("drain: domain %s: want no bet needing more than one retry, got %d", d.Domain, d.RetriedTwice)
			}
			if d.Domain == res.LostDomain && (d.RTO99 == nil || *d.RTO99 > 10) {
				t.Errorf("%s: lost domain %s: want 99%% of its players acknowledged again within 10s, got %v", sc, d.Domain, fmtPtr(d.RTO99))
			}
		}
		if len(res.Video) != 2 {
			t.Errorf("%s: want a live table per region watched over WHEP or LL-HLS, got %+v", sc, res.Video)
		}
		for _, v := range res.Video {
			if v.Viewers == 0 || v.NeverResumed != 0 {
				t.Errorf("%s: live table %s: want viewers that all watch again after the fault, got %d viewers, %d never resumed", sc, v.Table, v.Viewers, v.NeverResumed)
			}
			if v.WHEPSessions == 0 {
				t.Errorf("%s: live table %s: want viewers that played WebRTC (WHEP), got no WHEP session with video (%d failed)", sc, v.Table, v.WHEPFailures)
			}
		}
		if len(res.Checks) == 0 || res.Failed() {
			t.Errorf("%s: checks: %+v", sc, res.Checks)
		}
	}
}

func fmtPtr(v *float64) any {
	if v == nil {
		return "never"
	}
	return *v
}
