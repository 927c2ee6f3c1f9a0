package drill

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"

	"hedge/internal/h264"
	playjson "hedge/stream/player"
)

// studioH264 is a short H.264 clip (constrained baseline, a keyframe at
// its start) that each studio publishes in a loop at 30 fps.
//
//go:embed studio.h264
var studioH264 []byte

const studioFmtp = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"

// studio publishes one live table over WHIP to one edge, as a studio's
// encoder does, and publishes again when its session fails (its edge or
// region lost) to an edge DNS names. An edge relays tables from other
// regions only, so a table is published to every edge of its region: one
// studio each.
type studio struct {
	d     *deployment
	table string
	first string // the edge it publishes to first
	index int    // among its table's studios: where it starts among DNS's edges

	mu       sync.Mutex
	sessions []studioSession
}

type studioSession struct {
	Edge  string    `json:"edge"`
	Start time.Time `json:"start"`
	Err   string    `json:"error,omitempty"`
}

func (s *studio) run(stop <-chan struct{}) {
	aus := h264.AccessUnits(studioH264)
	edge := s.first
	var next []string
	for {
		held, err := s.publish(stop, edge, aus)
		select {
		case <-stop:
			return
		default:
		}
		s.mu.Lock()
		s.sessions = append(s.sessions, studioSession{Edge: edge, Start: time.Now(), Err: shortErr(err)})
		s.mu.Unlock()
		time.Sleep(300 * time.Millisecond)
		if held {
			next = nil // a session ended: ask DNS afresh
		}
		if len(next) == 0 {
			next = s.candidates(edge)
		}
		if len(next) > 0 {
			edge, next = next[0], next[1:]
		}
	}
}

// candidates are the edges DNS names, the failed one last, rotated so the
// studios of one table spread over them.
func (s *studio) candidates(failed string) []string {
	for _, n := range s.d.dns {
		ips, _, err := resolve(net.JoinHostPort(n.IP, fmt.Sprint(portDNS)), s.d.playName(), 400*time.Millisecond)
		if err != nil {
			continue
		}
		var out []string
		for i := range ips {
			if ip := ips[(i+s.index)%len(ips)]; ip != failed {
				out = append(out, ip)
			}
		}
		return append(out, failed)
	}
	return nil
}

// publish holds one WHIP session until it fails or stop closes; held says
// whether the session was established.
func (s *studio) publish(stop <-chan struct{}, edge string, aus [][]byte) (held bool, err error) {
	pc, err := s.d.newPeerConnection()
	if err != nil {
		return false, err
	}
	defer pc.Close()
	failed := make(chan struct{})
	var once sync.Once
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		if st == webrtc.PeerConnectionStateFailed || st == webrtc.PeerConnectionStateDisconnected || st == webrtc.PeerConnectionStateClosed {
			once.Do(func() { close(failed) })
		}
	})
	video, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
		SDPFmtpLine: studioFmtp}, "video", "studio")
	if err != nil {
		return false, err
	}
	tc, err := pc.AddTransceiverFromTrack(video, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	if err != nil {
		return false, err
	}
	go func() {
		for {
			if _, _, err := tc.Sender().ReadRTCP(); err != nil {
				return
			}
		}
	}()
	url := "https://" + net.JoinHostPort(edge, fmt.Sprint(portEdge)) + "/live/" + s.table + "/whip"
	if _, err := negotiate(pc, s.d.httpTo(edge), "WHIP", url, func(req *http.Request) {
		req.Host = s.d.playName()
		req.Header.Set("Authorization", "Bearer "+s.d.tokens.Studio)
	}); err != nil {
		return false, err
	}
	s.mu.Lock()
	s.sessions = append(s.sessions, studioSession{Edge: edge, Start: time.Now()})
	s.mu.Unlock()
	tick := time.NewTicker(time.Second / 30)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-stop:
			return true, nil
		case <-failed:
			return true, errors.New("session " + pc.ConnectionState().String())
		case <-tick.C:
		}
		_ = video.WriteSample(media.Sample{Data: aus[i%len(aus)], Duration: time.Second / 30})
	}
}

