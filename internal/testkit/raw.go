package testkit

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// RawExchange writes raw, bytes as a client wrote them, on a fresh
// connection to addr and reads the first response and its body; with
// pipelined set, it then reports whether the connection closed without a
// second response (the request pipelined behind the first was not served).
func RawExchange(t testing.TB, addr, raw string, pipelined bool) (resp *http.Response, body string, closedAfter bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err = http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	if !pipelined {
		return resp, string(b), false
	}
	_, err = http.ReadResponse(br, nil)
	return resp, string(b), err != nil
}
