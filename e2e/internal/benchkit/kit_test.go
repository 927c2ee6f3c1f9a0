package benchkit

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
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
