package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/dtls/v3/pkg/crypto/selfsign"
	"github.com/pion/ice/v4"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"github.com/pion/stun/v3"
	"golang.org/x/net/ipv4"
)

// peer is one measuring WHEP viewer built from pion's parts (stun, dtls,
// srtp) instead of a PeerConnection: one loopback socket and one read loop
// that takes datagrams in batches (recvmmsg), answers the node's ICE
// checks, feeds the DTLS handshake and decrypts SRTP in place. A
// PeerConnection hands every packet through several goroutines; 400 of
// them filled the client core before the node under test was full.
type peer struct {
	conn   *net.UDPConn
	ufrag  string
	pwd    string
	remote netip.AddrPort // the node's ICE address, from the answer
	rUfrag string
	rPwd   string
	rFP    []byte // the node's certificate fingerprint, from the answer

	dtlsIn chan []byte
	dtls   atomic.Pointer[dtls.Conn]
	srtp   *srtp.Context // set once the handshake is done; read loop only
	keys   chan *srtp.Context
	onRTP  func(pkt []byte, at time.Time)
	done   chan struct{}
	closed sync.Once
	loop   sync.WaitGroup
}

var (
	certOnce sync.Once
	cert     tls.Certificate
	certFP   string
	certErr  error
)

// peerCert is every peer's DTLS certificate (one for the process).
func peerCert() (tls.Certificate, string, error) {
	certOnce.Do(func() {
		cert, certErr = selfsign.GenerateSelfSigned()
		if certErr == nil {
			sum := sha256.Sum256(cert.Certificate[0])
			certFP = colonHex(sum[:])
		}
	})
	return cert, certFP, certErr
}

func colonHex(b []byte) string {
	h := strings.ToUpper(hex.EncodeToString(b))
	var parts []string
	for i := 0; i < len(h); i += 2 {
		parts = append(parts, h[i:i+2])
	}
	return strings.Join(parts, ":")
}

func randomString(n int) string {
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = letters[int(b[i])%len(letters)]
	}
	return string(b)
}

func newPeer(onRTP func([]byte, time.Time)) (*peer, error) {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	_ = c.SetReadBuffer(1 << 20)
	return &peer{conn: c, ufrag: randomString(8), pwd: randomString(24), onRTP: onRTP,
		dtlsIn: make(chan []byte, 64), keys: make(chan *srtp.Context, 1), done: make(chan struct{})}, nil
}

// offer is a recvonly audio+video offer: H.264 and Opus, one host candidate.
func (p *peer) offer() (string, error) {
	_, fp, err := peerCert()
	if err != nil {
		return "", err
	}
	a := p.conn.LocalAddr().(*net.UDPAddr)
	var b strings.Builder
	fmt.Fprintf(&b, "v=0\r\no=- %d 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n", time.Now().UnixNano()&0xffffffff)
	media := []struct{ kind, pt, rtpmap, fmtp string }{
		{"video", "102", "H264/90000", h264Fmtp},
		{"audio", "111", "opus/48000/2", "minptime=10;useinbandfec=1"},
	}
	for i, m := range media {
		fmt.Fprintf(&b, "m=%s 9 UDP/TLS/RTP/SAVPF %s\r\nc=IN IP4 0.0.0.0\r\n", m.kind, m.pt)
		fmt.Fprintf(&b, "a=mid:%d\r\na=recvonly\r\na=rtcp-mux\r\na=setup:actpass\r\n", i)
		fmt.Fprintf(&b, "a=ice-ufrag:%s\r\na=ice-pwd:%s\r\na=fingerprint:sha-256 %s\r\n", p.ufrag, p.pwd, fp)
		fmt.Fprintf(&b, "a=rtpmap:%s %s\r\na=fmtp:%s %s\r\n", m.pt, m.rtpmap, m.pt, m.fmtp)
		fmt.Fprintf(&b, "a=candidate:1 1 udp 2130706431 %s %d typ host\r\na=end-of-candidates\r\n", a.IP, a.Port)
	}
	return b.String(), nil
}

