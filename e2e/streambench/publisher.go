package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// publisher is the studio: one WHIP session sending the synthesized stream
// in real time. It keeps the send time of every packet, so the harness can
// ask which counters were sent in a time window (the expected packets).
type publisher struct {
	pc           *webrtc.PeerConnection
	video, audio *webrtc.TrackLocalStaticRTP
	session      resource
	forceKey     atomic.Bool
	plis         atomic.Int64
	keyframes    atomic.Int64

	mu   sync.Mutex
	sent [2][]int64 // per kind: send time (Unix ns) of counter i
}

// runPublisher is the -role publisher process: it publishes to whip and
// answers the harness's commands on stdin, one JSON line each on stdout:
//
//	range START END  → {"v":[first,last],"a":[first,last]} counters sent in [START, END) (Unix ns; -1 when none)
//	stats            → {"plis":N,"keyframes":N,"video":N,"audio":N}
//
// It ends when stdin closes.
func runPublisher(whip, token string, bitrate int) error {
	api, err := newAPI()
	if err != nil {
		return err
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return err
	}
	p := &publisher{pc: pc}
	defer p.close()
	p.video, _ = webrtc.NewTrackLocalStaticRTP(videoCodec, "video", "studio")
	p.audio, _ = webrtc.NewTrackLocalStaticRTP(audioCodec, "audio", "studio")
	for _, tr := range []*webrtc.TrackLocalStaticRTP{p.video, p.audio} {
		tc, err := pc.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			return err
		}
		go p.readRTCP(tc.Sender())
	}
	connected := make(chan struct{})
	var once sync.Once
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateConnected {
			once.Do(func() { close(connected) })
		}
	})
	offer, err := localOffer(pc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	answer, sess, err := postSDP(ctx, whip, token, offer)
	if err != nil {
		return err
	}
	p.session = sess
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		return err
	}
	select {
	case <-connected:
	case <-time.After(10 * time.Second):
		return fmt.Errorf("publisher: not connected after 10s")
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { defer close(done); p.send(bitrate, stop) }()
	fmt.Println(`{"ready":true}`)
	err = p.serve(os.Stdin)
	close(stop)
	<-done
	return err
}

func (p *publisher) close() {
	deleteSession(p.session)
	_ = p.pc.Close()
}

func (p *publisher) readRTCP(s *webrtc.RTPSender) {
	for {
		pkts, _, err := s.ReadRTCP()
		if err != nil {
			return
		}
		for _, x := range pkts {
			switch x.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				p.plis.Add(1)
				p.forceKey.Store(true)
			}
		}
	}
}

// send writes video frames every 1/30 s and Opus every 20 ms on a fixed
// schedule (a late tick is sent at once, not skipped) until stop closes.
func (p *publisher) send(bitrate int, stop <-chan struct{}) {
	keySize, interSize := frameSizes(bitrate - audioBytes*8*int(time.Second/audioPeriod))
	start := time.Now()
	frameDur := time.Second / fps
	var frame, audioN int
	var vseq, aseq uint16
	var vcount, acount uint32
	sinceKey := gopFrames // the first frame is a keyframe
	audioPayload := make([]byte, audioBytes)
	for {
		nextV := start.Add(time.Duration(frame) * frameDur)
		nextA := start.Add(time.Duration(audioN) * audioPeriod)
		next := min(nextV.UnixNano(), nextA.UnixNano())
		if d := time.Until(time.Unix(0, next)); d > 0 {
			select {
			case <-stop:
				return
			case <-time.After(d):
			}
		} else {
			select {
			case <-stop:
				return
			default:
			}
		}
		if !nextA.After(nextV) {
			now := time.Now().UnixNano()
			putTag(audioPayload, tag{kind: kindAudio, counter: acount, sent: now})
			_ = p.audio.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: aseq, Timestamp: uint32(audioN) * 960, Marker: audioN == 0}, Payload: audioPayload})
			p.logSent(kindAudio, now)
			aseq++
			acount++
			audioN++
			continue
		}
		key := sinceKey >= gopFrames || p.forceKey.Swap(false)
		size := interSize
		if key {
			size, sinceKey = keySize, 0
			p.keyframes.Add(1)
		}
		sinceKey++
		payloads := videoFrame(size, key, byte(frame))
		for i, pl := range payloads {
			now := time.Now().UnixNano()
			var flags byte
			if key && i == 0 {
				flags = flagKey
			}
			putTag(pl, tag{kind: kindVideo, flags: flags, counter: vcount, sent: now})
			_ = p.video.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: vseq, Timestamp: uint32(frame) * 3000, Marker: i == len(payloads)-1}, Payload: pl})
			p.logSent(kindVideo, now)
			vseq++
			vcount++
		}
		frame++
	}
}

func (p *publisher) logSent(kind int, at int64) {
	p.mu.Lock()
	p.sent[kind] = append(p.sent[kind], at)
	p.mu.Unlock()
}

// sentIn returns the first and last counter of kind sent in [from, to).
func (p *publisher) sentIn(kind int, from, to int64) [2]int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.sent[kind]
	i := sort.Search(len(s), func(i int) bool { return s[i] >= from })
	j := sort.Search(len(s), func(i int) bool { return s[i] >= to })
	if i >= j {
		return [2]int64{-1, -1}
	}
	return [2]int64{int64(i), int64(j - 1)}
}

func (p *publisher) serve(in *os.File) error {
	sc := bufio.NewScanner(in)
	enc := json.NewEncoder(os.Stdout)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "range":
			if len(f) != 3 {
				return fmt.Errorf("range: want START END")
			}
			from, _ := strconv.ParseInt(f[1], 10, 64)
			to, _ := strconv.ParseInt(f[2], 10, 64)
			_ = enc.Encode(map[string][2]int64{"v": p.sentIn(kindVideo, from, to), "a": p.sentIn(kindAudio, from, to)})
		case "stats":
			p.mu.Lock()
			nv, na := len(p.sent[kindVideo]), len(p.sent[kindAudio])
			p.mu.Unlock()
			_ = enc.Encode(map[string]int64{"plis": p.plis.Load(), "keyframes": p.keyframes.Load(), "video": int64(nv), "audio": int64(na)})
		default:
			return fmt.Errorf("publisher: unknown command %q", f[0])
		}
	}
	return sc.Err()
}
