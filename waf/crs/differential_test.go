//go:build !race

// These tests run thousands of requests through the Core Rule Set twice
// (hedge's engine and plain Coraza), which the race detector slows tenfold;
// `make test` runs them in a pass without -race.

package crs

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	coreruleset "github.com/corazawaf/coraza-coreruleset/v4"
	"github.com/valyala/fasthttp"

	"hedge/waf/ftw"
)

// attackCorpus is what the CRS regression suite sends: its requests as
// written, and the payloads in them (query and form values, bodies, header
// values other than the suite's defaults), deduplicated, in a fixed order.
type attackCorpus struct {
	requests []ftw.Input
	payloads []string
}

func loadAttackCorpus(t testing.TB) attackCorpus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir, err := ftw.TestsDir(ctx, "../..")
	if err != nil {
		t.Fatalf("CRS regression tests: %v", err)
	}
	var c attackCorpus
	seen := map[string]bool{}
	add := func(p string) {
		if p != "" && len(p) <= 4096 && !seen[p] {
			seen[p] = true
			c.payloads = append(c.payloads, p)
		}
	}
	inputs, err := ftw.Inputs(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range inputs {
		c.requests = append(c.requests, in)
		if i := strings.IndexByte(in.URI, '?'); i >= 0 {
			add(in.URI[i+1:])
			for _, vs := range parseQueryLoose(in.URI[i+1:]) {
				add(vs)
			}
		}
		add(in.Data)
		for _, vs := range parseQueryLoose(in.Data) {
			add(vs)
		}
		for k, v := range in.Headers {
			switch strings.ToLower(k) {
			case "host", "accept", "content-length", "connection":
				continue
			case "user-agent":
				if v == "OWASP CRS test agent" {
					continue
				}
			}
			add(v)
		}
	}
	if len(c.requests) < 4000 || len(c.payloads) < 2000 {
		t.Fatalf("CRS regression suite in %s: %d requests, %d payloads; want at least 4000 and 2000", dir, len(c.requests), len(c.payloads))
	}
	return c
}

// parseQueryLoose returns the decoded values of a query or form string,
// keeping what url.ParseQuery would reject.
func parseQueryLoose(s string) []string {
	var out []string
	for _, kv := range strings.Split(s, "&") {
		_, v, _ := strings.Cut(kv, "=")
		if d, err := url.QueryUnescape(v); err == nil {
			v = d
		}
		out = append(out, v)
	}
	return out
}

