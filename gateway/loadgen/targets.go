// Package loadgen makes load for operators: a stream of vegeta JSON targets
// that bet and read balances as a pool of authenticated test players would
// (fresh bets, retries of earlier bets under the same Idempotency-Key,
// balance reads), and a check that compares what vegeta saw acknowledged
// with what the ledger writers applied.
//
// Every bet target repeats its Idempotency-Key in the URL's fragment
// (https://edge/api/bets#KEY). A fragment never leaves the client, so the
// edge sees an ordinary request, but vegeta's results keep the target URL,
// which tells Verify which key each answer belongs to.
package loadgen

import (
	"bufio"
	crand "crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"hedge/configs"
	"hedge/gateway/jwtauth"
)

// The demo's money routes (configs/demo.yaml).
const (
	BetsPath    = "/api/bets"
	BalancePath = "/api/wallet/balance"
)

// Selections a bet picks from (baccarat).
var selections = [...]string{"banker", "player", "tie"}

// retryWindow bounds how many earlier bets a retry chooses from, so an
// endless stream keeps constant memory.
const retryWindow = 1 << 16

// Settings describe a target stream. The zero value of a field means its
// default.
type Settings struct {
	// Edges are the base URLs targets call, each target one of them at
	// random (a retry too, as a client whose DNS answer changed would);
	// default https://play.edge.test:8443. Give each edge its own name
	// (sea.edge.test, eu.edge.test) to spread load over them: vegeta
	// reuses a host's most recent connection, so edges behind one name
	// get the load unevenly.
	Edges        []string
	Players      int     // test players, each with one token; default 100
	RetryShare   float64 // share of targets that retry an earlier bet
	BalanceShare float64 // share of targets that read a balance
	// Count is how many targets to write; 0 writes until the reader goes
	// away (vegeta attack -lazy).
	Count int
	// Seed makes the stream reproducible (keys, players, choices; tokens
	// still carry the time they were signed); 0 picks one at random.
	Seed     uint64
	Table    string        // default bacc-07
	Amount   string        // default 1.00
	Currency string        // default EUR
	TokenTTL time.Duration // default 1h
	// Domains are the ledger domains players are spread over, round
	// robin, through the token's domain claim, so a player's bets go to
	// its domain's writer through whichever edge they reach. Nil means
	// every domain that has a writer in the configuration; an empty,
	// non-nil slice means no domain claim (the edge's region decides).
	Domains []string
}

func (s *Settings) defaults(cfg *configs.Config) {
	if len(s.Edges) == 0 {
		s.Edges = []string{"https://play.edge.test:8443"}
	}
	edges := make([]string, len(s.Edges)) // not the caller's array
	for i, e := range s.Edges {
		edges[i] = strings.TrimRight(e, "/")
	}
	s.Edges = edges
	if s.Players == 0 {
		s.Players = 100
	}
	if s.Table == "" {
		s.Table = "bacc-07"
	}
	if s.Amount == "" {
		s.Amount = "1.00"
	}
	if s.Currency == "" {
		s.Currency = "EUR"
	}
	if s.TokenTTL == 0 {
		s.TokenTTL = time.Hour
	}
	if s.Domains == nil {
		s.Domains = WriterDomains(cfg)
	}
}

func (s *Settings) validate() error {
	var errs []error
	for _, e := range s.Edges {
		u, err := url.Parse(e)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("edge %q: %w", e, err))
		case u.Scheme != "https" && u.Scheme != "http", u.Host == "", u.RawQuery != "", u.Fragment != "":
			errs = append(errs, fmt.Errorf("edge %q: want a base URL such as https://play.edge.test:8443", e))
		}
	}
	if s.Players < 1 {
		errs = append(errs, fmt.Errorf("players %d: want at least 1", s.Players))
	}
	if s.RetryShare < 0 || s.BalanceShare < 0 || s.RetryShare+s.BalanceShare > 1 {
		errs = append(errs, fmt.Errorf("retry share %g and balance share %g: want each ≥ 0 and together ≤ 1", s.RetryShare, s.BalanceShare))
	}
	if s.Count < 0 {
		errs = append(errs, fmt.Errorf("count %d: want 0 (endless) or more", s.Count))
	}
	if s.TokenTTL < 0 {
		errs = append(errs, fmt.Errorf("token ttl %s: must not be negative", s.TokenTTL))
	}
	return errors.Join(errs...)
}

// WriterDomains lists the ledger domains that have a writer in cfg, in
// the order the configuration names them.
func WriterDomains(cfg *configs.Config) []string {
	var out []string
	seen := map[string]bool{}
	for _, r := range cfg.Regions {
		for _, w := range r.Writers {
			if !seen[w.Domain] {
				seen[w.Domain] = true
				out = append(out, w.Domain)
			}
		}
	}
	if out == nil {
		out = []string{}
	}
	return out
}

// Player is one test player: its subject, ledger domain and token.
type Player struct {
	Subject, Domain, Token string
}

// bet is what a retry needs to repeat an earlier bet byte for byte.
type bet struct {
	player int32
	sel    uint8
	key    [36]byte
}

// Generator writes targets. It is not safe for concurrent use.
type Generator struct {
	s       Settings
	rng     *rand.Rand
	players []Player

	// Pre-rendered pieces of every target line.
	betURL     [][]byte   // per edge: {"method":"POST","url":"EDGE/api/bets#
	betAuth    [][]byte   // per player: ","header":{"Authorization":["Bearer TOK"],"Content-Type":["application/json"],"Idempotency-Key":["
	betBodies  [][]byte   // per selection: "]},"body":"BASE64"}\n
	balanceTgt [][][]byte // per edge and player: the whole balance-read line

	earlier []bet // ring of the last retryWindow fresh bets
	next    int   // where the ring's next bet goes
	line    []byte
}

