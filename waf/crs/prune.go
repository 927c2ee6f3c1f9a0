package crs

import (
	"hash/maphash"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/corazawaf/coraza/v3"
	"github.com/corazawaf/coraza/v3/collection"
	"github.com/corazawaf/coraza/v3/debuglog"
	"github.com/corazawaf/coraza/v3/experimental/plugins"
	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
	"github.com/corazawaf/coraza/v3/types"
	"github.com/corazawaf/coraza/v3/types/variables"
)

// Rule pruning: at the start of phases 1 and 2 a hook rule removes, for
// this transaction only, the rules that provably cannot match it, before
// Coraza fetches their variables, transforms the values and expands their
// messages. Most of a request's values repeat across requests (User-Agent,
// Accept-*, Sec-Ch-*, Referer, static cookies, common query parameters), so
// the proof is a memo of (variable, value) -> the set of rules that do not
// match that value, computed with the rule's own transformation functions
// and operator, the ones Coraza would call.
//
// A rule is prunable when nothing but the values it inspects decides
// whether it matches:
//   - its operator is pure and not negated (@rx, @pm, @pmFromFile,
//     @contains, @beginsWith, @streq, @within, @detectSQLi, ...), and its
//     argument has no macro;
//   - every variable is request data that exists when the phase starts and
//     that no rule writes (headers, cookies, arguments, URI, body, XML; not
//     TX, not MATCHED_VARS, not REQBODY_PROCESSOR, not counts);
//   - no skip:N action could land on it (below).
//
// The values a rule inspects are a subset of all the values of the
// collections it names (a key, a key regex and exceptions only narrow
// them), so "no value of those collections matches" proves "the rule does
// not match". When the first rule of a chain does not match, the chain
// stops there, so its later rules do not matter. A rule that does not match
// has no other effect on the transaction than setting RULE:* for itself,
// which the next evaluated rule sets again.
//
// skip:N makes the next N rules of the phase that are not removed skip; a
// removed rule does not count. So the N rules after a skip action are never
// pruned, and when a runtime ctl could remove one of them without removing
// the skipping rule too, nothing after the skipping rule in its phase is.
//
// A value not in the memo is learned when all the new values of its
// collection fit in the request's budget (learnPerPhase per phase), so
// that learning buys pruning; it is kept in the memo only the second time
// it is seen, and only when at most maxMemoValue bytes long. The memo holds
// two generations of at most memoGeneration entries each, and an entry hit
// moves to the current generation. A client sending fresh values can therefore neither grow it
// nor, cheaply, push out the values the rest of the traffic keeps hitting;
// a value not in the memo only means its rules run as usual.

const (
	pruneHookPhase1 = 9990010
	pruneHookPhase2 = 9990011
	maxPruned       = 512 // prunable rules tracked; later ones always run
	maxMemoValue    = 512
	memoGeneration  = 2048
	seenLimit       = 16384
	learnPerPhase   = 8
)

// ruleSet is a set of prunable rules, by index.
type ruleSet [maxPruned / 64]uint64

func (s *ruleSet) add(i int)      { s[i/64] |= 1 << (i % 64) }
func (s *ruleSet) has(i int) bool { return s[i/64]&(1<<(i%64)) != 0 }
func (s *ruleSet) andNot(o *ruleSet) {
	for i := range s {
		s[i] &^= o[i]
	}
}

// or adds to s the rules of using that are not in nomatch.
func (s *ruleSet) or(nomatch, using *ruleSet) {
	for i := range s {
		s[i] |= using[i] &^ nomatch[i]
	}
}
func (s *ruleSet) intersects(o *ruleSet) bool {
	for i := range s {
		if s[i]&o[i] != 0 {
			return true
		}
	}
	return false
}

// pureOperators are the operators whose result depends only on the value
// (and their argument, when it has no macro).
var pureOperators = map[string]bool{
	"rx": true, "pm": true, "pmf": true, "pmFromFile": true, "contains": true, "containsWord": true,
	"beginsWith": true, "endsWith": true, "streq": true, "within": true, "detectSQLi": true, "detectXSS": true,
	"validateByteRange": true, "validateUrlEncoding": true, "validateUtf8Encoding": true,
}

