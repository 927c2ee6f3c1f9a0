package ftw_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"go/build/constraint"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"hedge/internal/child"
	"hedge/internal/testkit"
	"hedge/waf/ftw"
	"hedge/waf/ftw/albedo"
)

// Each target is a server built from this tree that runs the Core Rule Set in
// its test profile; the suite runs against each with its own overrides file.
var targets = map[string]struct {
	overrides string
	start     func(t *testing.T, ctx context.Context, env *suiteEnv, errorLog string) (host string, port int)
}{
	// hedge: the product, in a hedge_ftw build, one plain-HTTP listener
	// proxying everything to albedo.
	"hedge": {overrides: "overrides.yaml", start: startHedge},
	// wafref: bare Coraza (its net/http middleware) with the same
	// configuration — the baseline hedge must equal.
	"wafref": {overrides: "overrides-coraza.yaml", start: startWafref},
}

// defaultTargets are the targets make test runs: hedge, and bare Coraza as
// the baseline whose raw failures hedge's must match in number.
const defaultTargets = "hedge,wafref"

type suiteEnv struct {
	root     string // hedge's module root
	bin      string // where the test builds binaries
	upstream string // albedo's host:port
}

// TestCRSRegressionSuite runs CRS v4's regression suite (4,674 tests) with
// go-ftw in log mode against hedge and against bare Coraza. Each run fails
// on any failing test that its overrides file does not list, and on any
// listed test whose override (what the platform answers instead) does not
// pass. HEDGE_FTW_TARGETS selects targets (default: defaultTargets).
func TestCRSRegressionSuite(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the CRS regression suite takes about a minute per target")
	}
	missing := func(format string, args ...any) {
		t.Helper()
		if os.Getenv("HEDGE_REQUIRE_TOOLS") == "" {
			t.Skipf("prerequisite missing (set HEDGE_REQUIRE_TOOLS=1 to fail instead): "+format, args...)
		}
		t.Fatalf("prerequisite missing: "+format, args...)
	}
	if _, err := exec.LookPath("go"); err != nil {
		missing("the go command: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	testsDir, err := ftw.TestsDir(ctx, root)
	if err != nil {
		missing("%v", err)
	}
	env := &suiteEnv{root: root, bin: t.TempDir()}
	goftw := filepath.Join(env.bin, "go-ftw")
	if err := ftw.BuildGoFTW(ctx, filepath.Join(root, "waf", "ftw", "tools"), goftw); err != nil {
		missing("%v", err)
	}
	env.upstream = startAlbedo(t)

	names := strings.Split(os.Getenv("HEDGE_FTW_TARGETS"), ",")
	if os.Getenv("HEDGE_FTW_TARGETS") == "" {
		names = strings.Split(defaultTargets, ",")
	}
	raw := map[string][]string{}
	for _, name := range names {
		name = strings.TrimSpace(name)
		target, ok := targets[name]
		if !ok {
			t.Fatalf("HEDGE_FTW_TARGETS: unknown target %q (known: hedge, wafref)", name)
		}
		t.Run(name, func(t *testing.T) {
			path, err := filepath.Abs(target.overrides)
			if err != nil {
				t.Fatal(err)
			}
			ov, err := ftw.LoadOverrides(path)
			if err != nil {
				t.Fatalf("overrides: %v", err)
			}
			work := t.TempDir()
			errorLog := filepath.Join(work, "error.log")
			host, port := target.start(t, ctx, env, errorLog)
			cfg := ftw.Config{Binary: goftw, TestsDir: testsDir, Host: host, Port: port,
				ErrorLog: errorLog, WorkDir: filepath.Join(work, "raw")}
			res, err := ftw.Run(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			raw[name] = res.AllFailed()
			t.Logf("CRS regression suite against %s, raw: %s", name, res.Summary())
			checkRun(t, res)
			checkOverrides(t, ctx, cfg, path, ov, res)
		})
	}
	if a, b := raw["wafref"], raw["hedge"]; a != nil && b != nil {
		onlyHedge, onlyCoraza := diff(b, a), diff(a, b)
		t.Logf("raw failures only hedge has: %v; only bare Coraza has: %v", onlyHedge, onlyCoraza)
	}
}

// checkRun fails a run that did not execute the suite: a missing test
// directory or a server that lost go-ftw's markers shows here.
func checkRun(t *testing.T, res *ftw.Result) {
	t.Helper()
	if len(res.Skipped) > 0 {
		t.Errorf("want no skipped tests, got %d (first: %s)", len(res.Skipped), res.Skipped[0])
	}
	if n := res.Executed(); n < 4600 {
		t.Errorf("want the whole suite (4,674 tests) run, got %d", n)
	}
}

// checkOverrides compares the raw failures with the overrides file and runs
// the listed ones again with it.
func checkOverrides(t *testing.T, ctx context.Context, cfg ftw.Config, path string, ov *ftw.Overrides, res *ftw.Result) {
	t.Helper()
	file := filepath.Base(path)
	failed := res.AllFailed()
	var listed, unlisted []string
	for _, id := range failed {
		if _, ok := ov.Reasons[id]; ok {
			listed = append(listed, id)
		} else {
			unlisted = append(unlisted, id)
		}
	}
	t.Logf("%d raw failures: %v", len(failed), failed)
	for _, id := range unlisted {
		t.Errorf("test %s failed and %s has no override for it (rules logged per stage: %v)", id, file, res.TriggeredRules[id])
	}
	if stale := diff(ov.IDs(), failed); len(stale) > 0 {
		t.Logf("overrides no longer needed (these tests pass as CRS expects): %v", stale)
	}
	if len(listed) == 0 {
		t.Logf("after overrides: 0 failures")
		return
	}
	cfg.Overrides = path
	cfg.Include = listed
	cfg.WorkDir += "-overridden"
	again, err := ftw.Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if n := again.Executed(); n != len(listed) {
		t.Errorf("overridden run: want %d tests run, got %d", len(listed), n)
	}
	for _, id := range again.AllFailed() {
		t.Errorf("test %s fails even with its override in %s (%s); rules logged: %v", id, file, ov.Reasons[id], again.TriggeredRules[id])
	}
	t.Logf("after overrides: %d failures, %d tests answered as %s says", len(again.AllFailed()), len(again.Success), file)
}

// diff returns the elements of a not in b.
func diff(a, b []string) []string {
	in := make(map[string]bool, len(b))
	for _, s := range b {
		in[s] = true
	}
	var d []string
	for _, s := range a {
		if !in[s] {
			d = append(d, s)
		}
	}
	return d
}

func startAlbedo(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: albedo.Handler(nil), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close(); <-done })
	return ln.Addr().String()
}

