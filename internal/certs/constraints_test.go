package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestNameConstraintsFromNames(t *testing.T) {
	for _, c := range []struct {
		names   []string
		dns     []string
		ips     []string
		exclIPs bool
	}{
		{[]string{"play.edge.test", "sea.edge.test", "eu.edge.test"}, []string{"edge.test"}, nil, true},
		{[]string{"api.casino.example", "eu-fra-1.edge.casino.example", "*.casino.example"}, []string{"casino.example"}, nil, true},
		{[]string{"localhost", "127.0.0.1", "127.0.0.12"}, []string{"localhost"}, []string{"127.0.0.0/8"}, false},
		{[]string{"10.20.1.11", "203.0.113.7", "::1"}, []string{"invalid"}, []string{"10.0.0.0/8", "203.0.113.7/32", "::1/128"}, false},
		{nil, []string{"invalid"}, nil, true},
	} {
		tmpl := &x509.Certificate{}
		constrain(tmpl, c.names)
		var ips []string
		for _, r := range tmpl.PermittedIPRanges {
			ips = append(ips, r.String())
		}
		if !slices.Equal(tmpl.PermittedDNSDomains, c.dns) || !slices.Equal(ips, c.ips) || (len(tmpl.ExcludedIPRanges) == 2) != c.exclIPs {
			t.Errorf("names %q: want DNS %q, IP %q, all IPs excluded %v; got DNS %q, IP %q, excluded %v",
				c.names, c.dns, c.ips, c.exclIPs, tmpl.PermittedDNSDomains, ips, tmpl.ExcludedIPRanges)
		}
		if !tmpl.PermittedDNSDomainsCritical {
			t.Errorf("names %q: the name constraints extension must be critical (RFC 5280 4.2.1.10)", c.names)
		}
	}
}

// TestNameConstraintsBind: a certificate signed with the root's key for a
// name outside its constraints is refused by Go's verifier and by curl
// (OpenSSL), which is what the constraints are for: a stolen root key
// cannot impersonate other names to the clients that trust the root.
// Names inside are served and accepted as before.
func TestNameConstraintsBind(t *testing.T) {
	dataDir := t.TempDir()
	log, _ := testLogger(t)
	m, err := New(internalTLS(time.Hour, "play.hedge.test", "127.0.0.1"), dataDir, log,
		CANames([]string{"play.hedge.test", "sea.hedge.test", "127.0.0.1"}))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	startWithin(t, m, 20*time.Second)
	good := serveTLS(t, listenLoopback(t), m.TLSConfig())
	ca, err := loadCA(filepath.Join(dataDir, "ca"))
	if err != nil {
		t.Fatal(err)
	}
	forged := forgeLeaf(t, ca, "bank.example")
	bad := serveTLS(t, listenLoopback(t), &tls.Config{Certificates: []tls.Certificate{forged}})

	pool := poolOf(ca.cert)
	if _, err := handshake(good, &tls.Config{ServerName: "play.hedge.test", RootCAs: pool}); err != nil {
		t.Errorf("a name inside the constraints: want a verified handshake, got %v", err)
	}
	_, err = handshake(bad, &tls.Config{ServerName: "bank.example", RootCAs: pool})
	var invalid x509.CertificateInvalidError
	if !errors.As(err, &invalid) || invalid.Reason != x509.CANotAuthorizedForThisName {
		t.Errorf("Go client, forged leaf for bank.example: want CANotAuthorizedForThisName, got %v", err)
	}

	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Fatalf("curl is required (make test installs it): %v", err)
	}
	run := func(name, addr string) (string, error) {
		_, port, _ := net.SplitHostPort(addr)
		out, err := exec.Command(curl, "-sS", "-o", "/dev/null", "--max-time", "5", "--cacert", ca.certPath,
			"--resolve", name+":"+port+":127.0.0.1", "https://"+name+":"+port+"/").CombinedOutput()
		return string(out), err
	}
	if out, err := run("play.hedge.test", good); err != nil {
		t.Errorf("curl, a name inside the constraints: want success, got %v: %s", err, out)
	}
	if out, err := run("bank.example", bad); err == nil {
		t.Errorf("curl, forged leaf for bank.example: want a verification failure, got success")
	} else if !strings.Contains(out, "certificate") {
		t.Errorf("curl, forged leaf: want a certificate error, got %v: %s", err, out)
	} else {
		t.Logf("curl refuses the forged leaf: %s", strings.TrimSpace(out))
	}

	// The issuer itself refuses names outside, and a Manager asked to serve
	// one says what to do about it.
	m2, err := New(internalTLS(time.Hour, "api.bank.example"), dataDir, log)
	if err == nil {
		m2.Close()
		t.Fatal("a listener name outside the root's constraints: want an error, got a Manager")
	}
	if !strings.Contains(err.Error(), "outside the internal CA's name constraints") || !strings.Contains(err.Error(), "move") {
		t.Errorf("want an error naming the constraints and how to rotate, got %v", err)
	}
}

// TestUnconstrainedRootIsKept: a data directory whose root predates name
// constraints keeps it (clients trust it), with a warning saying how to
// rotate.
func TestUnconstrainedRootIsKept(t *testing.T) {
	dataDir := t.TempDir()
	dir := filepath.Join(dataDir, "ca")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: bigOne(), Subject: pkix.Name{CommonName: "hedge internal CA old"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true, MaxPathLenZero: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	os.WriteFile(filepath.Join(dir, rootCertFile), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(filepath.Join(dir, rootKeyFile), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)

	log, logs := testLogger(t)
	m, err := New(internalTLS(time.Hour, "play.hedge.test"), dataDir, log)
	if err != nil {
		t.Fatalf("an existing root without name constraints: want it kept, got %v", err)
	}
	defer m.Close()
	startWithin(t, m, 20*time.Second)
	root := readCert(t, m.RootPath())
	if len(root.PermittedDNSDomains) != 0 || root.Subject.CommonName != "hedge internal CA old" {
		t.Fatalf("the old root was replaced: %s permits %q", root.Subject.CommonName, root.PermittedDNSDomains)
	}
	addr := serveTLS(t, listenLoopback(t), m.TLSConfig())
	if _, err := handshake(addr, &tls.Config{ServerName: "play.hedge.test", RootCAs: poolOf(root)}); err != nil {
		t.Fatalf("clients trusting the old root: %v", err)
	}
	if !strings.Contains(logs.String(), "no name constraints") || !strings.Contains(logs.String(), "to rotate") {
		t.Errorf("want a warning naming the missing constraints and how to rotate, got logs:\n%s", logs)
	}
}

// forgeLeaf signs a server certificate for name with the CA's key,
// bypassing the issuer's own check, as a thief holding the key would.
func forgeLeaf(t *testing.T, ca *authority, name string) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial, _ := randomSerial()
	tmpl := &x509.Certificate{SerialNumber: serial, DNSNames: []string{name}, NotBefore: time.Now().Add(-time.Minute),
		NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func bigOne() *big.Int { return big.NewInt(1) }
