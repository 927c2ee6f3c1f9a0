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
// Files: server.go (lifecycle, the full query handler and its rules),
// zone.go (static records), answer.go (policies behind one small interface
// and the computed answers), health.go (edges → health targets, TTL
// shrink), fast.go (replies prepared in wire format, the per-query fast
// path), udp.go (batched multi-socket UDP I/O; TCP is miekg/dns's server),
// rrl.go (response rate limiting), admin.go (status, drain push, overrides,
// audit), metrics.go. dnsbench/ compares hedge with gdnsd and Knot under
// dnsperf (make bench).
package dnsfail
