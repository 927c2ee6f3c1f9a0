// Package hubfeed attaches an LL-HLS muxer (package hls) to every live
// stream of a stream.Server and serves their files: set Options.OnHub to
// Set.OnHub and route /live/{stream}/hls/ to Set.ServeHTTP.
//
// It is the one place that knows both sides: hls does not import stream,
// and stream does not know about HLS beyond its Reader interface.
package hubfeed

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/pion/rtp"

	"hedge/internal/problem"
	"hedge/stream"
	"hedge/stream/hls"
)

// Set holds the muxers of a node's live streams.
type Set struct {
	opts hls.Options // template; codecs are filled in per stream

	mu     sync.Mutex
	muxers map[string]*hls.Muxer
}

// New returns a Set whose muxers use o (its Video and Audio are ignored:
// each stream's come from its publisher's tracks).
func New(o hls.Options) *Set {
	return &Set{opts: o, muxers: map[string]*hls.Muxer{}}
}

// OnHub is stream.Options.OnHub: once the publisher's tracks are known, a
// muxer reads the stream, and its keyframe requests go to the publisher. The
// returned function detaches and closes it when the stream ends.
func (s *Set) OnHub(h *stream.Hub) func() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-h.Ready():
		case <-ctx.Done():
			return
		}
		o := s.opts
		o.Video, o.Audio = hls.NoCodec, hls.NoCodec
		// OnRTP runs under the track's lock, where Track.Codec cannot be
		// called: note each track's codec now.
		tracks := map[*stream.Track]trackInfo{}
		for _, tr := range h.Tracks() {
			c := tr.Codec()
			ti := trackInfo{codecOf(c.MimeType), c.ClockRate}
			tracks[tr] = ti
			switch ti.codec {
			case hls.H264:
				o.Video = hls.H264
			case hls.Opus:
				o.Audio = hls.Opus
			}
		}
		m, err := hls.New(o)
		if err != nil {
			return // VP8 only, or no usable track: no LL-HLS for this stream
		}
		s.mu.Lock()
		s.muxers[h.Name()] = m
		s.mu.Unlock()
		r := &reader{m: m, tracks: tracks}
		h.AddReader(r)
		defer func() {
			h.RemoveReader(r)
			s.mu.Lock()
			if s.muxers[h.Name()] == m {
				delete(s.muxers, h.Name())
			}
			s.mu.Unlock()
			_ = m.Close()
		}()
		for {
			select {
			case <-m.KeyframeWanted():
				h.RequestKeyframe()
			case <-ctx.Done():
				return
			}
		}
	}()
	return func() { cancel(); <-done }
}

// Muxer returns the muxer of a live stream, or nil.
func (s *Set) Muxer(name string) *hls.Muxer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.muxers[name]
}

// ServeHTTP serves /{prefix}/{stream}/hls/{file}: the stream name is the
// path element before "hls". A stream without a muxer (not live, or not
// packageable) is a 404 problem.
func (s *Set) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	var m *hls.Muxer
	if n := len(parts); n >= 3 && parts[n-2] == "hls" {
		m = s.Muxer(parts[n-3])
	}
	if m == nil {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		hls.WriteProblem(w, r, problem.StreamNotFound, "no LL-HLS for this stream (not live, or not H.264/Opus)")
		return
	}
	m.ServeHTTP(w, r)
}

type trackInfo struct {
	codec hls.Codec
	rate  uint32
}

func codecOf(mime string) hls.Codec {
	switch strings.ToLower(mime) {
	case "video/h264":
		return hls.H264
	case "audio/opus":
		return hls.Opus
	case "video/vp8":
		return hls.VP8
	}
	return hls.NoCodec
}

// reader feeds one muxer from its hub.
type reader struct {
	m      *hls.Muxer
	tracks map[*stream.Track]trackInfo // read-only after attach
}

func (r *reader) OnRTP(tr *stream.Track, pkts []*rtp.Packet) {
	if ti, ok := r.tracks[tr]; ok {
		now := time.Now()
		for _, pkt := range pkts {
			r.m.WriteRTP(ti.codec, ti.rate, pkt, now)
		}
	}
}
