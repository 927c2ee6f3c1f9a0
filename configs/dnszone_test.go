package configs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// dnsZoneYAML is a one-zone configuration with the given records, zone
// file and services (YAML lines, indented as list items of their field).
func dnsZoneYAML(records, file, services string) string {
	s := "regions: [{name: a, nodes: [{name: n, listeners: [{address: \"127.0.0.1:1\", tls: {mode: \"off\"}}]}]}]\n" +
		"dns:\n  zones:\n    - name: edge.test.\n      ns: [ns1.edge.test.]\n"
	if records != "" {
		s += "      records:\n" + records
	}
	if file != "" {
		s += "      file: " + file + "\n"
	}
	if services != "" {
		s += "      services:\n" + services
	}
	return s
}

// TestDNSZoneRules: what Knot's zone loader refuses (a CNAME beside other
// data, at the apex, twice at one name), an RRset with two TTLs, and
// static data that a service name would hide, each reported with the file,
// line and field that wrote it.
func TestDNSZoneRules(t *testing.T) {
	dir := t.TempDir()
	zf := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name                    string
		records, file, services string
		want                    []string // substrings of the error, one per problem; none: valid
	}{
		{name: "CNAME and A at one name",
			records: "        - {name: www, type: CNAME, value: play.edge.test.}\n        - {name: www, type: A, value: 192.0.2.1}\n",
			want:    []string{`z.yaml:7: dns.zones[0].records[0]: www.edge.test. has a CNAME and other data (A (dns.zones[0].records[1]))`}},
		{name: "CNAME at the apex",
			records: "        - {name: \"@\", type: CNAME, value: other.test.}\n",
			want:    []string{`z.yaml:7: dns.zones[0].records[0]: a CNAME at the zone apex edge.test.`}},
		{name: "two CNAMEs",
			records: "        - {name: www, type: CNAME, value: a.edge.test.}\n        - {name: www, type: CNAME, value: b.edge.test.}\n",
			want:    []string{`z.yaml:8: dns.zones[0].records[1]: www.edge.test. has a second CNAME (the first is CNAME (dns.zones[0].records[0]))`}},
		{name: "the same CNAME twice is one record",
			records: "        - {name: www, type: CNAME, value: a.edge.test.}\n        - {name: www, type: CNAME, value: a.edge.test.}\n"},
		{name: "CNAME in the YAML, A in the zone file",
			records: "        - {name: www, type: CNAME, value: a.edge.test.}\n",
			file:    zf("a.zone", "; addresses\n\nwww IN A 192.0.2.1\n"),
			want:    []string{`z.yaml:7: dns.zones[0].records[0]: www.edge.test. has a CNAME and other data (A (` + filepath.Join(dir, "a.zone") + `:3))`}},
		{name: "CNAME and TXT in the zone file name its lines",
			file: zf("b.zone", "www IN TXT \"x\"\nwww IN CNAME a.edge.test.\n"),
			want: []string{`z.yaml:6: dns.zones[0].file: ` + filepath.Join(dir, "b.zone") + `:2: www.edge.test. has a CNAME and other data (TXT (` + filepath.Join(dir, "b.zone") + `:1))`}},
		{name: "CNAME beside a delegation",
			records: "        - {name: sub, type: NS, value: ns1.edge.test.}\n        - {name: sub, type: CNAME, value: a.edge.test.}\n",
			want:    []string{`dns.zones[0].records[1]: sub.edge.test. has a CNAME and other data (NS`}},
		{name: "static A at a service name",
			records:  "        - {name: play, type: A, value: 192.0.2.1}\n",
			services: "        - {name: play}\n",
			want:     []string{`z.yaml:7: dns.zones[0].records[0]: play.edge.test. is a service name (dns.zones[0].services[0].name)`}},
		{name: "static AAAA at a service name in the zone file",
			file:     zf("c.zone", "play IN AAAA 2001:db8::1\n"),
			services: "        - {name: play}\n",
			want:     []string{`dns.zones[0].file: ` + filepath.Join(dir, "c.zone") + `:1: play.edge.test. is a service name`}},
		{name: "TXT at a service name is served beside it",
			records:  "        - {name: play, type: TXT, value: '\"hello\"'}\n",
			services: "        - {name: play}\n"},
		{name: "CNAME at a service name",
			records:  "        - {name: play, type: CNAME, value: a.edge.test.}\n",
			services: "        - {name: play}\n",
			want:     []string{`dns.zones[0].records[0]: play.edge.test. has a CNAME and other data (service (dns.zones[0].services[0].name))`}},
		{name: "service below a delegation",
			records:  "        - {name: sub, type: NS, value: ns.other.test.}\n",
			services: "        - {name: play.sub}\n",
			want:     []string{`dns.zones[0].services[0].name: play.sub.edge.test. is below the delegation at sub.edge.test.`}},
		{name: "service at a delegation",
			records:  "        - {name: play, type: NS, value: ns.other.test.}\n",
			services: "        - {name: play}\n",
			want:     []string{`dns.zones[0].records[0]: play.edge.test. is a service name (dns.zones[0].services[0].name): NS records would delegate it away`}},
		{name: "wildcard service",
			services: "        - {name: \"*.w\"}\n",
			want:     []string{`dns.zones[0].services[0].name: *.w.edge.test.: a service name cannot be a wildcard`}},
		{name: "NS at a wildcard",
			records: "        - {name: \"*.w\", type: NS, value: ns.other.test.}\n",
			want:    []string{`dns.zones[0].records[0]: *.w.edge.test.: NS records at a wildcard are not served (RFC 4592 §4.2)`}},
		{name: "two TTLs in one RRset",
			records: "        - {name: a, type: A, ttl: 60s, value: 192.0.2.1}\n        - {name: a, type: A, ttl: 70s, value: 192.0.2.2}\n",
			want:    []string{`z.yaml:8: dns.zones[0].records[1]: a.edge.test. A: TTL 70s differs from the 60s of the same RRset's A (dns.zones[0].records[0])`}},
		{name: "a delegation with glue, a wildcard and a CNAME into it",
			records: "        - {name: sub, type: NS, value: ns.sub.edge.test.}\n        - {name: ns.sub, type: A, value: 192.0.2.53}\n" +
				"        - {name: \"*.w\", type: A, value: 192.0.2.80}\n        - {name: tow, type: CNAME, value: x.w.edge.test.}\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("z.yaml", []byte(dnsZoneYAML(c.records, c.file, c.services)))
			if len(c.want) == 0 {
				if err != nil {
					t.Fatalf("want valid, got:\n%v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("want %d problem(s), got a valid configuration", len(c.want))
			}
			ce := err.(*Errors)
			if ce.Len() != len(c.want) {
				t.Errorf("want %d problem(s), got %d:\n%v", len(c.want), ce.Len(), err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("want %q in:\n%v", w, err)
				}
			}
		})
	}
}

