package hls

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"

	"hedge/internal/tick"
)

// The samples in testdata were made once with Debian's ffmpeg:
//
//	ffmpeg -f lavfi -i testsrc2=size=320x180:rate=30 -t 2 -c:v libx264 \
//	  -profile:v baseline -pix_fmt yuv420p -bf 0 \
//	  -x264-params keyint=15:min-keyint=15:scenecut=0:repeat-headers=1:threads=1 \
//	  -b:v 300k -bsf:v h264_mp4toannexb -f h264 sample.h264
//	ffmpeg -f lavfi -i sine=frequency=440:sample_rate=48000 -t 2 -ac 2 \
//	  -c:a libopus -b:a 32k -frame_duration 20 -application lowdelay sample.opus.ogg
//
// 2 s of 30 fps constrained-baseline video, a keyframe (with SPS and PPS)
// every 15 frames, and 2 s of 20 ms Opus packets: what a browser publishes.

const (
	sampleFPS         = 30
	videoTicksPerAU   = 90000 / sampleFPS
	opusTicksPerFrame = 960 // 20 ms at 48 kHz
)

type sample struct {
	video [][]byte // access units, Annex-B
	keys  []bool   // video[i] holds an IDR
	audio [][]byte // Opus packets
	sps   []byte
}

func loadSample(t testing.TB) *sample {
	t.Helper()
	raw, err := os.ReadFile("testdata/sample.h264")
	if err != nil {
		t.Fatal(err)
	}
	s := &sample{}
	var au []byte
	key := false
	for _, nalu := range splitAnnexB(raw) {
		typ := nalu[0] & 0x1f
		if typ == 7 && s.sps == nil {
			s.sps = nalu
		}
		au = append(au, 0, 0, 0, 1)
		au = append(au, nalu...)
		if typ == naluIDR {
			key = true
		}
		if typ == naluIDR || typ == naluNonIDR { // one slice per frame
			s.video = append(s.video, au)
			s.keys = append(s.keys, key)
			au, key = nil, false
		}
	}
	ogg, err := os.ReadFile("testdata/sample.opus.ogg")
	if err != nil {
		t.Fatal(err)
	}
	pkts, err := oggPackets(ogg)
	if err != nil {
		t.Fatal(err)
	}
	// The first two are the OpusHead and OpusTags headers.
	if len(pkts) < 3 || !bytes.HasPrefix(pkts[0], []byte("OpusHead")) {
		t.Fatalf("sample.opus.ogg: expected OpusHead then packets, got %d packets", len(pkts))
	}
	s.audio = pkts[2:]
	if len(s.video) != 60 || !s.keys[0] || s.sps == nil || len(s.audio) < 90 {
		t.Fatalf("samples: expected 60 frames starting on a keyframe with an SPS and ≥90 Opus packets, got %d frames (first key %v, SPS %v) and %d packets",
			len(s.video), s.keys[0], s.sps != nil, len(s.audio))
	}
	return s
}

func splitAnnexB(b []byte) [][]byte {
	var out [][]byte
	start := -1
	for i := 0; i+2 < len(b); {
		if b[i] == 0 && b[i+1] == 0 && b[i+2] == 1 {
			if start >= 0 {
				end := i
				for end > start && b[end-1] == 0 {
					end--
				}
				out = append(out, b[start:end])
			}
			i += 3
			start = i
			continue
		}
		i++
	}
	if start >= 0 && start < len(b) {
		out = append(out, b[start:])
	}
	return out
}

// oggPackets returns the packets of an Ogg stream (RFC 3533): segments of
// 255 bytes continue a packet, a shorter one ends it.
func oggPackets(b []byte) ([][]byte, error) {
	var out [][]byte
	var cur []byte
	for len(b) > 0 {
		if len(b) < 27 || string(b[:4]) != "OggS" {
			return nil, fmt.Errorf("ogg: bad page header at %d bytes from the end", len(b))
		}
		n := int(b[26])
		if len(b) < 27+n {
			return nil, fmt.Errorf("ogg: truncated segment table")
		}
		lacing := b[27 : 27+n]
		body := b[27+n:]
		for _, l := range lacing {
			if len(body) < int(l) {
				return nil, fmt.Errorf("ogg: truncated page")
			}
			cur = append(cur, body[:l]...)
			body = body[l:]
			if l < 255 {
				out = append(out, cur)
				cur = nil
			}
		}
		b = body
	}
	return out, nil
}

// publisher packetizes the sample the way a WebRTC sender does (pion's
// payloaders: STAP-A for SPS+PPS, FU-A for large slices) and loops it.
type publisher struct {
	s      *sample
	vpkt   rtp.Packetizer
	apkt   rtp.Packetizer
	vi, ai int
}

func newPublisher(s *sample) *publisher {
	return &publisher{
		s:    s,
		vpkt: rtp.NewPacketizer(1200, 96, 0x1111, &codecs.H264Payloader{}, rtp.NewRandomSequencer(), 90000),
		apkt: rtp.NewPacketizer(1200, 111, 0x2222, &codecs.OpusPayloader{}, rtp.NewRandomSequencer(), 48000),
	}
}

func (p *publisher) nextVideo() []*rtp.Packet {
	pkts := p.vpkt.Packetize(p.s.video[p.vi%len(p.s.video)], videoTicksPerAU)
	p.vi++
	return pkts
}

func (p *publisher) nextAudio() []*rtp.Packet {
	pkts := p.apkt.Packetize(p.s.audio[p.ai%len(p.s.audio)], opusTicksPerFrame)
	p.ai++
	return pkts
}

// run writes the looped sample into m at real-time pace until ctx ends.
func (p *publisher) run(ctx context.Context, m *Muxer) {
	start := time.Now()
	tick.Every(ctx.Done(), 5*time.Millisecond, func(time.Time) {
		el := time.Since(start)
		for time.Duration(p.vi)*time.Second/sampleFPS <= el {
			for _, pkt := range p.nextVideo() {
				m.WriteRTP(H264, 90000, pkt, time.Now())
			}
		}
		for time.Duration(p.ai)*20*time.Millisecond <= el {
			for _, pkt := range p.nextAudio() {
				m.WriteRTP(Opus, 48000, pkt, time.Now())
			}
		}
	})
}
