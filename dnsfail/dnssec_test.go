package dnsfail

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"hedge/configs"
)

// delvAnchor writes a trust anchor for edge.test. from the DS that
// `hedge dnssec ds` prints (PrintDS), in delv's format.
func delvAnchor(t *testing.T, d *testDeployment) string {
	t.Helper()
	var out bytes.Buffer
	if err := PrintDS(d.cfg, "", &out); err != nil {
		t.Fatal(err)
	}
	rr, err := dns.NewRR(out.String())
	if err != nil {
		t.Fatalf("PrintDS wrote %q: %v", out.String(), err)
	}
	ds := rr.(*dns.DS)
	file := filepath.Join(t.TempDir(), "anchor.conf")
	conf := fmt.Sprintf("trust-anchors {\n  edge.test. static-ds %d %d %d \"%s\";\n};\n", ds.KeyTag, ds.Algorithm, ds.DigestType, ds.Digest)
	if err := os.WriteFile(file, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

func runDelv(t *testing.T, addr, anchor string, args ...string) string {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	argv := append([]string{"@" + host, "-p", port, "-a", anchor, "+root=edge.test"}, args...)
	out, _ := exec.Command(needTool(t, "delv"), argv...).CombinedOutput()
	return string(out)
}

// TestDNSSECValidates: a real validator (BIND's delv, with the DS that
// hedge dnssec ds prints as its trust anchor) validates hedge's signed
// answers — static, service, CNAME, wildcard, DNSKEY — and its negative
// answers (compact denial, RFC 9824), with each key layout and algorithm.
func TestDNSSECValidates(t *testing.T) {
	needTool(t, "delv")
	cases := []struct {
		query []string
		want  []string // substrings of delv's output
	}{
		{[]string{"play.edge.test", "A"}, []string{"; fully validated", "play.edge.test.\t\t10\tIN\tA\t127.0.0.11", "\tRRSIG\tA "}},
		{[]string{"play.edge.test", "AAAA"}, []string{"; fully validated", "2001:db8::12"}},
		{[]string{"sea.edge.test", "A"}, []string{"; fully validated", "127.0.0.11"}},
		{[]string{"www.edge.test", "A"}, []string{"; fully validated", "CNAME\tplay.edge.test.", "127.0.0.12"}},
		{[]string{"foo.wild.edge.test", "A"}, []string{"; fully validated", "foo.wild.edge.test.\t3600\tIN\tA\t192.0.2.80"}},
		{[]string{"foo.wc.edge.test", "A"}, []string{"; fully validated", "CNAME\tplay.edge.test."}},
		{[]string{"edge.test", "DNSKEY"}, []string{"; fully validated", "DNSKEY\t257 3 "}},
		{[]string{"edge.test", "CDS"}, []string{"; fully validated", "CDS\t"}},
		{[]string{"edge.test", "MX"}, []string{"; negative response, fully validated"}},
		{[]string{"sea.edge.test", "NSEC"}, []string{"; fully validated", `NSEC	\000.sea.edge.test. A RRSIG NSEC`}},
		{[]string{"nosuch.edge.test", "A"}, []string{"; negative response, fully validated", `NSEC \000.nosuch.edge.test. RRSIG NSEC TYPE128`}},
		{[]string{"a.b.nosuch.edge.test", "TXT"}, []string{"; negative response, fully validated"}},
		{[]string{"sea.edge.test", "AAAA"}, []string{"; negative response, fully validated", `NSEC \000.sea.edge.test. A RRSIG NSEC`}},
		{[]string{"fo.edge.test", "AAAA"}, []string{"; negative response, fully validated"}},
		{[]string{"b.deep.edge.test", "A"}, []string{"; negative response, fully validated"}},
		{[]string{"foo.wild.edge.test", "AAAA"}, []string{"; negative response, fully validated"}},
		{[]string{"tonx.edge.test", "A"}, []string{"; fully validated", "CNAME\tnosuch.edge.test.", `NSEC \000.nosuch.edge.test. RRSIG NSEC TYPE128`}},
		{[]string{"sub.edge.test", "DS"}, []string{"; negative response, fully validated", `NSEC \000.sub.edge.test. NS RRSIG NSEC`}},
	}
	for _, layout := range []string{"csk ecdsap256sha256", "ksk+zsk ecdsap256sha256", "csk ed25519"} {
		t.Run(layout, func(t *testing.T) {
			d := newDeployment(t, deployOpts{dnssec: layout})
			anchor := delvAnchor(t, d)
			for _, c := range cases {
				out := runDelv(t, d.addr, anchor, c.query...)
				for _, w := range c.want {
					if !strings.Contains(out, w) {
						t.Errorf("delv %s: want %q in:\n%s", strings.Join(c.query, " "), w, out)
					}
				}
			}
			// A broken signature must fail: the same answers against
			// another zone's anchor.
			other := newDeployment(t, deployOpts{dnssec: layout})
			if out := runDelv(t, d.addr, delvAnchor(t, other), "sea.edge.test", "A"); strings.Contains(out, "fully validated") {
				t.Errorf("delv validated against the wrong trust anchor:\n%s", out)
			}
		})
	}
}

// TestDNSSECKdig reads kdig +dnssec: signatures only for DO, the compact
// NXDOMAIN as NOERROR with NXNAME, the keys and what the parent needs.
func TestDNSSECKdig(t *testing.T) {
	d := newDeployment(t, deployOpts{dnssec: "ksk+zsk ecdsap256sha256"})
	cases := []struct {
		name      string
		args      []string
		status    string
		answer    []string // substrings, in order, one per record
		authority []string
	}{
		{"no DO, no signatures", []string{"sea.edge.test", "A"}, "NOERROR", []string{"IN A 127.0.0.11"}, nil},
		{"DO: RRSIG beside the answer", []string{"+dnssec", "sea.edge.test", "A"}, "NOERROR", []string{"IN A 127.0.0.11", "IN RRSIG A 13 3 3600 "}, nil},
		{"DO, service", []string{"+dnssec", "play.edge.test", "A"}, "NOERROR", []string{"IN A 127.0.0.11", "IN A 127.0.0.12", "IN RRSIG A 13 3 10 "}, nil},
		{"no DO, NXDOMAIN as ever", []string{"nosuch.edge.test", "A"}, "NXDOMAIN", nil, []string{"IN SOA "}},
		{"DO: compact NXDOMAIN", []string{"+dnssec", "nosuch.edge.test", "A"}, "NOERROR", nil,
			[]string{"IN SOA ", "IN RRSIG SOA ", `nosuch.edge.test. 30 IN NSEC \000.nosuch.edge.test. RRSIG NSEC TYPE128`, "IN RRSIG NSEC "}},
		{"DO: NODATA", []string{"+dnssec", "sea.edge.test", "TXT"}, "NOERROR", nil,
			[]string{"IN SOA ", "IN RRSIG SOA ", `sea.edge.test. 30 IN NSEC \000.sea.edge.test. A RRSIG NSEC`, "IN RRSIG NSEC "}},
		{"DNSKEY: KSK and ZSK, signed by the KSK", []string{"+dnssec", "edge.test", "DNSKEY"}, "NOERROR", []string{"IN DNSKEY 257 3 13 ", "IN DNSKEY 256 3 13 ", "IN RRSIG DNSKEY 13 2 3600 "}, nil},
		{"CDS", []string{"edge.test", "CDS"}, "NOERROR", []string{"IN CDS "}, nil},
		{"RRSIG asked for: the signature of the name's NSEC", []string{"sea.edge.test", "RRSIG"}, "NOERROR", []string{"IN RRSIG NSEC 13 3 30 "}, nil},
		{"CDNSKEY", []string{"edge.test", "CDNSKEY"}, "NOERROR", []string{"IN CDNSKEY 257 3 13 "}, nil},
		{"DO: referral with the NSEC that proves no DS", []string{"+dnssec", "x.sub.edge.test", "A"}, "NOERROR", nil,
			[]string{"IN NS ns.sub.edge.test.", "IN NS ns1.edge.test.", `sub.edge.test. 30 IN NSEC \000.sub.edge.test. NS RRSIG NSEC`, "IN RRSIG NSEC "}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := runDig(t, "kdig", d.addr, c.args...)
			if r.status != c.status {
				t.Fatalf("status: want %s, got %s\n%s", c.status, r.status, r.out)
			}
			for _, sec := range []struct {
				name      string
				want, got []string
			}{{"answer", c.answer, r.answer}, {"authority", c.authority, r.authority}} {
				if len(sec.want) != len(sec.got) {
					t.Errorf("%s: want %d records, got %d:\n%s", sec.name, len(sec.want), len(sec.got), r.out)
					continue
				}
				for i, w := range sec.want {
					if !strings.Contains(sec.got[i], w) {
						t.Errorf("%s[%d]: want %q in %q", sec.name, i, w, sec.got[i])
					}
				}
			}
		})
	}
	// The DS that hedge dnssec ds prints is the DNSKEY's that is served.
	var ds bytes.Buffer
	if err := PrintDS(d.cfg, "edge.test.", &ds); err != nil {
		t.Fatal(err)
	}
	r := d.query(t, "udp", "edge.test.", dns.TypeDNSKEY)
	found := false
	for _, rr := range r.Answer {
		if k, ok := rr.(*dns.DNSKEY); ok && k.Flags == 257 && k.ToDS(dns.SHA256).String() == strings.TrimSpace(ds.String()) {
			found = true
		}
	}
	if !found {
		t.Errorf("no served KSK has the printed DS %q: %v", ds.String(), r.Answer)
	}
}

func sigOf(m *dns.Msg, t uint16) *dns.RRSIG {
	for _, rr := range append(append([]dns.RR{}, m.Answer...), m.Ns...) {
		if s, ok := rr.(*dns.RRSIG); ok && s.TypeCovered == t {
			return s
		}
	}
	return nil
}

// TestDNSSECSignatureCache: a signature is made once per RRset and reused
// (ECDSA signatures differ each time they are made, so equal signatures
// mean one signing); a service's answers are signed again when they change,
// and the TTL handed out never exceeds the one signed.
func TestDNSSECSignatureCache(t *testing.T) {
	d := newDeployment(t, deployOpts{dnssec: "csk ecdsap256sha256"})
	do := func(m *dns.Msg) { m.SetEdns0(1232, true) }
	a := sigOf(d.query(t, "udp", "play.edge.test.", dns.TypeA, do), dns.TypeA)
	b := sigOf(d.query(t, "tcp", "PLAY.edge.test.", dns.TypeA, do), dns.TypeA)
	if a == nil || b == nil || a.Signature != b.Signature {
		t.Fatalf("the same RRset signed twice: %v / %v", a, b)
	}
	if err := d.srv.SetEdgeDraining("eu-1", true, "test"); err != nil {
		t.Fatal(err)
	}
	r := d.query(t, "udp", "play.edge.test.", dns.TypeA, do)
	c := sigOf(r, dns.TypeA)
	if got := answerAddrs(r); len(got) != 1 || c == nil || c.Signature == a.Signature {
		t.Fatalf("after eu drained: want one address with a new signature, got %v %v", got, c)
	}
	if c.OrigTtl != 10 || r.Answer[0].Header().Ttl > c.OrigTtl || c.Hdr.Ttl != r.Answer[0].Header().Ttl {
		t.Errorf("TTLs: signed %d, served %d, RRSIG %d", c.OrigTtl, r.Answer[0].Header().Ttl, c.Hdr.Ttl)
	}
	// Each name that does not exist is signed once too.
	n1 := sigOf(d.query(t, "udp", "x1.edge.test.", dns.TypeA, do), dns.TypeNSEC)
	n2 := sigOf(d.query(t, "udp", "X1.edge.test.", dns.TypeA, do), dns.TypeNSEC)
	if n1 == nil || n2 == nil || n1.Signature != n2.Signature {
		t.Errorf("the NSEC of one missing name signed twice: %v / %v", n1, n2)
	}
}

// TestDNSSECFastPath: on a signed zone, answers to queries with DO come
// from the fast path's signed replies, exactly as the handler gives them
// (and follow a service's changes); negative answers with DO, whose NSEC
// is the name's own, are the handler's.
func TestDNSSECFastPath(t *testing.T) {
	d := newDeployment(t, deployOpts{dnssec: "csk ecdsap256sha256"})
	check := func(name string, qtype uint16, do, wantFast bool) *dns.Msg {
		t.Helper()
		q := new(dns.Msg)
		q.SetQuestion(name, qtype)
		q.Id = 77
		q.SetEdns0(1232, do)
		wire, _ := q.Pack()
		out, res := d.srv.st.Load().serveFast(wire, nil, netip.MustParseAddr("127.0.0.1"), d.srv.metrics)
		if (res == fastReply) != wantFast {
			t.Fatalf("%s %s DO=%v: want fast path %v, got %v", name, dns.TypeToString[qtype], do, wantFast, res == fastReply)
		}
		if res != fastReply {
			return nil
		}
		got := new(dns.Msg)
		if err := got.Unpack(out); err != nil {
			t.Fatal(err)
		}
		w := &fakeWriter{remote: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}}
		d.srv.ServeDNS(w, q)
		want := new(dns.Msg)
		want.Unpack(w.wire)
		if !strings.EqualFold(got.String(), want.String()) {
			t.Errorf("%s %s DO=%v: fast path and handler differ:\n%s\n%s", name, dns.TypeToString[qtype], do, got, want)
		}
		return got
	}
	for _, c := range []struct {
		name     string
		qtype    uint16
		fastDO   bool
		fastNoDO bool
	}{{"sea.edge.test.", dns.TypeA, true, true}, {"PLAY.edge.test.", dns.TypeA, true, true}, {"edge.test.", dns.TypeDNSKEY, true, true},
		{"www.edge.test.", dns.TypeCNAME, true, true}, {"sea.edge.test.", dns.TypeTXT, false, true}, {"nosuch.edge.test.", dns.TypeA, false, true}} {
		check(c.name, c.qtype, false, c.fastNoDO)
		if r := check(c.name, c.qtype, true, c.fastDO); r != nil && sigOf(r, c.qtype) == nil {
			t.Errorf("%s %s: the fast signed reply has no RRSIG:\n%s", c.name, dns.TypeToString[c.qtype], r)
		}
	}
	// A signed reply whose signatures are half-way to expiring goes to the
	// handler until refreshSigned prepares it again.
	st := d.srv.st.Load()
	slot := st.fast.signed[fastKey([]byte("\x03sea\x04edge\x04test\x00"), dns.TypeA)]
	if slot == nil {
		t.Fatal("no signed reply for sea.edge.test A")
	}
	stale := *slot.cur.Load()
	stale.refreshAt = time.Now().Unix() - 1
	slot.cur.Store(&stale)
	check("sea.edge.test.", dns.TypeA, true, false)
	st.fast.refreshSigned(st, time.Now())
	check("sea.edge.test.", dns.TypeA, true, true)
	if err := d.srv.SetEdgeDraining("eu-1", true, "test"); err != nil {
		t.Fatal(err)
	}
	if r := check("play.edge.test.", dns.TypeA, true, true); len(answerAddrs(r)) != 1 {
		t.Errorf("eu drained: the signed fast reply still has %v", answerAddrs(r))
	}
}

