package gateway

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/valyala/fasthttp"

	"hedge/configs"
	"hedge/gateway/live"
	"hedge/gateway/money"
	"hedge/gateway/route"
	"hedge/internal/httpx"
)

// routeKinds maps configs.Route.Kind to the builder of its handler; a new
// kind is one entry here and a package behind route.Handler. Each builder
// gets what it needs from the node and the state being built, explicitly.
var routeKinds = map[string]func(n *Node, st *nodeState, rc configs.Route) (route.Handler, error){
	"proxy": newProxyRoute,
	"ledger": func(_ *Node, st *nodeState, rc configs.Route) (route.Handler, error) {
		return money.NewRoute(rc, st.money)
	},
	"stream": func(n *Node, st *nodeState, rc configs.Route) (route.Handler, error) {
		return n.live.Route(rc, live.Setup{Config: st.cfg, Region: st.region, Node: st.node, Log: n.log})
	},
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
	handler  route.Handler
	stats    *routeStats
	index    int // in the configuration's order; indexes listenerState.guards
}

func (n *Node) compileRoute(st *nodeState, rc configs.Route, listenerMaxBody int64) (*Route, error) {
	kind, ok := routeKinds[string(rc.Kind)]
	if !ok {
		return nil, fmt.Errorf("route %q: unknown kind %q", rc.Name, rc.Kind)
	}
	h, err := kind(n, st, rc)
	if err != nil {
		return nil, fmt.Errorf("route %q: %w", rc.Name, err)
	}
	r := &Route{
		Name: rc.Name, prefix: []byte(rc.Match.PathPrefix), handler: h,
		maxBody: int(listenerMaxBody), stats: n.g.metrics.route(n.region, n.name, rc.Name),
	}
	if rc.MaxBodyBytes > 0 {
		r.maxBody = int(rc.MaxBodyBytes)
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
		if httpx.EqualFoldLower(host, h) {
			return true
		}
	}
	for _, s := range r.suffixes {
		if len(host) > len(s) && httpx.EqualFoldLower(host[len(host)-len(s):], s) {
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
