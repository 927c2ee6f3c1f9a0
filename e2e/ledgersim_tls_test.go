package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLedgersimMTLS: `hedge ledgersim -tls-cert -tls-key -client-ca`
// serves HTTPS and only to clients holding a certificate from the CA, as
// a wallet that takes calls from the edge alone would.
func TestLedgersimMTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newFileCA(t, dir, "wallet-ca")
	srvCert, srvKey := ca.issue(t, "writer", false, "127.0.0.1")
	edgeCert, edgeKey := ca.issue(t, "edge", true)
	addr := freeAddr(t)
	p := startHedge(t, "ledgersim", dir, "ledgersim", "-listen", addr, "-domain", "sea",
		"-tls-cert", srvCert, "-tls-key", srvKey, "-client-ca", ca.file)
	edge := tlsClient(ca.pool(), edgeCert, edgeKey)
	var r httpResult
	waitUntil(t, p, "ledgersim to answer GET /role over mTLS", 10*time.Second, 50*time.Millisecond, func() (bool, string) {
		var err error
		r, err = tryDo(edge, "GET", "https://"+addr+"/role", "")
		if err != nil {
			return false, err.Error()
		}
		return true, r.String()
	})
	if r.status != 200 || !strings.Contains(r.body, `"role":"writer"`) {
		t.Fatalf("GET /role with the edge's certificate: want 200 writer, got %v", r)
	}
	if _, err := tryDo(tlsClient(ca.pool(), "", ""), "GET", "https://"+addr+"/role", ""); err == nil {
		t.Error("GET /role without a client certificate: want the connection refused")
	}
	if r, err := tryDo(quickClient, "GET", "http://"+addr+"/role", ""); err == nil && r.status != 400 {
		t.Errorf("plain HTTP to the TLS ledger: want it refused, got %v", r)
	}
}

// fileCA is a test CA whose certificates are written to files, for the
// flags and configuration fields that name them.
type fileCA struct {
	dir, file string
	cert      *x509.Certificate
	key       *ecdsa.PrivateKey
}

func newFileCA(t *testing.T, dir, name string) *fileCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &fileCA{dir: dir, file: filepath.Join(dir, name+".pem"), cert: cert, key: key}
	writeFile(t, ca.file, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	return ca
}

func (ca *fileCA) issue(t *testing.T, name string, client bool, hosts ...string) (certFile, keyFile string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	usage := x509.ExtKeyUsageServerAuth
	if client {
		usage = x509.ExtKeyUsageClientAuth
	}
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile, keyFile = filepath.Join(ca.dir, name+".crt"), filepath.Join(ca.dir, name+".key")
	writeFile(t, certFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	writeFile(t, keyFile, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})))
	return certFile, keyFile
}

func (ca *fileCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}
