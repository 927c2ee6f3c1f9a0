package gateway

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// h2Case is one conformance case: what a raw client sends, and how RFC 9113
// says the server answers (any of want).
type h2Case struct {
	section, name string
	noPreface     bool // send starts before the preface and SETTINGS
	send          func(c *rawH2) (stream uint32)
	want          []outcome
	// served: the connection serves a request afterwards (stream errors
	// and ignored frames leave it open).
	served  bool
	slow    bool // the upstream answers after 500 ms (the stream stays open meanwhile)
	reaches bool // send's own requests reach the upstream
}

func goAway(code http2.ErrCode) outcome { return outcome{goAway: code, detail: "goaway"} }
func rst(code http2.ErrCode) outcome    { return outcome{rst: code, detail: "rst"} }

var (
	protocolError = []outcome{goAway(http2.ErrCodeProtocol)}
	frameSize     = []outcome{goAway(http2.ErrCodeFrameSize)}
	// A malformed request (RFC 9113 §8.1.1): a stream error of type
	// PROTOCOL_ERROR; a server MAY answer it (x/net answers 400 for the
	// connection-specific fields of §8.2.2) before resetting the stream.
	malformed = []outcome{rst(http2.ErrCodeProtocol), {status: 400}}
)

func (c *rawH2) raw(typ http2.FrameType, flags http2.Flags, stream uint32, payload []byte) {
	c.do(func() error { return c.fr.WriteRawFrame(typ, flags, stream, payload) })
}

// oneFrame sends one frame as it is, valid or not, on stream.
func oneFrame(typ http2.FrameType, flags http2.Flags, stream uint32, payload []byte) func(c *rawH2) uint32 {
	return func(c *rawH2) uint32 {
		c.raw(typ, flags, stream, payload)
		return stream
	}
}

// malformedRequest is the case of a request of fields (HEADERS with
// END_STREAM on stream 1) that section calls malformed: refused on its
// own, the connection serving on.
func malformedRequest(section, name string, fields ...string) h2Case {
	return h2Case{section: section, name: name, served: true, want: malformed,
		send: func(c *rawH2) uint32 {
			c.headers(1, true, fields...)
			return 1
		}}
}

// slowGet opens stream id with a GET the upstream answers slowly.
func slowGet(c *rawH2, id uint32) {
	c.headers(id, true, h2Get("/games/slow", "x-slow", "1")...)
}

