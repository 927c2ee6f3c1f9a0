package gateway

import (
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"hedge/internal/testkit"
)

// Each of HTTP/2's own attacks, against a running node, from a raw client,
// while a player on a connection of its own keeps asking: the attacker's
// connection ends with the GOAWAY the attack earns (or its stream gets the
// refusal), the edge does bounded work for it, and the player is served
// throughout.
func TestHTTP2AttacksLeaveOthersServed(t *testing.T) {
	e := startH2Edge(t, "{max_conns_per_ip: 1000}", "{}")
	cases := []struct {
		name   string
		attack func(t *testing.T, c *rawH2) outcome
		want   []outcome
		// maxUpstream bounds the requests the attack may cause upstream.
		maxUpstream int64
	}{
		{
			name: "rapid reset (CVE-2023-44487): streams opened and cancelled at once",
			attack: func(t *testing.T, c *rawH2) outcome {
				b := c.block(h2Get("/games/reset")...)
				for id := uint32(1); id < 2*10000; id += 2 {
					err := c.do(func() error {
						if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: b, EndStream: true, EndHeaders: true}); err != nil {
							return err
						}
						return c.fr.WriteRSTStream(id, http2.ErrCodeCancel)
					})
					if err != nil {
						break // the server closed the connection
					}
				}
				return awaitGoAway(c)
			},
			want: []outcome{goAway(http2.ErrCodeEnhanceYourCalm)}, maxUpstream: h2ResetDebt + 1, // the streams the guard lets in before its GOAWAY
		},
		{
			name: "CONTINUATION flood (CVE-2024-27316): a header block that never ends",
			attack: func(t *testing.T, c *rawH2) outcome {
				b := c.block(h2Get("/games/cont")...)
				c.raw(http2.FrameHeaders, 0, 1, b)
				chunk := []byte(strings.Repeat("\x00", 1)) // a literal's first byte, again and again
				for range 100000 {
					if err := c.do(func() error { return c.fr.WriteContinuation(1, false, chunk) }); err != nil {
						break
					}
				}
				return awaitGoAway(c)
			},
			want: []outcome{goAway(http2.ErrCodeEnhanceYourCalm), goAway(http2.ErrCodeProtocol), goAway(http2.ErrCodeCompression)},
		},
		{
			name: "HPACK bomb: one large field in the dynamic table, referenced thousands of times",
			attack: func(t *testing.T, c *rawH2) outcome {
				// Insert a 4 KiB value (literal with incremental indexing),
				// then index it (62) 4000 times: 16 MiB decoded from 8 KiB.
				var blk []byte
				blk = append(blk, c.block(h2Get("/games/bomb")...)...)
				c.eb.Reset()
				c.enc.WriteField(hpack.HeaderField{Name: "x-bomb", Value: strings.Repeat("b", 4000)})
				blk = append(blk, c.eb.Bytes()...)
				for range 4000 {
					blk = append(blk, 0x80|62)
				}
				c.headers1(1, blk)
				return c.await(1, 5*time.Second)
			},
			// x/net stops storing past SETTINGS_MAX_HEADER_LIST_SIZE and
			// answers 431; the connection lives on.
			want: []outcome{{status: 431}, rst(http2.ErrCodeProtocol), goAway(http2.ErrCodeEnhanceYourCalm)},
		},
		{
			name: "SETTINGS flood",
			attack: func(t *testing.T, c *rawH2) outcome {
				for range 20000 {
					if err := c.do(func() error { return c.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 65535}) }); err != nil {
						break
					}
				}
				return awaitGoAway(c)
			},
			want: []outcome{goAway(http2.ErrCodeEnhanceYourCalm)},
		},
		{
			name: "PING flood",
			attack: func(t *testing.T, c *rawH2) outcome {
				for i := range 20000 {
					if err := c.do(func() error { return c.fr.WritePing(false, [8]byte{byte(i)}) }); err != nil {
						break
					}
				}
				return awaitGoAway(c)
			},
			want: []outcome{goAway(http2.ErrCodeEnhanceYourCalm)},
		},
		{
			name: "empty DATA frames that never end their stream",
			attack: func(t *testing.T, c *rawH2) outcome {
				c.headers(1, false, ":method", "POST", ":scheme", "https", ":authority", "play.edge.test", ":path", "/games/empty")
				for range 20000 {
					if err := c.do(func() error { return c.fr.WriteData(1, false, nil) }); err != nil {
						break
					}
				}
				return awaitGoAway(c)
			},
			want: []outcome{goAway(http2.ErrCodeEnhanceYourCalm)},
		},
	}
	for _, k := range cases {
		t.Run(k.name, func(t *testing.T) {
			stop := make(chan struct{})
			done := wellBehaved(t, e, stop)
			c := dialRaw(t, e, true)
			before := e.games.pathHits("/games/reset")
			got := k.attack(t, c)
			t.Logf("outcome: %v (%s)", got, got.detail)
			if !matches(got, k.want) {
				t.Errorf("want %v, got %v (%s)", k.want, got, got.detail)
			}
			if k.maxUpstream > 0 {
				n := int64(e.games.pathHits("/games/reset") - before)
				t.Logf("of the attack's requests, %d reached the upstream", n)
				if n > k.maxUpstream {
					t.Errorf("the attack reached the upstream %d times, want at most %d", n, k.maxUpstream)
				}
			}
			// The player goes on being served after the attack too.
			time.Sleep(50 * time.Millisecond)
			close(stop)
			served, failed := done()
			if len(failed) > 0 || served == 0 {
				t.Errorf("the player beside the attack: want every request served, got %d served and %d failed: %v", served, len(failed), failed[:min(len(failed), 3)])
			}
		})
	}
}

