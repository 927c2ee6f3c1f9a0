package waf

import (
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"hedge/configs"
	"hedge/waf/crs"
	"hedge/waf/learn"
	"hedge/waf/ratelimit"
	"hedge/waf/schema"
)

// Cache keeps what guards share: compiled rule engines (compiling the Core
// Rule Set takes most of a second), schemas and rate limiters. A reload that
// leaves a route's settings alone reuses its engine and keeps its rate-limit
// buckets. Entries are reference-counted by the states that hold them; the
// last Release closes a limiter.
type Cache struct {
	mu       sync.Mutex
	engines  map[string]*cached[*crs.Engine]
	schemas  map[string]*cached[*schema.Schema]
	limiters map[string]*cached[*ratelimit.Limiter]
	logs     map[string]*os.File
	learning *learn.Store // the models of routes in learn mode (Learn)
}

// LearnFile is where a node with data directory dir keeps what its routes
// in learn mode saw (`hedge waf suggest` reads it).
func LearnFile(dir string) string { return filepath.Join(dir, "waf", "learn.json") }

// LearnSaveInterval is how often the models are written while learning.
const LearnSaveInterval = 10 * time.Second

// Learn keeps the models of routes in learn mode in the file path (loaded
// now, written every interval and on Close), across reloads and restarts.
// Without it, a learn route's model lives until the process ends.
func (c *Cache) Learn(path string, every time.Duration) error {
	st, err := learn.Open(path, every)
	if err != nil {
		return fmt.Errorf("waf learning: %w", err)
	}
	c.mu.Lock()
	old := c.learning
	c.learning = st
	c.mu.Unlock()
	if old != nil {
		_ = old.Close()
	}
	return nil
}

// Learned is what the routes in learn mode have seen so far, in the form
// of LearnFile (`hedge waf suggest -file` reads it); no routes when none
// learns.
func (c *Cache) Learned() ([]byte, error) {
	c.mu.Lock()
	st := c.learning
	c.mu.Unlock()
	if st == nil {
		st, _ = learn.Open("", 0) // in memory, empty
	}
	return st.Encode()
}

// model is route's model, for a guard in learn mode.
func (c *Cache) model(route string) *learn.Model {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.learning == nil {
		st, _ := learn.Open("", 0) // in memory: nothing to load
		c.learning = st
	}
	return c.learning.Model(route)
}

type cached[T any] struct {
	v    T
	refs int
}

// NewCache returns an empty cache.
func NewCache() *Cache {
	return &Cache{
		engines:  map[string]*cached[*crs.Engine]{},
		schemas:  map[string]*cached[*schema.Schema]{},
		limiters: map[string]*cached[*ratelimit.Limiter]{},
		logs:     map[string]*os.File{},
	}
}

// Close closes every limiter and error log; guards must no longer run.
func (c *Cache) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range c.limiters {
		l.v.Close()
	}
	for _, f := range c.logs {
		f.Close()
	}
	clear(c.limiters)
	clear(c.logs)
	if c.learning != nil {
		_ = c.learning.Close()
		c.learning = nil
	}
}

// Held is what one node state holds in the cache; Release gives it back.
type Held struct {
	c                          *Cache
	engines, schemas, limiters []string
}

// Release drops the state's references (safe to call twice).
func (h *Held) Release() {
	if h == nil || h.c == nil {
		return
	}
	c := h.c
	c.mu.Lock()
	defer c.mu.Unlock()
	release(c.engines, h.engines, nil)
	release(c.schemas, h.schemas, nil)
	release(c.limiters, h.limiters, (*ratelimit.Limiter).Close)
	h.engines, h.schemas, h.limiters, h.c = nil, nil, nil, nil
}

// release drops one reference for each key, and the entries nobody holds
// any more (closing them, when close is set).
func release[T any](m map[string]*cached[T], keys []string, close func(T) error) {
	for _, k := range keys {
		if e := m[k]; e != nil {
			if e.refs--; e.refs <= 0 {
				if close != nil {
					close(e.v)
				}
				delete(m, k)
			}
		}
	}
}