// answer takes the node's ICE credentials, candidate and fingerprint.
func (p *peer) answer(sdp string) error {
	for line := range strings.SplitSeq(sdp, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "a=ice-ufrag:") && p.rUfrag == "":
			p.rUfrag = strings.TrimPrefix(line, "a=ice-ufrag:")
		case strings.HasPrefix(line, "a=ice-pwd:") && p.rPwd == "":
			p.rPwd = strings.TrimPrefix(line, "a=ice-pwd:")
		case strings.HasPrefix(line, "a=fingerprint:sha-256 ") && p.rFP == nil:
			fp, err := hex.DecodeString(strings.ReplaceAll(strings.TrimPrefix(line, "a=fingerprint:sha-256 "), ":", ""))
			if err != nil {
				return fmt.Errorf("answer fingerprint: %w", err)
			}
			p.rFP = fp
		case strings.HasPrefix(line, "a=candidate:") && !p.remote.IsValid():
			// foundation component transport priority address port typ type
			f := strings.Fields(strings.TrimPrefix(line, "a=candidate:"))
			if len(f) >= 8 && strings.EqualFold(f[2], "udp") {
				if ap, err := netip.ParseAddrPort(net.JoinHostPort(f[4], f[5])); err == nil && ap.Addr().Is4() {
					p.remote = ap
				}
			}
		}
	}
	if p.rUfrag == "" || p.rPwd == "" || p.rFP == nil || !p.remote.IsValid() {
		return errors.New("answer lacks ICE credentials, an IPv4 UDP candidate or a fingerprint")
	}
	return nil
}

// start runs the read loop, ICE checks and the DTLS handshake; media flows
// to onRTP once it returns nil.
func (p *peer) start(ctx context.Context) error {
	p.loop.Add(1)
	go p.read()
	checks := time.NewTicker(50 * time.Millisecond)
	defer checks.Stop()
	hs := make(chan error, 1)
	go func() { hs <- p.handshake(ctx) }()
	p.check()
	for {
		select {
		case err := <-hs:
			return err
		case <-checks.C:
			p.check() // until the handshake is through: ICE is up by then
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// check sends an ICE connectivity check nominating the one pair.
func (p *peer) check() {
	m, err := stun.Build(stun.TransactionID, stun.BindingRequest,
		stun.NewUsername(p.rUfrag+":"+p.ufrag), ice.PriorityAttr(2130706431),
		ice.AttrControlling(1), ice.UseCandidate(),
		stun.NewShortTermIntegrity(p.rPwd), stun.Fingerprint)
	if err == nil {
		_, _ = p.conn.WriteToUDPAddrPort(m.Raw, p.remote)
	}
}

// handshake is the DTLS server side (the node answers setup:active).
func (p *peer) handshake(ctx context.Context) error {
	c, _, err := peerCert()
	if err != nil {
		return err
	}
	conn, err := dtls.ServerWithOptions(&dtlsConn{p: p}, net.UDPAddrFromAddrPort(p.remote),
		dtls.WithCertificates(c),
		dtls.WithSRTPProtectionProfiles(dtls.SRTP_AEAD_AES_128_GCM, dtls.SRTP_AES128_CM_HMAC_SHA1_80),
		dtls.WithExtendedMasterSecret(dtls.RequireExtendedMasterSecret),
		dtls.WithClientAuth(dtls.RequireAnyClientCert),
		dtls.WithVerifyPeerCertificate(func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return errors.New("no certificate")
			}
			if sum := sha256.Sum256(raw[0]); string(sum[:]) != string(p.rFP) {
				return errors.New("certificate does not match the answer's fingerprint")
			}
			return nil
		}))
	if err != nil {
		return err
	}
	p.dtls.Store(conn)
	if err := conn.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("dtls: %w", err)
	}
	profile, ok := conn.SelectedSRTPProtectionProfile()
	if !ok {
		return errors.New("dtls: no SRTP profile negotiated")
	}
	state, ok := conn.ConnectionState()
	if !ok {
		return errors.New("dtls: no connection state")
	}
	cfg := srtp.Config{Profile: srtp.ProtectionProfile(profile)}
	if err := cfg.ExtractSessionKeysFromDTLS(&state, false); err != nil {
		return err
	}
	sc, err := srtp.CreateContext(cfg.Keys.RemoteMasterKey, cfg.Keys.RemoteMasterSalt, cfg.Profile)
	if err != nil {
		return err
	}
	p.keys <- sc
	return nil
}

