//go:build hedge_ftw

package crs

import (
	"bytes"
	"regexp"
	"testing"
)

func TestTestProfile(t *testing.T) {
	var log bytes.Buffer
	// Mode and PL are the profile's whatever the caller asks.
	e, err := New(Options{Mode: Block, ParanoiaLevel: 1, TestProfile: true, ErrorLog: &log})
	if err != nil {
		t.Fatal(err)
	}
	if i := e.Info(); i.Mode != Detect || i.ParanoiaLevel != 4 {
		t.Errorf("Info = %+v; want Detect at PL4", i)
	}

	// An attack is logged (go-ftw's log mode reads the ids) but not blocked.
	tx := e.Begin(attacks[0].req.ctx(t), []byte("ftw-1"), client, nil)
	tx.End()
	if tx.Blocked() || !hasIDIn(tx.Matches(), 942000, 942999) {
		t.Errorf("attack: Blocked=%v matches=%v; want logged 942xxx, not blocked", tx.Blocked(), ids(tx.Matches()))
	}
	if !regexp.MustCompile(`\[id "942\d{3}"\].*\[unique_id "ftw-1"\]`).Match(log.Bytes()) {
		t.Errorf("error log lacks a ModSecurity-format 942xxx line:\n%s", log.String())
	}

	// A marker request logs the marker and nothing else.
	log.Reset()
	r := attacks[0].req
	r.headers = append(r.headers, [2]string{"X-CRS-Test", "5b0f4c9e-marker"})
	tx = e.Begin(r.ctx(t), []byte("ftw-marker"), client, nil)
	tx.End()
	got := ids(tx.Matches())
	if len(got) != 1 || got[0] != 999999 {
		t.Errorf("marker request matches %v; want only 999999", got)
	}
	if !bytes.Contains(log.Bytes(), []byte("X-CRS-Test 5b0f4c9e-marker")) || bytes.Count(log.Bytes(), []byte("\n")) != 1 {
		t.Errorf("error log for the marker = %q; want one line carrying the marker", log.String())
	}
}
