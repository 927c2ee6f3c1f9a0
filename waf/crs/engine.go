package crs

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"

	"github.com/corazawaf/coraza/v3"
	"github.com/corazawaf/coraza/v3/types"

	"hedge/waf/crs/jsonbody"
)

// Mode says what the engine does with a request the rules condemn.
type Mode uint8

const (
	// Off skips the rule engine: Begin returns a no-op transaction.
	Off Mode = iota
	// Detect runs every rule and reports matches but never blocks.
	Detect
	// Block interrupts a request whose anomaly score reaches the threshold.
	Block
)

func (m Mode) String() string {
	switch m {
	case Off:
		return "off"
	case Detect:
		return "detect"
	case Block:
		return "block"
	}
	return "mode(" + strconv.Itoa(int(m)) + ")"
}

// Versions of what the engine embeds, for Info and /status.
const (
	CRSVersion    = "4.25.0"
	CorazaVersion = "3.8.1"
)

// DefaultBodyLimit is the request body size the rule engine inspects when
// Options.BodyLimit is zero. The gateway's own shape limits normally reject
// larger bodies first.
const DefaultBodyLimit = 1 << 20

// Options configure one Engine. The zero value is a disabled engine.
type Options struct {
	Mode              Mode
	ParanoiaLevel     int      // 1..4 (blocking and detection PL equal); 0 = 1
	InboundThreshold  int      // CRS inbound anomaly threshold; 0 = CRS default 5
	OutboundThreshold int      // 0 = CRS default 4
	ExcludeIDs        []int    // SecRuleRemoveById
	ExcludeTags       []string // SecRuleRemoveByTag
	AllowedMethods    []string // nil = CRS default; else sets tx.allowed_methods (rule 900200)
	RuleFiles         []string // extra SecLang files, loaded after CRS (errors name file and line)
	InspectResponses  bool     // response-phase rules (3-4), log only
	TestProfile       bool     // go-ftw profile; needs the hedge_ftw build tag
	ErrorLog          io.Writer
	// BodyLimit is the largest request body handed to the rule engine; 0 =
	// DefaultBodyLimit. A larger body is never passed uninspected: Block mode
	// interrupts it with 413, Detect mode inspects the first BodyLimit bytes
	// and reports a match with ID RuleBodyTooLarge.
	BodyLimit int
	// ExcludeTargets remove one argument from some rules' targets
	// (SecRuleUpdateTargetById ID "!ARGS:key"): that argument is no longer
	// inspected by those rules, everything else still is.
	ExcludeTargets []TargetExclusion
}

// TargetExclusion takes the argument Arg out of the targets of the rules
// IDs. Arg is an argument's name as the engine reads it (json.comment, q)
// or, between slashes, a regular expression over names
// (/^json\.items\.[0-9]+\.text$/).
type TargetExclusion struct {
	Arg string
	IDs []int
}

// Info describes a built engine for status pages.
type Info struct {
	Mode          Mode
	ParanoiaLevel int
	CRSVersion    string
	RuleCount     int
	Engine        string // e.g. "coraza v3.8.1 + re2"
}

// Engine is a compiled rule set. It is safe for concurrent use; a reload
// builds a new Engine and swaps it in.
type Engine struct {
	waf       coraza.WAF
	opts      Options
	info      Info
	bodyLimit int
	logMu     sync.Mutex
	pruner    *pruner // nil: every rule runs (prune.go)
}

// ErrTestProfile is returned by New when Options.TestProfile is set in a build
// without the hedge_ftw tag.
var ErrTestProfile = errors.New("crs: the go-ftw test profile is only available in builds with the hedge_ftw tag")

