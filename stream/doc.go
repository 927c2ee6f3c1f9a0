// Package stream relays live-dealer video around one Hub per table: WHIP
// (RFC 9725) publishers write into it, WHEP viewers, the LL-HLS muxer (as a
// Reader) and other regions' relays read out, without transcoding.
//
// Server is the node's WHIP/WHEP endpoint (a fasthttp handler): one ICE UDP
// socket for every session (and optionally a passive ICE-TCP one), PLI to
// the publisher when a viewer connects (rate-limited), NACKs answered from
// one packet cache per track, viewer caps that point at LL-HLS (counting
// viewers once their ICE and DTLS complete; those that never do are closed
// after a connect timeout), per-address limits on starting sessions,
// session resources that answer only to the session's own credentials, a grace
// period in which a reconnecting studio continues the same stream (sequence
// numbers and timestamps rewritten so viewers' decoders carry on), and
// relays that pull a stream once from the region that publishes it.
package stream
