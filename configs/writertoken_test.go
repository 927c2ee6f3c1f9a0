package configs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestWriterAdminTokenFile: regions[].writers[].admin_token_file is read
// when the configuration loads; a missing, empty or malformed file is an
// error located at the field.
func TestWriterAdminTokenFile(t *testing.T) {
	dir := t.TempDir()
	good, empty, bad := filepath.Join(dir, "good"), filepath.Join(dir, "empty"), filepath.Join(dir, "bad")
	os.WriteFile(good, []byte("wallet-admin-0123456789abcdef\n"), 0o600)
	os.WriteFile(empty, []byte("\n"), 0o600)
	os.WriteFile(bad, []byte("two words"), 0o600)
	src := func(file string) string {
		return `admin: {allow_loopback: true}
regions:
  - name: sea
    nodes: [{name: sea-1, listeners: [{address: "127.0.0.1:8443", tls: {mode: "off"}}]}]
    writers:
      - {domain: sea, url: "http://127.0.0.1:7000", epoch: 1, admin_token_file: "` + file + `"}
`
	}
	tests := []struct {
		file, wantErr string
	}{
		{good, ""},
		{filepath.Join(dir, "missing"), "t.yaml:6: regions[0].writers[0].admin_token_file: cannot read " + filepath.Join(dir, "missing") + ": no such file or directory"},
		{empty, "t.yaml:6: regions[0].writers[0].admin_token_file: " + empty + " is empty"},
		{bad, "t.yaml:6: regions[0].writers[0].admin_token_file: a bearer token is letters"},
	}
	for _, tc := range tests {
		cfg, err := Parse("t.yaml", []byte(src(tc.file)))
		if tc.wantErr == "" {
			if err != nil {
				t.Fatalf("%s: expected no error, got %v", tc.file, err)
			}
			if got := cfg.Regions[0].Writers[0].AdminToken; got != "wallet-admin-0123456789abcdef" {
				t.Errorf("AdminToken: expected the file's token without its newline, got %q", got)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("expected an error containing\n  %s\ngot:\n  %v", tc.wantErr, err)
		}
	}
}

// TestProbeIntervalDefault: writer candidates are probed often enough that
// a promotion carried out at a writer reaches every node within a second.
func TestProbeIntervalDefault(t *testing.T) {
	cfg, err := Parse("t.yaml", []byte("admin: {allow_loopback: true}\nregions: [{name: sea, nodes: [{name: sea-1, listeners: [{address: \"127.0.0.1:8443\", tls: {mode: \"off\"}}]}]}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Ledger.Probe.Interval.D(); got > DefaultProbeInterval || got <= 0 || DefaultProbeInterval > 250e6 {
		t.Errorf("ledger.probe.interval default: expected at most 250ms, got %s", got)
	}
}
