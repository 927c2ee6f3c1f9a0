package certs

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"hedge/configs"
)

func internalTLS(lifetime time.Duration, names ...string) configs.TLS {
	return configs.TLS{Mode: ModeInternal, Names: names, Internal: configs.InternalCA{Lifetime: configs.Duration(lifetime)}}
}

func TestInternal(t *testing.T) {
	dataDir := t.TempDir()
	log, _ := testLogger(t)
	names := []string{"play.hedge.test", "sea.hedge.test", "127.0.0.1"}
	const lifetime = time.Hour
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	m1, err := New(internalTLS(lifetime, names...), dataDir, log)
	if err != nil {
		t.Fatal(err)
	}
	defer m1.Close()

	wantRoot := filepath.Join(dataDir, "ca", "root.crt")
	if got := m1.RootPath(); got != wantRoot {
		t.Fatalf("RootPath() = %q, want %q", got, wantRoot)
	}
	rootPEM, err := os.ReadFile(wantRoot)
	if err != nil {
		t.Fatal(err)
	}
	root := parsePEMCert(t, rootPEM)
	checkRoot(t, root)
	if got := root.PermittedDNSDomains; !slices.Equal(got, []string{"hedge.test"}) {
		t.Errorf("root permits DNS %q, want [hedge.test] (the parent of the configured names)", got)
	}
	if got := root.PermittedIPRanges; len(got) != 1 || got[0].String() != "127.0.0.0/8" {
		t.Errorf("root permits IP ranges %v, want [127.0.0.0/8]", got)
	}
	if st, err := os.Stat(filepath.Join(dataDir, "ca", "root.key")); err != nil {
		t.Fatal(err)
	} else if st.Mode().Perm() != 0o600 {
		t.Errorf("root.key mode = %v, want 0600", st.Mode().Perm())
	}

	before := time.Now()
	if err := m1.Start(ctx); err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	if err := m1.Start(ctx); err != nil {
		t.Fatalf("second Start (a retry) = %v, want nil", err)
	}
	addr := serveTLS(t, listenLoopback(t), m1.TLSConfig())

	serials := make(map[string]string)
	for _, name := range names[:2] {
		// The client verifies the chain against the root and the name.
		client := &tls.Config{ServerName: name, RootCAs: poolOf(root)}
		st, err := handshake(addr, client)
		if err != nil {
			t.Fatalf("%s: handshake verifying against the internal root: %v", name, err)
		}
		leaf := st.PeerCertificates[0]
		if !slices.Equal(leaf.DNSNames, []string{name}) {
			t.Errorf("%s: leaf DNSNames = %q", name, leaf.DNSNames)
		}
		// x509 keeps whole seconds, truncated.
		lo, hi := before.Add(lifetime).Truncate(time.Second), after.Add(lifetime)
		if leaf.NotAfter.Before(lo) || leaf.NotAfter.After(hi) {
			t.Errorf("%s: leaf NotAfter = %v, want issuance + %v, in [%v, %v]", name, leaf.NotAfter, lifetime, lo, hi)
		}
		serials[name] = leaf.SerialNumber.String()
		getOK(t, addr, client)
	}

	// A client that sends no SNI (dialing the IP, as a health probe
	// does) gets the certificate for the address it dialed.
	st, err := handshake(addr, &tls.Config{RootCAs: poolOf(root)})
	if err != nil {
		t.Fatalf("handshake without SNI: %v", err)
	}
	if ips := st.PeerCertificates[0].IPAddresses; len(ips) != 1 || ips[0].String() != "127.0.0.1" {
		t.Errorf("without SNI: got certificate for IPs %v, want 127.0.0.1", ips)
	}

	infos := m1.Certificates()
	if len(infos) != len(names) {
		t.Fatalf("Certificates() = %+v, want one per name %v", infos, names)
	}
	for i, info := range infos {
		if !slices.Equal(info.Names, []string{names[i]}) || info.Issuer != root.Subject.CommonName || info.Mode != ModeInternal ||
			info.NotAfter.Before(before.Add(lifetime).Truncate(time.Second)) {
			t.Errorf("Certificates()[%d] = %+v, want names [%s], issuer %q, mode internal", i, info, names[i], root.Subject.CommonName)
		}
	}
	if err := m1.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m1.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := m1.Start(ctx); err != ErrClosed {
		t.Errorf("Start after Close = %v, want ErrClosed", err)
	}

	// A restart reuses the CA and the stored leaves.
	m2, err := New(internalTLS(lifetime, names...), dataDir, log)
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	if again, err := os.ReadFile(m2.RootPath()); err != nil || !bytes.Equal(again, rootPEM) {
		t.Fatalf("restart: root changed or unreadable (err %v)", err)
	}
	if err := m2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	addr2 := serveTLS(t, listenLoopback(t), m2.TLSConfig())
	for _, name := range names[:2] {
		st, err := handshake(addr2, &tls.Config{ServerName: name, RootCAs: poolOf(root)})
		if err != nil {
			t.Fatalf("restart: %s: %v", name, err)
		}
		if got := st.PeerCertificates[0].SerialNumber.String(); got != serials[name] {
			t.Errorf("restart: %s served serial %s, want the stored %s", name, got, serials[name])
		}
	}
	if p, err := InternalRoot(dataDir); err != nil || p != wantRoot {
		t.Errorf("InternalRoot = %q, %v; want %q", p, err, wantRoot)
	}
}

