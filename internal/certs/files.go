package certs

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"time"

	"hedge/configs"
)

// loadFiles reads the operator's certificate chain and key. It runs in
// New, so a reload that points at broken files fails before anything is
// swapped, and a good reload serves the new files.
func loadFiles(f configs.Certificate, names []string, log *slog.Logger) (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, fmt.Errorf("certs: files %s, %s: %w", f.Cert, f.Key, err)
	}
	if cert.Leaf == nil { // only with GODEBUG x509keypairleaf=0
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("certs: files %s: %w", f.Cert, err)
		}
	}
	leaf := cert.Leaf
	if time.Now().After(leaf.NotAfter) {
		// Served anyway: an expired certificate is for the operator to
		// replace, and refusing to start would take the whole edge down.
		log.Error("certificate file has expired", "file", f.Cert, "not_after", leaf.NotAfter)
	}
	for _, name := range names {
		if err := leaf.VerifyHostname(name); err != nil {
			log.Warn("certificate file does not cover a configured name", "file", f.Cert, "name", name)
		}
	}
	return &cert, nil
}
