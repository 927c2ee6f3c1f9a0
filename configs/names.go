package configs

import "slices"

// InternalCANames lists every name the internal CA issues certificates
// for in this deployment: listeners and admin listeners in internal mode.
// The CA's name constraints are derived from them when it is created.
func InternalCANames(c *Config) []string {
	var out []string
	for _, r := range c.Regions {
		for _, n := range r.Nodes {
			for _, l := range n.Listeners {
				if l.TLS.Mode == "internal" {
					out = append(out, l.TLS.Names...)
				}
			}
			if n.Admin.Address != "" && n.Admin.TLS.Mode == "internal" {
				out = append(out, n.Admin.TLS.Names...)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
