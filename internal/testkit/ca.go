package testkit

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"

	"hedge/internal/pki"
)

// CA is a certificate authority of a test's own, for the certificates a
// deployment brings itself (writers' and rails' server certificates, the
// edge's and operators' client certificates), written to files for the
// flags and configuration fields that name them.
type CA struct {
	dir string
	ca  *pki.CA
	// File is the CA's certificate (PEM), what ca_file, client_ca and
	// -client-ca name.
	File string
}

// NewCA makes a CA named name and writes its certificate to dir/NAME.pem.
func NewCA(t testing.TB, dir, name string) *CA {
	t.Helper()
	ca, err := pki.NewCA(name)
	if err != nil {
		t.Fatal(err)
	}
	c := &CA{dir: dir, ca: ca, File: filepath.Join(dir, name+".pem")}
	writeFile(t, c.File, ca.CertPEM())
	return c
}

// Issue signs a certificate for hosts (names or addresses) and writes it
// and its key as NAME.crt and NAME.key beside the CA's file; client makes
// it a client certificate, else a server certificate.
func (ca *CA) Issue(t testing.TB, name string, client bool, hosts ...string) (certFile, keyFile string) {
	t.Helper()
	usage := x509.ExtKeyUsageServerAuth
	if client {
		usage = x509.ExtKeyUsageClientAuth
	}
	certPEM, keyPEM, err := ca.ca.Issue(name, []x509.ExtKeyUsage{usage}, hosts...)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(ca.dir, name+".crt"), filepath.Join(ca.dir, name+".key")
	writeFile(t, certFile, certPEM)
	writeFile(t, keyFile, keyPEM)
	return certFile, keyFile
}

// Pool trusts the CA alone.
func (ca *CA) Pool() *x509.CertPool { return ca.ca.Pool() }

func writeFile(t testing.TB, file string, pem []byte) {
	t.Helper()
	if err := os.WriteFile(file, pem, 0o600); err != nil {
		t.Fatal(err)
	}
}
