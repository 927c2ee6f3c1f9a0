package stream

import (
	"encoding/binary"
	"unsafe"

	"golang.org/x/sys/unix"
)

// UDP GSO (UDP_SEGMENT) is Linux's; the kernel splits a train into
// datagrams of the size the control message names.
const gsoSupported = true

func udpSegmentCmsg() []byte {
	b := make([]byte, unix.CmsgSpace(2))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level = unix.SOL_UDP
	h.Type = unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	return b
}

func setSegmentSize(cmsg []byte, size int) {
	binary.NativeEndian.PutUint16(cmsg[unix.CmsgLen(0):], uint16(size))
}
