package crs

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

type attack struct {
	name   string
	req    request
	lo, hi int // the rule range of the category that must match
}

var attacks = []attack{
	{"sqli in query", request{method: "GET",
		uri: "/api/games?id=1%27%20UNION%20SELECT%20username%2C%20password%20FROM%20users--"}, 942000, 942999},
	{"xss in json body", request{method: "POST", uri: "/api/chat",
		headers: [][2]string{{"Content-Type", "application/json"}},
		body:    `{"table":"bacc-07","message":"<script>alert(document.cookie)</script>"}`}, 941000, 941999},
	{"path traversal", request{method: "GET", uri: "/static/download?file=../../../../etc/passwd"}, 930000, 930999},
	{"scanner user agent", request{method: "GET", uri: "/",
		headers: [][2]string{{"User-Agent", "sqlmap/1.7.2#stable (https://sqlmap.org)"}}}, 913000, 913999},
}

func TestAttacksBlock(t *testing.T) {
	e := blockEngine(t)
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			tx := e.Begin(a.req.ctx(t), []byte("req-1"), client, nil)
			defer tx.End()
			if !tx.Blocked() {
				t.Fatalf("Blocked() = false, want true; matches %v", ids(tx.Matches()))
			}
			if tx.Status() != fasthttp.StatusForbidden || tx.RuleID() != 949110 {
				t.Errorf("Status, RuleID = %d, %d; want 403, 949110", tx.Status(), tx.RuleID())
			}
			if !hasIDIn(tx.Matches(), a.lo, a.hi) {
				t.Errorf("matches %v, want one in %d-%d", ids(tx.Matches()), a.lo, a.hi)
			}
		})
	}
}

func TestAttacksDetect(t *testing.T) {
	e := detectEngine(t)
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			tx := e.Begin(a.req.ctx(t), []byte("req-1"), client, nil)
			if tx.Blocked() || tx.Status() != 0 {
				t.Fatalf("Blocked, Status = %v, %d in Detect mode; want false, 0", tx.Blocked(), tx.Status())
			}
			tx.End()
			ms := tx.Matches() // readable after End
			if !hasIDIn(ms, a.lo, a.hi) || !hasID(ms, 949110) {
				t.Errorf("matches %v, want one in %d-%d and 949110", ids(ms), a.lo, a.hi)
			}
			for _, m := range ms {
				if m.ID == 0 || m.Phase < 1 || m.Phase > 5 || len(m.Data) > MaxMatchData {
					t.Errorf("malformed match %+v", m)
				}
			}
		})
	}
}

func TestOrdinaryRequestsPass(t *testing.T) {
	e := blockEngine(t)
	cases := []struct {
		name string
		req  request
		body []byte
	}{
		{"browser GET", browserGET, nil},
		{"1 KB bet", betPOST(betJSON), nil},
		{"reduced bet", betPOST(betJSON), []byte(betReduced)},
		{"chat with apostrophes", request{method: "POST", uri: "/api/chat", headers: [][2]string{{"Content-Type", "application/json"}},
			body: `{"message":"I'm in! Let's go — 50% on player 🎲, ¡suerte! 祝你好运"}`}, nil},
		{"form login", request{method: "POST", uri: "/login", headers: [][2]string{{"Content-Type", "application/x-www-form-urlencoded"}},
			body: "user=zoe%40example.com&remember=on"}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tx := e.Begin(c.req.ctx(t), []byte("req-ok"), client, c.body)
			defer tx.End()
			if tx.Blocked() || tx.BodyError() != nil || len(tx.Matches()) != 0 {
				t.Errorf("Blocked=%v BodyError=%v matches=%v; want a clean pass", tx.Blocked(), tx.BodyError(), tx.Matches())
			}
		})
	}
}