func startWafref(t *testing.T, ctx context.Context, env *suiteEnv, errorLog string) (string, int) {
	t.Helper()
	bin := filepath.Join(env.bin, "wafref")
	goBuild(t, ctx, env.root, nil, bin, "./e2e/wafref")
	p := start(t, bin, "-listen", "127.0.0.1:0", "-test-profile", "-error-log", errorLog, "-upstream", "http://"+env.upstream)
	line, err := p.waitLine(regexp.MustCompile(`^wafref listening on (\S+)`), 30*time.Second)
	if err != nil {
		t.Fatalf("wafref did not start: %v\n%s", err, p.output())
	}
	host, port, err := splitHostPort(line)
	if err != nil {
		t.Fatal(err)
	}
	return host, port
}

const hedgeConfig = `deployment: ftw
data_dir: "{{DATA}}"
log: {level: warn, format: text}
lifecycle: {drain_period: 0s, shutdown_timeout: 2s}
waf:
  test_profile: true
  inspect_responses: true
  error_log: "{{ERRLOG}}"
routes:
  - name: albedo
    match: {path_prefix: /}
    pool: albedo
    max_body_bytes: 16MiB
    limits: {max_uri_bytes: 64KiB, max_headers: 1000}
regions:
  - name: lab
    nodes:
      - name: lab-1
        listeners:
          - name: ftw
            address: "{{ADDR}}"
            tls: {mode: "off"}
            # The suite checks the rule engine: the argument limits in front
            # of it would answer its many- and long-argument tests first.
            limits: {max_body_bytes: 16MiB, max_header_bytes: 64KiB, max_args: 100000, max_arg_name_bytes: 1MiB,
                     max_arg_value_bytes: 16MiB, max_args_bytes: 16MiB, max_json_depth: 64}
    pools:
      - name: albedo
        members:
          - {name: albedo, url: "http://{{UPSTREAM}}"}
`

