package drill

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/miekg/dns"
)

const betBody = `{"table":"bacc-07","amount":"1.00","currency":"EUR","selection":"banker"}`

// playerToken signs a player's bearer token as the deployment's identity
// provider would (HS256, the drill's own secret).
func playerToken(secret, audience, sub, domain string) (string, error) {
	now := time.Now()
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": sub, "iss": "hedge-drill", "aud": []string{audience}, "ledger_domain": domain,
		"iat": now.Unix(), "nbf": now.Add(-time.Minute).Unix(), "exp": now.Add(2 * time.Hour).Unix(),
	})
	t.Header["kid"] = "drill-1"
	return t.SignedString([]byte(secret))
}

// resolve asks server for name's A records over UDP; it returns the
// addresses and the smallest TTL.
func resolve(server, name string, timeout time.Duration) ([]string, time.Duration, error) {
	c := &dns.Client{Net: "udp", Timeout: timeout}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	m.RecursionDesired = false
	r, _, err := c.Exchange(m, server)
	if err != nil {
		return nil, 0, err
	}
	if r.Rcode != dns.RcodeSuccess {
		return nil, 0, fmt.Errorf("%s answered %s", server, dns.RcodeToString[r.Rcode])
	}
	var ips []string
	ttl := time.Hour
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			ips = append(ips, a.A.String())
			ttl = min(ttl, time.Duration(a.Hdr.Ttl)*time.Second)
		}
	}
	if len(ips) == 0 {
		return nil, 0, fmt.Errorf("%s: no addresses for %s", server, name)
	}
	return ips, ttl, nil
}

// Attempt is one request a player sent.
type Attempt struct {
	At      time.Time     `json:"at"`
	Dur     time.Duration `json:"dur"`
	Player  int           `json:"player"`
	Domain  string        `json:"domain"`
	Edge    string        `json:"edge"`
	Kind    string        `json:"kind"`   // bet | balance
	Status  int           `json:"status"` // 0: no HTTP answer (Err says why)
	Problem string        `json:"problem,omitempty"`
	Err     string        `json:"err,omitempty"`
}

// Bet is one bet a player placed, with every attempt it took.
type Bet struct {
	Key      string    `json:"key"`
	Player   int       `json:"player"`
	Account  string    `json:"account"`
	Domain   string    `json:"domain"`
	First    time.Time `json:"first"`
	Acked    bool      `json:"acked"`
	AckAt    time.Time `json:"ack_at"`
	Attempts int       `json:"attempts"`
	Epoch    int64     `json:"epoch,omitempty"`
	BetID    string    `json:"bet_id,omitempty"`
	// Refused is the final answer of a bet the edge or writer refused
	// for good (neither acknowledged nor retried), e.g. "422".
	Refused string `json:"refused,omitempty"`
}

// Resolution is one DNS answer a player used.
type Resolution struct {
	At     time.Time `json:"at"`
	Server string    `json:"server"`
	IPs    []string  `json:"ips"`
}

type player struct {
	id        int
	account   string
	domain    string
	token     string
	resolvers []string // DNS servers, the nearest first
	play      string
	interval  time.Duration
	deadline  time.Duration
	balance   bool
	runID     string
	rng       *rand.Rand

	ip        atomic.Pointer[string]
	expires   time.Time
	transport *http.Transport
	client    *http.Client

	attempts    []Attempt
	bets        []Bet
	resolutions []Resolution
}

func newPlayer(d *deployment, id int, domain string, resolvers []string, balance bool, runID string) (*player, error) {
	p := &player{id: id, account: fmt.Sprintf("p%04d", id), domain: domain, resolvers: resolvers, play: d.playName(),
		interval: d.cfg.BetInterval, deadline: d.cfg.RetryDeadline, balance: balance, runID: runID,
		rng: rand.New(rand.NewPCG(uint64(id), 7))}
	var err error
	if p.token, err = playerToken(d.tokens.JWT, d.playName(), p.account, domain); err != nil {
		return nil, err
	}
	p.transport = d.edgeTransport(&p.ip, 1)
	p.client = &http.Client{Transport: p.transport, Timeout: 7 * time.Second}
	return p, nil
}

// edgeTransport connects to the edge a client's own DNS lookup chose
// (*ip, nil until the first answer) on the edge port, and verifies it as
// play.<zone> against the drill's root, as a player's browser does.
func (d *deployment) edgeTransport(ip *atomic.Pointer[string], maxIdlePerHost int) *http.Transport {
	dialer := &net.Dialer{Timeout: time.Second}
	return &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: d.pki.Pool, ServerName: d.playName()},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			ip := ip.Load()
			if ip == nil {
				return nil, errors.New("not resolved")
			}
			return dialer.DialContext(ctx, network, net.JoinHostPort(*ip, strconv.Itoa(portEdge)))
		},
		MaxIdleConnsPerHost: maxIdlePerHost,
		IdleConnTimeout:     30 * time.Second,
		TLSHandshakeTimeout: 2 * time.Second,
	}
}

