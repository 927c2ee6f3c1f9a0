package certs

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
)

const (
	caDir        = "ca"
	rootCertFile = "root.crt"
	rootKeyFile  = "root.key"
	// rootLifetime is a year: long enough that importing the root into
	// clients is a yearly chore, short enough that a forgotten copy of
	// its key stops mattering.
	rootLifetime = 365 * 24 * time.Hour
	// rootWarnBefore is how long before the root expires every start
	// warns that it must be rotated.
	rootWarnBefore = 30 * 24 * time.Hour
)

// authority is the internal CA: a self-signed ECDSA P-256 root that signs
// leaf certificates directly. One tier is enough for a CA whose only
// relying parties are the people who chose to import its root.
type authority struct {
	cert     *x509.Certificate
	key      crypto.Signer
	certPath string
}

// caMu serialises creating-or-loading within the process, so that two
// listeners sharing a data directory do not both generate a root. Across
// processes, createCA's atomic rename decides.
var caMu sync.Mutex

// InternalRoot creates the internal CA in dataDir if there is none yet and
// returns the path of its root certificate, for main.go to print and for
// clients of internal certificates to trust. names are every name the CA
// will issue for in the deployment (configs.InternalCANames): a new root's
// name constraints are derived from them.
func InternalRoot(dataDir string, names ...string) (string, error) {
	ca, err := loadOrCreateCA(dataDir, names, nil)
	if err != nil {
		return "", err
	}
	return ca.certPath, nil
}

// warnedRoots remembers the roots already warned about, so a process with
// many listeners says it once.
var warnedRoots sync.Map

func loadOrCreateCA(dataDir string, names []string, log *slog.Logger) (*authority, error) {
	caMu.Lock()
	defer caMu.Unlock()
	dir, err := filepath.Abs(filepath.Join(dataDir, caDir))
	if err != nil {
		return nil, fmt.Errorf("certs: internal CA: %w", err)
	}
	ca, err := loadCA(dir)
	if err == nil {
		ca.warn(log)
		return ca, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	ca, created, err := createCA(dir, names)
	if err != nil {
		return nil, err
	}
	if created && log != nil {
		log.Info("created internal CA; import its root to trust hedge's certificates",
			"root", ca.certPath, "subject", ca.cert.Subject.CommonName, "not_after", ca.cert.NotAfter,
			"permitted_dns", ca.cert.PermittedDNSDomains, "permitted_ip", ca.cert.PermittedIPRanges)
	}
	return ca, nil
}

// warn logs, once per root, what an operator should do about it: a root
// made before hedge constrained its names (kept: rotating it would break
// every client that trusts it), or one about to expire.
func (ca *authority) warn(log *slog.Logger) {
	if log == nil {
		return
	}
	if _, done := warnedRoots.LoadOrStore(string(ca.cert.Raw), true); done {
		return
	}
	if !ca.constrained() {
		log.Warn("the internal CA's root has no name constraints (made by an older hedge): it could sign for any name. "+
			"It is kept so that clients trusting it keep working; to rotate, move the directory away, restart, and import the new root",
			"root", ca.certPath, "not_after", ca.cert.NotAfter)
	}
	if left := time.Until(ca.cert.NotAfter); left < rootWarnBefore {
		log.Warn("the internal CA's root expires soon: move its directory away and restart to create a new one, then import it in clients",
			"root", ca.certPath, "not_after", ca.cert.NotAfter)
	}
}

// constrained reports whether the root limits the names it may sign.
func (ca *authority) constrained() bool {
	c := ca.cert
	return len(c.PermittedDNSDomains)+len(c.ExcludedDNSDomains)+len(c.PermittedIPRanges)+len(c.ExcludedIPRanges) > 0
}

// covers reports whether a leaf for name would pass the root's name
// constraints, as clients check them.
func (ca *authority) covers(name string) bool {
	c := ca.cert
	if ip := net.ParseIP(name); ip != nil {
		for _, r := range c.ExcludedIPRanges {
			if r.Contains(ip) {
				return false
			}
		}
		if len(c.PermittedIPRanges) == 0 {
			return true
		}
		for _, r := range c.PermittedIPRanges {
			if r.Contains(ip) {
				return true
			}
		}
		return false
	}
	name = strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(name, "*."), "."))
	within := func(domain string) bool {
		domain = strings.ToLower(strings.TrimPrefix(domain, "."))
		return name == domain || strings.HasSuffix(name, "."+domain)
	}
	if slices.ContainsFunc(c.ExcludedDNSDomains, within) {
		return false
	}
	return len(c.PermittedDNSDomains) == 0 || slices.ContainsFunc(c.PermittedDNSDomains, within)
}

