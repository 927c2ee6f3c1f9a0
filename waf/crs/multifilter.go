package crs

// A multiFilter is the prefilters of many @rx rules in one Aho-Corasick
// automaton: one scan of a value tells every rule whose literals occur in
// it, which is exactly the set of rules whose own prefilter would let the
// value through (same literals, same ASCII folding). Rule pruning uses it
// when it evaluates a value it does not know: the rules outside that set
// cannot match, and their own scans are saved.
type multiFilter struct {
	class  [256]uint8
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
	for _, r := range rules {
		f.rules.add(r.index)
	}
	for _, r := range rules {
		for _, l := range r.lits {
			for i := 0; i < len(l); i++ {
				if f.class[l[i]] == 0 {
					if f.nclass == 254 {
						return nil
					}
					f.nclass++
					f.class[l[i]] = uint8(f.nclass)
				}
			}
		}
	}
	f.nclass++
	for c := 'A'; c <= 'Z'; c++ {
		f.class[c] = f.class[c+'a'-'A']
	}
	type trieNode struct {
		child map[uint8]uint32
		out   ruleSet
	}
	trie := []trieNode{{child: map[uint8]uint32{}}}
	for _, r := range rules {
		for _, l := range r.lits {
			s := uint32(0)
			for i := 0; i < len(l); i++ {
				c := f.class[l[i]]
				nx, ok := trie[s].child[c]
				if !ok {
					nx = uint32(len(trie))
					trie = append(trie, trieNode{child: map[uint8]uint32{}})
					trie[s].child[c] = nx
				}
				s = nx
			}
			trie[s].out.add(r.index)
			if len(trie) > multiStates {
				return nil
			}
		}
	}
	n := len(trie)
	f.next = make([]uint16, n*f.nclass)
	fail := make([]uint16, n)
	queue := make([]uint32, 0, n)
	for c := 0; c < f.nclass; c++ {
		if nx, ok := trie[0].child[uint8(c)]; ok {
			f.next[c] = uint16(nx)
			queue = append(queue, nx)
		}
	}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		// A state reports its own literals and those of its failure
		// chain (suffixes that are literals too).
		if s != 0 {
			fo := trie[fail[s]].out
			for i := range trie[s].out {
				trie[s].out[i] |= fo[i]
			}
		}
		for c := 0; c < f.nclass; c++ {
			if nx, ok := trie[s].child[uint8(c)]; ok {
				fail[nx] = f.next[int(fail[s])*f.nclass+c]
				f.next[int(s)*f.nclass+c] = uint16(nx)
				queue = append(queue, nx)
			} else {
				f.next[int(s)*f.nclass+c] = f.next[int(fail[s])*f.nclass+c]
			}
		}
	}
	f.out = make([]uint16, n)
	index := map[ruleSet]uint16{{}: 0}
	for s := range trie {
		o := trie[s].out
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
	// A transition into a state where literals end carries outFlag, so
	// that scan reads out only there.
	for i, nx := range f.next {
		if f.out[nx] != 0 {
			f.next[i] = nx | outFlag
		}
	}
	return f
}

// outFlag marks, in next, the states where literals end; a state index
// fits in the other 15 bits (multiStates).
const outFlag = 1 << 15

// scan adds to found the rules one of whose literals occurs in s.
func (f *multiFilter) scan(s string, found *ruleSet) {
	state := 0
	nclass := f.nclass
	last := uint16(0)
	for i := 0; i < len(s); i++ {
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