// lookup resolves play.<zone> through the player's resolvers in order,
// keeping the edge it uses while the answer still names it (avoid names an
// edge that just failed, to be left when the answer offers another).
func (p *player) lookup(avoid string) error {
	var errs []error
	for _, srv := range p.resolvers {
		ips, ttl, err := resolve(srv, p.play, 400*time.Millisecond)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		p.resolutions = append(p.resolutions, Resolution{At: time.Now(), Server: srv, IPs: ips})
		p.expires = time.Now().Add(ttl)
		cur := p.ip.Load()
		keep := cur != nil && *cur != avoid && contains(ips, *cur)
		if !keep {
			choices := ips
			if len(ips) > 1 && avoid != "" {
				choices = nil
				for _, ip := range ips {
					if ip != avoid {
						choices = append(choices, ip)
					}
				}
			}
			ip := choices[p.rng.IntN(len(choices))]
			p.ip.Store(&ip)
			p.transport.CloseIdleConnections()
		}
		return nil
	}
	return errors.Join(errs...)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (p *player) edge() string {
	if ip := p.ip.Load(); ip != nil {
		return *ip
	}
	return ""
}

// run places a bet every interval until stop is closed; a bet started
// before is retried until acknowledged or its deadline passes.
func (p *player) run(stop <-chan struct{}, start time.Time) {
	// Spread the players over the interval.
	offset := time.Duration(p.rng.Int64N(int64(p.interval)))
	next := start.Add(offset)
	for n := 0; ; n++ {
		select {
		case <-stop:
			return
		case <-time.After(time.Until(next)):
		}
		// A bet that took past the next tick leaves both ready: stop wins.
		select {
		case <-stop:
			return
		default:
		}
		p.bet(fmt.Sprintf("%s-%s-%d", p.runID, p.account, n))
		if p.balance {
			p.readBalance()
		}
		next = next.Add(p.interval)
		if now := time.Now(); next.Before(now) {
			next = now
		}
	}
}

func (p *player) ensureResolved() {
	if p.ip.Load() == nil || time.Now().After(p.expires) {
		p.lookup("")
	}
}

func (p *player) bet(key string) {
	b := Bet{Key: key, Player: p.id, Account: p.account, Domain: p.domain, First: time.Now()}
	giveUp := b.First.Add(p.deadline)
	backoff := 100 * time.Millisecond
	for {
		p.ensureResolved()
		b.Attempts++
		a, body := p.send("bet", http.MethodPost, "/api/bets", key)
		p.attempts = append(p.attempts, a)
		if a.Status == http.StatusCreated {
			var ans struct {
				BetID string `json:"bet_id"`
				Epoch int64  `json:"epoch"`
			}
			json.Unmarshal(body, &ans)
			b.Acked, b.AckAt, b.BetID, b.Epoch = true, a.At.Add(a.Dur), ans.BetID, ans.Epoch
			break
		}
		retry := a.Status == 0 || a.Status == 502 || a.Status == 503 || a.Status == 504 || a.Status == 409 || a.Status == 429
		if !retry {
			b.Refused = strconv.Itoa(a.Status) + " " + a.Problem
			break
		}
		if a.Status == 0 {
			// A connection failure: ask DNS again, away from this edge.
			p.lookup(a.Edge)
		}
		wait := backoff/2 + time.Duration(p.rng.Int64N(int64(backoff)))
		if time.Now().Add(wait).After(giveUp) {
			b.Refused = "deadline"
			break
		}
		time.Sleep(wait)
		backoff = min(2*backoff, time.Second)
	}
	p.bets = append(p.bets, b)
}

func (p *player) readBalance() {
	p.ensureResolved()
	a, _ := p.send("balance", http.MethodGet, "/api/wallet/balance", "")
	p.attempts = append(p.attempts, a)
	if a.Status == 0 {
		p.lookup(a.Edge)
	}
}

func (p *player) send(kind, method, path, key string) (Attempt, []byte) {
	a := Attempt{At: time.Now(), Player: p.id, Domain: p.domain, Edge: p.edge(), Kind: kind}
	var body io.Reader
	if method == http.MethodPost {
		body = strings.NewReader(betBody)
	}
	req, _ := http.NewRequest(method, "https://"+p.play+":"+strconv.Itoa(portEdge)+path, body)
	req.Header.Set("Authorization", "Bearer "+p.token)
	if key != "" {
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := p.client.Do(req)
	a.Dur = time.Since(a.At)
	if err != nil {
		a.Err = shortErr(err)
		return a, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 8192))
	a.Dur = time.Since(a.At)
	a.Status = resp.StatusCode
	if resp.StatusCode >= 400 {
		var pr struct {
			Type string `json:"type"`
		}
		json.Unmarshal(b, &pr)
		if i := strings.LastIndexAny(pr.Type, "/:"); i >= 0 {
			pr.Type = pr.Type[i+1:]
		}
		a.Problem = pr.Type
	}
	return a, b
}

// shortErr names a connection failure's kind, not its addresses.
func shortErr(err error) string {
	s := err.Error()
	for _, k := range []string{"connection refused", "connection reset", "timeout", "Timeout", "EOF", "no route to host", "not resolved", "broken pipe"} {
		if strings.Contains(s, k) {
			return strings.ToLower(k)
		}
	}
	if len(s) > 80 {
		s = s[len(s)-80:]
	}
	return s
}
