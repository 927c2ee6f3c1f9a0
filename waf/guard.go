package waf

import (
	"bytes"
	"net/netip"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/valyala/fasthttp"

	"hedge/internal/problem"
	"hedge/waf/crs"
	"hedge/waf/ratelimit"
	"hedge/waf/schema"
)

// Layer names a protective step, in the order a request meets them.
type Layer string

const (
	// LayerFraming is the edge's check of a request's message framing,
	// before routing (gateway); it uses Event to report like the others.
	LayerFraming Layer = "framing"
	LayerACL     Layer = "acl"
	LayerShape   Layer = "shape"
	LayerRate    Layer = "rate_limit"
	LayerSchema  Layer = "schema"
	LayerCRS     Layer = "crs"
)

// Event is what a layer reports about one request it stopped, or, for the
// rule engine, one request with matched rules (blocked or, in detect mode,
// let through). It is valid only during the Hooks.Event call.
type Event struct {
	Layer    Layer
	Listener string
	Route    string
	ID       []byte
	Client   netip.Addr
	Method   []byte
	Path     []byte
	Blocked  bool
	Status   int
	// Policy is the rate limit that denied the request.
	Policy string
	// Rule is the limit or check that stopped the request in the framing
	// and shape layers: the limits field it broke (max_args) or the
	// framing fault (cl-te).
	Rule string
	// Detail is the reason given to the client (never rule details).
	Detail string
	// Matches are the rule engine's matched rules (LayerCRS only).
	Matches []crs.Match
}

// Hooks connect a guard to the gateway: identity, audit and metrics.
type Hooks struct {
	// Subject returns the verified JWT subject of the request, or nil when
	// it has none (principal rate limits then key by client address).
	Subject func(ctx *fasthttp.RequestCtx) []byte
	// Event receives every stop and every rule-engine match.
	Event func(ev *Event)
}

// limitRef is one rate limit as a route applies it.
type limitRef struct {
	l      *ratelimit.Limiter
	by     ratelimit.Key
	header string // principal from this header
	jwt    bool   // principal from the verified token's subject
	route  []byte
}

// Guard protects the requests of one route on one listener: ACLs and shape
// limits first, then rate limits, then the JSON schema, then the Core Rule
// Set, so a flood or a banned address never reaches the expensive part.
// It is immutable; a reload builds new guards.
type Guard struct {
	listener, route string
	acl             *ACL
	shape           Shape
	args            argLimits
	limits          []limitRef
	schema          *schema.Schema
	engine          *crs.Engine
	responses       bool
	bodyless        bool // the body is not the rule engine's to read (stream routes)
	hooks           *Hooks
}

// Engine is the guard's rule engine (nil when the route's mode is off).
func (g *Guard) Engine() *crs.Engine { return g.engine }

// Schema is the route's JSON schema, if it has one.
func (g *Guard) Schema() *schema.Schema { return g.schema }

// Pass is what an admitted request carries to Finish: its rule-engine
// transaction and the rate limit its response reports.
type Pass struct {
	tx    *crs.Tx
	shown *ratelimit.Limiter
	d     ratelimit.Decision
}

// emptyDocument stands for a body the rule engine must not read.
var emptyDocument = []byte("{}")

var reducedPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// Admit runs the layers. When it returns false the response is written and
// the request goes no further. Otherwise the caller serves the request and
// then calls Finish with the returned Pass.
func (g *Guard) Admit(ctx *fasthttp.RequestCtx, id []byte, client netip.Addr) (Pass, bool) {
	var pass Pass
	if !g.acl.Admits(client) {
		problem.Write(ctx, problem.AddressDenied, "", id)
		g.report(ctx, LayerACL, id, client, "", "", "")
		return pass, false
	}
	if rule := g.shape.Check(ctx, id); rule != "" {
		g.report(ctx, LayerShape, id, client, "", rule, "")
		return pass, false
	}
	// The arguments of the query and the cookies, and of the body unless a
	// schema will hand the rule engine a reduced document (counted below).
	tally := argTally{l: &g.args}
	h := &ctx.Request.Header
	body := ctx.Request.Body()
	if !tally.query(h.RequestURI()) || !tally.cookies(h.RawHeaders()) ||
		g.schema == nil && !g.bodyless && len(body) > 0 && !tally.body(h.ContentType(), body) {
		return pass, g.refuseArgs(ctx, &tally, id, client)
	}
	if len(g.limits) > 0 && !g.limit(ctx, id, client, &pass) {
		return pass, false
	}
	// JSON is UTF-8 (RFC 8259); a body that is not is malformed, whatever
	// an upstream's parser would make of it.
	if len(body) > 0 && isJSON(h.ContentType()) && !utf8.Valid(body) {
		problem.Write(ctx, problem.MalformedBody, "the JSON body is not valid UTF-8", id)
		g.report(ctx, LayerShape, id, client, "", "utf8", "invalid UTF-8")
		return pass, false
	}
	// A JSON body the counting pass could not read would be flattened by
	// the rule engine on a best-effort basis, at the cost of every argument
	// it finds, and then refused as malformed anyway: in block mode, refuse
	// it first. (In detect mode the engine reads it, so that its log shows
	// what it would have matched.)
	if tally.malformedDoc && g.engine != nil && g.engine.Info().Mode == crs.Block {
		problem.Write(ctx, problem.MalformedBody, "the body could not be parsed as its content type says", id)
		g.report(ctx, LayerShape, id, client, "", "json", "malformed JSON")
		return pass, false
	}
	var reduced []byte
	var buf *[]byte
	// A route's schema describes the body of every request that sends one,
	// and an empty POST, PUT or PATCH sends none it could match.
	if g.schema != nil && (len(ctx.Request.Body()) > 0 || sendsBody(ctx.Method())) {
		body := ctx.Request.Body()
		if v := g.schema.Check(body); v != nil {
			t := problem.SchemaViolation
			if v.Malformed {
				t = problem.MalformedBody
			}
			detail := v.Error()
			problem.Write(ctx, t, detail, id)
			g.report(ctx, LayerSchema, id, client, "", "", detail)
			return pass, false
		}
		if g.engine != nil {
			buf = reducedPool.Get().(*[]byte)
			reduced = g.schema.Reduce((*buf)[:0], body)
			*buf = reduced
			// What the rule engine reads of the body is the reduced
			// document: it counts against the argument limits.
			if !g.bodyless && !tally.json(reduced) {
				reducedPool.Put(buf)
				return pass, g.refuseArgs(ctx, &tally, id, client)
			}
		}
	}
	if g.engine == nil {
		return pass, true
	}
	if g.bodyless {
		if hlsPositive(ctx) {
			return pass, true
		}
		reduced = emptyDocument
	}
	tx := g.engine.Begin(ctx, id, client, reduced)
	if buf != nil {
		reducedPool.Put(buf)
	}
	// A body the engine could not parse was never inspected: refuse it in
	// detect mode too.
	if err := tx.BodyError(); err != nil {
		problem.Write(ctx, problem.MalformedBody, "the body could not be parsed as its content type says", id)
		g.reportMatches(ctx, tx, id, client, true)
		tx.End()
		return pass, false
	}
	if tx.Blocked() {
		problem.Write(ctx, problem.Blocked, "", id)
		g.reportMatches(ctx, tx, id, client, true)
		tx.End()
		return pass, false
	}
	pass.tx = tx
	return pass, true
}

// Finish sets the rate-limit headers of an admitted request's response,
// runs the response rules (when enabled), reports matches and ends the
// transaction.
func (g *Guard) Finish(ctx *fasthttp.RequestCtx, pass Pass, id []byte, client netip.Addr) {
	if pass.shown != nil {
		ratelimit.SetHeaders(&ctx.Response.Header, pass.shown.Policy(), pass.d)
	}
	tx := pass.tx
	if tx == nil {
		return
	}
	if g.responses {
		tx.Response(&ctx.Response)
	}
	g.reportMatches(ctx, tx, id, client, false)
	tx.End()
}

