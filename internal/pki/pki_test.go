package pki

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestIssueVerifiesAgainstTheCA(t *testing.T) {
	ca, err := NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewCA("other CA")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		usage []x509.ExtKeyUsage
		host  string
	}{
		{"server by name", []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, "play.edge.test"},
		{"server by address", []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, "127.0.0.5"},
		{"client", []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, "operator"},
		{"both", []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, "10.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			certPEM, keyPEM, err := ca.Issue(tc.host, tc.usage, tc.host)
			if err != nil {
				t.Fatal(err)
			}
			pair, err := tls.X509KeyPair(certPEM, keyPEM)
			if err != nil {
				t.Fatalf("certificate and key are not a pair: %v", err)
			}
			leaf := pair.Leaf
			if leaf.Subject.CommonName != tc.host {
				t.Fatalf("common name %q, want %q", leaf.Subject.CommonName, tc.host)
			}
			if err := leaf.VerifyHostname(tc.host); err != nil {
				t.Fatalf("certificate does not name %s: %v", tc.host, err)
			}
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: tc.usage}); err != nil {
				t.Fatalf("does not verify against its CA for %v: %v", tc.usage, err)
			}
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: other.Pool(), KeyUsages: tc.usage}); err == nil {
				t.Fatal("verified against another CA")
			}
		})
	}
	if !ca.Cert.IsCA || !ca.Cert.MaxPathLenZero {
		t.Fatalf("CA certificate: IsCA %v, MaxPathLenZero %v; want a CA that signs leaves only", ca.Cert.IsCA, ca.Cert.MaxPathLenZero)
	}
}

// TestReadPool: a file's certificates verify what they signed; a file
// without one (a key) is refused, and so is a file that is not there.
func TestReadPool(t *testing.T) {
	certPEM, keyPEM, cert, err := SelfSigned("pool", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	roots, err := ReadPool(certFile)
	if err != nil {
		t.Fatalf("ReadPool(%s): %v", certFile, err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: "localhost"}); err != nil {
		t.Fatalf("the certificate does not verify against a pool of its own file: %v", err)
	}
	for _, f := range []string{keyFile, filepath.Join(dir, "missing.pem")} {
		if _, err := ReadPool(f); err == nil || !strings.Contains(err.Error(), f) {
			t.Errorf("ReadPool(%s) = %v; want an error naming the file", f, err)
		}
	}
}

func TestSelfSigned(t *testing.T) {
	certPEM, keyPEM, cert, err := SelfSigned("bench", "127.0.0.1", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		t.Fatalf("certificate and key are not a pair: %v", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	for _, host := range []string{"127.0.0.1", "localhost"} {
		if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: host}); err != nil {
			t.Fatalf("self-signed certificate for %s: %v", host, err)
		}
	}
}
