package linelog

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestFlushesOnIntervalAndOnClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log.jsonl")
	w, err := Open(path, 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("one\n"))
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		if string(b) == "one\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the flush interval the file holds %q, want %q", b, "one\n")
		}
		time.Sleep(10 * time.Millisecond)
	}
	w.Write([]byte("two\n"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	w.Write([]byte("three\n")) // dropped
	if b, _ := os.ReadFile(path); string(b) != "one\ntwo\n" {
		t.Fatalf("after Close the file holds %q, want %q", b, "one\ntwo\n")
	}
}
