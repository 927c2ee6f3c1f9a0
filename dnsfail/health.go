package dnsfail

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"hedge/configs"
	"hedge/internal/certs"
	"hedge/internal/health"
	"hedge/internal/pki"
)

// edge is one edge node as a candidate of one service: the addresses
// answers give for it and the health target that decides whether they do.
type edge struct {
	region string
	node   string
	addrs  []netip.Addr
	target *health.Target
}

// edgeAddrs are the addresses answers give for a node: its advertise list,
// or the host of its first listener.
func edgeAddrs(n configs.Node) []netip.Addr {
	var out []netip.Addr
	for _, a := range n.Advertise {
		if ip, err := netip.ParseAddr(a); err == nil {
			out = append(out, ip.Unmap())
		}
	}
	if len(out) == 0 && len(n.Listeners) > 0 {
		host, _, _ := net.SplitHostPort(n.Listeners[0].Address)
		if ip, err := netip.ParseAddr(host); err == nil && !ip.IsUnspecified() {
			out = append(out, ip.Unmap())
		}
	}
	return out
}

// probeSpec says how to probe node n for service name svc: GET of the
// health path on the node's first listener, with SNI and Host = svc.
func probeSpec(cfg *configs.Config, n configs.Node, addrs []netip.Addr, svc string, h configs.DNSHealth) (health.Spec, error) {
	l := n.Listeners[0]
	host, port, err := net.SplitHostPort(l.Address)
	if err != nil {
		return health.Spec{}, err
	}
	if ip, err := netip.ParseAddr(host); host == "" || (err == nil && ip.IsUnspecified()) {
		if len(addrs) == 0 {
			return health.Spec{}, fmt.Errorf("node %s: no address to probe", n.Name)
		}
		host = addrs[0].String()
	}
	scheme := "https"
	if l.TLS.Mode == "off" {
		scheme = "http"
	}
	spec := health.Spec{
		URL:      scheme + "://" + net.JoinHostPort(host, port) + h.Path,
		Host:     strings.TrimSuffix(svc, "."),
		Interval: h.Interval.D(),
		Timeout:  h.Timeout.D(),
		Rise:     h.Rise,
		Fall:     h.Fall,
	}
	if scheme == "https" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: h.InsecureSkipVerify}
		caFile := h.CAFile
		if caFile == "" && l.TLS.Mode == "internal" && !h.InsecureSkipVerify {
			if caFile, err = certs.InternalRoot(cfg.DataDir, configs.InternalCANames(cfg)...); err != nil {
				return health.Spec{}, err
			}
		}
		if caFile != "" {
			pool, err := pki.ReadPool(caFile)
			if err != nil {
				return health.Spec{}, err
			}
			tc.RootCAs = pool
		}
		spec.TLS = tc
	}
	return spec, nil
}

// ttlNow is the TTL to hand out for s: its configured TTL, shortened while
// a candidate's probes already disagree with its verdict, so resolvers do
// not cache an answer that is about to change. Never below one second.
func (s *service) ttlNow() uint32 {
	ttl := s.ttl
	for _, e := range s.edges {
		p := e.target.Pending()
		if p == 0 {
			continue
		}
		spec := e.target.Spec()
		need := spec.Fall
		if !e.target.Up() {
			need = spec.Rise
		}
		if left := time.Duration(need-p) * spec.Interval; left < ttl {
			ttl = left
		}
	}
	return uint32(max(ttl, time.Second) / time.Second)
}
