package jsonbody

import (
	"strconv"

	"github.com/tidwall/gjson"
)

// flattener adds a document's leaves as json.<path> arguments. Its rules are
// Coraza's: at most argLimit leaves and, apart, at most argLimit array
// lengths (either limit sets truncated); a container nested deeper than the
// depth limit, or a flattened form over budget bytes, is an error that ends
// the walk. After a leaf limit is met the walk only notices it when one more
// argument or container would follow, so a document with exactly argLimit
// leaves is not truncated.
type flattener struct {
	s        string
	key      []byte // the path of what is being read: json.a.0.b
	add      func(name, value string)
	argLimit int
	budget   int

	used, leaves, lengths int
	truncated, stop       bool
	err                   error
}

// full reports whether the leaf limit has been met; from then on nothing
// more is added anywhere, and no container records its length.
func (f *flattener) full() bool {
	if f.argLimit > 0 && f.leaves >= f.argLimit {
		f.truncated, f.stop = true, true
		return true
	}
	return false
}

// enter is the check at the start of each container: room is how many more
// levels the depth limit allows, counting this one.
func (f *flattener) enter(room int) bool {
	if f.full() {
		return false
	}
	if room <= 0 {
		f.err, f.stop = errRecursion, true
		return false
	}
	return true
}

func (f *flattener) leaf(value string) {
	if f.used+len(f.key)+len(value) > f.budget {
		f.err, f.stop = budgetError(f.budget, len(f.s)), true
		return
	}
	f.add(string(f.key), value)
	f.used += len(f.key) + len(value)
	f.leaves++
}

// length records that the array named f.key had n elements; it reports
// false when the array-length limit is met instead.
func (f *flattener) length(n int) bool {
	if f.argLimit > 0 && f.lengths >= f.argLimit {
		return false
	}
	var digits [20]byte
	v := strconv.AppendInt(digits[:0], int64(n), 10)
	if f.used+len(f.key)+len(v) > f.budget {
		f.err, f.stop = budgetError(f.budget, len(f.s)), true
		return true
	}
	f.add(string(f.key), string(v))
	f.used += len(f.key) + len(v)
	f.lengths++
	return true
}

// walk flattens a document validate accepted, or one valid up to its first
// container nested too deep.
func (f *flattener) walk(room int) {
	i := SkipSpace(f.s, 0)
	if c := f.s[i]; c == '{' || c == '[' {
		if _, truncated := f.container(i, room); truncated {
			f.truncated = true
		}
		return
	}
	// A document that is one scalar reads as an array of it.
	if !f.enter(room) || f.full() {
		return
	}
	f.key = append(f.key, ".0"...)
	_, v := f.scalar(i)
	f.leaf(v)
	f.key = f.key[:len("json")]
	if !f.stop && !f.length(1) {
		f.truncated = true
	}
}

// container walks the object or array at s[i]; it returns the index after
// it and whether a limit truncated what it holds.
func (f *flattener) container(i, room int) (end int, truncated bool) {
	if !f.enter(room) {
		return 0, false
	}
	object := f.s[i] == '{'
	n := 0
	for i++; ; {
		i = SkipSpace(f.s, i)
		switch f.s[i] {
		case '}', ']':
			if n > 0 && !truncated && !f.length(n) {
				truncated = true
			}
			return i + 1, truncated
		case ',':
			i = SkipSpace(f.s, i+1)
		}
		if f.full() {
			return 0, false
		}
		parent := len(f.key)
		f.key = append(f.key, '.')
		if object {
			end := stringEnd(f.s, i)
			f.key = append(f.key, unquote(f.s[i:end])...)
			i = SkipSpace(f.s, end) // ':'
			i = SkipSpace(f.s, i+1)
		} else {
			f.key = strconv.AppendInt(f.key, int64(n), 10)
			n++
		}
		if c := f.s[i]; c == '{' || c == '[' {
			var t bool
			i, t = f.container(i, room-1)
			truncated = truncated || t
		} else {
			var v string
			i, v = f.scalar(i)
			f.leaf(v)
		}
		if f.stop {
			return 0, false
		}
		f.key = f.key[:parent]
	}
}

// scalar reads the string, number or literal at s[i] of a valid document:
// the index after it and its value as Coraza gives it.
func (f *flattener) scalar(i int) (int, string) {
	switch f.s[i] {
	case '"':
		end := stringEnd(f.s, i)
		return end, unquote(f.s[i:end])
	case 'n':
		return i + len("null"), ""
	}
	end := i + 1
	for end < len(f.s) && !isDelim(f.s[end]) {
		end++
	}
	return end, f.s[i:end]
}

// unquote is a valid JSON string token's text, unescaped as gjson does.
func unquote(tok string) string {
	for j := 1; j < len(tok)-1; j++ {
		if tok[j] == '\\' {
			return gjson.Parse(tok).Str
		}
	}
	return tok[1 : len(tok)-1]
}

// stringEnd is the index after the string token of a valid document that
// starts at s[i].
func stringEnd(s string, i int) int {
	for j := i + 1; ; j++ {
		switch s[j] {
		case '"':
			return j + 1
		case '\\':
			j++
		}
	}
}

func isDelim(c byte) bool {
	return c == ',' || c == '}' || c == ']' || c == ' ' || c == '\t' || c == '\n' || c == '\r'
}

// walkLenient flattens a document that is not valid JSON the way Coraza
// does, with gjson's lenient reading, so that the arguments it finds are the
// same.
func (f *flattener) walkLenient(room int) {
	if f.lenient(gjson.Parse(f.s), room) {
		f.truncated = true
	}
}

func (f *flattener) lenient(doc gjson.Result, room int) (truncated bool) {
	if !f.enter(room) {
		return false
	}
	n := 0
	doc.ForEach(func(k, v gjson.Result) bool {
		if f.full() {
			return false
		}
		parent := len(f.key)
		f.key = append(f.key, '.')
		if k.Type == gjson.String {
			f.key = append(f.key, k.Str...)
		} else {
			f.key = strconv.AppendInt(f.key, int64(k.Num), 10)
			n++
		}
		switch v.Type {
		case gjson.JSON:
			truncated = f.lenient(v, room-1) || truncated
		case gjson.String:
			f.leaf(v.Str)
		case gjson.Null:
			f.leaf("")
		default:
			f.leaf(v.Raw)
		}
		f.key = f.key[:parent]
		return !f.stop
	})
	if f.stop {
		return false
	}
	if n > 0 && !truncated && !f.length(n) {
		truncated = true
	}
	return truncated
}
