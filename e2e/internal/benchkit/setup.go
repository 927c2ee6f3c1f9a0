package benchkit

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Slot makes what one measured server needs of its own: a directory under
// parent named prefix…, readable by nginx's worker (which runs as an
// unprivileged user when the harness is root and must reach its temp
// paths), and naddrs free loopback addresses (see FreeAddr).
func Slot(parent, prefix string, naddrs int) (dir string, addrs []string, err error) {
	for range naddrs {
		a, err := FreeAddr()
		if err != nil {
			return "", nil, err
		}
		addrs = append(addrs, a)
	}
	if dir, err = os.MkdirTemp(parent, prefix); err != nil {
		return "", nil, err
	}
	return dir, addrs, os.Chmod(dir, 0o755)
}

// StartUpstream runs the harness's own upstream role (`self -upstream
// ADDR`) on a free loopback address, pinned to cpu (StartPinned) so that it
// shares the load generator's CPU and leaves the server's to the server,
// and waits until GET path answers 200.
func StartUpstream(ctx context.Context, dir string, cpu int, self, path string) (addr string, p *Proc, err error) {
	if addr, err = FreeAddr(); err != nil {
		return "", nil, err
	}
	if p, err = StartPinned("upstream", dir, cpu, self, "-upstream", addr); err != nil {
		return "", nil, err
	}
	plain := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	if err := WaitFor(ctx, p, 10*time.Second, func() error { return GetOK(plain, "http://"+addr+path) }); err != nil {
		p.Stop(syscall.SIGTERM, 2*time.Second)
		return "", nil, err
	}
	return addr, p, nil
}

// SelfSignedCert writes a self-signed ECDSA P-256 certificate for
// 127.0.0.1 and localhost, valid for a day, to dir/cert.pem and its key to
// dir/key.pem: what every server of a run presents. It returns the files
// and the certificate, for a client that trusts it.
func SelfSignedCert(dir, commonName string) (certFile, keyFile string, cert *x509.Certificate, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", nil, err
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: commonName},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", "", nil, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return "", "", nil, err
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return "", "", nil, err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return "", "", nil, err
	}
	cert, err = x509.ParseCertificate(der)
	return certFile, keyFile, cert, err
}