// New validates o and compiles the Core Rule Set with it.
func New(o Options) (*Engine, error) {
	if o.TestProfile {
		if !testProfileBuilt {
			return nil, ErrTestProfile
		}
		o.Mode = Detect
		o.ParanoiaLevel = 4
		o.InspectResponses = true
	}
	if o.ParanoiaLevel == 0 {
		o.ParanoiaLevel = 1
	}
	if err := validate(o); err != nil {
		return nil, err
	}
	e := &Engine{opts: o, bodyLimit: o.BodyLimit}
	if e.bodyLimit == 0 {
		e.bodyLimit = DefaultBodyLimit
	}
	e.info = Info{Mode: o.Mode, ParanoiaLevel: o.ParanoiaLevel, CRSVersion: CRSVersion,
		Engine: "coraza v" + CorazaVersion + " + " + regexEngine}
	if o.Mode == Off {
		return e, nil
	}
	// The same arguments as Coraza's JSON processor, for a fraction of the
	// CPU on large bodies (see package jsonbody).
	jsonbody.Register()
	token, slot, release := "", new(*pruner), func() {}
	if !readsRuleCollection(o.RuleFiles) {
		token, slot, release = pruneSlot()
	}
	defer release()
	cfg := coraza.NewWAFConfig().WithRootFS(rootFS{}).WithDirectives(e.directives(token))
	for _, f := range o.RuleFiles {
		cfg = cfg.WithDirectivesFromFile(f)
	}
	if ex := exclusions(o); ex != "" {
		cfg = cfg.WithDirectives(ex)
	}
	if o.ErrorLog != nil {
		cfg = cfg.WithErrorCallback(e.writeErrorLog)
	}
	waf, err := coraza.NewWAF(cfg)
	if err != nil {
		return nil, fmt.Errorf("crs: %w", e.locate(err))
	}
	e.waf = waf
	if token != "" {
		e.pruner = newPruner(waf, o.ParanoiaLevel)
		*slot = e.pruner
	}
	if rc, ok := waf.(interface{ RulesCount() int }); ok {
		e.info.RuleCount = rc.RulesCount()
	}
	return e, nil
}

// Info reports what the engine runs.
func (e *Engine) Info() Info { return e.info }

