package waf

import (
	"testing"

	"go.yaml.in/yaml/v3"

	"hedge/configs"
)

// A reload that keeps a route's settings keeps its engine and rate-limit
// buckets; the last state to let go of them drops them.
func TestCacheSharesAndReleases(t *testing.T) {
	var cfg configs.Config
	if err := yaml.Unmarshal([]byte(`
waf: {mode: "off"}
routes:
  - name: api
    rate_limits: [{name: per-ip, key: ip, rate: 10/s, burst: 10}]
`), &cfg); err != nil {
		t.Fatal(err)
	}
	configs.ApplyDefaults(&cfg)
	c := NewCache()
	defer c.Close()
	l := configs.Listener{Name: "public", Limits: configs.Limits{MaxBodyBytes: 1 << 20}}
	sc := Scope{Region: "r", Node: "n", Listener: "public"}
	var old, cur Held
	g1, err := c.Guard(&cfg, sc, l, cfg.Routes[0], nil, &old)
	if err != nil {
		t.Fatal(err)
	}
	g2, err := c.Guard(&cfg, sc, l, cfg.Routes[0], nil, &cur)
	if err != nil {
		t.Fatal(err)
	}
	if g1.limits[0].l != g2.limits[0].l {
		t.Fatal("the same settings built a second limiter: a reload would reset every bucket")
	}
	old.Release()
	old.Release() // twice is harmless
	if len(c.limiters) != 1 {
		t.Fatalf("after the old state let go, %d limiters are held, want 1", len(c.limiters))
	}
	cur.Release()
	if len(c.limiters) != 0 {
		t.Fatalf("after the last state let go, %d limiters are held, want 0", len(c.limiters))
	}
}
