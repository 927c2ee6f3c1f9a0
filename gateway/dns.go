package gateway

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"hedge/configs"
	"hedge/dnsfail"
	"hedge/internal/adminauth"
	"hedge/internal/problem"
)

// dnsRunner is the authoritative DNS server a node of this process serves
// (dns.address), and the drain announcements sent to DNS servers elsewhere.
type dnsRunner struct {
	srv  *dnsfail.Server
	node string
	mux  *http.ServeMux
}

// dnsHolder is the Gateway's handle on its DNS server, if it runs one.
type dnsHolder struct {
	cur    atomic.Pointer[dnsRunner]
	pushes sync.WaitGroup // drain pushes to other processes in flight
	order  sync.Map       // node→DNS node: *sync.Mutex serialising its pushes
}

// startDNS runs the DNS server when one of this process's nodes has a
// dns.address; the first such node serves it.
func (g *Gateway) startDNS() error {
	g.closer = append(g.closer, func() error {
		g.dns.pushes.Wait()
		return nil
	})
	var node string
	for _, n := range g.nodes {
		if _, nc, err := g.cfg.Pick(n.region, n.name); err == nil && nc.DNS.Address != "" {
			node = n.name
			break
		}
	}
	if node == "" {
		return nil
	}
	srv, err := dnsfail.New(g.cfg, dnsfail.Options{Node: node, Logger: g.log.With("node", node), Registerer: g.metrics.reg})
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		return err
	}
	d := &dnsRunner{srv: srv, node: node, mux: http.NewServeMux()}
	srv.Routes(d.mux)
	g.dns.cur.Store(d)
	g.closer = append(g.closer, func() error {
		srv.Close()
		return nil
	})
	return nil
}

// reloadDNS hands a new configuration to the DNS server.
func (g *Gateway) reloadDNS(cfg *configs.Config) error {
	if d := g.dns.cur.Load(); d != nil {
		return d.srv.Reload(cfg)
	}
	return nil
}

// announceDrain tells every DNS server of the deployment that node n starts
// (or stops) draining, so its address leaves the answers at once instead of
// after the probes notice. The server in this process is told directly;
// others through their admin API (POST /admin/dns/edges/{node}/drain),
// reached as the state's pusher says: https where they serve TLS, with the
// push token and the node's client certificate.
func (g *Gateway) announceDrain(n *Node, on bool, reason string) {
	st := n.state.Load()
	if st == nil {
		return
	}
	local := g.dns.cur.Load()
	for _, target := range dnsfail.DNSNodeList(st.cfg) {
		name := target.Name
		if local != nil && local.node == name {
			if err := local.srv.SetEdgeDraining(n.name, on, reason); err != nil {
				n.log.Debug("dns drain announcement", "error", err)
			}
			continue
		}
		if local != nil && g.runs(name) {
			continue
		}
		client, token, ok := st.pusher.Target(name)
		if !ok {
			continue
		}
		url := adminauth.URL(target)
		g.dns.pushes.Add(1)
		go func() {
			defer g.dns.pushes.Done()
			// One push at a time per target, each sending the node's state
			// as it is then: a drain quickly undone cannot arrive after
			// its undo.
			mu, _ := g.dns.order.LoadOrStore(n.name+"→"+name, new(sync.Mutex))
			mu.(*sync.Mutex).Lock()
			defer mu.(*sync.Mutex).Unlock()
			on := n.Draining()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if err := dnsfail.PushDrain(ctx, client, url, token, n.name, on); err != nil {
				n.log.Warn("drain announcement to a DNS server failed; its probes will notice", "dns_node", name, "url", url, "error", err)
				return
			}
			n.log.Info("drain announced to a DNS server", "dns_node", name, "url", url, "draining", on)
		}()
	}
}

// runs reports whether this process runs the named node.
func (g *Gateway) runs(node string) bool {
	for _, n := range g.nodes {
		if n.name == node {
			return true
		}
	}
	return false
}

// dnsAdmin serves /admin/dns/… on every admin listener of this process.
func (g *Gateway) dnsAdmin(w http.ResponseWriter, r *http.Request) {
	d := g.dns.cur.Load()
	if d == nil {
		adminauth.WriteProblem(w, r, problem.NotFound, "this process serves no DNS")
		return
	}
	d.mux.ServeHTTP(w, r)
}

// dnsStatus is the DNS part of node's /status, when node serves DNS.
func (g *Gateway) dnsStatus(node string) *dnsfail.Status {
	d := g.dns.cur.Load()
	if d == nil || d.node != node {
		return nil
	}
	s := d.srv.Status()
	return &s
}
