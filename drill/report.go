package drill

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"sort"
	"strings"
	"unicode/utf8"
)

// WriteJSON writes the result as indented JSON.
func WriteJSON(w io.Writer, r *Result) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes the human report.
func WriteText(w io.Writer, r *Result) error {
	var b strings.Builder
	fmt.Fprintf(&b, "== %s: %s\n", r.Scenario, r.Description)
	fmt.Fprintf(&b, "   %s; %d players; replication %s; promotion %s\n", r.Mode, r.Players, r.Replication, r.Promotion)
	for _, d := range r.Domains {
		fmt.Fprintf(&b, "   domain %-4s bets %d, acknowledged %d, given up %d, refused %d, >1 retry %d (max attempts %d); RTO first %s, 99%% %s",
			d.Domain, d.BetsPlaced, d.Acked, d.GivenUp, d.Refused, d.RetriedTwice, d.MaxAttempts, fmtSecs(d.RTOFirst), fmtSecs(d.RTO99))
		if len(d.Refusals503) > 0 {
			fmt.Fprintf(&b, "; 503 after the fault: %s", fmtCounts(d.Refusals503))
		}
		b.WriteString("\n")
	}
	if r.DNSMove != nil {
		fmt.Fprintf(&b, "   DNS stopped naming %s %.3fs after the fault\n", r.LostRegion, *r.DNSMove)
	}
	fmt.Fprintf(&b, "   RPO %d bets (window %.3fs); double-applies %d; stale-epoch writes %d\n", r.RPOMissing, r.RPOWindow, r.DoubleApplies, r.StaleEpochWrites)
	for _, v := range r.Video {
		fmt.Fprintf(&b, "   video %s: %d viewers (at the end %d on WebRTC, %d on LL-HLS); longest wait for media before the fault %.3fs, from the fault on %.3fs (median viewer %.3fs; ended by WebRTC %.3fs, by LL-HLS %.3fs); never resumed %d; WHEP sessions %d, failed %d; studio sessions %d\n",
			v.Table, v.Viewers, v.OnWebRTC, v.OnHLS, v.BaselineMax, v.InterruptedMax, v.InterruptedP50, v.InterruptedWebRTC, v.InterruptedHLS,
			v.NeverResumed, v.WHEPSessions, v.WHEPFailures, len(v.Studio))
	}
	for _, s := range r.Steps {
		fmt.Fprintf(&b, "   step +%.3fs %s (took %.3fs)", s.At, s.What, s.Took)
		if s.Err != "" {
			fmt.Fprintf(&b, ": %s", s.Err)
		}
		b.WriteString("\n")
	}
	b.WriteString("   timeline (t: bet attempts/acknowledged, failures, p50/p99 ms, attempts by the edges' region, writers, viewers that got new video):\n")
	for _, s := range r.Timeline {
		var ws []string
		for _, d := range sortedKeys(s.Writers) {
			ws = append(ws, d+"="+s.Writers[d])
		}
		var served []string
		for _, reg := range sortedKeys(s.Served) {
			served = append(served, fmt.Sprintf("%s:%d", reg, s.Served[reg]))
		}
		fmt.Fprintf(&b, "   %4ds %4d/%-4d %-40s %6.1f/%-7.1f %-16s %s", s.T, s.Bets, s.Acked, fmtCounts(s.Failed), s.P50ms, s.P99ms,
			strings.Join(served, " "), strings.Join(ws, " "))
		if s.Viewers > 0 {
			fmt.Fprintf(&b, " video %d/%d", s.Watching, s.Viewers)
		}
		b.WriteString("\n")
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "   note: %s\n", n)
	}
	for _, c := range r.Checks {
		mark := "ok  "
		if !c.OK {
			mark = "FAIL"
		}
		fmt.Fprintf(&b, "   %s %s: %s (target %s)\n", mark, c.Name, c.Got, c.Target)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func fmtCounts(m map[string]int) string {
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s ×%d", k, m[k]))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

// textWidth estimates the width of s at font-size 11 in a sans-serif
// face (an average advance of 6.2px), to keep labels inside the picture.
func textWidth(s string) float64 { return 6.2 * float64(utf8.RuneCountInString(s)) }

func esc(s string) string {
	var b bytes.Buffer
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

// WriteSVG draws the timeline: acknowledged and failed bet attempts per
// second (bars), p99 latency (line), the fault, the promotion steps, the
// DNS move and each domain's writer as a band under the chart.
func WriteSVG(w io.Writer, r *Result) error {
	const (
		left, top, plotW, plotH = 80.0, 40.0, 840.0, 220.0
		bandH                   = 18.0
	)
	n := len(r.Timeline)
	if n == 0 {
		_, err := io.WriteString(w, `<svg xmlns="http://www.w3.org/2000/svg" width="200" height="40"><text x="10" y="20">no data</text></svg>`)
		return err
	}
	maxBets, maxP99 := 1, 1.0
	for _, s := range r.Timeline {
		maxBets = max(maxBets, s.Bets)
		maxP99 = max(maxP99, s.P99ms)
	}
	bw := plotW / float64(n)
	x := func(t int) float64 { return left + float64(t-r.Timeline[0].T)*bw }
	y := func(v int) float64 { return top + plotH - plotH*float64(v)/float64(maxBets) }
	bands := len(r.Domains)
	if len(r.Video) > 0 {
		bands++
	}
	height := top + plotH + 40 + (bandH+14)*float64(bands) + 10
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="11">`+"\n", left+plotW+80, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%.0f" y="20" font-size="14" font-weight="bold">hedge drill · %s · %d players · replication %s · promotion %s</text>`+"\n",
		left, esc(r.Scenario), r.Players, esc(r.Replication), esc(r.Promotion))
	// Axes and grid.
	fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#444"/>`+"\n", left, top+plotH, left+plotW, top+plotH)
	fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#444"/>`+"\n", left, top, left, top+plotH)
	for _, frac := range []float64{0.5, 1} {
		v := int(float64(maxBets) * frac)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/><text x="%.1f" y="%.1f" text-anchor="end">%d/s</text>`+"\n",
			left, y(v), left+plotW, y(v), left-4, y(v)+4, v)
	}
	// Bars: acknowledged (green) under failed (red).
	for _, s := range r.Timeline {
		failed := s.Bets - s.Acked
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#3a9d5d"><title>t=%ds: %d acknowledged</title></rect>`+"\n",
			x(s.T)+1, y(s.Acked), bw-2, top+plotH-y(s.Acked), s.T, s.Acked)
		if failed > 0 {
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#d64545"><title>t=%ds: %s</title></rect>`+"\n",
				x(s.T)+1, y(s.Bets), bw-2, y(s.Acked)-y(s.Bets), s.T, esc(fmtCounts(s.Failed)))
		}
		if s.T%5 == 0 {
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%ds</text>`+"\n", x(s.T)+bw/2, top+plotH+14, s.T)
		}
	}
	// p99 latency line, on its own scale at the right.
	var pts []string
	for _, s := range r.Timeline {
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(s.T)+bw/2, top+plotH-plotH*s.P99ms/maxP99))
	}
	fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="#2b59c3" stroke-width="1.5"/>`+"\n", strings.Join(pts, " "))
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" fill="#2b59c3">p99 %.0f ms</text>`+"\n", left+plotW+4, top+8, maxP99)
	// Fault, promotion steps, DNS move.
	mark := func(t float64, color, label string, row int) {
		px := left + (t-float64(r.Timeline[0].T))*bw
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-dasharray="4 3"/>`+"\n", px, top, px, top+plotH, color)
		// A label that would run past the chart's right edge ends at
		// the line instead of starting there.
		if px+3+textWidth(label) > left+plotW {
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" fill="%s" text-anchor="end">%s</text>`+"\n", px-3, top+12+12*float64(row), color, esc(label))
			return
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" fill="%s">%s</text>`+"\n", px+3, top+12+12*float64(row), color, esc(label))
	}
	mark(0, "#000", "fault", 0)
	row := 1
	if r.DNSMove != nil {
		mark(*r.DNSMove, "#8a5a00", fmt.Sprintf("DNS moved +%.2fs", *r.DNSMove), row)
		row++
	}
	for _, s := range r.Steps {
		mark(s.At, "#6a3d9a", s.What, row)
		row++
	}
	// Writer bands.
	colors := []string{"#9ecae1", "#fdae6b", "#a1d99b", "#bcbddc", "#fc9272"}
	by := top + plotH + 26
	for di, d := range r.Domains {
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end">%s writer</text>`+"\n", left-4, by+12, esc(d.Domain))
		seen := map[string]string{}
		for _, s := range r.Timeline {
			wr := s.Writers[d.Domain]
			c, ok := seen[wr]
			if !ok {
				c = colors[len(seen)%len(colors)]
				if wr == "none" || wr == "" {
					c = "#d64545"
				}
				seen[wr] = c
				fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="9">%s</text>`+"\n", x(s.T)+2, by+bandH+9, esc(wr))
			}
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>t=%ds %s</title></rect>`+"\n", x(s.T), by, bw, bandH-4, c, s.T, esc(wr))
		}
		by += bandH + 14
		_ = di
	}
	// Video band: viewers that got new media each second.
	if len(r.Video) > 0 {
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end">video</text>`+"\n", left-4, by+12)
		for i, s := range r.Timeline {
			c := "#74c476"
			switch {
			case s.Watching == 0 && (i == 0 || i == len(r.Timeline)-1):
				c = "#dddddd" // a partial second: before the viewers start, after they stop
			case s.Watching == 0:
				c = "#d64545"
			case s.Watching < s.Viewers:
				c = "#f0a030"
			}
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>t=%ds: %d of %d viewers got new video</title></rect>`+"\n",
				x(s.T), by, bw, bandH-4, c, s.T, s.Watching, s.Viewers)
		}
		var worst []string
		for _, v := range r.Video {
			worst = append(worst, fmt.Sprintf("%s %.1fs", v.Table, v.InterruptedMax))
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="9">viewers with new video each second, WebRTC or LL-HLS (green all, orange some, red none); longest interruption: %s</text>`+"\n",
			left+2, by+bandH+9, esc(strings.Join(worst, ", ")))
		by += bandH + 14
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f">green: acknowledged bet attempts/s · red: failed attempts/s (retried) · blue: p99 latency of acknowledged bets</text>`+"\n", left, by+10)
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}
