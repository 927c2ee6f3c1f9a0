package configs

import "testing"

// The listener and argument limits are defaulted on listeners, left at 0
// (the listener's) on routes, and checked with file, line and field.
func TestArgumentAndConnectionLimits(t *testing.T) {
	c := demo(t)
	lim := c.Regions[0].Nodes[0].Listeners[0].Limits
	if lim.MaxArgs != DefaultMaxArgs || lim.MaxArgNameBytes != DefaultMaxArgNameBytes || lim.MaxArgValueBytes != DefaultMaxArgValueBytes ||
		lim.MaxArgsBytes != DefaultMaxArgsBytes || lim.MaxJSONDepth != DefaultMaxJSONDepth || lim.MaxConnsPerIP != DefaultMaxConnsPerIP {
		t.Fatalf("listener limits not defaulted: %+v", lim)
	}
	if rl := c.Routes[0].Limits; rl.MaxArgs != 0 || rl.MaxJSONDepth != 0 {
		t.Fatalf("a route's argument limits must stay 0 (the listener's), got %+v", rl)
	}

	src := `regions:
  - name: sea
    nodes:
      - name: sea-1
        listeners:
          - address: "127.0.0.1:8443"
            tls: {mode: "off"}
            limits: {max_conns_per_ip: -1, max_args: -2, max_json_depth: 65}
    pools:
      - name: games
        members: [{url: "http://127.0.0.1:1"}]
routes:
  - name: api
    pool: games
    limits: {max_args: -1, max_arg_value_bytes: 0, max_json_depth: 100}
`
	_, err := Parse("limits.yaml", []byte(src))
	wantProblems(t, err,
		"limits.yaml:8: regions[0].nodes[0].listeners[0].limits.max_conns_per_ip: must be at least 1, got -1",
		"limits.yaml:8: regions[0].nodes[0].listeners[0].limits.max_args: must be at least 1, got -2",
		"limits.yaml:8: regions[0].nodes[0].listeners[0].limits.max_json_depth: must be 1 to 64, got 65",
		"limits.yaml:15: routes[0].limits.max_args: must be at least 0, got -1",
		"limits.yaml:15: routes[0].limits.max_json_depth: must be 0 to 64, got 100",
	)
}