// checkCovers refuses names the root cannot sign for: clients would reject
// their certificates.
func (ca *authority) checkCovers(names []string) error {
	for _, n := range names {
		if !ca.covers(n) {
			return fmt.Errorf("certs: %s is outside the internal CA's name constraints (DNS %v, IP %v): "+
				"move %s away and restart to create a root that covers the configured names, then import it in clients",
				n, ca.cert.PermittedDNSDomains, ca.cert.PermittedIPRanges, filepath.Dir(ca.certPath))
		}
	}
	return nil
}

// loadCA reads the CA in dir. It reports fs.ErrNotExist only when neither
// file exists: half a CA is an operator's problem to look at, never a
// reason to silently mint a new root that clients do not trust.
func loadCA(dir string) (*authority, error) {
	certPath := filepath.Join(dir, rootCertFile)
	keyPath := filepath.Join(dir, rootKeyFile)
	certPEM, certErr := os.ReadFile(certPath)
	keyPEM, keyErr := os.ReadFile(keyPath)
	switch {
	case errors.Is(certErr, fs.ErrNotExist) && errors.Is(keyErr, fs.ErrNotExist):
		return nil, fs.ErrNotExist
	case certErr != nil || keyErr != nil:
		// %v, not %w: a missing half must not read as "no CA yet".
		return nil, fmt.Errorf("certs: internal CA in %s is incomplete: %v", dir, errors.Join(certErr, keyErr))
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("certs: internal CA in %s: %w", dir, err)
	}
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok || !pair.Leaf.IsCA {
		return nil, fmt.Errorf("certs: internal CA in %s: %s is not a CA certificate with a signing key", dir, rootCertFile)
	}
	if time.Now().After(pair.Leaf.NotAfter) {
		return nil, fmt.Errorf("certs: internal CA in %s expired on %s; move the directory away to create a new one",
			dir, pair.Leaf.NotAfter.Format(time.DateOnly))
	}
	return &authority{cert: pair.Leaf, key: signer, certPath: certPath}, nil
}

// createCA writes a new root into a private temporary directory and
// renames it into place. rename(2) of a directory onto an existing
// non-empty one fails, so when two processes race, exactly one root wins
// and the loser loads it; nobody ever reads half-written files.
func createCA(dir string, names []string) (ca *authority, created bool, err error) {
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return nil, false, fmt.Errorf("certs: internal CA: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, ".ca-")
	if err != nil {
		return nil, false, fmt.Errorf("certs: internal CA: %w", err)
	}
	defer os.RemoveAll(tmp) // a no-op once renamed

	certPEM, keyPEM, err := newRoot(names)
	if err != nil {
		return nil, false, fmt.Errorf("certs: internal CA: %w", err)
	}
	if err := writeFileSync(filepath.Join(tmp, rootKeyFile), keyPEM, 0o600); err != nil {
		return nil, false, err
	}
	if err := writeFileSync(filepath.Join(tmp, rootCertFile), certPEM, 0o644); err != nil {
		return nil, false, err
	}
	// The certificate is public; let other local users (a browser's)
	// read it. The key stays 0600.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, false, fmt.Errorf("certs: internal CA: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		if ca, lerr := loadCA(dir); lerr == nil {
			return ca, false, nil // another process created it first
		}
		return nil, false, fmt.Errorf("certs: internal CA: %w", err)
	}
	ca, err = loadCA(dir)
	return ca, err == nil, err
}

func writeFileSync(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("certs: internal CA: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("certs: internal CA: %w", err)
	}
	return nil
}

func newRoot(names []string) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			CommonName:   "hedge internal CA " + host,
			Organization: []string{"hedge"},
		},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(rootLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		// Leaves only: a stolen root key cannot mint sub-CAs that clients
		// would accept.
		MaxPathLen:     0,
		MaxPathLenZero: true,
	}
	constrain(tmpl, names)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

