package httpx

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
)

// testTrusted is the proxy set most tests use: two private IPv4 ranges and
// one IPv6 range.
var testTrusted = NewTrusted([]netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("2001:db8:ffff::/48"),
})

func TestTrustedContains(t *testing.T) {
	mapped := NewTrusted([]netip.Prefix{netip.MustParsePrefix("::ffff:172.16.0.0/108"), {}})
	linkLocal := NewTrusted([]netip.Prefix{netip.MustParsePrefix("fe80::/10")})
	tests := []struct {
		name string
		t    Trusted
		addr string
		want bool
	}{
		{"zero value trusts nothing", Trusted{}, "10.0.0.1", false},
		{"empty list trusts nothing", NewTrusted(nil), "10.0.0.1", false},
		{"inside v4", testTrusted, "10.1.2.3", true},
		{"outside v4", testTrusted, "11.0.0.1", false},
		{"v4-mapped peer matches v4 prefix", testTrusted, "::ffff:10.1.2.3", true},
		{"inside v6", testTrusted, "2001:db8:ffff:1::7", true},
		{"outside v6", testTrusted, "2001:db8:fffe::1", false},
		{"v4 does not match v6", testTrusted, "32.1.13.184", false},
		{"v4-mapped prefix becomes v4", mapped, "172.16.5.5", true},
		{"v4-mapped prefix, outside", mapped, "172.32.0.1", false},
		{"zone ignored", linkLocal, "fe80::1%eth0", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.t.Contains(netip.MustParseAddr(tt.addr)); got != tt.want {
				t.Errorf("Contains(%s) = %v, want %v", tt.addr, got, tt.want)
			}
		})
	}
	if testTrusted.Contains(netip.Addr{}) {
		t.Error("Contains(invalid Addr) = true, want false")
	}
}

func TestNewTrustedCopies(t *testing.T) {
	in := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	tr := NewTrusted(in)
	in[0] = netip.MustParsePrefix("11.0.0.0/8")
	if !tr.Contains(netip.MustParseAddr("10.0.0.1")) || tr.Contains(netip.MustParseAddr("11.0.0.1")) {
		t.Error("Trusted changed when the caller's slice did")
	}
}

func TestClientAddr(t *testing.T) {
	const (
		proxy    = "10.0.0.1"
		stranger = "203.0.113.7"
	)
	tests := []addrCase{
		{"untrusted peer ignores header", stranger, "198.51.100.1", stranger},
		{"untrusted peer, no header", stranger, "", stranger},
		{"trusted peer, no header", proxy, "", proxy},
		{"trusted peer, one hop", proxy, "198.51.100.1", "198.51.100.1"},
		{"client-written entries left of the first untrusted are ignored", proxy, "6.6.6.6, 198.51.100.1", "198.51.100.1"},
		{"trusted hops skipped", proxy, "198.51.100.1, 10.0.0.2, 192.168.1.1", "198.51.100.1"},
		{"all trusted gives leftmost", proxy, "10.0.0.5, 10.0.0.6", "10.0.0.5"},
		{"malformed stops at last good hop", proxy, "198.51.100.1, garbage, 10.0.0.3", "10.0.0.3"},
		{"malformed rightmost gives peer", proxy, "198.51.100.1, unknown", proxy},
		{"several lines joined", proxy, "6.6.6.6, 198.51.100.1, 10.0.0.9", "198.51.100.1"},
		{"empty elements skipped", proxy, ",198.51.100.1,, ,10.0.0.3,", "198.51.100.1"},
		{"only commas", proxy, " , ,", proxy},
		{"OWS trimmed", proxy, "\t198.51.100.1 \t,10.0.0.3", "198.51.100.1"},
		{"v4 with port", proxy, "198.51.100.1:4711", "198.51.100.1"},
		{"bare v6", proxy, "2001:db8::1", "2001:db8::1"},
		{"bracketed v6", proxy, "[2001:db8::1]", "2001:db8::1"},
		{"bracketed v6 with port", proxy, "[2001:db8::1]:4711, 10.0.0.3", "2001:db8::1"},
		{"trusted v6 hop skipped", proxy, "198.51.100.1, 2001:db8:ffff::9", "198.51.100.1"},
		{"v4-mapped entry unmapped", proxy, "::ffff:198.51.100.1", "198.51.100.1"},
		{"v4-mapped trusted peer", "::ffff:10.0.0.1", "198.51.100.1", "198.51.100.1"},
		{"v4-mapped untrusted peer unmapped", "::ffff:203.0.113.7", "198.51.100.1", stranger},
		{"trusted v6 peer", "2001:db8:ffff::1", "2001:db8::5", "2001:db8::5"},
		{"zone is malformed", proxy, "fe80::1%eth0", proxy},
		{"leading zeros are malformed", proxy, "198.051.100.1", proxy},
		{"bracketed v4 is malformed", proxy, "[198.51.100.1]", proxy},
		{"port too long", proxy, "198.51.100.1:123456", proxy},
		{"empty port", proxy, "198.51.100.1:", proxy},
		{"bad port", proxy, "[2001:db8::1]:http", proxy},
		{"junk after bracket", proxy, "[2001:db8::1]x", proxy},
		{"unclosed bracket", proxy, "[2001:db8::1", proxy},
		{"v6 with one colon cannot exist", proxy, "2001:db8", proxy},
		{"hostname is malformed", proxy, "client.example", proxy},
		{"quoted is malformed", proxy, `"198.51.100.1"`, proxy},
		{"stop keeps last trusted hop", proxy, "198.51.100.1, 10.0.0.2 10.0.0.3, 10.0.0.4", "10.0.0.4"},
	}
	runAddrCases(t, "ClientAddr", ClientAddr, refClientAddr, tests)
	if got := ClientAddr(netip.Addr{}, []byte("198.51.100.1"), testTrusted); got.IsValid() {
		t.Errorf("ClientAddr(invalid peer) = %s, want invalid", got)
	}
}