// headers1 sends a prepared header block in one HEADERS frame, or in a
// HEADERS and CONTINUATION frames when it is larger than a frame.
func (c *rawH2) headers1(id uint32, blk []byte) {
	const max = 16 << 10
	first := blk[:min(len(blk), max)]
	rest := blk[len(first):]
	c.do(func() error {
		if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: first, EndStream: true, EndHeaders: len(rest) == 0}); err != nil {
			return err
		}
		for len(rest) > 0 {
			n := min(len(rest), max)
			if err := c.fr.WriteContinuation(id, n == len(rest), rest[:n]); err != nil {
				return err
			}
			rest = rest[n:]
		}
		return nil
	})
}

// awaitGoAway reads until the server's GOAWAY (or the end of the
// connection), skipping the answers an attack's requests got. The wait is
// long: before its GOAWAY the server works through every frame it read
// ahead of the one that spent the budget (hundreds of streams, each proxied
// upstream), which on a loaded machine under -race takes seconds.
func awaitGoAway(c *rawH2) outcome {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		c.conn.SetReadDeadline(deadline)
		f, err := c.fr.ReadFrame()
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				break
			}
			return outcome{closed: true, detail: err.Error()}
		}
		if g, ok := f.(*http2.GoAwayFrame); ok {
			return outcome{goAway: g.ErrCode, detail: "goaway"}
		}
	}
	return outcome{timeout: true}
}

// Connections and streams over HTTP/2 are held to the listener's limits:
// max_conns_per_ip counts HTTP/2 connections (the next is closed before
// its handshake), a stream's header list over max_header_bytes is
// answered 431 problem+json by the edge (up to x/net's cap, far above), an idle connection is closed after
// idle_timeout with a GOAWAY, and a connection that never sends its
// preface is closed after read_timeout.
func TestHTTP2ConnectionLimits(t *testing.T) {
	e := startH2Edge(t, "{max_conns_per_ip: 2, idle_timeout: 300ms, read_timeout: 500ms, max_header_bytes: 2KiB}", "{}")
	t.Run("max_conns_per_ip counts HTTP/2 connections", func(t *testing.T) {
		a, b := dialRaw(t, e, true), dialRaw(t, e, true)
		a.served(t, 1)
		b.served(t, 1)
		conn, err := net.DialTimeout("tcp", e.addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := conn.Read(make([]byte, 1)); err == nil {
			t.Fatalf("a third connection from the address: want it closed, read %d bytes", n)
		}
		a.conn.Close()
		b.conn.Close()
	})
	t.Run("a header list over max_header_bytes is 431 problem+json", func(t *testing.T) {
		testkit.WaitUntil(t, "the first connections' places are free", 5*time.Second, func() bool {
			c, err := net.Dial("tcp", e.addr)
			if err != nil {
				return false
			}
			defer c.Close()
			c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			_, err = c.Read(make([]byte, 1))
			ne, ok := err.(net.Error)
			return ok && ne.Timeout()
		})
		// Past max_header_bytes (2 KiB) and up to x/net's cap (64 KiB), the
		// edge answers, not x/net.
		cl := e.client(t, "2")
		for _, size := range []int{3000, 6000, 60000} {
			a := send(t, cl, "GET", "https://play.edge.test/games/big", "", "X-Big", strings.Repeat("x", size))
			if a.status != 431 || a.problem != "urn:hedge:problem:headers-too-large" || a.proto != 2 {
				t.Fatalf("a %d-byte field: want a 431 headers-too-large problem over HTTP/2, got HTTP/%d %d %q %s", size, a.proto, a.status, a.problem, a.body)
			}
		}
	})
	t.Run("an idle connection gets GOAWAY after idle_timeout", func(t *testing.T) {
		c := dialRaw(t, e, true)
		c.served(t, 1)
		began := time.Now()
		got := awaitGoAway(c)
		if got.detail != "goaway" || got.goAway != http2.ErrCodeNo {
			t.Fatalf("want GOAWAY NO_ERROR, got %v", got)
		}
		if d := time.Since(began); d > 3*time.Second {
			t.Fatalf("GOAWAY after %v, want about idle_timeout (300ms)", d)
		}
	})
	t.Run("no preface within read_timeout: closed", func(t *testing.T) {
		c := dialRaw(t, e, false)
		began := time.Now()
		got := c.await(0, 5*time.Second)
		if !got.closed && got.detail != "goaway" {
			t.Fatalf("want the connection closed, got %v", got)
		}
		if d := time.Since(began); d > 3*time.Second {
			t.Fatalf("closed after %v, want about read_timeout (500ms)", d)
		}
	})
}

// pathHits counts the requests for path the upstream received.
func (u *upstreamRecorder) pathHits(path string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	n := 0
	for _, r := range u.seen {
		if r.URL.Path == path {
			n++
		}
	}
	return n
}