var h2Cases = []h2Case{
	{section: "3.4", name: "a preface that is not HTTP/2's", noPreface: true,
		send: func(c *rawH2) uint32 { c.write([]byte("PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n")); return 0 },
		want: []outcome{goAway(http2.ErrCodeProtocol), {closed: true}}},
	{section: "3.4", name: "a first frame other than SETTINGS", noPreface: true,
		send: func(c *rawH2) uint32 {
			c.write([]byte(http2.ClientPreface))
			c.do(func() error { return c.fr.WritePing(false, [8]byte{}) })
			return 0
		},
		want: protocolError},
	{section: "4.1", name: "a frame of an unknown type is ignored", served: true,
		send: oneFrame(0x20, 0, 0, []byte("ignore me"))},
	{section: "4.2", name: "a DATA frame over SETTINGS_MAX_FRAME_SIZE",
		send: func(c *rawH2) uint32 {
			c.headers(1, false, ":method", "POST", ":scheme", "https", ":authority", "play.edge.test", ":path", "/games/post")
			c.raw(http2.FrameData, 0, 1, make([]byte, 16385))
			return 1
		},
		want: frameSize},
	{section: "4.2", name: "a HEADERS frame over SETTINGS_MAX_FRAME_SIZE",
		send: func(c *rawH2) uint32 {
			b := c.block(h2Get("/games/big", "x-big", strings.Repeat("~", 17000))...)
			c.raw(http2.FrameHeaders, http2.FlagHeadersEndHeaders|http2.FlagHeadersEndStream, 1, b)
			return 1
		},
		want: frameSize},
	{section: "4.3", name: "a header block that does not decode",
		send: func(c *rawH2) uint32 {
			c.raw(http2.FrameHeaders, http2.FlagHeadersEndHeaders|http2.FlagHeadersEndStream, 1, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0x0f})
			return 1
		},
		want: []outcome{goAway(http2.ErrCodeCompression)}},
	{section: "5.1", name: "DATA on an idle stream",
		send: oneFrame(http2.FrameData, http2.FlagDataEndStream, 1, []byte("x")),
		want: protocolError},
	{section: "5.1", name: "DATA on a half-closed (remote) stream", slow: true, served: true,
		send: func(c *rawH2) uint32 {
			slowGet(c, 1)
			c.raw(http2.FrameData, 0, 1, []byte("x"))
			return 1
		},
		want: []outcome{rst(http2.ErrCodeStreamClosed), goAway(http2.ErrCodeStreamClosed)}},
	{section: "5.1.1", name: "an even stream identifier",
		send: func(c *rawH2) uint32 { c.headers(2, true, h2Get("/games/even")...); return 2 },
		want: protocolError},
	{section: "5.1.1", name: "a stream identifier below one already used", reaches: true,
		send: func(c *rawH2) uint32 {
			c.headers(5, true, h2Get("/games/five")...)
			if o := c.await(5, 5*time.Second); o.status != 200 {
				c.t.Fatalf("stream 5: want 200, got %v", o)
			}
			c.headers(3, true, h2Get("/games/three")...)
			return 3
		},
		want: protocolError},
	{section: "5.1.2", name: "more open streams than SETTINGS_MAX_CONCURRENT_STREAMS (4)", slow: true, served: false,
		send: func(c *rawH2) uint32 {
			for id := uint32(1); id <= 7; id += 2 {
				slowGet(c, id)
			}
			slowGet(c, 9)
			return 9
		},
		want: []outcome{rst(http2.ErrCodeRefusedStream), rst(http2.ErrCodeProtocol)}},
	{section: "6.1", name: "DATA on stream 0",
		send: oneFrame(http2.FrameData, 0, 0, []byte("x")),
		want: protocolError},
	{section: "6.2", name: "HEADERS on stream 0",
		send: func(c *rawH2) uint32 {
			c.raw(http2.FrameHeaders, http2.FlagHeadersEndHeaders, 0, c.block(h2Get("/games/zero")...))
			return 0
		},
		want: protocolError},
	{section: "6.3", name: "PRIORITY frames are accepted (and ignored)", served: true,
		send: func(c *rawH2) uint32 {
			c.do(func() error { return c.fr.WritePriority(1, http2.PriorityParam{StreamDep: 0, Weight: 200}) })
			c.do(func() error {
				return c.fr.WritePriority(7, http2.PriorityParam{StreamDep: 1, Exclusive: true, Weight: 10})
			})
			return 0
		}},
	// A stream error (§6.3) that x/net makes a connection error, as §5.4.1
	// allows.
	{section: "6.3", name: "a PRIORITY frame of the wrong length",
		send: oneFrame(http2.FramePriority, 0, 1, []byte{0, 0, 0, 0}),
		want: []outcome{rst(http2.ErrCodeFrameSize), goAway(http2.ErrCodeFrameSize)}},
	{section: "5.3.1", name: "a stream that depends on itself", served: true,
		send: func(c *rawH2) uint32 {
			c.do(func() error { return c.fr.WritePriority(1, http2.PriorityParam{StreamDep: 1, Weight: 10}) })
			return 1
		},
		want: []outcome{rst(http2.ErrCodeProtocol), goAway(http2.ErrCodeProtocol)}},
	{section: "6.4", name: "RST_STREAM on an idle stream",
		send: func(c *rawH2) uint32 {
			c.do(func() error { return c.fr.WriteRSTStream(1, http2.ErrCodeCancel) })
			return 1
		},
		want: protocolError},
	{section: "6.5", name: "a SETTINGS ACK with a payload",
		send: oneFrame(http2.FrameSettings, http2.FlagSettingsAck, 0, make([]byte, 6)),
		want: frameSize},
	{section: "6.5", name: "SETTINGS on a stream",
		send: oneFrame(http2.FrameSettings, 0, 1, settingsPayload(0x3, 100)),
		want: protocolError},
	{section: "6.5", name: "SETTINGS of a length that is not a multiple of 6",
		send: oneFrame(http2.FrameSettings, 0, 0, make([]byte, 3)),
		want: frameSize},
	{section: "6.5.2", name: "SETTINGS_ENABLE_PUSH of 2",
		send: oneFrame(http2.FrameSettings, 0, 0, settingsPayload(0x2, 2)),
		want: protocolError},
	{section: "6.5.2", name: "SETTINGS_INITIAL_WINDOW_SIZE over 2^31-1",
		send: oneFrame(http2.FrameSettings, 0, 0, settingsPayload(0x4, 1<<31)),
		want: []outcome{goAway(http2.ErrCodeFlowControl)}},
	{section: "6.5.2", name: "SETTINGS_MAX_FRAME_SIZE below 16384",
		send: oneFrame(http2.FrameSettings, 0, 0, settingsPayload(0x5, 16383)),
		want: protocolError},
	{section: "6.7", name: "PING on a stream",
		send: oneFrame(http2.FramePing, 0, 1, make([]byte, 8)),
		want: protocolError},
	{section: "6.7", name: "a PING of the wrong length",
		send: oneFrame(http2.FramePing, 0, 0, make([]byte, 6)),
		want: frameSize},
	{section: "6.9", name: "a WINDOW_UPDATE of 0 on the connection",
		send: oneFrame(http2.FrameWindowUpdate, 0, 0, []byte{0, 0, 0, 0}),
		want: protocolError},
	{section: "6.9.1", name: "a connection window over 2^31-1",
		send: func(c *rawH2) uint32 {
			c.do(func() error { return c.fr.WriteWindowUpdate(0, 1<<31-1) })
			return 0
		},
		want: []outcome{goAway(http2.ErrCodeFlowControl)}},
	{section: "6.9.1", name: "a stream window over 2^31-1", slow: true, served: true,
		send: func(c *rawH2) uint32 {
			slowGet(c, 1)
			c.do(func() error { return c.fr.WriteWindowUpdate(1, 1<<31-1) })
			return 1
		},
		want: []outcome{rst(http2.ErrCodeFlowControl)}},
	{section: "6.10", name: "CONTINUATION without HEADERS",
		send: func(c *rawH2) uint32 {
			c.raw(http2.FrameContinuation, http2.FlagContinuationEndHeaders, 1, c.block(h2Get("/games/c")...))
			return 1
		},
		want: protocolError},
	{section: "6.10", name: "another frame inside a header block",
		send: func(c *rawH2) uint32 {
			b := c.block(h2Get("/games/c")...)
			c.raw(http2.FrameHeaders, http2.FlagHeadersEndStream, 1, b[:4])
			c.do(func() error { return c.fr.WritePing(false, [8]byte{}) })
			return 1
		},
		want: protocolError},
	{section: "8.1.1", name: "content-length other than the DATA's length", served: true,
		send: func(c *rawH2) uint32 {
			c.headers(1, false, ":method", "POST", ":scheme", "https", ":authority", "play.edge.test", ":path", "/games/post", "content-length", "10")
			c.raw(http2.FrameData, http2.FlagDataEndStream, 1, []byte("abc"))
			return 1
		},
		want: malformed},
	malformedRequest("8.2", "an upper-case field name", h2Get("/games/u", "X-Upper", "1")...),
	malformedRequest("8.2.1", "a field value with a line feed", h2Get("/games/lf", "x-lf", "a\nb")...),
	malformedRequest("8.2.2", "a connection-specific field", h2Get("/games/conn", "connection", "keep-alive")...),
	malformedRequest("8.2.2", "TE other than trailers", h2Get("/games/te", "te", "gzip")...),
	malformedRequest("8.3", "a pseudo-header after a regular field", ":method", "GET", ":scheme", "https", "x-a", "1", ":authority", "play.edge.test", ":path", "/games/p"),
	malformedRequest("8.3.1", "a request without :method", ":scheme", "https", ":authority", "play.edge.test", ":path", "/games/m"),
	malformedRequest("8.3.1", "an empty :path", ":method", "GET", ":scheme", "https", ":authority", "play.edge.test", ":path", ""),
	malformedRequest("8.3.1", ":path twice", append(h2Get("/games/a"), ":path", "/games/b")...),
	malformedRequest("8.3", "an unknown pseudo-header", append(h2Get("/games/a"), ":tenant", "x")...),
	malformedRequest("8.3.2", "a response pseudo-header in a request", append(h2Get("/games/a"), ":status", "200")...),
}

