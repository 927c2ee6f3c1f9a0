package configs

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// protectedBase is the deployment of these tests: one region, one node,
// one pool (six lines, so a case's lines count from the seventh).
const protectedBase = oneNode + "    pools: [{name: games, members: [{url: \"http://127.0.0.1:7000\"}]}]\n"

// errorCase is a configuration and every line `hedge check` must print
// for it, in order; none for a valid one.
type errorCase struct {
	name string
	yaml string
	want []string
}

// checkErrors parses each case as file p.yaml and compares every reported
// problem with the expected ones.
func checkErrors(t *testing.T, base string, cases []errorCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("p.yaml", []byte(base+c.yaml))
			var got []string
			if err != nil {
				var errs *Errors
				if !errors.As(err, &errs) {
					t.Fatalf("want *Errors, got %T: %v", err, err)
				}
				got = strings.Split(errs.Error(), "\n")
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("expected these problems:\n  %s\ngot:\n  %s", strings.Join(c.want, "\n  "), strings.Join(got, "\n  "))
			}
		})
	}
}

// Every mistake in a waf section, at the top level, on a listener and on
// a route, names its file, line and field.
func TestWAFErrors(t *testing.T) {
	checkErrors(t, protectedBase, []errorCase{
		{"valid", "waf: {mode: detect, paranoia_level: 2, exclude: {ids: [942100], tags: [attack-xss]}, allowed_methods: [GET, PATCH]}\n", nil},
		{"mode", "waf: {mode: strict}\n", []string{
			`p.yaml:7: waf.mode: "strict" is not one of block, detect, off, learn`,
		}},
		{"paranoia level and thresholds", `waf:
  paranoia_level: 5
  inbound_threshold: -1
  outbound_threshold: -2
`, []string{
			`p.yaml:8: waf.paranoia_level: must be 1, 2, 3 or 4, got 5`,
			`p.yaml:9: waf.inbound_threshold: must be positive`,
			`p.yaml:10: waf.outbound_threshold: must be positive`,
		}},
		{"exclusions", `waf:
  exclude:
    ids: [0, 942100, 10000000]
    tags: ["", "attack sqli", attack-xss]
`, []string{
			`p.yaml:9: waf.exclude.ids[0]: 0 is not a rule id`,
			`p.yaml:9: waf.exclude.ids[2]: 10000000 is not a rule id`,
			`p.yaml:10: waf.exclude.tags[0]: "" is not a rule tag such as attack-sqli`,
			`p.yaml:10: waf.exclude.tags[1]: "attack sqli" is not a rule tag such as attack-sqli`,
		}},
		{"methods and rule files", `waf:
  allowed_methods: [GET, patch]
  rule_files: [/nonexistent/hedge-rules.conf]
`, []string{
			`p.yaml:8: waf.allowed_methods[1]: "patch" is not an upper-case HTTP method`,
			`p.yaml:9: waf.rule_files[0]: cannot read /nonexistent/hedge-rules.conf: no such file or directory`,
		}},
		{"a route's waf", `routes:
  - name: api
    pool: games
    waf:
      mode: watch
      test_profile: true
      error_log: /tmp/waf.log
`, []string{
			`p.yaml:11: routes[0].waf.mode: "watch" is not one of block, detect, off, learn`,
			`p.yaml:12: routes[0].waf.test_profile: set the test profile in the top-level waf section only`,
			`p.yaml:13: routes[0].waf.error_log: set the error log in the top-level waf section only`,
		}},
		{"a route's field exclusions", `routes:
  - name: api
    pool: games
    waf:
      mode: learn
      exclude_fields:
        - {field: /comment, ids: [942100, 942200]}
        - {field: /items/*/text, ids: [942100]}
        - {field: "?q", ids: [942100]}
        - {field: comment, ids: [942100]}
        - {field: /a.b, ids: [942100]}
        - {field: "?q|x", ids: [0]}
        - {field: /note}
`, []string{
			`p.yaml:16: routes[0].waf.exclude_fields[3].field: "comment" is not a body field (/comment, /items/*/text) or a query parameter (?q) of letters, digits, _ and -`,
			`p.yaml:17: routes[0].waf.exclude_fields[4].field: "/a.b": each segment of a JSON pointer is letters, digits, _ or - (or * for any array index)`,
			`p.yaml:18: routes[0].waf.exclude_fields[5].field: "?q|x" is not a body field (/comment, /items/*/text) or a query parameter (?q) of letters, digits, _ and -`,
			`p.yaml:18: routes[0].waf.exclude_fields[5].ids[0]: 0 is not a rule id`,
			`p.yaml:19: routes[0].waf.exclude_fields[6].ids: name the rules that no longer inspect /note`,
		}},
		{"field exclusions outside a route", "waf: {exclude_fields: [{field: /comment, ids: [942100]}]}\n", []string{
			`p.yaml:7: waf.exclude_fields: field exclusions name a route's fields: set them in a route's waf section`,
		}},
	})
	// A listener's waf.
	checkErrors(t, "", []errorCase{
		{"a listener's waf", strings.Replace(oneNode, `tls: {mode: "off"}}`, `tls: {mode: "off"}, waf: {paranoia_level: 9, test_profile: true}}`, 1), []string{
			`p.yaml:5: regions[0].nodes[0].listeners[0].waf.paranoia_level: must be 1, 2, 3 or 4, got 9`,
			`p.yaml:5: regions[0].nodes[0].listeners[0].waf.test_profile: set the test profile in the top-level waf section only`,
		}},
	})
}

