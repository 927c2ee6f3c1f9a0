package hls

import (
	"bytes"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"hedge/internal/httpx"
	"hedge/internal/problem"
)

// Problems this package answers with, besides the gateway's own.
var (
	// Stalled: a blocking playlist or preload-hint request waited
	// WaitTimeout and the stream produced nothing; the player retries.
	Stalled = problem.Type{Slug: "hls-stalled", Title: "The stream produced no new media in time", Status: http.StatusServiceUnavailable}
	// TooManyWaiting: MaxWaiting requests are already blocked.
	TooManyWaiting = problem.Type{Slug: "hls-busy", Title: "Too many blocked playlist requests", Status: http.StatusServiceUnavailable}
)

// ServeHTTP serves the stream's LL-HLS files. Only the last element of the
// path counts, so the muxer can be mounted anywhere (/live/{stream}/hls/):
// index.m3u8 (the multivariant playlist), the media playlists with blocking
// reload (_HLS_msn, _HLS_part, _HLS_skip), the init sections, parts and
// segments. Every answer carries CORS headers so that a player page on
// another origin can read it.
func (m *Muxer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Range, Origin, Accept")
	h.Set("Access-Control-Expose-Headers", "Content-Length, Content-Type, Age")
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodOptions:
		h.Set("Access-Control-Max-Age", "86400")
		w.WriteHeader(http.StatusNoContent)
		return
	default:
		h.Set("Allow", "GET, HEAD, OPTIONS")
		writeProblem(w, r, problem.MethodNotAllowed, "LL-HLS files are read with GET")
		return
	}
	select {
	case <-m.done:
		writeProblem(w, r, problem.NotFound, "the stream has ended")
		return
	default:
	}
	// Strings of a request adapted from fasthttp may alias its reused
	// buffers: what outlives the call is cloned.
	name := strings.Clone(path.Base(r.URL.Path))
	switch {
	case strings.HasSuffix(name, ".m3u8"):
		// Playlists may block (blocking reload, or before the first
		// segment); gohlslib's waits end on content or Close.
		req := detach(r)
		m.serveBlocking(w, r, func(rec *recorder) {
			m.mux.Handle(rec, req)
			if rec.status == http.StatusOK && name != "index.m3u8" {
				m.noteHint(name, rec.body.Bytes())
			}
		})
	case strings.Contains(name, "_part"):
		m.servePart(w, r, name)
	default:
		// Init sections and finished segments never wait.
		rec := &recorder{}
		m.mux.Handle(rec, detach(r))
		rec.copyTo(w, r)
	}
}

// servePart serves an LL-HLS part. A part that exists is served at once. The
// part named by the current preload hint is waited for with a blocking
// playlist request for its position, not with gohlslib's own preload-hint
// handler: that one returns without unlocking the muxer when the stream is
// closed under it (gohlslib v2.2.0), which would hang every other waiter
// and Close.
func (m *Muxer) servePart(w http.ResponseWriter, r *http.Request, name string) {
	streamID, id, ok := parsePartName(name)
	if !ok {
		writeProblem(w, r, problem.NotFound, "no such LL-HLS part")
		return
	}
	m.hintMu.Lock()
	h, known := m.hints[streamID]
	m.hintMu.Unlock()
	switch {
	case !known || id > h.id:
		// Not announced by any playlist this muxer served.
		writeProblem(w, r, problem.NotFound, "no such LL-HLS part (not announced yet)")
	case id < h.id:
		rec := &recorder{}
		m.mux.Handle(rec, detach(r))
		rec.copyTo(w, r)
	default:
		pl := &http.Request{Method: http.MethodGet, Header: http.Header{}, URL: &url.URL{
			Path:     streamID + "_stream.m3u8",
			RawQuery: "_HLS_msn=" + strconv.FormatUint(h.msn, 10) + "&_HLS_part=" + strconv.FormatUint(h.part, 10),
		}}
		req := detach(r)
		m.serveBlocking(w, r, func(rec *recorder) {
			m.mux.Handle(rec, pl)
			if rec.status != http.StatusOK {
				return // closed, or the part is gone: rec says which
			}
			m.noteHint(pl.URL.Path, rec.body.Bytes())
			*rec = recorder{}
			m.mux.Handle(rec, req)
		})
	}
}

