// Package drill rehearses the loss of a region end to end: it builds a
// two-region deployment on one machine in which every edge node, DNS
// server, Redis, ledger writer or replica and the ledgers' witness is its
// own process (each region in its own network namespace, or on 127.x
// addresses with loopback), drives simulated players that resolve
// play.<zone> over UDP and retry bets with the same Idempotency-Key, and
// viewers that watch a live table per region over WebRTC (WHEP), falling
// back to LL-HLS through play.json, while a studio
// publishes it over WHIP (video.go), injects a fault (region down,
// partition, writer crash, edge crash, drain, DNS loss) and measures RTO
// per ledger domain, DNS move time, RPO, double-applies, stale-epoch writes
// and video interruptions from what the players were told and what the
// ledgers recorded.
// `hedge drill` runs it; see README "Rehearsing a region loss".
package drill