// read is the peer's only reader: ICE checks are answered, DTLS records
// handed to the handshake, SRTP decrypted and passed to onRTP.
func (p *peer) read() {
	defer p.loop.Done()
	pc := ipv4.NewPacketConn(p.conn)
	msgs := make([]ipv4.Message, 16)
	for i := range msgs {
		msgs[i].Buffers = [][]byte{make([]byte, 1600)}
	}
	dst := make([]byte, 1600)
	var hdr rtp.Header
	for {
		n, err := pc.ReadBatch(msgs, 0)
		if err != nil {
			return
		}
		now := time.Now()
		if p.srtp == nil {
			select {
			case p.srtp = <-p.keys:
			default:
			}
		}
		for _, m := range msgs[:n] {
			b := m.Buffers[0][:m.N]
			if len(b) < 2 {
				continue
			}
			switch {
			case b[0] < 4:
				p.answerCheck(b)
			case b[0] >= 20 && b[0] < 64:
				select {
				case p.dtlsIn <- append([]byte(nil), b...):
				default:
				}
			case b[0] >= 128 && b[0] < 192 && (b[1] < 192 || b[1] > 223) && p.srtp != nil:
				if out, err := p.srtp.DecryptRTP(dst, b, &hdr); err == nil {
					p.onRTP(out, now)
				}
			}
		}
	}
}

// answerCheck answers the node's connectivity checks and keepalives, which
// keep the session alive at the node.
func (p *peer) answerCheck(b []byte) {
	var req stun.Message
	if err := stun.Decode(b, &req); err != nil || req.Type != stun.BindingRequest {
		return
	}
	ip := p.remote.Addr().As4()
	res, err := stun.Build(&req, stun.BindingSuccess,
		&stun.XORMappedAddress{IP: ip[:], Port: int(p.remote.Port())},
		stun.NewShortTermIntegrity(p.pwd), stun.Fingerprint)
	if err == nil {
		_, _ = p.conn.WriteToUDPAddrPort(res.Raw, p.remote)
	}
}

func (p *peer) close() {
	p.closed.Do(func() {
		close(p.done) // the handshake's reads end
		_ = p.conn.Close()
		if c := p.dtls.Load(); c != nil {
			_ = c.Close()
		}
	})
	p.loop.Wait()
}

// dtlsConn is the handshake's view of the peer: DTLS records only.
type dtlsConn struct{ p *peer }

func (c *dtlsConn) ReadFrom(b []byte) (int, net.Addr, error) {
	select {
	case r := <-c.p.dtlsIn:
		return copy(b, r), net.UDPAddrFromAddrPort(c.p.remote), nil
	case <-c.p.done:
		return 0, nil, net.ErrClosed
	}
}

func (c *dtlsConn) WriteTo(b []byte, _ net.Addr) (int, error) {
	return c.p.conn.WriteToUDPAddrPort(b, c.p.remote)
}

func (c *dtlsConn) Close() error                       { return nil }
func (c *dtlsConn) LocalAddr() net.Addr                { return c.p.conn.LocalAddr() }
func (c *dtlsConn) SetDeadline(t time.Time) error      { return nil }
func (c *dtlsConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *dtlsConn) SetWriteDeadline(t time.Time) error { return nil }
