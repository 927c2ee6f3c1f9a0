package dnsfail

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"hedge/configs"
)

// The differential test: hedge and a real Knot (Debian's knotd, started
// here on loopback) serve the same zone — the test deployment's, written as
// a zone file with the service names' current answers as static records —
// and get the same queries. Every difference in RCODE, flags, EDNS or
// sections must be one of knotDifferences below, each with the RFC text
// that allows it; anything else fails the test.

// knotServer is a knotd serving zone on a free loopback port.
type knotServer struct {
	addr string
}

func startKnot(t *testing.T, zone, zoneText string) *knotServer {
	t.Helper()
	knotd := needTool(t, "knotd")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "zone.txt"), []byte(zoneText), 0o644); err != nil {
		t.Fatal(err)
	}
	for attempt := 0; ; attempt++ {
		port := freePort(t)
		conf := fmt.Sprintf(`server:
    rundir: "%[1]s"
    listen: 127.0.0.1@%[2]d
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: "%[1]s"
log:
  - target: stderr
    any: warning
template:
  - id: default
    storage: "%[1]s"
    semantic-checks: on
zone:
  - domain: %[3]s
    file: "zone.txt"
`, dir, port, zone)
		confFile := filepath.Join(dir, "knot.conf")
		if err := os.WriteFile(confFile, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(knotd, "-c", confFile)
		var log strings.Builder
		cmd.Stdout, cmd.Stderr = &log, &log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		t.Cleanup(func() {
			cmd.Process.Kill()
			<-exited
		})
		k := &knotServer{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			select {
			case <-exited:
				deadline = time.Time{}
				continue
			default:
			}
			m := new(dns.Msg)
			m.SetQuestion(zone, dns.TypeSOA)
			if r, _, err := (&dns.Client{Timeout: 200 * time.Millisecond}).Exchange(m, k.addr); err == nil && r.Rcode == dns.RcodeSuccess && len(r.Answer) == 1 {
				return k
			}
			time.Sleep(50 * time.Millisecond)
		}
		cmd.Process.Kill()
		<-exited
		if attempt == 3 {
			t.Fatalf("knotd did not serve %s:\n%s", zone, log.String())
		}
	}
}

