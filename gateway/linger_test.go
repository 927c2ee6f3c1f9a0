package gateway

import (
	"io"
	"net"
	"testing"
	"time"
)

// A connection told to linger shuts down its sending side at Close (the
// client reads EOF at once), keeps reading what the client sends, and
// closes for good when the client goes quiet for lingerIdle. At most
// maxLingering connections of a listener linger; the rest close at once.
func TestLingeringCloseIsBounded(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &lingerListener{Listener: raw}
	defer l.Close()

	accepted := make(chan net.Conn)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	open := func() (client, server net.Conn) {
		t.Helper()
		client, err := net.Dial("tcp", raw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { client.Close() })
		return client, <-accepted
	}

	// One lingering connection: EOF for the client at once, its writes
	// still taken in, then closed after lingerIdle of quiet.
	client, server := open()
	server.(*lingerConn).linger.Store(true)
	start := time.Now()
	if err := server.Close(); err != nil {
		t.Fatal(err)
	}
	_ = client.SetReadDeadline(time.Now().Add(time.Second))
	if n, err := client.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("client read after a lingering Close: expected EOF at once, got %d bytes, %v", n, err)
	}
	for i := range 20 {
		if _, err := client.Write(make([]byte, 64<<10)); err != nil {
			t.Fatalf("client write %d while the edge lingers: expected it taken in, got %v", i, err)
		}
	}
	if got := l.lingering.Load(); got != 1 {
		t.Fatalf("lingering connections: expected 1, got %d", got)
	}
	deadline := time.Now().Add(lingerIdle + 2*time.Second)
	for l.lingering.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("a quiet client's connection still lingers %v after Close", time.Since(start))
		}
		time.Sleep(10 * time.Millisecond)
	}

	// maxLingering connections linger; one more closes at once.
	for range maxLingering {
		_, s := open()
		s.(*lingerConn).linger.Store(true)
		_ = s.Close()
	}
	if got := l.lingering.Load(); got != maxLingering {
		t.Fatalf("lingering connections: expected %d, got %d", maxLingering, got)
	}
	_, s := open()
	s.(*lingerConn).linger.Store(true)
	_ = s.Close()
	if got := l.lingering.Load(); got != maxLingering {
		t.Fatalf("over the bound: expected the connection closed at once and %d lingering, got %d", maxLingering, got)
	}
	// A second Close does nothing (fasthttp and tls.Conn may both close).
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