func validate(o Options) error {
	var errs []error
	if o.Mode > Block {
		errs = append(errs, fmt.Errorf("mode %d unknown", o.Mode))
	}
	if o.ParanoiaLevel < 1 || o.ParanoiaLevel > 4 {
		errs = append(errs, fmt.Errorf("paranoia level %d outside 1..4", o.ParanoiaLevel))
	}
	if o.InboundThreshold < 0 || o.OutboundThreshold < 0 {
		errs = append(errs, errors.New("anomaly thresholds must not be negative"))
	}
	if o.BodyLimit < 0 {
		errs = append(errs, errors.New("body limit must not be negative"))
	}
	for _, id := range o.ExcludeIDs {
		if id <= 0 {
			errs = append(errs, fmt.Errorf("excluded rule id %d is not positive", id))
		}
	}
	for _, t := range o.ExcludeTags {
		if t == "" || strings.ContainsAny(t, "\"\\\r\n") {
			errs = append(errs, fmt.Errorf("excluded tag %q is empty or holds a quote, backslash or newline", t))
		}
	}
	for _, x := range o.ExcludeTargets {
		if x.Arg == "" || strings.ContainsAny(x.Arg, "\"|,\r\n '") || len(x.IDs) == 0 {
			errs = append(errs, fmt.Errorf("target exclusion %q: want an argument name without quotes, pipes, commas or spaces, and rule ids", x.Arg))
		}
		for _, id := range x.IDs {
			if id <= 0 {
				errs = append(errs, fmt.Errorf("target exclusion %q: rule id %d is not positive", x.Arg, id))
			}
		}
	}
	if o.AllowedMethods != nil && len(o.AllowedMethods) == 0 {
		errs = append(errs, errors.New("allowed methods: an empty list would block every request; use nil for the CRS default"))
	}
	for _, m := range o.AllowedMethods {
		if !isToken(m) {
			errs = append(errs, fmt.Errorf("allowed method %q is not an HTTP token", m))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("crs: %w", errors.Join(errs...))
	}
	return nil
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&*+-.^_`|~", c) >= 0: // RFC 9110 tchar without the quote
		default:
			return false
		}
	}
	return true
}

// directives is the configuration in load order: Coraza's recommended base,
// hedge's overrides of it, the test profile when built, CRS setup, hedge's
// CRS variables (rules 900000-900200 run before CRS's own initialization in
// phase 1, so CRS keeps them), the pruning hooks when pruneToken is set
// (prune.go; first of their phase among the CRS rules), then the rules.
func (e *Engine) directives(pruneToken string) string {
	o := e.opts
	var b strings.Builder
	b.WriteString("Include @coraza.conf-recommended\n")
	if o.Mode == Block {
		b.WriteString("SecRuleEngine On\n")
	} else {
		b.WriteString("SecRuleEngine DetectionOnly\n")
	}
	// The gateway writes its own audit log from Matches; Coraza's would be a
	// second, slower copy.
	b.WriteString("SecAuditEngine Off\n")
	// Bodies stay in memory: the limit is enforced before anything is buffered.
	fmt.Fprintf(&b, "SecRequestBodyLimit %d\nSecRequestBodyInMemoryLimit %d\n", e.bodyLimit+1, e.bodyLimit+1)
	if o.InspectResponses {
		b.WriteString("SecResponseBodyAccess On\nSecResponseBodyMimeType text/plain text/html text/xml application/json\n")
	} else {
		b.WriteString("SecResponseBodyAccess Off\n")
	}
	if o.TestProfile {
		b.WriteString(testProfileDirectives)
	}
	b.WriteString("Include @crs-setup.conf.example\n")
	// CRS's setup declares default actions for phases 1-2 only; without these,
	// response-phase and logging-phase rules would not log.
	b.WriteString("SecDefaultAction \"phase:3,log,auditlog,pass\"\n")
	b.WriteString("SecDefaultAction \"phase:4,log,auditlog,pass\"\n")
	b.WriteString("SecDefaultAction \"phase:5,log,auditlog,pass\"\n")
	fmt.Fprintf(&b, "SecAction \"id:900000,phase:1,pass,t:none,nolog,tag:'OWASP_CRS',ver:'OWASP_CRS/%s',setvar:tx.blocking_paranoia_level=%d\"\n", CRSVersion, o.ParanoiaLevel)
	fmt.Fprintf(&b, "SecAction \"id:900001,phase:1,pass,t:none,nolog,tag:'OWASP_CRS',ver:'OWASP_CRS/%s',setvar:tx.detection_paranoia_level=%d\"\n", CRSVersion, o.ParanoiaLevel)
	if o.InboundThreshold > 0 || o.OutboundThreshold > 0 {
		b.WriteString("SecAction \"id:900110,phase:1,pass,t:none,nolog,tag:'OWASP_CRS'")
		if o.InboundThreshold > 0 {
			fmt.Fprintf(&b, ",setvar:tx.inbound_anomaly_score_threshold=%d", o.InboundThreshold)
		}
		if o.OutboundThreshold > 0 {
			fmt.Fprintf(&b, ",setvar:tx.outbound_anomaly_score_threshold=%d", o.OutboundThreshold)
		}
		b.WriteString("\"\n")
	}
	if o.AllowedMethods != nil {
		fmt.Fprintf(&b, "SecAction \"id:900200,phase:1,pass,t:none,nolog,tag:'OWASP_CRS',setvar:'tx.allowed_methods=%s'\"\n",
			strings.Join(o.AllowedMethods, " "))
	}
	if pruneToken != "" {
		b.WriteString(pruneDirectives(pruneToken))
	}
	b.WriteString("Include @owasp_crs/*.conf\n")
	return b.String()
}

// exclusions come after CRS and the extra rule files so they can remove
// rules of either.
func exclusions(o Options) string {
	var b strings.Builder
	for _, id := range o.ExcludeIDs {
		fmt.Fprintf(&b, "SecRuleRemoveById %d\n", id)
	}
	for _, t := range o.ExcludeTags {
		fmt.Fprintf(&b, "SecRuleRemoveByTag \"%s\"\n", t)
	}
	for _, x := range o.ExcludeTargets {
		for _, id := range x.IDs {
			fmt.Fprintf(&b, "SecRuleUpdateTargetById %d \"!ARGS:%s\"\n", id, x.Arg)
		}
	}
	return b.String()
}

func (e *Engine) writeErrorLog(mr types.MatchedRule) {
	line := mr.ErrorLog()
	e.logMu.Lock()
	defer e.logMu.Unlock()
	_, _ = io.WriteString(e.opts.ErrorLog, line)
	if !strings.HasSuffix(line, "\n") {
		_, _ = io.WriteString(e.opts.ErrorLog, "\n")
	}
}
