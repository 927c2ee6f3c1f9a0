// Package waf will be hedge's protective layer: the OWASP Core Rule Set
// through Coraza, JSON schemas for money routes, ACLs, request shape limits
// and rate limits, placed in the request path in cost order between route
// matching and the route handler. Not built yet; see the README's roadmap.
package waf
