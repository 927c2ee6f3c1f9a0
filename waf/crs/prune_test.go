package crs

import (
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	coreruleset "github.com/corazawaf/coraza-coreruleset/v4"
	"github.com/corazawaf/coraza/v3"
	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
	"github.com/valyala/fasthttp"
)

// TestPrunerReadsRules checks that the compiled rules are read (a Coraza
// upgrade that changes their layout fails here, not silently) and that the
// rules that must always run are not prunable.
func TestPrunerReadsRules(t *testing.T) {
	e := blockEngine(t)
	if e.pruner == nil {
		t.Fatal("engine has no pruner: Coraza's compiled rules could not be read")
	}
	rules, ok := ruleGroup(e.waf)
	if !ok || len(rules) < 600 {
		t.Fatalf("read %d compiled rules (ok %v), want at least 600", len(rules), ok)
	}
	// At PL1: rules tagged paranoia-level/2-4 are not prunable.
	if n := len(e.pruner.rules); n < 120 {
		t.Errorf("%d prunable rules, want at least 120", n)
	}
	pos := map[int]int{}
	for i, r := range rules {
		pos[r.id] = i
	}
	for _, hook := range []int{pruneHookPhase1, pruneHookPhase2} {
		if p, ok := pos[hook]; !ok || p > pos[901001] {
			t.Errorf("hook rule %d at %d (present %v), want before CRS's first rule 901001 at %d", hook, p, ok, pos[901001])
		}
	}
	prunable := map[int]bool{}
	for _, r := range e.pruner.rules {
		prunable[r.id] = true
	}
	for _, tc := range []struct {
		id   int
		want bool
		why  string
	}{
		{942100, true, "@detectSQLi over cookies, headers, args, XML"},
		{941100, true, "@detectXSS"},
		{932235, true, "@rx over args and headers"},
		{913100, true, "@pmFromFile over the User-Agent"},
		{920270, true, "@validateByteRange"},
		{920540, false, "the rule skip:1 of 920539 lands on"},
		{920539, false, "REQBODY_PROCESSOR is set by ctl"},
		{911100, false, "negated, and its argument is a macro"},
		{920280, false, "a count (&REQUEST_HEADERS:Host)"},
		{949110, false, "reads TX"},
		{901001, false, "reads TX"},
	} {
		if _, ok := pos[tc.id]; !ok {
			t.Errorf("rule %d not in the compiled rules", tc.id)
			continue
		}
		if prunable[tc.id] != tc.want {
			t.Errorf("rule %d (%s): prunable %v, want %v", tc.id, tc.why, prunable[tc.id], tc.want)
		}
	}
}

// TestBlockedBySkip: the N rules after skip:N never go; when a runtime ctl
// could remove one of them but not the skipping rule, nothing after it in
// its phase goes either.
func TestBlockedBySkip(t *testing.T) {
	r := func(id, phase, skip int, tags ...string) compiledRule {
		return compiledRule{id: id, phase: phase, skip: skip, tags: tags}
	}
	for _, tc := range []struct {
		name  string
		rules []compiledRule
		want  []bool
	}{
		{"skip 2 counts only its phase", []compiledRule{r(1, 2, 2), r(2, 1, 0), r(3, 2, 0), r(4, 2, 0), r(5, 2, 0)},
			[]bool{false, false, true, true, false}},
		{"ctl removing a skipped-over rule but not the skipper", []compiledRule{
			{id: 9, phase: 1, ctls: []string{"x"}}, r(1, 2, 1), r(2, 2, 0, "x"), r(3, 2, 0), r(4, 1, 0)},
			[]bool{false, false, true, true, false}},
		{"ctl removing both", []compiledRule{
			{id: 9, phase: 1, ctls: []string{"x"}}, r(1, 2, 1, "x"), r(2, 2, 0, "x"), r(3, 2, 0)},
			[]bool{false, false, true, false}},
		{"ctl removing by id range", []compiledRule{
			{id: 9, phase: 1, ctls: []string{"2-2"}}, r(1, 2, 1), r(2, 2, 0), r(3, 2, 0)},
			[]bool{false, false, true, true}},
	} {
		if got := blockedBySkip(tc.rules); !slices.Equal(got, tc.want) {
			t.Errorf("%s: blocked %v, want %v", tc.name, got, tc.want)
		}
	}
}

