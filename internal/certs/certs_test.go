package certs

import (
	"context"
	"crypto/tls"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"hedge/configs"
)

func TestOff(t *testing.T) {
	m, err := New(configs.TLS{Mode: ModeOff}, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg := m.TLSConfig(); cfg != nil {
		t.Errorf("TLSConfig() = %p, want nil in mode off", cfg)
	}
	if err := m.Start(context.Background()); err != nil {
		t.Errorf("Start: %v", err)
	}
	if got := m.Certificates(); len(got) != 0 {
		t.Errorf("Certificates() = %v, want none", got)
	}
	if got := m.RootPath(); got != "" {
		t.Errorf("RootPath() = %q, want \"\"", got)
	}
	if err := m.Close(); err != nil {
		t.Error(err)
	}
}

func TestFilesReload(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "edge.crt"), filepath.Join(dir, "edge.key")
	names := []string{"play.hedge.test"}
	tc := configs.TLS{Mode: ModeFiles, Names: names, Files: configs.Certificate{Cert: certPath, Key: keyPath}}
	log, _ := testLogger(t)

	first := writeSelfSigned(t, certPath, keyPath, names, time.Now().Add(48*time.Hour).Truncate(time.Second))
	m1, err := New(tc, t.TempDir(), log)
	if err != nil {
		t.Fatal(err)
	}
	defer m1.Close()
	if err := m1.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	addr1 := serveTLS(t, listenLoopback(t), m1.TLSConfig())
	client := &tls.Config{ServerName: names[0], RootCAs: poolOf(first)}
	assertServes(t, addr1, client, first.SerialNumber.String())
	info := m1.Certificates()
	want := Info{Names: names, Issuer: "operator test cert", NotAfter: first.NotAfter, Mode: ModeFiles}
	if len(info) != 1 || !slices.Equal(info[0].Names, want.Names) || info[0].Issuer != want.Issuer ||
		!info[0].NotAfter.Equal(want.NotAfter) || info[0].Mode != want.Mode {
		t.Errorf("Certificates() = %+v, want [%+v]", info, want)
	}

	// The operator replaces the files and reloads: the running Manager
	// keeps what it loaded, the one the reload builds serves the new files.
	second := writeSelfSigned(t, certPath, keyPath, names, time.Now().Add(72*time.Hour).Truncate(time.Second))
	m2, err := New(tc, t.TempDir(), log)
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	addr2 := serveTLS(t, listenLoopback(t), m2.TLSConfig())
	assertServes(t, addr1, &tls.Config{ServerName: names[0], RootCAs: poolOf(first)}, first.SerialNumber.String())
	assertServes(t, addr2, &tls.Config{ServerName: names[0], RootCAs: poolOf(second)}, second.SerialNumber.String())
	if got := m2.Certificates(); len(got) != 1 || !got[0].NotAfter.Equal(second.NotAfter) {
		t.Errorf("after reload Certificates() = %+v, want not_after %v", got, second.NotAfter)
	}

	// A reload pointing at a broken pair fails before anything is swapped.
	bad := tc
	bad.Files.Key = filepath.Join(dir, "missing.key")
	if _, err := New(bad, t.TempDir(), log); err == nil {
		t.Error("New with a missing key file: got nil error")
	}
}

func assertServes(t *testing.T, addr string, client *tls.Config, wantSerial string) {
	t.Helper()
	st, err := handshake(addr, client)
	if err != nil {
		t.Fatalf("handshake with %s: %v", addr, err)
	}
	if got := st.PeerCertificates[0].SerialNumber.String(); got != wantSerial {
		t.Fatalf("%s served serial %s, want %s", addr, got, wantSerial)
	}
}

