package configs

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// WAF configures the Core Rule Set engine. The top-level `waf` sets the
// defaults; a listener's `waf` overrides them for requests on that listener,
// and a route's `waf` overrides the listener's. A field left out inherits
// from the level above; a list that is set replaces the inherited one.
type WAF struct {
	// Mode is block | detect | off | learn (detect, and record the traffic's
	// shape for `hedge waf suggest`).
	Mode WAFMode `yaml:"mode"`
	// ParanoiaLevel is CRS's paranoia level, 1 to 4.
	ParanoiaLevel int `yaml:"paranoia_level"`
	// InboundThreshold is the anomaly score at which a request is blocked.
	InboundThreshold int `yaml:"inbound_threshold"`
	// OutboundThreshold is the anomaly score reported for responses.
	OutboundThreshold int     `yaml:"outbound_threshold"`
	Exclude           Exclude `yaml:"exclude"`
	// AllowedMethods replaces CRS's list (rule 900200), which blocks PUT,
	// PATCH and DELETE: REST routes name theirs.
	AllowedMethods []string `yaml:"allowed_methods"`
	// RuleFiles are extra SecLang files, loaded after the Core Rule Set.
	RuleFiles []string `yaml:"rule_files"`
	// InspectResponses runs CRS's response rules (logged, never blocking).
	InspectResponses *bool `yaml:"inspect_responses"`

	// TestProfile is the CRS regression-suite profile (DetectionOnly, PL4,
	// the go-ftw marker rule). Top level only, and only in a binary built
	// with -tags hedge_ftw: the marker rule bypasses every rule.
	TestProfile bool `yaml:"test_profile"`
	// ErrorLog is a file that receives one ModSecurity-format line per
	// matched rule (top level only; what go-ftw reads).
	ErrorLog string `yaml:"error_log"`

	// ExcludeFields take one field out of some rules' targets (a route's
	// only): the field is no longer inspected by those rules, every other
	// field and the rest of the request still is.
	ExcludeFields []FieldExclusion `yaml:"exclude_fields"`
}

// FieldExclusion names a field of a route's requests and the rules that no
// longer inspect it. Field is a JSON pointer into the body (/comment,
// /items/*/text: * is any array index) or ?NAME for a query parameter.
type FieldExclusion struct {
	Field string `yaml:"field" json:"field"`
	IDs   []int  `yaml:"ids" json:"ids"`
}

// FieldSegments splits a body field's pointer into its segments; ok is
// false for a query parameter (?NAME) or a pointer that is not one.
func (f FieldExclusion) FieldSegments() (segs []string, ok bool) {
	if !strings.HasPrefix(f.Field, "/") {
		return nil, false
	}
	return strings.Split(f.Field[1:], "/"), true
}

// QueryParam is the query parameter the exclusion names ("" for a body
// field).
func (f FieldExclusion) QueryParam() string {
	name, _ := strings.CutPrefix(f.Field, "?")
	if name == f.Field {
		return ""
	}
	return name
}