// hint is the part a media playlist announced with EXT-X-PRELOAD-HINT: its
// id in the part file names and its position (media sequence number of its
// segment, index in that segment) for a blocking playlist request.
type hint struct {
	id, msn, part uint64
}

// noteHint records the preload hint of a media playlist gohlslib produced,
// when it is newer than the one known. Every playlist a player sees passes
// here first, so a player never names a part beyond the known hint.
func (m *Muxer) noteHint(playlistName string, pl []byte) {
	streamID := strings.TrimSuffix(playlistName, "_stream.m3u8")
	i := bytes.LastIndex(pl, []byte("#EXT-X-PRELOAD-HINT:"))
	if i < 0 {
		return
	}
	line := pl[i:]
	if j := bytes.IndexByte(line, '\n'); j >= 0 {
		line = line[:j]
	}
	u := bytes.Index(line, []byte(`URI="`))
	if u < 0 {
		return
	}
	uri := line[u+5:]
	if j := bytes.IndexByte(uri, '"'); j >= 0 {
		uri = uri[:j]
	}
	_, id, ok := parsePartName(string(uri))
	if !ok {
		return
	}
	m.hintMu.Lock()
	defer m.hintMu.Unlock()
	if old, ok := m.hints[streamID]; ok && old.id >= id {
		return
	}
	msn, part, ok := hintPosition(pl)
	if !ok {
		return
	}
	m.hints[strings.Clone(streamID)] = hint{id: id, msn: msn, part: part}
}

// hintPosition finds where the preload-hinted part will be: in the segment
// after the last one listed, after the parts already listed for it.
func hintPosition(pl []byte) (msn, part uint64, ok bool) {
	var seq, segs, trailing uint64
	for len(pl) > 0 {
		var line []byte
		line, pl = httpx.CutByte(pl, '\n')
		line = bytes.TrimRight(line, "\r")
		switch {
		case bytes.HasPrefix(line, []byte("#EXT-X-MEDIA-SEQUENCE:")):
			v, err := strconv.ParseUint(string(line[len("#EXT-X-MEDIA-SEQUENCE:"):]), 10, 64)
			if err != nil {
				return 0, 0, false
			}
			seq = v
		case bytes.HasPrefix(line, []byte("#EXT-X-SKIP:")):
			const key = "SKIPPED-SEGMENTS="
			k := bytes.Index(line, []byte(key))
			if k < 0 {
				return 0, 0, false
			}
			v := line[k+len(key):]
			if c := bytes.IndexByte(v, ','); c >= 0 {
				v = v[:c]
			}
			n, err := strconv.ParseUint(string(v), 10, 64)
			if err != nil {
				return 0, 0, false
			}
			segs += n
		case bytes.HasPrefix(line, []byte("#EXT-X-PART:")):
			trailing++
		case len(line) > 0 && line[0] != '#':
			segs++ // a segment URI closes the parts before it
			trailing = 0
		}
	}
	return seq + segs, trailing, true
}

// parsePartName splits gohlslib's part file name PREFIX_STREAM_partN.mp4.
func parsePartName(name string) (streamID string, id uint64, ok bool) {
	base, found := strings.CutSuffix(name, ".mp4")
	if !found {
		return "", 0, false
	}
	i := strings.LastIndex(base, "_part")
	j := strings.IndexByte(base, '_')
	if i < 0 || j < 0 || j >= i {
		return "", 0, false
	}
	id, err := strconv.ParseUint(base[i+len("_part"):], 10, 64)
	if err != nil {
		return "", 0, false
	}
	return base[j+1 : i], id, true
}

