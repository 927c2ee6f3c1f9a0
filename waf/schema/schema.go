package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// Schema is a compiled positive model of one route's JSON body. It is safe
// for concurrent use.
type Schema struct {
	name string
	js   *jsonschema.Schema
	root *node // where free text may appear; see Reduce
}

// Violation says why a body was refused: the JSON pointer (RFC 6901) of the
// first failing field and a short reason, both fit for a problem+json
// detail. Reasons never quote more than a few bytes of the body.
type Violation struct {
	Pointer string // "" is the whole document
	Reason  string
	// Malformed is set when the body is not JSON at all (syntax, truncation,
	// invalid UTF-8, duplicate keys, too deep). The gateway answers it with
	// 400 Bad Request; a well-formed body that breaks the schema is 422.
	Malformed bool
}

func (v *Violation) Error() string {
	if v.Pointer == "" {
		return "body: " + v.Reason
	}
	return v.Pointer + ": " + v.Reason
}

// Name is the file or builtin name the schema was compiled from.
func (s *Schema) Name() string { return s.name }

// BuiltinPrefix marks a reference to a schema shipped in Builtin
// ("builtin:bet" is schemas/bet.json).
const BuiltinPrefix = "builtin:"

// Load compiles ref: "builtin:NAME" for a schema in Builtin, else a file
// path.
func Load(ref string) (*Schema, error) {
	if name, ok := strings.CutPrefix(ref, BuiltinPrefix); ok {
		b, err := fs.ReadFile(Builtin, "schemas/"+name+".json")
		if err != nil {
			return nil, fmt.Errorf("%s: no such builtin schema (have %s)", ref, strings.Join(BuiltinNames(), ", "))
		}
		return CompileBytes(ref, b)
	}
	return Compile(ref)
}

// BuiltinNames lists the schemas in Builtin as builtin: references.
func BuiltinNames() []string {
	ents, _ := fs.ReadDir(Builtin, "schemas")
	var names []string
	for _, e := range ents {
		if n, ok := strings.CutSuffix(e.Name(), ".json"); ok {
			names = append(names, BuiltinPrefix+n)
		}
	}
	return names
}

// Compile reads and compiles the schema in file. Errors name the file.
func Compile(file string) (*Schema, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err // *fs.PathError names the file
	}
	return CompileBytes(file, b)
}

// CompileBytes compiles the schema document b; name appears in errors.
//
// The document is JSON Schema (draft 2020-12 unless it says otherwise in
// $schema), with two deliberate changes that make it a positive model:
//
//   - Unknown fields are refused. Every schema object that declares
//     "properties" or "type": "object" and says nothing itself about
//     "additionalProperties", "patternProperties" or
//     "unevaluatedProperties" is compiled as if it said
//     "additionalProperties": false. A schema that composes objects with
//     allOf must therefore say "unevaluatedProperties": false (or true) on
//     the composing object and leave the parts open explicitly.
//   - "format" is an assertion, not an annotation, so a "uuid" field that
//     is not a UUID fails.
//
// References ($ref) resolve inside the document only; a schema that refers
// to another file fails to compile.
func CompileBytes(name string, b []byte) (*Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: not JSON: %w", name, err)
	}
	closeObjects(doc)
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	c.UseLoader(noLoader{})
	loc := "mem:///" + strings.TrimLeft(strings.ReplaceAll(name, ":", "/"), "/")
	if err := c.AddResource(loc, doc); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	js, err := c.Compile(loc)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &Schema{name: name, js: js, root: buildTree(js)}, nil
}

type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("external reference %s: only references inside the schema document are allowed", url)
}

// schemaMaps and schemaLists are the keywords whose values hold subschemas,
// walked by closeObjects.
var (
	schemaOne   = []string{"additionalProperties", "unevaluatedProperties", "items", "additionalItems", "unevaluatedItems", "contains", "propertyNames", "not", "if", "then", "else"}
	schemaMaps  = []string{"properties", "patternProperties", "$defs", "definitions", "dependentSchemas", "dependencies"}
	schemaLists = []string{"allOf", "anyOf", "oneOf", "prefixItems", "items"}
)

// closeObjects adds "additionalProperties": false to every object schema in
// doc that leaves unknown fields unspecified (see CompileBytes).
func closeObjects(v any) {
	obj, ok := v.(map[string]any)
	if !ok {
		return
	}
	_, hasProps := obj["properties"]
	if hasProps || typeIncludes(obj["type"], "object") {
		_, ap := obj["additionalProperties"]
		_, pp := obj["patternProperties"]
		_, up := obj["unevaluatedProperties"]
		if !ap && !pp && !up {
			obj["additionalProperties"] = false
		}
	}
	for _, k := range schemaOne {
		closeObjects(obj[k])
	}
	for _, k := range schemaMaps {
		if m, ok := obj[k].(map[string]any); ok {
			for _, sub := range m {
				closeObjects(sub)
			}
		}
	}
	for _, k := range schemaLists {
		if l, ok := obj[k].([]any); ok {
			for _, sub := range l {
				closeObjects(sub)
			}
		}
	}
}

func typeIncludes(t any, want string) bool {
	switch t := t.(type) {
	case string:
		return t == want
	case []any:
		for _, e := range t {
			if e == want {
				return true
			}
		}
	}
	return false
}

// Check validates body against the schema and returns nil when it passes,
// else the first failing field (in document order). Syntax problems come
// back with Malformed set.
func (s *Schema) Check(body []byte) *Violation {
	d := decoder{b: body}
	v := d.decode()
	if d.err != nil {
		return &Violation{
			Pointer:   d.pointer(),
			Reason:    d.err.msg + " at byte " + strconv.Itoa(d.err.off),
			Malformed: true,
		}
	}
	err := s.js.Validate(v)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return &Violation{Reason: "invalid"}
	}
	return firstViolation(ve, body)
}

