package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"
)

const h264Fmtp = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"

var (
	videoCodec = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000, SDPFmtpLine: h264Fmtp,
		RTCPFeedback: []webrtc.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}}}
	audioCodec = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"}
)

// newAPI is a pion API for the benchmark's publisher: loopback UDP only, no
// mDNS, pion's default interceptors (NACK responder, reports, TWCC), as a
// studio encoder has. (Viewers send no NACKs: a lost packet stays lost.)
func newAPI() (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: videoCodec, PayloadType: 102}, webrtc.RTPCodecTypeVideo); err != nil {
		return nil, err
	}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: audioCodec, PayloadType: 111}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, err
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		return nil, err
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), nil
}

// localOffer creates pc's offer with its candidates gathered.
func localOffer(pc *webrtc.PeerConnection) (string, error) {
	off, err := pc.CreateOffer(nil)
	if err != nil {
		return "", err
	}
	g := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(off); err != nil {
		return "", err
	}
	select {
	case <-g:
	case <-time.After(5 * time.Second):
		return "", fmt.Errorf("ICE gathering timed out")
	}
	return pc.LocalDescription().SDP, nil
}

var httpClient = &http.Client{
	Timeout:   15 * time.Second,
	Transport: &http.Transport{MaxIdleConnsPerHost: 16, IdleConnTimeout: 30 * time.Second},
}

// resource is a WHIP or WHEP session's Location (absolute) and the bearer
// token that controls it: the session token of a WHEP 201, or the studio
// token that created a WHIP session.
type resource struct{ location, token string }

// postSDP sends an offer to a WHIP or WHEP endpoint and returns the answer
// and the session's resource.
func postSDP(ctx context.Context, url, token, offer string) (answer string, res resource, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader([]byte(offer)))
	if err != nil {
		return "", res, err
	}
	req.Header.Set("Content-Type", "application/sdp")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return "", res, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusCreated {
		return "", res, fmt.Errorf("POST %s: %d %s", url, resp.StatusCode, bytes.TrimSpace(body))
	}
	loc, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
	if err != nil {
		return "", res, err
	}
	res = resource{location: loc.String(), token: token}
	if t := resp.Header.Get("Session-Token"); t != "" {
		res.token = t
	}
	return string(body), res, nil
}

// deleteSession ends a WHIP/WHEP session (errors ignored: the peer
// connection is closed anyway).
func deleteSession(r resource) {
	if r.location == "" {
		return
	}
	req, err := http.NewRequest(http.MethodDelete, r.location, nil)
	if err != nil {
		return
	}
	if r.token != "" {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	if resp, err := httpClient.Do(req); err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}
