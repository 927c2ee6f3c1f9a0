package stream

import (
	"math"
	"strconv"
	"sync"

	"github.com/valyala/fasthttp"

	"hedge/gateway/problem"
)

// Why admitViewer refused.
type viewerRefusal struct {
	reason Refusal
	detail string
}

// admitViewer gives a new viewer a connecting slot (counted in the node's
// connecting viewers), or says why there is none: the stream's or node's
// connected viewers are at their cap, the stream's fan-out is full, or too
// many viewers are connecting. A trusted relay is admitted whatever the
// caps say.
func (s *Server) admitViewer(h *Hub, trusted bool) (*viewerSlot, viewerRefusal) {
	sl := &viewerSlot{s: s, hub: h, trusted: trusted}
	if trusted {
		s.connecting.Add(1)
		h.connecting.Add(1)
		return sl, viewerRefusal{}
	}
	o := s.options()
	switch {
	case h.FanoutFull():
		return nil, viewerRefusal{RefusedViewerCap, "this node's fan-out of the stream is full"}
	case o.MaxViewersPerStream > 0 && int(h.viewers.Load()) >= o.MaxViewersPerStream:
		return nil, viewerRefusal{RefusedViewerCap, "the stream's WebRTC viewer cap is reached"}
	case o.MaxViewersPerNode > 0 && int(s.viewers.Load()) >= o.MaxViewersPerNode:
		return nil, viewerRefusal{RefusedViewerCap, "this node's WebRTC viewer cap is reached"}
	}
	if n := s.connecting.Add(1); o.MaxConnectingViewers > 0 && int(n) > o.MaxConnectingViewers {
		s.connecting.Add(-1)
		return nil, viewerRefusal{RefusedConnecting, "too many WebRTC viewers are connecting to this node"}
	}
	h.connecting.Add(1)
	return sl, viewerRefusal{}
}

// refuseViewer answers a viewer admitViewer refused: 503 stream-viewer-cap
// naming the stream's LL-HLS URL (in the detail and a Link), where the
// player goes instead.
func (s *Server) refuseViewer(ctx *fasthttp.RequestCtx, stream string, why viewerRefusal, requestID []byte) {
	s.refused[why.reason].Add(1)
	hls := s.HLSURL(stream)
	problem.Write(ctx, problem.ViewerCap, why.detail+": watch "+hls+" instead", requestID)
	ctx.Response.Header.Set("Link", "<"+hls+`>; rel="alternate"; type="application/vnd.apple.mpegurl"`)
	if why.reason == RefusedConnecting {
		// Connecting viewers connect or are closed within the timeout.
		ctx.Response.Header.Set("Retry-After", strconv.Itoa(max(int(math.Ceil(s.options().ConnectTimeout.Seconds())), 1)))
	}
}

// viewerSlot is a WHEP viewer's place in the caps: connecting (in the
// node's connecting viewers), then connected (in the stream's and node's
// viewers, reading the hub), then released.
type viewerSlot struct {
	s       *Server
	hub     *Hub
	reader  Reader
	trusted bool

	mu    sync.Mutex
	state slotState
}

type slotState uint8

const (
	slotConnecting slotState = iota
	slotConnected            // counted in the caps, reading the hub
	slotRefused              // connected while the caps were full (or the stream had ended): to be closed
	slotReleased
)

// connect moves a connecting viewer into the caps and onto the hub, and
// asks the studio for a keyframe. It reports false when the viewer must be
// closed instead: the caps filled while it connected, or the stream ended.
func (sl *viewerSlot) connect() bool {
	s, h := sl.s, sl.hub
	sl.mu.Lock()
	defer sl.mu.Unlock()
	if sl.state != slotConnecting {
		return sl.state == slotConnected
	}
	s.connecting.Add(-1)
	h.connecting.Add(-1)
	if !s.takeViewer(h, sl.trusted) {
		s.refused[RefusedCapAtConnect].Add(1)
		sl.state = slotRefused
		return false
	}
	sl.state = slotConnected
	h.AddReader(sl.reader)
	// end() marks the hub ended before it tells its readers: a reader added
	// after that sees Ended here.
	if h.Ended() {
		sl.state = slotRefused
		h.RemoveReader(sl.reader)
		s.dropViewer(h)
		return false
	}
	h.RequestKeyframe()
	return true
}

// release gives back whatever the slot holds; safe to call more than once.
func (sl *viewerSlot) release() {
	s, h := sl.s, sl.hub
	sl.mu.Lock()
	defer sl.mu.Unlock()
	switch sl.state {
	case slotReleased:
		return
	case slotConnecting:
		s.connecting.Add(-1)
		h.connecting.Add(-1)
	case slotConnected:
		h.RemoveReader(sl.reader)
		s.dropViewer(h)
	}
	sl.state = slotReleased
	s.viewerLeft(h.Name())
}

// takeViewer counts a connected viewer in the stream's and the node's
// viewers, or reports that a cap is reached (a trusted relay passes).
func (s *Server) takeViewer(h *Hub, trusted bool) bool {
	o := s.options()
	if n := h.viewers.Add(1); !trusted && o.MaxViewersPerStream > 0 && int(n) > o.MaxViewersPerStream {
		h.viewers.Add(-1)
		return false
	}
	if n := s.viewers.Add(1); !trusted && o.MaxViewersPerNode > 0 && int(n) > o.MaxViewersPerNode {
		s.viewers.Add(-1)
		h.viewers.Add(-1)
		return false
	}
	return true
}

func (s *Server) dropViewer(h *Hub) {
	h.viewers.Add(-1)
	s.viewers.Add(-1)
}