// ruleContentTypes is CRS's "request content type is not allowed" rule.
const ruleContentTypes = 920420

var streamMethods = []string{"GET", "HEAD", "POST", "OPTIONS", "PATCH", "DELETE"}

// Scope names where a guard runs, for rate-limit buckets and reports.
type Scope struct {
	Region, Node, Listener string
}

// Guard builds the guard of route on listener. Global rate limits are
// shared by every route of the node; a route's own are its own. The global
// ACL is not part of it: the listener checks it before routing (NewACL).
func (c *Cache) Guard(cfg *configs.Config, sc Scope, l configs.Listener, r configs.Route, hooks *Hooks, h *Held) (*Guard, error) {
	if h.c == nil {
		h.c = c
	}
	maxBody := int64(r.MaxBodyBytes)
	if maxBody == 0 {
		maxBody = int64(l.Limits.MaxBodyBytes)
	}
	g := &Guard{listener: sc.Listener, route: r.Name, hooks: hooks, shape: NewShape(r.Limits, maxBody), args: newArgLimits(r.Limits, l.Limits)}
	acl, err := NewACL(r.ACL)
	if err != nil {
		return nil, fmt.Errorf("route %s: %w", r.Name, err)
	}
	g.acl = acl
	nodeScope := sc.Region + "/" + sc.Node
	for _, rl := range cfg.RateLimits {
		lr, err := c.limiter(nodeScope+"//"+rl.Name, rl, r.Name, h)
		if err != nil {
			return nil, fmt.Errorf("rate limit %s: %w", rl.Name, err)
		}
		g.limits = append(g.limits, lr)
	}
	for _, rl := range r.RateLimits {
		lr, err := c.limiter(nodeScope+"/"+r.Name+"/"+rl.Name, rl, r.Name, h)
		if err != nil {
			return nil, fmt.Errorf("route %s: rate limit %s: %w", r.Name, rl.Name, err)
		}
		g.limits = append(g.limits, lr)
	}
	if r.Schema != "" {
		s, err := c.schema(r.Schema, h)
		if err != nil {
			return nil, fmt.Errorf("route %s: schema: %w", r.Name, err)
		}
		g.schema = s
	}
	eff := r.WAF.Over(l.WAF.Over(cfg.WAF))
	if r.Kind == "stream" && eff.AllowedMethods == nil {
		// WHIP and WHEP end sessions with DELETE and trickle ICE with
		// PATCH (RFC 9725), which CRS's default list refuses.
		eff.AllowedMethods = streamMethods
	}
	if eff.Mode != "off" {
		opts, err := c.engineOptions(cfg.WAF, eff, l)
		if err != nil {
			return nil, err
		}
		// CRS's content-type list (rule 920420) knows neither WHIP/WHEP's
		// application/sdp nor merge-patch JSON; a route that names its own
		// types (415 in the shape layer), and a stream route, whose handler
		// accepts only its SDP types, are held to their stricter list.
		if len(r.Limits.ContentTypes) > 0 || r.Kind == "stream" {
			opts.ExcludeIDs = append(slices.Clone(opts.ExcludeIDs), ruleContentTypes)
		}
		opts.ExcludeTargets = targetExclusions(eff.ExcludeFields, r.Schema != "")
		if eff.Mode == configs.WAFLearn {
			g.learn = c.model(r.Name)
		}
		// A stream route's bodies are SDP offers and ICE fragments, parsed
		// strictly by the stream package (pion); the rule engine reads SDP
		// as form data and mistakes attribute lines for shell commands. Its
		// headers, path and query are inspected as everywhere, but for
		// LL-HLS requests of the players' exact shape under its prefix.
		if r.Kind == "stream" {
			g.bodyless = true
			g.hlsPrefix = []byte(strings.TrimSuffix(r.Match.PathPrefix, "/") + "/")
		}
		e, err := c.engine(opts, h)
		if err != nil {
			return nil, fmt.Errorf("route %s: waf: %w", r.Name, err)
		}
		g.engine = e
		g.responses = opts.InspectResponses
	}
	return g, nil
}