// fieldNameOK is what a field's segment (or query parameter) may hold: the
// rule engine names arguments by joining segments with dots and reads a
// quote, pipe or slash as syntax.
func fieldNameOK(s string, wildcard bool) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	if wildcard && s == "*" {
		return true
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func (f *FieldExclusion) validate(v *validator) {
	if segs, ok := f.FieldSegments(); ok {
		for _, s := range segs {
			if !fieldNameOK(s, true) {
				v.bad(&f.Field, "%q: each segment of a JSON pointer is letters, digits, _ or - (or * for any array index)", f.Field)
				break
			}
		}
	} else if q := f.QueryParam(); !fieldNameOK(q, false) {
		v.bad(&f.Field, "%q is not a body field (/comment, /items/*/text) or a query parameter (?q) of letters, digits, _ and -", f.Field)
	}
	if len(f.IDs) == 0 {
		v.bad(&f.IDs, "name the rules that no longer inspect %s", f.Field)
	}
	for i, id := range f.IDs {
		if id < 1 || id > 9999999 {
			v.bad(&f.IDs[i], "%d is not a rule id", id)
		}
	}
}

// Exclude removes CRS rules.
type Exclude struct {
	IDs  []int    `yaml:"ids"`
	Tags []string `yaml:"tags"`
}

// ACL allows or denies client addresses (after trusted proxies): deny wins;
// a non-empty allow list admits only its ranges.
type ACL struct {
	Allow []string `yaml:"allow" json:"allow,omitempty"`
	Deny  []string `yaml:"deny" json:"deny,omitempty"`
}

// RouteLimits are a route's request shape limits. Allowed methods are the
// route's match.methods (405 with Allow); the body limit is max_body_bytes.
type RouteLimits struct {
	// MaxURIBytes bounds the request target (414).
	MaxURIBytes Size `yaml:"max_uri_bytes" json:"max_uri_bytes"`
	// MaxHeaders bounds the number of request headers (431).
	MaxHeaders int `yaml:"max_headers" json:"max_headers"`
	// MaxHeaderBytes bounds the headers' total size (431); at most the
	// listener's limit, which is enforced while reading.
	MaxHeaderBytes Size `yaml:"max_header_bytes" json:"max_header_bytes,omitempty"`
	// ContentTypes are the media types a request body may have (415);
	// empty accepts any.
	ContentTypes []string `yaml:"content_types" json:"content_types,omitempty"`
	// MaxMultipartParts bounds the parts of a multipart body (413): a
	// thousand tiny parts cost the rule engine a thousand arguments.
	MaxMultipartParts int `yaml:"max_multipart_parts" json:"max_multipart_parts"`

	// Argument limits (400), checked in one pass before the rule engine:
	// what the query, the cookies and the body hand the Core Rule Set as
	// arguments (waf/args.go), whose cost grows with their number. 0 takes
	// the listener's.
	MaxArgs          int  `yaml:"max_args" json:"max_args,omitempty"`
	MaxArgNameBytes  Size `yaml:"max_arg_name_bytes" json:"max_arg_name_bytes,omitempty"`
	MaxArgValueBytes Size `yaml:"max_arg_value_bytes" json:"max_arg_value_bytes,omitempty"`
	MaxArgsBytes     Size `yaml:"max_args_bytes" json:"max_args_bytes,omitempty"`
	MaxJSONDepth     int  `yaml:"max_json_depth" json:"max_json_depth,omitempty"`
}

// RateLimit is one token-bucket policy.
type RateLimit struct {
	Name string `yaml:"name" json:"name"`
	// Key is ip | principal | route: what one bucket is for.
	Key RateLimitKey `yaml:"key" json:"key"`
	// Principal says where a principal key comes from: "jwt" (the verified
	// token's subject) or "header:NAME". Requests without one are keyed by
	// their client address.
	Principal string `yaml:"principal" json:"principal,omitempty"`
	// Rate is "N/s", "N/m" or "N/h".
	Rate  Rate `yaml:"rate" json:"rate"`
	Burst int  `yaml:"burst" json:"burst"`
	// Exempt lists CIDRs never limited (operators' load generators).
	Exempt []string `yaml:"exempt" json:"exempt,omitempty"`
}

// Rate is requests per second, written "100/s", "600/m" or "3600/h".
type Rate struct {
	PerSecond float64
	Text      string
	// Window is the unit the rate was written in, used as the quota window
	// in RateLimit-Policy headers.
	Window time.Duration
}

// ParseRate parses "N/s", "N/m" or "N/h".
func ParseRate(s string) (Rate, error) {
	n, unit, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return Rate{}, fmt.Errorf("%q is not a rate such as 100/s, 600/m or 3600/h", s)
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(n), 64)
	if err != nil || v <= 0 {
		return Rate{}, fmt.Errorf("%q is not a rate such as 100/s: the count must be a positive number", s)
	}
	var w time.Duration
	switch strings.TrimSpace(unit) {
	case "s":
		w = time.Second
	case "m":
		w = time.Minute
	case "h":
		w = time.Hour
	default:
		return Rate{}, fmt.Errorf("%q is not a rate such as 100/s: the unit is s, m or h", s)
	}
	return Rate{PerSecond: v / w.Seconds(), Text: s, Window: w}, nil
}