// refClientAddr is a slow, straightforward ClientAddr the fuzzer compares
// against: split, trim, parse with the standard library's string functions.
func refClientAddr(peer netip.Addr, xff string, t Trusted) netip.Addr {
	parts := strings.Split(xff, ",")
	for i, p := range parts {
		parts[i] = strings.Trim(p, " \t")
	}
	return refRightmostUntrusted(peer, t, parts, func(p string) bool { return p == "" }, func(p string) (netip.Addr, bool) {
		return refParseNode(p, true, false)
	})
}

// refRightmostUntrusted is the rule both client-address headers follow,
// written plainly: from the peer leftwards through the header's entries
// (empty ones skipped), the first address not trusted is the client; an
// entry that does not parse stops the walk at the last address read.
func refRightmostUntrusted[E any](peer netip.Addr, t Trusted, entries []E, empty func(E) bool, parse func(E) (netip.Addr, bool)) netip.Addr {
	last := peer.Unmap()
	if !t.Contains(last) {
		return last
	}
	for i := len(entries) - 1; i >= 0; i-- {
		if empty(entries[i]) {
			continue
		}
		a, ok := parse(entries[i])
		if !ok {
			return last
		}
		last = a
		if !t.Contains(a) {
			return a
		}
	}
	return last
}

func refParseNode(p string, bareV6, obfPort bool) (netip.Addr, bool) {
	if strings.Contains(p, "%") {
		return netip.Addr{}, false
	}
	portOK := func(port string) bool {
		if obfPort && strings.HasPrefix(port, "_") {
			return len(port) > 1 && strings.Trim(port[1:], "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == ""
		}
		return len(port) >= 1 && len(port) <= 5 && strings.Trim(port, "0123456789") == ""
	}
	if rest, ok := strings.CutPrefix(p, "["); ok {
		host, after, found := strings.Cut(rest, "]")
		if !found {
			return netip.Addr{}, false
		}
		if after != "" {
			port, ok := strings.CutPrefix(after, ":")
			if !ok || !portOK(port) {
				return netip.Addr{}, false
			}
		}
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is6() {
			return netip.Addr{}, false
		}
		return a.Unmap(), true
	}
	switch strings.Count(p, ":") {
	case 0:
		a, err := netip.ParseAddr(p)
		return a, err == nil && a.Is4()
	case 1:
		host, port, _ := strings.Cut(p, ":")
		a, err := netip.ParseAddr(host)
		return a, err == nil && a.Is4() && portOK(port)
	default:
		if !bareV6 {
			return netip.Addr{}, false
		}
		a, err := netip.ParseAddr(p)
		if err != nil || !a.Is6() {
			return netip.Addr{}, false
		}
		return a.Unmap(), true
	}
}

// appearsIn reports whether a is written somewhere in input: some maximal
// run of address characters, or such a run cut before its last colon (a
// port), parses to a.
func appearsIn(input []byte, a netip.Addr) bool {
	isAddrChar := func(c byte) bool {
		return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' || c == ':' || c == '.'
	}
	match := func(s []byte) bool {
		b, err := netip.ParseAddr(string(s))
		return err == nil && b.Unmap() == a
	}
	for i := 0; i < len(input); {
		if !isAddrChar(input[i]) {
			i++
			continue
		}
		j := i
		for j < len(input) && isAddrChar(input[j]) {
			j++
		}
		run := input[i:j]
		if match(run) {
			return true
		}
		if k := bytes.LastIndexByte(run, ':'); k > 0 && match(run[:k]) {
			return true
		}
		i = j
	}
	return false
}

// fuzzPeers are the peers a fuzz input chooses from by index.
var fuzzPeers = []netip.Addr{
	netip.MustParseAddr("10.0.0.1"),
	netip.MustParseAddr("::ffff:10.0.0.1"),
	netip.MustParseAddr("2001:db8:ffff::1"),
	netip.MustParseAddr("203.0.113.7"),
	netip.MustParseAddr("fe80::1%eth0"),
	{},
}

// addrCase is a client-address function's case: the peer, the header it
// sent, the client address the edge must take.
type addrCase struct {
	name, peer, header, want string
}

// runAddrCases checks a client-address function, and its reference, on
// cases.
func runAddrCases(t *testing.T, name string, fn func(netip.Addr, []byte, Trusted) netip.Addr,
	ref func(netip.Addr, string, Trusted) netip.Addr, cases []addrCase) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			peer := netip.MustParseAddr(tt.peer)
			want := netip.MustParseAddr(tt.want)
			if got := fn(peer, []byte(tt.header), testTrusted); got != want {
				t.Errorf("%s(%s, %q) = %s, want %s", name, tt.peer, tt.header, got, want)
			}
			if got := ref(peer, tt.header, testTrusted); got != want {
				t.Errorf("reference %s(%s, %q) = %s, want %s (test reference is wrong)", name, tt.peer, tt.header, got, want)
			}
		})
	}
}