// The reduced body replaces what the rules see: an attack in the original
// body outside the free-text fields is the schema's job, while an attack in
// the reduced document is caught even though the original content type is
// not JSON.
func TestReducedBodyIsWhatRulesSee(t *testing.T) {
	e := blockEngine(t)
	orig := request{method: "POST", uri: "/api/bets", headers: [][2]string{{"Content-Type", "text/plain"}},
		body: `<script>alert(1)</script>`}
	tx := e.Begin(orig.ctx(t), nil, client, []byte(`{"nickname":"zoe"}`))
	if tx.Blocked() || len(tx.Matches()) != 0 {
		t.Errorf("clean reduced body: Blocked=%v matches=%v; want a clean pass", tx.Blocked(), ids(tx.Matches()))
	}
	tx.End()
	tx = e.Begin(betPOST(betJSON).ctx(t), nil, client, []byte(`{"message":"<script>alert(document.cookie)</script>"}`))
	defer tx.End()
	if !tx.Blocked() || !hasIDIn(tx.Matches(), 941000, 941999) {
		t.Errorf("xss in reduced body: Blocked=%v matches=%v; want blocked by 941xxx", tx.Blocked(), ids(tx.Matches()))
	}
}

// Rule 941310 matches bytes (CRS v4 writes them \x{bc}); these are the CRS
// regression payloads 941310-1, -3 and -12, and the negatives -4, -6, -7.
func TestRule941310(t *testing.T) {
	e := detectEngine(t)
	cases := []struct {
		name, body string
		want       bool
	}{
		{"941310-1", `var=\xbcscript\xbealert(\xa2XSS\xa2)\xbc/script\xbe`, true},
		{"941310-3", `var=\xd0\xbcscript\xd0\xbealert(\xc2\xa2XSS\xc2\xa2)\xd0\xbc/script\xd0\xbe`, true},
		{"941310-12", `test=\xbctest\xbetest(\xa2XSS\xa2)\xbc/test\xbe`, true},
		{"941310-4", `var=\xd0\xb0\xd0\xb1\xd0\xb2\xd0\xb3\xd0\xb4\xd0\xb5\xd1\x91\xd0\xb6\xd0\xb7`, false},
		{"941310-6", `var=\xbc\xbc`, false},
		{"941310-7", `var=\xbe\xbe`, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := request{method: "POST", uri: "/post", headers: [][2]string{
				{"Content-Type", "application/x-www-form-urlencoded; charset=us-ascii"}}, body: c.body}
			tx := e.Begin(r.ctx(t), nil, client, nil)
			defer tx.End()
			if got := hasID(tx.Matches(), 941310); got != c.want {
				t.Errorf("941310 matched = %v, want %v (engine %s; matches %v)", got, c.want, e.Info().Engine, ids(tx.Matches()))
			}
		})
	}
}

func TestExclusions(t *testing.T) {
	scanner, sqli := attacks[3].req, attacks[0].req
	byID := engine(t, "exclude-913100", Options{Mode: Block, ExcludeIDs: []int{913100}})
	tx := byID.Begin(scanner.ctx(t), nil, client, nil)
	if tx.Blocked() || hasID(tx.Matches(), 913100) {
		t.Errorf("ExcludeIDs 913100: Blocked=%v matches=%v; want pass without 913100", tx.Blocked(), ids(tx.Matches()))
	}
	tx.End()

	byTag := engine(t, "exclude-attack-sqli", Options{Mode: Block, ExcludeTags: []string{"attack-sqli"}})
	tx = byTag.Begin(sqli.ctx(t), nil, client, nil)
	if hasIDIn(tx.Matches(), 942000, 942999) {
		t.Errorf("ExcludeTags attack-sqli: matches %v; want no 942xxx", ids(tx.Matches()))
	}
	tx.End()
	// The exclusion is narrow: another category still blocks.
	tx = byTag.Begin(scanner.ctx(t), nil, client, nil)
	if !tx.Blocked() {
		t.Errorf("ExcludeTags attack-sqli let the scanner through: matches %v", ids(tx.Matches()))
	}
	tx.End()
}

