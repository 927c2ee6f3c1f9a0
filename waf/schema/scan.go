package schema

import (
	"encoding/json"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// maxDepth bounds the nesting of arrays and objects in a body. A bet is two
// levels deep; 64 leaves room for any honest document and keeps the
// recursive scanner's stack small whatever a client sends.
const maxDepth = 64

// syntaxError is a malformed body: where (byte offset) and what.
type syntaxError struct {
	off int
	msg string
}

// The scanner's primitives work on a byte slice and an offset, so the
// decoder (Check) and the reducer (Reduce) share one grammar.

func skipWS(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// scanString checks the string starting at b[i] == '"' and returns the
// offset just past its closing quote and whether it holds escapes. It
// rejects control characters, bad escapes and invalid UTF-8.
func scanString(b []byte, i int) (end int, escaped bool, err *syntaxError) {
	i++ // opening quote
	for i < len(b) {
		// Plain ASCII runs are most of any string.
		for i < len(b) && plain[b[i]] {
			i++
		}
		if i >= len(b) {
			break
		}
		c := b[i]
		switch {
		case c == '"':
			return i + 1, escaped, nil
		case c == '\\':
			escaped = true
			if i+1 >= len(b) {
				return i, escaped, &syntaxError{i, "unexpected end of input in string"}
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) {
					return i, escaped, &syntaxError{i, "unexpected end of input in \\u escape"}
				}
				for _, h := range b[i+2 : i+6] {
					if hexVal(h) < 0 {
						return i, escaped, &syntaxError{i, "invalid \\u escape"}
					}
				}
				i += 6
			default:
				return i, escaped, &syntaxError{i, "invalid escape \\" + printable(b[i+1])}
			}
		case c < 0x20:
			return i, escaped, &syntaxError{i, "control character in string"}
		case c < utf8.RuneSelf:
			i++
		default:
			r, n := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && n == 1 {
				return i, escaped, &syntaxError{i, "invalid UTF-8 in string"}
			}
			i += n
		}
	}
	return i, escaped, &syntaxError{i, "unexpected end of input in string"}
}

// plain marks the bytes a string may hold without further thought.
var plain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func printable(c byte) string {
	if c >= 0x20 && c < 0x7f {
		return string(rune(c))
	}
	return "\\x" + strconv.FormatUint(uint64(c), 16)
}

func hexVal(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// unquote decodes the content of a string already checked by scanString
// (raw excludes the quotes). A lone surrogate becomes U+FFFD, as in
// encoding/json.
func unquote(raw []byte) string {
	out := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			out = append(out, c)
			i++
			continue
		}
		switch raw[i+1] {
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r := hex4(raw[i+2:])
			i += 6
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if i+6 <= len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
					r2 = hex4(raw[i+2:])
				}
				if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
					r = dec
					i += 6
				} else {
					r = utf8.RuneError
				}
			}
			out = utf8.AppendRune(out, r)
			continue
		default: // '"', '\\', '/'
			out = append(out, raw[i+1])
		}
		i += 2
	}
	return string(out)
}

func hex4(b []byte) rune {
	return rune(hexVal(b[0])<<12 | hexVal(b[1])<<8 | hexVal(b[2])<<4 | hexVal(b[3]))
}

// scanNumber checks the JSON number at b[i] and returns its end.
func scanNumber(b []byte, i int) (int, *syntaxError) {
	start := i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = digits(b, i)
	default:
		return i, &syntaxError{start, "invalid number"}
	}
	if i < len(b) && b[i] == '.' {
		j := digits(b, i+1)
		if j == i+1 {
			return j, &syntaxError{start, "invalid number"}
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(b, i)
		if j == i {
			return j, &syntaxError{start, "invalid number"}
		}
		i = j
	}
	return i, nil
}

func digits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

func scanLiteral(b []byte, i int, lit string) (int, *syntaxError) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return i, &syntaxError{i, "invalid literal"}
	}
	return i + len(lit), nil
}

// pathTok is one step of the path to the value being decoded, kept so a
// syntax error can name where in the document it happened.
type pathTok struct {
	key   string
	index int // -1 for an object member
}

// decoder builds the generic value jsonschema validates (map[string]any,
// []any, string, json.Number, bool, nil) in one pass, rejecting what
// encoding/json would let through silently: duplicate keys (a second parser
// upstream might take the first one, which the schema never saw), invalid
// UTF-8, and nesting deeper than maxDepth.
type decoder struct {
	b    []byte
	i    int
	path []pathTok
	err  *syntaxError
}

func (d *decoder) fail(off int, msg string) {
	if d.err == nil {
		d.err = &syntaxError{off, msg}
	}
}

func (d *decoder) decode() any {
	v := d.value()
	if d.err != nil {
		return nil
	}
	if d.i = skipWS(d.b, d.i); d.i != len(d.b) {
		d.fail(d.i, "data after the JSON value")
		return nil
	}
	return v
}

