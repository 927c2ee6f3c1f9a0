package waf

import (
	"strings"
	"testing"
)

func TestMultipartParts(t *testing.T) {
	body := func(n int) string {
		var b strings.Builder
		for i := range n {
			b.WriteString("--XyZ\r\nContent-Disposition: form-data; name=\"f" + string(rune('a'+i%26)) + "\"\r\n\r\nv\r\n")
		}
		b.WriteString("--XyZ--\r\n")
		return b.String()
	}
	cases := []struct {
		ct   string
		body string
		max  int
		want int
	}{
		{"multipart/form-data; boundary=XyZ", body(1), 5, 1},
		{"multipart/form-data; boundary=XyZ", body(5), 5, 5},
		{`Multipart/Form-Data; boundary="XyZ"; charset=utf-8`, body(3), 5, 3},
		{"multipart/form-data; boundary=XyZ", body(50), 5, 6}, // counting stops past max
		{"application/json", body(50), 5, 0},
		{"multipart/form-data", body(50), 5, 0}, // no boundary: the rule engine reports the body error
	}
	for _, c := range cases {
		if got := multipartParts([]byte(c.ct), []byte(c.body), c.max); got != c.want {
			t.Errorf("multipartParts(%q, %d parts, max %d) = %d, want %d", c.ct, strings.Count(c.body, "--XyZ")-1, c.max, got, c.want)
		}
	}
}
