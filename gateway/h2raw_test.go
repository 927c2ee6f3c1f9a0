package gateway

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// rawH2 is an HTTP/2 client built from x/net's Framer and hpack, which
// sends whatever a test asks, legal or not, and reads the server's frames.
type rawH2 struct {
	t    testing.TB
	conn *tls.Conn
	fr   *http2.Framer
	mu   sync.Mutex // writes
	enc  *hpack.Encoder
	eb   bytes.Buffer
}

// dialRaw opens a TLS connection that negotiated h2; with handshake, it
// also sends the preface and SETTINGS, and reads the server's SETTINGS.
func dialRaw(t testing.TB, e *h2Edge, handshake bool) *rawH2 {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", e.addr, e.clientTLS("h2"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if p := conn.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("ALPN: want h2, got %q", p)
	}
	c := &rawH2{t: t, conn: conn, fr: http2.NewFramer(conn, conn)}
	c.fr.AllowIllegalWrites = true
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.fr.MaxHeaderListSize = 1 << 20
	c.enc = hpack.NewEncoder(&c.eb)
	if handshake {
		c.write([]byte(http2.ClientPreface))
		c.do(func() error { return c.fr.WriteSettings() })
		if f := c.next(5 * time.Second); f == nil {
			t.Fatal("no SETTINGS from the server")
		} else if _, ok := f.(*http2.SettingsFrame); !ok {
			t.Fatalf("first frame from the server: want SETTINGS, got %v", f.Header())
		}
		c.do(func() error { return c.fr.WriteSettingsAck() })
	}
	return c
}

func (c *rawH2) write(b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	c.conn.Write(b) // a server that closed the connection shows in what the test reads
}

func (c *rawH2) do(f func() error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return f()
}

// block encodes header fields, in the order given (name, value, ...).
func (c *rawH2) block(fields ...string) []byte {
	c.eb.Reset()
	for i := 0; i+1 < len(fields); i += 2 {
		c.enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	return append([]byte(nil), c.eb.Bytes()...)
}

// get is a well-formed GET's header fields for path.
func h2Get(path string, extra ...string) []string {
	return append([]string{":method", "GET", ":scheme", "https", ":authority", "play.edge.test", ":path", path}, extra...)
}

// headers sends one HEADERS frame (END_HEADERS) on stream id.
func (c *rawH2) headers(id uint32, end bool, fields ...string) {
	b := c.block(fields...)
	c.do(func() error {
		return c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: b, EndStream: end, EndHeaders: true})
	})
}

// next reads the server's next frame (nil: the connection ended, or
// nothing came within limit).
func (c *rawH2) next(limit time.Duration) http2.Frame {
	c.conn.SetReadDeadline(time.Now().Add(limit))
	f, err := c.fr.ReadFrame()
	if err != nil {
		return nil
	}
	return f
}

// outcome is how the server answered what a test sent.
type outcome struct {
	goAway  http2.ErrCode // GOAWAY with this code
	rst     http2.ErrCode // RST_STREAM of the test's stream with this code
	status  int           // a response with this status
	closed  bool          // the connection ended without a GOAWAY
	timeout bool          // nothing conclusive within the limit
	detail  string
}

func (o outcome) String() string {
	switch {
	case o.goAway != 0 || o.detail == "goaway":
		return "GOAWAY " + o.goAway.String()
	case o.rst != 0 || o.detail == "rst":
		return "RST_STREAM " + o.rst.String()
	case o.status != 0:
		return "status " + strconv.Itoa(o.status)
	case o.closed:
		return "connection closed"
	}
	return "nothing within the limit"
}

// await reads frames until one concludes: a GOAWAY, a RST_STREAM or a
// response on stream id, or the connection's end. PINGs and SETTINGS are
// acknowledged as a client would.
func (c *rawH2) await(id uint32, limit time.Duration) outcome {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		c.conn.SetReadDeadline(deadline)
		f, err := c.fr.ReadFrame()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return outcome{timeout: true}
			}
			return outcome{closed: true, detail: err.Error()}
		}
		switch f := f.(type) {
		case *http2.GoAwayFrame:
			return outcome{goAway: f.ErrCode, detail: "goaway"}
		case *http2.RSTStreamFrame:
			if f.StreamID == id {
				return outcome{rst: f.ErrCode, detail: "rst"}
			}
		case *http2.MetaHeadersFrame:
			if f.StreamID == id {
				s, _ := strconv.Atoi(f.PseudoValue("status"))
				return outcome{status: s}
			}
		case *http2.SettingsFrame:
			if !f.IsAck() {
				c.do(func() error { return c.fr.WriteSettingsAck() })
			}
		}
	}
	return outcome{timeout: true}
}

// served checks the connection still serves: a GET on stream id is 200.
func (c *rawH2) served(t testing.TB, id uint32) {
	t.Helper()
	c.headers(id, true, h2Get("/games/ok")...)
	if o := c.await(id, 5*time.Second); o.status != 200 {
		t.Fatalf("after it, a GET on stream %d: want 200, got %v", id, o)
	}
}

// wellBehaved is a player beside an attack: it sends GETs on its own
// HTTP/2 connection until stop, and reports the answers that were not 200.
func wellBehaved(t *testing.T, e *h2Edge, stop <-chan struct{}) (done func() (served int, failed []string)) {
	c := e.client(t, "2")
	var (
		mu     sync.Mutex
		ok     int
		failed []string
		wg     sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			resp, err := c.Get("https://play.edge.test/games/player")
			mu.Lock()
			switch {
			case err != nil:
				failed = append(failed, err.Error())
			case resp.StatusCode != 200:
				failed = append(failed, resp.Status)
			default:
				ok++
			}
			mu.Unlock()
			if resp != nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}
	}()
	return func() (int, []string) {
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		return ok, failed
	}
}

func settingsPayload(pairs ...uint32) []byte {
	var b []byte
	for i := 0; i+1 < len(pairs); i += 2 {
		b = append(b, byte(pairs[i]>>8), byte(pairs[i]))
		b = append(b, byte(pairs[i+1]>>24), byte(pairs[i+1]>>16), byte(pairs[i+1]>>8), byte(pairs[i+1]))
	}
	return b
}
