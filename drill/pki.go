package drill

import (
	"crypto/x509"
	"os"
	"path/filepath"

	"hedge/internal/pki"
)

// edgePKI is the drill's own certificate authority and the one certificate
// every edge and admin listener serves: players verify TLS against the
// root as real clients verify a public CA.
type edgePKI struct {
	RootFile, CertFile, KeyFile string
	Pool                        *x509.CertPool
}

// newPKI writes a root and a leaf for names and ips into dir; the leaf
// is named after names[0] and serves as a client certificate too.
func newPKI(dir string, names []string, ips []string) (*edgePKI, error) {
	ca, err := pki.NewCA("hedge drill CA")
	if err != nil {
		return nil, err
	}
	certPEM, keyPEM, err := ca.Issue(names[0], []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		append(append([]string(nil), names...), ips...)...)
	if err != nil {
		return nil, err
	}
	p := &edgePKI{RootFile: filepath.Join(dir, "root.crt"), CertFile: filepath.Join(dir, "edge.crt"), KeyFile: filepath.Join(dir, "edge.key"),
		Pool: ca.Pool()}
	for _, f := range []struct {
		path string
		pem  []byte
		mode os.FileMode
	}{{p.RootFile, ca.CertPEM(), 0o644}, {p.CertFile, certPEM, 0o644}, {p.KeyFile, keyPEM, 0o600}} {
		if err := os.WriteFile(f.path, f.pem, f.mode); err != nil {
			return nil, err
		}
	}
	return p, nil
}
