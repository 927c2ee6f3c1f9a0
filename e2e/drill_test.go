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
)

// drillShort is the make-test drill: few players, short phases, so that
// two scenarios on fresh deployments take well under a minute.
const drillShort = `players: 40
warmup: 4s
observe: 10s
retry_deadline: 10s
replication: async
`

// TestDrill runs `hedge drill` as an operator does — every edge, DNS
// server, Redis and ledger its own process, in network namespaces when
// this runs as root (else --loopback) — for a planned drain and, when the
// ledger simulator replicates over the network, a region loss, and checks
// the money invariants and targets in the JSON reports it wrote, besides
// its exit status.
func TestDrill(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("redis-server is needed (make deps installs it): %v", err)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "drill.yaml")
	writeFile(t, cfg, drillShort)
	scenarios := "drain"
	help, _ := exec.Command(hedgeBin, "ledgersim", "-h").CombinedOutput()
	replicates := strings.Contains(string(help), "-replica ") && strings.Contains(string(help), "-auto-promote-after ")
	if replicates {
		scenarios = "region-down,drain"
	} else {
		// Without a standby there is nothing to promote: the drill must
		// say so rather than report a region loss it did not rehearse.
		r := runHedge(t, dir, "drill", "-c", cfg, "-scenario", "region-down", "--loopback", "-out", filepath.Join(dir, "refused"))
		if r.code != 2 || !strings.Contains(r.stderr, "does not replicate over the network") {
			t.Errorf("region-down with a ledger simulator that does not replicate: want exit 2 naming the missing replication, got %d:\n%s", r.code, r.stderr)
		}
		t.Logf("this hedge's ledgersim does not replicate over the network: region-down is not rehearsed, only refused")
	}
	args := []string{"drill", "-c", cfg, "-scenario", scenarios, "-out", filepath.Join(dir, "out")}
	if err := drill.CheckNamespaces(); err != nil {
		t.Logf("network namespaces unavailable (%v): using --loopback", err)
		args = append(args, "--loopback")
	}
	p := startHedge(t, "hedge drill", dir, args...)
	code, ok := p.wait(3 * time.Minute)
	if !ok {
		t.Fatalf("hedge drill did not finish in 3 minutes; output:\n%s", p.stdout.String())
	}
	if code != 0 {
		t.Errorf("hedge drill: want exit 0 (every invariant and target met), got %d; output:\n%s\n%s", code, p.stdout.String(), p.stderr.String())
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
		if res.DoubleApplies != 0 || res.StaleEpochWrites != 0 {
			t.Errorf("%s: want 0 double-applies and 0 stale-epoch writes, got %d and %d", sc, res.DoubleApplies, res.StaleEpochWrites)
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
