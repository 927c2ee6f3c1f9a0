// Package dnsfail is hedge's authoritative, health-aware DNS server.
//
// It serves the zones of the deployment's configuration (dns.zones) over UDP
// and TCP: static records (SOA, NS, A, AAAA, CNAME, TXT, CAA, MX, SRV) and
// service names whose answers are computed from the health of the
// deployment's edges, probed with hedge/internal/health. A service's policy
// (failover, nearest, all) picks which healthy edges answer; when none is
// healthy the answer fails open with every candidate and says so in the
// metrics and the status.
//
// Files: server.go (lifecycle), resolve.go (the full query handler and its
// rules: delegations, wildcards, CNAMEs, EDNS, truncation), zone.go (static
// records and the walk from the apex to a name), answer.go (policies behind
// one small interface and the computed answers), health.go (edges → health
// targets, TTL shrink), dnssec.go (keys, online signing with cached
// signatures, compact denial), fast.go (replies prepared in wire format,
// the per-query fast path), wire.go (malformed queries the parser lets
// through), udp.go and udp_linux.go (batched multi-socket UDP I/O; TCP is
// miekg/dns's server), rrl.go (response rate limiting), admin.go (status,
// drain push, overrides, audit), metrics.go. dnsbench/ compares hedge with
// gdnsd and Knot under dnsperf (make bench); knot_test.go compares its
// answers with a running Knot.
package dnsfail
