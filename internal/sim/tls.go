package sim

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"

	"hedge/internal/pki"
)

// ServerTLS is how a stand-in serves HTTPS: certFile and keyFile (PEM) are
// its certificate, and with clientCAFile it requires client certificates
// signed by that CA, as a wallet that only takes calls from the edge
// (mTLS) would. Wrap the listener given to Serve with tls.NewListener.
func ServerTLS(certFile, keyFile, clientCAFile string) (*tls.Config, error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("sim: TLS needs a certificate and a key")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}}
	if clientCAFile != "" {
		pool, err := loadPool(clientCAFile)
		if err != nil {
			return nil, err
		}
		c.ClientCAs, c.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return c, nil
}

// PeerTLS is how a ledger reaches its replicas and its writer over HTTPS:
// caFile (PEM) verifies them (empty: the system roots), and certFile with
// keyFile is the client certificate presented to peers that require one.
func PeerTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}
	if caFile != "" {
		pool, err := loadPool(caFile)
		if err != nil {
			return nil, err
		}
		c.RootCAs = pool
	}
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("sim: a peer client certificate needs both a certificate and a key")
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("sim: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// loadPool reads the PEM certificates of file into a pool.
func loadPool(file string) (*x509.CertPool, error) {
	pool, err := pki.ReadPool(file)
	if err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	return pool, nil
}
