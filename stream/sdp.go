package stream

import (
	"errors"
	"strings"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

var errBadSDP = errors.New("malformed SDP")

// offerCodecs parses an SDP offer and returns the MIME types (lower case,
// "video/h264") of the codecs it offers in active audio/video sections.
func offerCodecs(offer []byte) (map[string]bool, error) {
	var d sdp.SessionDescription
	if err := d.Unmarshal(offer); err != nil {
		return nil, errBadSDP
	}
	if len(d.MediaDescriptions) == 0 {
		return nil, errBadSDP
	}
	got := map[string]bool{}
	for _, m := range d.MediaDescriptions {
		kind := m.MediaName.Media
		if (kind != "audio" && kind != "video") || m.MediaName.Port.Value == 0 {
			continue
		}
		for _, a := range m.Attributes {
			if a.Key != "rtpmap" {
				continue
			}
			// "96 H264/90000"
			_, enc, ok := strings.Cut(a.Value, " ")
			if !ok {
				continue
			}
			name, _, _ := strings.Cut(enc, "/")
			got[strings.ToLower(kind+"/"+name)] = true
		}
	}
	return got, nil
}

// publishable reports whether an offer carries a codec a publisher may send.
func publishable(codecs map[string]bool) bool {
	for _, c := range supportedCodecs() {
		if codecs[strings.ToLower(c.MimeType)] {
			return true
		}
	}
	return false
}

// playable reports whether a viewer's offer accepts at least one of the
// stream's codecs.
func playable(codecs map[string]bool, stream []webrtc.RTPCodecCapability) bool {
	for _, c := range stream {
		if codecs[strings.ToLower(c.MimeType)] {
			return true
		}
	}
	return false
}

// sdpFrag is what a trickle-ICE PATCH body (RFC 8840 fragment) carries.
type sdpFrag struct {
	ufrag, pwd string
	cands      []webrtc.ICECandidateInit
}

// parseFrag parses an application/trickle-ice-sdpfrag body.
func parseFrag(b []byte) (sdpFrag, error) {
	var f sdpFrag
	mid := ""
	var idx uint16
	seenM := false
	for line := range strings.SplitSeq(string(b), "\n") {
		line = strings.TrimRight(line, "\r")
		switch {
		case line == "":
		case strings.HasPrefix(line, "a=ice-ufrag:"):
			f.ufrag = line[len("a=ice-ufrag:"):]
		case strings.HasPrefix(line, "a=ice-pwd:"):
			f.pwd = line[len("a=ice-pwd:"):]
		case strings.HasPrefix(line, "m="):
			if seenM {
				idx++
			}
			seenM = true
			mid = ""
		case strings.HasPrefix(line, "a=mid:"):
			mid = line[len("a=mid:"):]
		case strings.HasPrefix(line, "a=candidate:"):
			c := webrtc.ICECandidateInit{Candidate: line[2:]}
			if mid != "" {
				m := mid
				c.SDPMid = &m
			} else {
				i := idx
				c.SDPMLineIndex = &i
			}
			f.cands = append(f.cands, c)
		case strings.HasPrefix(line, "a=end-of-candidates"), strings.HasPrefix(line, "a="):
		default:
			if len(line) < 2 || line[1] != '=' {
				return f, errBadSDP
			}
		}
	}
	if (f.ufrag == "") != (f.pwd == "") {
		return f, errBadSDP
	}
	return f, nil
}

// withICECredentials returns sdpText with every ice-ufrag and ice-pwd
// replaced: the offer as it would be after the client's ICE restart.
func withICECredentials(sdpText, ufrag, pwd string) string {
	lines := strings.Split(sdpText, "\n")
	for i, l := range lines {
		cr := strings.HasSuffix(l, "\r")
		l = strings.TrimSuffix(l, "\r")
		switch {
		case strings.HasPrefix(l, "a=ice-ufrag:"):
			l = "a=ice-ufrag:" + ufrag
		case strings.HasPrefix(l, "a=ice-pwd:"):
			l = "a=ice-pwd:" + pwd
		}
		if cr {
			l += "\r"
		}
		lines[i] = l
	}
	return strings.Join(lines, "\n")
}

// answerFrag returns the ICE part of an answer as a trickle-ICE fragment:
// credentials and candidates of its first media section.
func answerFrag(answer string) string {
	var b strings.Builder
	var ufrag, pwd string
	var cands []string
	mid := ""
	inFirst := false
	for line := range strings.SplitSeq(answer, "\n") {
		line = strings.TrimRight(line, "\r")
		switch {
		case strings.HasPrefix(line, "m="):
			if inFirst {
				goto done
			}
			inFirst = true
		case strings.HasPrefix(line, "a=ice-ufrag:") && ufrag == "":
			ufrag = line
		case strings.HasPrefix(line, "a=ice-pwd:") && pwd == "":
			pwd = line
		case strings.HasPrefix(line, "a=mid:") && inFirst:
			mid = line
		case strings.HasPrefix(line, "a=candidate:") && inFirst:
			cands = append(cands, line)
		}
	}
done:
	b.WriteString(ufrag + "\r\n" + pwd + "\r\n")
	b.WriteString("m=audio 9 UDP/TLS/RTP/SAVPF 0\r\n")
	if mid != "" {
		b.WriteString(mid + "\r\n")
	}
	for _, c := range cands {
		b.WriteString(c + "\r\n")
	}
	b.WriteString("a=end-of-candidates\r\n")
	return b.String()
}

// sendingSections counts the audio and video sections of d that send media
// (sendonly or sendrecv): the tracks a hub should wait for.
func sendingSections(b []byte) int {
	var d sdp.SessionDescription
	if d.Unmarshal(b) != nil {
		return 0
	}
	n := 0
	for _, m := range d.MediaDescriptions {
		if (m.MediaName.Media != "audio" && m.MediaName.Media != "video") || m.MediaName.Port.Value == 0 {
			continue
		}
		for _, a := range m.Attributes {
			if a.Key == "sendonly" || a.Key == "sendrecv" {
				n++
				break
			}
		}
	}
	return n
}
