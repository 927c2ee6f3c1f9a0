package httpx

import (
	"regexp"
	"strings"
	"testing"
)

func TestValidTraceparent(t *testing.T) {
	const (
		tid = "12345678901234567890123456789012"
		pid = "1234567890123456"
	)
	tests := []struct {
		v    string
		want bool
	}{
		// W3C Trace Context examples and its test suite (test/test.py).
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", true},
		{"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", true},
		{"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00", true},
		{"00-" + tid + "-" + pid + "-01", true},
		{"00-" + tid + "-" + pid + "-01.", false},
		{"00-" + tid + "-" + pid + "-01-what-the-future-will-be-like", false},
		{"cc-" + tid + "-" + pid + "-01", true},
		{"cc-" + tid + "-" + pid + "-01-what-the-future-will-be-like", true},
		{"cc-" + tid + "-" + pid + "-01.what-the-future-will-be-like", false},
		{"ff-" + tid + "-" + pid + "-01", false},
		{".0-" + tid + "-" + pid + "-01", false},
		{"0.-" + tid + "-" + pid + "-01", false},
		{"000-" + tid + "-" + pid + "-01", false},
		{"0000-" + tid + "-" + pid + "-01", false},
		{"0-" + tid + "-" + pid + "-01", false},
		{"00-00000000000000000000000000000000-" + pid + "-01", false},
		{"00-.2345678901234567890123456789012-" + pid + "-01", false},
		{"00-1234567890123456789012345678901.-" + pid + "-01", false},
		{"00-123456789012345678901234567890123-" + pid + "-01", false},
		{"00-1234567890123456789012345678901-" + pid + "-01", false},
		{"00-" + tid + "-0000000000000000-01", false},
		{"00-" + tid + "-.234567890123456-01", false},
		{"00-" + tid + "-123456789012345.-01", false},
		{"00-" + tid + "-12345678901234567-01", false},
		{"00-" + tid + "-123456789012345-01", false},
		{"00-" + tid + "-" + pid + "-.0", false},
		{"00-" + tid + "-" + pid + "-0.", false},
		{"00-" + tid + "-" + pid + "-001", false},
		{"00-" + tid + "-" + pid + "-1", false},
		// Beyond the suite.
		{"", false},
		{"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", false},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01", false},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A", false},
		{"0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false},
		{"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff", true},
		{"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01", false},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01", false},
		{" 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false},
		{"fe-" + tid + "-" + pid + "-01-", true},
	}
	for _, tt := range tests {
		if got := ValidTraceparent([]byte(tt.v)); got != tt.want {
			t.Errorf("ValidTraceparent(%q) = %v, want %v", tt.v, got, tt.want)
		}
		if got := refValidTraceparent(tt.v); got != tt.want {
			t.Errorf("reference ValidTraceparent(%q) = %v, want %v (test reference is wrong)", tt.v, got, tt.want)
		}
	}
}

var traceparentRE = regexp.MustCompile(`(?s)^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}(-.*)?$`)

func refValidTraceparent(v string) bool {
	m := traceparentRE.FindStringSubmatch(v)
	if m == nil {
		return false
	}
	version, tid, pid, rest := m[1], m[2], m[3], m[4]
	switch {
	case version == "ff", version == "00" && rest != "":
		return false
	}
	return strings.Trim(tid, "0") != "" && strings.Trim(pid, "0") != ""
}

func FuzzTraceparent(f *testing.F) {
	for _, s := range []string{
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"cc-12345678901234567890123456789012-1234567890123456-01-what-the-future-will-be-like",
		"cc-12345678901234567890123456789012-1234567890123456-01.what-the-future-will-be-like",
		"ff-12345678901234567890123456789012-1234567890123456-01",
		"00-00000000000000000000000000000000-1234567890123456-01",
		"00-12345678901234567890123456789012-0000000000000000-01",
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		got := ValidTraceparent([]byte(v))
		if want := refValidTraceparent(v); got != want {
			t.Fatalf("ValidTraceparent(%q) = %v, reference says %v", v, got, want)
		}
		if !got {
			return
		}
		if len(v) < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-' {
			t.Fatalf("ValidTraceparent(%q) = true without the 2-32-16-2 layout", v)
		}
		for i, c := range []byte(v[:55]) {
			if i != 2 && i != 35 && i != 52 && !strings.ContainsRune("0123456789abcdef", rune(c)) {
				t.Fatalf("ValidTraceparent(%q) = true with %q at %d", v, c, i)
			}
		}
	})
}

var sinkBool bool

func BenchmarkValidTraceparent(b *testing.B) {
	v := []byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	b.ReportAllocs()
	for b.Loop() {
		sinkBool = ValidTraceparent(v)
	}
}
