package hls

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2"
	"github.com/bluenviron/gohlslib/v2/pkg/codecs"
	"github.com/bluenviron/gohlslib/v2/pkg/playlist"
	"github.com/pion/rtp"
)

// live is a muxer fed with the sample at real-time pace behind a real HTTP
// server on loopback.
type live struct {
	m    *Muxer
	srv  *httptest.Server
	stop func()
}

func startLive(t *testing.T, o Options) *live {
	t.Helper()
	m, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.StripPrefix("/live/t1/hls", m))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); newPublisher(loadSample(t)).run(ctx, m) }()
	l := &live{m: m, srv: srv, stop: func() { cancel(); wg.Wait(); _ = m.Close(); srv.Close() }}
	t.Cleanup(l.stop)
	return l
}

func (l *live) url(name string) string { return l.srv.URL + "/live/t1/hls/" + name }

func get(t *testing.T, u string) (*http.Response, []byte) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", u, err)
	}
	return resp, b
}

// mediaPlaylists reads the multivariant playlist and returns the URIs of
// the video and audio media playlists.
func mediaPlaylists(t *testing.T, l *live) (video, audio string) {
	t.Helper()
	return mediaPlaylistsAt(t, l.url)
}

func mediaPlaylistsAt(t *testing.T, url func(string) string) (video, audio string) {
	t.Helper()
	resp, body := get(t, url("index.m3u8"))
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("index.m3u8: expected 200 with CORS, got %d, ACAO %q", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
	}
	var mv playlist.Multivariant
	if err := mv.Unmarshal(body); err != nil {
		t.Fatalf("index.m3u8 does not parse: %v\n%s", err, body)
	}
	if len(mv.Variants) != 1 {
		t.Fatalf("index.m3u8: expected one variant, got %d\n%s", len(mv.Variants), body)
	}
	v := mv.Variants[0]
	codecs := strings.Join(v.Codecs, ",")
	if !strings.Contains(codecs, "avc1.42") || !strings.Contains(codecs, "opus") {
		t.Errorf("index.m3u8: expected CODECS avc1.42… (constrained baseline) and opus, got %q", codecs)
	}
	for _, r := range mv.Renditions {
		if r.Type == playlist.MultivariantRenditionTypeAudio && r.URI != nil {
			audio = *r.URI
		}
	}
	if audio == "" {
		t.Fatalf("index.m3u8: no audio rendition\n%s", body)
	}
	return v.URI, audio
}

func mediaPlaylist(t *testing.T, u string) *playlist.Media {
	t.Helper()
	resp, body := get(t, u)
	if resp.StatusCode != 200 {
		t.Fatalf("%s: expected 200, got %d: %s", u, resp.StatusCode, body)
	}
	var pl playlist.Media
	if err := pl.Unmarshal(body); err != nil {
		t.Fatalf("%s does not parse: %v\n%s", u, err, body)
	}
	return &pl
}

