package httpx

import (
	"strings"
	"testing"
)

func TestCheckFraming(t *testing.T) {
	cases := []struct {
		name   string
		raw    string
		http10 bool
		want   FramingFault
	}{
		{"plain GET", "Host: a\r\nAccept: */*\r\n\r\n", false, FramingOK},
		{"content-length alone", "Host: a\r\nContent-Length: 12\r\n\r\n", false, FramingOK},
		{"chunked alone", "Host: a\r\nTransfer-Encoding: chunked\r\n\r\n", false, FramingOK},
		{"chunked in another case, OWS around", "Host: a\r\ntransfer-encoding: \tChunked \r\n\r\n", false, FramingOK},
		{"bare LF line ends (RFC 9112 §2.2)", "Host: a\nContent-Length: 1\n\n", false, FramingOK},
		{"HTTP/1.0 with Content-Length", "Host: a\r\nContent-Length: 3\r\n\r\n", true, FramingOK},
		{"no header block", "", false, FramingOK},

		{"CL then TE chunked (RFC 9112 §6.1)", "Host: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n", false, FramingCLAndTE},
		{"TE chunked then CL (RFC 9112 §6.1)", "Transfer-Encoding: chunked\r\nHost: a\r\nContent-Length: 0\r\n\r\n", false, FramingCLAndTE},
		{"TE identity beside CL (RFC 9112 §6.1)", "Host: a\r\nTransfer-Encoding: identity\r\nContent-Length: 4\r\n\r\n", false, FramingTECoding},
		{"TE gzip, chunked (RFC 9112 §7)", "Host: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", false, FramingTECoding},
		{"TE chunked, gzip: chunked not last (RFC 9112 §6.1)", "Host: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", false, FramingTECoding},
		{"TE xchunked (RFC 9112 §6.1)", "Host: a\r\nTransfer-Encoding: xchunked\r\n\r\n", false, FramingTECoding},
		{"TE empty (RFC 9112 §6.1)", "Host: a\r\nTransfer-Encoding:\r\n\r\n", false, FramingTECoding},
		{"two TE fields (RFC 9112 §6.1)", "Host: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", false, FramingTERepeated},
		{"two equal CL fields (RFC 9112 §6.3)", "Host: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", false, FramingCLInvalid},
		{"two different CL fields (RFC 9112 §6.3)", "Host: a\r\nContent-Length: 5\r\ncontent-length: 7\r\n\r\n", false, FramingCLInvalid},
		{"CL list (RFC 9112 §6.3)", "Host: a\r\nContent-Length: 5, 5\r\n\r\n", false, FramingCLInvalid},
		{"CL signed (RFC 9112 §6.3)", "Host: a\r\nContent-Length: +5\r\n\r\n", false, FramingCLInvalid},
		{"CL empty (RFC 9112 §6.3)", "Host: a\r\nContent-Length: \r\n\r\n", false, FramingCLInvalid},
		{"CL hex (RFC 9112 §6.3)", "Host: a\r\nContent-Length: 0x10\r\n\r\n", false, FramingCLInvalid},
		{"TE on HTTP/1.0 (RFC 9112 §6.1)", "Host: a\r\nTransfer-Encoding: chunked\r\n\r\n", true, FramingTEHTTP10},
		{"obs-fold of TE (RFC 9112 §5.2)", "Host: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n", false, FramingObsFold},
		{"obs-fold with a tab (RFC 9112 §5.2)", "Host: a\r\nX-A: b\r\n\tc\r\n\r\n", false, FramingObsFold},
		{"space before the colon (RFC 9112 §5.1)", "Host: a\r\nTransfer-Encoding : chunked\r\n\r\n", false, FramingFieldName},
		{"space inside a name (RFC 9112 §5.1)", "Host: a\r\nContent Length: 5\r\n\r\n", false, FramingFieldName},
		{"empty name (RFC 9112 §5.1)", "Host: a\r\n: x\r\n\r\n", false, FramingFieldName},
		{"no colon (RFC 9112 §5.1)", "Host: a\r\nTransfer-Encoding chunked\r\n\r\n", false, FramingFieldName},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := CheckFraming([]byte(c.raw), c.http10); got != c.want {
				t.Fatalf("CheckFraming(%q, http10=%v) = %d (%s), want %d (%s)", c.raw, c.http10, got, got.Rule(), c.want, c.want.Rule())
			}
			if c.want != FramingOK && (c.want.Rule() == "" || c.want.Detail() == "") {
				t.Fatalf("fault %d has no rule name or detail", c.want)
			}
		})
	}
}

