package schema

import (
	"strconv"
)

// Reduce appends to dst a JSON object holding only the free-text strings of
// body: strings at places the schema does not pin down (see pinsString and
// safePattern for what pins a string). Each is keyed by its JSON pointer in
// body, so a rule engine's match names the field ("json./note"), and each
// value is copied byte for byte, escapes included, so the engine decodes
// exactly the string the upstream will. Numbers, booleans, nulls and pinned
// strings are left out; a body without free text reduces to {}.
//
// Reduce is meant for bodies that passed Check and does not validate them
// again. Given a body it cannot scan, it appends the whole body instead, so
// a misuse costs inspection time, never inspection.
func (s *Schema) Reduce(dst, body []byte) []byte {
	start := len(dst)
	var ptr [256]byte
	r := reducer{b: body, dst: append(dst, '{'), ptr: ptr[:0]}
	r.value(s.root, 0)
	if r.bad {
		return append(dst[:start], body...)
	}
	if r.i = skipWS(body, r.i); r.i != len(body) {
		return append(dst[:start], body...)
	}
	return append(r.dst, '}')
}

type reducer struct {
	b   []byte
	i   int
	dst []byte
	ptr []byte // pointer of the current value, JSON-string escaped
	n   int    // strings written
	bad bool
}

func (r *reducer) value(n *node, depth int) {
	r.i = skipWS(r.b, r.i)
	if r.i >= len(r.b) || depth > maxDepth {
		r.bad = true
		return
	}
	switch c := r.b[r.i]; c {
	case '{':
		r.object(n, depth)
	case '[':
		r.array(n, depth)
	case '"':
		end, _, err := scanString(r.b, r.i)
		if err != nil {
			r.bad = true
			return
		}
		if !n.pinned {
			if r.n > 0 {
				r.dst = append(r.dst, ',')
			}
			r.n++
			r.dst = append(r.dst, '"')
			r.dst = append(r.dst, r.ptr...)
			r.dst = append(r.dst, '"', ':')
			r.dst = append(r.dst, r.b[r.i:end]...)
		}
		r.i = end
	default:
		end := skipValue(r.b, r.i)
		if end == len(r.b) && !scalarEndsAt(r.b, r.i) {
			r.bad = true
			return
		}
		r.i = end
	}
}

// scalarEndsAt reports whether the scalar at b[i] runs exactly to the end
// of b (skipValue returns len(b) for errors too).
func scalarEndsAt(b []byte, i int) bool {
	var err *syntaxError
	var end int
	switch b[i] {
	case 't':
		end, err = scanLiteral(b, i, "true")
	case 'f':
		end, err = scanLiteral(b, i, "false")
	case 'n':
		end, err = scanLiteral(b, i, "null")
	default:
		end, err = scanNumber(b, i)
	}
	return err == nil && end == len(b)
}

func (r *reducer) object(n *node, depth int) {
	r.i = skipWS(r.b, r.i+1)
	mark := len(r.ptr)
	for first := true; ; first = false {
		if r.i >= len(r.b) {
			r.bad = true
			return
		}
		if r.b[r.i] == '}' {
			r.i++
			return
		}
		if !first {
			if r.b[r.i] != ',' {
				r.bad = true
				return
			}
			r.i = skipWS(r.b, r.i+1)
			if r.i >= len(r.b) {
				r.bad = true
				return
			}
		}
		if r.b[r.i] != '"' {
			r.bad = true
			return
		}
		end, esc, err := scanString(r.b, r.i)
		if err != nil {
			r.bad = true
			return
		}
		raw := r.b[r.i+1 : end-1]
		var child *node
		r.ptr = append(r.ptr, '/')
		if esc {
			key := unquote(raw)
			child = n.member(key)
			r.ptr = appendEscapedToken(r.ptr, key)
		} else {
			child = n.memberRaw(raw)
			r.ptr = appendPointerRaw(r.ptr, raw)
		}
		r.i = skipWS(r.b, end)
		if r.i >= len(r.b) || r.b[r.i] != ':' {
			r.bad = true
			return
		}
		r.i++
		r.value(child, depth+1)
		if r.bad {
			return
		}
		r.ptr = r.ptr[:mark]
		r.i = skipWS(r.b, r.i)
	}
}

func (r *reducer) array(n *node, depth int) {
	r.i = skipWS(r.b, r.i+1)
	mark := len(r.ptr)
	for k := 0; ; k++ {
		if r.i >= len(r.b) {
			r.bad = true
			return
		}
		if r.b[r.i] == ']' {
			r.i++
			return
		}
		if k > 0 {
			if r.b[r.i] != ',' {
				r.bad = true
				return
			}
			r.i++
		}
		r.ptr = strconv.AppendInt(append(r.ptr, '/'), int64(k), 10)
		r.value(n.item(k), depth+1)
		if r.bad {
			return
		}
		r.ptr = r.ptr[:mark]
		r.i = skipWS(r.b, r.i)
	}
}

// appendPointerRaw appends a key's raw string content (no escapes, so
// already valid inside a JSON string) as a pointer token.
func appendPointerRaw(b, raw []byte) []byte {
	for _, c := range raw {
		switch c {
		case '~':
			b = append(b, '~', '0')
		case '/':
			b = append(b, '~', '1')
		default:
			b = append(b, c)
		}
	}
	return b
}

// appendEscapedToken appends a decoded key as a pointer token, escaped for
// the inside of a JSON string.
func appendEscapedToken(b []byte, key string) []byte {
	const hex = "0123456789abcdef"
	for i := 0; i < len(key); i++ {
		switch c := key[i]; {
		case c == '~':
			b = append(b, '~', '0')
		case c == '/':
			b = append(b, '~', '1')
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return b
}
