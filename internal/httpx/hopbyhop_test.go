package httpx

import (
	"slices"
	"testing"
)

func TestIsHopByHop(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"Connection", true},
		{"connection", true},
		{"Keep-Alive", true},
		{"KEEP-ALIVE", true},
		{"Proxy-Connection", true},
		{"TE", true},
		{"te", true},
		{"Trailer", true},
		{"Transfer-Encoding", true},
		{"Upgrade", true},
		{"Proxy-Authenticate", true},
		{"Proxy-Authorization", true},
		{"Trailers", false},
		{"Content-Length", false},
		{"Authorization", false},
		{"X-Forwarded-For", false},
		{"", false},
		{"T", false},
		{"keep\ralive", false}, // a fold by OR 0x20 would say yes
		{"Keep_Alive", false},
		{"Connectio", false},
		{"Connectionn", false},
	}
	for _, tt := range tests {
		if got := IsHopByHop([]byte(tt.name)); got != tt.want {
			t.Errorf("IsHopByHop(%q) = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestConnectionTokens(t *testing.T) {
	tests := []struct {
		v    string
		want []string
	}{
		{"", nil},
		{"close", []string{"close"}},
		{"keep-alive, Upgrade", []string{"keep-alive", "Upgrade"}},
		{" \tX-Foo ,, ,X-Bar\t,", []string{"X-Foo", "X-Bar"}},
		{",", nil},
	}
	for _, tt := range tests {
		var got []string
		ConnectionTokens([]byte(tt.v), func(tok []byte) { got = append(got, string(tok)) })
		if !slices.Equal(got, tt.want) {
			t.Errorf("ConnectionTokens(%q) gave %q, want %q", tt.v, got, tt.want)
		}
	}
}

func BenchmarkIsHopByHop(b *testing.B) {
	names := [][]byte{[]byte("Content-Type"), []byte("Connection"), []byte("Transfer-Encoding"), []byte("X-Request-Id")}
	b.ReportAllocs()
	for b.Loop() {
		for _, n := range names {
			sinkBool = IsHopByHop(n)
		}
	}
}

func BenchmarkConnectionTokens(b *testing.B) {
	v := []byte("keep-alive, Upgrade, X-Trace-Hint")
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		ConnectionTokens(v, func(tok []byte) {
			if IsHopByHop(tok) {
				n++
			}
		})
		if n != 2 {
			b.Fatalf("counted %d hop-by-hop tokens, want 2", n)
		}
	}
}
