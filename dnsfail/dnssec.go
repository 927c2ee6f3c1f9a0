package dnsfail

import (
	"crypto"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"hedge/configs"
)

// Online DNSSEC signing. A signed zone publishes its DNSKEY, CDS and
// CDNSKEY at the apex; a query with the DO bit gets an RRSIG beside each
// RRset of its answer and authority sections, made when first needed and
// cached while more than half of its validity is left, so a service name's
// answers are signed again only when they change. Denial is compact (RFC
// 9824): the name asked for gets an NSEC of its own, whose next name is
// "\000.<name>" and whose type bitmap lists what the name has — NXNAME for
// a name that does not exist, answered with NOERROR — so one signature on
// the fly proves any negative answer without revealing the zone's names.
// Names a wildcard answers for are signed as the names asked for (an
// online signer's freedom), so they validate without a wildcard proof.

// typeNXNAME is the NSEC bitmap's sign of a name that does not exist (RFC
// 9824 §3).
const typeNXNAME = 128

// dnssecKey is one key of a zone with its private half.
type dnssecKey struct {
	dnskey *dns.DNSKEY
	priv   crypto.Signer
}

func algorithmOf(name string) (uint8, int, error) {
	switch name {
	case "ecdsap256sha256", "":
		return dns.ECDSAP256SHA256, 256, nil
	case "ed25519":
		return dns.ED25519, 256, nil
	}
	return 0, 0, fmt.Errorf("unknown DNSSEC algorithm %q", name)
}

// keyBase is a key's file name without extension, as BIND and Knot's
// keymgr write it: K<zone>+<algorithm>+<tag>.
func keyBase(dir string, k *dns.DNSKEY) string {
	return filepath.Join(dir, fmt.Sprintf("K%s+%03d+%05d", dns.CanonicalName(k.Hdr.Name), k.Algorithm, k.KeyTag()))
}

// generateKeys makes the keys of zone apex into dir: one combined signing
// key (flags 257) for layout "csk", a KSK (257) and a ZSK (256) for
// "ksk+zsk".
func generateKeys(dir, apex, algorithm, layout string) ([]*dns.DNSKEY, error) {
	alg, bits, err := algorithmOf(algorithm)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	flags := []uint16{257}
	if layout == "ksk+zsk" {
		flags = append(flags, 256)
	}
	var out []*dns.DNSKEY
	for _, f := range flags {
		k := &dns.DNSKEY{Hdr: dns.RR_Header{Name: dns.CanonicalName(apex), Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET, Ttl: 3600},
			Flags: f, Protocol: 3, Algorithm: alg}
		priv, err := k.Generate(bits)
		if err != nil {
			return nil, err
		}
		base := keyBase(dir, k)
		if err := os.WriteFile(base+".private", []byte(k.PrivateKeyString(priv)), 0o600); err != nil {
			return nil, err
		}
		if err := os.WriteFile(base+".key", []byte(k.String()+"\n"), 0o644); err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, nil
}

// loadKeys reads the keys of apex from dir: the key-signing key (flags
// 257) and the zone-signing key (256), the same key when there is only a
// combined one.
func loadKeys(dir, apex string) (ksk, zsk *dnssecKey, err error) {
	files, _ := filepath.Glob(filepath.Join(dir, "K"+dns.CanonicalName(apex)+"+*.key"))
	slices.Sort(files)
	for _, file := range files {
		k, err := readKey(file)
		if err != nil {
			return nil, nil, err
		}
		switch {
		case k.dnskey.Flags&dns.SEP != 0 && ksk == nil:
			ksk = k
		case k.dnskey.Flags&dns.SEP == 0 && zsk == nil:
			zsk = k
		}
	}
	if ksk == nil {
		return nil, nil, fmt.Errorf("no key-signing key for %s in %s (hedge dnssec keygen makes one)", apex, dir)
	}
	if zsk == nil {
		zsk = ksk
	}
	return ksk, zsk, nil
}

func readKey(file string) (*dnssecKey, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	rr, err := dns.NewRR(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	k, ok := rr.(*dns.DNSKEY)
	if !ok {
		return nil, fmt.Errorf("%s: not a DNSKEY", file)
	}
	priv := strings.TrimSuffix(file, ".key") + ".private"
	f, err := os.Open(priv)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	p, err := k.ReadPrivateKey(f, priv)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", priv, err)
	}
	s, ok := p.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: the key cannot sign", priv)
	}
	return &dnssecKey{dnskey: k, priv: s}, nil
}