// Allow and deny lists take addresses and CIDRs, at the top level and on
// routes.
func TestACLErrors(t *testing.T) {
	checkErrors(t, protectedBase, []errorCase{
		{"valid", "acl: {allow: [10.0.0.0/8, 192.0.2.1, \"2001:db8::/32\"], deny: [10.9.0.0/16]}\n", nil},
		{"top level", `acl:
  allow: [10.0.0.0/33, 192.0.2.1]
  deny: [not-an-address]
`, []string{
			`p.yaml:8: acl.allow[0]: "10.0.0.0/33" is not a CIDR such as 10.0.0.0/8`,
			`p.yaml:9: acl.deny[0]: "not-an-address" is not an address or CIDR`,
		}},
		{"a route's", `routes:
  - name: api
    pool: games
    acl:
      allow: ["2001:db8::/129"]
      deny: [192.0.2.1, 192.0.2.300]
`, []string{
			`p.yaml:11: routes[0].acl.allow[0]: "2001:db8::/129" is not a CIDR such as 10.0.0.0/8`,
			`p.yaml:12: routes[0].acl.deny[1]: "192.0.2.300" is not an address or CIDR`,
		}},
		{"not a list", "acl: {allow: 10.0.0.0/8}\n", []string{
			`p.yaml:7: acl.allow: want a list`,
		}},
	})
}

