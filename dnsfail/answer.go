package dnsfail

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"hedge/configs"
)

// policy picks the edges that answer one query from the service's current
// view. scope is the ECS scope prefix length the answer is valid for (0:
// the same for every client).
type policy interface {
	pick(v *view, client netip.Addr) (addrs []netip.Addr, scope int)
}

// service is a name answered with edges.
type service struct {
	name    string // canonical, lower case
	policy  policy
	kind    string
	regions []string
	ttl     time.Duration
	edges   []*edge

	view atomic.Pointer[view]
	// st is the state the service belongs to; fastName its wire name.
	st       *state
	fastName []byte

	mu        sync.Mutex // serialises rebuilds and overrides
	overrides map[string]Override
	last      Change
}

// Override forces a region into or out of a service's answers.
type Override struct {
	Region string    `json:"region"`
	Mode   string    `json:"mode"` // in | out
	Reason string    `json:"reason"`
	By     string    `json:"by"`
	At     time.Time `json:"at"`
}

// view is what a service answers with now, rebuilt on every health or
// override change and read without locks by queries.
type view struct {
	// regions are the candidate regions in the service's order, each with
	// the addresses that may answer (healthy, or all when failing open).
	regions  []regionView
	union    []netip.Addr
	failOpen bool
}

type regionView struct {
	name  string
	addrs []netip.Addr
}

// rebuild computes the view from the edges' health and the overrides.
func (s *service) rebuild() *view {
	v := &view{}
	healthy := 0
	for _, r := range s.regions {
		rv := regionView{name: r}
		mode := s.overrides[r].Mode
		for _, e := range s.edges {
			if e.region != r || mode == "out" {
				continue
			}
			if mode == "in" || e.target.Healthy() {
				rv.addrs = append(rv.addrs, e.addrs...)
			}
		}
		healthy += len(rv.addrs)
		v.regions = append(v.regions, rv)
	}
	if healthy == 0 {
		// Fail open: an answer naming every candidate beats no answer.
		// Regions forced out stay out, unless that leaves nothing.
		v.failOpen = true
		for _, respectOut := range []bool{true, false} {
			for i, r := range s.regions {
				for _, e := range s.edges {
					if e.region == r && !(respectOut && s.overrides[r].Mode == "out") {
						v.regions[i].addrs = append(v.regions[i].addrs, e.addrs...)
					}
				}
			}
			if slices.ContainsFunc(v.regions, func(r regionView) bool { return len(r.addrs) > 0 }) {
				break
			}
		}
	}
	for _, rv := range v.regions {
		v.union = append(v.union, rv.addrs...)
	}
	return v
}

// describe renders a view for logs, status and change detection.
func (v *view) describe() string {
	var b strings.Builder
	for i, r := range v.regions {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%s=%v", r.name, r.addrs)
	}
	if v.failOpen {
		b.WriteString(" (fail open)")
	}
	return b.String()
}

type allPolicy struct{}

func (allPolicy) pick(v *view, _ netip.Addr) ([]netip.Addr, int) { return v.union, 0 }

type failoverPolicy struct{}

func (failoverPolicy) pick(v *view, _ netip.Addr) ([]netip.Addr, int) {
	for _, r := range v.regions {
		if len(r.addrs) > 0 {
			return r.addrs, 0
		}
	}
	return nil, 0
}

// nearestPolicy orders the regions by the client's prefix (longest match in
// the nearest table), then the service's own order.
type nearestPolicy struct {
	rules []nearestRule // longest prefix first
}

type nearestRule struct {
	prefix netip.Prefix
	order  []int // indexes into the service's regions
}

func newNearest(table []configs.NearestRule, regions []string) nearestPolicy {
	var p nearestPolicy
	for _, r := range table {
		pfx, err := netip.ParsePrefix(r.CIDR)
		if err != nil {
			continue // validated
		}
		rule := nearestRule{prefix: pfx.Masked()}
		for _, name := range r.Regions {
			if i := slices.Index(regions, name); i >= 0 {
				rule.order = append(rule.order, i)
			}
		}
		p.rules = append(p.rules, rule)
	}
	slices.SortStableFunc(p.rules, func(a, b nearestRule) int { return b.prefix.Bits() - a.prefix.Bits() })
	return p
}

func (p nearestPolicy) pick(v *view, client netip.Addr) ([]netip.Addr, int) {
	client = client.Unmap()
	for _, r := range p.rules {
		if !client.IsValid() || !r.prefix.Contains(client) {
			continue
		}
		for _, i := range r.order {
			if len(v.regions[i].addrs) > 0 {
				return v.regions[i].addrs, r.prefix.Bits()
			}
		}
		a, _ := failoverPolicy{}.pick(v, client)
		return a, r.prefix.Bits()
	}
	a, _ := failoverPolicy{}.pick(v, client)
	// No rule covers the client; a longer prefix might, so the answer is
	// only valid for the client's whole address.
	return a, -1
}

func newPolicy(kind string, table []configs.NearestRule, regions []string) policy {
	switch kind {
	case "nearest":
		return newNearest(table, regions)
	case "all":
		return allPolicy{}
	default:
		return failoverPolicy{}
	}
}
