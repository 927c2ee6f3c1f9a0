package main

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

type report struct {
	Started, Finished time.Time
	Machine           map[string]string
	Bitrate           int
	WindowS           float64
	HedgeCPU          int
	ClientCPU         int
	RSSIdle           int64 // hedge before the publisher
	RSSPublisher      int64 // with the publisher, no viewer
	TTFF              ttffResult
	Steps             []step
	// MaxK is the largest K at which every viewer lost < 1 % of video and
	// of audio (0: none).
	MaxK int
	// MaxWatching is the most viewers watching at once, all at < 1 % loss,
	// counting steps at which hedge refused joins (its overload protection).
	MaxWatching int
	Relay       *relayResult `json:",omitempty"`
	Publisher   map[string]int64
	Notes       []string
}

type step struct {
	K, Viewers   int // asked for, joined
	JoinFailed   int
	JoinErrors   []string `json:",omitempty"`
	JoinSeconds  float64
	SentVideo    int64
	SentAudio    int64
	Video, Audio loss
	HedgeCPU     float64 // % of one CPU, hedge's own time
	HedgeCPUBusy float64 // % of hedge's CPU busy with anything
	ClientCPU    float64 // % of one CPU, publisher + viewers
	RSS          int64
	Profile      profileResult `json:",omitzero"`
}

// loss over the viewers of one step: fractions 0..1. When Min is close to
// Max, every viewer lost the same packets: they were lost before the
// fan-out (on the way in, or by the publisher's ingest falling behind).
type loss struct {
	Min, Max, Mean float64
	Over1Pct       int // viewers that lost ≥ 1 %
}

func lossOf(counts [][2]int64, kind int, sent int64) loss {
	var l loss
	if len(counts) == 0 || sent <= 0 {
		return loss{Min: 1, Max: 1, Mean: 1}
	}
	l.Min = 1
	for _, c := range counts {
		f := 1 - float64(min(c[kind], sent))/float64(sent)
		l.Min = min(l.Min, f)
		l.Max = max(l.Max, f)
		l.Mean += f
		if f >= 0.01 {
			l.Over1Pct++
		}
	}
	l.Mean /= float64(len(counts))
	return l
}

func (s step) ok() bool {
	return s.JoinFailed == 0 && s.Viewers == s.K && s.Video.Max < 0.01 && s.Audio.Max < 0.01
}

func (s step) rssPerViewer(base int64) float64 {
	if s.Viewers == 0 {
		return 0
	}
	return float64(s.RSS-base) / float64(s.Viewers) / (1 << 20)
}

func (s step) line() string {
	return fmt.Sprintf("K=%4d (%d joined, %d failed, %.0fs)  video loss max %.2f%% mean %.3f%%  audio max %.2f%% mean %.3f%%  hedge CPU %.0f%%  RSS %.0f MB (%.2f MB/viewer)  clients CPU %.0f%%",
		s.K, s.Viewers, s.JoinFailed, s.JoinSeconds, 100*s.Video.Max, 100*s.Video.Mean, 100*s.Audio.Max, 100*s.Audio.Mean,
		s.HedgeCPU, mb(s.RSS), float64(s.RSS)/float64(max(1, s.Viewers))/(1<<20), s.ClientCPU)
}

func (r *report) summarize() {
	for _, s := range r.Steps {
		if s.ok() {
			r.MaxK = max(r.MaxK, s.K)
		}
		if s.Video.Max < 0.01 && s.Audio.Max < 0.01 {
			r.MaxWatching = max(r.MaxWatching, s.Viewers)
		}
	}
}

type ttffResult struct {
	Joins                    []join
	Error                    string `json:",omitempty"`
	FirstMedianMs, KeyMedian float64
	KeyP90Ms, AnswerMedianMs float64
	NoKeyframe               int // joins that saw no keyframe within 5 s
}

func summarizeJoins(js []join, errText string) ttffResult {
	t := ttffResult{Joins: js, Error: errText}
	var first, key, ans []float64
	for _, j := range js {
		ans = append(ans, j.PostMs)
		if j.FirstMs > 0 {
			first = append(first, j.FirstMs)
		}
		if j.KeyMs > 0 {
			key = append(key, j.KeyMs)
		} else {
			t.NoKeyframe++
		}
	}
	t.FirstMedianMs, t.KeyMedian, t.KeyP90Ms, t.AnswerMedianMs = quantile(first, 0.5), quantile(key, 0.5), quantile(key, 0.9), quantile(ans, 0.5)
	return t
}

func (t ttffResult) line() string {
	s := fmt.Sprintf("WHEP join (%d viewers): answer median %.0f ms, first packet median %.0f ms, first keyframe median %.0f ms (p90 %.0f ms), %d without keyframe in 5 s",
		len(t.Joins), t.AnswerMedianMs, t.FirstMedianMs, t.KeyMedian, t.KeyP90Ms, t.NoKeyframe)
	if t.Error != "" {
		s += " — error: " + t.Error
	}
	return s
}

type relayResult struct {
	Packets            int     // matched at both viewers
	MissingAtB         int     // received at a, not at b
	AP50Ms, AP99Ms     float64 // one-way delay publisher → viewer at a
	BP50Ms, BP99Ms     float64 // publisher → a → b → viewer at b
	DiffP50Ms, DiffP99 float64 // b − a, packet by packet
}

func (r relayResult) line() string {
	return fmt.Sprintf("relay: %d packets at both viewers (%d missing at b); one-way delay a p50 %.2f p99 %.2f ms, b p50 %.2f p99 %.2f ms; added by the relay p50 %.2f ms, p99 %.2f ms",
		r.Packets, r.MissingAtB, r.AP50Ms, r.AP99Ms, r.BP50Ms, r.BP99Ms, r.DiffP50Ms, r.DiffP99)
}