// KeyGen makes DNSSEC keys for every zone of cfg with dnssec enabled (or
// only zone) that has none yet, and writes what the parent needs (DS) to w.
func KeyGen(cfg *configs.Config, zone string, w io.Writer) error {
	done := false
	for _, zc := range cfg.DNS.Zones {
		apex := dns.CanonicalName(zc.Name)
		if zone != "" && apex != dns.CanonicalName(zone) || zone == "" && !zc.DNSSEC.Enabled {
			continue
		}
		done = true
		dir := configs.DNSSECKeyDir(cfg, apex)
		if _, _, err := loadKeys(dir, apex); err == nil {
			fmt.Fprintf(w, "; %s already has keys in %s\n", apex, dir)
		} else if _, err := generateKeys(dir, apex, zc.DNSSEC.Algorithm, zc.DNSSEC.Keys); err != nil {
			return fmt.Errorf("%s: %w", apex, err)
		} else {
			fmt.Fprintf(w, "; %s: new %s keys (%s) in %s\n", apex, zc.DNSSEC.Keys, zc.DNSSEC.Algorithm, dir)
		}
		if err := writeDS(w, dir, apex); err != nil {
			return err
		}
	}
	if !done {
		return errors.New("no zone to make keys for (set dns.zones[].dnssec.enabled, or name one with -zone)")
	}
	return nil
}

// PrintDS writes the DS records of every signed zone of cfg (or only zone)
// for their parents.
func PrintDS(cfg *configs.Config, zone string, w io.Writer) error {
	for _, zc := range cfg.DNS.Zones {
		apex := dns.CanonicalName(zc.Name)
		if zone != "" && apex != dns.CanonicalName(zone) || zone == "" && !zc.DNSSEC.Enabled {
			continue
		}
		if err := writeDS(w, configs.DNSSECKeyDir(cfg, apex), apex); err != nil {
			return err
		}
	}
	return nil
}

func writeDS(w io.Writer, dir, apex string) error {
	ksk, _, err := loadKeys(dir, apex)
	if err != nil {
		return err
	}
	fmt.Fprintln(w, ksk.dnskey.ToDS(dns.SHA256).String())
	return nil
}

// signer signs one zone's RRsets and keeps the signatures.
type signer struct {
	apex     string
	ksk, zsk *dnssecKey
	validity time.Duration
	negTTL   uint32

	mu    sync.Mutex
	cache map[[sha256.Size]byte]*dns.RRSIG
}

// maxSignatures bounds the cache: names that do not exist each get a
// signature, and a flood of random names must not grow it without end.
const maxSignatures = 1 << 16

// newSigner loads z's keys and publishes them at its apex: DNSKEY, and CDS
// and CDNSKEY of the key-signing key for the parent (RFC 7344).
func newSigner(cfg *configs.Config, zc configs.Zone, z *zone) (*signer, error) {
	ksk, zsk, err := loadKeys(configs.DNSSECKeyDir(cfg, z.apex), z.apex)
	if err != nil {
		return nil, err
	}
	s := &signer{apex: z.apex, ksk: ksk, zsk: zsk, validity: zc.DNSSEC.SignatureValidity.D(), negTTL: z.negTTL,
		cache: map[[sha256.Size]byte]*dns.RRSIG{}}
	ttl := secs(zc.TTL)
	for _, k := range []*dnssecKey{ksk, zsk} {
		key := *k.dnskey
		key.Hdr = dns.RR_Header{Name: z.apex, Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET, Ttl: ttl}
		z.add(z.apex, &key)
		if k == zsk {
			break
		}
	}
	ds := ksk.dnskey.ToDS(dns.SHA256)
	cds := ds.ToCDS()
	cds.Hdr = dns.RR_Header{Name: z.apex, Rrtype: dns.TypeCDS, Class: dns.ClassINET, Ttl: ttl}
	cdnskey := ksk.dnskey.ToCDNSKEY()
	cdnskey.Hdr = dns.RR_Header{Name: z.apex, Rrtype: dns.TypeCDNSKEY, Class: dns.ClassINET, Ttl: ttl}
	z.add(z.apex, cds)
	z.add(z.apex, cdnskey)
	return s, nil
}

