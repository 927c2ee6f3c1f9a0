// Package jsonbody is the rule engine's JSON body processor: it fills
// ARGS_POST (and RESPONSE_ARGS) with a JSON document's leaves, flattened to
// json.<path> names, exactly as Coraza's own "json" processor does, for a
// fraction of the CPU on large bodies.
//
// Coraza's processor copies the body into a builder that grows by doubling,
// scans it once for its nesting depth and once more to validate it, besides
// the walk that flattens it: a 1 MiB body padded with whitespace cost about
// 6 ms, nine browser GETs. Here the body is read into a buffer sized from
// Content-Length, and one pass both validates the document (as gjson.Valid
// does, the validation Coraza uses) and finds how deep it nests, skipping
// whitespace eight bytes at a time. A valid document is then flattened by a
// walk that trusts it; a document that is not valid JSON is flattened by
// gjson's own lenient walk, as Coraza does, so that its best-effort
// arguments are the same too.
//
// What a rule sees is the same as with Coraza's processor: the same names
// and values (strings unescaped by gjson, null as "", numbers and literals as
// written), one extra argument per non-empty array holding its length, the
// same argument and array-length limits (ARGUMENTS_LIMIT_REACHED), the same
// nesting limit and byte budget for the flattened form, the same error
// messages (REQBODY_PROCESSOR_ERROR_MSG), and TX:json_request_body holding a
// valid body. Only the order of ARGS_POST differs where Coraza's was random
// (it added the names in map order). TestSameAsCoraza proves it on a
// generated corpus of valid, invalid, deep and limit-crossing documents, with
// both processors registered in one process.
package jsonbody

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"

	"github.com/corazawaf/coraza/v3/collection"
	"github.com/corazawaf/coraza/v3/experimental/plugins"
	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
)

var once sync.Once

// Register makes this processor the one Coraza runs for
// ctl:requestBodyProcessor=JSON (CRS rules 200001 and 200006), in place of
// Coraza's own, for every WAF in the process. Call it before the first
// transaction; later calls do nothing.
func Register() { once.Do(func() { register("json") }) }

func register(name string) {
	plugins.RegisterBodyProcessor(name, func() plugintypes.BodyProcessor { return processor{} })
}

type processor struct{}

func (processor) ProcessRequest(r io.Reader, v plugintypes.TransactionVariables, o plugintypes.BodyProcessorOptions) error {
	body, err := read(r, v.RequestHeaders())
	if err != nil {
		return err
	}
	return process(body, v.ArgsPost(), v, o.RequestBodyRecursionLimit, o.ArgumentLimit, "json_request_body")
}

func (processor) ProcessResponse(r io.Reader, v plugintypes.TransactionVariables, o plugintypes.BodyProcessorOptions) error {
	body, err := read(r, v.ResponseHeaders())
	if err != nil {
		return err
	}
	txVar := "json_response_body"
	if v.ResponseBody() == nil {
		txVar = ""
	}
	return process(body, v.ResponseArgs(), v, o.ResponseBodyRecursionLimit, o.ArgumentLimit, txVar)
}

// maxPresize bounds the buffer a Content-Length may ask for up front (the
// gateway refuses bodies over their route's limit before the engine reads
// them, 1 MiB by default); a longer body grows the buffer as it is read.
const maxPresize = 8 << 20

// read returns the whole body, in one allocation when Content-Length says
// how long it is.
func read(r io.Reader, headers collection.Map) (string, error) {
	var b strings.Builder
	if cl := headers.Get("content-length"); len(cl) > 0 {
		if n, err := strconv.Atoi(cl[0]); err == nil && n > 0 {
			b.Grow(min(n, maxPresize))
		}
	}
	if _, err := io.Copy(&b, r); err != nil {
		return "", err
	}
	return b.String(), nil
}

// limitReached is ARGUMENTS_LIMIT_REACHED's setter (Coraza's Single).
type limitReached interface{ Set(string) }

// process flattens body into col and reports what Coraza's processor
// reports: the arguments are added even when the document turns out
// invalid, so that rules inspect what could be read.
func process(body string, col collection.Map, v plugintypes.TransactionVariables, depthLimit, argLimit int, txVar string) error {
	f := flattener{s: body, add: col.Add, argLimit: argLimit,
		budget: max(len(body)*flattenBytesFactor, flattenBytesFloor)}
	f.key = append(f.key, "json"...)
	valid, deep := validate(body, depthLimit)
	switch {
	case valid || deep:
		// Valid up to where the walk can go: it stops at the container
		// nested too deep, which is reached before any byte that is not.
		f.walk(depthLimit)
	default:
		f.walkLenient(depthLimit)
	}
	if f.truncated {
		if s, ok := v.ArgumentsLimitReached().(limitReached); ok {
			s.Set("1")
		}
	}
	switch {
	case f.err != nil:
		return f.err
	case deep, !valid && nestingExceeds(body, depthLimit):
		return errRecursion
	case !valid:
		return errInvalid
	}
	if tx := v.TX(); tx != nil && txVar != "" {
		tx.Set(txVar, []string{body})
	}
	return nil
}

// Coraza's bound on the flattened form: names are whole paths, so a body of
// long names nested deep would otherwise flatten to many times its size.
const (
	flattenBytesFactor = 8
	flattenBytesFloor  = 4096
)

var (
	errRecursion = errors.New("max recursion reached while reading json object")
	errInvalid   = errors.New("invalid JSON")
)

func budgetError(budget, bodyLen int) error {
	return fmt.Errorf("flattened form exceeds the %d byte budget for a %d byte body", budget, bodyLen)
}
