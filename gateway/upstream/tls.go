package upstream

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/valyala/fasthttp"

	"hedge/configs"
	"hedge/internal/pki"
)

// ClientTLS builds how the edge verifies an https upstream (pool member or
// ledger writer) and proves itself to it: t's CA instead of the system
// roots, t's client certificate for upstreams that require one (mTLS).
// The files are read now, so a reload, which builds new clients, reads
// them again. serverName is the name to verify when t names none; empty
// leaves it to the caller (net/http takes the URL's host).
func ClientTLS(t configs.ClientTLS, serverName string) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
	if t.ServerName != "" {
		c.ServerName = t.ServerName
	}
	if t.CAFile != "" {
		pool, err := pki.ReadPool(t.CAFile)
		if err != nil {
			return nil, err
		}
		c.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, err
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// TLSDialer dials and completes the TLS handshake within timeout before
// handing the connection to fasthttp (which takes a connection that can
// Handshake as TLS already). A failed handshake — a certificate that does
// not verify, a client certificate refused during it — is then a
// DialError like a refused connection: nothing was sent, so a money call
// fails closed (503) rather than reporting an unknown outcome, and a pool
// may try another member.
func TLSDialer(timeout time.Duration, cfg *tls.Config) fasthttp.DialFunc {
	return tlsDialer(timeout, cfg)
}

// WriterTLSDialer is TLSDialer for ledger writers. It also refuses, during
// the handshake, a writer that asks for a client certificate when the edge
// was given none (ledger.writer_tls.cert_file): under TLS 1.3 the writer's
// refusal would only show after the call was written, as an unknown
// outcome (504); refused here, the call fails closed (503) with nothing
// sent. Pools keep TLSDialer: some providers ask for a certificate without
// requiring one.
func WriterTLSDialer(timeout time.Duration, cfg *tls.Config) fasthttp.DialFunc {
	if len(cfg.Certificates) > 0 {
		return tlsDialer(timeout, cfg)
	}
	strict := cfg.Clone()
	strict.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		return nil, errNoClientCert
	}
	return tlsDialer(timeout, strict)
}

var errNoClientCert = errors.New("the writer asks for a client certificate and the edge has none: set ledger.writer_tls.cert_file and key_file")

func tlsDialer(timeout time.Duration, cfg *tls.Config) fasthttp.DialFunc {
	d := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	return func(addr string) (net.Conn, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		raw, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, &DialError{Err: err}
		}
		c := cfg
		if c.ServerName == "" {
			c = cfg.Clone()
			c.ServerName, _, _ = net.SplitHostPort(addr)
		}
		conn := tls.Client(raw, c)
		if err := conn.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, &DialError{Err: fmt.Errorf("tls handshake: %w", err)}
		}
		return conn, nil
	}
}
