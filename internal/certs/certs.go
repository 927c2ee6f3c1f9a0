package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3"

	"hedge/configs"
)

// Modes, as written in configs.TLS.Mode.
const (
	ModeACME     = "acme"
	ModeInternal = "internal"
	ModeFiles    = "files"
	ModeOff      = "off"
)

// ErrClosed is returned by Start after Close.
var ErrClosed = errors.New("certs: manager closed")

// Info describes one certificate being served, for /status.
type Info struct {
	Names    []string  `json:"names"`
	Issuer   string    `json:"issuer"`
	NotAfter time.Time `json:"not_after"`
	Mode     string    `json:"mode"`
}

// Option adjusts how New builds a Manager.
type Option func(*options)

type options struct {
	listenerAddress string
	caNames         []string
}

// CANames are every name the internal CA issues for in the deployment
// (configs.InternalCANames). A root created by this Manager is constrained
// to them; without the option, to the listener's own names.
func CANames(names []string) Option {
	return func(o *options) { o.caNames = names }
}

// ListenerAddress tells the Manager where its listener is bound (the
// configs.Listener address). When tls-alpn-01 is answered by the listener
// itself (acme.tls_alpn_address empty), certmagic must look for the
// challenge server at that address: finding it taken, certmagic leaves the
// challenge to the listener, whose TLSConfig answers it. Without this
// option certmagic assumes port 443.
func ListenerAddress(addr string) Option {
	return func(o *options) { o.listenerAddress = addr }
}

// Manager serves certificates for one listener.
type Manager struct {
	mode     string
	names    []string
	log      *slog.Logger
	tls      *tls.Config
	rootPath string

	// files mode: read once in New, so a reload (a new Manager) rereads them.
	file *tls.Certificate

	// internal and acme modes: everything certmagic needs, prepared in New
	// so that configuration errors surface before anything runs; the
	// certmagic Cache (and its maintenance goroutine) only exists between
	// Start and Close.
	magicTemplate certmagic.Config
	newIssuer     func(*certmagic.Config) certmagic.Issuer
	renewEvery    time.Duration

	magic atomic.Pointer[certmagic.Config]

	// closing is cancelled by Close, aborting any Start in progress.
	closing context.Context
	close   context.CancelFunc

	mu     sync.Mutex
	cache  *certmagic.Cache
	closed bool
}

// New builds (but does not start obtaining) certificates for the
// listener's TLS settings. dataDir holds state that must survive restarts:
// dataDir/ca (the internal CA) and dataDir/certmagic (certmagic's storage
// for ACME accounts and for ACME and internal certificates).
func New(t configs.TLS, dataDir string, log *slog.Logger, opts ...Option) (*Manager, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Manager{
		mode:  string(t.Mode),
		names: slices.Clone(t.Names),
		log:   log.With("component", "certs", "mode", t.Mode),
	}
	m.closing, m.close = context.WithCancel(context.Background())
	switch t.Mode {
	case ModeOff:
		return m, nil

	case ModeFiles:
		cert, err := loadFiles(t.Files, m.names, m.log)
		if err != nil {
			return nil, err
		}
		m.file = cert
		m.tls = serverConfig(m.fileCertificate, false)
		return m, nil

	case ModeInternal:
		caNames := o.caNames
		if caNames == nil {
			caNames = m.names
		}
		ca, err := loadOrCreateCA(dataDir, caNames, m.log)
		if err != nil {
			return nil, err
		}
		if err := ca.checkCovers(m.names); err != nil {
			return nil, err
		}
		m.rootPath = ca.certPath
		iss := &internalIssuer{ca: ca, lifetime: t.Internal.Lifetime.D()}
		m.newIssuer = func(*certmagic.Config) certmagic.Issuer { return iss }
		m.renewEvery = renewCheckInterval(iss.lifetime)
		m.magicTemplate = m.certmagicConfig(dataDir)
		// ARI is an ACME extension; the internal CA has nothing to say.
		m.magicTemplate.DisableARI = true
		m.tls = serverConfig(m.managedCertificate, false)
		return m, nil

	case ModeACME:
		a, err := newACME(t.ACME, o.listenerAddress, m.log)
		if err != nil {
			return nil, err
		}
		m.magicTemplate = m.certmagicConfig(dataDir)
		m.newIssuer = a.issuer
		m.renewEvery = certmagic.DefaultRenewCheckInterval
		m.tls = serverConfig(m.managedCertificate, a.tlsALPN)
		return m, nil
	}
	return nil, fmt.Errorf("certs: unknown tls mode %q", t.Mode)
}

func (m *Manager) certmagicConfig(dataDir string) certmagic.Config {
	var defaultName string
	if len(m.names) > 0 {
		// Clients that send no SNI (health probes dialing an IP) still get
		// a certificate instead of a failed handshake.
		defaultName = m.names[0]
	}
	return certmagic.Config{
		RenewalWindowRatio: certmagic.DefaultRenewalWindowRatio,
		DefaultServerName:  defaultName,
		Storage:            &certmagic.FileStorage{Path: filepath.Join(dataDir, "certmagic")},
		Logger:             zapLogger(m.log),
	}
}

// renewCheckInterval is how often certmagic looks for certificates to
// renew. certmagic renews a certificate once a third of its lifetime is
// left (RenewalWindowRatio), but it also treats anything expiring within
// five check intervals as an emergency; with its default interval of ten
// minutes, every certificate shorter-lived than 50 minutes would be
// renewed on every check. Checking every twentieth of the lifetime keeps
// the emergency threshold (a quarter of the lifetime) inside the normal
// window, so a leaf is renewed when a third of its life is left, whatever
// the lifetime.
func renewCheckInterval(lifetime time.Duration) time.Duration {
	return min(max(lifetime/20, 100*time.Millisecond), certmagic.DefaultRenewCheckInterval)
}

