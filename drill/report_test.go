package drill

import (
	"bytes"
	"encoding/xml"
	"io"
	"strconv"
	"strings"
	"testing"
)

// svgElem is one element of an SVG as the test reads it.
type svgElem struct {
	name   string
	attr   map[string]string
	text   string
	parent string
}

// parseSVG decodes every element of an SVG (failing on malformed XML).
func parseSVG(t *testing.T, b []byte) (root map[string]string, elems []*svgElem) {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(b))
	var stack []*svgElem
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v", err)
		}
		switch tk := tok.(type) {
		case xml.StartElement:
			e := &svgElem{name: tk.Name.Local, attr: map[string]string{}}
			for _, a := range tk.Attr {
				e.attr[a.Name.Local] = a.Value
			}
			if len(stack) > 0 {
				e.parent = stack[len(stack)-1].name
			} else {
				root = e.attr
			}
			elems = append(elems, e)
			stack = append(stack, e)
		case xml.CharData:
			// An element's text includes its children's (a bar's <title>).
			for _, e := range stack {
				e.text += string(tk)
			}
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		}
	}
	return root, elems
}

func num(t *testing.T, s string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("attribute %q is not a number", s)
	}
	return v
}

// TestWriteSVG: the timeline picture is well-formed XML with one bar of
// acknowledged attempts per second, a red bar for each second with
// failures, the p99 line, the fault and DNS marks and each domain's
// writer band, and every label inside the picture.
func TestWriteSVG(t *testing.T) {
	f := newFixture(t, PromoteAuto)
	f.clean()
	res := f.r.analyze(true)
	res.Video = []VideoStats{{Table: "table-sea", Viewers: 2, InterruptedMax: 3.25}}
	for i := range res.Timeline {
		res.Timeline[i].Viewers, res.Timeline[i].Watching = 2, i%3
	}
	// A step late in the run, whose label would overflow on the right.
	res.Steps = append(res.Steps, Step{What: "a long label of a step that happened at the very end of the run", At: float64(res.Timeline[len(res.Timeline)-1].T)})
	var b bytes.Buffer
	if err := WriteSVG(&b, res); err != nil {
		t.Fatal(err)
	}
	root, elems := parseSVG(t, b.Bytes())
	width, height := num(t, root["width"]), num(t, root["height"])
	var green, red, polylines int
	var texts []string
	for _, e := range elems {
		switch e.name {
		case "rect":
			switch e.attr["fill"] {
			case "#3a9d5d":
				green++
			case "#d64545":
				if e.parent == "svg" && strings.Contains(e.text, "×") {
					red++
				}
			}
		case "polyline":
			polylines++
			if n := len(strings.Fields(e.attr["points"])); n != len(res.Timeline) {
				t.Errorf("p99 line: expected %d points (one per second), got %d", len(res.Timeline), n)
			}
		case "text":
			texts = append(texts, e.text)
			x, y := num(t, e.attr["x"]), num(t, e.attr["y"])
			from, to := x, x+textWidth(e.text)
			switch e.attr["text-anchor"] {
			case "end":
				from, to = x-textWidth(e.text), x
			case "middle":
				from, to = x-textWidth(e.text)/2, x+textWidth(e.text)/2
			}
			if from < 0 || to > width || y < 0 || y > height {
				t.Errorf("label %q spans x %.0f–%.0f at y %.0f: expected it inside the %.0f×%.0f picture", e.text, from, to, y, width, height)
			}
		}
	}
	failedSeconds := 0
	for _, s := range res.Timeline {
		if s.Bets > s.Acked {
			failedSeconds++
		}
	}
	if green != len(res.Timeline) || red != failedSeconds || polylines != 1 {
		t.Errorf("series: expected %d green bars, %d red bars, 1 p99 line, got %d, %d, %d", len(res.Timeline), failedSeconds, green, red, polylines)
	}
	all := strings.Join(texts, "\n")
	for _, want := range []string{"fault", "DNS moved +1.20s", "sea writer", "eu writer", "sea-writer@1", "sea-replica@2", "eu-writer@1 degraded", "region-down", "video", "longest interruption: table-sea 3.2s"} {
		if !strings.Contains(all, want) {
			t.Errorf("SVG labels: expected %q among them, got:\n%s", want, all)
		}
	}
}