// viewer watches a live table as the player page does: it resolves
// play.<zone>, reads the table's play.json from that edge, watches over
// WebRTC (WHEP) when play.json prefers it, and falls back to LL-HLS when
// WHEP fails (offer refused, ICE/DTLS not connected within a few seconds,
// or no video for 2 s), trying WHEP again after 5 s, then 10, 20, 30 while
// LL-HLS keeps playing; the first WHEP video packet takes over. It records
// when new media arrived and over which transport, and re-resolves after a
// connection failure.
type viewer struct {
	id        int
	table     string
	resolvers []string
	d         *deployment

	ip        atomic.Pointer[string]
	transport *http.Transport
	client    *http.Client
	mode      atomic.Uint32 // the transport it watches over now

	mu       sync.Mutex
	expires  time.Time
	progress []arrival // new LL-HLS parts and WHEP video packets (at most one per arrivalGrain)
	errors   int
	whep     int // WHEP sessions that played
	whepFail int // WHEP attempts or sessions that failed
}

// transport is how a viewer receives a table.
type transport uint8

const (
	viaHLS transport = iota
	viaWebRTC
)

func (t transport) String() string {
	if t == viaWebRTC {
		return "WebRTC"
	}
	return "LL-HLS"
}

// arrival is when new media came, and over which transport.
type arrival struct {
	At  time.Time
	Via transport
}

// arrivalGrain bounds how often WHEP packets are recorded: a gap is
// measured at most this much longer than it was.
const arrivalGrain = 20 * time.Millisecond

func newViewer(d *deployment, id int, table string, resolvers []string) *viewer {
	v := &viewer{id: id, table: table, resolvers: resolvers, d: d}
	v.transport = d.edgeTransport(&v.ip, 2)
	v.client = &http.Client{Transport: v.transport, Timeout: 3 * time.Second}
	return v
}

func (v *viewer) lookup(avoid string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, srv := range v.resolvers {
		ips, ttl, err := resolve(srv, v.d.playName(), 400*time.Millisecond)
		if err != nil {
			continue
		}
		v.expires = time.Now().Add(ttl)
		if cur := v.ip.Load(); cur != nil && *cur != avoid && contains(ips, *cur) {
			return
		}
		ip := ips[v.id%len(ips)]
		for _, x := range ips {
			if x != avoid && len(ips) > 1 && ip == avoid {
				ip = x
			}
		}
		v.ip.Store(&ip)
		v.transport.CloseIdleConnections()
		return
	}
}

// resolveIfDue resolves when it has no answer or its TTL has passed.
func (v *viewer) resolveIfDue() {
	v.mu.Lock()
	due := v.ip.Load() == nil || time.Now().After(v.expires)
	v.mu.Unlock()
	if due {
		v.lookup("")
	}
}

func (v *viewer) edge() string {
	if ip := v.ip.Load(); ip != nil {
		return *ip
	}
	return ""
}

func (v *viewer) get(path string) ([]byte, int, error) {
	req, _ := http.NewRequest(http.MethodGet, "https://"+v.d.playName()+":"+strconv.Itoa(portEdge)+path, nil)
	resp, err := v.client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return b, resp.StatusCode, err
}

// arrived records new media over via.
func (v *viewer) arrived(via transport) {
	now := time.Now()
	v.mu.Lock()
	if n := len(v.progress); n == 0 || v.progress[n-1].Via != via || now.Sub(v.progress[n-1].At) >= arrivalGrain {
		v.progress = append(v.progress, arrival{At: now, Via: via})
	}
	v.mu.Unlock()
}

// WHEP retry delays after a fallback, as the player page's.
const (
	whepRetryMin = 5 * time.Second
	whepRetryMax = 30 * time.Second
)

