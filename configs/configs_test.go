package configs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestDemoIsValid(t *testing.T) {
	c := demo(t)
	if got := len(c.Regions); got != 2 {
		t.Fatalf("demo regions: want 2, got %d", got)
	}
	r, n, err := c.Pick("eu", "")
	if err != nil || r.Name != "eu" || n.Listeners[0].Address != "127.0.0.12:8443" {
		t.Fatalf("Pick(eu): got %v %v %v", r, n, err)
	}
	if p := r.Pool("cashier"); p == nil || p.Policy != "failover" || p.Health.Rise != DefaultRise {
		t.Fatalf("cashier pool defaults not applied: %+v", p)
	}
}

func TestShippedFilesAreValid(t *testing.T) {
	c, err := Load("demo.yaml")
	if err != nil {
		t.Fatalf("demo.yaml:\n%v", err)
	}
	if c.File != "demo.yaml" {
		t.Errorf("File: want %q, got %q", "demo.yaml", c.File)
	}
}

// TestProductionExample: the example names its admin tokens' files, which
// exist only on a real node: checking it reports exactly those (as the
// README says), and with the files in place it is valid.
func TestProductionExample(t *testing.T) {
	_, err := Load("production.example.yaml")
	var errs *Errors
	if !errors.As(err, &errs) {
		t.Fatalf("want the missing token files reported, got %v", err)
	}
	var files []string
	for _, fe := range errs.List {
		if !strings.HasSuffix(fe.Field, ".token_file") && !strings.HasSuffix(fe.Field, ".public_key_file") || !strings.Contains(fe.Message, "no such file or directory") {
			t.Errorf("want only missing token files and the players' JWT key, got %s", fe)
		}
		files = append(files, strings.Fields(fe.Message)[2])
	}
	want := []string{"/etc/hedge/admin/prometheus:", "/etc/hedge/admin/alice:", "/etc/hedge/admin/bob:", "/etc/hedge/admin/drain-push:", "/etc/hedge/jwt/players-es256.pub:"}
	if strings.Join(files, " ") != strings.Join(want, " ") {
		t.Errorf("missing files: want %v, got %v", want, files)
	}

	src, err := os.ReadFile("production.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for i, name := range []string{"prometheus", "alice", "bob", "drain-push"} {
		os.WriteFile(filepath.Join(dir, name), []byte(fmt.Sprintf("%02d9a1c7e52b04d8e96a1f0c2b7d4e8a5\n", i)), 0o600)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub, _ := x509.MarshalPKIXPublicKey(key.Public())
	os.WriteFile(filepath.Join(dir, "players-es256.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o600)
	fixed := strings.ReplaceAll(string(src), "/etc/hedge/admin/", dir+"/")
	fixed = strings.ReplaceAll(fixed, "/etc/hedge/jwt/", dir+"/")
	c, err := Parse("production.example.yaml", []byte(fixed))
	if err != nil {
		t.Fatalf("with the token files in place:\n%v", err)
	}
	roles := map[string][]Role{}
	for _, tk := range c.Admin.Tokens {
		roles[tk.Name] = tk.Roles
	}
	if r := roles["prometheus"]; len(r) != 1 || r[0] != RoleRead {
		t.Errorf("the prometheus token: want only read, got %v", r)
	}
	for _, op := range []string{"alice", "bob"} {
		if !slices.Contains(roles[op], RolePromote) {
			t.Errorf("operator %s: want promote (four eyes needs two), got %v", op, roles[op])
		}
	}
}

func TestErrorsNameFileLineAndField(t *testing.T) {
	src := `deployment: x
regions:
  - name: sea
    nodes:
      - name: sea-1
        listeners:
          - address: "127.0.0.1:99999"
            tls: {mode: magic}
            limits: {max_conns: lots}
    pools:
      - name: ledger
        policy: random
        colour: blue
        members: [{url: "ftp://x"}]
        health: {interval: 1s, timeout: 2s}
routes:
  - name: bets
    pool: nowhere
    match: {path_prefix: api}
`
	_, err := Parse("bad.yaml", []byte(src))
	var errs *Errors
	if !errors.As(err, &errs) {
		t.Fatalf("want *Errors, got %v", err)
	}
	want := []string{
		"bad.yaml:7: regions[0].nodes[0].listeners[0].address: \"127.0.0.1:99999\" has no valid port",
		"bad.yaml:8: regions[0].nodes[0].listeners[0].tls.mode: \"magic\" is not one of acme, internal, files, off",
		"bad.yaml:9: regions[0].nodes[0].listeners[0].limits.max_conns: want a whole number, got \"lots\"",
		"bad.yaml:12: regions[0].pools[0].policy: \"random\" is not one of round_robin, failover",
		"bad.yaml:13: regions[0].pools[0].colour: unknown field",
		"bad.yaml:14: regions[0].pools[0].members[0].url: \"ftp://x\" is not http(s)://host:port",
		"bad.yaml:15: regions[0].pools[0].health.timeout: 2s is longer than the interval 1s",
		"bad.yaml:18: routes[0].pool: pool \"nowhere\" is not defined in region \"sea\"",
		"bad.yaml:19: routes[0].match.path_prefix: \"api\" must start with '/'",
	}
	// Decoding and validation problems are reported together; a field
	// that failed to decode is not validated again.
	wantProblems(t, err, want...)
	msg := err.Error()
	if strings.Contains(msg, "max_conns: must") {
		t.Errorf("a field that failed to decode was validated too:\n%s", msg)
	}
}

func TestWritersAtSameEpochAreAmbiguous(t *testing.T) {
	c, v, _ := demoValidator(t)
	c.Regions[1].Writers[0].Domain = "sea"
	c.validateWriters(v)
	if v.errs.Len() != 1 || !strings.Contains(v.errs.Error(), "two writers at epoch 1") {
		t.Fatalf("want one ambiguity error, got %v", v.errs)
	}
}

func TestYAMLSyntaxError(t *testing.T) {
	_, err := Parse("s.yaml", []byte("regions:\n  - name: [\n"))
	if err == nil || !strings.HasPrefix(err.Error(), "s.yaml:") || !strings.Contains(err.Error(), "syntax") {
		t.Fatalf("want s.yaml:LINE: syntax error, got %v", err)
	}
}

func TestFilesModeChecksFiles(t *testing.T) {
	dir := t.TempDir()
	cert := filepath.Join(dir, "c.pem")
	os.WriteFile(cert, []byte("x"), 0o600)
	src := "regions:\n- name: a\n  nodes:\n  - name: n\n    listeners:\n    - address: 127.0.0.1:1\n      tls: {mode: files, files: {cert: " + cert + ", key: " + filepath.Join(dir, "missing.pem") + "}}\n"
	_, err := Parse("f.yaml", []byte(src))
	if err == nil || !strings.Contains(err.Error(), "f.yaml:7: regions[0].nodes[0].listeners[0].tls.files.key: cannot read") {
		t.Fatalf("want a key file error on line 7, got %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(DemoYAML())
	f.Add([]byte("regions: [{name: a, nodes: [{name: b}]}]"))
	f.Add([]byte("a: &x [*x]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.yaml", data)
		if err == nil && c == nil {
			t.Fatal("nil config without error")
		}
		if err != nil && !strings.HasPrefix(err.Error(), "fuzz.yaml:") {
			t.Fatalf("error does not name the file: %v", err)
		}
	})
}

func TestDNSErrorsNameFileLineAndField(t *testing.T) {
	src := `regions:
  - name: sea
    nodes:
      - name: sea-1
        advertise: [not-an-ip]
        listeners: [{address: "127.0.0.1:8443", tls: {mode: "off"}}]
        dns: {address: "127.0.0.1:99999"}
dns:
  rrl: {responses_per_second: 10, ipv4_prefix: 40}
  nearest:
    - {cidr: 10.0.0.0/33, regions: [mars]}
  zones:
    - name: edge.test.
      ns: [ns1.edge.test]
      records:
        - {name: www.other.test., type: A, value: 192.0.2.1}
        - {name: a, type: A, value: not-an-address}
        - {name: b, type: SPF, value: x}
      services:
        - name: play
          policy: random
          regions: [sea, eu]
          ttl: 500ms
          health: {interval: 100ms, timeout: 50ms}
`
	_, err := Parse("dns.yaml", []byte(src))
	want := []string{
		`dns.yaml:5: regions[0].nodes[0].advertise[0]: "not-an-ip" is not an IP address`,
		`dns.yaml:7: regions[0].nodes[0].dns.address: "127.0.0.1:99999" has no valid port`,
		`dns.yaml:9: dns.rrl.ipv4_prefix: must be 8 to 32, got 40`,
		`dns.yaml:11: dns.nearest[0].cidr: "10.0.0.0/33" is not a CIDR`,
		`dns.yaml:11: dns.nearest[0].regions[0]: region "mars" is not defined`,
		`dns.yaml:14: dns.zones[0].ns[0]: "ns1.edge.test" is not an absolute domain name`,
		`dns.yaml:16: dns.zones[0].records[0].name: "www.other.test." is not inside zone edge.test.`,
		`dns.yaml:17: dns.zones[0].records[1].value: "not-an-address" is not valid A data`,
		`dns.yaml:18: dns.zones[0].records[2].type: "SPF" is not one of A, AAAA, CNAME, TXT, CAA, MX, SRV, NS`,
		`dns.yaml:21: dns.zones[0].services[0].policy: "random" is not one of failover, nearest, all`,
		`dns.yaml:22: dns.zones[0].services[0].regions[1]: region "eu" is not defined`,
		`dns.yaml:23: dns.zones[0].services[0].ttl: must be at least 1s, got 500ms`,
		`dns.yaml:24: dns.zones[0].services[0].health.interval: must be at least 250ms, got 100ms`,
	}
	wantProblems(t, err, want...)
}

func TestDNSDefaults(t *testing.T) {
	c := demo(t)
	z := c.DNS.Zones[0]
	s := z.Services[0]
	if s.Name != "play" || s.TTL.D() != DefaultDNSTTL || s.Health.Interval.D() != DefaultDNSHealthInterval ||
		s.Health.Rise != DefaultRise || s.Health.Fall != DefaultFall || s.Health.Path != DefaultHealthPath {
		t.Fatalf("service defaults not applied: %+v", s)
	}
	if z.SOA.MName != "ns1.edge.test." || z.SOA.Serial != 1 || z.SOA.Minimum.D() != DefaultSOAMinimum {
		t.Fatalf("SOA defaults not applied: %+v", z.SOA)
	}
	if c.DNS.RRL.Slip != DefaultRRLSlip || c.DNS.RRL.IPv4Prefix != 24 {
		t.Fatalf("RRL defaults not applied: %+v", c.DNS.RRL)
	}
	if c.DNS.UDPReadOn == nil || !*c.DNS.UDPReadOn {
		t.Fatalf("dns.udp_read_on: want true by default, got %v", c.DNS.UDPReadOn)
	}
	off, err := Parse("off.yaml", bytes.Replace(demoYAML, []byte("\ndns:\n"), []byte("\ndns:\n  udp_read_on: false\n"), 1))
	if err != nil {
		t.Fatal(err)
	}
	if off.DNS.UDPReadOn == nil || *off.DNS.UDPReadOn {
		t.Fatalf("dns.udp_read_on: false was not kept: %v", off.DNS.UDPReadOn)
	}
	if got := c.Regions[0].Nodes[0].DNS.Address; got != "127.0.0.1:5353" {
		t.Fatalf("demo: sea-1 serves DNS on 127.0.0.1:5353, got %q", got)
	}
}

func TestDNSZoneFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.zone")
	os.WriteFile(good, []byte("www 60 IN A 192.0.2.1\nmail IN MX 10 mx.other.test.\n"), 0o600)
	bad := filepath.Join(dir, "bad.zone")
	os.WriteFile(bad, []byte("www IN A 192.0.2.1\nwww IN A not-an-address\n"), 0o600)
	soa := filepath.Join(dir, "soa.zone")
	os.WriteFile(soa, []byte("@ IN SOA a. b. 1 2 3 4 5\n"), 0o600)
	src := func(file string) string {
		return "regions: [{name: a, nodes: [{name: n, listeners: [{address: \"127.0.0.1:1\", tls: {mode: \"off\"}}]}]}]\n" +
			"dns:\n  zones:\n    - name: edge.test.\n      ns: [ns1.edge.test.]\n      file: " + file + "\n"
	}
	c, err := Parse("z.yaml", []byte(src(good)))
	if err != nil {
		t.Fatalf("good zone file: %v", err)
	}
	// Loading reads the file once, for dnsfail to serve.
	var got []string
	for _, rr := range c.DNS.Zones[0].FileRecords {
		got = append(got, rr.String())
	}
	want := []string{"www.edge.test.\t60\tIN\tA\t192.0.2.1", "mail.edge.test.\t60\tIN\tMX\t10 mx.other.test."}
	if !slices.Equal(got, want) {
		t.Fatalf("the zone file's records: expected %q, got %q", want, got)
	}
	for file, want := range map[string]string{
		bad:                      "z.yaml:6: dns.zones[0].file: " + bad + ": dns: bad A A: \"not-an-address\" at line: 2",
		soa:                      "type SOA is not served from a zone file",
		filepath.Join(dir, "no"): "z.yaml:6: dns.zones[0].file: cannot read",
	} {
		_, err := Parse("z.yaml", []byte(src(file)))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: want %q, got %v", file, want, err)
		}
	}
}