func TestAllowedMethods(t *testing.T) {
	put := request{method: "PUT", uri: "/api/profile", headers: [][2]string{{"Content-Type", "application/json"}},
		body: `{"nickname":"Zoë","bio":"plays baccarat on Fridays"}`}
	tx := blockEngine(t).Begin(put.ctx(t), nil, client, nil)
	if !tx.Blocked() || !hasID(tx.Matches(), 911100) {
		t.Errorf("PUT with CRS default methods: Blocked=%v matches=%v; want blocked by 911100", tx.Blocked(), ids(tx.Matches()))
	}
	tx.End()
	rest := engine(t, "rest", Options{Mode: Block, AllowedMethods: []string{"GET", "HEAD", "POST", "OPTIONS", "PUT", "PATCH", "DELETE"}})
	tx = rest.Begin(put.ctx(t), nil, client, nil)
	if tx.Blocked() || len(tx.Matches()) != 0 {
		t.Errorf("PUT allowed: Blocked=%v matches=%v; want a clean pass", tx.Blocked(), ids(tx.Matches()))
	}
	tx.End()
}

func TestResponseRulesLog(t *testing.T) {
	// An engine of its own: a shared one would keep writing to the error
	// log of the run that built it (go test -count=2).
	var log bytes.Buffer
	e, err := New(Options{Mode: Block, InspectResponses: true, ErrorLog: &log})
	if err != nil {
		t.Fatal(err)
	}
	tx := e.Begin(browserGET.ctx(t), []byte("req-resp-1"), client, nil)
	var resp fasthttp.Response
	resp.Header.SetContentType("text/html")
	resp.SetBodyString("<html><body>Warning: mysql_fetch_array(): You have an error in your SQL syntax; " +
		"check the manual that corresponds to your MySQL server version for the right syntax to use near ''' at line 1</body></html>")
	tx.Response(&resp)
	tx.End()
	if !hasIDIn(tx.Matches(), 951000, 951999) {
		t.Fatalf("response matches %v, want a 951xxx SQL error leak", ids(tx.Matches()))
	}
	if tx.Blocked() {
		t.Errorf("a response rule blocked; response phases must only log")
	}
	for _, m := range tx.Matches() {
		if m.ID >= 951000 && m.ID <= 951999 && m.Phase != 4 {
			t.Errorf("match %d phase %d, want 4", m.ID, m.Phase)
		}
	}
	if !strings.Contains(log.String(), `[id "951`) || !strings.Contains(log.String(), `[unique_id "req-resp-1"]`) {
		t.Errorf("error log lacks the 951xxx line with the request id:\n%s", log.String())
	}

	// Without InspectResponses the same response is not looked at.
	tx = blockEngine(t).Begin(browserGET.ctx(t), nil, client, nil)
	tx.Response(&resp)
	tx.End()
	if hasIDIn(tx.Matches(), 950000, 959999) {
		t.Errorf("InspectResponses off, matches %v; want no response rules", ids(tx.Matches()))
	}
}

func TestOffIsNoop(t *testing.T) {
	e, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	tx := e.Begin(attacks[0].req.ctx(t), nil, client, nil)
	tx.Response(&fasthttp.Response{})
	tx.End()
	tx.End()
	if tx.Blocked() || tx.Matches() != nil || tx.BodyError() != nil || e.Info().Mode != Off {
		t.Errorf("Off engine: Blocked=%v Matches=%v BodyError=%v Mode=%v", tx.Blocked(), tx.Matches(), tx.BodyError(), e.Info().Mode)
	}
}

func TestInfo(t *testing.T) {
	i := blockEngine(t).Info()
	if i.Mode != Block || i.ParanoiaLevel != 1 || i.CRSVersion != "4.25.0" || i.RuleCount < 500 || !strings.HasPrefix(i.Engine, "coraza v3.8.1 + ") {
		t.Errorf("Info = %+v", i)
	}
}

