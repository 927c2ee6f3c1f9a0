package benchkit

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
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

	"hedge/configs"
	"hedge/internal/pki"
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
	roots, err := pki.ReadPool(certFile)
	if err != nil {
		t.Fatalf("pki.ReadPool(%s): %v", certFile, err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: "localhost"}); err != nil {
		t.Fatalf("the certificate does not verify against a pool of its own file: %v", err)
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

func TestWorkspace(t *testing.T) {
	if _, err := NewWorkspace("kit-", ""); err == nil || !strings.Contains(err.Error(), "-hedge") {
		t.Fatalf("NewWorkspace without -hedge: %v, want an error naming -hedge", err)
	}
	src := filepath.Join(t.TempDir(), "hedge")
	if err := os.WriteFile(src, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	w, err := NewWorkspace("kit-", src)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(w.Dir); err != nil || fi.Mode().Perm() != 0o755 || !strings.HasPrefix(filepath.Base(w.Dir), "kit-") {
		t.Fatalf("workspace %s: %v, %v; want a kit-… directory of mode 0755", w.Dir, fi, err)
	}
	if self, _ := os.Executable(); w.Self != self {
		t.Errorf("Self = %q, want %q", w.Self, self)
	}
	if fi, err := os.Stat(w.Hedge); err != nil || filepath.Dir(w.Hedge) != w.Dir || fi.Mode().Perm()&0o100 == 0 {
		t.Fatalf("Hedge = %s (%v, %v), want an executable copy in %s", w.Hedge, fi, err, w.Dir)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(w.Dir); !os.IsNotExist(err) {
		t.Fatalf("after Close: stat %s = %v, want it gone", w.Dir, err)
	}
}

func TestNeedTools(t *testing.T) {
	if err := NeedTools("coreutils", "sh"); err != nil {
		t.Fatalf("NeedTools(sh): %v", err)
	}
	err := NeedTools("the Debian package nothing", "sh", "hedge-no-such-tool")
	if err == nil || err.Error() != "hedge-no-such-tool not found: install the Debian package nothing" {
		t.Fatalf("NeedTools of a missing tool: %v, want it named with what installs it", err)
	}
}

func TestBoundedEndsOnSignal(t *testing.T) {
	ctx, stop := Bounded(time.Minute)
	defer stop()
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("SIGHUP did not end the run's context")
	}
	ctx, stop2 := Bounded(time.Millisecond)
	defer stop2()
	<-ctx.Done()
	if ctx.Err() != context.DeadlineExceeded {
		t.Fatalf("after the timeout: %v, want %v", ctx.Err(), context.DeadlineExceeded)
	}
}

func TestNginxVersion(t *testing.T) {
	fake := filepath.Join(t.TempDir(), "nginx")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\necho 'nginx version: nginx/1.22.1' >&2\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if v := NginxVersion(fake); v != "nginx/1.22.1" {
		t.Errorf("NginxVersion = %q, want %q", v, "nginx/1.22.1")
	}
	if v := NginxVersion(filepath.Join(t.TempDir(), "missing")); v != "" {
		t.Errorf("NginxVersion of a missing binary = %q, want \"\"", v)
	}
}

// TestHedgeBenchRegions: the harnesses' region, filled in as they fill it,
// is a valid configuration naming the node StartHedge is given, with the
// listener's own settings in place.
func TestHedgeBenchRegions(t *testing.T) {
	conf := strings.NewReplacer("{{listen}}", "127.0.0.1:8443", "{{admin}}", "127.0.0.1:9090",
		"{{upstream}}", "127.0.0.1:8080", "{{dir}}", t.TempDir()).Replace(`data_dir: {{dir}}
admin: {allow_loopback: true}
routes:
  - name: bets
    match: {path_prefix: /api/bets, methods: [POST]}
    pool: up
` + HedgeBenchRegions("5s", `tls: {mode: "off"}`, "http3: {enabled: false}"))
	cfg, err := configs.Parse("bench.yaml", []byte(conf))
	if err != nil {
		t.Fatalf("HedgeBenchRegions does not parse: %v\n%s", err, conf)
	}
	if len(cfg.Regions) != 1 || cfg.Regions[0].Name != BenchRegion || len(cfg.Regions[0].Nodes) != 1 || cfg.Regions[0].Nodes[0].Name != BenchNode {
		t.Fatalf("regions %+v, want one region %s with one node %s", cfg.Regions, BenchRegion, BenchNode)
	}
	n := cfg.Regions[0].Nodes[0]
	if len(n.Listeners) != 1 || n.Listeners[0].Address != "127.0.0.1:8443" || n.Listeners[0].TLS.Mode != "off" ||
		n.Listeners[0].Limits.MaxConnsPerIP != 100000 || n.Admin.Address != "127.0.0.1:9090" {
		t.Fatalf("node %+v, want the public listener at 127.0.0.1:8443 with TLS off and 100000 connections per address, admin at 127.0.0.1:9090", n)
	}
	p := cfg.Regions[0].Pools
	if len(p) != 1 || p[0].Name != "up" || len(p[0].Members) != 1 || p[0].Members[0].URL != "http://127.0.0.1:8080" || p[0].Health.Interval.D() != 5*time.Second {
		t.Fatalf("pools %+v, want up with the one member http://127.0.0.1:8080, checked every 5s", p)
	}
}

func TestProcFields(t *testing.T) {
	path := filepath.Join(t.TempDir(), "status")
	if err := os.WriteFile(path, []byte("Name:\tbench\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\nno colon\nvoluntary_ctxt_switches:\t7\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	ProcFields(path, func(k string, n int64) { got[k] = n })
	want := map[string]int64{"Name": 0, "VmHWM": 2048, "VmRSS": 1024, "voluntary_ctxt_switches": 7}
	if len(got) != len(want) {
		t.Fatalf("ProcFields: got %v, want %v", got, want)
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("ProcFields %s: got %d, want %d", k, got[k], n)
		}
	}
	ProcFields(filepath.Join(t.TempDir(), "gone"), func(k string, _ int64) { t.Errorf("a missing file gave field %q", k) })
}

func TestDistinctCPUs(t *testing.T) {
	if _, err := CPUBusy(0); err != nil {
		t.Skipf("no /proc/stat line for cpu0: %v", err)
	}
	for _, tc := range []struct{ a, b int }{
		{0, 0},
		{0, -1},
		{0, 1 << 20},
	} {
		err := DistinctCPUs("-x", tc.a, "-y", tc.b)
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("-x (%d) and -y (%d)", tc.a, tc.b)) {
			t.Errorf("DistinctCPUs(%d, %d) = %v, want an error naming both flags and CPUs", tc.a, tc.b, err)
		}
	}
	if _, err := CPUBusy(1); err == nil {
		if err := DistinctCPUs("-x", 0, "-y", 1); err != nil {
			t.Errorf("DistinctCPUs(0, 1) on a machine with cpu1: %v", err)
		}
	}
}
