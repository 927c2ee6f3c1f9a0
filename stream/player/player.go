// Package player serves the pages hedge gives players and studios: the
// player at /live/{stream}/ and the studio's publish page at
// /live/{stream}/publish, with their scripts and hls.js, all embedded in the
// binary (nothing is loaded from a CDN).
//
// The player reads /live/{stream}/play.json (a Descriptor), plays WebRTC
// through WHEP, watches its own getStats and falls back to LL-HLS with
// hls.js when WebRTC fails or degrades, then tries WebRTC again and returns
// to it when it works. Its state is on window.hedgePlayer for tests and
// dashboards. The publish page sends the camera and microphone through WHIP
// with the studio's bearer token.
//
// hls.js comes from npm at the version pinned in package-lock.json; `make`
// copies dist/hls.min.js into web/. The copy is committed so that plain
// `go build` works from a fresh clone without node; a test checks that it
// is the pinned version.
package player

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strconv"
	"strings"

	"hedge/internal/problem"
)

//go:embed web
var web embed.FS

// Descriptor is the playback descriptor served at /live/{stream}/play.json:
// what the player needs to choose and start a mode.
type Descriptor struct {
	Stream     string      `json:"stream"`
	WHEP       string      `json:"whep"`       // WHEP endpoint URL
	HLS        string      `json:"hls"`        // LL-HLS multivariant playlist URL
	ICEServers []ICEServer `json:"iceServers"` // for RTCPeerConnection
	// State is "live" (a publisher is sending), "waiting" (not yet, or
	// between a studio's reconnects) or "ended".
	State string `json:"state"`
	// Preferred is the server's choice: "webrtc", or "hls" when the node is
	// over its WebRTC viewer cap. The player starts there.
	Preferred string `json:"preferred"`
}

// ICEServer is one entry of RTCConfiguration.iceServers.
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// Modes of Descriptor.Preferred.
const (
	ModeWebRTC = "webrtc"
	ModeHLS    = "hls"
)

// files maps the last element of a request path to an embedded file.
var files = map[string]struct {
	name, ctype string
}{
	"":           {"web/index.html", "text/html; charset=utf-8"},
	"publish":    {"web/publish.html", "text/html; charset=utf-8"},
	"player.js":  {"web/player.js", "text/javascript; charset=utf-8"},
	"publish.js": {"web/publish.js", "text/javascript; charset=utf-8"},
	"hls.min.js": {"web/hls.min.js", "text/javascript; charset=utf-8"},
	"webrtc.js":  {"web/webrtc.js", "text/javascript; charset=utf-8"},
}

// contentSecurityPolicy allows only hedge's own scripts; media may come from
// blob: URLs (hls.js feeds Media Source Extensions through them) and
// connections may go to another region's edge named in play.json.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data:; media-src 'self' blob:; worker-src 'self' blob:; connect-src 'self' https: http:; " +
	"frame-ancestors 'self'; base-uri 'none'; form-action 'none'"

// Handler serves the pages and their assets. Mount it on the stream route
// for GET and HEAD of /live/{stream}/, /live/{stream}/publish and
// /live/{stream}/{player.js,publish.js,webrtc.js,hls.min.js}; only the last path
// element is looked at, since the pages take the stream name from their own
// URL. Anything else is a 404 problem.
func Handler() http.Handler {
	return http.HandlerFunc(serve)
}

func serve(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	last := ""
	if !strings.HasSuffix(p, "/") {
		last = path.Base(p)
	}
	f, ok := files[last]
	if !ok {
		writeProblem(w, r, problem.NotFound, "no such player file")
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeProblem(w, r, problem.MethodNotAllowed, "")
		return
	}
	b, err := fs.ReadFile(web, f.name)
	if err != nil {
		writeProblem(w, r, problem.Internal, "")
		return
	}
	h := w.Header()
	h.Set("Content-Type", f.ctype)
	h.Set("Content-Length", strconv.Itoa(len(b)))
	h.Set("X-Content-Type-Options", "nosniff")
	if strings.HasPrefix(f.ctype, "text/html") {
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("Referrer-Policy", "no-referrer")
		// The publish page asks for the camera; the player does not.
		if last == "publish" {
			h.Set("Permissions-Policy", "camera=(self), microphone=(self)")
		} else {
			h.Set("Permissions-Policy", "camera=(), microphone=()")
		}
		h.Set("Cache-Control", "no-cache")
	} else {
		h.Set("Cache-Control", "public, max-age=300")
	}
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(b)
	}
}

func writeProblem(w http.ResponseWriter, r *http.Request, t problem.Type, detail string) {
	problem.WriteHTTP(w, r, t, detail)
}