// run watches until stop closes.
func (v *viewer) run(stop <-chan struct{}) {
	var hls chan struct{} // closes the LL-HLS fallback; nil when not running
	var hlsDone sync.WaitGroup
	stopHLS := func() {
		if hls != nil {
			close(hls)
			hlsDone.Wait()
			hls = nil
		}
	}
	defer stopHLS()
	retry := whepRetryMin
	for {
		select {
		case <-stop:
			return
		default:
		}
		v.resolveIfDue()
		edge := v.edge()
		desc, err := v.descriptor()
		if err != nil {
			v.failed(err, edge)
		}
		if err == nil && desc.WHEP != "" && desc.Preferred == playjson.ModeWebRTC {
			played, err := v.watchWHEP(stop, desc.WHEP, stopHLS)
			select {
			case <-stop:
				return
			default:
			}
			if played {
				retry = whepRetryMin
			}
			v.mu.Lock()
			v.whepFail++
			v.mu.Unlock()
			v.failed(err, edge)
		}
		if hls == nil {
			hls = make(chan struct{})
			base := "/live/" + v.table + "/hls/index.m3u8"
			if err == nil && desc.HLS != "" {
				base = desc.HLS
			}
			q := hls
			hlsDone.Go(func() { v.watchHLS(stop, q, base) })
		}
		v.mode.Store(uint32(viaHLS))
		select {
		case <-stop:
			return
		case <-time.After(retry):
		}
		retry = min(2*retry, whepRetryMax)
	}
}

// descriptor is the table's play.json at the viewer's edge.
func (v *viewer) descriptor() (playjson.Descriptor, error) {
	var desc playjson.Descriptor
	b, st, err := v.get("/live/" + v.table + "/play.json")
	if err != nil {
		return desc, err
	}
	if st != http.StatusOK {
		return desc, fmt.Errorf("play.json answered %d", st)
	}
	return desc, json.Unmarshal(b, &desc)
}

// newPeerConnection makes a peer connection of the drill's WebRTC clients
// (studios and viewers) with the default codecs and these ICE settings:
// UDP over IPv4 from the address the drill's process has on the WAN (or
// loopback), no mDNS, failure noticed within seconds.
func (d *deployment) newPeerConnection() (*webrtc.PeerConnection, error) {
	se := webrtc.SettingEngine{}
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	if d.topo.Loopback {
		se.SetIncludeLoopbackCandidate(true)
		se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	} else {
		want := net.ParseIP(d.topo.WANIP())
		se.SetIPFilter(func(ip net.IP) bool { return ip.Equal(want) })
	}
	se.SetICETimeouts(2*time.Second, 4*time.Second, 500*time.Millisecond)
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		return nil, err
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
}

// negotiate is WHIP's and WHEP's offer/answer: it posts pc's offer, its
// ICE candidates gathered, to url with client (prepare, unless nil, adds
// what the protocol needs to the request) and takes the 201 answer as
// pc's remote description. It returns the answer's header (WHEP's session
// Location) once the resource was created, even when the answer could not
// be applied, so that the caller can delete it.
func negotiate(pc *webrtc.PeerConnection, client *http.Client, what, url string, prepare func(*http.Request)) (http.Header, error) {
	if err := offerGathered(pc); err != nil {
		return nil, err
	}
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(pc.LocalDescription().SDP))
	req.Header.Set("Content-Type", "application/sdp")
	if prepare != nil {
		prepare(req)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return nil, fmt.Errorf("%s answered %d: %s", what, resp.StatusCode, bytes.TrimSpace(body))
	}
	return resp.Header, pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(body)})
}

// WHEP session limits: ICE and DTLS must connect within whepConnect, and
// video must keep coming (no gap over whepSilence).
const (
	whepConnect = 4 * time.Second
	whepSilence = 2 * time.Second
)

