package stream

import (
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/logging"
	"github.com/pion/webrtc/v4"
)

// ICE configures how peers reach this node.
type ICE struct {
	// UDP is the one UDP address (host:port) every session of the node
	// shares (ICE UDP mux). Port 0 picks a free port (tests).
	UDP string
	// TCP, when set, is a passive ICE-TCP listener (host:port) shared the
	// same way, for clients whose networks block UDP.
	TCP string
	// NAT1To1IPs replace the host candidates' addresses (a cloud host
	// behind 1:1 NAT advertises its public address).
	NAT1To1IPs []string
	// Servers are the STUN/TURN servers handed to clients in Link headers.
	Servers []ICEServer
	// Loopback allows loopback candidates (tests and the loopback demo).
	Loopback bool
}

// ICEServer is one STUN or TURN server for clients.
type ICEServer struct {
	URLs       []string
	Username   string
	Credential string
}

// engine is the node's WebRTC stack: one UDP mux (and TCP mux) shared by
// every PeerConnection, and the APIs publishers and viewers are built from.
type engine struct {
	udpConn net.PacketConn
	out     *sendBatcher // udpConn, batching fan-outs
	udp     *trackedMux
	tcpLn   net.Listener
	tcp     ice.TCPMux
	se      webrtc.SettingEngine
	pub     *webrtc.API
}

func newEngine(cfg ICE, lf logging.LoggerFactory) (*engine, error) {
	e := &engine{}
	pc, err := net.ListenPacket("udp", cfg.UDP)
	if err != nil {
		return nil, fmt.Errorf("ice udp %s: %w", cfg.UDP, err)
	}
	e.udpConn = pc
	e.out = newSendBatcher(pc.(*net.UDPConn))
	e.udp = &trackedMux{UDPMux: webrtc.NewICEUDPMux(lf.NewLogger("ice-udp"), e.out), ufrags: map[string]struct{}{}}
	se := webrtc.SettingEngine{LoggerFactory: lf}
	se.SetICEUDPMux(e.udp)
	networks := []webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6}
	if cfg.TCP != "" {
		ln, err := net.Listen("tcp", cfg.TCP)
		if err != nil {
			_ = e.udp.Close()
			return nil, fmt.Errorf("ice tcp %s: %w", cfg.TCP, err)
		}
		e.tcpLn = ln
		e.tcp = webrtc.NewICETCPMux(lf.NewLogger("ice-tcp"), ln, 32)
		se.SetICETCPMux(e.tcp)
		networks = append(networks, webrtc.NetworkTypeTCP4, webrtc.NetworkTypeTCP6)
	}
	se.SetNetworkTypes(networks)
	// A studio or viewer whose path died is noticed within seconds, so
	// reconnects and relay retries start soon.
	se.SetICETimeouts(4*time.Second, 10*time.Second, 2*time.Second)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIncludeLoopbackCandidate(cfg.Loopback)
	if len(cfg.NAT1To1IPs) > 0 {
		if err := se.SetICEAddressRewriteRules(webrtc.ICEAddressRewriteRule{
			External: cfg.NAT1To1IPs, AsCandidateType: webrtc.ICECandidateTypeHost,
		}); err != nil {
			e.close()
			return nil, fmt.Errorf("nat 1:1 ips: %w", err)
		}
	}
	e.se = se

	m := &webrtc.MediaEngine{}
	if err := registerCodecs(m); err != nil {
		e.close()
		return nil, err
	}
	ir := &interceptor.Registry{}
	// Publishers get NACKs for what they lost on the way in, receiver
	// reports and TWCC feedback so their congestion control works.
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		e.close()
		return nil, err
	}
	e.pub = webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
	return e, nil
}

// viewerAPI builds the API of one viewer: only the stream's codecs, sender
// reports, and no per-viewer NACK buffer (the stream's cache answers NACKs).
func (e *engine) viewerAPI(codecs []webrtc.RTPCodecCapability) (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	for _, c := range codecs {
		kind, pt, fb := webrtc.RTPCodecTypeVideo, webrtc.PayloadType(102), videoFeedback
		if equalFoldASCII(c.MimeType, webrtc.MimeTypeOpus) {
			kind, pt, fb = webrtc.RTPCodecTypeAudio, 111, audioFeedback
		}
		c.RTCPFeedback = fb
		if err := m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: c, PayloadType: pt}, kind); err != nil {
			return nil, err
		}
	}
	ir := &interceptor.Registry{}
	if err := webrtc.ConfigureRTCPReports(ir); err != nil {
		return nil, err
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(e.se)), nil
}

func (e *engine) close() {
	if e.udp != nil {
		_ = e.udp.Close()
	}
	if e.udpConn != nil {
		_ = e.udpConn.Close()
	}
	if e.tcp != nil {
		_ = e.tcp.Close()
	}
	if e.tcpLn != nil {
		_ = e.tcpLn.Close()
	}
}

var (
	videoFeedback = []webrtc.RTCPFeedback{
		{Type: webrtc.TypeRTCPFBNACK}, {Type: webrtc.TypeRTCPFBNACK, Parameter: "pli"},
		{Type: webrtc.TypeRTCPFBCCM, Parameter: "fir"}, {Type: webrtc.TypeRTCPFBTransportCC},
	}
	audioFeedback = []webrtc.RTCPFeedback{{Type: webrtc.TypeRTCPFBTransportCC}}
)

// supportedCodecs are what publishers may send, in order of preference:
// H.264 (the profiles browsers and encoders offer, packetization mode 1),
// VP8, and Opus.
func supportedCodecs() []webrtc.RTPCodecParameters {
	h264 := func(pt webrtc.PayloadType, profile string) webrtc.RTPCodecParameters {
		return webrtc.RTPCodecParameters{PayloadType: pt, RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine:  "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=" + profile,
			RTCPFeedback: videoFeedback,
		}}
	}
	return []webrtc.RTPCodecParameters{
		h264(102, "42e01f"), h264(104, "42001f"), h264(106, "4d001f"), h264(108, "640032"), h264(112, "64001f"),
		{PayloadType: 96, RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000, RTCPFeedback: videoFeedback}},
		{PayloadType: 111, RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1", RTCPFeedback: audioFeedback}},
	}
}

// registerCodecs registers the codecs publishers may send.
func registerCodecs(m *webrtc.MediaEngine) error {
	for _, c := range supportedCodecs() {
		kind := webrtc.RTPCodecTypeVideo
		if equalFoldASCII(c.MimeType, webrtc.MimeTypeOpus) {
			kind = webrtc.RTPCodecTypeAudio
		}
		if err := m.RegisterCodec(c, kind); err != nil {
			return err
		}
	}
	return nil
}

// trackedMux counts the ICE UDP mappings (one per session's ICE username
// fragment) so tests can prove none outlives its session.
type trackedMux struct {
	ice.UDPMux
	mu     sync.Mutex
	ufrags map[string]struct{}
}

func (t *trackedMux) GetConn(ufrag string, addr net.Addr) (net.PacketConn, error) {
	c, err := t.UDPMux.GetConn(ufrag, addr)
	if err == nil {
		t.mu.Lock()
		t.ufrags[ufrag] = struct{}{}
		t.mu.Unlock()
	}
	return c, err
}

func (t *trackedMux) RemoveConnByUfrag(ufrag string) {
	t.UDPMux.RemoveConnByUfrag(ufrag)
	t.mu.Lock()
	delete(t.ufrags, ufrag)
	t.mu.Unlock()
}

func (t *trackedMux) mappings() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.ufrags)
}
