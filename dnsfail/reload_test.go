package dnsfail

import (
	"os"
	"slices"
	"testing"

	"github.com/miekg/dns"

	"hedge/configs"
)

// TestReload: a new configuration swaps in whole; edges' health, drains and
// overrides carry over, and the fast path serves the new records.
func TestReload(t *testing.T) {
	d := newDeployment(t, deployOpts{})
	if err := d.srv.SetEdgeDraining("sea-1", true, "test drain"); err != nil {
		t.Fatal(err)
	}
	if err := d.srv.Override("fo.edge.test", Override{Region: "eu", Mode: "out", Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	next := *d.cfg
	next.DNS.Zones = append([]configs.Zone(nil), d.cfg.DNS.Zones...)
	next.DNS.Zones[0].Records = append(append([]configs.Record(nil), d.cfg.DNS.Zones[0].Records...),
		configs.Record{Name: "new", Type: "A", TTL: configs.Duration(60e9), Value: "192.0.2.99"})
	if err := d.srv.Reload(&next); err != nil {
		t.Fatal(err)
	}
	if a := answerAddrs(d.query(t, "udp", "new.edge.test.", dns.TypeA)); len(a) != 1 || a[0] != "192.0.2.99" {
		t.Fatalf("new record after reload: got %v", a)
	}
	if a := answerAddrs(d.query(t, "udp", "play.edge.test.", dns.TypeA)); slices.Contains(a, "127.0.0.11") {
		t.Fatalf("the drain of sea-1 was lost on reload: %v", a)
	}
	st := d.srv.Status()
	var fo *ServiceStatus
	for i := range st.Services {
		if st.Services[i].Name == "fo.edge.test." {
			fo = &st.Services[i]
		}
	}
	if fo == nil || len(fo.Overrides) != 1 || fo.Overrides[0].Region != "eu" {
		t.Fatalf("the override was lost on reload: %+v", fo)
	}
}

// TestZoneFile: records of a zone file are served beside the YAML ones.
func TestZoneFile(t *testing.T) {
	d := newDeployment(t, deployOpts{})
	file := t.TempDir() + "/edge.test.zone"
	if err := os.WriteFile(file, []byte("$TTL 300\nfrom-file IN A 192.0.2.7\nFrom-File IN TXT \"hello\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	next := *d.cfg
	next.DNS.Zones = append([]configs.Zone(nil), d.cfg.DNS.Zones...)
	// Loading a configuration reads its zone files (configs owns them).
	rrs, err := configs.ReadZoneFile(file, "edge.test.", next.DNS.Zones[0].TTL.D())
	if err != nil {
		t.Fatal(err)
	}
	next.DNS.Zones[0].File, next.DNS.Zones[0].FileRecords = file, rrs
	if err := d.srv.Reload(&next); err != nil {
		t.Fatal(err)
	}
	r := d.query(t, "udp", "from-file.edge.test.", dns.TypeA)
	if a := answerAddrs(r); len(a) != 1 || a[0] != "192.0.2.7" || r.Answer[0].Header().Ttl != 300 {
		t.Fatalf("A from the zone file: got %v", r.Answer)
	}
	if r := d.query(t, "tcp", "from-file.edge.test.", dns.TypeTXT); len(r.Answer) != 1 {
		t.Fatalf("TXT from the zone file: got %v", r.Answer)
	}
}
