package configs

import (
	"strings"
	"testing"
)

// HTTP/3 is off by default; turning it on for a listener without TLS is an
// error located at the field.
func TestHTTP3Settings(t *testing.T) {
	c := demo(t)
	for _, l := range c.Regions[0].Nodes[0].Listeners {
		if *l.HTTP3.Enabled {
			t.Fatalf("want http3 off by default, got it on for listener %s", l.Name)
		}
	}
	_, err := Parse("h3.yaml", []byte(withListeners(`          - address: "127.0.0.1:8443"
            tls: {mode: "off"}
            http3: {enabled: true}
          - address: "127.0.0.1:8444"
            tls: {mode: internal, names: [localhost]}
            http3: {enabled: true}
`)))
	wantProblems(t, err, "h3.yaml:8: regions[0].nodes[0].listeners[0].http3.enabled: HTTP/3 needs TLS")
	if strings.Contains(err.Error(), "listeners[1].http3") {
		t.Errorf("a TLS listener with HTTP/3 on was refused:\n%v", err)
	}
}