// freePort finds a loopback port free for both UDP and TCP now.
func freePort(t *testing.T) int {
	t.Helper()
	for range 50 {
		u, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := u.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp", u.LocalAddr().String())
		u.Close()
		if err == nil {
			l.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

// zoneText writes a zone of st as a master file, the service names with
// the answers they give client now.
func zoneText(st *state, z *zone, client netip.Addr) string {
	var b strings.Builder
	for _, n := range slices.Sorted(maps.Keys(z.names)) {
		o := z.names[n]
		for _, set := range o.sets {
			for _, rr := range set.rrs {
				fmt.Fprintln(&b, rr.String())
			}
		}
		if o.service != nil {
			for _, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
				rrs, _ := o.service.records(n, t, client)
				for _, rr := range rrs {
					fmt.Fprintln(&b, rr.String())
				}
			}
		}
	}
	return b.String()
}

// diffQuery is one query of the differential test.
type diffQuery struct {
	desc  string
	proto string // udp | tcp
	msg   *dns.Msg
	wire  []byte // raw bytes instead of msg (malformed queries)
}

// knotQueries generates the queries: every name of interest with the
// common types, then a seeded random sample over names, types, letter
// case, EDNS sizes, flags and transports, then malformed packets.
func knotQueries() []diffQuery {
	names := []string{"edge.test.", "ns1.edge.test.", "sea.edge.test.", "www.edge.test.", "out.edge.test.", "a.b.deep.edge.test.",
		"b.deep.edge.test.", "deep.edge.test.", "x.b.deep.edge.test.", "play.edge.test.", "fo.edge.test.", "big.edge.test.",
		"sub.edge.test.", "x.sub.edge.test.", "ns.sub.edge.test.", "y.ns.sub.edge.test.", "foo.wild.edge.test.", "a.b.wild.edge.test.",
		"wild.edge.test.", "*.wild.edge.test.", "x.*.wild.edge.test.", "foo.wc.edge.test.", "tow.edge.test.", "tosub.edge.test.",
		"tonx.edge.test.", "loop1.edge.test.", "mx.edge.test.", "srv.edge.test.", "nosuch.edge.test.", "example.com.", "other.test.", "."}
	common := []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeNS, dns.TypeSOA, dns.TypeCNAME, dns.TypeMX, dns.TypeTXT, dns.TypeANY, dns.TypeDS}
	rare := []uint16{dns.TypeSRV, dns.TypeCAA, dns.TypePTR, dns.TypeDNSKEY, dns.TypeRRSIG, dns.TypeNSEC, dns.TypeNSEC3PARAM, 65000, dns.TypeHINFO}
	var out []diffQuery
	add := func(desc, proto, name string, qtype uint16, edit func(*dns.Msg)) {
		m := new(dns.Msg)
		m.SetQuestion(name, qtype)
		m.RecursionDesired = false
		m.SetEdns0(1232, false)
		if edit != nil {
			edit(m)
		}
		out = append(out, diffQuery{desc: desc, proto: proto, msg: m})
	}
	for _, n := range names {
		for _, t := range common {
			add("plain", "udp", n, t, nil)
		}
	}
	rng := rand.New(rand.NewPCG(14, 1034))
	sizes := []int{-1, 512, 1232, 1400, 4096, 65535}
	for range 200 {
		n := names[rng.IntN(len(names))]
		var t uint16
		if rng.IntN(3) == 0 {
			t = rare[rng.IntN(len(rare))]
		} else {
			t = common[rng.IntN(len(common))]
		}
		var b strings.Builder
		for _, c := range n {
			if rng.IntN(2) == 0 {
				c = []rune(strings.ToUpper(string(c)))[0]
			}
			b.WriteRune(c)
		}
		size, do, rd, cd, ad := sizes[rng.IntN(len(sizes))], rng.IntN(3) == 0, rng.IntN(2) == 0, rng.IntN(4) == 0, rng.IntN(4) == 0
		proto := "udp"
		if rng.IntN(4) == 0 {
			proto = "tcp"
		}
		desc := fmt.Sprintf("random size=%d do=%v rd=%v cd=%v ad=%v", size, do, rd, cd, ad)
		add(desc, proto, b.String(), t, func(m *dns.Msg) {
			m.Extra = nil
			if size > 0 {
				m.SetEdns0(uint16(size), do)
			}
			m.RecursionDesired, m.CheckingDisabled, m.AuthenticatedData = rd, cd, ad
		})
	}
	// Header, EDNS and question oddities, over both transports.
	for _, proto := range []string{"udp", "tcp"} {
		add("EDNS version 1", proto, "play.edge.test.", dns.TypeA, func(m *dns.Msg) { m.IsEdns0().SetVersion(1) })
		add("two OPT records", proto, "play.edge.test.", dns.TypeA, func(m *dns.Msg) { m.Extra = append(m.Extra, m.Extra[0]) })
		add("OPT not at the root", proto, "play.edge.test.", dns.TypeA, func(m *dns.Msg) { m.IsEdns0().Hdr.Name = "x." })
		add("opcode NOTIFY", proto, "edge.test.", dns.TypeSOA, func(m *dns.Msg) { m.Opcode = dns.OpcodeNotify })
		add("opcode UPDATE", proto, "edge.test.", dns.TypeSOA, func(m *dns.Msg) { m.Opcode = dns.OpcodeUpdate })
		add("opcode STATUS", proto, "edge.test.", dns.TypeSOA, func(m *dns.Msg) { m.Opcode = dns.OpcodeStatus })
		add("opcode 9", proto, "edge.test.", dns.TypeSOA, func(m *dns.Msg) { m.Opcode = 9 })
		add("class CH", proto, "version.bind.", dns.TypeTXT, func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassCHAOS })
		add("class CH in the zone", proto, "play.edge.test.", dns.TypeA, func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassCHAOS })
		add("class ANY", proto, "play.edge.test.", dns.TypeA, func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassANY })
		add("class NONE", proto, "play.edge.test.", dns.TypeA, func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassNONE })
		add("unknown class", proto, "play.edge.test.", dns.TypeA, func(m *dns.Msg) { m.Question[0].Qclass = 77 })
		add("AXFR", proto, "edge.test.", dns.TypeAXFR, nil)
		add("IXFR, standard form", proto, "edge.test.", dns.TypeIXFR, func(m *dns.Msg) {
			m.Ns = append(m.Ns, &dns.SOA{Hdr: dns.RR_Header{Name: "edge.test.", Rrtype: dns.TypeSOA, Class: dns.ClassINET}, Ns: "a.", Mbox: "b.", Serial: 1})
		})
		add("qtype OPT", proto, "play.edge.test.", dns.TypeOPT, nil)
		add("qtype MAILB", proto, "play.edge.test.", dns.TypeMAILB, nil)
		add("an answer record in the query", proto, "play.edge.test.", dns.TypeA, func(m *dns.Msg) {
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: "x.", Rrtype: dns.TypeA, Class: dns.ClassINET}, A: net.IPv4(1, 2, 3, 4)})
		})
		add("TC set in the query", proto, "play.edge.test.", dns.TypeA, func(m *dns.Msg) { m.Truncated = true })
		add("AA set in the query", proto, "play.edge.test.", dns.TypeA, func(m *dns.Msg) { m.Authoritative = true })
		add("Z set in the query", proto, "play.edge.test.", dns.TypeA, func(m *dns.Msg) { m.Zero = true })
		add("no EDNS, big answer", proto, "big.edge.test.", dns.TypeTXT, func(m *dns.Msg) { m.Extra = nil })
		add("EDNS 65535, big answer", proto, "big.edge.test.", dns.TypeTXT, func(m *dns.Msg) { m.Extra = nil; m.SetEdns0(65535, false) })
	}
	q := func(name string, qtype uint16) []byte {
		m := new(dns.Msg)
		m.SetQuestion(name, qtype)
		m.Id = 4242
		b, _ := m.Pack()
		return b
	}
	hdr := func(flags, qd, an, ns, ar uint16) []byte {
		b := make([]byte, 12)
		for i, v := range []uint16{4242, flags, qd, an, ns, ar} {
			b[2*i], b[2*i+1] = byte(v>>8), byte(v)
		}
		return b
	}
	full := q("play.edge.test.", dns.TypeA)
	raw := []struct {
		desc string
		wire []byte
	}{
		{"no question", hdr(0, 0, 0, 0, 0)},
		{"two questions", append(append(hdr(0, 2, 0, 0, 0), full[12:]...), full[12:]...)},
		{"question cut before QCLASS", full[:len(full)-2]},
		{"question cut inside QTYPE", full[:len(full)-3]},
		{"question name cut", full[:16]},
		{"label past the end", append(hdr(0, 1, 0, 0, 0), 60, 'a', 'b')},
		{"compression loop in the question", append(hdr(0, 1, 0, 0, 0), 0xc0, 12, 0, 1, 0, 1)},
		{"counts larger than the message", hdr(0, 1, 5, 5, 5)},
		{"trailing garbage", append(slices.Clone(full), 1, 2, 3)},
		{"a response", append(hdr(0x8000, 1, 0, 0, 0), full[12:]...)},
	}
	for _, proto := range []string{"udp", "tcp"} {
		for _, r := range raw {
			out = append(out, diffQuery{desc: "malformed: " + r.desc, proto: proto, wire: r.wire})
		}
	}
	return out
}

