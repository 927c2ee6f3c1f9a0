// Package streame2e holds the end-to-end test of live streams in a real
// browser against a real `hedge serve` (built by the test, or $HEDGE_BIN)
// with a stream route: headless Chromium (Debian's, driven by playwright-core
// from npm) publishes its fake camera through WHIP on one page and plays it
// on another through WHEP; the test breaks that viewer's WebRTC path (an HTTP
// proxy in front of hedge points the viewer's WHEP answer at a UDP proxy the
// test can block) and checks that the player falls back to LL-HLS with
// hls.js, then restores it and checks that the player returns to WebRTC. It
// prints time-to-first-frame for both modes and the LL-HLS latency. A
// second test plays LL-HLS from a TLS listener over HTTP/2 and over HTTP/3
// (Chromium with QUIC forced on for the node's origin) and checks, from the
// browser's Resource Timing, that every request went by that protocol.
package streame2e