var printer = message.NewPrinter(language.English)

// maxReason bounds a reason's length so a problem detail never echoes a
// large part of the body.
const maxReason = 160

// firstViolation picks, among the leaves of the error tree, the one whose
// field comes first in the document, so the answer does not depend on map
// iteration order inside the validator.
func firstViolation(ve *jsonschema.ValidationError, body []byte) *Violation {
	var leaves []*Violation
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) > 0 {
			for _, c := range e.Causes {
				walk(c)
			}
			return
		}
		leaves = append(leaves, leafViolations(e)...)
	}
	walk(ve)
	if len(leaves) == 0 {
		return &Violation{Reason: "invalid"}
	}
	if len(leaves) > 1 {
		pos := positions(body)
		rank := func(v *Violation) int {
			if p, ok := pos[v.Pointer]; ok {
				return p
			}
			// A missing field ranks at the end of its object.
			if i := strings.LastIndexByte(v.Pointer, '/'); i >= 0 {
				if p, ok := pos[v.Pointer[:i]+endSuffix]; ok {
					return p
				}
			}
			return len(body)
		}
		sort.SliceStable(leaves, func(i, j int) bool {
			ri, rj := rank(leaves[i]), rank(leaves[j])
			if ri != rj {
				return ri < rj
			}
			return leaves[i].Pointer < leaves[j].Pointer
		})
	}
	return leaves[0]
}

// leafViolations turns one failed keyword into violations; an unknown or
// missing field gives one per field so each can be ranked by position.
func leafViolations(e *jsonschema.ValidationError) []*Violation {
	ptr := string(appendPointer(nil, e.InstanceLocation))
	var fields []string
	var reason string
	switch k := e.ErrorKind.(type) {
	case *kind.AdditionalProperties:
		fields, reason = k.Properties, "unknown field"
	case *kind.Required:
		fields, reason = k.Missing, "required field missing"
	case *kind.Type:
		reason = "want " + strings.Join(k.Want, " or ") + ", got " + k.Got
	case *kind.Enum:
		want := make([]string, 0, len(k.Want))
		for _, w := range k.Want {
			b, _ := json.Marshal(w)
			want = append(want, string(b))
		}
		reason = "want one of " + strings.Join(want, ", ")
	case *kind.Pattern:
		reason = "does not match " + k.Want
	case *kind.Format:
		reason = "not a valid " + k.Want
	case *kind.FalseSchema:
		reason = "not allowed"
	default:
		reason = e.ErrorKind.LocalizedString(printer)
	}
	if len(reason) > maxReason {
		reason = strings.ToValidUTF8(reason[:maxReason], "") + "…"
	}
	if len(fields) == 0 {
		return []*Violation{{Pointer: ptr, Reason: reason}}
	}
	vs := make([]*Violation, len(fields))
	for i, f := range fields {
		vs[i] = &Violation{Pointer: ptr + "/" + string(appendPointerToken(nil, f)), Reason: reason}
	}
	return vs
}

func appendPointer(b []byte, toks []string) []byte {
	for _, t := range toks {
		b = append(b, '/')
		b = appendPointerToken(b, t)
	}
	return b
}

// endSuffix keys the end offset of an object in positions' map.
const endSuffix = "\x00end"

// positions maps each value's pointer in body (already known to be valid
// JSON) to its offset, and each object's pointer+endSuffix to its end. Used
// only on the failure path.
func positions(body []byte) map[string]int {
	pos := make(map[string]int)
	var walk func(i int, ptr []byte, depth int) int
	walk = func(i int, ptr []byte, depth int) int {
		i = skipWS(body, i)
		if i >= len(body) || depth > maxDepth {
			return len(body)
		}
		pos[string(ptr)] = i
		switch body[i] {
		case '{':
			i = skipWS(body, i+1)
			for i < len(body) && body[i] != '}' {
				if body[i] == ',' {
					i = skipWS(body, i+1)
					continue
				}
				end, esc, err := scanString(body, i)
				if err != nil {
					return len(body)
				}
				raw := body[i+1 : end-1]
				key := string(raw)
				if esc {
					key = unquote(raw)
				}
				child := appendPointerToken(append(ptr[:len(ptr):len(ptr)], '/'), key)
				i = skipWS(body, end)
				if i < len(body) && body[i] == ':' {
					i++
				}
				i = skipWS(body, walk(i, child, depth+1))
			}
			pos[string(ptr)+endSuffix] = i
			return i + 1
		case '[':
			i = skipWS(body, i+1)
			for n := 0; i < len(body) && body[i] != ']'; {
				if body[i] == ',' {
					i = skipWS(body, i+1)
					continue
				}
				child := strconv.AppendInt(append(ptr[:len(ptr):len(ptr)], '/'), int64(n), 10)
				i = skipWS(body, walk(i, child, depth+1))
				n++
			}
			return i + 1
		default:
			return skipValue(body, i)
		}
	}
	walk(0, nil, 0)
	return pos
}

// skipValue returns the end of the scalar at b[i] (or len(b) if it is
// malformed).
func skipValue(b []byte, i int) int {
	var end int
	var err *syntaxError
	switch c := b[i]; {
	case c == '"':
		end, _, err = scanString(b, i)
	case c == 't':
		end, err = scanLiteral(b, i, "true")
	case c == 'f':
		end, err = scanLiteral(b, i, "false")
	case c == 'n':
		end, err = scanLiteral(b, i, "null")
	default:
		end, err = scanNumber(b, i)
	}
	if err != nil {
		return len(b)
	}
	return end
}