// requestVariables are the collections a prunable rule may name: request
// data, complete when phase 1 (or, for the body's, phase 2) starts, that no
// action writes.
var requestVariables = map[variables.RuleVariable]bool{
	variables.RequestHeaders: true, variables.RequestHeadersNames: true,
	variables.RequestCookies: true, variables.RequestCookiesNames: true,
	variables.Args: true, variables.ArgsNames: true, variables.ArgsGet: true, variables.ArgsGetNames: true,
	variables.ArgsPost: true, variables.ArgsPostNames: true,
	variables.RequestFilename: true, variables.RequestBasename: true, variables.RequestURI: true,
	variables.RequestURIRaw: true, variables.QueryString: true, variables.RequestLine: true,
	variables.RequestMethod: true, variables.RequestProtocol: true, variables.RequestBody: true,
	variables.Files: true, variables.FilesNames: true, variables.XML: true, variables.MultipartPartHeaders: true,
}

type prunedRule struct {
	id      int
	op      plugintypes.Operator
	tr      []plugintypes.Transformation
	multi   bool
	classes []int
}

type pruner struct {
	rules   []prunedRule
	phase   [3]ruleSet // prunable rules of phases 1 and 2
	classes []variables.RuleVariable
	using   []ruleSet // by class: the rules naming it
	memo    memo

	// Counters for tests and the benchmark.
	pruned, learned atomic.Int64
}