// reply is what the comparison looks at: the whole reply, or that there
// was none (dropped, or the connection closed).
type reply struct {
	m    *dns.Msg
	none string
}

func exchange(addr string, q diffQuery) reply {
	wire := q.wire
	if wire == nil {
		var err error
		if wire, err = q.msg.Pack(); err != nil {
			return reply{none: "query does not pack: " + err.Error()}
		}
	}
	c, err := net.DialTimeout(q.proto, addr, time.Second)
	if err != nil {
		return reply{none: err.Error()}
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(300 * time.Millisecond))
	if q.proto == "tcp" {
		wire = append([]byte{byte(len(wire) >> 8), byte(len(wire))}, wire...)
	}
	if _, err := c.Write(wire); err != nil {
		return reply{none: "write: " + err.Error()}
	}
	var b []byte
	buf := make([]byte, 65535+2)
	if q.proto == "udp" {
		n, err := c.Read(buf)
		if err != nil {
			return reply{none: "no reply"}
		}
		b = buf[:n]
	} else {
		n := 0
		for n < 2 || n < 2+(int(buf[0])<<8|int(buf[1])) {
			k, err := c.Read(buf[n:])
			if err != nil {
				return reply{none: "no reply"}
			}
			n += k
		}
		b = buf[2:n]
	}
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		return reply{none: "reply does not parse: " + err.Error()}
	}
	return reply{m: m}
}