func startHedge(t *testing.T, ctx context.Context, env *suiteEnv, errorLog string) (string, int) {
	t.Helper()
	bin := filepath.Join(env.bin, "hedge")
	tags := hedgeTags(t, env.root)
	t.Logf("hedge built with -tags %s", strings.Join(tags, ","))
	goBuild(t, ctx, env.root, tags, bin, ".")
	dir := t.TempDir()
	// The listener's port is chosen free and then bound by hedge; another
	// process may take it in between, so a failed start is retried.
	for attempt := 1; ; attempt++ {
		port := testkit.FreePort(t)
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		cfg := strings.NewReplacer("{{DATA}}", filepath.Join(dir, "data"), "{{ERRLOG}}", errorLog,
			"{{ADDR}}", addr, "{{UPSTREAM}}", env.upstream).Replace(hedgeConfig)
		file := filepath.Join(dir, "hedge.yaml")
		if err := os.WriteFile(file, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		p := start(t, bin, "serve", "-c", file)
		err := waitHTTP(addr, p, 60*time.Second)
		if err == nil {
			return "127.0.0.1", port
		}
		p.stop()
		if attempt == 3 || !strings.Contains(p.output(), "address already in use") {
			t.Fatalf("hedge did not start on %s: %v\n%s", addr, err, p.output())
		}
	}
}

// hedgeTags are the build tags of the hedge under test: the test profile, and
// RE2 when the rule engine has a file that only builds with re2_cgo.
func hedgeTags(t *testing.T, root string) []string {
	t.Helper()
	tags := []string{"hedge_ftw"}
	files, _ := filepath.Glob(filepath.Join(root, "waf", "crs", "*.go"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if !constraint.IsGoBuild(line) {
				continue
			}
			expr, err := constraint.Parse(line)
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			with := expr.Eval(func(tag string) bool { return tag == "re2_cgo" || tag == "cgo" })
			without := expr.Eval(func(tag string) bool { return tag == "cgo" })
			if with && !without {
				return append(tags, "re2_cgo")
			}
		}
	}
	return tags
}

func goBuild(t *testing.T, ctx context.Context, dir string, tags []string, out, pkg string) {
	t.Helper()
	args := []string{"build", "-o", out}
	if len(tags) > 0 {
		args = append(args, "-tags", strings.Join(tags, ","))
	}
	cmd := exec.CommandContext(ctx, "go", append(args, pkg)...)
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, b)
	}
}

// process is a child server, stopped by PID when the test ends.
type process struct {
	*child.Process
	mu   sync.Mutex
	out  bytes.Buffer
	line chan string
	once sync.Once
}

func start(t *testing.T, bin string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(bin, args...)
	r, w := io.Pipe()
	cmd.Stdout, cmd.Stderr = w, w
	c, err := child.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	p := &process{Process: c, line: make(chan string, 64)}
	go func() {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.out.Write(sc.Bytes())
			p.out.WriteByte('\n')
			p.mu.Unlock()
			select {
			case p.line <- sc.Text():
			default:
			}
		}
		_, _ = io.Copy(io.Discard, r)
	}()
	go func() { <-p.Done(); _ = w.Close() }()
	t.Cleanup(p.stop)
	return p
}

func (p *process) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// stop sends SIGTERM to the child's PID, then SIGKILL after 5s.
func (p *process) stop() {
	p.once.Do(func() {
		_ = p.Cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.Done():
		case <-time.After(5 * time.Second):
			_ = p.Cmd.Process.Kill()
			<-p.Done()
		}
	})
}

func (p *process) waitLine(re *regexp.Regexp, timeout time.Duration) (string, error) {
	deadline := time.After(timeout)
	for {
		select {
		case l := <-p.line:
			if m := re.FindStringSubmatch(l); m != nil {
				return m[1], nil
			}
		case <-p.Done():
			return "", errors.New("exited")
		case <-deadline:
			return "", fmt.Errorf("no line matching %s within %s", re, timeout)
		}
	}
}

// waitHTTP waits until addr answers HTTP (any status).
func waitHTTP(addr string, p *process, timeout time.Duration) error {
	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	for {
		resp, err := c.Get("http://" + addr + "/")
		if err == nil {
			_ = resp.Body.Close()
			return nil
		}
		if p.Exited() {
			return errors.New("exited")
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func splitHostPort(addr string) (string, int, error) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	n, err := strconv.Atoi(p)
	return h, n, err
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for i := 0; i < 10; i++ {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.HasPrefix(b, []byte("module hedge\n")) {
			return dir, nil
		}
		dir = filepath.Dir(dir)
	}
	return "", errors.New("module hedge's go.mod not found above the working directory")
}

func TestHedgeTags(t *testing.T) {
	for _, tc := range []struct {
		files map[string]string
		want  string
	}{
		{map[string]string{"rx.go": "//go:build !re2_cgo\n\npackage crs\n"}, "hedge_ftw"},
		{map[string]string{"rx.go": "//go:build !re2_cgo\n\npackage crs\n", "rx_re2.go": "//go:build re2_cgo\n\npackage crs\n"}, "hedge_ftw,re2_cgo"},
		{map[string]string{"a.go": "//go:build cgo && re2_cgo\n\npackage crs\n"}, "hedge_ftw,re2_cgo"},
		{map[string]string{"a.go": "//go:build re2_cgo || !re2_cgo\n\npackage crs\n"}, "hedge_ftw"},
		{map[string]string{"a.go": "package crs\n"}, "hedge_ftw"},
	} {
		root := t.TempDir()
		dir := filepath.Join(root, "waf", "crs")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, body := range tc.files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if got := strings.Join(hedgeTags(t, root), ","); got != tc.want {
			t.Errorf("files %v: want tags %s, got %s", tc.files, tc.want, got)
		}
	}
}
