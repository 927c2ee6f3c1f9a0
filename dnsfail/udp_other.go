//go:build !(linux && (amd64 || arm64))

package dnsfail

import "net"

// loopSyscalls exists on Linux only (udp_linux.go).
func (u *udpServer) loopSyscalls(*net.UDPConn) bool { return false }