// watchWHEP plays one WHEP session at the viewer's edge until it fails or
// stop closes. Its first video packet takes over from LL-HLS (takeover
// stops it). played says whether video came; the error says why it
// ended.
func (v *viewer) watchWHEP(stop <-chan struct{}, url string, takeover func()) (played bool, err error) {
	pc, err := v.d.newPeerConnection()
	if err != nil {
		return false, err
	}
	var readers sync.WaitGroup
	defer readers.Wait()
	defer pc.Close()
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			return false, err
		}
	}
	connected, failed := make(chan struct{}), make(chan struct{})
	var onceC, onceF sync.Once
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		switch st {
		case webrtc.PeerConnectionStateConnected:
			onceC.Do(func() { close(connected) })
		case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateDisconnected, webrtc.PeerConnectionStateClosed:
			onceF.Do(func() { close(failed) })
		}
	})
	var last atomic.Int64 // unix nanoseconds of the last video packet, 0 before
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		readers.Add(1)
		defer readers.Done()
		video := tr.Kind() == webrtc.RTPCodecTypeVideo
		for {
			if _, _, err := tr.ReadRTP(); err != nil {
				return
			}
			if video {
				last.Store(time.Now().UnixNano())
				if v.mode.Load() == uint32(viaWebRTC) {
					v.arrived(viaWebRTC)
				}
			}
		}
	})
	header, err := negotiate(pc, v.client, "WHEP", "https://"+v.d.playName()+":"+strconv.Itoa(portEdge)+url, nil)
	if header != nil {
		defer v.endWHEP(header.Get("Location"), header.Get("Session-Token"))
	}
	if err != nil {
		return false, err
	}
	select {
	case <-stop:
		return false, nil
	case <-failed:
		return false, errors.New("WHEP session " + pc.ConnectionState().String())
	case <-connected:
	case <-time.After(whepConnect):
		return false, errors.New("WHEP: ICE/DTLS not connected within " + whepConnect.String())
	}
	start := time.Now()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return played, nil
		case <-failed:
			return played, errors.New("WHEP session " + pc.ConnectionState().String())
		case <-tick.C:
		}
		at := last.Load()
		if at == 0 {
			if time.Since(start) > whepSilence {
				return false, errors.New("WHEP: no video within " + whepSilence.String())
			}
			continue
		}
		if !played {
			played = true
			takeover()
			v.mode.Store(uint32(viaWebRTC))
			v.arrived(viaWebRTC)
			v.mu.Lock()
			v.whep++
			v.mu.Unlock()
		}
		if time.Since(time.Unix(0, at)) > whepSilence {
			return true, errors.New("WHEP: no video for " + whepSilence.String())
		}
	}
}

// endWHEP deletes a WHEP session (best effort: its edge may be gone).
func (v *viewer) endWHEP(location, token string) {
	if location == "" {
		return
	}
	if !strings.HasPrefix(location, "/") {
		return // only the edge's own paths
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodDelete, "https://"+v.d.playName()+":"+strconv.Itoa(portEdge)+location, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if resp, err := v.client.Do(req); err == nil {
		resp.Body.Close()
	}
}

// watchHLS watches over LL-HLS from the multivariant playlist at master
// until stop or quit closes: it reloads the media playlist and fetches
// each new part.
func (v *viewer) watchHLS(stop <-chan struct{}, quit <-chan struct{}, master string) {
	base := master[:strings.LastIndexByte(master, '/')+1]
	media := ""
	last := ""
	for {
		select {
		case <-stop:
			return
		case <-quit:
			return
		case <-time.After(200 * time.Millisecond):
		}
		v.resolveIfDue()
		edge := v.edge()
		if media == "" {
			b, st, err := v.get(master)
			if err != nil || st != http.StatusOK {
				v.failed(err, edge)
				continue
			}
			media = firstURI(b)
			if media == "" {
				continue
			}
		}
		b, st, err := v.get(base + media)
		if err != nil || st != http.StatusOK {
			v.failed(err, edge)
			media = "" // another edge's packager may name it otherwise
			continue
		}
		part := lastPart(b)
		if part == "" || part == last {
			continue
		}
		if _, st, err := v.get(base + part); err != nil || st != http.StatusOK {
			v.failed(err, edge)
			continue
		}
		last = part
		v.arrived(viaHLS)
	}
}

func (v *viewer) failed(err error, edge string) {
	v.mu.Lock()
	v.errors++
	v.mu.Unlock()
	if err != nil {
		v.lookup(edge)
	}
}

// firstURI is the first media playlist a multivariant playlist names.
func firstURI(playlist []byte) string {
	s := bufio.NewScanner(bytes.NewReader(playlist))
	for s.Scan() {
		if line := strings.TrimSpace(s.Text()); line != "" && !strings.HasPrefix(line, "#") {
			return line
		}
	}
	return ""
}

// lastPart is the URI of the newest part (or segment) of a media playlist.
func lastPart(playlist []byte) string {
	last := ""
	s := bufio.NewScanner(bytes.NewReader(playlist))
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		if strings.HasPrefix(line, "#EXT-X-PART:") {
			if i := strings.Index(line, `URI="`); i >= 0 {
				if j := strings.IndexByte(line[i+5:], '"'); j >= 0 {
					last = line[i+5 : i+5+j]
				}
			}
		} else if line != "" && !strings.HasPrefix(line, "#") {
			last = line
		}
	}
	return last
}

