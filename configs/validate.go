package configs

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// validator checks a decoded, defaulted configuration and records every
// problem with the path and line of the field it concerns. Each section
// checks itself (a validate method beside its type); a check names the
// field by its address, and the validator knows every field's YAML path
// from the yaml tags of the decoded structs, so no check spells a path.
type validator struct {
	errs   *Errors
	lines  map[string]int  // path → line, for what the file wrote
	failed map[string]bool // paths that did not decode
	paths  map[fieldKey]string
	keygen bool // DNSSEC keys are about to be made (hedge dnssec keygen)
}

// fieldKey is a field's address with its type: a struct and its first
// field share an address, not a type.
type fieldKey struct {
	addr uintptr
	typ  reflect.Type
}

func newValidator(c *Config, errs *Errors, lines map[string]int, failed map[string]bool) *validator {
	v := &validator{errs: errs, lines: lines, failed: failed, paths: map[fieldKey]string{}}
	v.walk(reflect.ValueOf(c).Elem(), "")
	return v
}

// walk records the path of val and of every field and list element under
// it, named as the decoder names them (structFields, join, elem).
func (v *validator) walk(val reflect.Value, path string) {
	v.paths[fieldKey{val.Addr().Pointer(), val.Type()}] = path
	if reflect.PointerTo(val.Type()).Implements(unmarshalerType) {
		return
	}
	switch val.Kind() {
	case reflect.Struct:
		for tag, i := range structFields(val.Type()) {
			v.walk(val.Field(i), join(path, tag))
		}
	case reflect.Slice:
		for i := range val.Len() {
			v.walk(val.Index(i), elem(path, i))
		}
	case reflect.Pointer:
		if !val.IsNil() {
			v.walk(val.Elem(), path)
		}
	}
}

// path is the YAML path of field, a pointer into the configuration being
// validated (never into a copy of part of it).
func (v *validator) path(field any) string {
	p := reflect.ValueOf(field)
	path, ok := v.paths[fieldKey{p.Pointer(), p.Type().Elem()}]
	if !ok {
		panic(fmt.Sprintf("configs: a %s that is not part of the configuration was validated", p.Type().Elem()))
	}
	return path
}

// bad reports a problem with field.
func (v *validator) bad(field any, format string, args ...any) {
	path := v.path(field)
	for p := path; p != ""; p = parentPath(p) {
		if v.failed[p] {
			return
		}
	}
	v.errs.add(v.line(path), path, fmt.Sprintf(format, args...))
}

func parentPath(p string) string {
	i := max(strings.LastIndexByte(p, '.'), strings.LastIndexByte(p, '['))
	if i < 0 {
		return ""
	}
	return p[:i]
}

// line finds the line of path, or of its nearest ancestor that was written
// (a missing field is reported where its parent is).
func (v *validator) line(path string) int {
	for p := path; p != ""; p = parentPath(p) {
		if n, ok := v.lines[p]; ok {
			return n
		}
	}
	if n, ok := v.lines[""]; ok {
		return n
	}
	return 1
}

// validate checks the whole deployment, section by section.
func (c *Config) validate(v *validator) {
	c.Log.validate(v)
	c.Lifecycle.validate(v)
	c.Admin.validate(v, c.IsDemo())
	if len(c.Regions) == 0 {
		v.bad(&c.Regions, "at least one region is required")
	}
	c.validateRoutes(v)
	c.Auth.JWT.validate(v)
	c.Ledger.validate(v)
	c.validateRegions(v)
	c.validateWriters(v)
	c.validateDrainPush(v)
	c.Dev.validate(v)
	c.validateDNS(v)
	c.validateProtection(v)
	c.Streams.validate(v, c.Routes)
}

func (l *Log) validate(v *validator) {
	oneOf(v, &l.Level)
	oneOf(v, &l.Format)
	positive(v, &l.Access.FlushInterval)
}

func (l *Lifecycle) validate(v *validator) {
	positive(v, &l.ShutdownTimeout)
	notNegative(v, &l.DrainPeriod)
}

// The checks every section shares. Those on numbers and enums are
// functions, as Go methods take no type parameters.

// enum is a type whose values are a fixed set of words (enums.go).
type enum[E any] interface {
	~string
	values() []E
}

// oneOf checks an enum's value against the values its type lists.
func oneOf[E enum[E]](v *validator, field *E) bool {
	return v.among(field, string(*field), valueNames((*field).values())...)
}

// allowed lists an enum's values, as messages name them.
func allowed[E enum[E]]() string {
	var e E
	return strings.Join(valueNames(e.values()), ", ")
}