// Start obtains or loads certificates for the configured names, waiting
// until every one is ready (certmagic's ManageSync), and starts renewal
// maintenance, which runs until Close. Maintenance only renews what Start
// got, so after an error Start may be called again to retry; names already
// served are not obtained twice.
//
// With tls-alpn-01 on the listener itself, serve the listener (with
// TLSConfig) before calling Start, so that it answers the challenge.
// Otherwise certmagic binds the listener's address itself while the
// challenge lasts, and the gateway's own bind may collide with it.
func (m *Manager) Start(ctx context.Context) error {
	if m.newIssuer == nil {
		return nil // off and files: nothing to obtain or renew
	}
	magic, err := m.certmagic()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(m.closing, cancel)()

	began := time.Now()
	if err := magic.ManageSync(ctx, m.names); err != nil {
		return fmt.Errorf("certs: %s certificates for %v: %w", m.mode, m.names, err)
	}
	m.log.Info("certificates ready", "names", m.names, "took", time.Since(began).Round(time.Millisecond))
	return nil
}

// certmagic returns the Manager's certmagic Config, creating it and its
// Cache (which starts the maintenance goroutine) on first use.
func (m *Manager) certmagic() (*certmagic.Config, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	if magic := m.magic.Load(); magic != nil {
		return magic, nil
	}
	// The cache asks for the Config of each certificate it maintains; the
	// Config is stored before any certificate enters the cache.
	cache := certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) {
			return m.magic.Load(), nil
		},
		RenewCheckInterval: m.renewEvery,
		Logger:             m.magicTemplate.Logger,
	})
	magic := certmagic.New(cache, m.magicTemplate)
	magic.Issuers = []certmagic.Issuer{m.newIssuer(magic)}
	m.cache = cache
	m.magic.Store(magic)
	return magic, nil
}

// TLSConfig is the listener's server configuration (nil in mode off). It
// is built once; the caller must not modify it. Handshakes keep working
// after Close, with the certificates last loaded, so connections can drain.
func (m *Manager) TLSConfig() *tls.Config { return m.tls }

// RootPath is the internal CA's root certificate file ("" in other modes).
func (m *Manager) RootPath() string { return m.rootPath }

// Certificates describes what is being served, for /status.
func (m *Manager) Certificates() []Info {
	switch {
	case m.file != nil:
		return []Info{info(m.file.Leaf, m.mode)}
	case m.magic.Load() == nil:
		return nil
	}
	m.mu.Lock()
	cache := m.cache
	m.mu.Unlock()
	var out []Info
	seen := make(map[*x509.Certificate]bool)
	for _, name := range m.names {
		var newest *certmagic.Certificate
		for _, c := range cache.AllMatchingCertificates(name) {
			if c.Leaf != nil && (newest == nil || c.Leaf.NotAfter.After(newest.Leaf.NotAfter)) {
				newest = &c
			}
		}
		if newest == nil || seen[newest.Leaf] {
			continue
		}
		seen[newest.Leaf] = true
		i := info(newest.Leaf, m.mode)
		if len(newest.Names) > 0 {
			i.Names = slices.Clone(newest.Names)
		}
		out = append(out, i)
	}
	return out
}

func info(leaf *x509.Certificate, mode string) Info {
	names := slices.Clone(leaf.DNSNames)
	for _, ip := range leaf.IPAddresses {
		names = append(names, ip.String())
	}
	issuer := leaf.Issuer.CommonName
	if issuer == "" {
		issuer = leaf.Issuer.String()
	}
	return Info{Names: names, Issuer: issuer, NotAfter: leaf.NotAfter, Mode: mode}
}

// Close stops renewal maintenance and aborts a Start still in progress.
// It is safe to call more than once.
func (m *Manager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	m.close()
	if m.cache != nil {
		m.cache.Stop()
	}
	return nil
}

func (m *Manager) fileCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return m.file, nil
}

// managedCertificate defers to certmagic, which also answers tls-alpn-01
// challenges (ALPN "acme-tls/1") with the challenge certificate.
func (m *Manager) managedCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	magic := m.magic.Load()
	if magic == nil {
		return nil, errors.New("certs: certificates not started")
	}
	return magic.GetCertificate(hello)
}

// aeadSuites are the TLS 1.2 suites offered: forward secret (ECDHE) and
// authenticated encryption only. CBC suites (Lucky13-style padding
// oracles) and static RSA key exchange are left out; TLS 1.3 suites are
// all AEAD and not configurable in Go. RSA variants stay for operators'
// RSA certificates in mode files.
var aeadSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

func serverConfig(get func(*tls.ClientHelloInfo) (*tls.Certificate, error), tlsALPN bool) *tls.Config {
	protos := []string{"http/1.1"}
	if tlsALPN {
		protos = append(protos, acmez.ACMETLS1Protocol)
	}
	return &tls.Config{
		// Go prefers TLS 1.3 whenever the client offers it.
		MinVersion:   tls.VersionTLS12,
		CipherSuites: aeadSuites,
		// X25519MLKEM768 is X25519 combined with ML-KEM (TLS 1.3 only):
		// recorded sessions stay private even against a future quantum
		// computer, at the cost of about a kilobyte per handshake.
		CurvePreferences: []tls.CurveID{tls.X25519MLKEM768, tls.X25519, tls.CurveP256},
		NextProtos:       protos,
		GetCertificate:   get,
	}
}
