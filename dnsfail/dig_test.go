package dnsfail

import (
	"net"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// digResult is the part of dig's (or kdig's) text output the tests read.
type digResult struct {
	out       string
	status    string
	flags     string
	answer    []string
	authority []string
}

var (
	statusRE = regexp.MustCompile(`status: ([A-Z]+)`)
	flagsRE  = regexp.MustCompile(`;; [Ff]lags: ([a-z ]*);`)
)

func runDig(t *testing.T, tool, addr string, args ...string) digResult {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	argv := []string{"@" + host, "-p", port, "+norec"}
	if tool == "dig" {
		argv = append(argv, "+time=2", "+tries=1", "+nocookie")
		if strings.Contains(strings.Join(args, " "), "+edns=") {
			argv = append(argv, "+noednsneg") // show BADVERS instead of retrying
		}
	} else {
		argv = append(argv, "+timeout=2", "+retry=0")
	}
	argv = append(argv, args...)
	out, err := exec.Command(needTool(t, tool), argv...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", tool, strings.Join(argv, " "), err, out)
	}
	r := digResult{out: string(out)}
	if m := statusRE.FindStringSubmatch(r.out); m != nil {
		r.status = m[1]
	}
	if m := flagsRE.FindStringSubmatch(r.out); m != nil {
		r.flags = m[1]
	}
	section := ""
	for _, line := range strings.Split(r.out, "\n") {
		switch {
		case strings.HasPrefix(line, ";; ANSWER SECTION"):
			section = "answer"
		case strings.HasPrefix(line, ";; AUTHORITY SECTION"):
			section = "authority"
		case strings.HasPrefix(line, ";;"), strings.TrimSpace(line) == "":
			section = ""
		case section == "answer":
			r.answer = append(r.answer, strings.Join(strings.Fields(line), " "))
		case section == "authority":
			r.authority = append(r.authority, strings.Join(strings.Fields(line), " "))
		}
	}
	return r
}

func TestDig(t *testing.T) {
	d := newDeployment(t, deployOpts{})
	cases := []struct {
		name      string
		args      []string
		status    string
		aa        bool
		answer    []string // regexps, each matching one answer line
		authority []string
	}{
		{"service", []string{"play.edge.test", "A"}, "NOERROR", true,
			[]string{`^play\.edge\.test\. 10 IN A 127\.0\.0\.11$`, `^play\.edge\.test\. 10 IN A 127\.0\.0\.12$`}, nil},
		{"service over tcp", []string{"+tcp", "play.edge.test", "A"}, "NOERROR", true,
			[]string{`127\.0\.0\.11$`, `127\.0\.0\.12$`}, nil},
		{"service AAAA", []string{"play.edge.test", "AAAA"}, "NOERROR", true, []string{`IN AAAA 2001:db8::12$`}, nil},
		{"service without the type is NODATA", []string{"play.edge.test", "TXT"}, "NOERROR", true, nil,
			[]string{`^edge\.test\. 30 IN SOA ns1\.edge\.test\. hostmaster\.edge\.test\. 1 3600 600 1209600 30$`}},
		{"failover answers the first region", []string{"fo.edge.test"}, "NOERROR", true, []string{`IN A 127\.0\.0\.11$`}, nil},
		{"letter case preserved", []string{"PlAy.EdGe.TeSt", "A"}, "NOERROR", true,
			[]string{`^PlAy\.EdGe\.TeSt\. 10 IN A 127\.0\.0\.11$`, `^PlAy\.EdGe\.TeSt\. 10 IN A 127\.0\.0\.12$`}, nil},
		{"NXDOMAIN with SOA and negative TTL", []string{"nosuch.edge.test", "A"}, "NXDOMAIN", true, nil,
			[]string{`^edge\.test\. 30 IN SOA `}},
		{"NODATA", []string{"sea.edge.test", "AAAA"}, "NOERROR", true, nil, []string{`^edge\.test\. 30 IN SOA `}},
		{"empty non-terminal is NODATA", []string{"b.deep.edge.test", "A"}, "NOERROR", true, nil, []string{`IN SOA `}},
		{"below an empty non-terminal", []string{"a.b.deep.edge.test", "A"}, "NOERROR", true, []string{`IN A 192\.0\.2\.1$`}, nil},
		{"outside the zone", []string{"example.com", "A"}, "REFUSED", false, nil, nil},
		{"SOA", []string{"edge.test", "SOA"}, "NOERROR", true, []string{`^edge\.test\. 60 IN SOA ns1\.edge\.test\. hostmaster\.edge\.test\. 1 `}, nil},
		{"NS", []string{"edge.test", "NS"}, "NOERROR", true, []string{`IN NS ns1\.edge\.test\.$`, `IN NS ns2\.other\.test\.$`}, nil},
		{"TXT", []string{"edge.test", "TXT"}, "NOERROR", true, []string{`IN TXT "hedge test zone"$`}, nil},
		{"CAA", []string{"edge.test", "CAA"}, "NOERROR", true, []string{`IN CAA 0 issue "letsencrypt.org"$`}, nil},
		{"CNAME chased in zone", []string{"www.edge.test", "A"}, "NOERROR", true,
			[]string{`^www\.edge\.test\. 3600 IN CNAME play\.edge\.test\.$`, `^play\.edge\.test\. 10 IN A 127\.0\.0\.11$`, `^play\.edge\.test\. 10 IN A 127\.0\.0\.12$`}, nil},
		{"CNAME out of zone", []string{"out.edge.test", "A"}, "NOERROR", true, []string{`IN CNAME www\.example\.com\.$`}, nil},
		{"CNAME asked for", []string{"www.edge.test", "CNAME"}, "NOERROR", true, []string{`IN CNAME play\.edge\.test\.$`}, nil},
		{"ANY is minimal (RFC 8482): the lowest type", []string{"edge.test", "ANY"}, "NOERROR", true, []string{`IN NS ns1\.edge\.test\.$`, `IN NS ns2\.other\.test\.$`}, nil},
		{"unknown EDNS version", []string{"+edns=1", "play.edge.test"}, "BADVERS", false, nil, nil},
		{"CHAOS class", []string{"-c", "CH", "version.bind", "TXT"}, "REFUSED", false, nil, nil},
		{"unknown type is NODATA", []string{"play.edge.test", "TYPE65000"}, "NOERROR", true, nil, []string{`IN SOA `}},
	}
	for _, tool := range []string{"dig", "kdig"} {
		for _, c := range cases {
			if tool == "kdig" && strings.Contains(c.name, "case") {
				continue // kdig prints owner names in lower case
			}
			t.Run(tool+"/"+c.name, func(t *testing.T) {
				r := runDig(t, tool, d.addr, c.args...)
				if r.status != c.status {
					t.Fatalf("status: want %s, got %q\n%s", c.status, r.status, r.out)
				}
				if got := strings.Contains(" "+r.flags+" ", " aa "); got != c.aa {
					t.Errorf("AA flag: want %v, got flags %q", c.aa, r.flags)
				}
				if strings.Contains(" "+r.flags+" ", " ra ") {
					t.Errorf("RA set by an authoritative-only server: %q", r.flags)
				}
				check := func(section string, want, got []string) {
					if len(want) != len(got) {
						t.Errorf("%s: want %d records, got %d:\n%s", section, len(want), len(got), r.out)
						return
					}
					for i, w := range want {
						if !regexp.MustCompile(w).MatchString(got[i]) {
							t.Errorf("%s[%d]: want /%s/, got %q", section, i, w, got[i])
						}
					}
				}
				check("answer", c.answer, r.answer)
				check("authority", c.authority, r.authority)
			})
		}
	}
}