// Rate limits: names, keys, principals, rates, bursts and exemptions.
func TestRateLimitErrors(t *testing.T) {
	checkErrors(t, protectedBase, []errorCase{
		{"valid", "rate_limits: [{name: per-ip, rate: 100/s, burst: 50, exempt: [10.0.0.0/8]}, {name: per-player, key: principal, principal: \"header:X-Player\", rate: 10/m, burst: 5}]\n", nil},
		{"names and keys", `rate_limits:
  - {name: Per IP, rate: 1/s, burst: 1}
  - {name: twice, rate: 1/s, burst: 1}
  - {name: twice, rate: 1/s, burst: 1}
  - {name: by-user, key: user, rate: 1/s, burst: 1}
`, []string{
			`p.yaml:8: rate_limits[0].name: "Per IP" must be lower-case letters, digits, '-' or '_' (at most 63)`,
			`p.yaml:10: rate_limits[2].name: rate limit "twice" is defined twice here`,
			`p.yaml:11: rate_limits[3].key: "user" is not one of ip, principal, route`,
		}},
		{"principals", `rate_limits:
  - {name: a, key: principal, principal: jwt, rate: 1/s, burst: 1}
  - {name: b, key: principal, principal: "header:", rate: 1/s, burst: 1}
  - {name: c, key: principal, rate: 1/s, burst: 1}
  - {name: d, key: ip, principal: jwt, rate: 1/s, burst: 1}
`, []string{
			`p.yaml:8: rate_limits[0].principal: "jwt" needs a route that authenticates players (kind ledger, or auth: jwt)`,
			`p.yaml:9: rate_limits[1].principal: "header:" is not "jwt" or "header:NAME"`,
			`p.yaml:10: rate_limits[2].principal: "" is not "jwt" or "header:NAME"`,
			`p.yaml:11: rate_limits[3].principal: only a principal key names a principal`,
		}},
		{"rates, bursts and exemptions", `rate_limits:
  - name: a
    burst: 0
    exempt: [10.0.0.0/8, lan]
  - name: b
    rate: 10/d
    burst: 1
`, []string{
			`p.yaml:8: rate_limits[0].rate: required, such as 100/s`,
			`p.yaml:9: rate_limits[0].burst: must be at least 1`,
			`p.yaml:10: rate_limits[0].exempt[1]: "lan" is not an address or CIDR`,
			`p.yaml:12: rate_limits[1].rate: "10/d" is not a rate such as 100/s: the unit is s, m or h`,
		}},
		{"a route's", `auth:
  jwt:
    keys: [{id: k1, alg: HS256, secret: "0123456789abcdef0123456789abcdef"}]
routes:
  - name: api
    pool: games
    auth: jwt
    rate_limits:
      - {name: per-player, key: principal, principal: jwt, rate: 5/s, burst: 5}
      - {name: per-player, key: route, rate: 0/s, burst: 5}
  - name: open
    pool: games
    rate_limits: [{name: per-player, key: principal, principal: jwt, rate: 5/s, burst: 5}]
`, []string{
			`p.yaml:16: routes[0].rate_limits[1].rate: "0/s" is not a rate such as 100/s: the count must be a positive number`,
			`p.yaml:16: routes[0].rate_limits[1].name: rate limit "per-player" is defined twice here`,
			`p.yaml:19: routes[1].rate_limits[0].principal: "jwt" needs a route that authenticates players (kind ledger, or auth: jwt)`,
		}},
	})
}

// A route's shape limits and its JSON schema.
func TestRouteLimitErrors(t *testing.T) {
	checkErrors(t, protectedBase, []errorCase{
		{"limits", `routes:
  - name: api
    pool: games
    limits:
      max_uri_bytes: -1
      max_headers: -1
      max_header_bytes: -1
      max_multipart_parts: -1
      content_types: [application/json, "text/plain; charset=utf-8", text]
`, []string{
			`p.yaml:11: routes[0].limits.max_uri_bytes: "-1" is not a size (examples: 4096, 64KiB, 1MiB)`,
			`p.yaml:12: routes[0].limits.max_headers: must be greater than zero`,
			`p.yaml:13: routes[0].limits.max_header_bytes: "-1" is not a size (examples: 4096, 64KiB, 1MiB)`,
			`p.yaml:14: routes[0].limits.max_multipart_parts: must be greater than zero`,
			`p.yaml:15: routes[0].limits.content_types[1]: "text/plain; charset=utf-8" is not a media type such as application/json`,
			`p.yaml:15: routes[0].limits.content_types[2]: "text" is not a media type such as application/json`,
		}},
		{"schema without JSON", `routes:
  - name: api
    pool: games
    schema: /nonexistent/bet.json
    limits: {content_types: [text/plain]}
`, []string{
			`p.yaml:10: routes[0].schema: cannot read /nonexistent/bet.json: no such file or directory`,
			`p.yaml:10: routes[0].schema: a JSON schema needs limits.content_types to accept only application/json`,
		}},
		{"schema beside other types", `routes:
  - name: api
    pool: games
    schema: builtin:bet
    limits: {content_types: [application/json, text/plain]}
`, []string{
			`p.yaml:11: routes[0].limits.content_types: a route with a JSON schema accepts only application/json`,
		}},
	})
}