// waitSegments waits until the video playlist lists n real (non-gap) segments.
func waitSegments(t *testing.T, l *live, uri string, n int) *playlist.Media {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		pl := mediaPlaylist(t, l.url(uri))
		real := 0
		for _, s := range pl.Segments {
			if !s.Gap {
				real++
			}
		}
		if real >= n {
			return pl
		}
		if time.Now().After(deadline) {
			t.Fatalf("expected %d segments within 20s, got %d (stats %+v)", n, real, l.m.Stats())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestLLHLSPlaylists checks the LL-HLS playlists the muxer serves with
// gohlslib's playlist parser: parts of about 200 ms, segments cut on
// keyframes after 1 s, blocking reload, preload hints, CORS.
func TestLLHLSPlaylists(t *testing.T) {
	l := startLive(t, Options{Video: H264, Audio: Opus})
	videoURI, audioURI := mediaPlaylists(t, l)
	pl := waitSegments(t, l, videoURI, 2)

	if pl.ServerControl == nil || !pl.ServerControl.CanBlockReload {
		t.Errorf("expected EXT-X-SERVER-CONTROL CAN-BLOCK-RELOAD=YES, got %+v", pl.ServerControl)
	}
	if pl.PartInf == nil || pl.PartInf.PartTarget < 180*time.Millisecond || pl.PartInf.PartTarget > 300*time.Millisecond {
		t.Fatalf("expected PART-TARGET about 200ms, got %+v", pl.PartInf)
	}
	// RFC 8216bis: PART-HOLD-BACK at least twice PART-TARGET; hls.js aims
	// at it, so it is the players' latency floor: no more than 3 times.
	if sc := pl.ServerControl; sc == nil || sc.PartHoldBack == nil ||
		*sc.PartHoldBack < 2*pl.PartInf.PartTarget || *sc.PartHoldBack > 3*pl.PartInf.PartTarget {
		t.Errorf("expected PART-HOLD-BACK between 2 and 3 × PART-TARGET (%v), got %+v", pl.PartInf.PartTarget, sc)
	}
	if pl.PreloadHint == nil || !strings.Contains(pl.PreloadHint.URI, "_part") {
		t.Errorf("expected a preload hint naming the next part, got %+v", pl.PreloadHint)
	}
	if pl.Map == nil {
		t.Fatal("expected EXT-X-MAP (fMP4 init section)")
	}
	if pl.TargetDuration < 1 || pl.TargetDuration > 2 {
		t.Errorf("expected target duration 1-2 s, got %d", pl.TargetDuration)
	}
	real := 0
	for i, s := range pl.Segments {
		if s.Gap {
			continue
		}
		real++
		// The sample has a keyframe every 500 ms: segments are 1 s.
		if s.Duration < 950*time.Millisecond || s.Duration > 2*time.Second {
			t.Errorf("segment %d (%s): expected 1-2 s, got %v", i, s.URI, s.Duration)
		}
		if s.DateTime == nil {
			t.Errorf("segment %d: expected EXT-X-PROGRAM-DATE-TIME (players compute latency from it)", i)
		}
		var sum time.Duration
		for j, p := range s.Parts {
			sum += p.Duration
			if p.Duration > 300*time.Millisecond {
				t.Errorf("segment %d part %d: expected ≤ 300ms, got %v", i, j, p.Duration)
			}
		}
		if len(s.Parts) > 0 && (sum-s.Duration > 10*time.Millisecond || s.Duration-sum > 10*time.Millisecond) {
			t.Errorf("segment %d: parts add up to %v, segment says %v", i, sum, s.Duration)
		}
	}
	if real < 2 {
		t.Fatalf("expected ≥ 2 real segments, got %d", real)
	}

	t.Run("blocking reload", func(t *testing.T) {
		pl := mediaPlaylist(t, l.url(videoURI))
		msn := pl.MediaSequence + len(pl.Segments)
		part := len(pl.Parts)
		// Ask for the part after the next one: it does not exist yet.
		part++
		u := fmt.Sprintf("%s?_HLS_msn=%d&_HLS_part=%d", l.url(videoURI), msn, part)
		start := time.Now()
		resp, body := get(t, u)
		waited := time.Since(start)
		if resp.StatusCode != 200 {
			t.Fatalf("blocking reload: expected 200, got %d: %s", resp.StatusCode, body)
		}
		if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("blocking reload: expected CORS header, got %q", resp.Header.Get("Access-Control-Allow-Origin"))
		}
		var got playlist.Media
		if err := got.Unmarshal(body); err != nil {
			t.Fatal(err)
		}
		have := got.MediaSequence + len(got.Segments)
		if have < msn || (have == msn && len(got.Parts) <= part) {
			t.Errorf("blocking reload for msn %d part %d returned a playlist ending at msn %d with %d parts", msn, part, have, len(got.Parts))
		}
		if waited < 50*time.Millisecond || waited > 3*time.Second {
			t.Errorf("blocking reload: expected to wait for about one or two parts, waited %v", waited)
		}
		t.Logf("blocking reload for a future part answered after %v", waited)
	})

	t.Run("preload hint", func(t *testing.T) {
		pl := mediaPlaylist(t, l.url(videoURI))
		start := time.Now()
		resp, body := get(t, l.url(pl.PreloadHint.URI))
		if resp.StatusCode != 200 || len(body) < 100 || !bytes.Contains(body[:16], []byte("moof")) {
			t.Fatalf("preload hint %s: expected 200 with an fMP4 fragment, got %d, %d bytes", pl.PreloadHint.URI, resp.StatusCode, len(body))
		}
		t.Logf("preload-hinted part (%d bytes) answered after %v", len(body), time.Since(start))
	})

	t.Run("out of range", func(t *testing.T) {
		pl := mediaPlaylist(t, l.url(videoURI))
		msn := pl.MediaSequence + len(pl.Segments) + 5
		resp, body := get(t, fmt.Sprintf("%s?_HLS_msn=%d&_HLS_part=0", l.url(videoURI), msn))
		if resp.StatusCode != 400 || resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("msn far ahead: expected 400 problem+json, got %d %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
	})

	t.Run("audio", func(t *testing.T) {
		pl := mediaPlaylist(t, l.url(audioURI))
		if len(pl.Parts) == 0 && len(pl.Segments) == 0 {
			t.Fatal("audio playlist is empty")
		}
	})

	t.Run("ffprobe", func(t *testing.T) {
		probeSegments(t, l, videoURI, audioURI)
	})
}

// probeSegments concatenates each track's init section and first complete
// segment and has ffprobe (Debian's ffmpeg) count the frames.
func probeSegments(t *testing.T, l *live, videoURI, audioURI string) {
	ffprobe, err := exec.LookPath("ffprobe")
	if err != nil {
		if os.Getenv("HEDGE_REQUIRE_TOOLS") != "" {
			t.Fatal("ffprobe not found (Debian package ffmpeg) and HEDGE_REQUIRE_TOOLS is set")
		}
		t.Skip("ffprobe not found; install Debian's ffmpeg (make deps does) to check segments with it")
	}
	for _, tc := range []struct {
		uri           string
		codec         string
		minFr, maxFr  int
		width, height int
	}{
		{videoURI, "h264", 29, 31, 320, 180}, // 1 s at 30 fps
		{audioURI, "opus", 45, 105, 0, 0},    // 1-2 s of 20 ms packets
	} {
		pl := mediaPlaylist(t, l.url(tc.uri))
		var seg string
		for _, s := range pl.Segments {
			if !s.Gap {
				seg = s.URI
				break
			}
		}
		if seg == "" || pl.Map == nil {
			t.Fatalf("%s: no segment or init section", tc.uri)
		}
		_, init := get(t, l.url(pl.Map.URI))
		_, media := get(t, l.url(seg))
		f := filepath.Join(t.TempDir(), "seg.mp4")
		if err := os.WriteFile(f, append(init, media...), 0o600); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := exec.CommandContext(ctx, ffprobe, "-v", "error", "-count_frames",
			"-show_entries", "stream=codec_name,nb_read_frames,width,height", "-of", "json", f).Output()
		cancel()
		if err != nil {
			t.Fatalf("ffprobe %s: %v", seg, err)
		}
		var res struct {
			Streams []struct {
				CodecName string `json:"codec_name"`
				Frames    string `json:"nb_read_frames"`
				Width     int    `json:"width"`
				Height    int    `json:"height"`
			} `json:"streams"`
		}
		if err := json.Unmarshal(out, &res); err != nil || len(res.Streams) != 1 {
			t.Fatalf("ffprobe %s: expected one stream, got %s (%v)", seg, out, err)
		}
		s := res.Streams[0]
		var frames int
		fmt.Sscan(s.Frames, &frames)
		if s.CodecName != tc.codec || frames < tc.minFr || frames > tc.maxFr || s.Width != tc.width || s.Height != tc.height {
			t.Errorf("ffprobe %s: expected %s %dx%d with %d-%d frames, got %s %dx%d with %d frames",
				seg, tc.codec, tc.width, tc.height, tc.minFr, tc.maxFr, s.CodecName, s.Width, s.Height, frames)
		}
	}
}

// TestGohlslibClientPlays plays the stream with gohlslib's client over HTTP
// and checks what it decodes: the sample's SPS, a keyframe first, increasing
// timestamps, and audio alongside.
func TestGohlslibClientPlays(t *testing.T) {
	smp := loadSample(t)
	l := startLive(t, Options{Video: H264, Audio: Opus})

	var mu sync.Mutex
	var aus, keys, opus int
	var lastDTS int64 = -1
	var firstKey *bool
	var trackNames []string
	var order []string
	var sps []byte
	enough := make(chan struct{})
	var once sync.Once

	quiet := func(string) {}
	c := &gohlslib.Client{
		URI:                       l.url("index.m3u8"),
		OnDownloadPrimaryPlaylist: quiet,
		OnDownloadStreamPlaylist:  quiet,
		OnDownloadSegment:         quiet,
		OnDownloadPart:            quiet,
	}
	c.OnTracks = func(tracks []*gohlslib.Track) error {
		for _, tr := range tracks {
			switch cd := tr.Codec.(type) {
			case *codecs.H264:
				trackNames = append(trackNames, "H264")
				c.OnDataH26x(tr, func(_ int64, dts int64, au [][]byte) {
					mu.Lock()
					defer mu.Unlock()
					key := false
					for _, n := range au {
						switch n[0] & 0x1f {
						case naluIDR:
							key = true
						case 7:
							sps = append([]byte(nil), n...)
						}
					}
					if firstKey == nil {
						firstKey = &key
					}
					if dts <= lastDTS {
						order = append(order, fmt.Sprintf("dts %d after %d", dts, lastDTS))
					}
					lastDTS = dts
					aus++
					if key {
						keys++
					}
					if aus >= 45 && opus >= 50 {
						once.Do(func() { close(enough) })
					}
				})
				_ = cd
			case *codecs.Opus:
				trackNames = append(trackNames, "Opus")
				c.OnDataOpus(tr, func(_ int64, packets [][]byte) {
					mu.Lock()
					opus += len(packets)
					mu.Unlock()
				})
			default:
				trackNames = append(trackNames, fmt.Sprintf("%T", tr.Codec))
			}
		}
		return nil
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case <-enough:
	case <-time.After(25 * time.Second):
	}
	c.Close()
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(trackNames, ",") != "H264,Opus" {
		t.Errorf("expected tracks H264,Opus, got %v", trackNames)
	}
	if aus < 45 || opus < 50 {
		t.Fatalf("expected ≥ 45 video frames and ≥ 50 Opus packets within 25 s, got %d and %d (muxer %+v)", aus, opus, l.m.Stats())
	}
	if firstKey == nil || !*firstKey {
		t.Errorf("expected the first frame a player gets to be a keyframe")
	}
	if keys < aus/15-1 {
		t.Errorf("expected a keyframe every 15 frames: %d keyframes in %d frames", keys, aus)
	}
	if !bytes.Equal(sps, smp.sps) {
		t.Errorf("expected the sample's SPS %x, got %x", smp.sps, sps)
	}
	if len(order) > 0 {
		t.Errorf("expected increasing DTS, got %v", order)
	}
	if st := l.m.Stats(); st.Lost != 0 || st.Late != 0 || st.Errors != 0 {
		t.Errorf("expected no loss, late packets or errors on a clean stream, got %+v", st)
	}
}

// feed writes n frames of the sample starting at frame from, with arrival
// times 1/30 s apart from t0, and returns the arrival of the last.
func feed(m *Muxer, p *publisher, n int, t0 time.Time, drop func(i int, pkt *rtp.Packet) bool) time.Time {
	var at time.Time
	for i := 0; i < n; i++ {
		at = t0.Add(time.Duration(p.vi) * time.Second / sampleFPS)
		for _, pkt := range p.nextVideo() {
			if drop != nil && drop(p.vi-1, pkt) {
				continue
			}
			m.WriteRTP(H264, 90000, pkt, at)
		}
	}
	return at
}

func drainSignals(c <-chan struct{}) int {
	n := 0
	for {
		select {
		case <-c:
			n++
		default:
			return n
		}
	}
}

// TestKeyframeWanted drives the muxer with recorded arrival times and checks
// when it asks the hub for a keyframe.
func TestKeyframeWanted(t *testing.T) {
	smp := loadSample(t)
	// A publisher that sends keyframes only when asked: one IDR, then only
	// the P frames of the sample.
	onlyFirstKey := &sample{video: [][]byte{smp.video[0]}, keys: []bool{true}, audio: smp.audio, sps: smp.sps}
	for i, v := range smp.video {
		if !smp.keys[i] {
			onlyFirstKey.video = append(onlyFirstKey.video, v)
			onlyFirstKey.keys = append(onlyFirstKey.keys, false)
		}
	}
	for _, tc := range []struct {
		name   string
		src    *sample
		frames int
		skip   int // frames dropped before feeding (start mid-GOP)
		want   func(t *testing.T, sigs []int, st Stats)
	}{
		{
			name: "before the first keyframe", src: onlyFirstKey, skip: 1, frames: 30,
			want: func(t *testing.T, sigs []int, st Stats) {
				if sigs[0] != 1 {
					t.Errorf("expected a request on the first packet, got %d", sigs[0])
				}
				// 1 s of P frames: one request each 500 ms.
				total := 0
				for _, s := range sigs {
					total += s
				}
				if total < 2 || total > 3 {
					t.Errorf("expected 2-3 requests in 1 s without a keyframe (retry 500ms), got %d", total)
				}
				if st.Frames != 0 || st.DroppedFrames != 30 {
					t.Errorf("expected 30 frames dropped and none packaged, got %+v", st)
				}
			},
		},
		{
			name: "long GOP", src: onlyFirstKey, frames: 45,
			want: func(t *testing.T, sigs []int, st Stats) {
				first := -1
				for i, s := range sigs {
					if s > 0 {
						first = i
						break
					}
				}
				// Frame 0 is the keyframe; the segment is due 1 s (30 frames) later.
				if first != 30 {
					t.Errorf("expected the first request at frame 30 (1 s after the keyframe), got frame %d (%v)", first, sigs)
				}
				if st.Frames != 45 || st.Keyframes != 1 {
					t.Errorf("expected 45 frames with one keyframe packaged, got %+v", st)
				}
			},
		},
		{
			name: "short GOP", src: smp, frames: 45,
			want: func(t *testing.T, sigs []int, st Stats) {
				// Keyframes every 500 ms open a segment every 1 s; a request
				// only comes if the keyframe is late.
				total := 0
				for _, s := range sigs {
					total += s
				}
				if total != 0 {
					t.Errorf("expected no request when keyframes arrive every 500 ms, got %d (%v)", total, sigs)
				}
				if st.Frames != 45 || st.Keyframes != 3 {
					t.Errorf("expected 45 frames, 3 keyframes, got %+v", st)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := New(Options{Video: H264})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			p := newPublisher(tc.src)
			p.vi = tc.skip
			t0 := time.Now()
			sigs := make([]int, tc.frames)
			for i := range sigs {
				feed(m, p, 1, t0, nil)
				sigs[i] = drainSignals(m.KeyframeWanted())
			}
			tc.want(t, sigs, m.Stats())
		})
	}
}

// TestLossWaitsForKeyframe loses one packet of a keyframe: that frame and
// the P frames after it are not packaged until the next keyframe, and the
// muxer asks for one at once.
func TestLossWaitsForKeyframe(t *testing.T) {
	smp := loadSample(t)
	m, err := New(Options{Video: H264})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	p := newPublisher(smp)
	t0 := time.Now()
	feed(m, p, 15, t0, nil) // a GOP: keyframe + 14
	drainSignals(m.KeyframeWanted())
	before := m.Stats()
	n := 0
	// Frame 15, a keyframe of several packets: lose its second packet.
	feed(m, p, 1, t0, func(_ int, pkt *rtp.Packet) bool {
		n++
		return n == 2
	})
	if n < 3 {
		t.Fatalf("expected the keyframe to take ≥ 3 packets, got %d", n)
	}
	// The reorder buffer waits ReorderWait (40 ms) for the missing packet:
	// frame 16 arrives 33 ms later, frame 17 66 ms later.
	if n := drainSignals(m.KeyframeWanted()); n != 0 {
		t.Errorf("expected no keyframe request while the missing packet may still come, got %d", n)
	}
	feed(m, p, 1, t0, nil)
	if n := drainSignals(m.KeyframeWanted()); n != 0 {
		t.Errorf("expected no keyframe request 33 ms after the gap, got %d", n)
	}
	feed(m, p, 1, t0, nil)
	if n := drainSignals(m.KeyframeWanted()); n != 1 {
		t.Errorf("expected a keyframe request once the gap has waited 40 ms, got %d", n)
	}
	feed(m, p, 12, t0, nil) // frames 18-29: P frames
	mid := m.Stats()
	feed(m, p, 1, t0, nil) // frame 30: keyframe
	after := m.Stats()

	if got := mid.Frames - before.Frames; got != 0 {
		t.Errorf("expected no frame packaged between the loss and the next keyframe, got %d", got)
	}
	if got := mid.DroppedFrames - before.DroppedFrames; got != 15 {
		t.Errorf("expected the damaged keyframe and the 14 P frames after it dropped, got %d", got)
	}
	if mid.Lost != 1 {
		t.Errorf("expected one lost packet counted, got %d", mid.Lost)
	}
	if after.Frames != mid.Frames+1 || after.Keyframes != 2 {
		t.Errorf("expected the next keyframe packaged (frames %d→%d, keyframes %d)", mid.Frames, after.Frames, after.Keyframes)
	}
}

func TestDepacketizerModes(t *testing.T) {
	for _, tc := range []struct {
		name    string
		payload [][]byte // one access unit, marker on the last
		want    [][]byte
		wantErr bool
	}{
		{"single", [][]byte{{0x65, 1, 2}}, [][]byte{{0x65, 1, 2}}, false},
		{"STAP-A", [][]byte{{0x18, 0, 2, 0x67, 9, 0, 1, 0x68, 0, 3, 0x65, 7, 7}}, [][]byte{{0x67, 9}, {0x68}, {0x65, 7, 7}}, false},
		{"FU-A", [][]byte{{0x7c, 0x85, 1}, {0x7c, 0x05, 2}, {0x7c, 0x45, 3}}, [][]byte{{0x65, 1, 2, 3}}, false},
		{"FU-A without start", [][]byte{{0x7c, 0x05, 2}, {0x7c, 0x45, 3}}, nil, false},
		{"STAP-A truncated", [][]byte{{0x18, 0, 9, 0x65}}, nil, true},
		{"FU-B", [][]byte{{0x1d, 0x85, 0, 0, 1}}, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got [][]byte
			d := newH264Depacketizer(func(f *frame) { got = append(got, f.nalus...) })
			d.waitKey = false
			var err error
			for i, p := range tc.payload {
				pkt := &rtp.Packet{Header: rtp.Header{SequenceNumber: uint16(i), Timestamp: 90, SSRC: 1, Marker: i == len(tc.payload)-1}, Payload: p}
				if e := d.push(pkt, time.Now()); e != nil {
					err = e
				}
			}
			if (err != nil) != tc.wantErr || (err != nil && !errors.Is(err, errMalformed)) {
				t.Errorf("expected error %v, got %v", tc.wantErr, err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("expected NAL units %v, got %v", tc.want, got)
			}
		})
	}
}

func TestServeErrors(t *testing.T) {
	m, err := New(Options{Video: H264, Audio: Opus, SegmentDuration: time.Second, WaitTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(m)
	defer srv.Close()
	c := &http.Client{Timeout: 5 * time.Second}
	for _, tc := range []struct {
		method, path string
		status       int
		problem      string
	}{
		{"GET", "/index.m3u8", 503, "urn:hedge:problem:hls-stalled"}, // nothing published yet
		{"GET", "/nothing.mp4", 404, "urn:hedge:problem:no-route"},
		{"GET", "/x_video1_part5.mp4", 404, "urn:hedge:problem:no-route"}, // not announced
		{"GET", "/video1_stream.m3u8?_HLS_msn=x", 400, "urn:hedge:problem:bad-request"},
		{"POST", "/index.m3u8", 405, "urn:hedge:problem:method-not-allowed"},
		{"OPTIONS", "/index.m3u8", 204, ""},
	} {
		req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
		req.Header.Set("Origin", "https://player.example")
		req.Header.Set("X-Request-Id", "req-"+tc.method+tc.path)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var p struct {
			Type      string
			RequestID string `json:"request_id"`
		}
		_ = json.Unmarshal(body, &p)
		if resp.StatusCode != tc.status || p.Type != tc.problem || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("%s %s: expected %d %q with CORS, got %d %q (ACAO %q): %s", tc.method, tc.path, tc.status, tc.problem,
				resp.StatusCode, p.Type, resp.Header.Get("Access-Control-Allow-Origin"), body)
		}
		if tc.problem != "" && (p.RequestID != "req-"+tc.method+tc.path || resp.Header.Get("X-Request-Id") != p.RequestID ||
			resp.Header.Get("Content-Type") != "application/problem+json") {
			t.Errorf("%s %s: expected a problem+json carrying request id %q in body and header, got %q, %q, %q", tc.method, tc.path,
				"req-"+tc.method+tc.path, resp.Header.Get("Content-Type"), p.RequestID, resp.Header.Get("X-Request-Id"))
		}
	}
	// Close wakes the requests still blocked in gohlslib and waits for them.
	done := make(chan struct{})
	go func() { _ = m.Close(); _ = m.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return within 5 s")
	}
	resp, err := c.Get(srv.URL + "/index.m3u8")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("after Close: expected 404, got %d", resp.StatusCode)
	}
}

// TestGohlslibErrorsBecomeProblems: what gohlslib answers with a bare
// status reaches the client as a problem with the request's id.
func TestGohlslibErrorsBecomeProblems(t *testing.T) {
	for _, tc := range []struct {
		status int
		want   string
		code   int
	}{
		{0, "no-route", 404},
		{400, "bad-request", 400},
		{500, "internal", 500},
		{404, "internal", 500},
	} {
		rec := &recorder{}
		if tc.status != 0 {
			rec.WriteHeader(tc.status)
		}
		w := httptest.NewRecorder()
		r := httptest.NewRequest("GET", "/live/t1/hls/video1_stream.m3u8", nil)
		r.Header.Set("X-Request-Id", "abc")
		rec.copyTo(w, r)
		var p struct {
			Type      string
			RequestID string `json:"request_id"`
		}
		_ = json.Unmarshal(w.Body.Bytes(), &p)
		if w.Code != tc.code || p.Type != "urn:hedge:problem:"+tc.want || p.RequestID != "abc" || w.Header().Get("X-Request-Id") != "abc" {
			t.Errorf("gohlslib status %d: expected %d %s with request id abc, got %d %q id %q/%q: %s", tc.status, tc.code, tc.want,
				w.Code, p.Type, p.RequestID, w.Header().Get("X-Request-Id"), w.Body)
		}
	}
}

func TestCloseLeavesNoGoroutine(t *testing.T) {
	before := runtime.NumGoroutine()
	l := startLive(t, Options{Video: H264, Audio: Opus})
	videoURI, _ := mediaPlaylists(t, l)
	pl := waitSegments(t, l, videoURI, 1)
	// Park blocked requests in the muxer, then close under them.
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u := fmt.Sprintf("%s?_HLS_msn=%d&_HLS_part=0", l.url(videoURI), pl.MediaSequence+len(pl.Segments)+1)
			if resp, err := http.Get(u); err == nil {
				resp.Body.Close()
			}
		}()
	}
	time.Sleep(100 * time.Millisecond)
	l.stop()
	wg.Wait()
	http.DefaultClient.CloseIdleConnections()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Errorf("expected ≤ %d goroutines after Close, got %d:\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
}

func TestOptions(t *testing.T) {
	for _, tc := range []struct {
		o       Options
		wantErr bool
	}{
		{Options{Video: H264}, false},
		{Options{Audio: Opus}, false},
		{Options{Video: H264, Audio: Opus, PartDuration: 250 * time.Millisecond, SegmentDuration: 2 * time.Second, SegmentCount: 10}, false},
		{Options{}, true},
		{Options{Video: VP8}, true},
		{Options{Video: Opus}, true},
		{Options{Audio: H264}, true},
		{Options{Video: H264, PartDuration: 50 * time.Millisecond}, true},
		{Options{Video: H264, SegmentDuration: 3 * time.Second}, true},
		{Options{Video: H264, SegmentCount: 3}, true},
		{Options{Video: H264, PartDuration: time.Second, SegmentDuration: time.Second}, true},
	} {
		m, err := New(tc.o)
		if (err != nil) != tc.wantErr {
			t.Errorf("New(%+v): expected error %v, got %v", tc.o, tc.wantErr, err)
		}
		if m != nil {
			_ = m.Close()
		}
	}
}

// BenchmarkWriteRTP measures the packaging cost per RTP packet of a 30 fps
// video + 50 packet/s audio stream.
func BenchmarkWriteRTP(b *testing.B) {
	smp := loadSample(b)
	p := newPublisher(smp)
	// Pre-packetize two loops; timestamps continue across iterations by
	// offsetting them.
	type ev struct {
		codec Codec
		rate  uint32
		pkt   *rtp.Packet
		at    time.Duration
	}
	var evs []ev
	var bytesPerLoop int
	for i := 0; i < len(smp.video); i++ {
		at := time.Duration(i) * time.Second / sampleFPS
		for _, pkt := range p.nextVideo() {
			evs = append(evs, ev{H264, 90000, pkt, at})
			bytesPerLoop += len(pkt.Payload)
		}
		for time.Duration(p.ai)*20*time.Millisecond <= at {
			for _, pkt := range p.nextAudio() {
				evs = append(evs, ev{Opus, 48000, pkt, at})
				bytesPerLoop += len(pkt.Payload)
			}
		}
	}
	loopDur := time.Duration(len(smp.video)) * time.Second / sampleFPS
	nv, na := 0, 0
	for _, e := range evs {
		if e.codec == H264 {
			nv++
		} else {
			na++
		}
	}
	m, err := New(Options{Video: H264, Audio: Opus})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	t0 := time.Now()
	var pkt rtp.Packet
	b.ReportAllocs()
	b.SetBytes(int64(bytesPerLoop / len(evs)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		loop, e := i/len(evs), evs[i%len(evs)]
		pkt = *e.pkt
		// Continue sequence numbers and timestamps across loops.
		if e.codec == H264 {
			pkt.SequenceNumber += uint16(loop * nv)
			pkt.Timestamp += uint32(loop * len(smp.video) * videoTicksPerAU)
		} else {
			pkt.SequenceNumber += uint16(loop * na)
			pkt.Timestamp += uint32(loop * na * opusTicksPerFrame)
		}
		m.WriteRTP(e.codec, e.rate, &pkt, t0.Add(time.Duration(loop)*loopDur+e.at))
	}
	b.StopTimer()
	if st := m.Stats(); st.Lost != 0 || st.Errors != 0 || st.Late != 0 {
		b.Fatalf("benchmark stream should be clean, got %+v", st)
	}
}
