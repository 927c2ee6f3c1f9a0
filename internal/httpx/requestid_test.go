package httpx

import (
	"regexp"
	"strings"
	"sync"
	"testing"
)

func TestValidRequestID(t *testing.T) {
	tests := []struct {
		v    string
		want bool
	}{
		{"", false},
		{"a", true},
		{"f47ac10b-58cc-4372-a567-0e02b2c3d479", true},
		{"01ARZ3NDEKTSV4RRFFQ69G5FAV", true},
		{"svc.a:b@c/d+e=f_g-h", true},
		{strings.Repeat("x", MaxRequestIDLen), true},
		{strings.Repeat("x", MaxRequestIDLen+1), false},
		{"has space", false},
		{`quote"`, false},
		{"new\nline", false},
		{"comma,", false},
		{"semi;", false},
		{"per%cent", false},
		{"caf\xc3\xa9", false},
		{"nul\x00", false},
	}
	for _, tt := range tests {
		if got := ValidRequestID([]byte(tt.v)); got != tt.want {
			t.Errorf("ValidRequestID(%q) = %v, want %v", tt.v, got, tt.want)
		}
	}
}

var idRE = regexp.MustCompile(`^[0-9a-f]{16}-[0-9a-f]{16}$`)

func TestIDGen(t *testing.T) {
	g := NewIDGen()
	const goroutines, each = 8, 1000
	var (
		mu   sync.Mutex
		seen = make(map[string]bool, goroutines*each)
		wg   sync.WaitGroup
	)
	for range goroutines {
		wg.Go(func() {
			var buf []byte
			for range each {
				buf = g.Append(buf[:0])
				id := string(buf)
				if !idRE.MatchString(id) || !ValidRequestID(buf) {
					t.Errorf("Append made %q, want 16 hex, '-', 16 hex, and a valid request id", id)
				}
				mu.Lock()
				if seen[id] {
					t.Errorf("Append made %q twice", id)
				}
				seen[id] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()

	a, b := string(NewIDGen().Append(nil)), string(NewIDGen().Append(nil))
	if a[:16] == b[:16] {
		t.Errorf("two generators share the prefix %s", a[:16])
	}
	if got := string(g.Append([]byte("id="))); !strings.HasPrefix(got, "id=") {
		t.Errorf("Append(%q) = %q, lost dst", "id=", got)
	}
	var zero IDGen
	if id := zero.Append(nil); !ValidRequestID(id) {
		t.Errorf("zero IDGen made %q, not a valid request id", id)
	}
}

func BenchmarkValidRequestID(b *testing.B) {
	v := []byte("f47ac10b-58cc-4372-a567-0e02b2c3d479")
	b.ReportAllocs()
	for b.Loop() {
		sinkBool = ValidRequestID(v)
	}
}

func BenchmarkIDGenAppend(b *testing.B) {
	g := NewIDGen()
	b.Run("serial", func(b *testing.B) {
		buf := make([]byte, 0, 64)
		b.ReportAllocs()
		for b.Loop() {
			buf = g.Append(buf[:0])
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			buf := make([]byte, 0, 64)
			for pb.Next() {
				buf = g.Append(buf[:0])
			}
		})
	})
}
