package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"hedge/configs"
	"hedge/gateway/certs"
	"hedge/stream"
)

func init() { routeKinds["stream"] = newStreamRoute }

// streamServers keeps one stream.Server per node for the process's life:
// its ICE sockets and live sessions survive configuration reloads (a reload
// does not change a running node's stream settings).
var streamServers struct {
	sync.Mutex
	m map[string]*stream.Server
}

// streamRoute serves /live/{stream}/whip, /whep and their session resources.
type streamRoute struct {
	srv    *stream.Server
	prefix string
}

func newStreamRoute(b *Build, rc configs.Route) (RouteHandler, error) {
	key := b.Region.Name + "/" + b.Node.Name
	streamServers.Lock()
	defer streamServers.Unlock()
	if streamServers.m == nil {
		streamServers.m = map[string]*stream.Server{}
	}
	prefix := rc.Match.PathPrefix
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	if s := streamServers.m[key]; s != nil {
		return &streamRoute{srv: s, prefix: prefix}, nil
	}
	opts, err := streamOptions(b, prefix)
	if err != nil {
		return nil, err
	}
	s, err := stream.NewServer(opts)
	if err != nil {
		return nil, err
	}
	streamServers.m[key] = s
	return &streamRoute{srv: s, prefix: prefix}, nil
}

func (sr *streamRoute) Serve(r *Request) { sr.srv.Handle(r.Ctx, r.ID) }

func streamOptions(b *Build, prefix string) (stream.Options, error) {
	c := b.Config.Streams
	host := "127.0.0.1"
	if len(b.Node.Listeners) > 0 {
		if h, _, err := net.SplitHostPort(b.Node.Listeners[0].Address); err == nil && h != "" {
			host = h
		}
	}
	o := stream.Options{
		Prefix: prefix, AllowTakeover: c.AllowTakeover,
		MaxViewersPerStream: c.MaxViewersPerStream, MaxViewersPerNode: c.MaxViewersPerNode,
		PublisherGrace: c.PublisherGrace.D(), MediaTimeout: c.MediaTimeout.D(),
		ICE: stream.ICE{
			UDP:        net.JoinHostPort(host, fmt.Sprint(c.ICE.UDPPort)),
			NAT1To1IPs: c.ICE.NAT1To1IPs,
			Loopback:   net.ParseIP(host).IsLoopback(),
		},
		Relay: stream.RelayOptions{Grace: c.RelayGrace.D()},
	}
	if c.ViewerTokenKey != "" {
		o.ViewerTokenKey = []byte(c.ViewerTokenKey)
	}
	if c.ICE.TCPPort > 0 {
		o.ICE.TCP = net.JoinHostPort(host, fmt.Sprint(c.ICE.TCPPort))
	}
	for _, s := range c.ICE.Servers {
		o.ICE.Servers = append(o.ICE.Servers, stream.ICEServer{URLs: s.URLs, Username: s.Username, Credential: s.Credential})
	}
	for _, s := range c.Studios {
		o.Studios = append(o.Studios, stream.Studio{Name: s.Name, Token: s.Token, Streams: s.Streams})
	}
	if c.Relay != nil && *c.Relay {
		peers, client, err := relayPeers(b, prefix)
		if err != nil {
			return o, err
		}
		o.Relay.Peers, o.Relay.Client = peers, client
	}
	return o, nil
}

// relayPeers are the other regions' edges (each node's first listener), and
// a client that reaches them by their TLS name, trusting the internal CA
// when they use it.
func relayPeers(b *Build, prefix string) ([]string, *http.Client, error) {
	dial := map[string]string{} // name:port → listener address
	var peers []string
	internal := false
	for i := range b.Config.Regions {
		reg := &b.Config.Regions[i]
		if reg.Name == b.Region.Name {
			continue
		}
		for j := range reg.Nodes {
			n := &reg.Nodes[j]
			if len(n.Listeners) == 0 {
				continue
			}
			l := n.Listeners[0]
			_, port, err := net.SplitHostPort(l.Address)
			if err != nil {
				continue
			}
			if l.TLS.Mode == "off" || l.TLS.Mode == "" {
				peers = append(peers, "http://"+l.Address+prefix)
				continue
			}
			name := l.Address
			if len(l.TLS.Names) > 0 {
				name = net.JoinHostPort(strings.TrimPrefix(l.TLS.Names[0], "*."), port)
			}
			// The same name may be served by several regions: address each
			// peer by a name of its own that the dialer maps back.
			alias := reg.Name + "." + n.Name + ".relay:" + port
			dial[alias] = l.Address
			peers = append(peers, "https://"+alias+prefix+"#"+name)
			internal = internal || l.TLS.Mode == "internal"
		}
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if internal {
		root, err := certs.InternalRoot(b.Config.DataDir)
		if err != nil {
			return nil, nil, err
		}
		pem, err := os.ReadFile(root)
		if err != nil {
			return nil, nil, err
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		tlsCfg.RootCAs = pool
	}
	// Verify each peer against the name it serves, not the alias.
	names := map[string]string{}
	for i, p := range peers {
		if base, name, ok := strings.Cut(p, "#"); ok {
			peers[i] = base
			host := strings.TrimPrefix(base, "https://")
			host = host[:strings.IndexByte(host, '/')]
			names[host] = name
		}
	}
	d := &net.Dialer{Timeout: 3 * time.Second}
	tr := &http.Transport{
		TLSClientConfig: tlsCfg,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if a, ok := dial[addr]; ok {
				addr = a
			}
			return d.DialContext(ctx, network, addr)
		},
		DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			target := addr
			if a, ok := dial[addr]; ok {
				target = a
			}
			raw, err := d.DialContext(ctx, network, target)
			if err != nil {
				return nil, err
			}
			cfg := tlsCfg.Clone()
			if n, ok := names[addr]; ok {
				cfg.ServerName, _, _ = net.SplitHostPort(n)
			}
			c := tls.Client(raw, cfg)
			if err := c.HandshakeContext(ctx); err != nil {
				raw.Close()
				return nil, err
			}
			return c, nil
		},
	}
	return peers, &http.Client{Timeout: 10 * time.Second, Transport: tr}, nil
}