// serveBlocking runs fn, which may wait in gohlslib on a condition variable
// that knows nothing of the request, in a goroutine of its own writing into
// a buffer, and gives up after WaitTimeout or when the client goes away.
// The goroutine ends when the stream gets there or at Close, which waits for
// it; MaxWaiting bounds how many there are.
func (m *Muxer) serveBlocking(w http.ResponseWriter, r *http.Request, fn func(*recorder)) {
	select {
	case m.waiting <- struct{}{}:
	default:
		w.Header().Set("Retry-After", "1")
		writeProblem(w, r, TooManyWaiting, "")
		return
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		<-m.waiting
		writeProblem(w, r, problem.NotFound, "the stream has ended")
		return
	}
	m.wg.Add(1) // under mu, so that it never races Close's Wait
	m.mu.Unlock()
	rec := &recorder{}
	fin := make(chan struct{})
	go func() {
		defer m.wg.Done()
		defer func() { <-m.waiting }()
		defer close(fin)
		fn(rec)
	}()
	t := time.NewTimer(m.opts.WaitTimeout)
	defer t.Stop()
	select {
	case <-fin:
		if rec.status == http.StatusInternalServerError && isDone(m.done) {
			writeProblem(w, r, problem.NotFound, "the stream has ended")
			return
		}
		rec.copyTo(w, r)
	case <-t.C:
		w.Header().Set("Retry-After", "1")
		writeProblem(w, r, Stalled, "")
	case <-r.Context().Done():
	}
}

func isDone(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// detach copies what gohlslib reads of a request, so that a handler still
// waiting after the request ended touches nothing the server may reuse
// (fasthttpadaptor's strings alias fasthttp's request buffers).
func detach(r *http.Request) *http.Request {
	return &http.Request{
		Method: strings.Clone(r.Method),
		URL:    &url.URL{Path: strings.Clone(r.URL.Path), RawQuery: strings.Clone(r.URL.RawQuery)},
		Header: http.Header{},
	}
}

// recorder is the ResponseWriter gohlslib writes into.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (rec *recorder) Header() http.Header {
	if rec.header == nil {
		rec.header = http.Header{}
	}
	return rec.header
}

func (rec *recorder) WriteHeader(code int) {
	if rec.status == 0 {
		rec.status = code
	}
}

func (rec *recorder) Write(p []byte) (int, error) {
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	return rec.body.Write(p)
}

func (rec *recorder) copyTo(w http.ResponseWriter, r *http.Request) {
	// gohlslib answers errors with a bare status; hedge's answers are
	// problems, with the request's id.
	switch {
	case rec.status == 0:
		// gohlslib writes nothing for a name it does not know.
		writeProblem(w, r, problem.NotFound, "no such LL-HLS file (expired, or never produced)")
		return
	case rec.status == http.StatusBadRequest:
		writeProblem(w, r, problem.BadRequest, "_HLS_msn/_HLS_part out of range or malformed")
		return
	case rec.status >= 400:
		// 500: the stream closed under a waiting request, or a file gone
		// while it was read.
		writeProblem(w, r, problem.Internal, "the LL-HLS packager could not produce this file")
		return
	}
	h := w.Header()
	for k, v := range rec.header {
		h[k] = v
	}
	h.Set("Content-Length", strconv.Itoa(rec.body.Len()))
	w.WriteHeader(rec.status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(rec.body.Bytes())
	}
}

// WriteProblem answers r with problem t, like problem.Write for a
// net/http handler: the request's X-Request-Id (which hedge's gateway sets
// to its id for the request before handing it over) goes into the body and
// the response header.
func WriteProblem(w http.ResponseWriter, r *http.Request, t problem.Type, detail string) {
	writeProblem(w, r, t, detail)
}

func writeProblem(w http.ResponseWriter, r *http.Request, t problem.Type, detail string) {
	problem.WriteHTTP(w, r, t, detail)
}