// pruneFixture is a fresh engine (its own, empty memo) and plain Coraza
// with the same directives and no accelerations.
func pruneFixture(t *testing.T) (*Engine, coraza.WAF) {
	t.Helper()
	e, err := New(Options{Mode: Block})
	if err != nil {
		t.Fatal(err)
	}
	if e.pruner == nil {
		t.Fatal("engine has no pruner")
	}
	plain, err := coraza.NewWAF(coraza.NewWAFConfig().WithRootFS(coreruleset.FS).WithDirectives(e.directives("")))
	if err != nil {
		t.Fatal(err)
	}
	return e, plain
}

type verdict struct {
	ids            []int
	rule, status   int
	blocked        bool
	pruned, learnt int64
}

func (v verdict) String() string {
	return fmt.Sprintf("rules %v, blocked %v by %d with %d", v.ids, v.blocked, v.rule, v.status)
}

// compare runs r through e and plain and fails unless both log the same
// rules in the same order and give the same verdict.
func compare(t *testing.T, e *Engine, plain coraza.WAF, name string, r request) verdict {
	t.Helper()
	ctx := r.ctx(t)
	p0, l0 := e.pruner.pruned.Load(), e.pruner.learned.Load()
	tx := e.Begin(ctx, []byte("prune"), client, nil)
	tx.End()
	got := verdict{ids: ids(tx.Matches()), rule: tx.RuleID(), status: tx.Status(), blocked: tx.Blocked(),
		pruned: e.pruner.pruned.Load() - p0, learnt: e.pruner.learned.Load() - l0}
	want := plainVerdict(plain, ctx)
	if !slices.Equal(got.ids, want.ids) || got.rule != want.rule || got.status != want.status {
		t.Errorf("%s: hedge %v; plain Coraza %v", name, got, want)
	}
	return got
}

func plainVerdict(plain coraza.WAF, ctx *fasthttp.RequestCtx) verdict {
	ids, it := plainRun(plain, ctx)
	v := verdict{ids: ids}
	if it != nil {
		v.rule, v.status, v.blocked = it.RuleID, it.Status, true
		if v.status == 0 {
			v.status = fasthttp.StatusForbidden
		}
	}
	return v
}

func withHeader(r request, k, v string) request {
	r.headers = append(slices.Clone(r.headers), [2]string{k, v})
	return r
}

// TestPruneKeepsMatches sends, in order, requests whose values the memo
// learns as benign and then requests that reuse them next to an attack,
// and attack values repeated so that the memo holds them too: every one
// must log the same rules and get the same verdict as plain Coraza, and
// the memo must have been used (rules pruned) where it can be.
func TestPruneKeepsMatches(t *testing.T) {
	e, plain := pruneFixture(t)
	sqli := "1' UNION SELECT username, password FROM users -- "
	xss := "<script>alert(document.cookie)</script>"
	q := func(r request, query string) request {
		r.uri = strings.SplitN(r.uri, "?", 2)[0] + "?" + query
		return r
	}
	steps := []struct {
		name       string
		r          request
		attack     bool
		wantPruned int64 // at least
	}{
		// Pruning starts with the first request (the hook evaluates the
		// values it does not know); the memo keeps values seen twice.
		{"browser GET, first", browserGET, false, 120},
		{"browser GET, second: into the memo", browserGET, false, 120},
		{"browser GET, third: from the memo", browserGET, false, 120},
		{"same GET, XSS in another header", withHeader(browserGET, "X-Client-Note", xss), true, 0},
		{"same GET, SQL injection in the query", q(browserGET, "category="+url.QueryEscape(sqli)), true, 0},
		{"same GET, SQL injection in the query again", q(browserGET, "category="+url.QueryEscape(sqli)), true, 0},
		{"same GET, SQL injection in the query a third time", q(browserGET, "category="+url.QueryEscape(sqli)), true, 0},
		{"benign again after the attacks", browserGET, false, 120},
		{"known benign argument next to an attack one", q(browserGET, "category=baccarat&limit=20&sort="+url.QueryEscape(sqli)), true, 0},
		{"attack as the User-Agent", withHeader(browserGET, "User-Agent", "sqlmap/1.7.2#stable (https://sqlmap.org)"), true, 0},
		{"attack as the User-Agent again", withHeader(browserGET, "User-Agent", "sqlmap/1.7.2#stable (https://sqlmap.org)"), true, 0},
		{"XSS in the cookie", withHeader(browserGET, "Cookie", "theme="+xss), true, 0},
		{"XSS in the cookie again", withHeader(browserGET, "Cookie", "theme="+xss), true, 0},
		{"bet, first", betPOST(betJSON), false, 120},
		{"bet, second", betPOST(betJSON), false, 120},
		{"bet, third", betPOST(betJSON), false, 120},
		{"bet with an injection in one field", betPOST(strings.Replace(betJSON, `"EUR"`, `"`+strings.ReplaceAll(sqli, "'", `\u0027`)+`"`, 1)), true, 0},
		{"bet with an injection in one field again", betPOST(strings.Replace(betJSON, `"EUR"`, `"`+strings.ReplaceAll(sqli, "'", `\u0027`)+`"`, 1)), true, 0},
		{"bet again", betPOST(betJSON), false, 120},
	}
	for _, s := range steps {
		got := compare(t, e, plain, s.name, s.r)
		if got.blocked != s.attack {
			t.Errorf("%s: blocked %v, want %v (%v)", s.name, got.blocked, s.attack, got)
		}
		if got.pruned < s.wantPruned {
			t.Errorf("%s: %d rules pruned, want at least %d", s.name, got.pruned, s.wantPruned)
		}
	}
}

