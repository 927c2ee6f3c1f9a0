package dnsfail

import (
	"encoding/binary"
	"net"
	"time"

	"github.com/miekg/dns"
)

// Malformed queries the dns package's parser lets through, caught on the
// wire before it sees them: a question cut before its type or class (the
// parser fills in zeros, and a class-0 question would be REFUSED), and an
// EDNS Client Subnet address with more or fewer octets than its source
// prefix needs (the parser pads and cuts addresses; RFC 7871 §6 asks for
// FORMERR).

// wireFormErr says whether query must get FORMERR from its bytes alone.
// What it cannot walk it leaves to the parser.
func wireFormErr(query []byte) bool {
	if len(query) < 12 {
		return true
	}
	count := func(i int) int { return int(binary.BigEndian.Uint16(query[4+2*i:])) }
	off := 12
	for range count(0) {
		if off = skipName(query, off); off < 0 || off+4 > len(query) {
			return true
		}
		off += 4
	}
	for i := range count(1) + count(2) + count(3) {
		if off = skipName(query, off); off < 0 || off+10 > len(query) {
			return false
		}
		rtype := binary.BigEndian.Uint16(query[off:])
		rdata := off + 10
		end := rdata + int(binary.BigEndian.Uint16(query[off+8:]))
		if end > len(query) {
			return false
		}
		if i >= count(1)+count(2) && rtype == dns.TypeOPT && badECS(query[rdata:end]) {
			return true
		}
		off = end
	}
	return false
}

// badECS says whether the options of an OPT record hold a Client Subnet
// option whose address does not have exactly the octets its source prefix
// needs.
func badECS(opts []byte) bool {
	for len(opts) >= 4 {
		code, n := binary.BigEndian.Uint16(opts), int(binary.BigEndian.Uint16(opts[2:]))
		if 4+n > len(opts) {
			return false
		}
		if code == dns.EDNS0SUBNET {
			if n < 4 {
				return true
			}
			source := int(opts[6])
			if n-4 != (source+7)/8 {
				return true
			}
		}
		opts = opts[4+n:]
	}
	return false
}

// headerOnly is a query with the header of query and nothing else, which
// the full handler answers with FORMERR (or NOTIMP for another opcode).
func headerOnly(query []byte) *dns.Msg {
	bits := binary.BigEndian.Uint16(query[2:])
	return &dns.Msg{MsgHdr: dns.MsgHdr{Id: binary.BigEndian.Uint16(query), Opcode: int(bits>>11) & 0xF,
		RecursionDesired: bits&(1<<8) != 0, CheckingDisabled: bits&(1<<4) != 0}}
}

// acceptQueries lets every query reach the handler, which answers opcodes
// and section counts itself (and keeps the OPT in those replies); replies
// are dropped.
func acceptQueries(h dns.Header) dns.MsgAcceptAction {
	if h.Bits&(1<<15) != 0 {
		return dns.MsgIgnore
	}
	return dns.MsgAccept
}

// tcpReader puts wireFormErr in front of the dns package's TCP server: a
// query it catches reaches the handler as a bare header.
type tcpReader struct{ dns.Reader }

func (r tcpReader) ReadTCP(conn net.Conn, timeout time.Duration) ([]byte, error) {
	b, err := r.Reader.ReadTCP(conn, timeout)
	if err == nil && len(b) >= 12 && wireFormErr(b) {
		b = append(b[:4:4], make([]byte, 8)...) // all counts zero
	}
	return b, err
}
