// Package waf is hedge's protective layer. A Guard protects one route on one
// listener with the layers in cost order, so a flood or a banned address
// never reaches the expensive part:
//
//  1. ACL (global, checked by the listener before routing, then the
//     route's): allow/deny CIDRs on the client address established from
//     trusted proxies → 403;
//  2. shape limits: URI length (414), header count and size (431), body
//     size (413), content types (415), Content-Length beside chunked
//     encoding (400);
//  3. rate limits (package ratelimit): by client address, principal or
//     route → 429 with RateLimit headers;
//  4. the route's JSON schema (package schema): 422 naming the field, 400
//     for JSON that does not parse; only the free-text fields go on;
//  5. the OWASP Core Rule Set (package crs) → 403 without rule details.
//
// Every stop and every rule match is reported through Hooks (the gateway's
// audit log and metrics). Cache keeps compiled engines, schemas and rate
// limiters across reloads.
package waf
