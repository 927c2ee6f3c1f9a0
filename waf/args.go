package waf

import (
	"bytes"
	"strconv"

	"hedge/configs"
	"hedge/internal/httpx"
	"hedge/internal/problem"
	"hedge/waf/crs/jsonbody"
)

// Argument limits bound what the Core Rule Set reads as arguments — the
// values most of its rules run through dozens of transformations and
// regular expressions each — before it runs: query parameters, cookies,
// and the fields of the body it parses (urlencoded and multipart fields,
// JSON leaves and arrays, XML attributes and text). The engine's cost grows
// with their number (about 0.2 ms of CPU per argument at paranoia level 1,
// faster than linearly) and, much less, with their length; one request of a
// few hundred parameters used to cost it 100 ms and more. Counting them is
// one pass over bytes already in memory, with no allocation.
//
// Arguments are counted the way the rule engine (Coraza, with the CRS's
// body-processor rules) will parse them, so the limits bound exactly its
// work: the body is read as JSON for application/json and +json types, as
// XML for application/xml, application/soap+xml and text/xml, as multipart
// for multipart/form-data, and as urlencoded for everything else (CRS rule
// 901340 forces that). Lengths are counted as sent (percent- or
// backslash-escaped); a JSON leaf's name is its path as the engine names it
// (json.side_bets.0.amount).

// argLimits are a guard's effective argument limits.
type argLimits struct {
	maxArgs, maxName, maxValue, maxTotal, maxDepth int
	// The refusals, made once when the guard is built.
	refusals [argBreaks]argRefusal
}

type argBreak uint8

const (
	argsOK argBreak = iota
	tooManyArgs
	argNameTooLong
	argValueTooLong
	argsTooLarge
	jsonTooDeep
	argBreaks
)

type argRefusal struct {
	rule   string // the limits field, for metrics and the audit log
	t      problem.Type
	detail string
}

// newArgLimits takes the route's limits, else the listener's, else (for a
// listener not defaulted by configs) the defaults.
func newArgLimits(route configs.RouteLimits, listener configs.Limits) argLimits {
	pick := func(r, l, def int64) int {
		switch {
		case r > 0:
			return int(r)
		case l > 0:
			return int(l)
		}
		return int(def)
	}
	l := argLimits{
		maxArgs:  pick(int64(route.MaxArgs), int64(listener.MaxArgs), configs.DefaultMaxArgs),
		maxName:  pick(int64(route.MaxArgNameBytes), int64(listener.MaxArgNameBytes), configs.DefaultMaxArgNameBytes),
		maxValue: pick(int64(route.MaxArgValueBytes), int64(listener.MaxArgValueBytes), configs.DefaultMaxArgValueBytes),
		maxTotal: pick(int64(route.MaxArgsBytes), int64(listener.MaxArgsBytes), configs.DefaultMaxArgsBytes),
		maxDepth: pick(int64(route.MaxJSONDepth), int64(listener.MaxJSONDepth), configs.DefaultMaxJSONDepth),
	}
	l.refusals = [argBreaks]argRefusal{
		tooManyArgs:     {"max_args", problem.TooManyArgs, "the query, cookies and body carry more than " + strconv.Itoa(l.maxArgs) + " arguments"},
		argNameTooLong:  {"max_arg_name_bytes", problem.ArgNameTooLong, "an argument name is longer than " + strconv.Itoa(l.maxName) + " bytes"},
		argValueTooLong: {"max_arg_value_bytes", problem.ArgValueTooLong, "an argument value is longer than " + strconv.Itoa(l.maxValue) + " bytes"},
		argsTooLarge:    {"max_args_bytes", problem.ArgsTooLarge, "the arguments' names and values exceed " + strconv.Itoa(l.maxTotal) + " bytes"},
		jsonTooDeep:     {"max_json_depth", problem.JSONTooDeep, "the JSON body nests deeper than " + strconv.Itoa(l.maxDepth) + " levels"},
	}
	return l
}

// argTally counts one request's arguments against the limits. The zero
// value with l set is ready.
type argTally struct {
	l            *argLimits
	args, total  int
	broken       argBreak
	malformedDoc bool // a JSON body did not parse; counting stopped there
}

// add counts one argument; false once a limit is broken.
func (t *argTally) add(name, value int) bool {
	t.args++
	t.total += name + value
	switch {
	case t.args > t.l.maxArgs:
		t.broken = tooManyArgs
	case name > t.l.maxName:
		t.broken = argNameTooLong
	case value > t.l.maxValue:
		t.broken = argValueTooLong
	case t.total > t.l.maxTotal:
		t.broken = argsTooLarge
	default:
		return true
	}
	return false
}