// TestDNSSECSettings: a signed zone needs its keys (hedge dnssec keygen
// makes them) and known settings, each problem on its field's line.
func TestDNSSECSettings(t *testing.T) {
	dir := t.TempDir()
	src := func(dnssec string) string {
		return "data_dir: " + dir + "\n" + dnsZoneYAML("", "", "") + "      dnssec: " + dnssec + "\n"
	}
	cases := []struct {
		dnssec string
		want   []string
	}{
		{"{enabled: false}", nil},
		{"{enabled: true}", []string{`z.yaml:7: dns.zones[0].dnssec.enabled: no keys in ` + filepath.Join(dir, "dnssec", "edge.test") + `: make them with hedge dnssec keygen -c z.yaml`}},
		{"{algorithm: rsasha1, keys: zsk, signature_validity: 10m}", []string{
			`dns.zones[0].dnssec.algorithm: "rsasha1" is not one of ecdsap256sha256, ed25519`,
			`dns.zones[0].dnssec.keys: "zsk" is not one of csk, ksk+zsk`,
			`dns.zones[0].dnssec.signature_validity: must be at least 1h, got 10m0s`}},
	}
	for _, c := range cases {
		_, err := Parse("z.yaml", []byte(src(c.dnssec)))
		if len(c.want) == 0 {
			if err != nil {
				t.Errorf("%s: want valid, got %v", c.dnssec, err)
			}
			continue
		}
		if err == nil || err.(*Errors).Len() != len(c.want) {
			t.Errorf("%s: want %d problem(s), got %v", c.dnssec, len(c.want), err)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: want %q in:\n%v", c.dnssec, w, err)
			}
		}
	}
	// What keygen loads: the same file without the keys is fine.
	f := filepath.Join(dir, "z.yaml")
	os.WriteFile(f, []byte(src("{enabled: true}")), 0o600)
	if _, err := LoadForKeygen(f); err != nil {
		t.Errorf("LoadForKeygen: %v", err)
	}
}
