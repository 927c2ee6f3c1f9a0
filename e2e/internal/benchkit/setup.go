package benchkit

import (
	"context"
	"crypto/x509"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"hedge/internal/pki"
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

// SelfSignedCert writes a self-signed certificate for 127.0.0.1 and
// localhost to dir/cert.pem and its key to dir/key.pem: what every server
// of a run presents. It returns the files and the certificate, for a
// client that trusts it.
func SelfSignedCert(dir, commonName string) (certFile, keyFile string, cert *x509.Certificate, err error) {
	certPEM, keyPEM, cert, err := pki.SelfSigned(commonName, "127.0.0.1", "localhost")
	if err != nil {
		return "", "", nil, err
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, certPEM, 0o644); err != nil {
		return "", "", nil, err
	}
	return certFile, keyFile, cert, os.WriteFile(keyFile, keyPEM, 0o600)
}