// summary renders what the comparison compares, one line per item.
func summary(r reply) []string {
	if r.m == nil {
		return []string{"no reply (" + r.none + ")"}
	}
	m := r.m
	out := []string{
		"rcode " + dns.RcodeToString[m.Rcode],
		fmt.Sprintf("flags qr=%v opcode=%d aa=%v tc=%v rd=%v ra=%v z=%v ad=%v cd=%v", m.Response, m.Opcode, m.Authoritative, m.Truncated,
			m.RecursionDesired, m.RecursionAvailable, m.Zero, m.AuthenticatedData, m.CheckingDisabled),
	}
	for _, q := range m.Question {
		out = append(out, "question "+strings.ToLower(q.String()))
	}
	if opt := m.IsEdns0(); opt != nil {
		out = append(out, fmt.Sprintf("edns version=%d udp=%d do=%v", opt.Version(), opt.UDPSize(), opt.Do()))
	}
	for _, s := range []struct {
		name string
		rrs  []dns.RR
	}{{"answer", m.Answer}, {"authority", m.Ns}, {"additional", m.Extra}} {
		var lines []string
		for _, rr := range s.rrs {
			if rr.Header().Rrtype != dns.TypeOPT {
				lines = append(lines, s.name+" "+strings.ToLower(rrText(rr)))
			}
		}
		// The order of records in a section carries no meaning (RFC 2181 §5).
		slices.Sort(lines)
		out = append(out, lines...)
	}
	return out
}

// knotDifference is a difference hedge keeps on purpose, with the text
// that allows it.
type knotDifference struct {
	name string
	why  string
	// applies says whether the difference explains the two replies.
	applies func(q diffQuery, hedge, knot reply) bool
}

func rcodeOf(r reply) int {
	if r.m == nil {
		return -1
	}
	return r.m.Rcode
}

func qtypeOf(q diffQuery) uint16 {
	if q.msg == nil {
		return 0
	}
	return q.msg.Question[0].Qtype
}

var knotDifferences = []knotDifference{
	{"CD copied into the reply",
		`RFC 4035 §3.1.6: "a security-aware name server MUST copy the CD bit from a query into the corresponding response"; Knot clears it.`,
		func(q diffQuery, h, k reply) bool {
			if q.msg == nil || !q.msg.CheckingDisabled || h.m == nil || k.m == nil || !h.m.CheckingDisabled || k.m.CheckingDisabled {
				return false
			}
			c := h.m.Copy()
			c.CheckingDisabled = false
			return slices.Equal(summary(reply{m: c}), summary(k))
		}},
	{"zone transfers REFUSED",
		`RFC 1035 §4.1.1: REFUSED, "the name server refuses to perform the specified operation for policy reasons"; hedge serves no transfers (README). Knot says NOTAUTH over TCP and NOTIMP over UDP.`,
		func(q diffQuery, h, k reply) bool {
			t := qtypeOf(q)
			return (t == dns.TypeAXFR || t == dns.TypeIXFR) && rcodeOf(h) == dns.RcodeRefused &&
				(rcodeOf(k) == dns.RcodeNotAuth || rcodeOf(k) == dns.RcodeNotImplemented)
		}},
	{"NOTIFY and UPDATE are NOTIMP",
		`RFC 2136 §3.1 (UPDATE) and RFC 1035 §4.1.1: NOTIMP, "the name server does not support the requested kind of query"; hedge implements neither. Knot, which does, says NOTAUTH without an ACL.`,
		func(q diffQuery, h, k reply) bool {
			return q.msg != nil && (q.msg.Opcode == dns.OpcodeNotify || q.msg.Opcode == dns.OpcodeUpdate) &&
				rcodeOf(h) == dns.RcodeNotImplemented && rcodeOf(k) == dns.RcodeNotAuth
		}},
	{"classes other than IN REFUSED",
		`RFC 1035 §3.2.4-5 and §4.1.1: hedge serves class IN only and refuses the rest, QCLASS * included, as its README says; Knot answers QCLASS * from its IN zones and CH TXT version.bind with its version.`,
		func(q diffQuery, h, k reply) bool {
			return q.msg != nil && q.msg.Question[0].Qclass != dns.ClassINET && rcodeOf(h) == dns.RcodeRefused
		}},
	{"OPT owner other than the root is FORMERR",
		`RFC 6891 §6.1.2: the OPT's NAME "MUST be 0 (root domain)"; hedge treats a query that breaks it as malformed, Knot ignores the name.`,
		func(q diffQuery, h, k reply) bool {
			return q.desc == "OPT not at the root" && rcodeOf(h) == dns.RcodeFormatError && rcodeOf(k) == dns.RcodeSuccess
		}},
	{"meta and mailbox QTYPEs",
		`RFC 6895 §3.1: OPT is a meta-TYPE that "can only be used in" its own place, not asked for (FORMERR), and MAILA/MAILB are obsolete QTYPEs hedge does not implement (NOTIMP, RFC 1035 §4.1.1); Knot answers both with NODATA.`,
		func(q diffQuery, h, k reply) bool {
			t := qtypeOf(q)
			return (t == dns.TypeOPT && rcodeOf(h) == dns.RcodeFormatError || (t == dns.TypeMAILA || t == dns.TypeMAILB) && rcodeOf(h) == dns.RcodeNotImplemented) &&
				rcodeOf(k) == dns.RcodeSuccess
		}},
	{"records in a query's answer section are FORMERR",
		`RFC 1035 §4.1.1 / §4.1.3: a standard query carries its question and, with EDNS, an OPT (RFC 6891); hedge rejects one with answer or authority records as malformed, Knot ignores them.`,
		func(q diffQuery, h, k reply) bool {
			return q.msg != nil && len(q.msg.Answer) > 0 && rcodeOf(h) == dns.RcodeFormatError && rcodeOf(k) == dns.RcodeSuccess
		}},
	{"malformed queries get FORMERR",
		`RFC 1035 §4.1.1: FORMERR, "the name server was unable to interpret the query"; hedge answers every query whose header it can read (with the id, so the client stops waiting), Knot drops those it cannot parse.`,
		func(q diffQuery, h, k reply) bool {
			return q.wire != nil && rcodeOf(h) == dns.RcodeFormatError && k.m == nil
		}},
	{"octets after the last record are ignored",
		`RFC 1035 §4.1 defines a message by its section counts; hedge (as the dns package) ignores what follows the last record, Knot calls it FORMERR.`,
		func(q diffQuery, h, k reply) bool {
			return q.desc == "malformed: trailing garbage" && rcodeOf(h) == dns.RcodeSuccess && rcodeOf(k) == dns.RcodeFormatError
		}},
}

