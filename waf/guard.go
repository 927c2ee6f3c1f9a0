package waf

import (
	"bytes"
	"net/netip"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/valyala/fasthttp"

	"hedge/internal/problem"
	"hedge/waf/crs"
	"hedge/waf/learn"
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

// Event is what a layer reports about one request it stopped (a Verdict's
// Event), or, for the rule engine, one request it let through with matched
// rules (detect mode, response rules: Hooks.Event). Method and Path alias
// the request: an Event is valid only while the request is.
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

// Hooks connect a guard to the gateway's audit log and metrics for what
// is not a refusal.
type Hooks struct {
	// Event receives the rule engine's matches on requests it let through
	// (detect mode, response rules); refusals carry theirs in the Verdict.
	Event func(ev *Event)
}

// Identity is who a request is from, as the edge established it (once per
// request; the guard only reads it).
type Identity interface {
	// Principal is the verified token's subject, nil when the request has
	// none: principal rate limits then key by the client's address.
	Principal() []byte
}

// Verdict is the guard's decision on one request: allowed (the zero
// Verdict), or refused. A refusal is the problem the edge answers with
// (Refusal), the rate-limit headers of a 429 (SetHeaders), and the Event
// for the audit log and metrics. The guard itself never writes an answer.
type Verdict struct {
	problem.Refusal
	Event Event
	limit *ratelimit.Limiter // the rate limit that refused
	d     ratelimit.Decision
}

// Allowed reports whether the request may go on.
func (v *Verdict) Allowed() bool { return !v.Refused() }

// SetHeaders sets what a rate limit's refusal tells the client —
// RateLimit-Policy, RateLimit and Retry-After — on h, once the problem is
// written (writing a problem resets the response).
func (v *Verdict) SetHeaders(h *fasthttp.ResponseHeader) {
	if v.limit != nil {
		ratelimit.SetHeaders(h, v.limit.Policy(), v.d)
	}
}

// limitRef is one rate limit as a route applies it.
type limitRef struct {
	l      *ratelimit.Limiter
	by     ratelimit.Key
	header string // principal from this header
	jwt    bool   // principal from the verified token's subject
	route  []byte
	detail string // of its refusal
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
	// hlsPrefix is a stream route's path prefix, ending in '/': LL-HLS
	// requests of the players' exact shape under it skip the rule engine.
	hlsPrefix []byte
	hooks     *Hooks
	// learn records the shape of what the route lets through (learn mode).
	learn *learn.Model
}

// Engine is the guard's rule engine (nil when the route's mode is off).
func (g *Guard) Engine() *crs.Engine { return g.engine }

// Model is what the route learned (nil unless its mode is learn).
func (g *Guard) Model() *learn.Model { return g.learn }

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

// Admit runs the layers and returns their verdict. When it allows the
// request, the caller serves it and then calls Finish with the returned
// Pass; when it refuses, the caller answers with the verdict. who is the
// request's identity, asked for only by principal rate limits (nil: none).
func (g *Guard) Admit(ctx *fasthttp.RequestCtx, id []byte, client netip.Addr, who Identity) (Pass, Verdict) {
	var pass Pass
	if !g.acl.Admits(client) {
		return pass, g.refuse(ctx, id, client, LayerACL, problem.Refuse(problem.AddressDenied, ""), "", "")
	}
	if f, rule := g.shape.Check(ctx); f.Refused() {
		return pass, g.refuse(ctx, id, client, LayerShape, f, rule, "")
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
	if len(g.limits) > 0 {
		if v := g.limit(ctx, id, client, who, &pass); !v.Allowed() {
			return pass, v
		}
	}
	// JSON is UTF-8 (RFC 8259); a body that is not is malformed, whatever
	// an upstream's parser would make of it.
	if len(body) > 0 && isJSON(h.ContentType()) && !utf8.Valid(body) {
		return pass, g.refuse(ctx, id, client, LayerShape, problem.Refuse(problem.MalformedBody, "the JSON body is not valid UTF-8"), "utf8", "invalid UTF-8")
	}
	// A JSON body the counting pass could not read would be flattened by
	// the rule engine on a best-effort basis, at the cost of every argument
	// it finds, and then refused as malformed anyway: in block mode, refuse
	// it first. (In detect mode the engine reads it, so that its log shows
	// what it would have matched.)
	if tally.malformedDoc && g.engine != nil && g.engine.Info().Mode == crs.Block {
		return pass, g.refuse(ctx, id, client, LayerShape, problem.Refuse(problem.MalformedBody, malformedDetail), "json", "malformed JSON")
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
			return pass, g.refuse(ctx, id, client, LayerSchema, problem.Refuse(t, detail), "", detail)
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
		return pass, Verdict{}
	}
	if g.bodyless {
		if hlsPositive(ctx, g.hlsPrefix) {
			return pass, Verdict{}
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
		return pass, g.refuseCRS(ctx, id, client, tx, problem.Refuse(problem.MalformedBody, malformedDetail))
	}
	if tx.Blocked() {
		return pass, g.refuseCRS(ctx, id, client, tx, problem.Refuse(problem.Blocked, ""))
	}
	pass.tx = tx
	return pass, Verdict{}
}

const malformedDetail = "the body could not be parsed as its content type says"

// Finish sets the rate-limit headers of an admitted request's response,
// runs the response rules (when enabled), reports matches and ends the
// transaction.
func (g *Guard) Finish(ctx *fasthttp.RequestCtx, pass Pass, id []byte, client netip.Addr) {
	if pass.shown != nil {
		ratelimit.SetHeaders(&ctx.Response.Header, pass.shown.Policy(), pass.d)
	}
	tx := pass.tx
	if g.learn != nil {
		var m []crs.Match
		if tx != nil {
			m = tx.Matches()
		}
		h := &ctx.Request.Header
		g.learn.Observe(ctx.URI().QueryString(), string(h.ContentType()), ctx.Request.Body(), client, m)
	}
	if tx == nil {
		return
	}
	if g.responses {
		tx.Response(&ctx.Response)
	}
	g.reportMatches(ctx, tx, id, client)
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

func (g *Guard) limit(ctx *fasthttp.RequestCtx, id []byte, client netip.Addr, who Identity, pass *Pass) Verdict {
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
			if lr.jwt && who != nil {
				key = who.Principal()
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
			v := g.refuse(ctx, id, client, LayerRate, problem.Refuse(problem.RateLimited, lr.detail), "", "")
			v.Event.Policy = lr.l.Policy().Name
			v.limit, v.d = lr.l, d
			return v
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
	return Verdict{}
}

// refuseArgs is the verdict on a request that broke an argument limit.
func (g *Guard) refuseArgs(ctx *fasthttp.RequestCtx, t *argTally, id []byte, client netip.Addr) Verdict {
	r := &g.args.refusals[t.broken]
	return g.refuse(ctx, id, client, LayerShape, problem.Refuse(r.t, r.detail), r.rule, "")
}

// refuse is the verdict of layer refusing the request with f; rule and
// detail are what its event records.
func (g *Guard) refuse(ctx *fasthttp.RequestCtx, id []byte, client netip.Addr, layer Layer, f problem.Refusal, rule, detail string) Verdict {
	return Verdict{Refusal: f, Event: Event{
		Layer: layer, Listener: g.listener, Route: g.route, ID: id, Client: client,
		Method: ctx.Method(), Path: ctx.Path(), Blocked: true, Status: f.Type.Status,
		Rule: rule, Detail: detail,
	}}
}

// refuseCRS is the rule engine's verdict refusing the request with f; its
// event carries the matched rules. It ends tx.
func (g *Guard) refuseCRS(ctx *fasthttp.RequestCtx, id []byte, client netip.Addr, tx *crs.Tx, f problem.Refusal) Verdict {
	v := g.refuse(ctx, id, client, LayerCRS, f, "", "")
	v.Event.Matches = tx.Matches()
	tx.End()
	return v
}

// reportMatches reports the rule engine's matches on a request it let
// through.
func (g *Guard) reportMatches(ctx *fasthttp.RequestCtx, tx *crs.Tx, id []byte, client netip.Addr) {
	if g.hooks == nil || g.hooks.Event == nil {
		return
	}
	m := tx.Matches()
	if len(m) == 0 {
		return
	}
	g.hooks.Event(&Event{
		Layer: LayerCRS, Listener: g.listener, Route: g.route, ID: id, Client: client,
		Method: ctx.Method(), Path: ctx.Path(), Status: ctx.Response.StatusCode(), Matches: m,
	})
}