// TestPruneConcurrent runs benign and attack requests from several
// goroutines through one engine (one memo) and compares each with plain
// Coraza's verdict, computed beforehand.
func TestPruneConcurrent(t *testing.T) {
	e, plain := pruneFixture(t)
	reqs := []request{browserGET, betPOST(betJSON),
		withHeader(browserGET, "X-Client-Note", "<script>alert(1)</script>"),
		withHeader(browserGET, "Referer", "https://play.edge.test/?q=1%27%20or%201=1--"),
		withHeader(browserGET, "Accept-Language", "de-DE,de;q=0.9"),
	}
	want := make([]verdict, len(reqs))
	for i, r := range reqs {
		want[i] = plainVerdict(plain, r.ctx(t))
	}
	const workers, rounds = 3, 8
	var wg sync.WaitGroup
	errs := make(chan string, workers*rounds*len(reqs))
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range rounds * len(reqs) {
				i := (k + w) % len(reqs)
				ctx := reqs[i].ctx(t)
				tx := e.Begin(ctx, []byte("c"), client, nil)
				tx.End()
				if got := ids(tx.Matches()); !slices.Equal(got, want[i].ids) || tx.RuleID() != want[i].rule {
					errs <- fmt.Sprintf("request %d: hedge rules %v blocked by %d; plain %v", i, got, tx.RuleID(), want[i])
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for s := range errs {
		t.Error(s)
	}
	if e.pruner.pruned.Load() == 0 {
		t.Error("no rule was pruned: the test did not exercise the memo")
	}
}

// TestMemoBounded: a client sending fresh values, each twice, can neither
// grow the memo past its two generations nor push out a value the rest of
// the traffic keeps using.
func TestMemoBounded(t *testing.T) {
	var m memo
	m.init()
	var hot memoEntry
	hot.known.add(3)
	hot.nomatch.add(3)
	m.put("hot", hot)
	for i := range 5 * memoGeneration {
		v := fmt.Sprintf("flood-%d", i)
		if m.seenBefore(v) {
			t.Fatalf("%q reported seen before it was", v)
		}
		if !m.seenBefore(v) {
			t.Fatalf("%q not reported seen the second time", v)
		}
		m.put(v, memoEntry{})
		if i%(memoGeneration/2) == 0 {
			if got, ok := m.get("hot"); !ok || got != hot {
				t.Fatalf("after %d flood values the hot value is gone (ok %v)", i, ok)
			}
		}
		if n := len(m.cur) + len(m.prev); n > 2*memoGeneration {
			t.Fatalf("memo holds %d entries, bound %d", n, 2*memoGeneration)
		}
		if len(m.seen) > seenLimit {
			t.Fatalf("seen set holds %d values, bound %d", len(m.seen), seenLimit)
		}
	}
}

// TestPruneOffWhenRuleFilesReadRULE: an extra rule file reading RULE:*
// turns pruning off (each evaluated rule sets RULE for itself).
func TestPruneOffWhenRuleFilesReadRULE(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, src string
		pruned    bool
	}{
		{"plain rule", "SecRule ARGS \"@contains hedge-probe\" \"id:100001,phase:2,pass,log,msg:'probe'\"\n", true},
		{"reads rule.msg", "SecRule ARGS \"@contains hedge-probe\" \"id:100001,phase:2,pass,log,setvar:'tx.m=%{rule.msg}'\"\n", false},
		{"reads RULE:id", "SecRule RULE:id \"@eq 1\" \"id:100001,phase:2,pass,log\"\n", false},
	} {
		f := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".conf")
		if err := writeFile(f, tc.src); err != nil {
			t.Fatal(err)
		}
		e, err := New(Options{Mode: Block, RuleFiles: []string{f}})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := e.pruner != nil; got != tc.pruned {
			t.Errorf("%s: pruning on %v, want %v", tc.name, got, tc.pruned)
		}
	}
}