// rrsig is the signature of rrset (one owner, one type), whose records are
// at most origTTL seconds old in caches (RFC 4034 §3.1.4: the TTL the
// signature covers; answers may hand out less).
func (s *signer) rrsig(rrset []dns.RR, origTTL uint32, now time.Time) (*dns.RRSIG, error) {
	key := s.cacheKey(rrset, origTTL)
	s.mu.Lock()
	sig := s.cache[key]
	s.mu.Unlock()
	if sig != nil && now.Add(s.validity/2).Before(time.Unix(int64(sig.Expiration), 0)) {
		return sig, nil
	}
	k := s.zsk
	switch rrset[0].Header().Rrtype {
	case dns.TypeDNSKEY, dns.TypeCDS, dns.TypeCDNSKEY:
		k = s.ksk // RFC 7344 §4.1: signed by a key the parent's DS names
	}
	sig = &dns.RRSIG{Hdr: dns.RR_Header{Ttl: origTTL}, Algorithm: k.dnskey.Algorithm, SignerName: s.apex, KeyTag: k.dnskey.KeyTag(),
		OrigTtl: origTTL, Inception: uint32(now.Add(-time.Hour).Unix()), Expiration: uint32(now.Add(s.validity).Unix())}
	if err := sig.Sign(k.priv, rrset); err != nil {
		return nil, err
	}
	s.mu.Lock()
	if len(s.cache) >= maxSignatures {
		clear(s.cache)
	}
	s.cache[key] = sig
	s.mu.Unlock()
	return sig, nil
}

// cacheKey identifies an RRset whatever its letter case and TTLs.
func (s *signer) cacheKey(rrset []dns.RR, origTTL uint32) [sha256.Size]byte {
	h := sha256.New()
	var buf [512]byte
	binary.BigEndian.PutUint32(buf[:], origTTL)
	h.Write(buf[:4])
	for _, rr := range rrset {
		b := buf[:]
		n, err := dns.PackRR(rr, b, 0, nil, false)
		if err != nil {
			b = make([]byte, dns.MaxMsgSize)
			n, _ = dns.PackRR(rr, b, 0, nil, false)
		}
		b = b[:n]
		end := skipName(b, 0)
		for i := range max(end, 0) {
			if 'A' <= b[i] && b[i] <= 'Z' {
				b[i] += 'a' - 'A'
			}
		}
		if end >= 0 && end+8 <= len(b) {
			clear(b[end+4 : end+8]) // the TTL
		}
		h.Write(b)
	}
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}

// signed returns rrs (records of one or more RRsets, each contiguous) with
// each RRset's signature after it, named and timed as its records.
// origTTL, when not 0, is what the signatures cover; else each RRset's own
// TTL.
func (s *signer) signed(rrs []dns.RR, origTTL uint32) []dns.RR {
	now := time.Now()
	out := make([]dns.RR, 0, len(rrs)+2)
	for start := 0; start < len(rrs); {
		h := rrs[start].Header()
		end := start + 1
		for end < len(rrs) && rrs[end].Header().Rrtype == h.Rrtype && strings.EqualFold(rrs[end].Header().Name, h.Name) {
			end++
		}
		out = append(out, rrs[start:end]...)
		ttl := origTTL
		if ttl == 0 {
			ttl = h.Ttl
		}
		if sig, err := s.rrsig(rrs[start:end], ttl, now); err == nil {
			c := *sig
			c.Hdr.Name, c.Hdr.Ttl = h.Name, h.Ttl
			out = append(out, &c)
		}
		start = end
	}
	return out
}

// nsec is the compact-denial NSEC of lname (lower case): the name and,
// next to it, "\000.<name>", with the types the name has (RFC 9824 §3).
func (s *signer) nsec(lname string, types []uint16) dns.RR {
	bitmap := append(slices.Clone(types), dns.TypeRRSIG, dns.TypeNSEC)
	slices.Sort(bitmap)
	bitmap = slices.Compact(bitmap)
	return &dns.NSEC{Hdr: dns.RR_Header{Name: lname, Rrtype: dns.TypeNSEC, Class: dns.ClassINET, Ttl: s.negTTL},
		NextDomain: `\000.` + lname, TypeBitMap: bitmap}
}