func sendsBody(m []byte) bool {
	return string(m) == fasthttp.MethodPost || string(m) == fasthttp.MethodPut || string(m) == fasthttp.MethodPatch
}

// isJSON reports whether a Content-Type is application/json or a +json type.
func isJSON(ct []byte) bool {
	if i := bytes.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = bytes.TrimSpace(ct)
	return bytes.EqualFold(ct, []byte("application/json")) ||
		len(ct) > 5 && bytes.EqualFold(ct[len(ct)-5:], []byte("+json"))
}

func (g *Guard) limit(ctx *fasthttp.RequestCtx, id []byte, client netip.Addr, pass *Pass) bool {
	now := time.Now()
	var ipBuf [16]byte
	var shown *limitRef
	var shownD ratelimit.Decision
	for i := range g.limits {
		lr := &g.limits[i]
		var key []byte
		switch lr.by {
		case ratelimit.ByRoute:
			key = lr.route
		case ratelimit.ByPrincipal:
			if lr.jwt && g.hooks != nil && g.hooks.Subject != nil {
				key = g.hooks.Subject(ctx)
			} else if lr.header != "" {
				key = ctx.Request.Header.Peek(lr.header)
			}
		}
		if len(key) == 0 {
			// An IPv6 subscriber holds a whole /64: one bucket for it.
			key = ratelimit.AppendAddr(ipBuf[:0], client, 64)
		}
		d := lr.l.Allow(now, client, key)
		if d.Exempt {
			continue
		}
		if !d.Allowed {
			p := lr.l.Policy()
			problem.Write(ctx, problem.RateLimited, "rate limit "+strconv.Quote(p.Name)+" exceeded", id)
			ratelimit.SetHeaders(&ctx.Response.Header, p, d)
			g.report(ctx, LayerRate, id, client, p.Name, "", "")
			return false
		}
		// Clients see one policy while allowed: the one closest to
		// running out.
		if shown == nil || d.Remaining < shownD.Remaining {
			shown, shownD = lr, d
		}
	}
	if shown != nil {
		pass.shown, pass.d = shown.l, shownD
	}
	return true
}

// refuseArgs answers a request that broke an argument limit.
func (g *Guard) refuseArgs(ctx *fasthttp.RequestCtx, t *argTally, id []byte, client netip.Addr) bool {
	r := &g.args.refusals[t.broken]
	problem.Write(ctx, r.t, r.detail, id)
	g.report(ctx, LayerShape, id, client, "", r.rule, "")
	return false
}

func (g *Guard) report(ctx *fasthttp.RequestCtx, layer Layer, id []byte, client netip.Addr, policy, rule, detail string) {
	if g.hooks == nil || g.hooks.Event == nil {
		return
	}
	g.hooks.Event(&Event{
		Layer: layer, Listener: g.listener, Route: g.route, ID: id, Client: client,
		Method: ctx.Method(), Path: ctx.Path(), Blocked: true, Status: ctx.Response.StatusCode(),
		Policy: policy, Rule: rule, Detail: detail,
	})
}

func (g *Guard) reportMatches(ctx *fasthttp.RequestCtx, tx *crs.Tx, id []byte, client netip.Addr, blocked bool) {
	if g.hooks == nil || g.hooks.Event == nil {
		return
	}
	m := tx.Matches()
	if len(m) == 0 && !blocked {
		return
	}
	g.hooks.Event(&Event{
		Layer: LayerCRS, Listener: g.listener, Route: g.route, ID: id, Client: client,
		Method: ctx.Method(), Path: ctx.Path(), Blocked: blocked, Status: ctx.Response.StatusCode(),
		Matches: m,
	})
}
