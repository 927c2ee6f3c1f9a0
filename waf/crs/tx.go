package crs

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"unicode/utf8"

	"github.com/corazawaf/coraza/v3/experimental"
	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
	"github.com/corazawaf/coraza/v3/types"
	"github.com/valyala/fasthttp"
)

// RuleBodyTooLarge is the ID of the match hedge reports, and of the
// interruption in Block mode, when a request body exceeds Options.BodyLimit.
// It lies outside the CRS and Coraza ranges.
const RuleBodyTooLarge = 9990001

// MaxMatchData is how many bytes of matched data a Match keeps.
const MaxMatchData = 128

// Match is one rule that matched, as reported to the gateway's audit log and
// metrics.
type Match struct {
	ID       int
	Msg      string
	Data     string // matched data, at most MaxMatchData bytes (cut at a rune boundary)
	Severity int    // syslog severity as in CRS: 0 emergency .. 7 debug; -1 unset
	Phase    int    // 1 request headers, 2 request body, 3 response headers, 4 response body, 5 logging
	// Vars are the variables the rule matched in, as VARIABLE:key
	// (ARGS:json.comment, REQUEST_HEADERS:user-agent), at most MaxMatchVars.
	Vars []string
}

// MaxMatchVars is how many matched variables a Match keeps.
const MaxMatchVars = 4

// ErrBody is wrapped by Tx.BodyError.
var ErrBody = errors.New("request body not parsable by the rule engine")

var errMultipart = errors.New("multipart body failed strict validation")

// Tx is the rule engine's view of one request. It is not safe for concurrent
// use, and must not outlive the fasthttp handler that began it.
type Tx struct {
	e   *Engine
	tx  types.Transaction
	ir  *types.Interruption // request-phase interruption (Block mode only)
	err error               // body parse failure
	big bool                // body over the limit

	matches []Match
	snapped bool
	ended   bool
}

// offTx is what an Off engine hands out: every method is a no-op.
var offTx = &Tx{ended: true, snapped: true}

var (
	hdrContentType = []byte("Content-Type")
	jsonType       = "application/json"
)

// Begin runs phases 1-2 for the request in ctx. body, when non-nil, replaces
// what the rule engine sees as the body (a reduced JSON document of the
// free-text fields; content type application/json), while the upstream still
// gets the original. id is the request id; client the client address
// established from trusted proxies.
func (e *Engine) Begin(ctx *fasthttp.RequestCtx, id []byte, client netip.Addr, body []byte) *Tx {
	if e == nil || e.waf == nil {
		return offTx
	}
	t := &Tx{e: e}
	var tx types.Transaction
	if len(id) > 0 {
		tx = e.waf.(experimental.WAFWithOptions).NewTransactionWithOptions(experimental.Options{
			Context: context.Background(), ID: string(id)})
	} else {
		tx = e.waf.NewTransaction()
	}
	t.tx = tx

	cport, sip, sport := 0, "", 0
	if ra, ok := ctx.RemoteAddr().(*net.TCPAddr); ok {
		if ap := ra.AddrPort(); ap.Addr().Unmap() == client.Unmap() {
			cport = int(ap.Port())
		}
	}
	if la, ok := ctx.LocalAddr().(*net.TCPAddr); ok {
		sip, sport = la.IP.String(), la.Port
	}
	tx.ProcessConnection(client.String(), cport, sip, sport)
	h := &ctx.Request.Header
	tx.ProcessURI(string(h.RequestURI()), string(h.Method()), string(h.Protocol()))
	reduced := body != nil
	// In the order received and as sent: All() would skip an empty Host,
	// add a Content-Length the client did not send and rewrite cookies.
	for k, v := range h.AllInOrder() {
		if reduced && bytes.EqualFold(k, hdrContentType) {
			continue
		}
		tx.AddRequestHeader(string(k), string(v))
	}
	if reduced {
		tx.AddRequestHeader("Content-Type", jsonType)
	}
	if it := tx.ProcessRequestHeaders(); it != nil {
		t.interrupt(it)
		return t
	}

	if !reduced {
		body = ctx.Request.Body()
	}
	if len(body) > e.bodyLimit {
		t.big = true
		if e.opts.Mode == Block {
			t.ir = &types.Interruption{RuleID: RuleBodyTooLarge, Action: "deny", Status: fasthttp.StatusRequestEntityTooLarge}
			return t
		}
		body = body[:e.bodyLimit]
	}
	if len(body) > 0 {
		it, _, err := tx.WriteRequestBody(body)
		if err != nil {
			t.err = err
		}
		if it != nil {
			t.interrupt(it)
			return t
		}
	}
	it, err := tx.ProcessRequestBody()
	if err != nil && t.err == nil {
		t.err = err
	}
	if v, ok := tx.(interface {
		Variables() plugintypes.TransactionVariables
	}); ok && t.err == nil {
		switch vars := v.Variables(); {
		case vars.RequestBodyError().Get() == "1":
			t.err = errors.New(vars.RequestBodyErrorMsg().Get())
		case vars.MultipartStrictError().Get() == "1":
			t.err = errMultipart
		}
	}
	if t.err != nil {
		t.err = errors.Join(ErrBody, t.err)
	}
	if it != nil {
		t.interrupt(it)
	}
	return t
}

