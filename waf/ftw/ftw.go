// Package ftw runs the OWASP Core Rule Set's regression suite with go-ftw
// against a live server and reads the results: the conformance test of
// hedge's WAF (ftw_test.go) and its baseline, bare Coraza (e2e/wafref).
//
// go-ftw runs in log mode: before and after each test it sends a marker
// request carrying an X-CRS-Test header, which the server's test-profile
// marker rule writes to a ModSecurity-format error log; the rule ids logged
// between the two markers are the test's result. (go-ftw's "cloud" mode
// checks status codes only and passes almost everything with the WAF off.)
//
// go-ftw itself is built from the nested tools module in tools/, which pins
// v2.1.0 and replaces wait4x.dev/v3 — refused by the module proxy — with a
// local stub.
package ftw

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Version is the go-ftw release the tools module pins.
const Version = "v2.1.0"

// CRSModule is the module whose tests/ directory holds the regression suite.
const CRSModule = "github.com/corazawaf/coraza-coreruleset/v4"

// TestsDir returns the CRS regression tests of the coraza-coreruleset version
// that the module in moduleDir requires, downloading the module if needed.
func TestsDir(ctx context.Context, moduleDir string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", CRSModule)
	cmd.Dir = moduleDir
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("ftw: locating %s: %w%s", CRSModule, err, stderrOf(err))
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "tests")
	if _, err := os.Stat(dir); err != nil {
		return "", fmt.Errorf("ftw: CRS tests: %w", err)
	}
	return dir, nil
}

// Input is one stage's request in a CRS regression test file, as written.
type Input struct {
	Method  string            `yaml:"method"`
	URI     string            `yaml:"uri"`
	Headers map[string]string `yaml:"headers"`
	Data    string            `yaml:"data"`
}

// Inputs reads the requests of every test file below dir (TestsDir), in
// the files' order. A file whose shape this reader does not know (a few
// use others) gives what it could read.
func Inputs(dir string) ([]Input, error) {
	var in []Input
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".yaml") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var f struct {
			Tests []struct {
				Stages []struct {
					Input Input `yaml:"input"`
				} `yaml:"stages"`
			} `yaml:"tests"`
		}
		_ = yaml.Unmarshal(b, &f)
		for _, tc := range f.Tests {
			for _, st := range tc.Stages {
				in = append(in, st.Input)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ftw: reading %s: %w", dir, err)
	}
	return in, nil
}

// BuildGoFTW builds go-ftw from the tools module in toolsDir into dst.
func BuildGoFTW(ctx context.Context, toolsDir, dst string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", dst, "github.com/coreruleset/go-ftw/v2")
	cmd.Dir = toolsDir
	// The tools module stands alone: no workspace, and its go.sum is complete.
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("ftw: building go-ftw in %s: %w\n%s", toolsDir, err, out)
	}
	return nil
}

// Config is one go-ftw run.
type Config struct {
	Binary   string // the go-ftw executable
	TestsDir string // directory of CRS test YAML files
	Host     string // the server under test; every test's dest_addr is replaced
	Port     int    // and its port
	ErrorLog string // the server's ModSecurity-format error log
	// Overrides is a go-ftw platform overrides file; empty: none.
	Overrides string
	// Include limits the run to the test ids (e.g. "920100-8") listed;
	// empty: every test.
	Include []string
	// WorkDir receives go-ftw's configuration and results.
	WorkDir string
	// ReadTimeout bounds each response; 0: 10s.
	ReadTimeout time.Duration
}

// Result is go-ftw's JSON summary.
type Result struct {
	Run        int      `json:"run"` // including skipped tests
	Success    []string `json:"success"`
	Failed     []string `json:"failed"`
	Skipped    []string `json:"skipped"`
	Ignored    []string `json:"ignored"`
	ForcedPass []string `json:"forced-pass"`
	ForcedFail []string `json:"forced-fail"`
	// TotalTime is the sum of the tests' own times, without go-ftw's
	// marker requests.
	TotalTime time.Duration `json:"total-time"`
	// TriggeredRules are the rule ids logged per test and stage.
	TriggeredRules map[string][][]uint `json:"triggered-rules"`
	// Wall is the run's duration, markers and start-up included.
	Wall time.Duration `json:"-"`
}

// Executed counts the tests that ran (not skipped).
func (r *Result) Executed() int {
	return len(r.Success) + len(r.Failed) + len(r.Ignored) + len(r.ForcedPass) + len(r.ForcedFail)
}

// AllFailed lists failed and forced-to-fail tests, sorted.
func (r *Result) AllFailed() []string {
	f := append(append([]string(nil), r.Failed...), r.ForcedFail...)
	SortIDs(f)
	return f
}

// Summary is one line: run/passed/failed/ignored/skipped.
func (r *Result) Summary() string {
	return fmt.Sprintf("run %d, passed %d, failed %d, ignored %d, skipped %d (%s wall, %s in tests)",
		r.Executed(), len(r.Success)+len(r.ForcedPass), len(r.Failed)+len(r.ForcedFail), len(r.Ignored),
		len(r.Skipped), r.Wall.Round(time.Second), r.TotalTime.Round(time.Second))
}