func TestKnotDifferential(t *testing.T) {
	d := newDeployment(t, deployOpts{})
	st := d.srv.st.Load()
	z := st.zones.find("edge.test.")
	k := startKnot(t, "edge.test.", zoneText(st, z, netip.MustParseAddr("127.0.0.1")))
	queries := knotQueries()
	same, explained := 0, map[string]int{}
	var unexplained []string
	for _, q := range queries {
		h, kr := exchange(d.addr, q), exchange(k.addr, q)
		hs, ks := summary(h), summary(kr)
		if slices.Equal(hs, ks) {
			same++
			continue
		}
		i := slices.IndexFunc(knotDifferences, func(kd knotDifference) bool { return kd.applies(q, h, kr) })
		if i >= 0 {
			explained[knotDifferences[i].name]++
			continue
		}
		question := "(raw)"
		if q.msg != nil {
			question = q.msg.Question[0].String()
		}
		unexplained = append(unexplained, fmt.Sprintf("%s %s %s:\n  hedge: %s\n  knot:  %s", q.proto, q.desc, question,
			strings.Join(hs, "\n         "), strings.Join(ks, "\n         ")))
	}
	t.Logf("%d queries: %d identical, %d differ as allowed, %d differ otherwise", len(queries), same, len(queries)-same-len(unexplained), len(unexplained))
	for _, kd := range knotDifferences {
		if explained[kd.name] > 0 {
			t.Logf("  %3d × %s — %s", explained[kd.name], kd.name, kd.why)
		}
	}
	if len(queries) < 300 {
		t.Errorf("only %d queries", len(queries))
	}
	for _, u := range unexplained {
		t.Error(u)
	}
}