func TestParanoiaLevel(t *testing.T) {
	// A quoted word in a chat message is nothing at PL1 but SQL-ish at PL2+.
	r := request{method: "GET", uri: "/api/chat/search?q=it%27s%20a%20%27tie%27%20again"}
	pl4 := engine(t, "detect-pl4", Options{Mode: Detect, ParanoiaLevel: 4})
	tx1 := detectEngine(t).Begin(r.ctx(t), nil, client, nil)
	tx4 := pl4.Begin(r.ctx(t), nil, client, nil)
	defer tx1.End()
	defer tx4.End()
	if len(tx4.Matches()) <= len(tx1.Matches()) {
		t.Errorf("PL4 matched %v, PL1 %v; want PL4 to match more", ids(tx4.Matches()), ids(tx1.Matches()))
	}
	if pl4.Info().ParanoiaLevel != 4 {
		t.Errorf("Info().ParanoiaLevel = %d, want 4", pl4.Info().ParanoiaLevel)
	}
}

func TestThreshold(t *testing.T) {
	// The scanner UA scores 5 (one critical rule): blocked at the default
	// threshold, passed (but reported) at 10.
	e := engine(t, "threshold-10", Options{Mode: Block, InboundThreshold: 10})
	tx := e.Begin(attacks[3].req.ctx(t), nil, client, nil)
	defer tx.End()
	if tx.Blocked() || !hasID(tx.Matches(), 913100) {
		t.Errorf("threshold 10: Blocked=%v matches=%v; want pass with 913100 reported", tx.Blocked(), ids(tx.Matches()))
	}
}

func TestOptionsValidation(t *testing.T) {
	cases := []struct {
		name string
		o    Options
	}{
		{"paranoia 5", Options{Mode: Block, ParanoiaLevel: 5}},
		{"negative threshold", Options{Mode: Block, InboundThreshold: -1}},
		{"zero id", Options{Mode: Block, ExcludeIDs: []int{0}}},
		{"quoted tag", Options{Mode: Block, ExcludeTags: []string{`x" "y`}}},
		{"empty methods", Options{Mode: Block, AllowedMethods: []string{}}},
		{"method with quote", Options{Mode: Block, AllowedMethods: []string{"GET'"}}},
		{"unknown mode", Options{Mode: 7}},
	}
	for _, c := range cases {
		if _, err := New(c.o); err == nil {
			t.Errorf("%s: New succeeded, want an error", c.name)
		}
	}
}

func TestRuleFileErrorsNameFileAndLine(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/extra.conf"
	conf := "# hedge extra rules\n\nSecRule ARGS \"@rx a\" \"id:1000,phase:2,pass,nolog\"\nSecRule ARGS \"@nosuchop x\" \"id:1001,phase:2,pass\"\n"
	if err := writeFile(path, conf); err != nil {
		t.Fatal(err)
	}
	_, err := New(Options{Mode: Block, RuleFiles: []string{path}})
	if err == nil || !strings.Contains(err.Error(), "extra.conf") || !strings.Contains(err.Error(), "4") {
		t.Fatalf("New with a broken rule file: err = %v; want one naming extra.conf and line 4", err)
	}
}

func TestRuleFileLoads(t *testing.T) {
	path := t.TempDir() + "/extra.conf"
	if err := writeFile(path, `SecRule ARGS:nickname "@streq dealerbot" "id:1100,phase:2,deny,status:403,log,msg:'banned nickname'"`+"\n"); err != nil {
		t.Fatal(err)
	}
	e, err := New(Options{Mode: Block, RuleFiles: []string{path}})
	if err != nil {
		t.Fatal(err)
	}
	tx := e.Begin(request{method: "GET", uri: "/api/lobby?nickname=dealerbot"}.ctx(t), nil, client, nil)
	defer tx.End()
	if !tx.Blocked() || tx.RuleID() != 1100 {
		t.Errorf("extra rule: Blocked=%v RuleID=%d matches=%v; want blocked by 1100", tx.Blocked(), tx.RuleID(), ids(tx.Matches()))
	}
}