// New signs one token per player with cfg's auth.jwt keys and prepares
// the stream.
func New(cfg *configs.Config, s Settings) (*Generator, error) {
	s.defaults(cfg)
	if err := s.validate(); err != nil {
		return nil, fmt.Errorf("loadgen: %w", err)
	}
	seed := s.Seed
	for seed == 0 {
		var b [8]byte
		crand.Read(b[:])
		seed = binary.LittleEndian.Uint64(b[:])
	}
	g := &Generator{s: s, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}

	edges := make([][]byte, len(s.Edges))
	for i, e := range s.Edges {
		q := quote(e)
		edges[i] = q[1 : len(q)-1] // JSON-escaped
		g.betURL = append(g.betURL, fmt.Appendf(nil, `{"method":"POST","url":"%s%s#`, edges[i], BetsPath))
	}
	g.balanceTgt = make([][][]byte, len(edges))
	for _, sel := range selections {
		// Field order as a client writes it (json.Marshal of a map sorts).
		body := fmt.Appendf(nil, `{"table":%s,"amount":%s,"currency":%s,"selection":%s}`,
			quote(s.Table), quote(s.Amount), quote(s.Currency), quote(sel))
		g.betBodies = append(g.betBodies, fmt.Appendf(nil, `"]},"body":"%s"}`+"\n", base64.StdEncoding.EncodeToString(body)))
	}
	for i := range s.Players {
		p := Player{Subject: "load-" + strconv.Itoa(i+1)}
		if len(s.Domains) > 0 {
			p.Domain = s.Domains[i%len(s.Domains)]
		}
		tok, err := jwtauth.Sign(cfg.Auth.JWT, p.Subject, p.Domain, s.TokenTTL)
		if err != nil {
			return nil, fmt.Errorf("loadgen: signing player tokens: %w", err)
		}
		p.Token = tok
		g.players = append(g.players, p)
		g.betAuth = append(g.betAuth, fmt.Appendf(nil,
			`","header":{"Authorization":["Bearer %s"],"Content-Type":["application/json"],"Idempotency-Key":["`, tok))
		for e, edge := range edges {
			g.balanceTgt[e] = append(g.balanceTgt[e], fmt.Appendf(nil,
				`{"method":"GET","url":"%s%s","header":{"Authorization":["Bearer %s"]}}`+"\n", edge, BalancePath, tok))
		}
	}
	return g, nil
}

func quote(s string) []byte {
	b, _ := json.Marshal(s)
	return b
}

// Players returns the test players and their tokens.
func (g *Generator) Players() []Player { return g.players }

// Next returns the next target line (a JSON object and a newline). The
// slice is valid until the following call.
func (g *Generator) Next() []byte {
	r := g.rng.Float64()
	switch {
	case r < g.s.BalanceShare:
		return g.balanceTgt[g.rng.IntN(len(g.betURL))][g.rng.IntN(len(g.players))]
	case r < g.s.BalanceShare+g.s.RetryShare && len(g.earlier) > 0:
		return g.render(g.earlier[g.rng.IntN(len(g.earlier))])
	}
	b := bet{player: int32(g.rng.IntN(len(g.players))), sel: uint8(g.rng.IntN(len(selections)))}
	g.newKey(&b.key)
	if len(g.earlier) < retryWindow {
		g.earlier = append(g.earlier, b)
	} else {
		g.earlier[g.next] = b
		g.next = (g.next + 1) % retryWindow
	}
	return g.render(b)
}

func (g *Generator) render(b bet) []byte {
	l := append(g.line[:0], g.betURL[g.rng.IntN(len(g.betURL))]...)
	l = append(l, b.key[:]...)
	l = append(l, g.betAuth[b.player]...)
	l = append(l, b.key[:]...)
	l = append(l, g.betBodies[b.sel]...)
	g.line = l
	return l
}

// newKey writes a random UUID (version 4 layout) into k.
func (g *Generator) newKey(k *[36]byte) {
	var u [16]byte
	a, b := g.rng.Uint64(), g.rng.Uint64()
	for i := range 8 {
		u[i], u[8+i] = byte(a>>(8*i)), byte(b>>(8*i))
	}
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	hex.Encode(k[0:8], u[0:4])
	k[8] = '-'
	hex.Encode(k[9:13], u[4:6])
	k[13] = '-'
	hex.Encode(k[14:18], u[6:8])
	k[18] = '-'
	hex.Encode(k[19:23], u[8:10])
	k[23] = '-'
	hex.Encode(k[24:36], u[10:16])
}

// WriteTo writes the stream to w: Settings.Count targets, or, when Count
// is 0, targets until writing fails. A reader that goes away (EPIPE:
// vegeta finished its attack) ends the stream without an error.
func (g *Generator) WriteTo(w io.Writer) (int64, error) {
	bw := bufio.NewWriterSize(w, 64<<10)
	var n int64
	for i := 0; g.s.Count == 0 || i < g.s.Count; i++ {
		m, err := bw.Write(g.Next())
		n += int64(m)
		if err != nil {
			return n, quietPipe(err)
		}
	}
	return n, quietPipe(bw.Flush())
}

func quietPipe(err error) error {
	if errors.Is(err, syscall.EPIPE) {
		return nil
	}
	return err
}
