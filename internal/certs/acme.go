package certs

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"slices"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3/acme"

	"hedge/configs"
	"hedge/internal/pki"
)

// acmeSetup is the part of an ACMEIssuer that can be checked before
// certmagic exists; certmagic.NewACMEIssuer needs the Config it belongs to,
// which Start creates.
type acmeSetup struct {
	template certmagic.ACMEIssuer
	tlsALPN  bool
}

func newACME(a configs.ACME, listenerAddress string, log *slog.Logger) (*acmeSetup, error) {
	http01 := slices.Contains(a.Challenges, acme.ChallengeTypeHTTP01)
	tlsALPN := slices.Contains(a.Challenges, acme.ChallengeTypeTLSALPN01)
	s := &acmeSetup{
		tlsALPN: tlsALPN,
		template: certmagic.ACMEIssuer{
			CA:                      a.Directory,
			Email:                   a.Email,
			Agreed:                  true,
			DisableHTTPChallenge:    !http01,
			DisableTLSALPNChallenge: !tlsALPN,
			Logger:                  zapLogger(log),
		},
	}

	// certmagic starts its own challenge servers only while a challenge
	// is pending, on ListenHost plus AltHTTPPort / AltTLSALPNPort. When
	// the address is already taken it assumes whoever holds it answers
	// (the listener itself, for tls-alpn-01). It has one ListenHost for
	// both challenges, so http_address chooses it when http-01 is on; the
	// listener still answers tls-alpn-01 on its own host, because certmagic
	// finds the port taken and steps aside.
	var httpHost string
	if http01 {
		host, port, err := splitAddress(a.HTTPAddress)
		if err != nil {
			return nil, fmt.Errorf("certs: acme http_address: %w", err)
		}
		httpHost = host
		s.template.ListenHost, s.template.AltHTTPPort = host, port
	}
	if tlsALPN {
		addr := a.TLSALPNAddress
		if addr == "" {
			addr = listenerAddress
		}
		if addr != "" {
			host, port, err := splitAddress(addr)
			if err != nil {
				return nil, fmt.Errorf("certs: acme tls-alpn-01 address: %w", err)
			}
			s.template.AltTLSALPNPort = port
			switch {
			case !http01:
				s.template.ListenHost = host
			case host != httpHost && a.TLSALPNAddress != "":
				log.Warn("certmagic binds both challenge servers on one host; tls-alpn-01 is answered on the http_address host",
					"http_address", a.HTTPAddress, "tls_alpn_address", a.TLSALPNAddress)
			}
		}
	}

	if a.CARoots != "" {
		pool, err := rootsWith(a.CARoots)
		if err != nil {
			return nil, err
		}
		s.template.TrustedRoots = pool
	}
	return s, nil
}

func (s *acmeSetup) issuer(magic *certmagic.Config) certmagic.Issuer {
	iss := certmagic.NewACMEIssuer(magic, s.template)
	if s.template.Email == "" {
		return noPrompt{iss}
	}
	return iss
}

// noPrompt keeps certmagic from asking for an email address on standard
// input: in an interactive obtain (ManageSync) with no email configured,
// ACMEIssuer.PreCheck prints a prompt and blocks reading stdin, which on a
// server means hanging at start-up. The account is registered without a
// contact instead. Only used without an email, because certmagic
// recognises a bare *ACMEIssuer to tell the CA which certificate a
// renewal replaces (ARI).
type noPrompt struct{ *certmagic.ACMEIssuer }

func (n noPrompt) PreCheck(ctx context.Context, names []string, _ bool) error {
	return n.ACMEIssuer.PreCheck(ctx, names, false)
}

// rootsWith is the system's roots plus the PEM file's, so a private ACME
// CA can be added without losing the public ones.
func rootsWith(file string) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if pool, err = pki.AppendFile(pool, file); err != nil {
		return nil, fmt.Errorf("certs: acme ca_roots: %w", err)
	}
	return pool, nil
}

func splitAddress(addr string) (host string, port int, err error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err = net.LookupPort("tcp", p)
	if err != nil {
		return "", 0, err
	}
	return host, port, nil
}

// HTTPChallenge answers an ACME http-01 request when something other
// than certmagic's own responder holds the http-01 address, for example a
// plain-HTTP listener of the gateway on port 80. host is the request's
// Host header and path its path; it returns the body to send with status
// 200 and ok, or ok false when the request is not a challenge this
// process is solving. It does not allocate for non-challenge paths.
func HTTPChallenge(host, path string) (body string, ok bool) {
	const prefix = "/.well-known/acme-challenge/"
	if len(path) <= len(prefix) || path[:len(prefix)] != prefix {
		return "", false
	}
	chal, ok := certmagic.GetACMEChallenge(host)
	if !ok || chal.Type != acme.ChallengeTypeHTTP01 || path != chal.HTTP01ResourcePath() {
		return "", false
	}
	return chal.KeyAuthorization, true
}