func TestBadInput(t *testing.T) {
	cases := []struct {
		name    string
		req     request
		bodyErr bool // the rule engine must report it could not parse the body
	}{
		{"truncated json", request{method: "POST", uri: "/api/bets", headers: [][2]string{{"Content-Type", "application/json"}},
			body: `{"table":"bacc-07","amount":"12.5`}, true},
		{"json that is not json", request{method: "POST", uri: "/api/bets", headers: [][2]string{{"Content-Type", "application/json"}},
			body: `amount=12.50`}, true},
		{"multipart garbage", request{method: "POST", uri: "/upload", headers: [][2]string{{"Content-Type", "multipart/form-data; boundary=XyZ"}},
			body: "--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nunterminated"}, true},
		{"multipart without boundary", request{method: "POST", uri: "/upload", headers: [][2]string{{"Content-Type", "multipart/form-data"}},
			body: "garbage"}, true},
		{"invalid utf-8 in json", request{method: "POST", uri: "/api/chat", headers: [][2]string{{"Content-Type", "application/json"}},
			body: "{\"message\":\"\xff\xfe\xc3\x28 hi\"}"}, false},
		{"invalid utf-8 in query", request{method: "GET", uri: "/api/chat?q=%ff%fe%c3%28"}, false},
	}
	for _, mode := range []Mode{Block, Detect} {
		e := blockEngine(t)
		if mode == Detect {
			e = detectEngine(t)
		}
		for _, c := range cases {
			t.Run(mode.String()+"/"+c.name, func(t *testing.T) {
				tx := e.Begin(c.req.ctx(t), nil, client, nil)
				defer tx.End()
				err := tx.BodyError()
				if c.bodyErr != (err != nil) {
					t.Fatalf("BodyError() = %v, want error: %v (matches %v)", err, c.bodyErr, ids(tx.Matches()))
				}
				if err == nil {
					return
				}
				if !errors.Is(err, ErrBody) {
					t.Errorf("BodyError() = %v, does not wrap ErrBody", err)
				}
				switch mode {
				case Block:
					if !tx.Blocked() || tx.Status() != fasthttp.StatusBadRequest {
						t.Errorf("Block mode: Blocked=%v Status=%d, want true, 400", tx.Blocked(), tx.Status())
					}
				case Detect:
					if tx.Blocked() || !hasIDIn(tx.Matches(), 200002, 200003) {
						t.Errorf("Detect mode: Blocked=%v matches=%v; want a 200002/200003 match, not blocked", tx.Blocked(), ids(tx.Matches()))
					}
				}
			})
		}
	}
}

func TestBodyLimit(t *testing.T) {
	big := betPOST(`{"message":"` + strings.Repeat("a", 2000) + `<script>alert(1)</script>"}`)
	b := engine(t, "block-limit-1k", Options{Mode: Block, BodyLimit: 1024})
	tx := b.Begin(big.ctx(t), nil, client, nil)
	if !tx.Blocked() || tx.Status() != fasthttp.StatusRequestEntityTooLarge || tx.RuleID() != RuleBodyTooLarge {
		t.Errorf("Block, body over limit: Blocked=%v Status=%d RuleID=%d; want true, 413, %d", tx.Blocked(), tx.Status(), tx.RuleID(), RuleBodyTooLarge)
	}
	tx.End()
	d := engine(t, "detect-limit-1k", Options{Mode: Detect, BodyLimit: 1024})
	tx = d.Begin(big.ctx(t), nil, client, nil)
	defer tx.End()
	if tx.Blocked() || !hasID(tx.Matches(), RuleBodyTooLarge) {
		t.Errorf("Detect, body over limit: Blocked=%v matches=%v; want the %d match", tx.Blocked(), ids(tx.Matches()), RuleBodyTooLarge)
	}
}

// TestCut: at most n bytes, never half a UTF-8 sequence.
func TestCut(t *testing.T) {
	for _, c := range []struct {
		s    string
		n    int
		want string
	}{
		{"abc", 5, "abc"}, {"abc", 3, "abc"}, {"abcd", 3, "abc"}, {"abc", 0, ""},
		{"aé", 2, "a"}, {"aé", 3, "aé"}, {"€uro", 2, ""}, {"€uro", 3, "€"}, {"x😀", 4, "x"}, {"\xff\xfe", 1, "\xff"},
	} {
		if got := Cut(c.s, c.n); got != c.want {
			t.Errorf("Cut(%q, %d) = %q, want %q", c.s, c.n, got, c.want)
		}
	}
}