func (d *decoder) value() any {
	d.i = skipWS(d.b, d.i)
	if d.i >= len(d.b) {
		d.fail(d.i, "unexpected end of input")
		return nil
	}
	switch c := d.b[d.i]; {
	case c == '{':
		return d.object()
	case c == '[':
		return d.array()
	case c == '"':
		return d.str()
	case c == 't':
		return d.literal("true", true)
	case c == 'f':
		return d.literal("false", false)
	case c == 'n':
		return d.literal("null", nil)
	case c == '-' || c >= '0' && c <= '9':
		end, err := scanNumber(d.b, d.i)
		if err != nil {
			d.err = err
			return nil
		}
		n := json.Number(d.b[d.i:end])
		d.i = end
		return n
	default:
		d.fail(d.i, "unexpected character '"+printable(c)+"'")
		return nil
	}
}

func (d *decoder) literal(lit string, v any) any {
	end, err := scanLiteral(d.b, d.i, lit)
	if err != nil {
		d.err = err
		return nil
	}
	d.i = end
	return v
}

func (d *decoder) str() any {
	s, ok := d.strValue()
	if !ok {
		return nil
	}
	return s
}

func (d *decoder) strValue() (string, bool) {
	end, esc, err := scanString(d.b, d.i)
	if err != nil {
		d.err = err
		return "", false
	}
	raw := d.b[d.i+1 : end-1]
	d.i = end
	if esc {
		return unquote(raw), true
	}
	return string(raw), true
}

// open steps into the object or array at d.i, closed by end; ok is false
// when it is nested too deep, empty true when it closes at once.
func (d *decoder) open(end byte) (empty, ok bool) {
	if len(d.path) >= maxDepth {
		d.fail(d.i, "nested deeper than "+strconv.Itoa(maxDepth)+" levels")
		return false, false
	}
	d.i++ // '{' or '['
	d.i = skipWS(d.b, d.i)
	if d.i < len(d.b) && d.b[d.i] == end {
		d.i++
		return true, true
	}
	return false, true
}

// next reads what follows a member of the container (in, closed by end):
// a ',' before another member, or end, when done is true; anything else
// fails and ok is false.
func (d *decoder) next(end byte, in string) (done, ok bool) {
	d.i = skipWS(d.b, d.i)
	if d.i >= len(d.b) {
		d.fail(d.i, "unexpected end of input in "+in)
		return false, false
	}
	switch d.b[d.i] {
	case ',':
		d.i++
		return false, true
	case end:
		d.i++
		return true, true
	}
	d.fail(d.i, "want ',' or '"+string(end)+"' in "+in+", got '"+printable(d.b[d.i])+"'")
	return false, false
}

func (d *decoder) object() any {
	empty, ok := d.open('}')
	if !ok {
		return nil
	}
	obj := make(map[string]any)
	if empty {
		return obj
	}
	for {
		d.i = skipWS(d.b, d.i)
		if d.i >= len(d.b) {
			d.fail(d.i, "unexpected end of input in object")
			return nil
		}
		if d.b[d.i] != '"' {
			d.fail(d.i, "want a string key, got '"+printable(d.b[d.i])+"'")
			return nil
		}
		keyOff := d.i
		key, ok := d.strValue()
		if !ok {
			return nil
		}
		if _, dup := obj[key]; dup {
			d.path = append(d.path, pathTok{key, -1})
			d.fail(keyOff, "duplicate key")
			return nil
		}
		d.i = skipWS(d.b, d.i)
		if d.i >= len(d.b) || d.b[d.i] != ':' {
			d.fail(d.i, "want ':' after key")
			return nil
		}
		d.i++
		d.path = append(d.path, pathTok{key, -1})
		v := d.value()
		if d.err != nil {
			return nil
		}
		d.path = d.path[:len(d.path)-1]
		obj[key] = v
		if done, ok := d.next('}', "object"); !ok {
			return nil
		} else if done {
			return obj
		}
	}
}

func (d *decoder) array() any {
	empty, ok := d.open(']')
	if !ok {
		return nil
	}
	arr := []any{}
	if empty {
		return arr
	}
	for n := 0; ; n++ {
		d.path = append(d.path, pathTok{index: n})
		v := d.value()
		if d.err != nil {
			return nil
		}
		d.path = d.path[:len(d.path)-1]
		arr = append(arr, v)
		if done, ok := d.next(']', "array"); !ok {
			return nil
		} else if done {
			return arr
		}
	}
}

// pointer renders the decoder's path as an RFC 6901 JSON pointer.
func (d *decoder) pointer() string {
	var b []byte
	for _, t := range d.path {
		b = append(b, '/')
		if t.index >= 0 {
			b = strconv.AppendInt(b, int64(t.index), 10)
		} else {
			b = appendPointerToken(b, t.key)
		}
	}
	return string(b)
}

// appendPointerToken escapes one reference token (RFC 6901: ~ → ~0,
// / → ~1).
func appendPointerToken(b []byte, tok string) []byte {
	for i := 0; i < len(tok); i++ {
		switch tok[i] {
		case '~':
			b = append(b, '~', '0')
		case '/':
			b = append(b, '~', '1')
		default:
			b = append(b, tok[i])
		}
	}
	return b
}
