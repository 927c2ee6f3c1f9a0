// Package h264 reads the H.264 clips that stand in for a studio's encoder
// (the drill's studios, the stream tests' publishers).
package h264

import "bytes"

// AccessUnits splits an Annex-B H.264 stream into access units, one slice
// each: every NAL unit is given a 4-byte start code and a slice (type 1,
// or 5 for IDR) ends the unit, so the parameter sets before a keyframe
// travel with it.
func AccessUnits(raw []byte) [][]byte {
	var aus [][]byte
	var cur []byte
	for _, n := range bytes.Split(raw, []byte{0, 0, 1}) {
		n = bytes.TrimRight(n, "\x00")
		if len(n) == 0 {
			continue
		}
		cur = append(cur, 0, 0, 0, 1)
		cur = append(cur, n...)
		if t := n[0] & 0x1f; t == 1 || t == 5 {
			aus, cur = append(aus, cur), nil
		}
	}
	return aus
}
