// Package audit keeps the append-only trail of every decision worth an
// alert: writer designations, promotions, health-driven switches. Each
// record is one JSON line, written and fsync'd before the call returns.
package audit

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Log appends records to one file.
type Log struct {
	mu   sync.Mutex
	f    *os.File
	path string
}

// Open opens (creating) dir/audit.log for appending.
func Open(dir string) (*Log, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	p := filepath.Join(dir, "audit.log")
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, err
	}
	return &Log{f: f, path: p}, nil
}

// Path is the file's path.
func (l *Log) Path() string { return l.path }

// Record appends one event. fields must marshal to JSON; "ts" and "event"
// are added.
func (l *Log) Record(event string, fields map[string]any) error {
	if l == nil {
		return nil
	}
	rec := make(map[string]any, len(fields)+2)
	for k, v := range fields {
		rec[k] = v
	}
	rec["ts"] = time.Now().UTC().Format(time.RFC3339Nano)
	rec["event"] = event
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := l.f.Write(append(b, '\n')); err != nil {
		return err
	}
	return l.f.Sync()
}

// Close closes the file; safe to call twice.
func (l *Log) Close() error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}
