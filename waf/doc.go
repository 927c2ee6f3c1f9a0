// Package waf is hedge's protective layer. A Guard protects one route on one
// listener with the layers in cost order, so a flood or a banned address
// never reaches the expensive part:
//
//  1. ACL (global, checked by the listener before routing, then the
//     route's): allow/deny CIDRs on the client address established from
//     trusted proxies → 403;
//  2. shape limits: URI length (414), header count and size (431), body
//     size and multipart parts (413), content types (415);
//  3. argument limits: what the rule engine would read as arguments —
//     query, cookies, body fields — counted in one pass → 400;
//  4. rate limits (package ratelimit): by client address, principal (the
//     identity the edge established, read through Identity) or route →
//     429 with RateLimit headers;
//  5. the route's JSON schema (package schema): 422 naming the field, 400
//     for JSON that does not parse; only the free-text fields go on;
//  6. the OWASP Core Rule Set (package crs) → 403 without rule details.
//
// A layer decides, the edge answers: Admit returns a Verdict — allowed, or
// refused with the problem, its headers and the Event for the audit log
// and metrics — and never writes a response itself. The rule engine's
// matches on requests it lets through (detect mode, response rules) go to
// Hooks. Framing (where a request ends) is the edge's, before routing.
// Cache keeps compiled engines, schemas and rate limiters across reloads.
package waf