// query counts the arguments of a request target's query string ('&'
// separated; empty pairs skipped, as the engine does).
func (t *argTally) query(uri []byte) bool {
	i := bytes.IndexByte(uri, '?')
	if i < 0 {
		return true
	}
	q := uri[i+1:]
	if j := bytes.IndexByte(q, '#'); j >= 0 {
		q = q[:j]
	}
	return t.urlencoded(q)
}

// urlencoded counts name=value pairs separated by '&'.
func (t *argTally) urlencoded(b []byte) bool {
	for len(b) > 0 {
		var pair []byte
		pair, b = httpx.CutByte(b, '&')
		if len(pair) == 0 {
			continue
		}
		name, value := len(pair), 0
		if i := bytes.IndexByte(pair, '='); i >= 0 {
			name, value = i, len(pair)-i-1
		}
		if !t.add(name, value) {
			return false
		}
	}
	return true
}

var cookieHeader = []byte("cookie")

// cookies counts the cookies of every Cookie field in a raw header block
// (';' separated, blanks and CTLs trimmed, "=" alone skipped). It reads the
// raw block because fasthttp parses cookies into a list that changes how
// the header is forwarded.
func (t *argTally) cookies(raw []byte) bool {
	for len(raw) > 0 {
		var line []byte
		line, raw = httpx.CutByte(raw, '\n')
		colon := bytes.IndexByte(line, ':')
		if colon != len(cookieHeader) || !bytes.EqualFold(line[:colon], cookieHeader) {
			continue
		}
		for v := line[colon+1:]; len(v) > 0; {
			var part []byte
			part, v = httpx.CutByte(v, ';')
			name, value := part, part[:0]
			if i := bytes.IndexByte(part, '='); i >= 0 {
				name, value = part[:i], part[i+1:]
			}
			name, value = trimCTL(name), trimCTL(value)
			if len(name) == 0 && len(value) == 0 {
				continue
			}
			if !t.add(len(name), len(value)) {
				return false
			}
		}
	}
	return true
}

func trimCTL(b []byte) []byte {
	for len(b) > 0 && (b[0] <= ' ' || b[0] == 0x7f) {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] <= ' ' || b[len(b)-1] == 0x7f) {
		b = b[:len(b)-1]
	}
	return b
}

// bodyKind is how the rule engine parses a body.
type bodyKind uint8

const (
	bodyURLEncoded bodyKind = iota
	bodyJSON
	bodyXML
	bodyMultipart
)

// kindOf reads a Content-Type as the engine's body-processor rules do
// (lower-cased, matched at the start): CRS rules 200000 (XML), 200001 and
// 200006 (JSON), Coraza's multipart/form-data, and URLENCODED for the rest.
func kindOf(ct []byte) bodyKind {
	switch {
	case hasPrefixFold(ct, "application/json"):
		return bodyJSON
	case hasPrefixFold(ct, "application/xml"), hasPrefixFold(ct, "application/soap+xml"), hasPrefixFold(ct, "text/xml"):
		return bodyXML
	case hasPrefixFold(ct, "multipart/form-data"):
		return bodyMultipart
	case hasPrefixFold(ct, "application/"):
		// ^application/[a-z0-9.-]+[+]json
		sub := ct[len("application/"):]
		i := 0
		for i < len(sub) && isSubtypeByte(sub[i]) {
			i++
		}
		if i > 0 && hasPrefixFold(sub[i:], "+json") {
			return bodyJSON
		}
	}
	return bodyURLEncoded
}

