// Package linelog is a buffered line writer that a background flusher
// empties every interval, so the request path never waits on a write system
// call: the access log and the WAF audit log write through it. A line can sit
// in the buffer for one interval; a crash loses at most that much.
package linelog

import (
	"bufio"
	"io"
	"os"
	"sync"
	"time"

	"hedge/internal/tick"
)

// Writer buffers lines for out and flushes them every interval.
type Writer struct {
	mu     sync.Mutex
	w      *bufio.Writer
	file   io.Closer
	stop   chan struct{}
	done   chan struct{}
	closed bool
}

// New writes to out, closing closer (which may be nil) on Close.
func New(out io.Writer, closer io.Closer, every time.Duration) *Writer {
	w := &Writer{w: bufio.NewWriterSize(out, 64<<10), file: closer, stop: make(chan struct{}), done: make(chan struct{})}
	go w.flusher(every)
	return w
}

// Open appends to the file at path (creating it); "" or "-" is standard
// output.
func Open(path string, every time.Duration) (*Writer, error) {
	if path == "" || path == "-" {
		return New(os.Stdout, nil, every), nil
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, err
	}
	return New(f, f, every), nil
}

func (w *Writer) flusher(every time.Duration) {
	defer close(w.done)
	tick.Every(w.stop, every, func(time.Time) {
		w.mu.Lock()
		w.w.Flush()
		w.mu.Unlock()
	})
}

// Write appends one line (the caller ends it with '\n'); after Close it is
// dropped.
func (w *Writer) Write(line []byte) {
	w.mu.Lock()
	if !w.closed {
		w.w.Write(line)
	}
	w.mu.Unlock()
}

// Close flushes, stops the flusher and closes the file; safe to call twice.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.mu.Unlock()
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	err := w.w.Flush()
	if w.file != nil {
		if cerr := w.file.Close(); err == nil {
			err = cerr
		}
	}
	return err
}
