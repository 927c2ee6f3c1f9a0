package ftw

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestLoadOverrides(t *testing.T) {
	const head = "version: v2.1.0\nmeta: {engine: e, platform: p, annotations: {purpose: x}}\ntest_overrides:\n"
	tests := []struct {
		name    string
		body    string
		want    map[string]string
		wantErr string
	}{
		{name: "one test per entry",
			body: "  - {rule_id: 920100, test_ids: [8], reason: colon, output: {status: 200}}\n" +
				"  - {rule_id: 920430, test_ids: [3], reason: 'HTTP/0.9', output: {status: 505}}\n",
			want: map[string]string{"920100-8": "colon", "920430-3": "HTTP/0.9"}},
		{name: "two tests in one entry", body: "  - {rule_id: 920100, test_ids: [4, 5], reason: r, output: {status: 200}}\n",
			wantErr: "exactly one test id"},
		{name: "no test id", body: "  - {rule_id: 920100, reason: r, output: {status: 200}}\n",
			wantErr: "exactly one test id"},
		{name: "no reason", body: "  - {rule_id: 920100, test_ids: [5], output: {status: 200}}\n",
			wantErr: "920100-5): reason is empty"},
		{name: "no output", body: "  - {rule_id: 920100, test_ids: [5], reason: r}\n",
			wantErr: "920100-5): output is empty"},
		{name: "listed twice", body: "  - {rule_id: 920100, test_ids: [5], reason: r, output: {status: 200}}\n" +
			"  - {rule_id: 920100, test_ids: [5], reason: s, output: {status: 200}}\n",
			wantErr: "test 920100-5 listed twice"},
		{name: "unknown field", body: "  - {rule_id: 920100, test_ids: [5], reason: r, output: {status: 200}, why: typo}\n",
			wantErr: "field why not found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "o.yaml")
			if err := os.WriteFile(path, []byte(head+tc.body), 0o644); err != nil {
				t.Fatal(err)
			}
			o, err := LoadOverrides(path)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("want an error containing %q, got %v", tc.wantErr, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(o.Reasons, tc.want) {
				t.Errorf("want %v, got %v", tc.want, o.Reasons)
			}
		})
	}
}

// The committed overrides files follow the same rules; the suite itself runs
// only without -short.
func TestCommittedOverrides(t *testing.T) {
	files, err := filepath.Glob("overrides*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("want committed overrides files, got %v (%v)", files, err)
	}
	for _, f := range files {
		o, err := LoadOverrides(f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if n := len(o.Reasons); n == 0 || n > 16 {
			t.Errorf("%s: want 1..16 overridden tests (the README accounts for 16 raw failures per target), got %d", f, n)
		}
	}
}

func TestSortIDsAndInclude(t *testing.T) {
	ids := []string{"920430-10", "920100-8", "920430-9", "911100-1"}
	SortIDs(ids)
	want := []string{"911100-1", "920100-8", "920430-9", "920430-10"}
	if !reflect.DeepEqual(ids, want) {
		t.Fatalf("SortIDs: want %v, got %v", want, ids)
	}
	if got, want := IncludePattern([]string{"920100-8", "920430-9"}), `^(920100-8|920430-9)$`; got != want {
		t.Errorf("IncludePattern: want %s, got %s", want, got)
	}
}