func valueNames[E ~string](values []E) []string {
	names := make([]string, len(values))
	for i, s := range values {
		names[i] = string(s)
	}
	return names
}

// among checks that got, the value of field, is one of allowed.
func (v *validator) among(field any, got string, allowed ...string) bool {
	if slices.Contains(allowed, got) {
		return true
	}
	v.bad(field, "%q is not one of %s", got, strings.Join(allowed, ", "))
	return false
}

// positive checks a duration, size or count is above zero.
func positive[T ~int | ~int64](v *validator, field *T) {
	if *field <= 0 {
		v.bad(field, "must be greater than zero")
	}
}

// atLeast checks a size or count is least or more.
func atLeast[T ~int | ~int64](v *validator, field *T, least T) {
	if *field < least {
		v.bad(field, "must be at least %d, got %d", least, *field)
	}
}

// notNegative checks a duration, size or count is zero or more.
func notNegative[T ~int | ~int64](v *validator, field *T) {
	if *field < 0 {
		v.bad(field, "must not be negative")
	}
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9_-]{0,61}[a-z0-9])?$`)

// name checks a name that identifies something in logs, metrics and URLs.
func (v *validator) name(field *string) {
	switch s := *field; {
	case s == "":
		v.bad(field, "required")
	case !nameRE.MatchString(s):
		v.bad(field, "%q must be lower-case letters, digits, '-' or '_' (at most 63)", s)
	}
}

// once reports field when seen already holds its value (a name given
// twice), with format's first verb its value; it records the value.
func (v *validator) once(seen map[string]bool, field *string, format string, args ...any) {
	if seen[*field] {
		v.bad(field, format, append([]any{*field}, args...)...)
	}
	seen[*field] = true
}

// uniqueName checks a name (see name) that must not repeat (see once).
func (v *validator) uniqueName(seen map[string]bool, field *string, format string, args ...any) {
	v.name(field)
	v.once(seen, field, format, args...)
}

func (v *validator) address(field *string) {
	addr := *field
	if addr == "" {
		v.bad(field, "required (host:port)")
		return
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		v.bad(field, "%q is not host:port", addr)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		v.bad(field, "%q has no valid port", addr)
	}
	if host != "" && net.ParseIP(host) == nil && !validHostPattern(host) {
		v.bad(field, "%q has no valid host", addr)
	}
}

func (v *validator) upstreamURL(field *string) {
	raw := *field
	u, err := url.Parse(raw)
	if raw == "" {
		v.bad(field, "required (http://host:port)")
		return
	}
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Port() == "" {
		v.bad(field, "%q is not http(s)://host:port", raw)
		return
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" {
		v.bad(field, "%q must not carry a path or query: the request's own is forwarded", raw)
	}
}

// readable checks the file field names can be opened.
func (v *validator) readable(field *string) {
	if f, err := os.Open(*field); err != nil {
		v.bad(field, "cannot read %s: %v", *field, unwrapPathError(err))
	} else {
		f.Close()
	}
}

// readableIfSet checks the file field names, if it names one.
func (v *validator) readableIfSet(field *string) {
	if *field != "" {
		v.readable(field)
	}
}

// certificate checks the files of a certificate and its key, given both
// or neither; a half is reported on holder, naming the two fields.
func (v *validator) certificate(holder any, cert, key *string, names string) {
	switch {
	case *cert == "" && *key == "":
	case *cert == "" || *key == "":
		v.bad(holder, "give both %s", names)
	default:
		v.readable(cert)
		v.readable(key)
	}
}

// requiredFile checks a file that must be named, and readable.
func (v *validator) requiredFile(field *string, missing string) {
	if *field == "" {
		v.bad(field, "%s", missing)
	} else {
		v.readable(field)
	}
}

// prefix checks an address or CIDR (see ParsePrefix).
func (v *validator) prefix(field *string) {
	if _, err := ParsePrefix(*field); err != nil {
		v.bad(field, "%v", err)
	}
}

// slash checks a URL path.
func (v *validator) slash(field *string) {
	if !strings.HasPrefix(*field, "/") {
		v.bad(field, "%q must start with '/'", *field)
	}
}

func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

var hostRE = regexp.MustCompile(`^(\*\.)?([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$`)

func validHostPattern(h string) bool { return len(h) <= 253 && hostRE.MatchString(h) }

func validMethod(m string) bool {
	if m == "" || len(m) > 20 {
		return false
	}
	for _, c := range m {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}

// method checks an HTTP method.
func (v *validator) method(field *string) {
	if !validMethod(*field) {
		v.bad(field, "%q is not an upper-case HTTP method", *field)
	}
}