// constrain limits what the root may sign to the deployment's names, so
// that its key, if stolen, cannot impersonate anyone else to the clients
// that trust it. DNS names are permitted with their parent domain
// (play.edge.test → edge.test), so nodes and names added later in the same
// domain need no new root; addresses with their private or loopback block
// (127.0.0.0/8, 10.0.0.0/8, ...), other addresses exactly. A kind of name
// the deployment does not use is not permitted at all.
func constrain(tmpl *x509.Certificate, names []string) {
	var domains []string
	var ranges []*net.IPNet
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			r := ipBlock(ip)
			if !slices.ContainsFunc(ranges, func(x *net.IPNet) bool { return x.String() == r.String() }) {
				ranges = append(ranges, r)
			}
			continue
		}
		n = strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(n, "*."), "."))
		if n == "" {
			continue
		}
		if labels := strings.Split(n, "."); len(labels) > 2 {
			n = strings.Join(labels[1:], ".")
		}
		domains = append(domains, n)
	}
	slices.Sort(domains)
	domains = slices.Compact(domains)
	// Drop domains inside another one: edge.test covers sea.edge.test.
	kept := domains[:0]
	for _, d := range domains {
		if !slices.ContainsFunc(domains, func(p string) bool { return p != d && strings.HasSuffix(d, "."+p) }) {
			kept = append(kept, d)
		}
	}
	tmpl.PermittedDNSDomainsCritical = true
	tmpl.PermittedDNSDomains = kept
	if len(kept) == 0 {
		// RFC 6761's reserved TLD: nothing real is permitted.
		tmpl.PermittedDNSDomains = []string{"invalid"}
	}
	tmpl.PermittedIPRanges = ranges
	if len(ranges) == 0 {
		tmpl.ExcludedIPRanges = []*net.IPNet{
			{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)},
			{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)},
		}
	}
	tmpl.PermittedEmailAddresses = []string{"invalid"}
	tmpl.PermittedURIDomains = []string{"invalid"}
}

// ipBlocks are the ranges an internal address is permitted with.
var ipBlocks = func() []*net.IPNet {
	var out []*net.IPNet
	for _, c := range []string{"127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "::1/128", "fc00::/7"} {
		_, n, _ := net.ParseCIDR(c)
		out = append(out, n)
	}
	return out
}()

func ipBlock(ip net.IP) *net.IPNet {
	for _, b := range ipBlocks {
		if b.Contains(ip) {
			return b
		}
	}
	if v4 := ip.To4(); v4 != nil {
		return &net.IPNet{IP: v4, Mask: net.CIDRMask(32, 32)}
	}
	return &net.IPNet{IP: ip, Mask: net.CIDRMask(128, 128)}
}

func randomSerial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
}

// internalIssuer is a certmagic.Issuer that signs CSRs with the internal
// CA, so certmagic stores, serves and renews internal leaves exactly as it
// does ACME ones.
type internalIssuer struct {
	ca       *authority
	lifetime time.Duration
}

var _ certmagic.Issuer = (*internalIssuer)(nil)

// IssuerKey names the storage folder of this issuer's certificates. It
// carries the root's fingerprint so that leaves signed by a previous root
// (the CA directory was deleted) are never loaded and served.
func (iss *internalIssuer) IssuerKey() string {
	sum := sha256.Sum256(iss.ca.cert.Raw)
	return "hedge-internal-" + hex.EncodeToString(sum[:8])
}

// Issue signs csr. The leaf is valid for exactly the configured lifetime
// from now, never beyond the root, and starts a little in the past so
// that clients whose clocks lag still accept a fresh certificate.
func (iss *internalIssuer) Issue(ctx context.Context, csr *x509.CertificateRequest) (*certmagic.IssuedCertificate, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("certs: internal CA: bad CSR: %w", err)
	}
	if len(csr.DNSNames)+len(csr.IPAddresses) == 0 {
		return nil, errors.New("certs: internal CA: CSR names no DNS name or IP address")
	}
	names := slices.Clone(csr.DNSNames)
	for _, ip := range csr.IPAddresses {
		names = append(names, ip.String())
	}
	if err := iss.ca.checkCovers(names); err != nil {
		return nil, err
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	notAfter := now.Add(iss.lifetime)
	if notAfter.After(iss.ca.cert.NotAfter) {
		notAfter = iss.ca.cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		NotBefore:             now.Add(-min(time.Minute, iss.lifetime/10)),
		NotAfter:              notAfter,
		DNSNames:              csr.DNSNames,
		IPAddresses:           csr.IPAddresses,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	if len(csr.DNSNames) > 0 && len(csr.DNSNames[0]) <= 64 {
		// Deprecated for matching, but still what many tools display.
		tmpl.Subject.CommonName = csr.DNSNames[0]
	}
	if _, ok := csr.PublicKey.(*rsa.PublicKey); ok {
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, iss.ca.cert, csr.PublicKey, iss.ca.key)
	if err != nil {
		return nil, fmt.Errorf("certs: internal CA: signing: %w", err)
	}
	return &certmagic.IssuedCertificate{
		Certificate: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
	}, nil
}