// fuzzAddr runs a client-address function on a fuzzer's input as the edge
// does (the header's bytes, the peer chosen by peerIdx) and checks that it
// leaves its input alone, agrees with its reference and keeps what every
// client-address function promises. It returns the input and the result.
func fuzzAddr(t *testing.T, name string, fn func(netip.Addr, []byte, Trusted) netip.Addr,
	ref func(netip.Addr, string, Trusted) netip.Addr, header string, peerIdx uint8) ([]byte, netip.Addr) {
	t.Helper()
	peer := fuzzPeers[int(peerIdx)%len(fuzzPeers)]
	in := []byte(header)
	got := fn(peer, in, testTrusted)
	if string(in) != header {
		t.Fatalf("%s modified its input: %q became %q", name, header, in)
	}
	if want := ref(peer, header, testTrusted); got != want {
		t.Fatalf("%s(%s, %q) = %s, reference says %s", name, peer, header, got, want)
	}
	checkAddrResult(t, peer, in, got)
	return in, got
}

// checkAddrResult checks what any client-address function must promise.
func checkAddrResult(t *testing.T, peer netip.Addr, input []byte, got netip.Addr) {
	t.Helper()
	if !testTrusted.Contains(peer) && got != peer.Unmap() {
		t.Fatalf("untrusted peer %s: got %s, want the peer", peer, got)
	}
	if got == peer.Unmap() {
		return
	}
	if !got.IsValid() || got.Zone() != "" || got.Is4In6() {
		t.Fatalf("got %#v: not a valid, zone-free, unmapped address", got)
	}
	if !appearsIn(input, got) {
		t.Fatalf("got %s, which is neither the peer %s nor written in %q", got, peer, input)
	}
}

func FuzzClientAddr(f *testing.F) {
	for _, s := range []string{
		"", "198.51.100.1", "6.6.6.6, 198.51.100.1, 10.0.0.2", "10.0.0.5, 10.0.0.6",
		"198.51.100.1, garbage, 10.0.0.3", ",,", "[2001:db8::1]:4711", "2001:db8::1",
		"::ffff:198.51.100.1", "198.51.100.1:80", "fe80::1%eth0", "unknown", "[::1",
		"2001:db8:ffff::9, 10.0.0.1", "1.2.3.4:123456", "0000:0000:0000:0000:0000:0000:255.255.255.255",
	} {
		for i := range fuzzPeers {
			f.Add(s, uint8(i))
		}
	}
	f.Fuzz(func(t *testing.T, xff string, peerIdx uint8) {
		fuzzAddr(t, "ClientAddr", ClientAddr, refClientAddr, xff, peerIdx)
	})
}

var sinkAddr netip.Addr

func BenchmarkTrustedContains(b *testing.B) {
	a := netip.MustParseAddr("198.51.100.1")
	b.ReportAllocs()
	for b.Loop() {
		if testTrusted.Contains(a) {
			b.Fatal("trusted")
		}
	}
}

func BenchmarkClientAddr(b *testing.B) {
	peer := netip.MustParseAddr("10.0.0.1")
	for _, bm := range []struct{ name, xff string }{
		{"v4", "6.6.6.6, 198.51.100.1, 10.0.0.2"},
		{"v6", "2001:db8:cafe::17, 2001:db8:ffff::9"},
		{"untrusted-peer", ""},
	} {
		b.Run(bm.name, func(b *testing.B) {
			xff := []byte(bm.xff)
			p := peer
			if bm.xff == "" {
				p = netip.MustParseAddr("203.0.113.7")
			}
			b.ReportAllocs()
			for b.Loop() {
				sinkAddr = ClientAddr(p, xff, testTrusted)
			}
		})
	}
}
