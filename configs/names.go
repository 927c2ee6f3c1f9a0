package configs

import (
	"fmt"
	"slices"
)

// InternalCANames lists every name the internal CA issues certificates
// for in this deployment: listeners and admin listeners in internal mode.
// The CA's name constraints are derived from them when it is created.
func InternalCANames(c *Config) []string {
	var out []string
	for _, r := range c.Regions {
		for _, n := range r.Nodes {
			for _, l := range n.Listeners {
				if l.TLS.Mode == TLSInternal {
					out = append(out, l.TLS.Names...)
				}
			}
			if n.Admin.Address != "" && n.Admin.TLS.Mode == TLSInternal {
				out = append(out, n.Admin.TLS.Names...)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Pick returns the region and node a process plays.
func (c *Config) Pick(region, node string) (*Region, *Node, error) {
	for i := range c.Regions {
		r := &c.Regions[i]
		if region != "" && r.Name != region {
			continue
		}
		for j := range r.Nodes {
			if node == "" || r.Nodes[j].Name == node {
				if node == "" && len(r.Nodes) > 1 {
					return nil, nil, fmt.Errorf("region %q has %d nodes: name one with -node", r.Name, len(r.Nodes))
				}
				return r, &r.Nodes[j], nil
			}
		}
		return nil, nil, fmt.Errorf("region %q has no node %q", r.Name, node)
	}
	return nil, nil, fmt.Errorf("no region %q in %s", region, c.File)
}

// Region returns the named region, or nil.
func (c *Config) Region(name string) *Region {
	for i := range c.Regions {
		if c.Regions[i].Name == name {
			return &c.Regions[i]
		}
	}
	return nil
}

// Pool returns the named pool of the region, or nil.
func (r *Region) Pool(name string) *Pool {
	for i := range r.Pools {
		if r.Pools[i].Name == name {
			return &r.Pools[i]
		}
	}
	return nil
}