func isSubtypeByte(c byte) bool {
	c |= 0x20 * boolByte('A' <= c && c <= 'Z')
	return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '-'
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// hasPrefixFold reports whether b begins with prefix (lower-case ASCII),
// ignoring ASCII case.
func hasPrefixFold(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && httpx.EqualFoldLower(b[:len(prefix)], prefix)
}

// body counts the arguments of a body of the given content type.
func (t *argTally) body(ct, b []byte) bool {
	switch kindOf(ct) {
	case bodyJSON:
		return t.json(b)
	case bodyXML:
		return t.xml(b)
	case bodyMultipart:
		return t.multipart(ct, b)
	}
	return t.urlencoded(b)
}

// maxJSONDepth bounds configs' max_json_depth, so that the path lengths of
// the open containers fit a fixed array.
const maxJSONDepth = configs.MaxJSONDepthLimit

// The states of the JSON pass: what may come next.
const (
	stValue = iota // a value (or, right after '[', the end of the array)
	stKey          // a key (or, right after '{', the end of the object)
	stColon
	stAfter // after a value: ',' or the end of the container
	stDone  // after the top-level value
)

type jsonLevel struct {
	path  int  // the container's name length (json.a.b)
	n     int  // elements begun so far (arrays)
	array bool // an array, else an object
}

// json counts a JSON document's leaves and non-empty arrays (the engine
// adds one argument per array, holding its length), names as the engine
// flattens them, and checks the nesting depth. It stops at the first byte
// that cannot continue a JSON document and sets malformedDoc, by the grammar
// the engine's JSON processor validates with: a document it would flatten
// leniently and then refuse as invalid is malformed here, before the engine
// spends anything on it.
func (t *argTally) json(b []byte) bool {
	var stack [maxJSONDepth + 1]jsonLevel
	depth, state, name := 0, stValue, len("json")
	for i := 0; i < len(b); {
		c := b[i]
		if c == ' ' || c == '\t' || c == '\n' || c == '\r' {
			i = jsonbody.SkipSpace(b, i+1)
			continue
		}
		switch state {
		case stDone:
			t.malformedDoc = true
			return true
		case stKey:
			switch {
			case c == '}' && stack[depth-1].n == 0:
				depth--
				i++
				state = afterValue(depth)
				continue
			case c != '"':
				t.malformedDoc = true
				return true
			}
			end := jsonbody.StringAfter(b, i)
			if end < 0 {
				t.malformedDoc = true
				return true
			}
			stack[depth-1].n++
			name = stack[depth-1].path + 1 + (end - i - 2)
			i = end
			state = stColon
		case stColon:
			if c != ':' {
				t.malformedDoc = true
				return true
			}
			i++
			state = stValue
		case stValue:
			if depth > 0 && stack[depth-1].array {
				top := &stack[depth-1]
				if c == ']' && top.n == 0 {
					depth--
					i++
					state = afterValue(depth)
					continue
				}
				name = top.path + 1 + decimalLen(top.n)
				top.n++
			}
			switch c {
			case '{', '[':
				if depth == t.l.maxDepth || depth == maxJSONDepth {
					t.broken = jsonTooDeep
					return false
				}
				stack[depth] = jsonLevel{path: name, array: c == '['}
				depth++
				i++
				if c == '{' {
					state = stKey
				}
				continue
			case '"':
				end := jsonbody.StringAfter(b, i)
				if end < 0 {
					t.malformedDoc = true
					return true
				}
				if !t.add(name, end-i-2) {
					return false
				}
				i = end
			default:
				end := jsonbody.ScalarAfter(b, i)
				if end < 0 {
					t.malformedDoc = true
					return true
				}
				if !t.add(name, end-i) {
					return false
				}
				i = end
			}
			state = afterValue(depth)
		case stAfter:
			top := &stack[depth-1]
			switch {
			case c == ',' && top.array:
				state = stValue
			case c == ',':
				state = stKey
			case c == ']' && top.array, c == '}' && !top.array:
				if top.array && !t.add(top.path, decimalLen(top.n)) {
					return false
				}
				depth--
				state = afterValue(depth)
			default:
				t.malformedDoc = true
				return true
			}
			i++
		}
	}
	if state != stDone {
		t.malformedDoc = true
	}
	return true
}

// afterValue is the state after a value closes at depth.
func afterValue(depth int) int {
	if depth == 0 {
		return stDone
	}
	return stAfter
}

func decimalLen(n int) int {
	d := 1
	for n >= 10 {
		n /= 10
		d++
	}
	return d
}

// xml counts what the engine's XML processor collects: every attribute
// value and every text node that is not only whitespace (CDATA included).
// Comments, processing instructions and declarations are skipped.
func (t *argTally) xml(b []byte) bool {
	for i := 0; i < len(b); {
		if b[i] != '<' {
			end := bytes.IndexByte(b[i:], '<')
			if end < 0 {
				end = len(b) - i
			}
			if text := bytes.TrimSpace(b[i : i+end]); len(text) > 0 && !t.add(0, len(text)) {
				return false
			}
			i += end
			continue
		}
		rest := b[i:]
		switch {
		case bytes.HasPrefix(rest, []byte("<!--")):
			i += skipPast(rest, "-->")
		case bytes.HasPrefix(rest, []byte("<![CDATA[")):
			n := skipPast(rest, "]]>")
			text := rest[len("<![CDATA["):n]
			text = bytes.TrimSuffix(text, []byte("]]>"))
			if text = bytes.TrimSpace(text); len(text) > 0 && !t.add(0, len(text)) {
				return false
			}
			i += n
		case bytes.HasPrefix(rest, []byte("<?")):
			i += skipPast(rest, "?>")
		case bytes.HasPrefix(rest, []byte("<!")), bytes.HasPrefix(rest, []byte("</")):
			i += skipPast(rest, ">")
		default:
			n, ok := t.xmlTag(rest)
			if !ok {
				return false
			}
			i += n
		}
	}
	return true
}

// xmlTag counts the attributes of the start tag at the start of b and
// returns its length. Like the engine's XML decoder (not strict), it takes
// unquoted values, and a name without a value as its own value.
func (t *argTally) xmlTag(b []byte) (int, bool) {
	i := 1
	for i < len(b) && !isXMLSpace(b[i]) && b[i] != '>' && b[i] != '/' {
		i++ // the element's name
	}
	for i < len(b) {
		for i < len(b) && isXMLSpace(b[i]) {
			i++
		}
		if i == len(b) || b[i] == '>' {
			break
		}
		if b[i] == '/' || b[i] == '=' {
			i++
			continue
		}
		start := i
		for i < len(b) && !isXMLSpace(b[i]) && b[i] != '=' && b[i] != '>' && b[i] != '/' {
			i++
		}
		name := i - start
		for i < len(b) && isXMLSpace(b[i]) {
			i++
		}
		if i == len(b) || b[i] != '=' {
			if !t.add(name, name) {
				return 0, false
			}
			continue
		}
		i++
		for i < len(b) && isXMLSpace(b[i]) {
			i++
		}
		value := 0
		if i < len(b) && (b[i] == '"' || b[i] == '\'') {
			end := bytes.IndexByte(b[i+1:], b[i])
			if end < 0 {
				end = len(b) - i - 1
			}
			value = end
			i = min(i+end+2, len(b))
		} else {
			vs := i
			for i < len(b) && !isXMLSpace(b[i]) && b[i] != '>' {
				i++
			}
			value = i - vs
		}
		if !t.add(name, value) {
			return 0, false
		}
	}
	return min(i+1, len(b)), true
}

func isXMLSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// skipPast returns the index just after the first end in b, or len(b).
func skipPast(b []byte, end string) int {
	if i := bytes.Index(b, []byte(end)); i >= 0 {
		return i + len(end)
	}
	return len(b)
}

// multipart counts one argument per part: a field's name and value, or a
// file's field name and file name (the engine reads file names, not their
// contents, as arguments).
func (t *argTally) multipart(ct, body []byte) bool {
	boundary := multipartBoundary(ct)
	if len(boundary) == 0 {
		return true
	}
	var delimBuf [76]byte
	delim := append(append(delimBuf[:0], "--"...), boundary...)
	rest := body
	i := bytes.Index(rest, delim)
	if i < 0 {
		return true
	}
	rest = rest[i+len(delim):]
	for len(rest) > 0 && !bytes.HasPrefix(rest, []byte("--")) {
		next := bytes.Index(rest, delim)
		part := rest
		if next >= 0 {
			part, rest = rest[:next], rest[next+len(delim):]
		} else {
			rest = nil
		}
		head, content := part, part[:0]
		if h := bytes.Index(part, []byte("\r\n\r\n")); h >= 0 {
			head, content = part[:h], part[h+4:]
		}
		content = bytes.TrimSuffix(content, []byte("\r\n"))
		name := dispositionParam(head, "name=")
		value := len(content)
		if file := dispositionParam(head, "filename="); file >= 0 {
			value = file
		}
		if !t.add(max(name, 0), value) {
			return false
		}
	}
	return true
}

// multipartBoundary is the boundary parameter of a multipart Content-Type.
func multipartBoundary(ct []byte) []byte {
	i := indexFold(ct, "boundary=")
	if i < 0 {
		return nil
	}
	b := ct[i+len("boundary="):]
	if j := bytes.IndexByte(b, ';'); j >= 0 {
		b = b[:j]
	}
	b = bytes.Trim(bytes.TrimSpace(b), `"`)
	if len(b) > 70 { // RFC 2046 §5.1.1
		return nil
	}
	return b
}

// dispositionParam is the length of a Content-Disposition parameter's
// value in a part's header block (param ends in '='), or -1 when absent.
func dispositionParam(head []byte, param string) int {
	i := indexFold(head, param)
	// "name=" also matches the end of "filename=": skip that one.
	for i > 0 && param == "name=" && (head[i-1]|0x20) == 'e' {
		j := indexFold(head[i+1:], param)
		if j < 0 {
			return -1
		}
		i += 1 + j
	}
	if i < 0 {
		return -1
	}
	v := head[i+len(param):]
	if len(v) > 0 && v[0] == '"' {
		if end := bytes.IndexByte(v[1:], '"'); end >= 0 {
			return end
		}
		return len(v) - 1
	}
	end := bytes.IndexAny(v, "; \r\n")
	if end < 0 {
		end = len(v)
	}
	return end
}

func indexFold(b []byte, s string) int {
	for i := 0; i+len(s) <= len(b); i++ {
		if hasPrefixFold(b[i:], s) {
			return i
		}
	}
	return -1
}