// targetExclusions are a route's field exclusions as the rule engine names
// the arguments: a body field /a/b is json.a.b, or json./a/b on a route
// with a schema (whose reduced document is keyed by JSON pointer); * (any
// array index) makes the name a regular expression; ?q is the query
// parameter q.
func targetExclusions(fs []configs.FieldExclusion, schema bool) []crs.TargetExclusion {
	var out []crs.TargetExclusion
	for _, f := range fs {
		x := crs.TargetExclusion{IDs: f.IDs}
		segs, ok := f.FieldSegments()
		switch {
		case !ok:
			x.Arg = f.QueryParam()
		case !schema && !slices.Contains(segs, "*"):
			x.Arg = "json." + strings.Join(segs, ".")
		default:
			// SecLang reads a slash in an argument's name as the start of
			// a regular expression: a pointer is written as one, escaped.
			lead, sep := `^json\.`, `\.`
			if schema {
				lead, sep = `^json\.\/`, `\/`
			}
			parts := slices.Clone(segs)
			for i, s := range parts {
				if s == "*" {
					parts[i] = "[0-9]+"
				}
			}
			x.Arg = "/" + lead + strings.Join(parts, sep) + "$/"
		}
		out = append(out, x)
	}
	return out
}

func (c *Cache) limiter(key string, rl configs.RateLimit, route string, h *Held) (limitRef, error) {
	by, err := ratelimit.ParseKey(string(rl.Key))
	if err != nil {
		return limitRef{}, err
	}
	p := ratelimit.Policy{Name: rl.Name, By: by, Rate: rl.Rate.PerSecond, Burst: rl.Burst, Window: rl.Rate.Window}
	for _, s := range rl.Exempt {
		pf, _ := configs.ParsePrefix(s) // validated
		p.Exempt = append(p.Exempt, pf)
	}
	if err := p.Validate(); err != nil {
		return limitRef{}, err
	}
	// The key carries the settings: a reload that changes them starts
	// fresh buckets, one that keeps them keeps the buckets.
	key += "\x00" + string(rl.Key) + "\x00" + rl.Principal + "\x00" + strconv.FormatFloat(p.Rate, 'g', -1, 64) + "\x00" + strconv.Itoa(p.Burst) + "\x00" + p.Window.String() + "\x00" + prefixes(p.Exempt)
	c.mu.Lock()
	e := c.limiters[key]
	if e == nil {
		e = &cached[*ratelimit.Limiter]{v: ratelimit.New(p)}
		c.limiters[key] = e
	}
	e.refs++
	c.mu.Unlock()
	h.limiters = append(h.limiters, key)
	lr := limitRef{l: e.v, by: by, route: []byte(route), detail: "rate limit " + strconv.Quote(rl.Name) + " exceeded"}
	switch {
	case rl.Principal == "jwt":
		lr.jwt = true
	case strings.HasPrefix(rl.Principal, "header:"):
		lr.header = strings.TrimPrefix(rl.Principal, "header:")
	}
	return lr, nil
}

func prefixes(ps []netip.Prefix) string {
	var b strings.Builder
	for _, p := range ps {
		b.WriteString(p.String())
		b.WriteByte(',')
	}
	return b.String()
}

func (c *Cache) schema(ref string, h *Held) (*schema.Schema, error) {
	key := ref + "\x00" + fileStamp(ref)
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.schemas[key]
	if e == nil {
		s, err := schema.Load(ref)
		if err != nil {
			return nil, err
		}
		e = &cached[*schema.Schema]{v: s}
		c.schemas[key] = e
	}
	e.refs++
	h.schemas = append(h.schemas, key)
	return e.v, nil
}

