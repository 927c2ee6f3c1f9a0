// Package pki makes the short-lived certificates a process brings itself
// when it stands up a deployment of its own: a certificate authority and
// the server and client certificates it signs (the drill's edges, tests'
// writers, rails and operators), or one self-signed server certificate
// (the benchmarks). Keys are ECDSA P-256; certificates are valid from an
// hour ago for a day. It is not the demo's local CA (internal/certs),
// which persists and constrains its names. It also reads the CA files a
// configuration names into certificate pools.
package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"time"
)

// ReadPool returns a pool of the PEM certificates in file; a file that
// holds none is an error.
func ReadPool(file string) (*x509.CertPool, error) {
	return AppendFile(x509.NewCertPool(), file)
}

// AppendFile adds the PEM certificates in file to pool and returns it.
func AppendFile(pool *x509.CertPool, file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	return pool, nil
}

// CA is a certificate authority that signs leaf certificates only.
type CA struct {
	Cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// NewCA makes a CA whose common name is name.
func NewCA(name string) (*CA, error) {
	tmpl := template(name)
	tmpl.KeyUsage = x509.KeyUsageCertSign
	tmpl.BasicConstraintsValid, tmpl.IsCA, tmpl.MaxPathLenZero = true, true, true
	cert, key, err := sign(tmpl, nil, nil)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, key: key}, nil
}

// CertPEM is the CA's certificate in PEM, what clients are told to trust.
func (ca *CA) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
}

// Pool trusts the CA alone.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Issue signs a certificate named name for hosts (DNS names or IP
// addresses) with the extended key usages given (server, client or both),
// and returns it and its key (PKCS #8) in PEM.
func (ca *CA) Issue(name string, usage []x509.ExtKeyUsage, hosts ...string) (certPEM, keyPEM []byte, err error) {
	tmpl := leaf(name, usage, hosts)
	cert, key, err := sign(tmpl, ca.Cert, ca.key)
	if err != nil {
		return nil, nil, err
	}
	return encode(cert, key)
}

// SelfSigned makes a server certificate named name for hosts, signed by
// its own key, and returns it in PEM with its key, and parsed.
func SelfSigned(name string, hosts ...string) (certPEM, keyPEM []byte, cert *x509.Certificate, err error) {
	cert, key, err := sign(leaf(name, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, hosts), nil, nil)
	if err != nil {
		return nil, nil, nil, err
	}
	certPEM, keyPEM, err = encode(cert, key)
	return certPEM, keyPEM, cert, err
}

func template(name string) *x509.Certificate {
	return &x509.Certificate{Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
}

func leaf(name string, usage []x509.ExtKeyUsage, hosts []string) *x509.Certificate {
	tmpl := template(name)
	tmpl.KeyUsage, tmpl.ExtKeyUsage = x509.KeyUsageDigitalSignature, usage
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return tmpl
}

// sign makes a key and a certificate from tmpl (with a random serial)
// signed by parent's key, or self-signed when parent is nil.
func sign(tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	if tmpl.SerialNumber, err = rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64)); err != nil {
		return nil, nil, err
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

func encode(cert *x509.Certificate, key *ecdsa.PrivateKey) (certPEM, keyPEM []byte, err error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}
