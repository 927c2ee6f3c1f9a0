package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"hedge/configs"
	"hedge/internal/fetch"
)

// result is what Verify reads of one line of `vegeta encode -to json`.
type result struct {
	Method  string              `json:"method"`
	URL     string              `json:"url"`
	Code    int                 `json:"code"`
	Error   string              `json:"error"`
	Headers map[string][]string `json:"headers"`
	Body    []byte              `json:"body"`
}

// appliedKey is one entry of a ledger simulator's GET /applied.
type appliedKey struct {
	Key     string `json:"key"`
	Account string `json:"account"`
	Count   int    `json:"count"`
}

// Report compares one run's answers with what the ledgers applied.
type Report struct {
	Sent         int // results read: bets and balance reads
	Bets         int // bet requests sent (fresh and retries)
	Keys         int // distinct Idempotency-Keys among them
	Acknowledged int // bets answered 2xx
	AckKeys      int // distinct keys answered 2xx at least once
	Replayed     int // 2xx answers marked Idempotent-Replayed: true
	Failed       int // bets answered otherwise, or not answered
	FailedBy     map[string]int
	Balances     int // balance reads sent
	BalancesOK   int

	Ledgers          []LedgerCount
	Applied          int // keys of this run the ledgers hold
	Received         int // times the ledgers received them (replays included)
	AppliedNoAck     int // applied, but the client never saw a 2xx (it would retry)
	AckedMissing     []string
	AppliedTwice     []string
	ReceivedTooOften []string // a ledger received a key more often than it was sent
}

// LedgerCount is what one ledger holds of this run.
type LedgerCount struct {
	URL      string
	Keys     int
	Received int
}

// OK reports whether every acknowledged bet was applied exactly once and
// nothing was applied twice or received more often than it was sent.
func (r *Report) OK() bool {
	return r.Acknowledged > 0 && len(r.AckedMissing) == 0 && len(r.AppliedTwice) == 0 && len(r.ReceivedTooOften) == 0
}

// LedgerURLs lists the writers' URLs of cfg, each once.
func LedgerURLs(cfg *configs.Config) []string {
	var out []string
	for _, r := range cfg.Regions {
		for _, w := range r.Writers {
			if !slices.Contains(out, w.URL) {
				out = append(out, w.URL)
			}
		}
	}
	return out
}

// Verify reads vegeta's results as JSON lines (`vegeta encode -to json`),
// asks every ledger simulator what it applied (GET /applied), and
// compares: every bet acknowledged with a 2xx must be applied by exactly
// one ledger, under one account, and no ledger may have received a key
// more often than the client sent it (the edge never re-sends a bet).
func Verify(ctx context.Context, results io.Reader, ledgers []string, client *http.Client) (*Report, error) {
	rep := &Report{FailedBy: map[string]int{}}
	sends := map[string]int{}
	acked := map[string]bool{}
	dec := json.NewDecoder(results)
	for {
		var res result
		err := dec.Decode(&res)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("loadgen: reading vegeta results (want `vegeta encode -to json` output): %w", err)
		}
		rep.Sent++
		ok := res.Code >= 200 && res.Code < 300
		_, key, isBet := strings.Cut(res.URL, BetsPath+"#")
		if res.Method != http.MethodPost || !isBet || key == "" {
			rep.Balances++
			if ok {
				rep.BalancesOK++
			}
			continue
		}
		rep.Bets++
		sends[key]++
		switch {
		case ok:
			rep.Acknowledged++
			acked[key] = true
			if replayed(res.Headers) {
				rep.Replayed++
			}
		default:
			rep.Failed++
			rep.FailedBy[cause(res)]++
		}
	}
	rep.Keys, rep.AckKeys = len(sends), len(acked)

	where := map[string]int{} // key → ledger entries holding it
	for _, u := range ledgers {
		entries, err := fetchApplied(ctx, client, u)
		if err != nil {
			return nil, err
		}
		lc := LedgerCount{URL: u}
		for _, e := range entries {
			n, ours := sends[e.Key]
			if !ours {
				continue // not this run's
			}
			lc.Keys++
			lc.Received += e.Count
			where[e.Key]++
			if e.Count > n {
				rep.ReceivedTooOften = append(rep.ReceivedTooOften, fmt.Sprintf("%s (sent %d, received %d at %s)", e.Key, n, e.Count, u))
			}
		}
		rep.Ledgers = append(rep.Ledgers, lc)
		rep.Applied += lc.Keys
		rep.Received += lc.Received
	}
	for k, n := range where {
		if n > 1 {
			rep.AppliedTwice = append(rep.AppliedTwice, k)
		}
		if !acked[k] {
			rep.AppliedNoAck++
		}
	}
	for k := range acked {
		if where[k] == 0 {
			rep.AckedMissing = append(rep.AckedMissing, k)
		}
	}
	slices.Sort(rep.AckedMissing)
	slices.Sort(rep.AppliedTwice)
	slices.Sort(rep.ReceivedTooOften)
	return rep, nil
}