// video is a run's live tables: a studio per region and the viewers.
type video struct {
	studios []*studio
	viewers []*viewer
	stop    chan struct{}
	wg      sync.WaitGroup
	once    sync.Once
}

// startVideo has a studio publish a table to the first edge of each region,
// waits until each table's LL-HLS has parts at that edge, and starts
// cfg.Viewers viewers, spread over the tables, each asking its own
// region's DNS server first.
func (d *deployment) startVideo(ctx context.Context) (*video, error) {
	v := &video{stop: make(chan struct{})}
	if d.cfg.Viewers == 0 {
		return v, nil
	}
	var firsts []node // each studio's first edge
	index := map[string]int{}
	for _, e := range d.edges {
		s := &studio{d: d, table: "table-" + e.Region, first: e.IP, index: index[e.Region]}
		index[e.Region]++
		firsts = append(firsts, e)
		v.studios = append(v.studios, s)
		v.wg.Go(func() { s.run(v.stop) })
	}
	// Ready: the origin edge serves parts of its table.
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for i, s := range v.studios {
		probe := newViewer(d, 0, s.table, nil)
		probe.ip.Store(&firsts[i].IP)
		probe.expires = time.Now().Add(time.Hour)
		for {
			b, st, err := probe.get("/live/" + s.table + "/hls/index.m3u8")
			if err == nil && st == http.StatusOK {
				if m, st2, err2 := probe.get("/live/" + s.table + "/hls/" + firstURI(b)); err2 == nil && st2 == http.StatusOK && lastPart(m) != "" {
					break
				}
			}
			select {
			case <-ctx.Done():
				v.close()
				s.mu.Lock()
				sessions := fmt.Sprint(s.sessions)
				s.mu.Unlock()
				return nil, fmt.Errorf("live table %s never had LL-HLS parts at %s (studio sessions: %s; last answer %d %v)", s.table, firsts[i].Name, sessions, st, err)
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	for i := range d.cfg.Viewers {
		near := i % len(d.dns)
		var resolvers []string
		for k := range d.dns {
			n := d.dns[(near+k)%len(d.dns)]
			resolvers = append(resolvers, net.JoinHostPort(n.IP, fmt.Sprint(portDNS)))
		}
		vw := newViewer(d, i, "table-"+d.cfg.Regions[(i/len(d.dns))%len(d.cfg.Regions)].Name, resolvers)
		v.viewers = append(v.viewers, vw)
		v.wg.Go(func() { vw.run(v.stop) })
	}
	return v, nil
}

// close stops the studios and viewers and waits for them; safe twice.
func (v *video) close() {
	v.once.Do(func() { close(v.stop) })
	v.wg.Wait()
}

// offerGathered sets an offer as pc's local description and waits (up to
// 3 s) until its ICE candidates are gathered, so the SDP carries them.
func offerGathered(pc *webrtc.PeerConnection) error {
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return err
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		return err
	}
	select {
	case <-gathered:
		return nil
	case <-time.After(3 * time.Second):
		return errors.New("ICE gathering timed out")
	}
}
