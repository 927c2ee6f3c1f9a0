package httpx

import (
	"bytes"
	"net/netip"
	"regexp"
	"strings"
	"testing"
)

func TestForwardedFor(t *testing.T) {
	const (
		proxy    = "10.0.0.1"
		stranger = "203.0.113.7"
	)
	tests := []addrCase{
		// RFC 7239 §4 and §7 examples.
		{"rfc7239 4: obfuscated", proxy, `for="_gazonk"`, proxy},
		{"rfc7239 4: quoted v6 with port, name in capitals", proxy, `For="[2001:db8:cafe::17]:4711"`, "2001:db8:cafe::17"},
		{"rfc7239 4: with proto and by", proxy, `for=192.0.2.60;proto=http;by=203.0.113.43`, "192.0.2.60"},
		{"rfc7239 4: two elements", proxy, `for=192.0.2.43, for=198.51.100.17`, "198.51.100.17"},
		{"rfc7239 7.1: v6 rightmost", proxy, `for=192.0.2.43, for="[2001:db8:cafe::17]"`, "2001:db8:cafe::17"},
		{"rfc7239 7.4: unknown rightmost", proxy, `for=192.0.2.43,for="[2001:db8:cafe::17]",for=unknown`, proxy},
		{"rfc7239 6.3: obfuscated chain", proxy, `for=_hidden, for=_SEVKISEK`, proxy},
		{"rfc7239 5.2: v4 with port", proxy, `for="192.0.2.43:47011"`, "192.0.2.43"},
		{"rfc7239 6: obfuscated port", proxy, `for="192.0.2.43:_abc-1"`, "192.0.2.43"},

		{"untrusted peer ignores header", stranger, `for=198.51.100.1`, stranger},
		{"trusted peer, no header", proxy, ``, proxy},
		{"trusted hops skipped", proxy, `for=198.51.100.1, for=10.0.0.2;proto=https, for="[2001:db8:ffff::9]"`, "198.51.100.1"},
		{"all trusted gives leftmost", proxy, `for=10.0.0.5, for=10.0.0.6`, "10.0.0.5"},
		{"stop returns last good hop", proxy, `for=198.51.100.1, for=unknown, for=10.0.0.3`, "10.0.0.3"},
		{"element without for stops", proxy, `for=198.51.100.1, proto=https, for=10.0.0.3`, "10.0.0.3"},
		{"empty elements skipped", proxy, `,for=198.51.100.1,, ,for=10.0.0.3,`, "198.51.100.1"},
		{"OWS around semicolons", proxy, `for=198.51.100.1 ; proto=https ;`, "198.51.100.1"},
		{"empty pairs", proxy, `;;for=198.51.100.1;;`, "198.51.100.1"},
		{"quoted v4", proxy, `for="198.51.100.1"`, "198.51.100.1"},
		{"v4-mapped unmapped", proxy, `for="[::ffff:198.51.100.1]"`, "198.51.100.1"},
		{"v4-mapped trusted peer", "::ffff:10.0.0.1", `for=198.51.100.1`, "198.51.100.1"},
		{"quoted comma in another param", proxy, `for=198.51.100.1;ext="a,b", for=10.0.0.3`, "198.51.100.1"},
		{"escape in for refused", proxy, `for="\198.51.100.1"`, proxy},
		{"escape elsewhere is fine", proxy, `for=198.51.100.1;ext="a\"b"`, "198.51.100.1"},
		{"unquoted v6 is malformed", proxy, `for=[2001:db8::1]`, proxy},
		{"bare v6 in quotes is malformed", proxy, `for="2001:db8::1"`, proxy},
		{"unquoted port is malformed", proxy, `for=198.51.100.1:80`, proxy},
		{"duplicate for is malformed", proxy, `for=198.51.100.1;for=198.51.100.2`, proxy},
		{"space around = is malformed", proxy, `for = 198.51.100.1`, proxy},
		{"zone is malformed", proxy, `for="[fe80::1%eth0]"`, proxy},
		{"hostname is malformed", proxy, `for=client.example`, proxy},
		{"empty quoted for", proxy, `for=""`, proxy},
		{"garbage element stops, later ones still read", proxy, `garbage!!, for=198.51.100.9`, "198.51.100.9"},
		{"bad char inside quotes", proxy, "for=\"198.51.100.1\x01\", for=10.0.0.3", "10.0.0.3"},
		{"escaped control byte", proxy, "for=198.51.100.1;ext=\"\\\x01\", for=10.0.0.3", "10.0.0.3"},
		// A client's unterminated quote must not swallow what proxies append.
		{"unterminated quote resyncs", proxy, `for="6.6.6.6, for=198.51.100.9`, "198.51.100.9"},
		{"quote closed by appended v6", proxy, `for=", for="[2001:db8::9]"`, "2001:db8::9"},
		{"quote closed by appended host", proxy, `for="x, for=198.51.100.9;host="example.com"`, "198.51.100.9"},
		{"dangling escape", proxy, `for="\`, proxy},
		{"trailing semicolon then nothing", proxy, `for=198.51.100.1;`, "198.51.100.1"},
	}
	runAddrCases(t, "ForwardedFor", ForwardedFor, refForwardedFor, tests)
}

func TestForwardedProto(t *testing.T) {
	tests := []struct {
		fwd  string
		want string // "" means nil
	}{
		{``, ""},
		{`for=192.0.2.60;proto=http;by=203.0.113.43`, "http"},
		{`for=192.0.2.43, for=198.51.100.17;by=203.0.113.60;proto=http;host=example.com`, "http"},
		{`proto=http, for=10.0.0.1;proto=https`, "https"},
		{`proto=https, for=10.0.0.1`, ""}, // nearest element has none
		{`for=10.0.0.1;proto="https"`, "https"},
		{`PROTO=HTTPS`, "HTTPS"},
		{`proto=https,`, "https"},
		{`proto=https;proto=http`, ""},
		{`proto="ht\tp"`, ""},
		{`proto="h\"ttp"`, ""},
		{`proto=1http`, ""},
		{`proto=https x`, ""},
		{`proto=coap+tcp`, "coap+tcp"},
	}
	for _, tt := range tests {
		got := ForwardedProto([]byte(tt.fwd))
		if string(got) != tt.want || (tt.want == "") != (got == nil) {
			t.Errorf("ForwardedProto(%q) = %q, want %q", tt.fwd, got, tt.want)
		}
		if ref := refForwardedProto(tt.fwd); ref != tt.want {
			t.Errorf("reference ForwardedProto(%q) = %q, want %q (test reference is wrong)", tt.fwd, ref, tt.want)
		}
	}
}

func TestAppendForwardedElement(t *testing.T) {
	tests := []struct {
		client      netip.Addr
		proto, host string
		want        string
	}{
		{netip.MustParseAddr("192.0.2.60"), "http", "example.com", `for=192.0.2.60;proto=http;host=example.com`},
		{netip.MustParseAddr("2001:db8:cafe::17"), "https", "", `for="[2001:db8:cafe::17]";proto=https`},
		{netip.MustParseAddr("::ffff:192.0.2.60"), "", "", `for=192.0.2.60`},
		{netip.MustParseAddr("fe80::1%eth0"), "", "", `for="[fe80::1]"`},
		{netip.Addr{}, "https", "", `for=unknown;proto=https`},
		{netip.MustParseAddr("192.0.2.60"), "https", "example.com:8443", `for=192.0.2.60;proto=https;host="example.com:8443"`},
		{netip.MustParseAddr("192.0.2.60"), "", "[2001:db8::1]:8443", `for=192.0.2.60;host="[2001:db8::1]:8443"`},
		{netip.MustParseAddr("192.0.2.60"), "", `a"b\c`, `for=192.0.2.60;host="a\"b\\c"`},
		{netip.MustParseAddr("192.0.2.60"), "", "evil\r\nX-Injected: 1", `for=192.0.2.60`},
	}
	for _, tt := range tests {
		prefix := []byte("for=10.0.0.9, ")
		got := AppendForwardedElement(prefix, tt.client, []byte(tt.proto), []byte(tt.host))
		if want := "for=10.0.0.9, " + tt.want; string(got) != want {
			t.Errorf("AppendForwardedElement(%s, %q, %q) = %q, want %q", tt.client, tt.proto, tt.host, got, want)
		}
		// What we write, we must read back.
		if tt.client.IsValid() {
			peer := netip.MustParseAddr("10.0.0.1")
			if back := ForwardedFor(peer, got, testTrusted); back != tt.client.Unmap().WithZone("") {
				t.Errorf("ForwardedFor(%q) = %s, want %s", got, back, tt.client)
			}
		}
	}
}

// refForwardedFor is a slow ForwardedFor the fuzzer compares against: it
// collects the elements first, then walks them right to left as the
// definition says.
func refForwardedFor(peer netip.Addr, fwd string, t Trusted) netip.Addr {
	return refRightmostUntrusted(peer, t, refElements(fwd), func(e refElement) bool { return e.empty }, refForAddr)
}

var schemeRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*$`)

func refForwardedProto(fwd string) string {
	els := refElements(fwd)
	for i := len(els) - 1; i >= 0; i-- {
		if e := els[i]; !e.empty {
			if e.ok && e.params["proto"] != nil && !strings.Contains(e.rawProto, `\`) && schemeRE.MatchString(*e.params["proto"]) {
				return *e.params["proto"]
			}
			return ""
		}
	}
	return ""
}

type refElement struct {
	empty, ok bool
	params    map[string]*string // lower-cased name → unquoted value
	rawFor    string
	rawProto  string
}

func refForAddr(e refElement) (netip.Addr, bool) {
	v := e.params["for"]
	if !e.ok || v == nil || strings.Contains(e.rawFor, `\`) {
		return netip.Addr{}, false
	}
	if strings.EqualFold(*v, "unknown") || strings.HasPrefix(*v, "_") {
		return netip.Addr{}, false
	}
	return refParseNode(*v, false, true)
}

// refElements splits fwd into elements: at commas outside quoted-strings
// when the element is valid, at the next comma whatever the quotes when not.
func refElements(fwd string) []refElement {
	var out []refElement
	for pos := 0; pos <= len(fwd); {
		rest := fwd[pos:]
		parts, ok := splitOutsideQuotes(rest, ',')
		if ok {
			if strings.Trim(parts[0], " \t") == "" {
				out = append(out, refElement{empty: true})
				pos += len(parts[0]) + 1
				continue
			}
			if e, valid := refParseElement(parts[0]); valid {
				out = append(out, e)
				pos += len(parts[0]) + 1
				continue
			}
		}
		out = append(out, refElement{})
		if i := strings.IndexByte(rest, ','); i >= 0 {
			pos += i + 1
		} else {
			pos = len(fwd) + 1
		}
	}
	return out
}

var (
	tokenRE  = regexp.MustCompile("^[!#$%&'*+\\-.^_`|~0-9A-Za-z]+$")
	quotable = func(c byte) bool { return c == '\t' || c >= 0x20 && c != 0x7f }
)

func refParseElement(el string) (refElement, bool) {
	e := refElement{ok: true, params: map[string]*string{}}
	pairs, _ := splitOutsideQuotes(el, ';')
	for _, p := range pairs {
		// OWS is allowed around ";" and around the element, not around "=".
		p = strings.Trim(p, " \t")
		if p == "" {
			continue
		}
		name, val, found := strings.Cut(p, "=")
		if !found || !tokenRE.MatchString(name) {
			return e, false
		}
		raw := val
		if strings.HasPrefix(val, `"`) {
			u, ok := refUnquote(val)
			if !ok {
				return e, false
			}
			val = u
		} else if !tokenRE.MatchString(val) {
			return e, false
		}
		name = strings.ToLower(name)
		if name == "for" || name == "proto" {
			if e.params[name] != nil {
				return e, false
			}
			if name == "for" {
				e.rawFor = raw
			} else {
				e.rawProto = raw
			}
		}
		e.params[name] = &val
	}
	return e, true
}

// refUnquote unquotes a whole RFC 9110 quoted-string.
func refUnquote(s string) (string, bool) {
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return "", false
	}
	var b strings.Builder
	for i := 1; i < len(s)-1; i++ {
		c := s[i]
		if c == '"' {
			return "", false
		}
		if c == '\\' {
			i++
			if i == len(s)-1 {
				return "", false
			}
			c = s[i]
		}
		if !quotable(c) {
			return "", false
		}
		b.WriteByte(c)
	}
	return b.String(), true
}

// splitOutsideQuotes splits s at sep where sep is not inside a
// quoted-string; ok is false when a quoted-string does not end.
func splitOutsideQuotes(s string, sep byte) (parts []string, ok bool) {
	start, inQuote := 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case inQuote && c == '\\':
			i++
		case c == '"':
			inQuote = !inQuote
		case !inQuote && c == sep:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:]), !inQuote
}

func FuzzForwarded(f *testing.F) {
	for _, s := range []string{
		``, `for="_gazonk"`, `For="[2001:db8:cafe::17]:4711"`, `for=192.0.2.60;proto=http;by=203.0.113.43`,
		`for=192.0.2.43, for=198.51.100.17`, `for=192.0.2.43,for="[2001:db8:cafe::17]",for=unknown`,
		`for=198.51.100.1, for=10.0.0.2;proto=https, for="[2001:db8:ffff::9]"`, `for="6.6.6.6, for=198.51.100.9`,
		`for=", for="[2001:db8::9]"`, `garbage!!, for=198.51.100.9`, `;;for=198.51.100.1 ; proto=https;`,
		`for="192.0.2.43:_abc"`, `for="\198.51.100.1"`, `ext="a,b";for=1.2.3.4`, "for=\"a\x80\"", "for=1.2.3.4;ext=\"\\\x01\"",
	} {
		for i := range fuzzPeers {
			f.Add(s, uint8(i), "https", "example.com:8443")
		}
	}
	f.Fuzz(func(t *testing.T, fwd string, peerIdx uint8, proto, host string) {
		in, got := fuzzAddr(t, "ForwardedFor", ForwardedFor, refForwardedFor, fwd, peerIdx)

		p := ForwardedProto(in)
		if want := refForwardedProto(fwd); string(p) != want {
			t.Fatalf("ForwardedProto(%q) = %q, reference says %q", fwd, p, want)
		}
		if p != nil && !bytes.Contains(in, p) {
			t.Fatalf("ForwardedProto(%q) = %q, not part of the input", fwd, p)
		}

		// Whatever we append must be one well-formed element that reads back.
		el := AppendForwardedElement(nil, got, []byte(proto), []byte(host))
		for _, c := range el {
			if c < 0x20 && c != '\t' || c == 0x7f {
				t.Fatalf("AppendForwardedElement wrote control byte %#x: %q", c, el)
			}
		}
		els := refElements(string(el))
		if len(els) != 1 || !els[0].ok {
			t.Fatalf("AppendForwardedElement(%s, %q, %q) = %q, not one valid element", got, proto, host, el)
		}
		if got.IsValid() {
			if back := ForwardedFor(fuzzPeers[0], el, testTrusted); back != got.WithZone("") {
				t.Fatalf("ForwardedFor(%q) = %s, want %s back", el, back, got)
			}
		}
		if schemeRE.MatchString(proto) {
			if back := ForwardedProto(el); string(back) != proto {
				t.Fatalf("ForwardedProto(%q) = %q, want %q back", el, back, proto)
			}
		}
	})
}

func BenchmarkForwardedFor(b *testing.B) {
	peer := netip.MustParseAddr("10.0.0.1")
	for _, bm := range []struct{ name, fwd string }{
		{"v4", `for=6.6.6.6, for=198.51.100.1;proto=https;host=play.example, for=10.0.0.2;proto=https`},
		{"v6", `for="[2001:db8:cafe::17]:4711";proto=https, for="[2001:db8:ffff::9]"`},
	} {
		b.Run(bm.name, func(b *testing.B) {
			fwd := []byte(bm.fwd)
			b.ReportAllocs()
			for b.Loop() {
				sinkAddr = ForwardedFor(peer, fwd, testTrusted)
			}
		})
	}
}

var sinkBytes []byte

func BenchmarkForwardedProto(b *testing.B) {
	fwd := []byte(`for=198.51.100.1;proto=http, for=10.0.0.2;proto=https;host=play.example`)
	b.ReportAllocs()
	for b.Loop() {
		sinkBytes = ForwardedProto(fwd)
	}
}

func BenchmarkAppendForwardedElement(b *testing.B) {
	buf := make([]byte, 0, 256)
	v4 := netip.MustParseAddr("198.51.100.1")
	v6 := netip.MustParseAddr("2001:db8:cafe::17")
	proto, host := []byte("https"), []byte("play.example:8443")
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendForwardedElement(buf[:0], v4, proto, host)
		buf = AppendForwardedElement(append(buf, ", "...), v6, proto, host)
	}
}
