package drill

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"hedge/internal/fetch"
	"hedge/internal/tick"
)

// Sample is what the drill's monitor saw at one moment: every ledger's
// role and epoch, and every DNS server's answer for play.<zone>.
type Sample struct {
	At    time.Time             `json:"at"`
	Roles map[string]roleAnswer `json:"roles"` // ledger name → answer; absent when it did not answer
	DNS   map[string][]string   `json:"dns"`   // DNS server name → edges named; absent when it did not answer
}

// receipt is one bet request a ledger received (GET /receipts).
type receipt struct {
	Key     string    `json:"key"`
	Account string    `json:"account"`
	Epoch   int64     `json:"epoch"`
	At      time.Time `json:"at"`
	Outcome string    `json:"outcome"`
	// AppliedEpoch is the epoch the ledger applied the bet at (0 from a
	// ledger that does not say; Epoch, the edge's fencing token, then).
	AppliedEpoch int64 `json:"applied_epoch"`
}

type appliedKey struct {
	Key        string `json:"key"`
	Account    string `json:"account"`
	Count      int    `json:"count"`
	Replicated bool   `json:"replicated"`
}

// ledgerBook is the last view of one ledger's records the drill could read.
type ledgerBook struct {
	At       time.Time
	Receipts []receipt
	Applied  []appliedKey
}

type monitor struct {
	d         *deployment
	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once

	mu      sync.Mutex
	samples []Sample
	books   map[string]ledgerBook
}

func newMonitor(d *deployment) *monitor {
	return &monitor{d: d, stop: make(chan struct{}), done: make(chan struct{}), books: map[string]ledgerBook{}}
}

// run samples every 200 ms and reads every ledger's books each second
// (on a loop of its own, so a ledger slow to list its books never holds a
// sample up), so a ledger that is killed leaves its records as of at most
// a second before (and snapshot is called just before a fault).
func (m *monitor) run() {
	defer close(m.done)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { tick.Now(m.stop, time.Second, m.snapshot) })
	tick.Now(m.stop, 200*time.Millisecond, m.sample)
}

// close stops run and waits for it; safe to call twice.
func (m *monitor) close() {
	m.closeOnce.Do(func() { close(m.stop) })
	<-m.done
}

func (m *monitor) sample() {
	m.record(func(l ledger) (roleAnswer, bool) {
		ra, err := m.d.role(l)
		return ra, err == nil
	}, 150*time.Millisecond)
}

// record appends a sample of every ledger's role (those role does not
// answer for are left out) and every DNS server's answer for the play
// name, each asked at the same time.
func (m *monitor) record(role func(ledger) (roleAnswer, bool), dnsTimeout time.Duration) {
	s := Sample{At: time.Now(), Roles: map[string]roleAnswer{}, DNS: map[string][]string{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, l := range m.d.ledgers {
		wg.Go(func() {
			if ra, ok := role(l); ok {
				mu.Lock()
				s.Roles[l.Name] = ra
				mu.Unlock()
			}
		})
	}
	for _, n := range m.d.dns {
		wg.Go(func() {
			if ips, _, err := resolve(net.JoinHostPort(n.IP, fmt.Sprint(portDNS)), m.d.playName(), dnsTimeout); err == nil {
				mu.Lock()
				s.DNS[n.Name] = ips
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	m.mu.Lock()
	m.samples = append(m.samples, s)
	m.mu.Unlock()
}

// snapshot reads every reachable ledger's receipts and applied keys.
func (m *monitor) snapshot() {
	var wg sync.WaitGroup
	for _, l := range m.d.ledgers {
		wg.Go(func() { m.readBook(m.d.http, l) })
	}
	wg.Wait()
}

// readBook reads l's receipts and applied keys with c and keeps them as
// l's book.
func (m *monitor) readBook(c *http.Client, l ledger) error {
	b := ledgerBook{At: time.Now()}
	var r struct {
		Receipts []receipt `json:"receipts"`
	}
	var a struct {
		Applied []appliedKey `json:"applied"`
	}
	if err := fetch.JSON(context.Background(), c, l.URL+"/receipts", 256<<20, &r); err != nil {
		return err
	}
	if err := fetch.JSON(context.Background(), c, l.URL+"/applied", 256<<20, &a); err != nil {
		return err
	}
	b.Receipts, b.Applied = r.Receipts, a.Applied
	m.mu.Lock()
	m.books[l.Name] = b
	m.mu.Unlock()
	return nil
}

// final is the last look, once the players have stopped: every ledger
// that is up is asked for its role and its books until it answers (a
// loaded machine may be slow; a book read a second earlier would miss the
// last bets and count them as lost), for up to 15 s in all.
func (m *monitor) final() {
	deadline := time.Now().Add(15 * time.Second)
	m.record(func(l ledger) (roleAnswer, bool) {
		if p := m.d.procs.byName(l.Name); p == nil || p.Exited() {
			return roleAnswer{}, false
		}
		for time.Now().Before(deadline) {
			ra, err := m.d.roleWithin(l, 3*time.Second)
			if err != nil {
				if time.Now().Add(time.Second).Before(deadline) {
					time.Sleep(200 * time.Millisecond)
				}
				continue
			}
			if m.readBook(m.d.books, l) != nil {
				continue
			}
			return ra, true
		}
		return roleAnswer{}, false
	}, time.Second)
}

// latest returns the newest sample.
func (m *monitor) latest() Sample {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.samples) == 0 {
		return Sample{}
	}
	return m.samples[len(m.samples)-1]
}
