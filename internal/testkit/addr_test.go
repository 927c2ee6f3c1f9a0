package testkit

import (
	"net"
	"testing"
)

// The addresses and ports handed out are free: a server can bind them on
// every host they were asked for.
func TestFreeAddresses(t *testing.T) {
	for _, hosts := range [][]string{nil, {"127.0.0.1"}, {"127.0.0.1", "127.0.0.2"}} {
		port := FreeUDPPort(t, hosts...)
		if len(hosts) == 0 {
			hosts = []string{"127.0.0.1"}
		}
		for _, h := range hosts {
			c, err := net.ListenPacket("udp", net.JoinHostPort(h, port))
			if err != nil {
				t.Fatalf("FreeUDPPort(%q) = %s: want it free on %s, got %v", hosts, port, h, err)
			}
			c.Close()
		}
	}
	for _, addr := range []string{FreeAddr(t), FreeAddrOn(t, "127.0.0.3")} {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("FreeAddr: want %s free, got %v", addr, err)
		}
		ln.Close()
	}
	if p := FreePort(t); p <= 0 || p > 65535 {
		t.Fatalf("FreePort: want a port, got %d", p)
	}
}