// BenchmarkSigned is the full handler answering with DO on a signed zone
// (signatures cached) next to the same without DO, and the cost of making
// one signature.
func BenchmarkSigned(b *testing.B) {
	for _, alg := range []string{"ecdsap256sha256", "ed25519"} {
		d := newDeployment(b, deployOpts{dnssec: "csk " + alg})
		w := &fakeWriter{remote: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}}
		for _, c := range []struct {
			name string
			q    string
			t    uint16
			do   bool
		}{{"service", "play.edge.test.", dns.TypeA, false}, {"service-signed", "play.edge.test.", dns.TypeA, true},
			{"nodata-signed", "sea.edge.test.", dns.TypeTXT, true}} {
			q := new(dns.Msg)
			q.SetQuestion(c.q, c.t)
			q.SetEdns0(1232, c.do)
			wire, _ := q.Pack()
			b.Run(alg+"/"+c.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					m := new(dns.Msg)
					m.Unpack(wire)
					d.srv.ServeDNS(w, m)
				}
			})
		}
		z := d.srv.st.Load().zones[0]
		rrs := []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: "x.edge.test.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 10}, A: net.IPv4(192, 0, 2, 1)}}
		b.Run(alg+"/sign-one-rrset", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				sig := &dns.RRSIG{Algorithm: z.signer.zsk.dnskey.Algorithm, SignerName: z.apex, KeyTag: z.signer.zsk.dnskey.KeyTag(),
					Inception: uint32(time.Now().Unix()), Expiration: uint32(time.Now().Add(time.Hour).Unix())}
				if err := sig.Sign(z.signer.zsk.priv, rrs); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestKeyGen: hedge dnssec keygen makes a zone's keys once, in the data
// directory, the private halves readable by their owner only, and prints
// the DS that hedge dnssec ds prints again.
func TestKeyGen(t *testing.T) {
	dir := t.TempDir()
	src := "data_dir: " + dir + `
regions: [{name: a, nodes: [{name: n, listeners: [{address: "127.0.0.1:1", tls: {mode: "off"}}]}]}]
dns:
  zones:
    - {name: edge.test., ns: [ns1.edge.test.], dnssec: {enabled: true, keys: ksk+zsk, algorithm: ed25519}}
    - {name: other.test., ns: [ns1.other.test.]}
`
	file := filepath.Join(dir, "z.yaml")
	os.WriteFile(file, []byte(src), 0o600)
	cfg, err := configs.LoadForKeygen(file)
	if err != nil {
		t.Fatal(err)
	}
	var first, again, ds bytes.Buffer
	if err := KeyGen(cfg, "", &first); err != nil {
		t.Fatal(err)
	}
	keys, _ := filepath.Glob(filepath.Join(dir, "dnssec", "edge.test", "Kedge.test.+015+*"))
	if len(keys) != 4 {
		t.Fatalf("want a KSK and a ZSK (.key and .private each), got %v", keys)
	}
	for _, k := range keys {
		if fi, _ := os.Stat(k); strings.HasSuffix(k, ".private") && fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v", k, fi.Mode().Perm())
		}
	}
	if _, err := configs.Load(file); err != nil {
		t.Fatalf("with its keys the configuration is valid: %v", err)
	}
	if err := KeyGen(cfg, "", &again); err != nil || !strings.Contains(again.String(), "already has keys") {
		t.Fatalf("a second keygen: %v\n%s", err, again.String())
	}
	if err := PrintDS(cfg, "", &ds); err != nil {
		t.Fatal(err)
	}
	dsLine := strings.TrimSpace(ds.String())
	if !strings.Contains(dsLine, "\tIN\tDS\t") || !strings.Contains(first.String(), dsLine) || !strings.Contains(again.String(), dsLine) {
		t.Errorf("DS printed by keygen:\n%s\nagain:\n%s\nby ds:\n%s", first.String(), again.String(), dsLine)
	}
	if _, err := os.Stat(filepath.Join(dir, "dnssec", "other.test")); err == nil {
		t.Error("keys made for a zone that is not signed")
	}
}
