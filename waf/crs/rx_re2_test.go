//go:build re2_cgo

package crs

import "testing"

func TestRE2InUse(t *testing.T) {
	if got := blockEngine(t).Info().Engine; got != "coraza v3.8.1 + re2" {
		t.Errorf("Info().Engine = %q, want coraza v3.8.1 + re2", got)
	}
}
