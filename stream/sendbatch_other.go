//go:build !linux

package stream

// Elsewhere the batcher sends datagrams one by one (or with sendmmsg where
// the platform has it), without GSO trains.
const gsoSupported = false

func udpSegmentCmsg() []byte { return nil }

func setSegmentSize([]byte, int) {}
