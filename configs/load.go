package configs

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

//go:embed demo.yaml
var demoYAML []byte

// DemoName is how the embedded demo configuration is named in messages.
const DemoName = "(embedded demo.yaml)"

// Demo returns the embedded two-region demo deployment.
func Demo() (*Config, error) { return Parse(DemoName, demoYAML) }

// DemoYAML returns the embedded demo configuration's text.
func DemoYAML() []byte { return bytes.Clone(demoYAML) }

// Load reads, decodes, defaults and validates a configuration file.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// LoadForKeygen is Load for `hedge dnssec keygen`: a signed zone whose
// keys do not exist yet is not an error there.
func LoadForKeygen(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parse(path, data, true)
}

// Parse decodes, defaults and validates a configuration. Every problem is
// reported at once, as an *Errors whose lines read FILE:LINE: field: message.
func Parse(file string, data []byte) (*Config, error) { return parse(file, data, false) }

func parse(file string, data []byte, keygen bool) (*Config, error) {
	var root yaml.Node
	errs := &Errors{file: file}
	if err := yaml.Unmarshal(data, &root); err != nil {
		line, msg := yamlErrorLine(err)
		errs.add(line, "", msg)
		return nil, errs
	}
	cfg := &Config{File: file}
	d := decoder{errs: errs, lines: map[string]int{}, failed: map[string]bool{}}
	if len(root.Content) == 0 {
		errs.add(1, "", "the configuration is empty")
		return nil, errs
	}
	d.decode(root.Content[0], reflect.ValueOf(cfg).Elem(), "")
	// Validation runs even after decoding problems, so every problem is
	// reported at once; it stays silent on fields that failed to decode
	// (and what is under them), which would only repeat the same mistake.
	ApplyDefaults(cfg)
	v := newValidator(cfg, errs, d.lines, d.failed)
	v.keygen = keygen
	cfg.validate(v)
	if errs.Len() > 0 {
		return nil, errs
	}
	return cfg, nil
}

// FieldError is one configuration problem.
type FieldError struct {
	File    string
	Line    int
	Field   string
	Message string
}

func (e FieldError) String() string {
	if e.Field == "" {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Message)
	}
	return fmt.Sprintf("%s:%d: %s: %s", e.File, e.Line, e.Field, e.Message)
}

// Errors collects every problem found in one configuration.
type Errors struct {
	file string
	List []FieldError
}

func (e *Errors) add(line int, field, msg string) {
	e.List = append(e.List, FieldError{File: e.file, Line: line, Field: field, Message: msg})
}

// Len is the number of problems found.
func (e *Errors) Len() int { return len(e.List) }

func (e *Errors) Error() string {
	sort.SliceStable(e.List, func(i, j int) bool { return e.List[i].Line < e.List[j].Line })
	lines := make([]string, len(e.List))
	for i, fe := range e.List {
		lines[i] = fe.String()
	}
	return strings.Join(lines, "\n")
}

var yamlLineRE = regexp.MustCompile(`line (\d+): (.*)`)

// yamlErrorLine pulls the line number out of a yaml syntax error.
func yamlErrorLine(err error) (int, string) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n, "syntax: " + m[2]
	}
	return 1, "syntax: " + msg
}

// decoder maps a YAML node tree onto the typed structs by hand, so that an
// unknown field or a wrong type is reported with its path and line and
// decoding carries on to find the next problem.
type decoder struct {
	errs   *Errors
	lines  map[string]int
	failed map[string]bool
}

func (d *decoder) fail(line int, path, msg string) {
	d.failed[path] = true
	d.errs.add(line, path, msg)
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	d.lines[path] = n.Line
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	if reflect.PointerTo(v.Type()).Implements(unmarshalerType) {
		if err := n.Decode(v.Addr().Interface()); err != nil {
			d.fail(n.Line, path, cleanDecodeError(err))
		}
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			msg := "want a mapping of fields"
			if h, ok := v.Addr().Interface().(mappingHinter); ok {
				msg = h.mappingHint()
			}
			d.fail(n.Line, path, msg)
			return
		}
		fields := structFields(v.Type())
		for i := 0; i+1 < len(n.Content); i += 2 {
			key, val := n.Content[i], n.Content[i+1]
			idx, ok := fields[key.Value]
			p := join(path, key.Value)
			if !ok {
				d.lines[p] = key.Line
				d.fail(key.Line, p, "unknown field (known: "+knownFields(fields)+")")
				continue
			}
			d.decode(val, v.Field(idx), p)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.fail(n.Line, path, "want a list")
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			d.decode(item, s.Index(i), elem(path, i))
		}
		v.Set(s)
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		d.decode(n, p.Elem(), path)
		v.Set(p)
	default:
		if n.Kind != yaml.ScalarNode {
			d.fail(n.Line, path, "want a single value, not a "+kindName(n.Kind))
			return
		}
		if err := n.Decode(v.Addr().Interface()); err != nil {
			d.fail(n.Line, path, fmt.Sprintf("want %s, got %q", typeName(v.Type()), n.Value))
		}
	}
}

// mappingHinter is a struct whose older form was a single value: decoding
// that value says how to write the new form.
type mappingHinter interface{ mappingHint() string }

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// elem is the path of a list's i-th element.
func elem(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

func structFields(t reflect.Type) map[string]int {
	m := make(map[string]int, t.NumField())
	for i := range t.NumField() {
		tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]
		if tag != "" && tag != "-" {
			m[tag] = i
		}
	}
	return m
}

func knownFields(m map[string]int) string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	default:
		return "value"
	}
}

func typeName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "a whole number"
	case reflect.Float64, reflect.Float32:
		return "a number"
	case reflect.String:
		return "a string"
	}
	return t.String()
}

func cleanDecodeError(err error) string {
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		return yamlLineRE.ReplaceAllString(te.Errors[0], "$2")
	}
	return err.Error()
}