// crsPatterns returns the @rx patterns of the embedded CRS as the operator
// compiles them (with (?sm) unless they are byte patterns).
func crsPatterns(t testing.TB) []struct {
	expr   string
	latin1 bool
} {
	t.Helper()
	rx := regexp.MustCompile(`"@rx ((?:[^"\\]|\\.)*)"`)
	files, err := fs.Glob(coreruleset.FS, "@owasp_crs/*.conf")
	if err != nil {
		t.Fatal(err)
	}
	var out []struct {
		expr   string
		latin1 bool
	}
	for _, f := range files {
		b, err := fs.ReadFile(coreruleset.FS, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range rx.FindAllStringSubmatch(strings.ReplaceAll(string(b), "\\\n", ""), -1) {
			pat := strings.ReplaceAll(m[1], `\"`, `"`)
			latin1 := matchesBytes(pat)
			if !latin1 {
				pat = "(?sm)" + pat
			}
			if _, err := compileGo(pat, latin1); err != nil {
				t.Fatalf("%s: pattern %q does not compile: %v", f, pat, err)
			}
			out = append(out, struct {
				expr   string
				latin1 bool
			}{pat, latin1})
		}
	}
	if len(out) < 280 {
		t.Fatalf("found %d @rx patterns in the CRS, want at least 280", len(out))
	}
	return out
}

// TestPrefilterCorpus runs every CRS pattern's prefilter over the
// regression suite's payloads, spelled as the transformations leave them
// (lower case, URL-decoded), and over benign values: whenever the pattern
// matches, the prefilter must have let the value through.
func TestPrefilterCorpus(t *testing.T) {
	c := loadAttackCorpus(t)
	values := slices.Clone(benignValues)
	for _, p := range c.payloads {
		values = append(values, p)
		if d, err := url.QueryUnescape(p); err == nil {
			p = d
		}
		if l := strings.ToLower(p); l != values[len(values)-1] {
			values = append(values, l)
		}
	}
	withPF := 0
	for _, p := range crsPatterns(t) {
		pf := newPrefilter(p.expr, p.latin1)
		if pf == nil {
			continue
		}
		withPF++
		// The build's own engine (RE2 with re2_cgo, which is also quicker
		// here); FuzzPrefilter checks against Go's regexp.
		re, err := compile(p.expr, p.latin1)
		if err != nil {
			continue
		}
		for _, v := range values {
			if !pf.mayMatch(v) && re.MatchString(v) {
				lits, _ := requiredLiterals(p.expr, p.latin1)
				t.Fatalf("prefilter of %q (literals %q) rejects %q, which the pattern matches", p.expr, lits, v)
			}
		}
	}
	if withPF < 250 {
		t.Errorf("%d CRS patterns have a prefilter, want at least 250", withPF)
	}
}

// TestMultiFilterCorpus puts the literals of every CRS pattern into
// multi-rule automata and requires, for every value of the corpus, that a
// scan reports a rule exactly when that rule's own prefilter lets the value
// through: rule pruning relies on it to skip rules' own scans.
func TestMultiFilterCorpus(t *testing.T) {
	c := loadAttackCorpus(t)
	values := slices.Clone(benignValues)
	for _, p := range c.payloads {
		values = append(values, p, strings.ToLower(p))
		if d, err := url.QueryUnescape(p); err == nil {
			values = append(values, d)
		}
	}
	var rules []filterRule
	var pfs []*prefilter
	for _, p := range crsPatterns(t) {
		lits, ok := requiredLiterals(p.expr, p.latin1)
		if !ok || len(rules) == maxPruned {
			continue
		}
		pf := buildPrefilter(lits)
		if pf == nil {
			continue
		}
		rules = append(rules, filterRule{index: len(rules), lits: lits, states: len(pf.next) / pf.nclass})
		pfs = append(pfs, pf)
	}
	fs, covered := buildMultiFilters(rules)
	t.Logf("%d patterns in %d automata", len(rules), len(fs))
	for _, r := range rules {
		if !covered.has(r.index) {
			t.Errorf("pattern %d (literals %q) in no automaton", r.index, r.lits)
		}
	}
	for _, v := range values {
		var found ruleSet
		for _, f := range fs {
			f.scan(v, &found)
		}
		for i, pf := range pfs {
			if found.has(i) != pf.mayMatch(v) {
				t.Fatalf("value %q: multi-rule scan says %v for pattern %d (literals %q), its prefilter %v", v, found.has(i), i, rules[i].lits, pf.mayMatch(v))
			}
		}
	}
}

var benignValues = []string{
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
	"text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8",
	"en-GB,en;q=0.9,de;q=0.8", "gzip, deflate, br, zstd", "https://play.edge.test/lobby?tab=live",
	`"Chromium";v="124", "Google Chrome";v="124", "Not-A.Brand";v="99"`, "?0", `"Windows"`,
	"good luck everyone, 100% banker tonight!", "Zoë the lucky one", "SPRING-2026", "2026-05-01T18:41:27.512Z",
	"Can you tell me why my withdrawal is still pending? I selected bank transfer on Monday.",
	"Where is the 'Cash out' button? The app says: \"Select a bet to continue\".",
	"bacc-07", "12.50", "EUR", "6f1c2a9e4b7d4e0f9a3c8b1d2e5f7a90", "Europe/London", "1920x1080",
}

// benignRequests are ordinary browser and API requests, generated from a
// fixed seed.
func benignRequests(n int) []request {
	rng := rand.New(rand.NewPCG(16, 2026))
	pick := func(s []string) string { return s[rng.IntN(len(s))] }
	uas := []string{benignValues[0], benignValues[1],
		"Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
		"okhttp/4.12.0", "BetApp/5.12.3 (Android 14; Pixel 8)", "curl/8.5.0"}
	paths := []string{"/api/lobby/tables", "/api/odds/football/premier-league", "/api/search", "/api/profile/me",
		"/api/history/bets", "/api/support/tickets", "/api/promotions", "/api/wallet/balance", "/static/app.9f3c1.js", "/"}
	params := []string{"category=baccarat&limit=20&sort=popular", "q=arsenal+vs+chelsea", "page=3&size=50",
		"from=2026-05-01&to=2026-05-31", "lang=en-GB", "ids=12,13,14", "ref=newsletter&utm_source=mail&utm_medium=email",
		"market=1x2&live=true", "q=Z%C3%B6e%27s%20table", ""}
	texts := []string{benignValues[9], benignValues[10], benignValues[13], benignValues[14],
		"Please close my account, I want a break for 6 months.", "odds 2.5 @ 10 EUR, cash-out at 80%",
		"Hi team - the stream on table 7 froze at 18:40 (UTC+1); reloaded twice.", "I'd like to set a deposit limit of €100/week"}
	var out []request
	for i := 0; i < n; i++ {
		h := [][2]string{{"Host", "play.edge.test"}, {"User-Agent", pick(uas)}, {"Accept-Language", pick([]string{"en-GB,en;q=0.9", "de-DE,de;q=0.9,en;q=0.5", "fr"})},
			{"Accept-Encoding", "gzip, deflate, br"}, {"Cookie", fmt.Sprintf("sid=%016x; theme=%s; _lang=en-GB", rng.Uint64(), pick([]string{"dark", "light"}))}}
		if rng.IntN(2) == 0 {
			h = append(h, [2]string{"Authorization", "Bearer " + jwt}, [2]string{"Referer", "https://play.edge.test" + pick(paths)})
		}
		if rng.IntN(3) > 0 {
			uri := pick(paths)
			if q := pick(params); q != "" {
				uri += "?" + q
			}
			out = append(out, request{method: "GET", uri: uri, headers: append(h, [2]string{"Accept", "application/json, text/plain, */*"})})
			continue
		}
		body, _ := json.Marshal(map[string]any{"table": "bacc-07", "amount": fmt.Sprintf("%d.%02d", rng.IntN(500), rng.IntN(100)),
			"currency": "EUR", "message": pick(texts), "client": map[string]any{"device": "desktop", "app_version": "5.12.3"},
			"tags": []string{"vip", "live"}, "confirm": rng.IntN(2) == 0})
		out = append(out, request{method: "POST", uri: pick(paths), body: string(body),
			headers: append(h, [2]string{"Content-Type", "application/json"}, [2]string{"Accept", "application/json"})})
	}
	return out
}

// placed puts payload p where a client can put it: the query, a header, a
// cookie, a JSON field, a form field; where selects the place.
func placed(p string, where int) request {
	base := [][2]string{{"Host", "play.edge.test"}, {"User-Agent", benignValues[0]}, {"Accept", "application/json"}}
	headerSafe := !strings.ContainsAny(p, "\r\n\x00") && len(p) < 2048
	switch where % 5 {
	case 1:
		if headerSafe {
			return request{method: "GET", uri: "/api/lobby/tables", headers: append(base, [2]string{"X-Client-Note", p})}
		}
	case 2:
		if headerSafe && !strings.ContainsAny(p, ";") {
			return request{method: "GET", uri: "/api/profile/me", headers: append(base, [2]string{"Cookie", "sid=6f1c2a9e4b7d; pref=" + p})}
		}
	case 3:
		body, _ := json.Marshal(map[string]any{"table": "bacc-07", "message": p, "meta": map[string]any{"tags": []string{"live", p}}})
		return request{method: "POST", uri: "/api/support/tickets", body: string(body), headers: append(base, [2]string{"Content-Type", "application/json"})}
	case 4:
		return request{method: "POST", uri: "/api/search", body: "q=" + url.QueryEscape(p) + "&page=1",
			headers: append(base, [2]string{"Content-Type", "application/x-www-form-urlencoded"})}
	}
	return request{method: "GET", uri: "/api/search?q=" + url.QueryEscape(p) + "&page=2", headers: base}
}

// fromSuite is a regression-suite request as written (when fasthttp can
// parse it as such).
func fromSuite(in ftw.Input) (request, bool) {
	if in.Method == "" || in.URI == "" || !strings.HasPrefix(in.URI, "/") || strings.ContainsAny(in.URI, " \r\n") {
		return request{}, false
	}
	r := request{method: in.Method, uri: in.URI, body: in.Data}
	keys := make([]string, 0, len(in.Headers))
	for k := range in.Headers {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if strings.EqualFold(k, "Content-Length") || strings.EqualFold(k, "Transfer-Encoding") || strings.ContainsAny(in.Headers[k], "\r\n") {
			continue
		}
		r.headers = append(r.headers, [2]string{k, in.Headers[k]})
	}
	return r, true
}

// parses reports whether fasthttp's parser accepts r (the edge would
// answer 400 before the rule engine otherwise).
func (r request) parses() bool {
	var h fasthttp.RequestHeader
	return h.Read(bufio.NewReader(strings.NewReader(r.raw()))) == nil
}

// TestDifferentialCorpus sends benign traffic, the regression suite's own
// requests and its payloads placed in the query, headers, cookies, JSON
// and form fields through hedge's engine and through plain Coraza with the
// same configuration and rules and none of hedge's accelerations (Go's
// regexp, no prefilter, no rule pruning), and requires the same rule ids,
// in the same order, and the same verdict for each request. A sample is
// then sent twice more, so that the pruning memo answers for attack values
// as well as benign ones.
func TestDifferentialCorpus(t *testing.T) {
	c := loadAttackCorpus(t)
	e, plain := pruneFixture(t)
	var attacks []request
	for i, p := range c.payloads {
		attacks = append(attacks, placed(p, i))
	}
	for _, in := range c.requests {
		if r, ok := fromSuite(in); ok {
			attacks = append(attacks, r)
		}
	}
	// Every k-th of them, to stay within about half a minute on a loaded
	// 2-core machine.
	reqs := benignRequests(400)
	const maxAttacks = 3600
	for i := 0; i < len(attacks); i += (len(attacks) + maxAttacks - 1) / maxAttacks {
		reqs = append(reqs, attacks[i])
	}
	ran, blocked, benignBlocked := 0, 0, 0
	check := func(pass string, i int, r request) {
		ctx := r.ctx(t)
		tx := e.Begin(ctx, []byte("diff"), client, nil)
		tx.End()
		got := ids(tx.Matches())
		want, it := plainRun(plain, ctx)
		wantRule, wantStatus := 0, 0
		if it != nil {
			wantRule, wantStatus = it.RuleID, it.Status
			if wantStatus == 0 {
				wantStatus = fasthttp.StatusForbidden
			}
		}
		if !slices.Equal(got, want) || tx.RuleID() != wantRule || tx.Status() != wantStatus {
			t.Errorf("%s: request %d %s %s (%d header(s), %d-byte body):\nhedge: rules %v, blocked by %d with %d\nplain: rules %v, blocked by %d with %d",
				pass, i, r.method, r.uri, len(r.headers), len(r.body), got, tx.RuleID(), tx.Status(), want, wantRule, wantStatus)
		}
		if pass == "first pass" {
			ran++
			if tx.Blocked() {
				blocked++
				if i < 400 {
					benignBlocked++
				}
			}
		}
	}
	for i, r := range reqs {
		if r.parses() {
			check("first pass", i, r)
		}
	}
	pruned := e.pruner.pruned.Load()
	// Again, a sample twice in a row: its values, benign and attacks, are
	// now seen a second and third time, so the memo keeps them and answers
	// from its entries, for values that match rules and values that do not.
	again := 0
	for i := 0; i < len(reqs); i += 6 {
		if r := reqs[i]; r.parses() {
			check("second pass", i, r)
			check("third pass", i, r)
			again++
		}
	}
	t.Logf("%d rules pruned in the first pass, %d in %d requests repeated twice; %d values learned",
		pruned, e.pruner.pruned.Load()-pruned, again, e.pruner.learned.Load())
	if pruned < int64(100*len(reqs)/4) || e.pruner.pruned.Load()-pruned < int64(100*again) {
		t.Errorf("%d rules pruned in the first pass and %d in the repeats: the corpus barely exercises pruning", pruned, e.pruner.pruned.Load()-pruned)
	}
	t.Logf("%d requests compared (%d benign), %d blocked (%d benign)", ran, 400, blocked, benignBlocked)
	if ran < 3500 || blocked < 1500 {
		t.Errorf("compared %d requests of which %d blocked; want at least 3500 and 1500, or the corpus does not test much", ran, blocked)
	}
}