// TestZoneCheckAgainstKnot: hedge check refuses every zone Knot's checker
// (knotc zone-check, semantic checks on) refuses, and accepts what it
// accepts, except where hedge is stricter on purpose (listed, with why).
func TestZoneCheckAgainstKnot(t *testing.T) {
	knotc := needTool(t, "knotc")
	cases := []struct {
		name, zone string
		stricter   string // why hedge refuses what Knot accepts
	}{
		{"plain records", "www IN A 192.0.2.1\nmail IN MX 10 www.edge.test.\n", ""},
		{"CNAME and A at one name", "www IN CNAME a.edge.test.\nwww IN A 192.0.2.1\n", ""},
		{"CNAME and TXT at one name", "www IN TXT \"x\"\nwww IN CNAME a.edge.test.\n", ""},
		{"CNAME at the apex", "@ IN CNAME other.test.\n", ""},
		{"two CNAMEs", "www IN CNAME a.edge.test.\nwww IN CNAME b.edge.test.\n", ""},
		{"the same CNAME twice", "www IN CNAME a.edge.test.\nwww IN CNAME a.edge.test.\n", ""},
		{"CNAME beside a delegation", "sub IN NS ns1.edge.test.\nsub IN CNAME a.edge.test.\n", ""},
		{"delegation with glue", "sub IN NS ns.sub.edge.test.\nns.sub IN A 192.0.2.53\n", ""},
		{"delegation without glue", "sub IN NS ns.sub.edge.test.\n", ""},
		{"data below a delegation", "sub IN NS ns1.edge.test.\nx.y.sub IN TXT \"occluded\"\n", ""},
		{"wildcard with a CNAME", "*.w IN CNAME www.edge.test.\nwww IN A 192.0.2.1\n", ""},
		{"CNAME into a wildcard", "*.w IN A 192.0.2.1\ntow IN CNAME x.w.edge.test.\n", ""},
		{"NS at a wildcard", "*.w IN NS ns1.edge.test.\n", "RFC 4592 §4.2: a wildcard NS is not served"},
		{"two TTLs in one RRset", "a 60 IN A 192.0.2.1\na 70 IN A 192.0.2.2\n", "RFC 2181 §5.2: an RRset has one TTL (Knot takes the last)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			knotZone := "$TTL 3600\n@ 60 IN SOA ns1.edge.test. hostmaster.edge.test. 1 3600 600 1209600 30\n@ IN NS ns1.edge.test.\nns1 IN A 127.0.0.1\n" + c.zone
			os.WriteFile(filepath.Join(dir, "knot.zone"), []byte(knotZone), 0o644)
			hedgeZone := "ns1 IN A 127.0.0.1\n" + c.zone
			os.WriteFile(filepath.Join(dir, "hedge.zone"), []byte(hedgeZone), 0o644)
			conf := fmt.Sprintf("server:\n    rundir: %q\ndatabase:\n    storage: %q\ntemplate:\n  - id: default\n    storage: %q\n    semantic-checks: on\nzone:\n  - domain: edge.test\n    file: knot.zone\n", dir, dir, dir)
			os.WriteFile(filepath.Join(dir, "knot.conf"), []byte(conf), 0o644)
			out, err := exec.Command(knotc, "-c", filepath.Join(dir, "knot.conf"), "zone-check", "edge.test").CombinedOutput()
			knotOK := err == nil && !strings.Contains(string(out), "error:")
			yaml := fmt.Sprintf("regions: [{name: a, nodes: [{name: n, listeners: [{address: \"127.0.0.1:1\", tls: {mode: \"off\"}}]}]}]\n"+
				"dns:\n  zones:\n    - name: edge.test.\n      ns: [ns1.edge.test.]\n      file: %s\n", filepath.Join(dir, "hedge.zone"))
			_, herr := configs.Parse("z.yaml", []byte(yaml))
			hedgeOK := herr == nil
			switch {
			case !knotOK && hedgeOK:
				t.Errorf("Knot refuses the zone, hedge check accepts it; knotc:\n%s", out)
			case knotOK && !hedgeOK && c.stricter == "":
				t.Errorf("Knot accepts the zone, hedge check refuses it:\n%v", herr)
			case knotOK && hedgeOK && c.stricter != "":
				t.Errorf("hedge should refuse (%s), but accepts", c.stricter)
			case !hedgeOK && !strings.Contains(herr.Error(), "z.yaml:6: dns.zones[0].file: "+filepath.Join(dir, "hedge.zone")+":"):
				t.Errorf("hedge's error does not name the YAML's file, line and field and the zone file's line:\n%v", herr)
			}
			t.Logf("knot ok=%v, hedge ok=%v %v", knotOK, hedgeOK, herr)
		})
	}
}
