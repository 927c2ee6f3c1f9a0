package benchkit

import (
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestCPUTicksAndChildren(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	if _, err := CPUTicks(os.Getpid()); err != nil {
		t.Fatalf("CPUTicks(self): %v", err)
	}
	if _, err := CPUTicks(os.Getpid(), -1); err == nil {
		t.Fatal("CPUTicks of a missing process did not fail")
	}
	p, err := Start("sleep", t.TempDir(), -1, "sleep", "30")
	if err != nil {
		t.Skipf("no sleep: %v", err)
	}
	defer p.Stop(syscall.SIGTERM, time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for !slices.Contains(Children(os.Getpid()), p.PID()) {
		if time.Now().After(deadline) {
			t.Fatalf("Children(self) = %v, without the child %d", Children(os.Getpid()), p.PID())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestGetOK(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	if err := GetOK(srv.Client(), srv.URL+"/healthz"); err != nil {
		t.Fatalf("GetOK /healthz: %v", err)
	}
	if err := GetOK(srv.Client(), srv.URL+"/missing"); err == nil {
		t.Fatal("GetOK of a 404 did not fail")
	}
}

func TestCopyExecutable(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.WriteFile(src, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dst, err := CopyExecutable(src, filepath.Join(dir, "dst"))
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dst)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm()&0o100 == 0 || fi.Size() != 10 {
		t.Fatalf("copy: mode %v, size %d", fi.Mode(), fi.Size())
	}
}

func TestSlot(t *testing.T) {
	parent := t.TempDir()
	dir, addrs, err := Slot(parent, "srv-", 2)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(dir) != parent || !strings.HasPrefix(filepath.Base(dir), "srv-") {
		t.Fatalf("Slot dir = %s, want srv-… under %s", dir, parent)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("Slot dir mode: %v, %v; want 0755 (nginx's worker reaches it)", fi.Mode(), err)
	}
	if len(addrs) != 2 || addrs[0] == addrs[1] {
		t.Fatalf("Slot addrs = %v, want two different addresses", addrs)
	}
	for _, a := range addrs {
		l, err := net.Listen("tcp", a)
		if err != nil {
			t.Fatalf("Slot address %s cannot be bound: %v", a, err)
		}
		l.Close()
	}
}

func TestSelfSignedCert(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, cert, err := SelfSignedCert(dir, "kit test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tls.LoadX509KeyPair(certFile, keyFile); err != nil {
		t.Fatalf("the files are not a key pair: %v", err)
	}
	if err := cert.VerifyHostname("127.0.0.1"); err != nil {
		t.Fatalf("certificate for 127.0.0.1: %v", err)
	}
	if err := cert.VerifyHostname("localhost"); err != nil {
		t.Fatalf("certificate for localhost: %v", err)
	}
	if cert.Subject.CommonName != "kit test" {
		t.Fatalf("common name %q, want %q", cert.Subject.CommonName, "kit test")
	}
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		xs   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{7}, 7},
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
	} {
		in := slices.Clone(tc.xs)
		if got := Median(tc.xs); got != tc.want || !slices.Equal(in, tc.xs) {
			t.Errorf("Median(%v) = %v, leaving %v; want %v, leaving the input as it was", in, got, tc.xs, tc.want)
		}
	}
}