// cause says why a bet failed: the status and the problem type, or the
// client's error without the request URL that it
// starts with (`Post "URL": dial tcp …`): the URL carries the key, which
// would make every error unique.
func cause(res result) string {
	if res.Code != 0 {
		why := strconv.Itoa(res.Code)
		if res.Error != "" {
			why = res.Error // vegeta's copy of the status line
		}
		var p struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(res.Body, &p) == nil && p.Type != "" {
			why += " " + strings.TrimPrefix(p.Type, "urn:hedge:problem:")
		}
		return why
	}
	e := res.Error
	if op, rest, ok := strings.Cut(e, ` "`); ok && strings.EqualFold(op, res.Method) {
		if _, after, ok := strings.Cut(rest, `": `); ok {
			e = after
		}
	}
	return "no answer: " + e
}

func replayed(h map[string][]string) bool {
	for k, vs := range h {
		if strings.EqualFold(k, "Idempotent-Replayed") {
			return slices.Contains(vs, "true")
		}
	}
	return false
}

func fetchApplied(ctx context.Context, client *http.Client, base string) ([]appliedKey, error) {
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	var body struct {
		Applied []appliedKey `json:"applied"`
	}
	err := fetch.JSON(ctx, client, strings.TrimRight(base, "/")+"/applied", 0, &body)
	if se, ok := errors.AsType[*fetch.StatusError](err); ok {
		return nil, fmt.Errorf("loadgen: GET %s: %s (is it a ledger simulator?)", se.URL, se.Status)
	}
	if err != nil {
		return nil, fmt.Errorf("loadgen: ledger %s: %w", base, err)
	}
	return body.Applied, nil
}

// Print writes the report for people.
func (r *Report) Print(w io.Writer) {
	fmt.Fprintf(w, "sent          %d requests: %d bets (%d distinct keys, %d retries), %d balance reads (%d ok)\n",
		r.Sent, r.Bets, r.Keys, r.Bets-r.Keys, r.Balances, r.BalancesOK)
	fmt.Fprintf(w, "acknowledged  %d bets 2xx (%d distinct keys), of which replayed %d (Idempotent-Replayed: true)\n",
		r.Acknowledged, r.AckKeys, r.Replayed)
	fmt.Fprintf(w, "failed        %d bets", r.Failed)
	if len(r.FailedBy) > 0 {
		whys := make([]string, 0, len(r.FailedBy))
		for why, n := range r.FailedBy {
			whys = append(whys, fmt.Sprintf("%s ×%d", why, n))
		}
		slices.Sort(whys)
		fmt.Fprintf(w, ": %s", strings.Join(whys, ", "))
	}
	fmt.Fprintln(w)
	for _, l := range r.Ledgers {
		fmt.Fprintf(w, "ledger        %s: %d keys of this run applied, received %d times\n", l.URL, l.Keys, l.Received)
	}
	fmt.Fprintf(w, "keys at ledgers %d applied, received %d times (%d repeats reached a ledger and were replayed there); %d applied without a 2xx seen (a client retries those)\n",
		r.Applied, r.Received, r.Received-r.Applied, r.AppliedNoAck)
	list := func(what string, keys []string) {
		if len(keys) == 0 {
			return
		}
		fmt.Fprintf(w, "FAIL          %d %s:", len(keys), what)
		for i, k := range keys {
			if i == 10 {
				fmt.Fprintf(w, " …")
				break
			}
			fmt.Fprintf(w, " %s", k)
		}
		fmt.Fprintln(w)
	}
	list("acknowledged keys missing at every ledger", r.AckedMissing)
	list("keys applied more than once", r.AppliedTwice)
	list("keys received more often than sent", r.ReceivedTooOften)
	switch {
	case r.Acknowledged == 0:
		fmt.Fprintln(w, "FAIL          no bet was acknowledged: nothing was proven")
	case r.OK():
		fmt.Fprintf(w, "OK            every acknowledged key (%d) applied exactly once; none applied twice\n", r.AckKeys)
	}
}
