package gateway

import (
	"fmt"
	"path/filepath"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"hedge/configs"
	"hedge/waf"
	"hedge/waf/crs"
)

// The protective layer (package waf) as the edge runs it: a global ACL per
// listener, checked before routing, and one waf.Guard per route and
// listener, run between route matching and the route's handler. The guard
// decides (waf.Verdict); the edge answers (serve) and records (wafEvent).

// protectMetrics count what the protective layer stopped or saw.
type protectMetrics struct {
	stops        *prometheus.CounterVec
	matches      *prometheus.CounterVec
	connsRefused *prometheus.CounterVec
}

func newProtectMetrics(reg *prometheus.Registry) *protectMetrics {
	m := &protectMetrics{
		stops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hedge_waf_blocked_total",
			Help: "Requests the protective layer stopped, by route, layer (framing, acl, shape, rate_limit, schema, crs) and rule (the framing fault, the shape limit, the rate-limit policy or the CRS rule id).",
		}, []string{"region", "node", "route", "layer", "rule"}),
		matches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hedge_waf_rule_matches_total",
			Help: "Core Rule Set rules that matched, by route, rule id and action (blocked, detected).",
		}, []string{"region", "node", "route", "rule", "action"}),
	}
	m.connsRefused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hedge_connections_refused_total",
		Help: "Connections closed as soon as they were accepted, by listener and reason (per_ip: the address had limits.max_conns_per_ip open).",
	}, []string{"region", "node", "listener", "reason"})
	reg.MustRegister(m.stops, m.matches, m.connsRefused)
	return m
}

// wafEvent records what the protective layer stopped or saw: a line of the
// WAF audit log and the metrics. Refusals come from the verdicts the edge
// answers, the rule engine's other matches through waf.Hooks.
func (n *Node) wafEvent(ev *waf.Event) {
	g := n.g
	if g.wafAudit != nil {
		g.wafAudit.Write(n.region, n.name, ev)
	}
	pm := g.metrics.protect
	action := "detected"
	if ev.Blocked {
		action = "blocked"
	}
	for _, m := range ev.Matches {
		pm.matches.WithLabelValues(n.region, n.name, ev.Route, strconv.Itoa(m.ID), action).Inc()
	}
	if !ev.Blocked {
		return
	}
	rule := ev.Policy
	switch {
	case ev.Layer == waf.LayerCRS:
		rule = blockingRule(ev.Matches)
	case ev.Rule != "":
		rule = ev.Rule
	}
	pm.stops.WithLabelValues(n.region, n.name, ev.Route, string(ev.Layer), rule).Inc()
}

// blockingRule names the rule that decided a block: the highest-severity
// attack rule among the matches (CRS's 949110 only sums the score).
func blockingRule(ms []crs.Match) string {
	best := -1
	for i, m := range ms {
		if m.ID >= 949000 && m.ID < 950000 || m.ID >= 980000 {
			continue // the anomaly evaluation and reporting rules
		}
		if best < 0 || m.Severity < ms[best].Severity {
			best = i
		}
	}
	if best < 0 {
		if len(ms) == 0 {
			return ""
		}
		return strconv.Itoa(ms[len(ms)-1].ID)
	}
	return strconv.Itoa(ms[best].ID)
}

// buildProtection builds the listener's global ACL and one guard per route.
func (n *Node) buildProtection(st *nodeState, ls *listenerState, routes []*Route) error {
	acl, err := waf.NewACL(st.cfg.ACL)
	if err != nil {
		return err
	}
	ls.acl = acl
	hooks := &waf.Hooks{Event: n.wafEvent}
	ls.guards = make([]*waf.Guard, len(routes))
	for i, rc := range st.cfg.Routes {
		g, err := n.g.wafCache.Guard(st.cfg, waf.Scope{Region: n.region, Node: n.name, Listener: ls.cfg.Name}, ls.cfg, rc, hooks, &st.held)
		if err != nil {
			return fmt.Errorf("listener %s: %w", ls.cfg.Name, err)
		}
		ls.guards[i] = g
	}
	return nil
}

// WAFStatus is what /status reports about a route's protection on a
// listener.
type WAFStatus struct {
	Listener      string `json:"listener"`
	Route         string `json:"route"`
	Mode          string `json:"mode"`
	ParanoiaLevel int    `json:"paranoia_level,omitempty"`
	CRSVersion    string `json:"crs_version,omitempty"`
	Rules         int    `json:"rules,omitempty"`
	Engine        string `json:"engine,omitempty"`
	Schema        string `json:"schema,omitempty"`
}

// ProtectionStatus reports the protective layer's settings: the effective
// WAF per route and listener, ACLs, shape and rate limits.
type ProtectionStatus struct {
	AuditLog   string              `json:"audit_log,omitempty"`
	ACL        configs.ACL         `json:"acl"`
	RateLimits []configs.RateLimit `json:"rate_limits,omitempty"`
	WAF        []WAFStatus         `json:"waf"`
	Routes     []RouteProtection   `json:"routes"`
}

// RouteProtection is a route's own protective settings.
type RouteProtection struct {
	Route      string              `json:"route"`
	ACL        configs.ACL         `json:"acl"`
	Limits     configs.RouteLimits `json:"limits"`
	MaxBody    int64               `json:"max_body_bytes,omitempty"`
	RateLimits []configs.RateLimit `json:"rate_limits,omitempty"`
	Schema     string              `json:"schema,omitempty"`
}

func (n *Node) protectionStatus(st *nodeState) ProtectionStatus {
	ps := ProtectionStatus{ACL: st.cfg.ACL, RateLimits: st.cfg.RateLimits}
	if n.g.wafAudit != nil {
		ps.AuditLog = n.g.wafAudit.Path()
	}
	for _, lc := range st.node.Listeners {
		ls := st.listeners[lc.Name]
		if ls == nil {
			continue
		}
		for i, rc := range st.cfg.Routes {
			ws := WAFStatus{Listener: lc.Name, Route: rc.Name, Mode: "off", Schema: rc.Schema}
			if i < len(ls.guards) {
				if e := ls.guards[i].Engine(); e != nil {
					info := e.Info()
					ws.Mode, ws.ParanoiaLevel, ws.CRSVersion, ws.Rules, ws.Engine = info.Mode.String(), info.ParanoiaLevel, info.CRSVersion, info.RuleCount, info.Engine
				}
				if ls.guards[i].Model() != nil {
					ws.Mode = "learn" // the engine detects; the route also records
				}
			}
			ps.WAF = append(ps.WAF, ws)
		}
	}
	for _, rc := range st.cfg.Routes {
		ps.Routes = append(ps.Routes, RouteProtection{Route: rc.Name, ACL: rc.ACL, Limits: rc.Limits, MaxBody: int64(rc.MaxBodyBytes), RateLimits: rc.RateLimits, Schema: rc.Schema})
	}
	return ps
}

func wafAuditPath(cfg *configs.Config) string {
	return filepath.Join(cfg.DataDir, "audit", "waf.jsonl")
}
