package waf_test

import (
	"testing"

	"go.yaml.in/yaml/v3"

	"hedge/configs"
	"hedge/waf"
)

// testConfig decodes a configuration document and applies its defaults.
func testConfig(tb testing.TB, doc string) *configs.Config {
	tb.Helper()
	var cfg configs.Config
	if err := yaml.Unmarshal([]byte(doc), &cfg); err != nil {
		tb.Fatal(err)
	}
	configs.ApplyDefaults(&cfg)
	return &cfg
}

// testListener is the listener guards are tested on: 1 MiB bodies.
var testListener = configs.Listener{Name: "public", Limits: configs.Limits{MaxBodyBytes: 1 << 20}}

// testGuards builds, as the gateway does, the guard of every route of cfg
// on listener l, by route name. A nil cache and held stand for ones of the
// test's own, released when it ends.
func testGuards(tb testing.TB, cfg *configs.Config, l configs.Listener, cache *waf.Cache, held *waf.Held) map[string]*waf.Guard {
	tb.Helper()
	if cache == nil {
		cache, held = waf.NewCache(), &waf.Held{}
		tb.Cleanup(cache.Close)
		tb.Cleanup(held.Release)
	}
	out := map[string]*waf.Guard{}
	for _, r := range cfg.Routes {
		g, err := cache.Guard(cfg, waf.Scope{Region: "sea", Node: "sea-1", Listener: l.Name}, l, r, nil, held)
		if err != nil {
			tb.Fatal(err)
		}
		out[r.Name] = g
	}
	return out
}
