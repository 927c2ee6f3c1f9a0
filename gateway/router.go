package gateway

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/valyala/fasthttp"

	"hedge/configs"
	"hedge/gateway/upstream"
)

// RouteHandler serves the requests of one matched route. Each route kind
// (proxy, ledger, stream) is one implementation, built by a RouteKind from
// its configuration.
type RouteHandler interface {
	Serve(r *Request)
}

// RouteKind builds the handler of one kind of route.
type RouteKind func(b *Build, rc configs.Route) (RouteHandler, error)

// routeKinds maps configs.Route.Kind to its builder. New kinds register here.
var routeKinds = map[string]RouteKind{
	"proxy":  newProxyRoute,
	"ledger": newMoneyRoute,
}

// Build is what route kinds may use while a node's state is assembled.
type Build struct {
	Config *configs.Config
	Region *configs.Region
	Node   *configs.Node
	Pools  map[string]*upstream.Pool
	// Money is shared by the node's money routes (nil without auth).
	Money   *moneyDeps
	metrics *metrics
}

// Route is one compiled route.
type Route struct {
	Name     string
	hosts    [][]byte // exact, lower case
	suffixes [][]byte // from "*.suffix": ".suffix"
	prefix   []byte
	methods  [][]byte
	allow    string // for 405 answers
	maxBody  int
	rewrite  []byte
	handler  RouteHandler
	stats    *routeStats
	index    int // in the configuration's order; indexes listenerState.guards
}

func compileRoute(b *Build, rc configs.Route, listenerMaxBody int64, m *metrics) (*Route, error) {
	kind, ok := routeKinds[rc.Kind]
	if !ok {
		return nil, fmt.Errorf("route %q: unknown kind %q", rc.Name, rc.Kind)
	}
	h, err := kind(b, rc)
	if err != nil {
		return nil, fmt.Errorf("route %q: %w", rc.Name, err)
	}
	r := &Route{
		Name: rc.Name, prefix: []byte(rc.Match.PathPrefix), handler: h,
		maxBody: int(listenerMaxBody), stats: m.route(b.Region.Name, b.Node.Name, rc.Name),
	}
	if rc.MaxBodyBytes > 0 {
		r.maxBody = int(rc.MaxBodyBytes)
	}
	if rc.Rewrite != "" {
		r.rewrite = []byte(rc.Rewrite)
	}
	for _, h := range rc.Match.Hosts {
		h = strings.TrimSuffix(strings.ToLower(h), ".")
		if strings.HasPrefix(h, "*.") {
			r.suffixes = append(r.suffixes, []byte(h[1:]))
		} else {
			r.hosts = append(r.hosts, []byte(h))
		}
	}
	for _, m := range rc.Match.Methods {
		r.methods = append(r.methods, []byte(m))
	}
	r.allow = strings.Join(rc.Match.Methods, ", ")
	return r, nil
}

// Router finds the route of a request: the longest matching path prefix
// among routes whose hosts match; methods are checked last, so a known path
// with the wrong method is a 405, not a 404.
type Router struct {
	routes []*Route // longest prefix first
}

func newRouter(routes []*Route) *Router {
	rs := slices.Clone(routes)
	slices.SortStableFunc(rs, func(a, b *Route) int { return len(b.prefix) - len(a.prefix) })
	return &Router{routes: rs}
}

// Match returns the route, or nil and (when only the method was wrong) the
// route whose methods should be named in Allow.
func (rt *Router) Match(host, method, path []byte) (*Route, *Route) {
	host = hostOnly(host)
	var wrongMethod *Route
	for _, r := range rt.routes {
		if !r.matchHost(host) || !matchPrefix(path, r.prefix) {
			continue
		}
		if r.matchMethod(method) {
			return r, nil
		}
		if wrongMethod == nil {
			wrongMethod = r
		}
	}
	return nil, wrongMethod
}

// matchPrefix matches on path segment boundaries: "/api/bets" matches
// "/api/bets" and "/api/bets/x" but not "/api/betsx".
func matchPrefix(path, prefix []byte) bool {
	if !bytes.HasPrefix(path, prefix) {
		return false
	}
	return len(path) == len(prefix) || prefix[len(prefix)-1] == '/' || path[len(prefix)] == '/'
}

func (r *Route) matchHost(host []byte) bool {
	if len(r.hosts) == 0 && len(r.suffixes) == 0 {
		return true
	}
	for _, h := range r.hosts {
		if equalFoldASCII(host, h) {
			return true
		}
	}
	for _, s := range r.suffixes {
		if len(host) > len(s) && equalFoldASCII(host[len(host)-len(s):], s) {
			return true
		}
	}
	return false
}

func (r *Route) matchMethod(m []byte) bool {
	if len(r.methods) == 0 {
		return true
	}
	for _, x := range r.methods {
		if bytes.Equal(m, x) {
			return true
		}
	}
	// HEAD is served wherever GET is.
	if bytes.Equal(m, []byte(fasthttp.MethodHead)) {
		for _, x := range r.methods {
			if bytes.Equal(x, []byte(fasthttp.MethodGet)) {
				return true
			}
		}
	}
	return false
}

// hostOnly strips the port and a trailing dot from a Host header.
func hostOnly(h []byte) []byte {
	if i := bytes.LastIndexByte(h, ':'); i >= 0 && !bytes.Contains(h[i:], []byte("]")) {
		h = h[:i]
	}
	return bytes.TrimSuffix(h, []byte("."))
}

func equalFoldASCII(a, lower []byte) bool {
	if len(a) != len(lower) {
		return false
	}
	for i := range a {
		c := a[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}
