package e2e

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"hedge/internal/testkit"
)

const dnssecConfig = `data_dir: "{{DATA}}"
log: {level: warn}
regions:
  - name: lab
    nodes:
      - name: lab-1
        advertise: [127.0.0.1]
        listeners: [{address: "127.0.0.1:1", tls: {mode: "off"}}]
        dns: {address: "{{DNS}}"}
dns:
  zones:
    - name: e2e.test.
      ns: [ns1.e2e.test.]
      records: [{name: ns1, type: A, value: 127.0.0.1}]
      services: [{name: play, health: {interval: 10s, timeout: 1s}}]
      dnssec: {enabled: true}
`

// TestDNSSECCommands: as an operator would — hedge check refuses a signed
// zone without keys, hedge dnssec keygen makes them and prints the DS,
// hedge dnssec ds prints it again, and hedge dns serves the zone signed.
func TestDNSSECCommands(t *testing.T) {
	dir := t.TempDir()
	addr := testkit.FreeAddr(t)
	file := filepath.Join(dir, "dns.yaml")
	writeFile(t, file, strings.NewReplacer("{{DATA}}", filepath.Join(dir, "data"), "{{DNS}}", addr).Replace(dnssecConfig))

	if r := runHedge(t, dir, "check", "-c", file); r.code != 2 || !strings.Contains(r.stderr, "dns.zones[0].dnssec.enabled: no keys in ") ||
		!strings.Contains(r.stderr, "hedge dnssec keygen -c "+file) {
		t.Fatalf("check before keygen: want exit 2 naming the missing keys, got %d:\n%s", r.code, r.stderr)
	}
	gen := runHedge(t, dir, "dnssec", "keygen", "-c", file)
	if gen.code != 0 || !strings.Contains(gen.stdout, "e2e.test.\t3600\tIN\tDS\t") {
		t.Fatalf("keygen: exit %d\n%s%s", gen.code, gen.stdout, gen.stderr)
	}
	if r := runHedge(t, dir, "check", "-c", file); r.code != 0 {
		t.Fatalf("check after keygen: exit %d\n%s", r.code, r.stderr)
	}
	ds := runHedge(t, dir, "dnssec", "ds", "-c", file)
	line := strings.TrimSpace(ds.stdout)
	if ds.code != 0 || line == "" || !strings.Contains(gen.stdout, line) {
		t.Fatalf("ds: exit %d %q, keygen printed:\n%s", ds.code, ds.stdout, gen.stdout)
	}
	if r := runHedge(t, dir, "dnssec", "rotate", "-c", file); r.code != 2 {
		t.Errorf("an unknown dnssec verb: want exit 2, got %d", r.code)
	}

	p := startHedge(t, "hedge dns", dir, "dns", "-c", file, "-admin", "off")
	var r *dns.Msg
	testkit.WaitFor(t, p, "a signed answer", 10*time.Second, 50*time.Millisecond, func() (bool, string) {
		m := new(dns.Msg)
		m.SetQuestion("play.e2e.test.", dns.TypeA)
		m.SetEdns0(1232, true)
		var err error
		if r, _, err = (&dns.Client{Timeout: 500 * time.Millisecond}).Exchange(m, addr); err != nil {
			return false, err.Error()
		}
		return len(r.Answer) == 2, r.String()
	})
	if sig, ok := r.Answer[1].(*dns.RRSIG); !ok || sig.SignerName != "e2e.test." || sig.TypeCovered != dns.TypeA {
		t.Fatalf("want the A record and its RRSIG, got %v", r.Answer)
	}
	m := new(dns.Msg)
	m.SetQuestion("e2e.test.", dns.TypeDNSKEY)
	k, _, err := (&dns.Client{Timeout: time.Second}).Exchange(m, addr)
	if err != nil || len(k.Answer) != 1 {
		t.Fatalf("DNSKEY: %v %v", k, err)
	}
	if got := k.Answer[0].(*dns.DNSKEY).ToDS(dns.SHA256).String(); got != line {
		t.Errorf("the served key's DS is %q, hedge dnssec ds printed %q", got, line)
	}
}
