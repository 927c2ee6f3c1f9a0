package audit

import (
	"bufio"
	"encoding/json"
	"os"
	"testing"
)

func TestAppendOnlyJSONLines(t *testing.T) {
	dir := t.TempDir()
	for i := range 2 { // reopening appends, it does not truncate
		l, err := Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Record("writer_designated", map[string]any{"domain": "sea", "epoch": i + 1}); err != nil {
			t.Fatal(err)
		}
		l.Close()
		l.Close()
	}
	f, _ := os.Open(dir + "/audit.log")
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("line %d is not JSON: %v", n+1, err)
		}
		n++
		if rec["event"] != "writer_designated" || rec["epoch"] != float64(n) || rec["ts"] == nil {
			t.Fatalf("line %d: %v", n, rec)
		}
	}
	if n != 2 {
		t.Fatalf("want 2 records, got %d", n)
	}
}
