// Package schema is the positive model of hedge's money routes: a JSON
// Schema per route (github.com/santhosh-tekuri/jsonschema/v6) that a body
// must pass before the rule engine sees it, and the reduction that lets the
// rule engine look only at what the schema leaves open.
//
// Check refuses, with the JSON pointer of the first failing field in
// document order:
//
//   - bodies that are not JSON, are truncated, hold invalid UTF-8, repeat a
//     key (a second parser upstream might read the copy the schema never
//     saw) or nest deeper than 64 levels — Violation.Malformed, which the
//     gateway answers with 400;
//   - well-formed bodies that break the schema, unknown fields included —
//     422.
//
// Unknown fields: an object schema that says nothing about
// additionalProperties, patternProperties or unevaluatedProperties is
// compiled as additionalProperties: false (see CompileBytes). Formats are
// assertions.
//
// Reduce then builds, for the rule engine, a JSON object of the body's
// free-text strings keyed by JSON pointer ({"/note":"…"}); the upstream
// still receives the original body. A string is pinned down, and left out,
// when the schema gives it an enum or const, a format among uuid,
// date-time, date, time, duration, ipv4 and ipv6, or a pattern anchored at
// both ends that admits only ASCII letters, digits and "-_.:+@" (so no
// quote, space, bracket or slash fits). Numbers, booleans and null are
// never inspected: the grammar already pins them. Everything else is free
// text, including "email" (a quoted local part holds anything) and any
// place the schema composes in a way the tree builder does not follow; an
// error of judgement in this package costs inspection time, not
// inspection.
//
// The shipped schemas are in Builtin: "builtin:bet" and
// "builtin:cashier-deposit".
package schema
