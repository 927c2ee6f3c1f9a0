package stream

import (
	"net"
	"testing"

	"golang.org/x/sys/unix"
)

// noChecksums turns off c's UDP checksums (SO_NO_CHECK): Linux then
// refuses GSO trains on it.
func noChecksums(t *testing.T, c *net.UDPConn) {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_NO_CHECK, 1) }); err != nil || serr != nil {
		t.Fatalf("SO_NO_CHECK: %v %v", err, serr)
	}
}