func checkRoot(t *testing.T, root *x509.Certificate) {
	t.Helper()
	if !root.IsCA || !root.BasicConstraintsValid {
		t.Error("root is not a CA certificate")
	}
	if pub, ok := root.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Errorf("root key is %T, want ECDSA P-256", root.PublicKey)
	}
	if !strings.HasPrefix(root.Subject.CommonName, "hedge internal CA ") {
		t.Errorf("root CN = %q, want prefix \"hedge internal CA \"", root.Subject.CommonName)
	}
	if days := root.NotAfter.Sub(root.NotBefore).Hours() / 24; days < 365 || days > 366 {
		t.Errorf("root validity = %.1f days, want a year", days)
	}
	if !root.PermittedDNSDomainsCritical || len(root.PermittedDNSDomains) == 0 {
		t.Errorf("root has no critical DNS name constraints: permitted %q", root.PermittedDNSDomains)
	}
	if err := root.CheckSignatureFrom(root); err != nil {
		t.Errorf("root is not self-signed: %v", err)
	}
}

// TestInternalRenewal runs a leaf lifetime of a few seconds: certmagic must
// replace the leaf before it expires, and keep serving a valid one.
func TestInternalRenewal(t *testing.T) {
	dataDir := t.TempDir()
	log, _ := testLogger(t)
	const name = "play.hedge.test"
	const lifetime = 3 * time.Second
	m, err := New(internalTLS(lifetime, name), dataDir, log)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	startWithin(t, m, 10*time.Second)
	addr := serveTLS(t, listenLoopback(t), m.TLSConfig())
	root := readCert(t, m.RootPath())
	client := &tls.Config{ServerName: name, RootCAs: poolOf(root)}

	st, err := handshake(addr, client)
	if err != nil {
		t.Fatal(err)
	}
	first := st.PeerCertificates[0]
	deadline := time.Now().Add(3 * lifetime)
	for time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		// Every handshake verifies validity too: an expired leaf fails here.
		st, err := handshake(addr, client)
		if err != nil {
			t.Fatalf("handshake while waiting for renewal: %v", err)
		}
		leaf := st.PeerCertificates[0]
		if leaf.SerialNumber.Cmp(first.SerialNumber) == 0 {
			continue
		}
		if !leaf.NotAfter.After(first.NotAfter) {
			t.Fatalf("renewed leaf expires %v, not after the first's %v", leaf.NotAfter, first.NotAfter)
		}
		if left := first.NotAfter.Sub(leaf.NotBefore); left < 0 {
			t.Errorf("renewed %v after the first leaf expired", -left)
		}
		return
	}
	t.Fatalf("leaf with lifetime %v (not after %v) was not renewed by %v", lifetime, first.NotAfter, deadline)
}

// TestInternalCARace: listeners in one process (the process lock) and
// processes sharing a data directory (the atomic rename) end up with one
// root between them.
func TestInternalCARace(t *testing.T) {
	const n = 8
	t.Run("in process", func(t *testing.T) {
		dataDir := t.TempDir()
		paths := make([]string, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { paths[i], errs[i] = InternalRoot(dataDir) })
		}
		wg.Wait()
		for i := range n {
			if errs[i] != nil || paths[i] != paths[0] {
				t.Fatalf("InternalRoot #%d = %q, %v; want %q", i, paths[i], errs[i], paths[0])
			}
		}
		checkRoot(t, readCert(t, paths[0]))
	})
	t.Run("across processes", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "ca")
		cas := make([]*authority, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			// createCA without caMu, as separate processes would run it.
			wg.Go(func() { cas[i], _, errs[i] = createCA(dir, []string{"play.hedge.test"}) })
		}
		wg.Wait()
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("createCA #%d: %v", i, errs[i])
			}
			if !cas[i].cert.Equal(cas[0].cert) {
				t.Fatalf("createCA #%d returned a different root", i)
			}
		}
		onDisk := readCert(t, filepath.Join(dir, rootCertFile))
		if !onDisk.Equal(cas[0].cert) {
			t.Fatal("root on disk differs from the one returned")
		}
		leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(dir), ".ca-*"))
		if len(leftovers) != 0 {
			t.Errorf("temporary directories left behind: %v", leftovers)
		}
	})
	t.Run("half a CA is an error", func(t *testing.T) {
		dataDir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dataDir, "ca"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dataDir, "ca", rootKeyFile), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if p, err := InternalRoot(dataDir); err == nil {
			t.Fatalf("InternalRoot with only root.key = %q, nil; want an error, not a new root", p)
		}
	})
}