// Run runs go-ftw once and returns its results. A run whose tests fail is not
// an error; a run that produced no results is.
func Run(ctx context.Context, c Config) (*Result, error) {
	if c.ReadTimeout == 0 {
		c.ReadTimeout = 10 * time.Second
	}
	if err := os.MkdirAll(c.WorkDir, 0o755); err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(c.WorkDir, "ftw.yaml")
	out := filepath.Join(c.WorkDir, "results.json")
	_ = os.Remove(out)
	cfg := fmt.Sprintf("logfile: %s\nlogmarkerheadername: X-CRS-Test\ntestoverride:\n  input:\n    dest_addr: %s\n    port: %d\n",
		strconv.Quote(c.ErrorLog), strconv.Quote(c.Host), c.Port)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	args := []string{"run", "--config", cfgPath, "--dir", c.TestsDir, "--output", "json", "--file", out,
		"--read-timeout", c.ReadTimeout.String()}
	if c.Overrides != "" {
		args = append(args, "--overrides", c.Overrides)
	}
	if len(c.Include) > 0 {
		args = append(args, "--include", IncludePattern(c.Include))
	}
	cmd := exec.CommandContext(ctx, c.Binary, args...)
	cmd.Dir = c.WorkDir
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	start := time.Now()
	runErr := cmd.Run()
	wall := time.Since(start)
	data, err := os.ReadFile(out)
	if err != nil || len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("ftw: go-ftw %s gave no results (%v): %s", strings.Join(args, " "), runErr, tail(stderr.String(), 2000))
	}
	var r Result
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("ftw: go-ftw results %s: %w", out, err)
	}
	r.Wall = wall
	for _, l := range [][]string{r.Success, r.Failed, r.Skipped, r.Ignored, r.ForcedPass, r.ForcedFail} {
		SortIDs(l)
	}
	return &r, nil
}

// IncludePattern is a go-ftw --include expression matching exactly ids.
func IncludePattern(ids []string) string {
	q := make([]string, len(ids))
	for i, id := range ids {
		q[i] = regexp.QuoteMeta(id)
	}
	return "^(" + strings.Join(q, "|") + ")$"
}

// SortIDs sorts test ids ("920100-8") by rule, then test number.
func SortIDs(ids []string) {
	key := func(s string) (int, int) {
		r, t, _ := strings.Cut(s, "-")
		a, _ := strconv.Atoi(r)
		b, _ := strconv.Atoi(t)
		return a, b
	}
	sort.Slice(ids, func(i, j int) bool {
		ai, bi := key(ids[i])
		aj, bj := key(ids[j])
		if ai != aj {
			return ai < aj
		}
		return bi < bj
	})
}

// Overrides are a go-ftw platform overrides file read for what the
// conformance test needs: which tests it covers and why.
type Overrides struct {
	Reasons map[string]string // test id → reason
}

type overridesFile struct {
	Version string `yaml:"version"`
	Meta    struct {
		Engine      string            `yaml:"engine"`
		Platform    string            `yaml:"platform"`
		Annotations map[string]string `yaml:"annotations"`
	} `yaml:"meta"`
	TestOverrides []struct {
		RuleID  uint           `yaml:"rule_id"`
		TestIDs []uint         `yaml:"test_ids"`
		Reason  string         `yaml:"reason"`
		Output  map[string]any `yaml:"output"`
	} `yaml:"test_overrides"`
}

// LoadOverrides reads a platform overrides file and checks hedge's rule for
// it: every entry names exactly one test, says why in its reason and states
// the output expected instead, and no test is listed twice.
func LoadOverrides(path string) (*Overrides, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f overridesFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	o := &Overrides{Reasons: map[string]string{}}
	var errs []error
	for i, e := range f.TestOverrides {
		where := fmt.Sprintf("%s: test_overrides[%d]", path, i)
		if e.RuleID == 0 || len(e.TestIDs) != 1 {
			errs = append(errs, fmt.Errorf("%s: name one rule_id and exactly one test id (one reason per test), got rule %d tests %v", where, e.RuleID, e.TestIDs))
			continue
		}
		id := fmt.Sprintf("%d-%d", e.RuleID, e.TestIDs[0])
		if strings.TrimSpace(e.Reason) == "" {
			errs = append(errs, fmt.Errorf("%s (%s): reason is empty", where, id))
		}
		if len(e.Output) == 0 {
			errs = append(errs, fmt.Errorf("%s (%s): output is empty; state what this platform answers instead", where, id))
		}
		if _, dup := o.Reasons[id]; dup {
			errs = append(errs, fmt.Errorf("%s: test %s listed twice", where, id))
		}
		o.Reasons[id] = strings.TrimSpace(e.Reason)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return o, nil
}

// IDs lists the overridden tests, sorted.
func (o *Overrides) IDs() []string {
	ids := make([]string, 0, len(o.Reasons))
	for id := range o.Reasons {
		ids = append(ids, id)
	}
	SortIDs(ids)
	return ids
}

func stderrOf(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) && len(ee.Stderr) > 0 {
		return ": " + strings.TrimSpace(string(ee.Stderr))
	}
	return ""
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
