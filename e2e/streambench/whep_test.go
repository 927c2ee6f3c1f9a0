package main

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/valyala/fasthttp"

	"hedge/configs"
	"hedge/stream"
	"hedge/stream/streamtest"
)

// The measuring viewer joins a real node's stream over WHEP (ICE, DTLS,
// SRTP without a PeerConnection), decrypts what the studio sends, in
// order, and leaves: the node ends its session.
func TestPeerWatchesNode(t *testing.T) {
	srv, err := stream.NewServer(stream.Options{
		// The settings of a node's stream server the test relies on, as
		// the configuration gives them (the others may stay zero here).
		Prefix: "/live/", MaxBodyBytes: configs.DefaultStreamMaxBodyBytes, MediaTimeout: configs.DefaultStreamMediaTimeout,
		ConnectTimeout: configs.DefaultStreamConnectTimeout, Relay: stream.RelayOptions{ReadyTimeout: configs.DefaultStreamRelayReadyTimeout},
		ICE:     stream.ICE{UDP: "127.0.0.1:0", Loopback: true},
		Studios: []stream.Studio{{Name: "demo", Token: "demo-studio", Streams: []string{"*"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { srv.Handle(ctx, []byte("req-1"), netip.Addr{}) }}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { _ = hs.Shutdown(); _ = srv.Close() })
	base := "http://" + ln.Addr().String() + "/live/t1/"

	pub := streamtest.NewPublisher(t, streamtest.DefaultAPI(t))
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	answer, _, err := postSDP(ctx, base+"whip", "demo-studio", streamtest.Offer(t, pub.PC))
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.PC.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
	pub.Send(1)

	var (
		mu       sync.Mutex
		counters []uint32
		audio    int
	)
	got := make(chan struct{})
	var once sync.Once
	p, err := newPeer(func(b []byte, _ time.Time) {
		var pkt rtp.Packet
		if pkt.Unmarshal(b) != nil || len(pkt.Payload) < 4 {
			t.Errorf("undecodable packet of %d bytes", len(b))
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if len(pkt.Payload) == 40 {
			audio++
			return
		}
		counters = append(counters, binary.BigEndian.Uint32(pkt.Payload))
		if len(counters) == 50 {
			once.Do(func() { close(got) })
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	offer, err := p.offer()
	if err != nil {
		t.Fatal(err)
	}
	answer, sess, err := postSDP(ctx, base+"whep", "", offer)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.answer(answer); err != nil {
		t.Fatal(err)
	}
	if err := p.start(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-got:
	case <-time.After(10 * time.Second):
		mu.Lock()
		t.Fatalf("50 video packets expected within 10 s, got %d (and %d audio)", len(counters), audio)
	}
	mu.Lock()
	for i := 1; i < len(counters); i++ {
		if counters[i] != counters[i-1]+1 {
			t.Errorf("video counters out of order or missing: %d after %d", counters[i], counters[i-1])
		}
	}
	if audio == 0 {
		t.Error("no audio packet decrypted")
	}
	mu.Unlock()
	if st := srv.Stats(); st.Viewers != 1 {
		t.Fatalf("node counts %d viewers, want 1", st.Viewers)
	}
	deleteSession(sess)
	p.close()
	deadline := time.Now().Add(5 * time.Second)
	for srv.Stats().Viewers != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("node still counts %d viewers after the peer left", srv.Stats().Viewers)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