// newPruner reads the compiled rules of waf; nil when the rule group cannot
// be read (another Coraza version) or nothing is prunable.
func newPruner(waf coraza.WAF) *pruner {
	rules, ok := ruleGroup(waf)
	if !ok {
		return nil
	}
	p := &pruner{}
	blocked := blockedBySkip(rules)
	classIndex := map[variables.RuleVariable]int{}
	for i := range rules {
		r := &rules[i]
		if blocked[i] || r.id == 0 || r.op == nil || r.negated || (r.phase != 1 && r.phase != 2) ||
			!pureOperators[strings.TrimPrefix(r.opName, "@")] || strings.Contains(r.opData, "%{") ||
			len(r.vars) == 0 || len(p.rules) == maxPruned {
			continue
		}
		ok := true
		for _, v := range r.vars {
			if v.count || !requestVariables[v.variable] {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		pr := prunedRule{id: r.id, op: r.op, tr: r.tr, multi: r.multi}
		idx := len(p.rules)
		for _, v := range r.vars {
			ci, seen := classIndex[v.variable]
			if !seen {
				ci = len(p.classes)
				classIndex[v.variable] = ci
				p.classes = append(p.classes, v.variable)
				p.using = append(p.using, ruleSet{})
			}
			if !p.using[ci].has(idx) {
				p.using[ci].add(idx)
				pr.classes = append(pr.classes, ci)
			}
		}
		p.phase[r.phase].add(idx)
		p.rules = append(p.rules, pr)
	}
	if len(p.rules) == 0 {
		return nil
	}
	p.memo.init()
	return p
}

// blockedBySkip marks the rules a skip:N action could land on differently
// once other rules are removed (see the package comment above).
func blockedBySkip(rules []compiledRule) []bool {
	blocked := make([]bool, len(rules))
	var ctls []string
	for i := range rules {
		ctls = append(ctls, rules[i].ctls...)
	}
	removable := func(r *compiledRule, ctl string) bool {
		if ctl == strconv.Itoa(r.id) || ctl == r.msg {
			return true
		}
		if lo, hi, ok := strings.Cut(ctl, "-"); ok {
			a, err1 := strconv.Atoi(lo)
			b, err2 := strconv.Atoi(hi)
			if err1 == nil && err2 == nil && r.id >= a && r.id <= b {
				return true
			}
		}
		for _, t := range r.tags {
			if t == ctl {
				return true
			}
		}
		return false
	}
	for i := range rules {
		s := &rules[i]
		if s.skip <= 0 {
			continue
		}
		safe := true
		n := 0
		for j := i + 1; j < len(rules) && n < s.skip; j++ {
			if rules[j].phase != s.phase {
				continue
			}
			n++
			blocked[j] = true
			if len(rules[j].ctls) > 0 {
				safe = false
			}
			for _, c := range ctls {
				if removable(&rules[j], c) && !removable(s, c) {
					safe = false
				}
			}
		}
		if !safe {
			for j := i + 1; j < len(rules); j++ {
				if rules[j].phase == s.phase {
					blocked[j] = true
				}
			}
		}
	}
	return blocked
}

// prune removes from tx the prunable rules of the phase that no value of
// the transaction can match.
func (p *pruner) prune(phase types.RulePhase, tx plugintypes.TransactionState) {
	if phase != 1 && phase != 2 {
		return
	}
	rm, ok := tx.(interface{ RemoveRuleByID(int) })
	if !ok {
		return
	}
	skip := p.phase[phase]
	learn := learnPerPhase
	for ci, v := range p.classes {
		if !skip.intersects(&p.using[ci]) {
			continue
		}
		col := tx.Collection(v)
		if col == nil {
			continue
		}
		values := col.FindAll()
		// Rules naming this class that may match one of its values stay.
		var keep ruleSet
		misses := 0
		for _, md := range values {
			if nm, ok := p.memo.get(ci, md.Value()); ok {
				keep.or(&nm, &p.using[ci])
			} else {
				misses++
			}
		}
		if misses > 0 {
			// A value not known yet is learned (once the budget allows all
			// of this class's), and kept in the memo the second time it is
			// seen; else the class's rules run as usual.
			fits := misses <= learn
			for _, md := range values {
				val := md.Value()
				if _, ok := p.memo.get(ci, val); ok {
					continue
				}
				again := len(val) <= maxMemoValue && p.memo.seenBefore(ci, val)
				if learn == 0 || !(fits || again) {
					fits = false
					continue
				}
				learn--
				nm := p.learn(ci, val)
				if again {
					p.memo.put(ci, val, nm)
				}
				keep.or(&nm, &p.using[ci])
			}
			if !fits {
				keep = p.using[ci]
			}
		}
		skip.andNot(&keep)
	}
	n := 0
	for w, bits := range skip {
		for bits != 0 {
			b := trailingZeros(bits)
			bits &^= 1 << b
			rm.RemoveRuleByID(p.rules[w*64+b].id)
			n++
		}
	}
	p.pruned.Add(int64(n))
}

func trailingZeros(x uint64) int {
	n := 0
	for x&1 == 0 {
		x >>= 1
		n++
	}
	return n
}

// learn evaluates every rule naming class ci on val, as Coraza would, and
// returns the rules that do not match it.
func (p *pruner) learn(ci int, val string) ruleSet {
	p.learned.Add(1)
	var nm ruleSet
	for i := range p.rules {
		if p.using[ci].has(i) && !p.rules[i].matches(val) {
			nm.add(i)
		}
	}
	return nm
}

// matches runs the rule's transformations and operator on val exactly as
// Coraza's Rule.doEvaluate does (a failing transformation leaves the value
// as it was; multiMatch tries the value and each changed intermediate).
func (r *prunedRule) matches(val string) bool {
	if r.multi {
		if r.op.Evaluate(noState{}, val) {
			return true
		}
		for _, t := range r.tr {
			v, changed, err := t(val)
			if err != nil || !changed {
				continue
			}
			val = v
			if r.op.Evaluate(noState{}, val) {
				return true
			}
		}
		return false
	}
	for _, t := range r.tr {
		if v, _, err := t(val); err == nil {
			val = v
		}
	}
	return r.op.Evaluate(noState{}, val)
}

// noState is the transaction the pure operators see while learning: they
// capture nothing and log nowhere.
type noState struct{}

func (noState) ID() string                                              { return "" }
func (noState) Variables() plugintypes.TransactionVariables             { return nil }
func (noState) Collection(variables.RuleVariable) collection.Collection { return nil }
func (noState) Interrupt(*types.Interruption)                           {}
func (noState) DebugLogger() debuglog.Logger                            { return debuglog.Noop() }
func (noState) Capturing() bool                                         { return false }
func (noState) CaptureField(int, string)                                {}
func (noState) LastPhase() types.RulePhase                              { return 0 }

// memo maps (class, value) to the prunable rules that do not match value.
// seen holds hashes of the values offered once: a collision only admits a
// value early.
type memo struct {
	mu        sync.RWMutex
	cur, prev map[memoKey]ruleSet
	seen      map[seenKey]struct{}
	seed      maphash.Seed
}

type seenKey struct {
	class int
	hash  uint64
}

type memoKey struct {
	class int
	value string
}

func (m *memo) init() {
	m.cur = make(map[memoKey]ruleSet)
	m.prev = make(map[memoKey]ruleSet)
	m.seen = make(map[seenKey]struct{})
	m.seed = maphash.MakeSeed()
}

func (m *memo) get(ci int, v string) (ruleSet, bool) {
	k := memoKey{ci, v}
	m.mu.RLock()
	nm, ok := m.cur[k]
	if ok {
		m.mu.RUnlock()
		return nm, true
	}
	nm, ok = m.prev[k]
	m.mu.RUnlock()
	if ok {
		m.put(ci, v, nm) // still in use: into the current generation
	}
	return nm, ok
}

func (m *memo) put(ci int, v string, nm ruleSet) {
	k := memoKey{ci, strings.Clone(v)}
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.cur) >= memoGeneration {
		m.prev, m.cur = m.cur, make(map[memoKey]ruleSet, memoGeneration)
	}
	m.cur[k] = nm
	delete(m.seen, seenKey{ci, maphash.String(m.seed, v)})
}

// seenBefore reports whether (ci, v) was offered before, and records it.
func (m *memo) seenBefore(ci int, v string) bool {
	k := seenKey{ci, maphash.String(m.seed, v)}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.seen[k]; ok {
		return true
	}
	if len(m.seen) >= seenLimit {
		clear(m.seen)
	}
	m.seen[k] = struct{}{}
	return false
}

// The hook rules: a SecAction at the start of phases 1 and 2 whose action
// finds its engine's pruner by a token.
var (
	prunersMu sync.Mutex
	pruners   = map[string]**pruner{}
	pruneSeq  int
)

func init() {
	plugins.RegisterAction("hedge_prune", func() plugintypes.Action { return &pruneAction{} })
}

type pruneAction struct{ p **pruner }

func (a *pruneAction) Init(_ plugintypes.RuleMetadata, token string) error {
	prunersMu.Lock()
	defer prunersMu.Unlock()
	a.p = pruners[token]
	if a.p == nil {
		// A configuration that names the action without New's token: a no-op.
		a.p = new(*pruner)
	}
	return nil
}

func (a *pruneAction) Evaluate(_ plugintypes.RuleMetadata, tx plugintypes.TransactionState) {
	if p := *a.p; p != nil {
		p.prune(tx.LastPhase(), tx)
	}
}

func (a *pruneAction) Type() plugintypes.ActionType { return plugintypes.ActionTypeNondisruptive }

// pruneSlot reserves a token for New's hook rules; the engine fills the
// slot once the rules are compiled. release forgets the token.
func pruneSlot() (token string, slot **pruner, release func()) {
	prunersMu.Lock()
	defer prunersMu.Unlock()
	pruneSeq++
	token = "e" + strconv.Itoa(pruneSeq)
	slot = new(*pruner)
	pruners[token] = slot
	return token, slot, func() {
		prunersMu.Lock()
		defer prunersMu.Unlock()
		delete(pruners, token)
	}
}

func pruneDirectives(token string) string {
	return "SecAction \"id:" + strconv.Itoa(pruneHookPhase1) + ",phase:1,pass,nolog,noauditlog,hedge_prune:" + token + "\"\n" +
		"SecAction \"id:" + strconv.Itoa(pruneHookPhase2) + ",phase:2,pass,nolog,noauditlog,hedge_prune:" + token + "\"\n"
}

// compiledRule is what pruning needs of one of Coraza's compiled rules.
type compiledRule struct {
	id, phase int
	op        plugintypes.Operator
	opName    string
	opData    string
	negated   bool
	vars      []struct {
		variable variables.RuleVariable
		count    bool
	}
	tr    []plugintypes.Transformation
	multi bool
	skip  int      // skip:N
	ctls  []string // ctl action values (rule removals among them)
	tags  []string
	msg   string
}

// ruleGroup reads the compiled rules of a WAF built by coraza.NewWAF in
// evaluation order. Coraza exposes no API for this; the layout read here is
// Coraza v3.8.1's (coraza.wafWrapper -> corazawaf.WAF.Rules.rules ->
// corazawaf.Rule), and any field not found as expected disables pruning
// (TestPrunerReadsRules fails on a Coraza upgrade that changes it).
func ruleGroup(waf coraza.WAF) (out []compiledRule, ok bool) {
	defer func() {
		if recover() != nil {
			out, ok = nil, false
		}
	}()
	w := reflect.ValueOf(waf)
	if w.Kind() != reflect.Struct || w.NumField() != 1 || w.Field(0).Kind() != reflect.Pointer {
		return nil, false
	}
	inner := reflect.NewAt(w.Field(0).Type().Elem(), unsafe.Pointer(w.Field(0).Pointer())).Elem()
	rules := open(open(inner.FieldByName("Rules")).FieldByName("rules"))
	if rules.Kind() != reflect.Slice {
		return nil, false
	}
	for i := 0; i < rules.Len(); i++ {
		r := open(rules.Index(i))
		c := compiledRule{
			id:    int(r.FieldByName("ID_").Int()),
			phase: int(r.FieldByName("Phase_").Int()),
			multi: r.FieldByName("MultiMatch").Bool(),
		}
		if tags, ok := r.FieldByName("Tags_").Interface().([]string); ok {
			c.tags = tags
		}
		if m, ok := r.FieldByName("Msg").Interface().(interface{ String() string }); ok && m != nil {
			c.msg = m.String()
		}
		if op := open(r.FieldByName("operator")); !op.IsNil() {
			o := op.Elem()
			c.op, _ = o.FieldByName("Operator").Interface().(plugintypes.Operator)
			c.opName = o.FieldByName("Function").String()
			c.opData = o.FieldByName("Data").String()
			c.negated = o.FieldByName("Negation").Bool()
		}
		vars := open(r.FieldByName("variables"))
		for j := 0; j < vars.Len(); j++ {
			v := vars.Index(j)
			c.vars = append(c.vars, struct {
				variable variables.RuleVariable
				count    bool
			}{variables.RuleVariable(v.FieldByName("Variable").Uint()), v.FieldByName("Count").Bool()})
		}
		trs := open(r.FieldByName("transformations"))
		for j := 0; j < trs.Len(); j++ {
			f, ok := trs.Index(j).FieldByName("Function").Interface().(plugintypes.Transformation)
			if !ok {
				return nil, false
			}
			c.tr = append(c.tr, f)
		}
		acts := open(r.FieldByName("actions"))
		for j := 0; j < acts.Len(); j++ {
			a := acts.Index(j)
			fn := a.FieldByName("Function").Elem()
			switch a.FieldByName("Name").String() {
			case "skip":
				c.skip = int(open(fn.Elem().FieldByName("data")).Int())
				if c.skip <= 0 {
					return nil, false
				}
			case "ctl":
				c.ctls = append(c.ctls, open(fn.Elem().FieldByName("value")).String())
			}
		}
		out = append(out, c)
	}
	return out, true
}

// readsRuleCollection reports whether an extra rule file may read RULE:*
// (%{rule.msg} and the like), which each evaluated rule sets for itself:
// with rules pruned, a rule without its own msg would read another's. CRS
// does not; such a file turns pruning off. A file that cannot be read is
// left to Coraza to report.
var ruleCollectionRef = regexp.MustCompile(`(?i)%\{\s*rule\.|(^|[^a-z_])rule:`)

func readsRuleCollection(files []string) bool {
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if ruleCollectionRef.Match(b) {
			return true
		}
	}
	return false
}

// open makes an addressable value read through unexported fields usable.
func open(v reflect.Value) reflect.Value {
	return reflect.NewAt(v.Type(), unsafe.Pointer(v.UnsafeAddr())).Elem()
}
