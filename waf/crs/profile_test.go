//go:build !hedge_ftw

package crs

import (
	"errors"
	"testing"
)

// Without the hedge_ftw tag the go-ftw profile, and its marker rule that
// bypasses every other rule, cannot be built.
func TestTestProfileRefusedWithoutTag(t *testing.T) {
	e, err := New(Options{Mode: Block, TestProfile: true})
	if !errors.Is(err, ErrTestProfile) || e != nil {
		t.Fatalf("New(TestProfile) = %v, %v; want nil, ErrTestProfile", e, err)
	}
	// And the marker header bypasses nothing in a production build.
	r := attacks[0].req
	r.headers = append(r.headers, [2]string{"X-CRS-Test", "marker-1"})
	tx := blockEngine(t).Begin(r.ctx(t), nil, client, nil)
	defer tx.End()
	if !tx.Blocked() || hasID(tx.Matches(), 999999) {
		t.Errorf("attack with X-CRS-Test: Blocked=%v matches=%v; want blocked, no 999999", tx.Blocked(), ids(tx.Matches()))
	}
}
