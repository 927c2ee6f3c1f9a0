package player

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

func TestHandlerServesPagesAndAssets(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	for _, tc := range []struct {
		method, path string
		status       int
		ctype        string
		contains     string
	}{
		{"GET", "/live/t1/", 200, "text/html; charset=utf-8", `<script src="player.js">`},
		{"GET", "/live/t1/publish", 200, "text/html; charset=utf-8", `<script src="publish.js">`},
		{"GET", "/live/t1/", 200, "text/html; charset=utf-8", `<script src="webrtc.js">`},
		{"GET", "/live/t1/publish", 200, "text/html; charset=utf-8", `<script src="webrtc.js">`},
		{"GET", "/live/t1/player.js", 200, "text/javascript; charset=utf-8", "hedgePlayer"},
		{"GET", "/live/t1/publish.js", 200, "text/javascript; charset=utf-8", "hedgePublisher"},
		{"GET", "/live/t1/hls.min.js", 200, "text/javascript; charset=utf-8", "Hls"},
		{"GET", "/live/t1/webrtc.js", 200, "text/javascript; charset=utf-8", "hedgeWebRTC"},
		{"HEAD", "/live/t1/", 200, "text/html; charset=utf-8", ""},
		{"GET", "/live/t1/nothing.js", 404, "application/problem+json", "urn:hedge:problem:no-route"},
		{"GET", "/live/t1/../../etc/passwd", 404, "application/problem+json", ""},
		{"POST", "/live/t1/", 405, "application/problem+json", "method-not-allowed"},
	} {
		req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || resp.Header.Get("Content-Type") != tc.ctype || !strings.Contains(string(body), tc.contains) {
			t.Errorf("%s %s: expected %d %q containing %q, got %d %q: %.200s", tc.method, tc.path, tc.status, tc.ctype, tc.contains,
				resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
		if tc.status == 200 && strings.HasPrefix(tc.ctype, "text/html") {
			csp := resp.Header.Get("Content-Security-Policy")
			if !strings.Contains(csp, "script-src 'self'") {
				t.Errorf("%s: expected a CSP allowing only the page's own scripts, got %q", tc.path, csp)
			}
		}
	}
}

// TestNoRemoteScripts: the pages load nothing from another origin (no CDN).
func TestNoRemoteScripts(t *testing.T) {
	remote := regexp.MustCompile(`(?i)<(script|link)[^>]+(src|href)="(https?:)?//`)
	for _, f := range []string{"web/index.html", "web/publish.html"} {
		b, err := web.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if m := remote.Find(b); m != nil {
			t.Errorf("%s: expected only local scripts and styles, found %s", f, m)
		}
	}
}

// TestEmbeddedHLSJSIsPinned checks that the committed copy of hls.min.js is
// the version package-lock.json pins (make refreshes it with npm ci).
func TestEmbeddedHLSJSIsPinned(t *testing.T) {
	raw, err := os.ReadFile("package-lock.json")
	if err != nil {
		t.Fatal(err)
	}
	var lock struct {
		Packages map[string]struct {
			Version string `json:"version"`
		} `json:"packages"`
	}
	if err := json.Unmarshal(raw, &lock); err != nil {
		t.Fatal(err)
	}
	want := lock.Packages["node_modules/hls.js"].Version
	if want == "" {
		t.Fatal("package-lock.json pins no hls.js")
	}
	b, err := web.ReadFile("web/hls.min.js")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"`+want+`"`) {
		t.Errorf("embedded hls.min.js is not hls.js %s (run make web-deps)", want)
	}
}

// TestScriptsParse has node check the syntax of the page scripts.
func TestScriptsParse(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("HEDGE_REQUIRE_TOOLS") != "" {
			t.Fatal("node not found (Debian package nodejs) and HEDGE_REQUIRE_TOOLS is set")
		}
		t.Skip("node not found; make deps installs it")
	}
	for _, f := range []string{"web/player.js", "web/publish.js", "web/webrtc.js"} {
		if out, err := exec.Command(node, "--check", f).CombinedOutput(); err != nil {
			t.Errorf("node --check %s: %v\n%s", f, err, out)
		}
	}
}
