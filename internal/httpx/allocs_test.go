package httpx

import (
	"net/netip"
	"testing"
)

// TestNoAllocs keeps the per-request path allocation-free on valid input;
// the benchmarks show the same numbers, this makes a regression fail.
func TestNoAllocs(t *testing.T) {
	peer := netip.MustParseAddr("10.0.0.1")
	xff := []byte("6.6.6.6, [2001:db8::1]:4711, 198.51.100.1:80, 10.0.0.2")
	fwd := []byte(`for=198.51.100.1;proto=https, for="[2001:db8:cafe::17]:4711", for=10.0.0.2;proto=https;host="play.example:8443"`)
	tp := []byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	rid := []byte("f47ac10b-58cc-4372-a567-0e02b2c3d479")
	key := []byte(`"8e03978e-40d5-43e8-bc93-\"quoted\""`)
	conn := []byte("keep-alive, Upgrade, X-Trace-Hint")
	client := netip.MustParseAddr("2001:db8:cafe::17")
	proto, host := []byte("https"), []byte("play.example:8443")
	g := NewIDGen()
	buf := make([]byte, 0, 512)

	for _, tc := range []struct {
		name string
		fn   func()
	}{
		{"Trusted.Contains", func() { sinkBool = testTrusted.Contains(peer) }},
		{"ClientAddr", func() { sinkAddr = ClientAddr(peer, xff, testTrusted) }},
		{"ForwardedFor", func() { sinkAddr = ForwardedFor(peer, fwd, testTrusted) }},
		{"ForwardedProto", func() { sinkBytes = ForwardedProto(fwd) }},
		{"AppendForwardedElement", func() { buf = AppendForwardedElement(buf[:0], client, proto, host) }},
		{"ValidTraceparent", func() { sinkBool = ValidTraceparent(tp) }},
		{"ValidRequestID", func() { sinkBool = ValidRequestID(rid) }},
		{"IDGen.Append", func() { buf = g.Append(buf[:0]) }},
		{"ParseIdempotencyKey", func() { buf, _ = ParseIdempotencyKey(buf[:0], key) }},
		{"IsHopByHop", func() { sinkBool = IsHopByHop(conn[:10]) }},
		{"ConnectionTokens", func() { ConnectionTokens(conn, func(tok []byte) { sinkBool = IsHopByHop(tok) }) }},
		{"CutToken", func() { sinkBytes, _ = CutToken(conn) }},
	} {
		if n := testing.AllocsPerRun(100, tc.fn); n != 0 {
			t.Errorf("%s: %v allocs per call, want 0", tc.name, n)
		}
	}
	if got := ClientAddr(peer, xff, testTrusted); got != netip.MustParseAddr("198.51.100.1") {
		t.Errorf("ClientAddr = %s; the allocation test is measuring the wrong path", got)
	}
	if got := ForwardedFor(peer, fwd, testTrusted); got != client {
		t.Errorf("ForwardedFor = %s; the allocation test is measuring the wrong path", got)
	}
}