func TestCheckFramingNoAllocs(t *testing.T) {
	raw := []byte("Host: play.edge.test\r\nUser-Agent: Mozilla/5.0\r\nAccept: */*\r\nContent-Type: application/json\r\n" +
		"Content-Length: 200\r\nCookie: sid=1; theme=dark\r\nAuthorization: Bearer abc.def.ghi\r\n\r\n")
	if n := testing.AllocsPerRun(100, func() { sinkBool = CheckFraming(raw, false) == FramingOK }); n != 0 {
		t.Fatalf("CheckFraming: %v allocs per call, want 0", n)
	}
	if !sinkBool {
		t.Fatal("CheckFraming refused a valid header block: the allocation test measures the wrong path")
	}
}

func BenchmarkCheckFraming(b *testing.B) {
	raw := []byte("Host: play.edge.test\r\nUser-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36\r\n" +
		"Accept: application/json, text/plain, */*\r\nAccept-Language: en-GB,en;q=0.9,de;q=0.8\r\nAccept-Encoding: gzip, deflate, br, zstd\r\n" +
		"Referer: https://play.edge.test/lobby\r\nCookie: sid=6f1c2a9e4b7d4e0f9a3c8b1d2e5f7a90; theme=dark; _lang=en-GB\r\n" +
		"Content-Type: application/json\r\nContent-Length: 200\r\nIdempotency-Key: 0b6e2f8c-5d7a-4d0e-9a51-3f2a0c9e8b11\r\n\r\n")
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if CheckFraming(raw, false) != FramingOK {
			b.Fatal("refused")
		}
	}
}

// referenceFraming is CheckFraming written the obvious way, with strings
// and allocations, for the fuzzer to compare against.
func referenceFraming(raw string, http10 bool) FramingFault {
	cl, te := 0, 0
	lines := strings.Split(raw, "\n")
	for i, line := range lines {
		line = strings.TrimSuffix(line, "\r")
		if line == "" {
			break
		}
		if strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t") ||
			i+1 < len(lines) && (strings.HasPrefix(lines[i+1], " ") || strings.HasPrefix(lines[i+1], "\t")) {
			return FramingObsFold
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok || !isToken([]byte(name)) {
			return FramingFieldName
		}
		value = strings.Trim(value, " \t")
		switch asciiLower(name) {
		case "content-length":
			cl++
			if cl > 1 || value == "" || len(value) > 18 || strings.Trim(value, "0123456789") != "" {
				return FramingCLInvalid
			}
		case "transfer-encoding":
			te++
			if te > 1 {
				return FramingTERepeated
			}
			if asciiLower(value) != "chunked" {
				return FramingTECoding
			}
		}
	}
	if te > 0 && cl > 0 {
		return FramingCLAndTE
	}
	if te > 0 && http10 {
		return FramingTEHTTP10
	}
	return FramingOK
}

// asciiLower folds A-Z only, as HTTP does (strings.ToLower would also fold
// U+212A KELVIN SIGN to k).
func asciiLower(s string) string {
	return strings.Map(func(r rune) rune {
		if 'A' <= r && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}, s)
}

func FuzzCheckFraming(f *testing.F) {
	for _, s := range []string{
		"Host: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n",
		"Host: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n",
		"Host: a\r\nTransfer-Encoding : chunked\r\n\r\n",
		"Host: a\nContent-Length: 5, 5\n\n",
		"Transfer-Encoding: CHUNKED\r\n\r\n",
		"",
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, raw string, http10 bool) {
		got := CheckFraming([]byte(raw), http10)
		if want := referenceFraming(raw, http10); got != want {
			t.Fatalf("CheckFraming(%q, %v) = %s, the reference reads %s", raw, http10, got.Rule(), want.Rule())
		}
	})
}
