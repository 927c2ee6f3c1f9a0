package streame2e

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hedge/internal/testkit"
)

// tools finds what the browser test needs: Debian's chromium, node, and
// playwright-core installed by `make e2e-deps`. Without them the test is
// skipped, unless HEDGE_REQUIRE_TOOLS is set (make test sets it): then it
// fails.
func tools(t *testing.T) (chromium, node string) {
	t.Helper()
	var missing []string
	chromium = os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		missing = append(missing, chromium+" (Debian package chromium)")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing = append(missing, "node (Debian package nodejs)")
	}
	if _, err := os.Stat(filepath.Join("node_modules", "playwright-core", "package.json")); err != nil {
		missing = append(missing, "e2e/stream/node_modules/playwright-core (make e2e-deps)")
	}
	if len(missing) > 0 {
		msg := "browser test needs " + strings.Join(missing, ", ")
		if os.Getenv("HEDGE_REQUIRE_TOOLS") != "" {
			t.Fatal(msg + "; HEDGE_REQUIRE_TOOLS is set")
		}
		t.Skip(msg + "; make test installs them")
	}
	// No test adds a network interface while Chromium runs.
	testkit.HoldHostNetwork(t, false)
	return chromium, node
}

type driveResult struct {
	OK                 bool    `json:"ok"`
	Error              string  `json:"error"`
	PublisherCodec     string  `json:"publisherCodec"`
	WebRTCTTFF         float64 `json:"webrtcTTFF"`
	HLSTTFF            float64 `json:"hlsTTFF"`
	FallbackDetectMs   float64 `json:"fallbackDetectMs"`
	FallbackToPlaying  float64 `json:"fallbackToPlayingMs"`
	ReturnMs           float64 `json:"returnMs"`
	WebRTCReturnTTFF   float64 `json:"webrtcReturnTTFF"`
	HLSLiveLatency     float64 `json:"hlsLiveLatency"`
	HLSLatencyLast     float64 `json:"hlsLatencyLast"`
	AttemptsWhileBlock int     `json:"attemptsWhileBlocked"`
	HLSStalls          int     `json:"hlsStalls"`
	HLSJumps           int     `json:"hlsJumps"`
	HLSTarget          float64 `json:"hlsTarget"`
	EdgeLag            struct {
		Median, Max float64
		N           int
	} `json:"edgeLag"`
	HLSLatency struct {
		Median, Min, Max float64
		N                int
	} `json:"hlsLatency"`
	Switches []struct {
		To     string `json:"to"`
		Reason string `json:"reason"`
	} `json:"switches"`
}

// TestBrowserFallsBackToLLHLSAndReturns: Chromium publishes its fake camera
// through WHIP and a second page plays it through WHEP; the viewer's UDP is
// then dropped (the player must fall back to LL-HLS and keep playing), then
// restored (the player must return to WebRTC).
func TestBrowserFallsBackToLLHLSAndReturns(t *testing.T) {
	chromium, node := tools(t)
	e := startEdge(t)

	res := runDriver[driveResult](t, 4*time.Minute, chromium, node, "drive.mjs", e.base, "table1", "demo-studio")
	t.Logf("UDP proxy dropped %d datagrams while the viewer was cut off", e.proxy.dropped.Load())
	if !res.OK {
		t.Fatalf("expected publish → WebRTC → LL-HLS → WebRTC, got: %s", res.Error)
	}
	if res.PublisherCodec != "H264" {
		t.Errorf("expected the publish page to negotiate H264 (LL-HLS needs it), got %q", res.PublisherCodec)
	}
	if res.AttemptsWhileBlock < 2 {
		t.Errorf("expected the player to retry WebRTC while on LL-HLS, got %d attempts in all", res.AttemptsWhileBlock)
	}
	var path []string
	for _, s := range res.Switches {
		path = append(path, s.To)
	}
	if got := strings.Join(path, "→"); got != "webrtc→hls→webrtc" {
		t.Errorf("expected switches webrtc→hls→webrtc, got %s (%+v)", got, res.Switches)
	}
	// The player ends each WebRTC session it gives up with its session
	// token: at least the one that failed at the cut, while hedge still had
	// it; none refused (a probe hedge already closed for not connecting in
	// time answers 404).
	dels := e.whepDeletes()
	ok := 0
	for _, st := range dels {
		switch st {
		case http.StatusOK:
			ok++
		case http.StatusNotFound:
		default:
			t.Errorf("the player's DELETE of a WHEP session: expected 200 (or 404 once hedge closed it), got %d (all: %v)", st, dels)
		}
	}
	if ok == 0 {
		t.Errorf("expected the player to end at least one WHEP session with DELETE (200), got %v", dels)
	}
	t.Logf("time to first frame: WebRTC %.0f ms, LL-HLS %.0f ms (after the fallback started); the probe that returned to WebRTC started %.0f ms before its first frame (while UDP was still cut, as a player retries)",
		res.WebRTCTTFF, res.HLSTTFF, res.WebRTCReturnTTFF)
	t.Logf("fallback: detected %.0f ms after the cut, LL-HLS playing %.0f ms after it; back on WebRTC %.0f ms after the restore",
		res.FallbackDetectMs, res.FallbackToPlaying, res.ReturnMs)
	t.Logf("LL-HLS latency in hls.js (now − PROGRAM-DATE-TIME at the playhead): median %.2f s (min %.2f, max %.2f, n=%d over 8 s, last %.2f s); hls.js live-edge estimate %.2f s; %d stalls",
		res.HLSLatency.Median, res.HLSLatency.Min, res.HLSLatency.Max, res.HLSLatency.N, res.HLSLatencyLast, res.HLSLiveLatency, res.HLSStalls)
	t.Logf("LL-HLS: player's target %.2f s, %d jumps ahead; media playlists served %.3f s (median, max %.3f, n=%d) after the PROGRAM-DATE-TIME of their live edge",
		res.HLSTarget, res.HLSJumps, res.EdgeLag.Median, res.EdgeLag.Max, res.EdgeLag.N)
}