// The RFC 9113 areas h2spec covers, against a running node: each case
// sends what its section forbids (or allows) with a raw client and checks
// the server's answer — the GOAWAY or RST_STREAM code the section names,
// or that the connection keeps serving — and that no malformed request
// reached the upstream.
func TestHTTP2Conformance(t *testing.T) {
	e := startH2Edge(t, "{}", "{max_concurrent_streams: 4}")
	for _, k := range h2Cases {
		t.Run("RFC 9113 §"+k.section+" "+k.name, func(t *testing.T) {
			if k.slow {
				e.games.delay.Store(int64(500 * time.Millisecond))
				defer e.games.delay.Store(0)
			}
			c := dialRaw(t, e, !k.noPreface)
			before := e.games.hits.Load()
			id := k.send(c)
			if len(k.want) > 0 {
				got := c.await(id, 5*time.Second)
				if !matches(got, k.want) {
					t.Fatalf("want %v, got %v (%s)", k.want, got, got.detail)
				}
				if got.status == 0 && !k.slow && !k.reaches && e.games.hits.Load() != before {
					t.Errorf("the upstream saw %d request(s) the edge should have refused", e.games.hits.Load()-before)
				}
			}
			if k.served {
				c.served(t, 101)
			}
		})
	}
	// And a PING is answered with its payload (§6.7).
	t.Run("RFC 9113 §6.7 a PING is answered with its payload", func(t *testing.T) {
		c := dialRaw(t, e, true)
		data := [8]byte{1, 2, 3, 4, 5, 6, 7, 8}
		c.do(func() error { return c.fr.WritePing(false, data) })
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
			f := c.next(time.Until(deadline))
			if f == nil {
				break
			}
			if p, ok := f.(*http2.PingFrame); ok && p.IsAck() {
				if !bytes.Equal(p.Data[:], data[:]) {
					t.Fatalf("PING ACK: want payload %x, got %x", data, p.Data)
				}
				return
			}
		}
		t.Fatal("no PING ACK within 5s")
	})
}

func matches(got outcome, want []outcome) bool {
	for _, w := range want {
		switch {
		case w.detail == "goaway" && got.detail == "goaway" && w.goAway == got.goAway,
			w.detail == "rst" && got.detail == "rst" && w.rst == got.rst,
			w.status != 0 && w.status == got.status,
			w.closed && got.closed:
			return true
		}
	}
	return false
}