// TestTLSPolicy checks what the server accepts, through real handshakes.
func TestTLSPolicy(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "edge.crt"), filepath.Join(dir, "edge.key")
	name := "play.hedge.test"
	cert := writeSelfSigned(t, certPath, keyPath, []string{name}, time.Now().Add(time.Hour))
	m, err := New(configs.TLS{Mode: ModeFiles, Names: []string{name}, Files: configs.Certificate{Cert: certPath, Key: keyPath}}, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, listenLoopback(t), m.TLSConfig())

	tests := []struct {
		name        string
		client      *tls.Config // nil: Go's defaults
		ok          bool
		wantVersion uint16
	}{
		{name: "default client negotiates TLS 1.3", ok: true, wantVersion: tls.VersionTLS13},
		{name: "TLS 1.2 AES-GCM", ok: true, wantVersion: tls.VersionTLS12, client: &tls.Config{
			MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}}},
		{name: "TLS 1.2 CHACHA20-POLY1305", ok: true, wantVersion: tls.VersionTLS12, client: &tls.Config{
			MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}}},
		{name: "TLS 1.3 P-256 only", ok: true, wantVersion: tls.VersionTLS13, client: &tls.Config{
			CurvePreferences: []tls.CurveID{tls.CurveP256}}},
		{name: "TLS 1.1 refused", client: &tls.Config{
			MinVersion: tls.VersionTLS11, MaxVersion: tls.VersionTLS11}},
		{name: "TLS 1.2 CBC only refused", client: &tls.Config{
			MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{
				tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256}}},
		{name: "P-384 only refused", client: &tls.Config{
			CurvePreferences: []tls.CurveID{tls.CurveP384}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := &tls.Config{}
			if tt.client != nil {
				client = tt.client.Clone()
			}
			client.ServerName = name
			client.RootCAs = poolOf(cert)
			client.NextProtos = []string{"h2", "http/1.1"}
			st, err := handshake(addr, client)
			if !tt.ok {
				if err == nil {
					t.Fatalf("handshake succeeded with version %x suite %s, want refusal",
						st.Version, tls.CipherSuiteName(st.CipherSuite))
				}
				// The server must be the one saying no, not the client
				// refusing its own configuration.
				if !strings.Contains(err.Error(), "remote error") {
					t.Fatalf("handshake failed with %v, want an alert from the server", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			if st.Version != tt.wantVersion {
				t.Errorf("version = %x, want %x", st.Version, tt.wantVersion)
			}
			if st.NegotiatedProtocol != "http/1.1" {
				t.Errorf("ALPN = %q, want http/1.1 (fasthttp speaks HTTP/1.1 only)", st.NegotiatedProtocol)
			}
		})
	}
}

func TestACMENextProtos(t *testing.T) {
	tests := []struct {
		challenges []configs.ACMEChallenge
		want       []string
	}{
		{[]configs.ACMEChallenge{"http-01"}, []string{"http/1.1"}},
		{[]configs.ACMEChallenge{"tls-alpn-01"}, []string{"http/1.1", "acme-tls/1"}},
		{[]configs.ACMEChallenge{"http-01", "tls-alpn-01"}, []string{"http/1.1", "acme-tls/1"}},
	}
	for _, tt := range tests {
		m, err := New(configs.TLS{Mode: ModeACME, Names: []string{"play.hedge.test"}, ACME: configs.ACME{
			Directory:   "https://127.0.0.1:1/dir",
			Challenges:  tt.challenges,
			HTTPAddress: "127.0.0.1:80",
		}}, t.TempDir(), nil)
		if err != nil {
			t.Fatal(err)
		}
		cfg := m.TLSConfig()
		if !slices.Equal(cfg.NextProtos, tt.want) {
			t.Errorf("challenges %v: NextProtos = %q, want %q", tt.challenges, cfg.NextProtos, tt.want)
		}
		if cfg.MinVersion != tls.VersionTLS12 {
			t.Errorf("MinVersion = %x, want TLS 1.2", cfg.MinVersion)
		}
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	}
}

func TestHTTPChallengeIgnoresOtherRequests(t *testing.T) {
	for _, path := range []string{"/", "/.well-known/acme-challenge/", "/.well-known/acme-challenge/nosuchtoken", "/api/bets"} {
		if body, ok := HTTPChallenge("play.hedge.test", path); ok {
			t.Errorf("HTTPChallenge(%q) = %q, true; want false", path, body)
		}
	}
}
