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
// Every error they write is RFC 9457 problem+json, like the gateway's own.
package sim
