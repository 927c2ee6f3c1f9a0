package crs

import (
	"bufio"
	"bytes"
	"hash/maphash"
	"io/fs"
	"math/rand/v2"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	coreruleset "github.com/corazawaf/coraza-coreruleset/v4"
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
// the proof is a memo of value -> the set of rules that do not match it, computed with the rule's own transformation functions
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
// which the next evaluated rule sets again (CRS never reads RULE; an extra
// rule file that does turns pruning off). Rules tagged for a paranoia
// level above the engine's are not pruned: CRS skips them anyway.
//
// skip:N makes the next N rules of the phase that are not removed skip; a
// removed rule does not count. So the N rules after a skip action are never
// pruned, and when a runtime ctl could remove one of them without removing
// the skipping rule too, nothing after the skipping rule in its phase is.
//
// A value the memo does not know is evaluated by the hook for the rules
// still in question (Coraza would evaluate it anyway; the hook does it with
// the transformation prefixes shared, as Coraza does, and without Coraza's
// per-rule work), and is kept in the memo the second time it is seen, when
// at most maxMemoValue bytes long. The memo holds two generations of at most
// memoGeneration entries each, and an entry hit moves to the current
// generation: a client sending fresh values can neither grow it nor, cheaply,
// push out the values the rest of the traffic keeps hitting. A rule the
// hook evaluated and found matching stays, and Coraza evaluates it again.

const (
	pruneHookPhase1 = 9990010
	pruneHookPhase2 = 9990011
	maxPruned       = 512 // prunable rules tracked; later ones always run
	maxMemoValue    = 512
	memoGeneration  = 2048
	seenLimit       = 16384
	// maxLongPerRequest bounds the per-request list of long values.
	maxLongPerRequest = 16
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

func (s *ruleSet) and(o *ruleSet) {
	for i := range s {
		s[i] &= o[i]
	}
}
func (s *ruleSet) empty() bool { return *s == ruleSet{} }

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
	id    int
	op    plugintypes.Operator
	tr    []plugintypes.Transformation
	node  int   // the transformation chain's last node in pruner.nodes
	path  []int // the chain's nodes, one per transformation
	multi bool
}

// chainNode is one step of a transformation chain: fn applied to the
// parent node's value; node 0 is the value untransformed. filters hold the
// literals of the @rx rules whose chain ends here (filtered).
type chainNode struct {
	parent   int
	fn       plugintypes.Transformation
	filters  []*multiFilter
	filtered ruleSet
}

type pruner struct {
	rules     []prunedRule
	phase     [3]ruleSet // prunable rules of phases 1 and 2
	classes   []variables.RuleVariable
	using     []ruleSet // by class: the rules naming it
	nodes     []chainNode
	memo      memo
	cachePool sync.Pool

	// Counters for tests and the benchmark.
	pruned, learned atomic.Int64
}

// newPruner reads the compiled rules of waf; nil when the rule group cannot
// be read (another Coraza version) or nothing is prunable. Rules tagged for
// a paranoia level above pl are left alone: CRS skips them anyway, so
// evaluating them while learning would be wasted.
func newPruner(waf coraza.WAF, pl int) *pruner {
	rules, ok := ruleGroup(waf)
	if !ok {
		return nil
	}
	p := &pruner{nodes: []chainNode{{}}}
	p.cachePool.New = func() any { return &learnCache{} }
	nodeIndex := map[[2]uintptr]int{}
	blocked := blockedBySkip(rules)
	classIndex := map[variables.RuleVariable]int{}
	var pmSource [][2]string // by rule: operator name and argument
	for i := range rules {
		r := &rules[i]
		if blocked[i] || r.id == 0 || r.op == nil || r.negated || (r.phase != 1 && r.phase != 2) || aboveLevel(r.tags, pl) ||
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
		pmSource = append(pmSource, [2]string{strings.TrimPrefix(r.opName, "@"), r.opData})
		for _, t := range r.tr {
			k := [2]uintptr{uintptr(pr.node), reflect.ValueOf(t).Pointer()}
			n, ok := nodeIndex[k]
			if !ok {
				n = len(p.nodes)
				nodeIndex[k] = n
				p.nodes = append(p.nodes, chainNode{parent: pr.node, fn: quicker(t)})
			}
			pr.node = n
			pr.path = append(pr.path, n)
		}
		idx := len(p.rules)
		for _, v := range r.vars {
			ci, seen := classIndex[v.variable]
			if !seen {
				ci = len(p.classes)
				classIndex[v.variable] = ci
				p.classes = append(p.classes, v.variable)
				p.using = append(p.using, ruleSet{})
			}
			p.using[ci].add(idx)
		}
		p.phase[r.phase].add(idx)
		p.rules = append(p.rules, pr)
	}
	if len(p.rules) == 0 {
		return nil
	}
	byNode := map[int][]filterRule{}
	for i, r := range p.rules {
		if rx, ok := r.op.(*rxOp); ok && !r.multi && rx.lits != nil {
			byNode[r.node] = append(byNode[r.node], filterRule{index: i, lits: rx.lits, states: len(rx.pf.next) / rx.pf.nclass})
		}
		if dict := pmDictionary(r.op, pmSource[i]); !r.multi && dict != nil {
			states := 1
			for _, w := range dict {
				states += len(w)
			}
			byNode[r.node] = append(byNode[r.node], filterRule{index: i, lits: dict, states: states})
		}
	}
	for n, rs := range byNode {
		p.nodes[n].filters, p.nodes[n].filtered = buildMultiFilters(rs)
	}
	p.memo.init()
	return p
}

// aboveLevel reports whether tags put a rule at a paranoia level above pl.
func aboveLevel(tags []string, pl int) bool {
	for _, t := range tags {
		if l, ok := strings.CutPrefix(t, "paranoia-level/"); ok {
			if n, err := strconv.Atoi(l); err == nil && n > pl {
				return true
			}
		}
	}
	return false
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
// the transaction can match. A value the memo does not know (or knows only
// for some of the rules) is evaluated here for the rules still in question,
// which is the same work Coraza would do for it, without its per-rule
// overhead; a rule is no longer in question once a value may match it.
func (p *pruner) prune(phase types.RulePhase, tx plugintypes.TransactionState) {
	if phase != 1 && phase != 2 {
		return
	}
	rm, ok := tx.(interface{ RemoveRuleByID(int) })
	if !ok {
		return
	}
	skip := p.phase[phase]
	var lc *learnCache
	for ci, v := range p.classes {
		want := skip
		want.and(&p.using[ci])
		if want.empty() {
			continue
		}
		col := tx.Collection(v)
		if col == nil {
			continue
		}
		for _, md := range col.FindAll() {
			val := md.Value()
			var e memoEntry
			known, short := false, len(val) <= maxMemoValue
			li := -1
			if short {
				e, known = p.memo.get(val)
			} else if lc != nil {
				// Long values are not kept, but one often stands in several
				// collections (ARGS and ARGS_GET, a cookie and its header).
				li = lc.findLong(val)
				if li >= 0 {
					e = lc.long[li].e
				}
			}
			missing := want
			missing.andNot(&e.known)
			if !missing.empty() {
				if lc == nil {
					lc = p.cachePool.Get().(*learnCache)
					lc.long = lc.long[:0]
				}
				// A long value keeps its transformed forms and scans for
				// the rest of the request: it is often learnt again for the
				// few rules of another collection it stands in.
				vc := &lc.short
				if !short && li < 0 && len(lc.long) < maxLongPerRequest {
					lc.long = append(lc.long, longValue{val: val, vc: lc.spareCache()})
					li = len(lc.long) - 1
					lc.long[li].vc.reset(len(p.nodes))
				}
				if li >= 0 {
					vc = lc.long[li].vc
				} else {
					vc.reset(len(p.nodes))
				}
				p.learn(val, &missing, &e, vc)
				switch {
				case short && (known || p.memo.seenBefore(val)):
					p.memo.put(val, e)
				case li >= 0:
					lc.long[li].e = e
				}
			}
			// The rules val may match stay.
			may := want
			may.andNot(&e.nomatch)
			skip.andNot(&may)
			want.andNot(&may)
			if want.empty() {
				break
			}
		}
	}
	if lc != nil {
		// No request data kept in the pool.
		for _, l := range lc.long {
			clear(l.vc.vals)
			lc.spare = append(lc.spare, l.vc)
		}
		clear(lc.long)
		lc.long = lc.long[:0]
		clear(lc.short.vals)
		p.cachePool.Put(lc)
	}
	n := 0
	for w, bits := range skip {
		for bits != 0 {
			b := bits & -bits
			bits &^= b
			rm.RemoveRuleByID(p.rules[w*64+bitIndex(b)].id)
			n++
		}
	}
	p.pruned.Add(int64(n))
}

func bitIndex(b uint64) int {
	n := 0
	for b > 1 {
		b >>= 1
		n++
	}
	return n
}

// learn evaluates the rules of missing on val, as Coraza would, and adds
// them to e: known, and nomatch for those that do not match.
func (p *pruner) learn(val string, missing *ruleSet, e *memoEntry, lc *valueCache) {
	p.learned.Add(1)
	for w, bits := range missing {
		for bits != 0 {
			b := bits & -bits
			bits &^= b
			i := w*64 + bitIndex(b)
			r := &p.rules[i]
			var match bool
			switch {
			case r.multi:
				match = p.matchesMulti(r, val, lc)
			case p.nodes[r.node].filtered.has(i) && !p.passes(r.node, val, missing, lc).has(i):
				// None of its literals occurs: its own prefilter would say no.
			default:
				match = r.op.Evaluate(noState{}, p.transformed(r.node, val, lc))
			}
			e.known.add(i)
			if !match {
				e.nomatch.add(i)
			}
		}
	}
}

// transformed is val after the transformation chain ending at node, each
// prefix computed once per value (Coraza shares prefixes the same way). A
// transformation that fails leaves the value as it was, as in Coraza.
func (p *pruner) transformed(node int, val string, lc *valueCache) string {
	if node == 0 {
		return val
	}
	if lc.stamp[node] == lc.gen {
		return lc.vals[node]
	}
	in := p.transformed(p.nodes[node].parent, val, lc)
	out, changed, odd := in, false, false
	if v, ch, err := p.nodes[node].fn(in); err == nil {
		out, changed, odd = v, ch, !ch && v != in
	}
	lc.vals[node], lc.stamp[node] = out, lc.gen
	lc.changed[node], lc.odd[node] = changed, odd
	return out
}

// passes is the set of rules at node whose literals occur in val
// transformed, as far as known: each automaton holding rules of missing
// scans the value once (the first 64 of a node; any further one each time).
func (p *pruner) passes(node int, val string, missing *ruleSet, lc *valueCache) *ruleSet {
	if lc.pstamp[node] != lc.gen {
		lc.passes[node], lc.scanned[node], lc.pstamp[node] = ruleSet{}, 0, lc.gen
	}
	for k, f := range p.nodes[node].filters {
		bit := uint64(1) << (k % 64)
		if k < 64 && lc.scanned[node]&bit != 0 || !f.rules.intersects(missing) {
			continue
		}
		f.scan(p.transformed(node, val, lc), &lc.passes[node])
		if k < 64 {
			lc.scanned[node] |= bit
		}
	}
	return &lc.passes[node]
}

// learnCache is what one request's pruning learns: the caches of one short
// value at a time and of each long value.
type learnCache struct {
	short valueCache
	long  []longValue
	spare []*valueCache
}

type longValue struct {
	val string
	e   memoEntry
	vc  *valueCache
}

func (lc *learnCache) findLong(v string) int {
	for i := range lc.long {
		if lc.long[i].val == v {
			return i
		}
	}
	return -1
}

func (lc *learnCache) spareCache() *valueCache {
	if n := len(lc.spare); n > 0 {
		vc := lc.spare[n-1]
		lc.spare = lc.spare[:n-1]
		return vc
	}
	return &valueCache{}
}

// valueCache holds one value's transformed forms and filter results by
// chain node; an entry counts when its stamp is gen.
type valueCache struct {
	vals []string
	// changed: the node's transformation reported a change; odd: it
	// returned another value without reporting one.
	changed, odd []bool
	stamp        []uint32
	passes       []ruleSet
	scanned      []uint64 // by node: the automata (by index) scanned into passes
	pstamp       []uint32
	gen          uint32
}

// reset forgets the value the cache held.
func (lc *valueCache) reset(n int) {
	if len(lc.vals) < n {
		lc.vals, lc.stamp, lc.gen = make([]string, n), make([]uint32, n), 0
		lc.changed, lc.odd = make([]bool, n), make([]bool, n)
		lc.passes, lc.pstamp, lc.scanned = make([]ruleSet, n), make([]uint32, n), make([]uint64, n)
	}
	lc.gen++
	if lc.gen == 0 { // wrapped: forget every stamp
		clear(lc.stamp)
		clear(lc.pstamp)
		lc.gen = 1
	}
}

// matchesMulti is multiMatch evaluation as in Coraza: the value and each
// intermediate that a transformation changed, the intermediates taken from
// the chain's shared prefixes. Coraza carries the value on only when a
// transformation reports a change; from a transformation that returned
// another value without reporting it (removeWhitespace does on invalid
// UTF-8), the rest of the chain is run apart, as Coraza runs it.
func (p *pruner) matchesMulti(r *prunedRule, val string, lc *valueCache) bool {
	if r.op.Evaluate(noState{}, val) {
		return true
	}
	cur := val
	for k, n := range r.path {
		tv := p.transformed(n, val, lc)
		if lc.odd[n] {
			return r.matchesMultiFrom(cur, k+1)
		}
		if lc.changed[n] {
			cur = tv
			if r.op.Evaluate(noState{}, cur) {
				return true
			}
		}
	}
	return false
}

// matchesMultiFrom is multiMatch evaluation of val from the rule's
// transformation from on (val itself is not evaluated).
func (r *prunedRule) matchesMultiFrom(val string, from int) bool {
	for _, t := range r.tr[from:] {
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

// memoEntry says, for one value, which rules it was evaluated for (known)
// and which of those do not match it (nomatch).
type memoEntry struct{ known, nomatch ruleSet }

// memo maps a value to what is known of the rules on it (whatever
// collection it came from: an operator sees only the value). seen holds
// hashes of the values offered once: a collision only admits a value early.
type memo struct {
	mu        sync.RWMutex
	cur, prev map[string]memoEntry
	seen      map[uint64]struct{}
	seed      maphash.Seed
}

func (m *memo) init() {
	m.cur = make(map[string]memoEntry)
	m.prev = make(map[string]memoEntry)
	m.seen = make(map[uint64]struct{})
	m.seed = maphash.MakeSeed()
}

func (m *memo) get(v string) (memoEntry, bool) {
	m.mu.RLock()
	e, ok := m.cur[v]
	if ok {
		m.mu.RUnlock()
		return e, true
	}
	e, ok = m.prev[v]
	m.mu.RUnlock()
	if ok {
		m.put(v, e) // still in use: into the current generation
	}
	return e, ok
}

// put records e for v, merged with what the current generation knows.
func (m *memo) put(v string, e memoEntry) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.cur[v]; ok {
		for i := range e.known {
			e.known[i] |= old.known[i]
			e.nomatch[i] |= old.nomatch[i]
		}
		m.cur[v] = e
		return
	}
	if len(m.cur) >= memoGeneration {
		m.prev, m.cur = m.cur, make(map[string]memoEntry, memoGeneration)
	}
	m.cur[strings.Clone(v)] = e
	delete(m.seen, maphash.String(m.seed, v))
}

// seenBefore reports whether v was offered before, and records it.
func (m *memo) seenBefore(v string) bool {
	k := maphash.String(m.seed, v)
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
	// Unguessable, so that no rule file can name another engine's hook.
	token = "e" + strconv.Itoa(pruneSeq) + "-" + strconv.FormatUint(rand.Uint64(), 36)
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

// pmDictionary returns the words of a @pm or @pmFromFile operator of the
// Core Rule Set, parsed as Coraza v3.8.1 parses them, so that the combined
// scan decides the rule (the operator matches exactly when one of its words
// occurs, ASCII letters folded, as in multiFilter). It returns nil — the
// rule is evaluated by its operator — unless the compiled operator agrees:
// the same number of words, the same shortest length, and each word matched.
func pmDictionary(op plugintypes.Operator, src [2]string) (dict []string) {
	defer func() {
		if recover() != nil {
			dict = nil
		}
	}()
	switch name, arg := src[0], src[1]; name {
	case "pm":
		dict = strings.Split(strings.ToLower(arg), " ")
	case "pmFromFile", "pmf":
		data, err := fs.ReadFile(coreruleset.FS, "@owasp_crs/"+arg)
		if err != nil {
			return nil
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			l := strings.TrimSpace(sc.Text())
			if len(l) == 0 || l[0] == '#' {
				continue
			}
			dict = append(dict, strings.ToLower(l))
		}
	default:
		return nil
	}
	o := reflect.ValueOf(op)
	if o.Kind() != reflect.Pointer || o.Elem().Kind() != reflect.Struct {
		return nil
	}
	minLen := int(open(o.Elem().FieldByName("minLen")).Int())
	count := int(open(o.Elem().FieldByName("matcher")).MethodByName("PatternCount").Call(nil)[0].Int())
	shortest := -1
	for _, w := range dict {
		if shortest < 0 || len(w) < shortest {
			shortest = len(w)
		}
	}
	if len(dict) == 0 || count != len(dict) || shortest != minLen || minLen == 0 {
		return nil
	}
	for _, w := range dict {
		if !op.Evaluate(noState{}, w) {
			return nil
		}
	}
	return dict
}
