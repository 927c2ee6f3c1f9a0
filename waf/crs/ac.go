package crs

// acTable is a dense Aho-Corasick automaton over byte classes, the one
// both the @rx prefilter (one pattern's literals) and the pruner's
// combined scan (many rules' literals) run: every byte that occurs in a
// word gets its own column, upper-case ASCII letters share their lower
// case's, all other bytes share column 0.
type acTable[T any] struct {
	class  [256]uint8
	nclass int
	// next[state*nclass+class] is the next state, with acEnd set where
	// the state reached ends a word.
	next []uint16
	out  []T // by state: what ends there, its failure chain's included
}

// acEnd marks a transition into a state where a word ends; states are
// numbered below it.
const acEnd = 1 << 15

// buildAC compiles words (lowered, none empty), the i-th reporting outs[i]
// where it ends. merge adds one output to another (a state reports the
// words that end there and those of its failure chain, its suffixes that
// are words too); ends says whether an output is worth reporting. It
// returns nil when the words have more than 254 distinct bytes or the
// trie more than acEnd states.
func buildAC[T any](words []string, outs []T, merge func(into *T, from T), ends func(T) bool) *acTable[T] {
	a := &acTable[T]{}
	for _, w := range words {
		for i := 0; i < len(w); i++ {
			if a.class[w[i]] == 0 {
				if a.nclass == 254 {
					return nil
				}
				a.nclass++
				a.class[w[i]] = uint8(a.nclass)
			}
		}
	}
	a.nclass++
	for c := 'A'; c <= 'Z'; c++ {
		a.class[c] = a.class[c+'a'-'A']
	}
	// The trie.
	type trieNode struct {
		child map[uint8]uint32
		out   T
	}
	trie := []trieNode{{child: map[uint8]uint32{}}}
	for k, w := range words {
		s := uint32(0)
		for i := 0; i < len(w); i++ {
			c := a.class[w[i]]
			nx, ok := trie[s].child[c]
			if !ok {
				nx = uint32(len(trie))
				trie = append(trie, trieNode{child: map[uint8]uint32{}})
				trie[s].child[c] = nx
			}
			s = nx
		}
		merge(&trie[s].out, outs[k])
		if len(trie) > acEnd {
			return nil
		}
	}
	// Breadth-first: failure links, outputs and the full transition table.
	n := len(trie)
	a.next = make([]uint16, n*a.nclass)
	a.out = make([]T, n)
	fail := make([]uint16, n)
	queue := make([]uint32, 0, n)
	for c := 0; c < a.nclass; c++ {
		if nx, ok := trie[0].child[uint8(c)]; ok {
			a.next[c] = uint16(nx)
			queue = append(queue, nx)
		}
	}
	a.out[0] = trie[0].out
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		a.out[s] = trie[s].out
		merge(&a.out[s], a.out[fail[s]])
		for c := 0; c < a.nclass; c++ {
			if nx, ok := trie[s].child[uint8(c)]; ok {
				fail[nx] = a.next[int(fail[s])*a.nclass+c]
				a.next[int(s)*a.nclass+c] = uint16(nx)
				queue = append(queue, nx)
			} else {
				a.next[int(s)*a.nclass+c] = a.next[int(fail[s])*a.nclass+c]
			}
		}
	}
	for i, nx := range a.next {
		if ends(a.out[nx]) {
			a.next[i] = nx | acEnd
		}
	}
	return a
}
