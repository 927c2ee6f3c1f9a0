package gateway

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hedge/internal/testkit"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// recordCounter counts the TLS application-data records the server sends
// on a connection (what its TLS writes were), from the record headers in
// the bytes read.
type recordCounter struct {
	net.Conn
	mu      sync.Mutex
	hdr     []byte // a record header read in part
	skip    int    // bytes left of the current record's body
	records int
}

func (c *recordCounter) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	defer c.mu.Unlock()
	for b := p[:n]; len(b) > 0; {
		if c.skip > 0 {
			k := min(c.skip, len(b))
			c.skip -= k
			b = b[k:]
			continue
		}
		k := min(5-len(c.hdr), len(b))
		c.hdr = append(c.hdr, b[:k]...)
		b = b[k:]
		if len(c.hdr) == 5 {
			if c.hdr[0] == 23 { // application_data
				c.records++
			}
			c.skip = int(c.hdr[3])<<8 | int(c.hdr[4])
			c.hdr = c.hdr[:0]
		}
	}
	return n, err
}

func (c *recordCounter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.records
}

// dialCounted is dialRaw (with its handshake) over a recordCounter.
func dialCounted(t *testing.T, e *h2Edge) (*rawH2, *recordCounter) {
	t.Helper()
	tcp, err := net.DialTimeout("tcp", e.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	rc := &recordCounter{Conn: tcp}
	conn := tls.Client(rc, e.clientTLS("h2"))
	t.Cleanup(func() { conn.Close() })
	if err := conn.Handshake(); err != nil {
		t.Fatal(err)
	}
	c := &rawH2{t: t, conn: conn, fr: http2.NewFramer(conn, conn)}
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.enc = hpack.NewEncoder(&c.eb)
	c.write([]byte(http2.ClientPreface))
	c.do(func() error { return c.fr.WriteSettings() })
	if f := c.next(5 * time.Second); f == nil {
		t.Fatal("no SETTINGS from the server")
	}
	c.do(func() error { return c.fr.WriteSettingsAck() })
	return c, rc
}

// ends reads frames until every stream of ids has ended (END_STREAM), and
// returns the statuses by stream; a stream not ended within limit fails
// the test.
func (c *rawH2) ends(t *testing.T, ids map[uint32]bool, limit time.Duration) map[uint32]string {
	t.Helper()
	status := map[uint32]string{}
	deadline := time.Now().Add(limit)
	for len(ids) > 0 {
		c.conn.SetReadDeadline(deadline)
		f, err := c.fr.ReadFrame()
		if err != nil {
			t.Fatalf("streams %v not ended within %v: %v", ids, limit, err)
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			status[f.StreamID] = f.PseudoValue("status")
			if f.StreamEnded() {
				delete(ids, f.StreamID)
			}
		case *http2.DataFrame:
			if f.StreamEnded() {
				delete(ids, f.StreamID)
			}
		case *http2.SettingsFrame:
			if !f.IsAck() {
				c.do(func() error { return c.fr.WriteSettingsAck() })
			}
		case *http2.GoAwayFrame, *http2.RSTStreamFrame:
			t.Fatalf("want answers, got %v", f.Header())
		}
	}
	return status
}

// Answers that finish together leave together: 50 GETs on one connection,
// which the upstream holds until all 50 have arrived and then answers at
// once, reach the client in far fewer TLS records than x/net alone writes
// (each answer is a HEADERS and a DATA frame, which it flushes as up to two
// records: 70–100 in trials; 2–6 with the coalescing, under -race).
func TestHTTP2CoalescesAnswersThatFinishTogether(t *testing.T) {
	const n = 50
	var arrived atomic.Int32
	release := make(chan struct{})
	games := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/games/together" {
			if arrived.Add(1) == n {
				close(release)
			}
			select {
			case <-release:
			case <-time.After(10 * time.Second):
			}
		}
		io.WriteString(w, "answer")
	}))
	t.Cleanup(games.Close)
	writer := newUpstream(t, "writer")
	te := startEdge(t, h2Config, "{{G1}}", strings.TrimPrefix(games.URL, "http://"), "{{WRITER}}", writer.addr(),
		"{{LIMITS}}", "{}", "{{H2}}", "{}", "{{H3}}", "{}", "{{PLAIN}}", testkit.FreeAddr(t), "{{UDP}}", testkit.FreeUDPPort(t))
	e := &h2Edge{testEdge: te, addr: strings.TrimPrefix(te.url, "http://"), roots: te.rootCAs(t)}

	c, rc := dialCounted(t, e)
	ids := map[uint32]bool{}
	for i := range n {
		id := uint32(2*i + 1)
		ids[id] = true
		c.headers(id, true, h2Get("/games/together")...)
	}
	before := rc.count()
	status := c.ends(t, ids, 20*time.Second)
	if arrived.Load() != n {
		t.Fatalf("want the %d requests at the upstream together, %d arrived", n, arrived.Load())
	}
	for id, s := range status {
		if s != "200" {
			t.Errorf("stream %d: want 200, got %s", id, s)
		}
	}
	if got := rc.count() - before; got > n/2 {
		t.Errorf("want the %d answers in at most %d TLS records (x/net alone writes 70–100), got %d", n, n/2, got)
	} else {
		t.Logf("%d answers in %d TLS records", n, got)
	}
}

// Coalescing never holds an answer back for another: while a stream of the
// connection waits on a slow upstream, a quick GET on the same connection
// is answered at once.
func TestHTTP2CoalescingHoldsNoAnswerBack(t *testing.T) {
	e := startH2Edge(t, "{}", "{}")
	e.games.delay.Store(int64(4 * time.Second))
	c, _ := dialCounted(t, e)
	c.headers(1, true, h2Get("/games/held", "x-slow", "1")...)
	for id := uint32(3); id < 3+2*20; id += 2 {
		began := time.Now()
		c.headers(id, true, h2Get("/games/quick")...)
		status := c.ends(t, map[uint32]bool{id: true}, 5*time.Second)
		if status[id] != "200" {
			t.Fatalf("stream %d: want 200, got %q", id, status[id])
		}
		if d := time.Since(began); d > 2*time.Second {
			t.Fatalf("stream %d answered after %v while stream 1 was held: want at once", id, d)
		}
	}
	c.do(func() error { return c.fr.WriteRSTStream(1, http2.ErrCodeCancel) })
}
