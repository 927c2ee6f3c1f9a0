package gateway

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"testing"
)

func loadPair(t testing.TB, certFile, keyFile string) tls.Certificate {
	t.Helper()
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// rootPool reads a PEM file (the internal CA's root) into a pool.
func rootPool(t testing.TB, file string) *x509.CertPool {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(data) {
		t.Fatalf("%s holds no certificate", file)
	}
	return p
}

// rootCAs is a pool holding the edge's internal CA root: what a client that
// trusts the edge verifies its certificates against.
func (e *testEdge) rootCAs(t testing.TB) *x509.CertPool {
	t.Helper()
	return rootPool(t, e.path("ca", "root.crt"))
}

// copyFile replaces to with a copy of from.
func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, to, string(b))
}
