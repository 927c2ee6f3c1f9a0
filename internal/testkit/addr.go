package testkit

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
)

// FreeAddr returns a 127.0.0.1 address with a TCP port nothing listens on
// right now. Another program could take it before the test binds it; the
// server under test then fails to start and says so.
func FreeAddr(t testing.TB) string {
	t.Helper()
	return FreeAddrOn(t, "127.0.0.1")
}

// FreeAddrOn is FreeAddr on another loopback host (127.x.y.z).
func FreeAddrOn(t testing.TB, host string) string {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatalf("find a free TCP port on %s: %v", host, err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// FreePort is the port of FreeAddr.
func FreePort(t testing.TB) int {
	t.Helper()
	_, p, _ := net.SplitHostPort(FreeAddr(t))
	port, _ := strconv.Atoi(p)
	return port
}

// FreeUDPPort returns a UDP port (as the text a configuration holds) free
// on every one of hosts (127.0.0.1 when none is named) right now, for a
// server that binds it on each.
func FreeUDPPort(t testing.TB, hosts ...string) string {
	t.Helper()
	if len(hosts) == 0 {
		hosts = []string{"127.0.0.1"}
	}
	for range 20 {
		first, err := net.ListenPacket("udp", net.JoinHostPort(hosts[0], "0"))
		if err != nil {
			t.Fatalf("find a free UDP port on %s: %v", hosts[0], err)
		}
		port := first.LocalAddr().(*net.UDPAddr).Port
		held := []net.PacketConn{first}
		free := true
		for _, h := range hosts[1:] {
			c, err := net.ListenPacket("udp", net.JoinHostPort(h, fmt.Sprint(port)))
			if err != nil {
				free = false
				break
			}
			held = append(held, c)
		}
		for _, c := range held {
			c.Close()
		}
		if free {
			return strconv.Itoa(port)
		}
	}
	t.Fatalf("no UDP port free on all of %s", strings.Join(hosts, ", "))
	return ""
}
