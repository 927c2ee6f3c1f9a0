package ratelimit

// table is one shard's key -> tat store: open addressing with linear
// probing over a flat slice of 24-byte entries, at most 3/4 full, with
// backward-shift deletion (no tombstones). Compared with a Go map it takes
// one dependent memory access per lookup instead of three (directory,
// table, group), finds and updates an entry with one probe, and shrinks.
// Not safe for concurrent use: the shard's mutex guards it.
type table struct {
	e    []entry // len is a power of two, or 0
	n    int
	mask uint64
}

// entry is one key's bucket. h1 == 0 marks an empty slot; digests always
// have h1's low bit set. h0 places the entry (its low bits; the shard was
// chosen by its top bits).
type entry struct {
	h0, h1 uint64
	tat    int64
}

const minTable = 16

// find returns the slot holding (h0, h1), or the empty slot where it would
// be inserted, and whether it was found.
func (t *table) find(h0, h1 uint64) (int, bool) {
	if len(t.e) == 0 {
		return -1, false
	}
	for i := h0 & t.mask; ; i = (i + 1) & t.mask {
		e := &t.e[i]
		if e.h1 == h1 && e.h0 == h0 {
			return int(i), true
		}
		if e.h1 == 0 {
			return int(i), false
		}
	}
}

// insert adds (h0, h1) with tat, growing the table if needed. The key must
// not be present.
func (t *table) insert(h0, h1 uint64, tat int64) int {
	if (t.n+1)*4 > len(t.e)*3 {
		t.resize(max(len(t.e)*2, minTable))
	}
	i, _ := t.find(h0, h1)
	t.e[i] = entry{h0, h1, tat}
	t.n++
	return i
}

// remove empties slot i and shifts later members of its probe run back so
// that every entry stays reachable from its home slot.
func (t *table) remove(i int) {
	hole := uint64(i)
	for j := (hole + 1) & t.mask; t.e[j].h1 != 0; j = (j + 1) & t.mask {
		home := t.e[j].h0 & t.mask
		// Move e[j] into the hole unless its home lies cyclically in
		// (hole, j]: then the hole is before its home and it must stay.
		if (j-home)&t.mask >= (j-hole)&t.mask {
			t.e[hole] = t.e[j]
			hole = j
		}
	}
	t.e[hole] = entry{}
	t.n--
}

func (t *table) resize(size int) {
	old := t.e
	t.e = make([]entry, size)
	t.mask = uint64(size - 1)
	t.n = 0
	for _, e := range old {
		if e.h1 != 0 {
			i, _ := t.find(e.h0, e.h1)
			t.e[i] = e
			t.n++
		}
	}
}

// sweepRange removes the entries of slots [from, to) with tat < cutoff and
// returns how many. An entry only ever moves backwards into a hole, so
// looking at slot i again after a removal skips none (at most 3/4 full, a
// run never wraps onto itself). Entries moved by other operations between
// two ranges may be missed until the next sweep, which is harmless.
func (t *table) sweepRange(cutoff int64, from, to int) int {
	removed := 0
	for i := from; i < to; {
		if e := &t.e[i]; e.h1 != 0 && e.tat < cutoff {
			t.remove(i) // may shift a later entry into slot i
			removed++
			continue
		}
		i++
	}
	return removed
}

// shrink halves the table as often as it stays at most 1/8 full, keeping
// room to double before the next grow; an empty table frees its slice.
func (t *table) shrink() {
	if t.n == 0 {
		t.e, t.mask = nil, 0
		return
	}
	if len(t.e) > minTable && t.n*8 < len(t.e) {
		size := minTable
		for size*3 < t.n*8 {
			size *= 2
		}
		t.resize(size)
	}
}

// sampleSize is how many entries evictIdlest compares: the most idle of 8
// is, with probability 1-(1-q)^8, among the idlest fraction q of all keys.
const sampleSize = 8

// evictIdlest removes the entry with the oldest tat among the first
// sampleSize entries from slot start on. start comes from a new key's
// secret-seeded hash, so the sample's position is random.
func (t *table) evictIdlest(start uint64) {
	victim, seen := -1, 0
	for k := uint64(0); k <= t.mask && seen < sampleSize; k++ {
		i := (start + k) & t.mask
		if t.e[i].h1 == 0 {
			continue
		}
		if victim < 0 || t.e[i].tat < t.e[victim].tat {
			victim = int(i)
		}
		seen++
	}
	if victim >= 0 {
		t.remove(victim)
	}
}