// fileStamp identifies a file's version, so an edited rule or schema file
// is compiled again on reload.
func fileStamp(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return ""
	}
	return strconv.FormatInt(fi.Size(), 10) + "@" + strconv.FormatInt(fi.ModTime().UnixNano(), 10)
}

func (c *Cache) engineOptions(top, eff configs.WAF, l configs.Listener) (crs.Options, error) {
	o := crs.Options{
		ParanoiaLevel:     eff.ParanoiaLevel,
		InboundThreshold:  eff.InboundThreshold,
		OutboundThreshold: eff.OutboundThreshold,
		ExcludeIDs:        eff.Exclude.IDs,
		ExcludeTags:       eff.Exclude.Tags,
		AllowedMethods:    eff.AllowedMethods,
		RuleFiles:         eff.RuleFiles,
		InspectResponses:  eff.InspectResponses != nil && *eff.InspectResponses,
		TestProfile:       top.TestProfile,
		BodyLimit:         int(l.Limits.MaxBodyBytes),
	}
	switch eff.Mode {
	case "block":
		o.Mode = crs.Block
	case "detect", "learn":
		o.Mode = crs.Detect
	}
	if top.ErrorLog != "" {
		w, err := c.errorLog(top.ErrorLog)
		if err != nil {
			return o, err
		}
		o.ErrorLog = w
	}
	return o, nil
}

func (c *Cache) errorLog(path string) (io.Writer, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f := c.logs[path]; f != nil {
		return f, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("waf error log: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("waf error log: %w", err)
	}
	c.logs[path] = f
	return f, nil
}

func (c *Cache) engine(o crs.Options, h *Held) (*crs.Engine, error) {
	key := fmt.Sprintf("%v|%d|%d|%d|%v|%v|%v|%v|%v|%d|%p", o.Mode, o.ParanoiaLevel, o.InboundThreshold, o.OutboundThreshold,
		o.ExcludeIDs, o.ExcludeTags, o.AllowedMethods, o.InspectResponses, o.TestProfile, o.BodyLimit, o.ErrorLog)
	for _, f := range o.RuleFiles {
		key += "|" + f + "@" + fileStamp(f)
	}
	for _, x := range o.ExcludeTargets {
		key += fmt.Sprintf("|!%s%v", x.Arg, x.IDs)
	}
	c.mu.Lock()
	e := c.engines[key]
	if e != nil {
		e.refs++
		c.mu.Unlock()
		h.engines = append(h.engines, key)
		return e.v, nil
	}
	c.mu.Unlock()
	// Compile outside the lock: it takes long, and two nodes compiling the
	// same settings at once only waste a little work.
	eng, err := crs.New(o)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if e = c.engines[key]; e == nil {
		e = &cached[*crs.Engine]{v: eng}
		c.engines[key] = e
	}
	e.refs++
	c.mu.Unlock()
	h.engines = append(h.engines, key)
	return e.v, nil
}

// Check builds every guard cfg describes — rule engines with their extra
// rule files, schemas, rate limits — and reports the first that fails, so
// `hedge check` catches what only compiling finds (a SecLang syntax error,
// an unknown builtin schema).
func Check(cfg *configs.Config) error {
	c := NewCache()
	defer c.Close()
	var h Held
	defer h.Release()
	for _, reg := range cfg.Regions {
		for _, n := range reg.Nodes {
			for _, l := range n.Listeners {
				for _, r := range cfg.Routes {
					sc := Scope{Region: reg.Name, Node: n.Name, Listener: l.Name}
					if _, err := c.Guard(cfg, sc, l, r, nil, &h); err != nil {
						return fmt.Errorf("region %s node %s listener %s: %w", reg.Name, n.Name, l.Name, err)
					}
				}
			}
		}
	}
	return nil
}
