// Package sim holds development stand-ins for the systems behind the
// gateway: a ledger writer ([Ledger]) and a payment provider ([Rail]).
//
// The demo deployment and the tests run them in-process so that money
// calls can be exercised end to end without a real wallet; `hedge
// ledgersim` runs a Ledger on its own. They are deliberately small and keep
// everything in memory, but they behave like the real thing where the
// gateway's guarantees depend on it: the ledger is the final authority on
// Idempotency-Key, rejects fenced (stale-epoch) requests, refuses writes
// when it is not the designated writer, and can list every key it received
// so a test can prove a debit was applied exactly once.
//
// A writer can stream what it applies to replicas over HTTP
// (replication.go): synchronously (a bet is answered only once every
// replica holds it, so a promoted replica lacks nothing acknowledged) or
// asynchronously after a lag. A replica is promoted through its own admin
// API (POST /admin/promote) or promotes itself when its writer falls
// silent; from then on it refuses the old writer's bets, and the old
// writer, told so by its replica, fences itself. That is the behaviour of
// a wallet team's writer/replica pair that failover drills measure.
//
// Every error they write is RFC 9457 problem+json, like the gateway's own.
package sim
