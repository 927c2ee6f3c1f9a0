package crs

// A multiFilter is the prefilters of many @rx rules in one Aho-Corasick
// automaton: one scan of a value tells every rule whose literals occur in
// it, which is exactly the set of rules whose own prefilter would let the
// value through (same literals, same ASCII folding). Rule pruning uses it
// when it evaluates a value it does not know: the rules outside that set
// cannot match, and their own scans are saved.
type multiFilter struct {
	class [256]uint8
	// idle says which bytes leave the start state where it is: from
	// there, the scan skips them with one look-up each.
	idle   [256]bool
	nclass int
	next   []uint16 // next[state*nclass+class], | outFlag where literals end
	out    []uint16 // by state: index into sets, 0 = no literal ends here
	sets   []ruleSet
	rules  ruleSet // the rules whose literals it holds
}

// multiStates bounds one automaton; rules whose literals need more go into
// another one.
const multiStates = 1 << 15

// filterRule is one rule's share of a multiFilter.
type filterRule struct {
	index  int // in pruner.rules
	lits   []string
	states int // of its own prefilter: a bound on what it adds to a trie
}

// buildMultiFilters groups rules so that each automaton stays within
// multiStates, and builds them. A rule whose group cannot be built gets no
// bit in any set, so callers must keep the rules they filter separately
// from the others (covered reports which rules have a filter).
func buildMultiFilters(rules []filterRule) (fs []*multiFilter, covered ruleSet) {
	var group []filterRule
	states := 1
	flush := func() {
		if len(group) == 0 {
			return
		}
		if f := buildMultiFilter(group); f != nil {
			fs = append(fs, f)
			for _, r := range group {
				covered.add(r.index)
			}
		}
		group, states = nil, 1
	}
	for _, r := range rules {
		if states+r.states > multiStates {
			flush()
		}
		group = append(group, r)
		states += r.states
	}
	flush()
	return fs, covered
}

func buildMultiFilter(rules []filterRule) *multiFilter {
	f := &multiFilter{sets: []ruleSet{{}}}
	var words []string
	var outs []ruleSet
	for _, r := range rules {
		f.rules.add(r.index)
		for _, l := range r.lits {
			var one ruleSet
			one.add(r.index)
			words, outs = append(words, l), append(outs, one)
		}
	}
	a := buildAC(words, outs, func(into *ruleSet, from ruleSet) {
		for i := range into {
			into[i] |= from[i]
		}
	}, func(s ruleSet) bool { return s != ruleSet{} })
	if a == nil {
		return nil
	}
	f.class, f.nclass, f.next = a.class, a.nclass, a.next
	for b := range f.idle {
		f.idle[b] = f.next[int(f.class[b])] == 0
	}
	// Each distinct set of rules is stored once; out names it by state.
	f.out = make([]uint16, len(a.out))
	index := map[ruleSet]uint16{{}: 0}
	for s, o := range a.out {
		i, ok := index[o]
		if !ok {
			if len(f.sets) == 1<<16-1 {
				return nil
			}
			i = uint16(len(f.sets))
			index[o] = i
			f.sets = append(f.sets, o)
		}
		f.out[s] = i
	}
	return f
}

const outFlag = acEnd

// scan adds to found the rules one of whose literals occurs in s.
func (f *multiFilter) scan(s string, found *ruleSet) {
	state := 0
	nclass := f.nclass
	last := uint16(0)
	for i := 0; i < len(s); i++ {
		if state == 0 {
			for i < len(s) && f.idle[s[i]] {
				i++
			}
			if i == len(s) {
				return
			}
		}
		nx := f.next[state*nclass+int(f.class[s[i]])]
		state = int(nx &^ outFlag)
		if nx&outFlag == 0 {
			continue
		}
		if o := f.out[state]; o != last {
			last = o
			set := &f.sets[o]
			for w := range found {
				found[w] |= set[w]
			}
		}
	}
}