// UnmarshalYAML accepts "N/s", "N/m" or "N/h".
func (r *Rate) UnmarshalYAML(n *yaml.Node) error {
	return scalar(n, r, `want a rate such as "100/s"`, ParseRate)
}

// MarshalYAML writes the rate back as written.
func (r Rate) MarshalYAML() (any, error) { return r.Text, nil }

// MarshalJSON writes the rate as written ("100/s").
func (r Rate) MarshalJSON() ([]byte, error) { return []byte(strconv.Quote(r.Text)), nil }

// UnmarshalJSON reads the form MarshalJSON writes.
func (r *Rate) UnmarshalJSON(b []byte) error {
	s, err := strconv.Unquote(string(b))
	if err != nil {
		return fmt.Errorf("want a rate such as \"100/s\": %w", err)
	}
	v, err := ParseRate(s)
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// Quota is the number of requests the rate allows per window.
func (r Rate) Quota() int { return int(r.PerSecond*r.Window.Seconds() + 0.5) }

// Over returns w with every field it leaves unset taken from base: the
// effective settings of a listener (over the top level) or a route (over
// its listener).
func (w WAF) Over(base WAF) WAF {
	out := base
	if w.Mode != "" {
		out.Mode = w.Mode
	}
	if w.ParanoiaLevel != 0 {
		out.ParanoiaLevel = w.ParanoiaLevel
	}
	if w.InboundThreshold != 0 {
		out.InboundThreshold = w.InboundThreshold
	}
	if w.OutboundThreshold != 0 {
		out.OutboundThreshold = w.OutboundThreshold
	}
	if w.Exclude.IDs != nil {
		out.Exclude.IDs = w.Exclude.IDs
	}
	if w.Exclude.Tags != nil {
		out.Exclude.Tags = w.Exclude.Tags
	}
	if w.AllowedMethods != nil {
		out.AllowedMethods = w.AllowedMethods
	}
	if w.RuleFiles != nil {
		out.RuleFiles = w.RuleFiles
	}
	if w.InspectResponses != nil {
		out.InspectResponses = w.InspectResponses
	}
	if w.ExcludeFields != nil {
		out.ExcludeFields = w.ExcludeFields
	}
	return out
}

// Defaults of the protective layer; the README's configuration reference
// quotes them.
const (
	DefaultWAFMode           = WAFBlock
	DefaultParanoiaLevel     = 1
	DefaultInboundThreshold  = 5
	DefaultOutboundThreshold = 4
	DefaultMaxURIBytes       = 8 << 10
	DefaultMaxHeaders        = 100
	DefaultMaxMultipartParts = 100

	// The argument limits' defaults (README, Protection, says why).
	DefaultMaxArgs          = 64
	DefaultMaxArgNameBytes  = 128
	DefaultMaxArgValueBytes = 8 << 10
	DefaultMaxArgsBytes     = 16 << 10
	DefaultMaxJSONDepth     = 16
	// MaxJSONDepthLimit bounds max_json_depth: no client of a betting
	// platform nests deeper, and the counting pass keeps one small entry
	// per open level.
	MaxJSONDepthLimit = 64
)

func wafDefaults(c *Config) {
	setStr(&c.WAF.Mode, DefaultWAFMode)
	setInt(&c.WAF.ParanoiaLevel, DefaultParanoiaLevel)
	setInt(&c.WAF.InboundThreshold, DefaultInboundThreshold)
	setInt(&c.WAF.OutboundThreshold, DefaultOutboundThreshold)
	setBool(&c.WAF.InspectResponses, false)
	if c.WAF.TestProfile {
		// What the CRS regression suite expects: everything detected, the
		// request always passed on to the upstream.
		c.WAF.Mode = WAFDetect
		c.WAF.ParanoiaLevel = 4
	}
	for i := range c.Regions {
		for j := range c.Regions[i].Nodes {
			for k := range c.Regions[i].Nodes[j].Listeners {
				lim := &c.Regions[i].Nodes[j].Listeners[k].Limits
				setInt(&lim.MaxArgs, DefaultMaxArgs)
				setSize(&lim.MaxArgNameBytes, DefaultMaxArgNameBytes)
				setSize(&lim.MaxArgValueBytes, DefaultMaxArgValueBytes)
				setSize(&lim.MaxArgsBytes, DefaultMaxArgsBytes)
				setInt(&lim.MaxJSONDepth, DefaultMaxJSONDepth)
			}
		}
	}
	for i := range c.Routes {
		r := &c.Routes[i]
		setSize(&r.Limits.MaxURIBytes, DefaultMaxURIBytes)
		setInt(&r.Limits.MaxHeaders, DefaultMaxHeaders)
		setInt(&r.Limits.MaxMultipartParts, DefaultMaxMultipartParts)
		if r.Kind == KindLedger && r.Limits.ContentTypes == nil {
			r.Limits.ContentTypes = []string{"application/json"}
		}
		for j := range r.RateLimits {
			setStr(&r.RateLimits[j].Key, KeyIP)
		}
	}
	for j := range c.RateLimits {
		setStr(&c.RateLimits[j].Key, KeyIP)
	}
}

// validateProtection checks the protective layer wherever it is set: the
// top level, each listener and each route.
func (c *Config) validateProtection(v *validator) {
	c.WAF.validate(v, true, false)
	c.ACL.validate(v)
	validateRateLimits(v, c.RateLimits, false)
	for i := range c.Regions {
		for j := range c.Regions[i].Nodes {
			for k := range c.Regions[i].Nodes[j].Listeners {
				l := &c.Regions[i].Nodes[j].Listeners[k]
				l.WAF.validate(v, false, false)
				lim := &l.Limits
				argLimits(v, &lim.MaxArgs, &lim.MaxArgNameBytes, &lim.MaxArgValueBytes, &lim.MaxArgsBytes, &lim.MaxJSONDepth, 1)
			}
		}
	}
	for i := range c.Routes {
		r := &c.Routes[i]
		r.WAF.validate(v, false, true)
		for j := range r.WAF.ExcludeFields {
			r.WAF.ExcludeFields[j].validate(v)
		}
		r.ACL.validate(v)
		validateRateLimits(v, r.RateLimits, r.Kind == KindLedger || r.Auth == AuthJWT)
		r.Limits.validate(v)
		if r.Schema != "" {
			if !strings.HasPrefix(r.Schema, "builtin:") {
				v.readable(&r.Schema)
			}
			if !slices.ContainsFunc(r.Limits.ContentTypes, func(ct string) bool { return strings.EqualFold(ct, "application/json") }) {
				v.bad(&r.Schema, "a JSON schema needs limits.content_types to accept only application/json")
			} else if len(r.Limits.ContentTypes) != 1 {
				v.bad(&r.Limits.ContentTypes, "a route with a JSON schema accepts only application/json")
			}
		}
	}
}

func (rl *RouteLimits) validate(v *validator) {
	positive(v, &rl.MaxURIBytes)
	positive(v, &rl.MaxHeaders)
	positive(v, &rl.MaxMultipartParts)
	notNegative(v, &rl.MaxHeaderBytes)
	argLimits(v, &rl.MaxArgs, &rl.MaxArgNameBytes, &rl.MaxArgValueBytes, &rl.MaxArgsBytes, &rl.MaxJSONDepth, 0)
	for j, ct := range rl.ContentTypes {
		if t, sub, ok := strings.Cut(ct, "/"); !ok || t == "" || sub == "" || strings.ContainsAny(ct, " ;,") {
			v.bad(&rl.ContentTypes[j], "%q is not a media type such as application/json", ct)
		}
	}
}

// argLimits checks a listener's (least 1: they are defaulted) or a route's
// (least 0: the listener's) argument limits.
func argLimits(v *validator, args *int, name, value, total *Size, depth *int, least int) {
	atLeast(v, args, least)
	atLeast(v, name, Size(least))
	atLeast(v, value, Size(least))
	atLeast(v, total, Size(least))
	if *depth < least || *depth > MaxJSONDepthLimit {
		v.bad(depth, "must be %d to %d, got %d", least, MaxJSONDepthLimit, *depth)
	}
}

// validate checks WAF settings; the test profile and the error log are
// set at the top level only.
func (w *WAF) validate(v *validator, top, route bool) {
	if w.Mode != "" {
		oneOf(v, &w.Mode)
	}
	if w.ParanoiaLevel != 0 && (w.ParanoiaLevel < 1 || w.ParanoiaLevel > 4) {
		v.bad(&w.ParanoiaLevel, "must be 1, 2, 3 or 4, got %d", w.ParanoiaLevel)
	}
	if w.InboundThreshold < 0 {
		v.bad(&w.InboundThreshold, "must be positive")
	}
	if w.OutboundThreshold < 0 {
		v.bad(&w.OutboundThreshold, "must be positive")
	}
	for i, id := range w.Exclude.IDs {
		if id < 1 || id > 9999999 {
			v.bad(&w.Exclude.IDs[i], "%d is not a rule id", id)
		}
	}
	for i, t := range w.Exclude.Tags {
		if t == "" || strings.ContainsAny(t, " \"'") {
			v.bad(&w.Exclude.Tags[i], "%q is not a rule tag such as attack-sqli", t)
		}
	}
	for i := range w.AllowedMethods {
		v.method(&w.AllowedMethods[i])
	}
	for i := range w.RuleFiles {
		v.readable(&w.RuleFiles[i])
	}
	if !top {
		if w.TestProfile {
			v.bad(&w.TestProfile, "set the test profile in the top-level waf section only")
		}
		if w.ErrorLog != "" {
			v.bad(&w.ErrorLog, "set the error log in the top-level waf section only")
		}
	}
	if w.ExcludeFields != nil && !route {
		v.bad(&w.ExcludeFields, "field exclusions name a route's fields: set them in a route's waf section")
	}
}

func (a *ACL) validate(v *validator) {
	for i := range a.Allow {
		v.prefix(&a.Allow[i])
	}
	for i := range a.Deny {
		v.prefix(&a.Deny[i])
	}
}

// validateRateLimits checks one list of rate limits (the top level's or a
// route's); authenticated says the route verifies players' tokens.
func validateRateLimits(v *validator, list []RateLimit, authenticated bool) {
	names := map[string]bool{}
	for i := range list {
		rl := &list[i]
		v.uniqueName(names, &rl.Name, "rate limit %q is defined twice here")
		if oneOf(v, &rl.Key) && rl.Key == KeyPrincipal {
			switch {
			case rl.Principal == "jwt":
				if !authenticated {
					v.bad(&rl.Principal, "\"jwt\" needs a route that authenticates players (kind ledger, or auth: jwt)")
				}
			case strings.HasPrefix(rl.Principal, "header:") && len(rl.Principal) > len("header:"):
			default:
				v.bad(&rl.Principal, "%q is not \"jwt\" or \"header:NAME\"", rl.Principal)
			}
		} else if rl.Principal != "" {
			v.bad(&rl.Principal, "only a principal key names a principal")
		}
		if rl.Rate.Text == "" {
			v.bad(&rl.Rate, "required, such as 100/s")
		}
		if rl.Burst < 1 {
			v.bad(&rl.Burst, "must be at least 1")
		}
		for j := range rl.Exempt {
			v.prefix(&rl.Exempt[j])
		}
	}
}
