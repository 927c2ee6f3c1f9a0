package h264

import (
	"bytes"
	"testing"
)

func TestAccessUnits(t *testing.T) {
	sps, pps := []byte{0x67, 0x42, 0xe0, 0x1f}, []byte{0x68, 0xce, 0x3c, 0x80}
	idr, p1, p2 := []byte{0x65, 0x88, 0x84}, []byte{0x41, 0x9a, 0x02}, []byte{0x41, 0x9a, 0x04}
	// 4- and 3-byte start codes, as encoders mix them.
	var raw []byte
	for i, n := range [][]byte{sps, pps, idr, p1, p2} {
		if i%2 == 0 {
			raw = append(raw, 0)
		}
		raw = append(append(raw, 0, 0, 1), n...)
	}
	sc := []byte{0, 0, 0, 1}
	want := [][]byte{
		bytes.Join([][]byte{nil, sps, pps, idr}, sc),
		append(append([]byte(nil), sc...), p1...),
		append(append([]byte(nil), sc...), p2...),
	}
	got := AccessUnits(raw)
	if len(got) != len(want) {
		t.Fatalf("got %d access units %x, want %d %x", len(got), got, len(want), want)
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("access unit %d: got %x, want %x", i, got[i], want[i])
		}
	}
}
