package jsonbody

// validate reports whether s is one JSON value between optional whitespace,
// by gjson.Valid's grammar (RFC 8259, with any byte from 0x20 up allowed in
// strings, UTF-8 or not), without recursion. deep is set instead when a
// container opens more than limit levels deep before anything invalid: a
// scan that counts brackets outside strings, as Coraza's nesting check
// does, then finds the same depth at the same byte.
func validate(s string, limit int) (valid, deep bool) {
	// One bit per open container, set for an object.
	var small [4]uint64
	open := small[:]
	depth := 0
	i := SkipSpace(s, 0)
	for {
		// A value starts at s[i].
		if i >= len(s) {
			return false, false
		}
		switch c := s[i]; {
		case c == '{' || c == '[':
			depth++
			if depth > limit {
				return false, true
			}
			if depth > len(open)*64 {
				open = append(open, 0)
			}
			word, bit := (depth-1)/64, uint64(1)<<((depth-1)%64)
			open[word] &^= bit
			i = SkipSpace(s, i+1)
			if c == '{' {
				open[word] |= bit
				if i < len(s) && s[i] == '}' {
					depth--
					i++
					break
				}
				if i = key(s, i); i < 0 {
					return false, false
				}
				continue
			}
			if i < len(s) && s[i] == ']' {
				depth--
				i++
				break
			}
			continue
		case c == '"':
			if i = StringAfter(s, i); i < 0 {
				return false, false
			}
		case c == '-' || '0' <= c && c <= '9' || c == 't' || c == 'f' || c == 'n':
			if i = ScalarAfter(s, i); i < 0 {
				return false, false
			}
		default:
			return false, false
		}
		// A value ended before s[i]: close what it ends, then expect the
		// next element.
		for {
			i = SkipSpace(s, i)
			if depth == 0 {
				return i == len(s), false
			}
			if i >= len(s) {
				return false, false
			}
			object := open[(depth-1)/64]&(1<<((depth-1)%64)) != 0
			switch s[i] {
			case ',':
				i = SkipSpace(s, i+1)
				if object {
					if i = key(s, i); i < 0 {
						return false, false
					}
				}
			case '}':
				if !object {
					return false, false
				}
				depth--
				i++
				continue
			case ']':
				if object {
					return false, false
				}
				depth--
				i++
				continue
			default:
				return false, false
			}
			break
		}
	}
}

// text is what the scanners read: a body as a string or as bytes.
type text interface{ ~string | ~[]byte }

// key reads an object's `"name" :` and the whitespace after it, returning
// where the value starts, or -1.
func key[T text](s T, i int) int {
	if i >= len(s) || s[i] != '"' {
		return -1
	}
	if i = StringAfter(s, i); i < 0 {
		return -1
	}
	if i = SkipSpace(s, i); i >= len(s) || s[i] != ':' {
		return -1
	}
	return SkipSpace(s, i+1)
}

// StringAfter returns the index after the string token at s[i] (a '"'), or
// -1 when it is not one by gjson.Valid's grammar: a control byte, a bad
// escape or no end.
func StringAfter[T text](s T, i int) int {
	for i++; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			return i + 1
		case c < ' ':
			return -1
		case c == '\\':
			i++
			if i >= len(s) {
				return -1
			}
			switch s[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) || !isHex(s[i+3]) || !isHex(s[i+4]) {
					return -1
				}
				i += 4
			default:
				return -1
			}
		}
	}
	return -1
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// ScalarAfter returns the index after the number, true, false or null at
// s[i], or -1 when none starts there. What follows is not looked at.
func ScalarAfter[T text](s T, i int) int {
	switch s[i] {
	case 't':
		return literalAfter(s, i, "true")
	case 'f':
		return literalAfter(s, i, "false")
	case 'n':
		return literalAfter(s, i, "null")
	}
	return numberAfter(s, i)
}

// numberAfter returns the index after the number at s[i], or -1.
func numberAfter[T text](s T, i int) int {
	digits := func(i int) int {
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
		return i
	}
	if s[i] == '-' {
		i++
	}
	switch {
	case i >= len(s) || s[i] < '0' || s[i] > '9':
		return -1
	case s[i] == '0':
		i++
	default:
		i = digits(i)
	}
	if i < len(s) && s[i] == '.' {
		if i+1 >= len(s) || s[i+1] < '0' || s[i+1] > '9' {
			return -1
		}
		i = digits(i + 1)
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if i >= len(s) || s[i] < '0' || s[i] > '9' {
			return -1
		}
		i = digits(i)
	}
	return i
}

func literalAfter[T text](s T, i int, lit string) int {
	if len(s)-i >= len(lit) && string(s[i:i+len(lit)]) == lit {
		return i + len(lit)
	}
	return -1
}

// SkipSpace returns the index of the first byte at or after i that is not
// JSON whitespace, or len(s): eight bytes at a time, so that a body padded to
// its limit costs little. '\t' and '\r' differ only in bit 2, so three
// comparisons per word tell the four.
func SkipSpace[T text](s T, i int) int {
	const ones, lows, highs = 0x0101010101010101, 0x7f7f7f7f7f7f7f7f, 0x8080808080808080
	zero := func(x uint64) uint64 { return ^(((x & lows) + lows) | x | lows) } // 0x80 in each zero byte
	for ; i+8 <= len(s); i += 8 {
		x := load64(s, i)
		if zero(x^(ones*' '))|zero((x&^(ones*4))^(ones*'\t'))|zero(x^(ones*'\n')) != highs {
			break
		}
	}
	for ; i < len(s); i++ {
		if c := s[i]; c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return i
		}
	}
	return i
}

// load64 is s[i:i+8] as a little-endian word (the compiler makes it one load).
func load64[T text](s T, i int) uint64 {
	s = s[i : i+8]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// nestingExceeds is Coraza's nesting check for a document that is not
// valid JSON: brackets counted outside what its quotes delimit.
func nestingExceeds(s string, limit int) bool {
	depth, inString, escaped := 0, false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			if depth++; depth > limit {
				return true
			}
		case '}', ']':
			depth--
		}
	}
	return false
}
