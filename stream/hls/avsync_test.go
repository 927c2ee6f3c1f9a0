package hls

import (
	"testing"
	"time"
)

// TestVideoWaitsForAudio: a video frame reaches gohlslib only once the
// audio of its time has (so that parts close with their audio complete),
// or after avHold when the audio is late or paused; a stream without audio
// packets is never held.
func TestVideoWaitsForAudio(t *testing.T) {
	smp := loadSample(t)
	m, err := New(Options{Video: H264, Audio: Opus})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	p := newPublisher(smp)
	t0 := time.Now()
	video := func(at time.Duration) {
		for _, pkt := range p.nextVideo() {
			m.WriteRTP(H264, 90000, pkt, t0.Add(at))
		}
	}
	audio := func(at time.Duration) {
		for _, pkt := range p.nextAudio() {
			m.WriteRTP(Opus, 48000, pkt, t0.Add(at))
		}
	}
	frames := func(step string, want uint64) {
		t.Helper()
		if got := m.Stats().Frames; got != want {
			t.Fatalf("%s: expected %d video frames handed to the packager, got %d", step, want, got)
		}
	}

	audio(0) // audio pts 0
	video(0) // video pts 0: its audio is there
	frames("frame 0 with audio up to 0 ms", 1)
	video(33 * time.Millisecond) // pts ≈ 30 ms: no audio of that time yet
	frames("frame 1 before its audio", 1)
	audio(40 * time.Millisecond) // pts 20 ms
	frames("frame 1 with audio up to 20 ms", 1)
	audio(40 * time.Millisecond) // pts 40 ms
	frames("frame 1 with audio up to 40 ms", 2)
	video(66 * time.Millisecond) // pts ≈ 70 ms, and the audio stops
	frames("frame 2 before its audio", 2)
	video(66*time.Millisecond + avHold) // frame 2 has waited avHold
	frames("frame 2 after avHold without audio", 3)

	// Video only, though the muxer has an audio track: nothing waits.
	m2, err := New(Options{Video: H264, Audio: Opus})
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	p2 := newPublisher(smp)
	for i := range 5 {
		for _, pkt := range p2.nextVideo() {
			m2.WriteRTP(H264, 90000, pkt, t0.Add(time.Duration(i)*time.Second/sampleFPS))
		}
	}
	if got := m2.Stats().Frames; got != 5 {
		t.Errorf("video without audio packets: expected all 5 frames handed over at once, got %d", got)
	}
}