func (t *Tx) interrupt(it *types.Interruption) {
	if t.e.opts.Mode == Block {
		t.ir = it
	}
}

// Blocked reports whether the engine is in Block mode and the request phases
// were interrupted.
func (t *Tx) Blocked() bool { return t.ir != nil }

// Status is the HTTP status the interruption asks for (403 for an anomaly
// score over the threshold, 400 for an unparsable body, 413 for a body over
// the limit); 0 when not blocked.
func (t *Tx) Status() int {
	if t.ir == nil {
		return 0
	}
	if t.ir.Status == 0 {
		return fasthttp.StatusForbidden
	}
	return t.ir.Status
}

// RuleID is the ID of the rule that interrupted the request; 0 when not
// blocked.
func (t *Tx) RuleID() int {
	if t.ir == nil {
		return 0
	}
	return t.ir.RuleID
}

// BodyError is non-nil (wrapping ErrBody) when the rule engine could not parse
// the request body: truncated JSON, broken multipart, invalid XML. A body the
// engine could not read is a body it has not inspected, so the gateway should
// answer 400 in every mode but Off. In Block mode the request is also
// Blocked with Status 400 (rule 200002) unless that rule is excluded.
func (t *Tx) BodyError() error { return t.err }

// Matches returns the logged rules that matched, in evaluation order. In
// Detect mode a request that Block mode would stop has here the same rules
// (949110 for the inbound anomaly score). The slice stays valid after End.
func (t *Tx) Matches() []Match {
	if !t.snapped {
		t.snapshot()
	}
	return t.matches
}

type logged interface{ Log() bool }

func (t *Tx) snapshot() {
	t.snapped = true
	t.matches = nil
	if t.big {
		t.matches = append(t.matches, Match{ID: RuleBodyTooLarge, Msg: "Request body over the inspection limit",
			Severity: int(types.RuleSeverityCritical), Phase: int(types.PhaseRequestBody)})
	}
	for _, mr := range t.tx.MatchedRules() {
		if l, ok := mr.(logged); ok && !l.Log() {
			continue
		}
		r := mr.Rule()
		t.matches = append(t.matches, Match{
			ID:       r.ID(),
			Msg:      mr.Message(),
			Data:     truncate(mr.Data(), MaxMatchData),
			Severity: int(r.Severity()),
			Phase:    int(r.Phase()),
			Vars:     matchVars(mr.MatchedDatas()),
		})
	}
}

// matchVars names where a rule matched (copies, never request memory).
func matchVars(mds []types.MatchData) []string {
	var out []string
	for _, md := range mds {
		if len(out) == MaxMatchVars {
			break
		}
		v := md.Variable().Name()
		if k := md.Key(); k != "" {
			v += ":" + truncate(k, MaxMatchData)
		}
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// truncate cuts s as Cut does and copies it, so that it never aliases
// request memory.
func truncate(s string, n int) string {
	return string(append([]byte(nil), Cut(s, n)...))
}

// Cut returns s cut to at most n bytes without splitting a UTF-8 sequence,
// as a Match's Data is: what the audit log and learned models keep of
// matched data.
func Cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// Response runs the response phases (3-4) over resp when the engine inspects
// responses. They only log: a response is never blocked.
func (t *Tx) Response(resp *fasthttp.Response) {
	if t.ended || !t.e.opts.InspectResponses || t.ir != nil {
		return
	}
	tx := t.tx
	for k, v := range resp.Header.All() {
		tx.AddResponseHeader(string(k), string(v))
	}
	tx.ProcessResponseHeaders(resp.StatusCode(), "HTTP/1.1")
	if tx.IsResponseBodyProcessable() {
		if b := resp.Body(); len(b) > 0 {
			_, _, _ = tx.WriteResponseBody(b)
		}
		_, _ = tx.ProcessResponseBody()
	}
	t.snapped = false
}

// End runs the logging phase and releases the transaction. Matches stay
// readable; End is safe to call more than once.
func (t *Tx) End() {
	if t.ended {
		return
	}
	t.ended = true
	t.tx.ProcessLogging()
	if !t.snapped {
		t.snapshot()
	}
	_ = t.tx.Close()
	t.tx = nil
}
