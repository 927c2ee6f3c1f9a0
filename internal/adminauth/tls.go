package adminauth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"hedge/configs"
	"hedge/internal/certs"
	"hedge/internal/pki"
)

// ServerTLS is an admin listener's TLS for one configuration: certificates
// from internal/certs (internal CA or files) and, with client_ca, the
// client certificates it requires. A reload builds a new one, so files are
// read again.
type ServerTLS struct {
	certs  *certs.Manager
	config *tls.Config
}

// NewServerTLS prepares the TLS of node's admin listener; nil when it
// serves plain HTTP.
func NewServerTLS(cfg *configs.Config, node *configs.Node, log *slog.Logger) (*ServerTLS, error) {
	a := node.Admin
	if a.Address == "" || a.TLS.Mode == certs.ModeOff {
		return nil, nil
	}
	m, err := certs.New(a.TLS, cfg.DataDir, log.With("listener", "admin"), certs.CANames(configs.InternalCANames(cfg)))
	if err != nil {
		return nil, fmt.Errorf("admin listener: %w", err)
	}
	c := m.TLSConfig().Clone()
	c.NextProtos = []string{"http/1.1"}
	if a.ClientCA != "" {
		pool, err := readPool(a.ClientCA)
		if err != nil {
			m.Close()
			return nil, fmt.Errorf("admin listener: client_ca: %w", err)
		}
		c.ClientCAs = pool
		c.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return &ServerTLS{certs: m, config: c}, nil
}

// Start obtains the listener's certificates (internal mode).
func (s *ServerTLS) Start(ctx context.Context) error { return s.certs.Start(ctx) }

// Config is the listener's server configuration; the caller must not
// modify it.
func (s *ServerTLS) Config() *tls.Config { return s.config }

// Certificates describes what the listener serves, for /status.
func (s *ServerTLS) Certificates() []certs.Info { return s.certs.Certificates() }

// Close stops renewing its certificates; safe to call twice.
func (s *ServerTLS) Close() { s.certs.Close() }

// Listen binds an admin listener. With TLS, every handshake asks current
// for the configuration in force, so a reload's certificates and client
// CA apply to the next connection without rebinding.
func Listen(addr string, tlsOn bool, current func() *ServerTLS) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil || !tlsOn {
		return ln, err
	}
	return tls.NewListener(ln, &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			s := current()
			if s == nil {
				return nil, fmt.Errorf("admin listener %s has no TLS configuration", addr)
			}
			return s.config, nil
		},
	}), nil
}

// URL is the base URL of node's admin listener: https when it serves TLS.
func URL(node *configs.Node) string {
	if node.Admin.TLS.Mode != "" && node.Admin.TLS.Mode != certs.ModeOff {
		return "https://" + node.Admin.Address
	}
	return "http://" + node.Admin.Address
}

// Pusher is how a node calls the admin listeners of the deployment's DNS
// nodes to announce its drain: over https where they serve TLS, verified
// against admin.ca_file or else the internal CA's root (internal mode) or
// the system roots (files mode), presenting the node's client certificate
// when it has one, with the token admin.push_token names (none: only a
// loopback target that allows loopback callers accepts the push).
type Pusher struct {
	token   string
	clients map[string]*http.Client // by target node
}

// NewPusher prepares from's pushes to every DNS node of cfg, reading the
// files involved now (a reload reads them again).
func NewPusher(cfg *configs.Config, from *configs.Node) (*Pusher, error) {
	p := &Pusher{clients: map[string]*http.Client{}}
	for _, t := range cfg.Admin.Tokens {
		if t.Name == cfg.Admin.PushToken {
			p.token = t.Secret
		}
	}
	var cert []tls.Certificate
	if cc := from.Admin.ClientCert; cc.Cert != "" {
		c, err := tls.LoadX509KeyPair(cc.Cert, cc.Key)
		if err != nil {
			return nil, fmt.Errorf("admin.client_cert: %w", err)
		}
		cert = []tls.Certificate{c}
	}
	var caFile, internalRoot *x509.CertPool
	var err error
	if cfg.Admin.CAFile != "" {
		if caFile, err = readPool(cfg.Admin.CAFile); err != nil {
			return nil, fmt.Errorf("admin.ca_file: %w", err)
		}
	}
	for _, r := range cfg.Regions {
		for i := range r.Nodes {
			t := &r.Nodes[i]
			if t.DNS.Address == "" || t.Admin.Address == "" {
				continue
			}
			tr := &http.Transport{DisableKeepAlives: true, Proxy: nil, TLSHandshakeTimeout: 2 * time.Second}
			if mode := t.Admin.TLS.Mode; mode != "" && mode != certs.ModeOff {
				tc := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: cert, RootCAs: caFile}
				if len(t.Admin.TLS.Names) > 0 {
					tc.ServerName = t.Admin.TLS.Names[0]
				}
				if caFile == nil && mode == certs.ModeInternal {
					if internalRoot == nil {
						root, err := certs.InternalRoot(cfg.DataDir, configs.InternalCANames(cfg)...)
						if err != nil {
							return nil, err
						}
						if internalRoot, err = readPool(root); err != nil {
							return nil, err
						}
					}
					tc.RootCAs = internalRoot
				}
				tr.TLSClientConfig = tc
			}
			p.clients[t.Name] = &http.Client{Transport: tr,
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		}
	}
	return p, nil
}

// Target returns how to reach DNS node name: its client, and the token to
// present ("" for none).
func (p *Pusher) Target(name string) (*http.Client, string, bool) {
	c, ok := p.clients[name]
	return c, p.token, ok
}

// Close drops idle connections.
func (p *Pusher) Close() {
	for _, c := range p.clients {
		c.CloseIdleConnections()
	}
}

func readPool(file string) (*x509.CertPool, error) { return pki.ReadPool(file) }