func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(q * float64(len(s)-1))
	return s[i]
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

func (r *report) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# hedge live-stream fan-out, %s\n\n", r.Started.Format(time.RFC3339))
	fmt.Fprintf(&b, "Machine: %s, %s CPUs, kernel %s, %s, hedge %s. hedge pinned to CPU %d; publisher (pion) and viewers (pion ICE, DTLS, SRTP) to CPU %d.\n",
		r.Machine["cpu"], r.Machine["cpus"], r.Machine["kernel"], r.Machine["go"], r.Machine["hedge"], r.HedgeCPU, r.ClientCPU)
	fmt.Fprintf(&b, "Stream: %.1f Mbit/s synthesized H.264 (30 fps, IDR every 2 s and on PLI, ≤ 1200-byte packets) + Opus (50 packets/s); window %.0f s per step; loss counted from payload counters.\n\n",
		float64(r.Bitrate)/1e6, r.WindowS)
	fmt.Fprintf(&b, "hedge RSS idle %.0f MB, with the publisher %.0f MB.\n\n", mb(r.RSSIdle), mb(r.RSSPublisher))
	b.WriteString("| K | joined (failed) | video loss min / max / mean | audio loss min / max / mean | viewers ≥ 1 % | hedge CPU | hedge's CPU busy (anyone) | hedge CPU per 100 viewers | RSS | RSS/viewer (total / above publisher-only) | clients CPU |\n")
	b.WriteString("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range r.Steps {
		fmt.Fprintf(&b, "| %d | %d (%d) | %.2f / %.2f / %.3f %% | %.2f / %.2f / %.3f %% | %d | %.0f %% | %.0f %% | %.1f %% | %.0f MB | %.2f / %.2f MB | %.0f %% |\n",
			s.K, s.Viewers, s.JoinFailed, 100*s.Video.Min, 100*s.Video.Max, 100*s.Video.Mean, 100*s.Audio.Min, 100*s.Audio.Max, 100*s.Audio.Mean,
			max(s.Video.Over1Pct, s.Audio.Over1Pct), s.HedgeCPU, s.HedgeCPUBusy, s.HedgeCPU/float64(max(1, s.Viewers))*100,
			mb(s.RSS), float64(s.RSS)/float64(max(1, s.Viewers))/(1<<20), s.rssPerViewer(r.RSSPublisher), s.ClientCPU)
	}
	for _, s := range r.Steps {
		if s.JoinFailed > 0 && len(s.JoinErrors) > 0 && strings.Contains(s.JoinErrors[0], "fan-out") {
			fmt.Fprintf(&b, "\nK=%d: hedge refused %d joins because the stream's fan-out had fallen behind (503 naming LL-HLS, its overload protection); the %d viewers watching lost at most %.2f %% video, %.2f %% audio.\n",
				s.K, s.JoinFailed, s.Viewers, 100*s.Video.Max, 100*s.Audio.Max)
		}
	}
	fmt.Fprintf(&b, "\nLargest K with < 1 %% loss at every viewer (video and audio): **%d** (target ≥ 500 per core; MediaMTX v1.20.1 on this machine class: ~300); most viewers watching at once, every one at < 1 %% loss: %d.\n\n", r.MaxK, r.MaxWatching)
	t := r.TTFF
	fmt.Fprintf(&b, "WHEP join, %d viewers one by one: POST → answer median %.0f ms; POST → first packet median %.0f ms; POST → first keyframe packet median **%.0f ms** (p90 %.0f ms; target ≤ 500 ms; MediaMTX 1.5 s); %d saw no keyframe within 5 s.\n\n",
		len(t.Joins), t.AnswerMedianMs, t.FirstMedianMs, t.KeyMedian, t.KeyP90Ms, t.NoKeyframe)
	if r.Relay != nil {
		x := r.Relay
		fmt.Fprintf(&b, "Relay (region b pulls from a; both nodes on CPU %d): %d packets at both viewers, %d missing at b. One-way delay at a p50 %.2f / p99 %.2f ms, at b p50 %.2f / p99 %.2f ms; added by the relay, packet by packet: p50 %.2f ms, **p99 %.2f ms** (target ≤ 5 ms).\n\n",
			r.HedgeCPU, x.Packets, x.MissingAtB, x.AP50Ms, x.AP99Ms, x.BP50Ms, x.BP99Ms, x.DiffP50Ms, x.DiffP99)
	}
	if len(r.Publisher) > 0 {
		fmt.Fprintf(&b, "Publisher: %d video and %d audio packets sent, %d keyframes, %d PLIs received.\n\n", r.Publisher["video"], r.Publisher["audio"], r.Publisher["keyframes"], r.Publisher["plis"])
	}
	for _, s := range r.Steps {
		if s.Profile.Top != "" || s.Profile.Err != "" {
			fmt.Fprintf(&b, "hedge CPU profile at K=%d (%s):\n\n```\n%s%s\n```\n\n", s.K, s.Profile.File, s.Profile.Top, s.Profile.Err)
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "Note: %s\n\n", n)
	}
	b.WriteString("Loss is raw: the viewers send no NACKs (hedge would answer them from its packet cache). When a step's minimum loss is close to its maximum, every viewer lost the same packets: they were dropped before the fan-out, by the publisher's ingest falling behind.\n")
	b.WriteString("hedge's CPU busy is how busy hedge's CPU was with anything (hedge, other users of a shared machine); when it is near 100 % while hedge's own share is lower, hedge was starved, and hedge CPU per 100 viewers is the figure that carries over to a dedicated core.\n")
	b.WriteString("A step whose clients' CPU is near 100 % may be limited by the clients sharing one core, not by hedge: see hedge's own CPU in that row.\n")
	return b.String()
}
