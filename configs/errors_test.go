package configs

import "testing"

// The checks of each section that no other test reaches, each naming its
// file, line and field.
func TestSectionErrors(t *testing.T) {
	checkErrors(t, protectedBase, []errorCase{
		{"players' tokens", `auth:
  jwt:
    keys:
      - {id: a, alg: HS256, secret: "0123456789abcdef0123456789abcdef", secret_file: /nonexistent/a}
      - {id: b, alg: HS256, secret_file: /nonexistent/b}
      - {id: b, alg: HS256, secret: short}
      - {id: c, alg: PS256}
      - {id: d, alg: ES256}
    subject_pattern: "[a-z"
    subject_max_length: 2000
`, []string{
			`p.yaml:10: auth.jwt.keys[0]: give secret or secret_file, not both`,
			`p.yaml:11: auth.jwt.keys[1].secret_file: cannot read /nonexistent/b: no such file or directory`,
			`p.yaml:12: auth.jwt.keys[2].id: key id "b" is used twice`,
			`p.yaml:12: auth.jwt.keys[2].secret: too short for HS256: use at least 32 bytes`,
			`p.yaml:13: auth.jwt.keys[3].alg: "PS256" is not one of HS256, RS256, ES256, EdDSA`,
			`p.yaml:14: auth.jwt.keys[4].public_key_file: required for ES256`,
			"p.yaml:15: auth.jwt.subject_pattern: \"[a-z\" is not a regular expression: error parsing regexp: missing closing ]: `[a-z)$`",
			`p.yaml:16: auth.jwt.subject_max_length: must be 1 to 1024, got 2000`,
		}},
		{"ledger routes and upstream headers", `auth: {jwt: {keys: [{id: k, alg: HS256, secret: "0123456789abcdef0123456789abcdef"}]}}
ledger: {degradation: {error_rate: 1.5}}
routes:
  - name: bets
    kind: ledger
    pool: games
    upstream_headers: {allow: [Content-Type, X-Client-Version, X-Hedge-Whatever, "bad header"]}
  - name: lobby
    pool: games
    upstream_headers: {allow: [X-Client-Version], strip: [X-Debug, "not ok"]}
`, []string{
			`p.yaml:8: ledger.degradation.error_rate: must be a share above 0 and at most 1, got 1.5`,
			`p.yaml:12: routes[0].pool: a ledger route goes to the designated writer of the request's domain, not to a pool`,
			`p.yaml:13: routes[0].upstream_headers.allow[0]: Content-Type is set or removed by the edge itself on every forwarded request`,
			`p.yaml:13: routes[0].upstream_headers.allow[2]: X-Hedge-Whatever is in the edge's own namespaces (Ledger-*, X-Hedge-*, Hedge-*), which a client can never supply`,
			`p.yaml:13: routes[0].upstream_headers.allow[3]: "bad header" is not a header name (a trailing * matches a prefix)`,
			`p.yaml:16: routes[1].upstream_headers.allow: only money routes (kind: ledger, or idempotency: required) forward an allowlist; other routes forward every header except upstream_headers.strip`,
			`p.yaml:16: routes[1].upstream_headers.strip[1]: "not ok" is not a header name (a trailing * matches a prefix)`,
		}},
	})
	checkErrors(t, "", []errorCase{
		{"idempotency liveness", `regions:
  - name: sea
    nodes:
      - name: sea-1
        listeners: [{address: "127.0.0.1:8443", tls: {mode: "off"}}]
    idempotency: {store: redis, redis: {address: "127.0.0.1:6379", liveness: 100ms}}
  - name: eu
    nodes:
      - name: eu-1
        listeners: [{address: "127.0.0.2:8443", tls: {mode: "off"}}]
    idempotency: {store: redis, redis: {address: "127.0.0.1:6379", liveness: 1m}}
`, []string{
			`p.yaml:6: regions[0].idempotency.redis.liveness: must be 300ms to 30s, got 100ms`,
			`p.yaml:11: regions[1].idempotency.redis.liveness: must be 300ms to 30s, got 1m0s`,
		}},
		{"listeners, pools and writers", `regions:
  - name: sea
    nodes:
      - name: sea-1
        listeners:
          - address: "bad_host:8443"
            tls:
              mode: acme
              names: [play.example.com]
              acme: {directory: "ftp://acme.example.com", tls_alpn_address: "nowhere"}
    pools:
      - name: rails
        policy: failover
        shared_idempotency: true
        members: [{url: "http://127.0.0.1:7100/pay"}]
    writers: [{domain: sea, url: "http://127.0.0.1:7200?x=1"}]
`, []string{
			`p.yaml:6: regions[0].nodes[0].listeners[0].address: "bad_host:8443" has no valid host`,
			`p.yaml:10: regions[0].nodes[0].listeners[0].tls.acme.directory: "ftp://acme.example.com" is not an http(s) URL`,
			`p.yaml:10: regions[0].nodes[0].listeners[0].tls.acme.tls_alpn_address: "nowhere" is not host:port`,
			`p.yaml:14: regions[0].pools[0].shared_idempotency: a failover pool's members (primary and backup rails) deduplicate independently: a request whose outcome is unknown at one must never be sent to another`,
			`p.yaml:15: regions[0].pools[0].members[0].url: "http://127.0.0.1:7100/pay" must not carry a path or query: the request's own is forwarded`,
			`p.yaml:16: regions[0].writers[0].url: "http://127.0.0.1:7200?x=1" must not carry a path or query: the request's own is forwarded`,
		}},
		{"dns", `regions:
  - name: sea
    nodes:
      - name: sea-1
        listeners: [{address: "127.0.0.1:8443", tls: {mode: "off"}}]
        dns: {address: "127.0.0.1:5353"}
dns:
  rrl: {slip: -2, ipv6_prefix: 200}
  zones:
    - name: edge.test.
      ns: [ns1.edge.test.]
      soa: {rname: "bad..name"}
      records:
        - {name: play, type: CNAME, value: other.test.}
        - {name: www, type: A, ttl: -1s, value: 192.0.2.1}
      services:
        - {name: play}
`, []string{
			`p.yaml:8: dns.rrl.slip: must be -1 (never) or at least 0, got -2`,
			`p.yaml:8: dns.rrl.ipv6_prefix: must be 16 to 128, got 200`,
			`p.yaml:12: dns.zones[0].soa.rname: "bad..name" is not a domain name`,
			`p.yaml:14: dns.zones[0].records[0]: play.edge.test. has a CNAME and other data (service (dns.zones[0].services[0].name)): a CNAME cannot share its name with other data (RFC 1034 §3.6.2, RFC 2181 §10.1)`,
			`p.yaml:15: dns.zones[0].records[1].ttl: must not be negative`,
		}},
	})
}
