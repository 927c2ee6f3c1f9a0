package configs

import (
	"strings"
	"testing"
)

// A listener offers HTTP/2 by default with DefaultHTTP2Streams streams;
// the streams are bounded, with file, line and field; a listener with
// HTTP/2 off is not held to the bound.
func TestHTTP2Settings(t *testing.T) {
	c := demo(t)
	if h := c.Regions[0].Nodes[0].Listeners[0].HTTP2; !*h.Enabled || h.MaxConcurrentStreams != DefaultHTTP2Streams {
		t.Fatalf("want http2 enabled with %d streams by default, got enabled %v, %d", DefaultHTTP2Streams, *h.Enabled, h.MaxConcurrentStreams)
	}
	_, err := Parse("h2.yaml", []byte(withListeners(`          - address: "127.0.0.1:8443"
            tls: {mode: "off"}
            http2: {max_concurrent_streams: 5000}
          - address: "127.0.0.1:8444"
            tls: {mode: "off"}
            http2: {enabled: false, max_concurrent_streams: 5000}
`)))
	wantProblems(t, err, "h2.yaml:8: regions[0].nodes[0].listeners[0].http2.max_concurrent_streams: must be at most 1000, got 5000")
	if strings.Contains(err.Error(), "listeners[1].http2") {
		t.Errorf("a listener with HTTP/2 off was checked:\n%v", err)
	}
}

// withListeners is a configuration with one node whose listeners are the
// YAML given (indented as a listeners list's items, starting at line 6).
func withListeners(listeners string) string {
	return `regions:
  - name: sea
    nodes:
      - name: sea-1
        listeners:
` + listeners + `    pools:
      - name: games
        members: [{url: "http://127.0.0.1:1"}]
routes:
  - name: api
    pool: games
`
}
