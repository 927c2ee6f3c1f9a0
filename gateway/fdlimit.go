package gateway

import (
	"github.com/valyala/fasthttp"

	"hedge/configs"
)

// fdReserve is what the process keeps open besides client and upstream
// connections: listeners, the admin and DNS sockets, ICE sockets, Redis,
// log and audit files.
const fdReserve = 256

// fileBudget is how many file descriptors this process's nodes may need at
// once: every listener's max_conns (fasthttp's default when 0) and every
// pool member's max_conns_per_member, plus fdReserve.
type fileBudget struct {
	listeners, upstreams, total uint64
}

func (g *Gateway) fileBudget(cfg *configs.Config) fileBudget {
	var b fileBudget
	for _, n := range g.nodes {
		region, node, err := cfg.Pick(n.region, n.name)
		if err != nil {
			continue
		}
		for _, l := range node.Listeners {
			c := l.Limits.MaxConns
			if c == 0 {
				c = fasthttp.DefaultConcurrency
			}
			b.listeners += uint64(c)
		}
		for _, p := range region.Pools {
			b.upstreams += uint64(len(p.Members) * p.MaxConnsPerMember)
		}
	}
	b.total = b.listeners + b.upstreams + fdReserve
	return b
}

// checkFileLimit raises the open-files limit as far as the hard limit
// allows and logs a warning when the listeners' max_conns could still run
// the process out of file descriptors: past the limit accept fails
// (EMFILE), and so do upstream dials, log writes and everything else that
// opens a file.
func (g *Gateway) checkFileLimit(cfg *configs.Config) {
	limit, err := raiseFileLimit()
	if err != nil {
		g.log.Warn("cannot read or raise the open-files limit (RLIMIT_NOFILE)", "error", err)
		return
	}
	b := g.fileBudget(cfg)
	if b.total <= limit {
		g.log.Info("open-files limit", "limit", limit, "needed_at_most", b.total)
		return
	}
	g.log.Warn("listeners may accept more connections than the open-files limit allows: raise the hard limit (systemd LimitNOFILE=) or lower limits.max_conns",
		"limit", limit, "listeners_max_conns", b.listeners, "upstream_max_conns", b.upstreams, "reserve", fdReserve)
}