// BenchmarkPrune is the hook alone on a warm memo: the browser GET's
// collections looked up, the rules removed.
func BenchmarkPrune(b *testing.B) {
	e := blockEngine(b)
	ctx := browserGET.ctx(b)
	for range 4 {
		tx := e.Begin(ctx, nil, client, nil)
		tx.End()
	}
	tx := e.waf.NewTransaction()
	defer tx.Close()
	tx.ProcessURI(browserGET.uri, "GET", "HTTP/1.1")
	for k, v := range ctx.Request.Header.AllInOrder() {
		tx.AddRequestHeader(string(k), string(v))
	}
	st, ok := tx.(plugintypes.TransactionState)
	if !ok {
		b.Fatal("Coraza's transaction is not a TransactionState")
	}
	b.ReportAllocs()
	for b.Loop() {
		e.pruner.prune(1, st)
	}
}

// TestMultiFilter: one scan reports exactly the rules one of whose literals
// occurs, overlapping and nested literals and case included, across
// automata when the rules do not fit in one.
func TestMultiFilter(t *testing.T) {
	rules := []filterRule{
		{index: 0, lits: []string{"abc"}, states: 4},
		{index: 1, lits: []string{"bc"}, states: 3},
		{index: 2, lits: []string{"c", "zz"}, states: 4},
		{index: 3, lits: []string{"xbcd"}, states: 5},
		{index: 70, lits: []string{"select", "union"}, states: 12},
		{index: 71, lits: []string{"<script"}, states: 8},
	}
	for _, split := range []bool{false, true} {
		rs := slices.Clone(rules)
		if split { // each rule too big to share an automaton
			for i := range rs {
				rs[i].states = multiStates - 1
			}
		}
		fs, covered := buildMultiFilters(rs)
		if want := map[bool]int{false: 1, true: len(rs)}[split]; len(fs) != want {
			t.Fatalf("split %v: %d automata, want %d", split, len(fs), want)
		}
		for _, r := range rs {
			if !covered.has(r.index) {
				t.Errorf("split %v: rule %d not covered", split, r.index)
			}
		}
		for _, tc := range []struct {
			in   string
			want []int
		}{
			{"", nil},
			{"xbcd", []int{1, 2, 3}},
			{"ABC", []int{0, 1, 2}},
			{"1 UNION SeLeCt 2", []int{2, 70}}, // "c" in select
			{"<SCRIPT>", []int{2, 71}},
			{"zz", []int{2}},
			{"ab", nil},
		} {
			var found ruleSet
			for _, f := range fs {
				f.scan(tc.in, &found)
			}
			var got []int
			for _, r := range rs {
				if found.has(r.index) {
					got = append(got, r.index)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("split %v: scan(%q) found rules %v, want %v", split, tc.in, got, tc.want)
			}
		}
	}
}

// TestPMDictionaries: the combined scan decides CRS's @pm and @pmFromFile
// rules as their operators do — every such rule at PL1 is read back (a
// Coraza change that stops that fails here), and on each word of each
// dictionary, uppercased, inside other text and cut short, the scan reports
// the rule exactly when the operator matches.
func TestPMDictionaries(t *testing.T) {
	e := blockEngine(t)
	p := e.pruner
	rules, _ := ruleGroup(e.waf)
	byID := map[int]compiledRule{}
	for _, r := range rules {
		byID[r.id] = r
	}
	checked := 0
	for i, r := range p.rules {
		c := byID[r.id]
		name := strings.TrimPrefix(c.opName, "@")
		if name != "pm" && name != "pmFromFile" || r.multi {
			continue
		}
		if !p.nodes[r.node].filtered.has(i) {
			t.Errorf("rule %d (%s %s): not decided by the combined scan", r.id, name, c.opData)
			continue
		}
		dict := pmDictionary(r.op, [2]string{name, c.opData})
		for _, w := range dict {
			for _, v := range []string{w, strings.ToUpper(w), "x " + w + "}", w[:len(w)-1], strings.ToUpper(w[:len(w)-1]) + "#"} {
				var found ruleSet
				for _, f := range p.nodes[r.node].filters {
					f.scan(v, &found)
				}
				if got, want := found.has(i), r.op.Evaluate(noState{}, v); got != want {
					t.Fatalf("rule %d on %q: scan says %v, operator %v", r.id, v, got, want)
				}
				checked++
			}
		}
	}
	if checked < 1000 {
		t.Fatalf("checked %d values, want the words of CRS's dictionaries", checked)
	}
}
