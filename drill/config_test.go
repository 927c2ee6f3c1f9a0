package drill

import (
	"strings"
	"testing"
	"time"
)

// TestParseConfig: a file's fields override the embedded defaults, and
// every problem is reported at once with the file, the line and the field.
func TestParseConfig(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string // error lines, in order; none: valid
		check      func(t *testing.T, c *Config)
	}{
		{name: "empty keeps every default", yaml: "",
			check: func(t *testing.T, c *Config) {
				if c.Players != 200 || c.Replication != "sync" || !c.Witness || c.Lease != 2*time.Second || len(c.Regions) != 2 {
					t.Errorf("defaults: expected 200 players, sync, a witness with a 2s lease, two regions, got %+v", c)
				}
			}},
		{name: "overrides", yaml: "players: 40\nreplication: async\nwitness: false\nregions:\n  - {name: ap, edges: 1}\n  - {name: us, edges: 3}\n",
			check: func(t *testing.T, c *Config) {
				if c.Players != 40 || c.Replication != "async" || c.Witness || c.Regions[1].Name != "us" || c.Regions[1].Edges != 3 || c.Warmup != 5*time.Second {
					t.Errorf("overrides: expected 40 players, async, no witness, region us with 3 edges, default warm-up, got %+v", c)
				}
			}},
		{name: "several errors, each located",
			yaml: "zone: drill.test\nplayers: 1\nregions:\n  - {name: sea, edges: 2}\n  - name: sea\n    edges: 9\nreplication: semi\n",
			want: []string{
				"d.yaml:2: players: 1: want 2 to 5000",
				`d.yaml:5: regions[1].name: "sea" is defined twice`,
				"d.yaml:6: regions[1].edges: 9: want 1 to 8",
				`d.yaml:7: replication: "semi": want sync or async`,
			}},
		{name: "a cross-field error is located at the field it names",
			yaml: "promotion: auto\nauto_promote_after: 0s\n",
			want: []string{"d.yaml:2: auto_promote_after: 0s: automatic promotion needs a positive delay"}},
		{name: "lease out of range", yaml: "\n\nlease: 100ms\n",
			want: []string{"d.yaml:3: lease: 100ms: want 1s to 1m (renewed every 250ms)"}},
		{name: "unknown field", yaml: "players: 4\nplayerz: 5\n",
			want: []string{"d.yaml:2: field playerz not found in type drill.Config"}},
		{name: "wrong type", yaml: "players: many\n",
			want: []string{"d.yaml:1: cannot unmarshal !!str `many` into int"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig("d.yaml", []byte(tc.yaml))
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("expected no error, got %v", err)
				}
				tc.check(t, c)
				return
			}
			if err == nil {
				t.Fatalf("expected errors %q, got none", tc.want)
			}
			if got := strings.Split(err.Error(), "\n"); strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("errors:\nexpected %q\ngot      %q", tc.want, got)
			}
		})
	}
}

// TestEmbeddedConfigValid: the embedded drill.yaml is what `hedge drill`
// runs without -c.
func TestEmbeddedConfigValid(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("embedded drill.yaml: %v", err)
	}
}
