package loadgen

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"hedge/internal/sim"
)

// ledger runs a real ledger simulator and returns its URL.
func ledger(t *testing.T, domain string) string {
	t.Helper()
	l := sim.NewLedger(sim.LedgerSettings{Domain: domain})
	srv := httptest.NewServer(l.Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

// placeBet sends a bet to a ledger as the edge would.
func placeBet(t *testing.T, ledgerURL, player, key string) {
	t.Helper()
	req, _ := http.NewRequest("POST", ledgerURL+"/bets",
		strings.NewReader(`{"table":"bacc-07","amount":"1.00","currency":"EUR","selection":"banker"}`))
	req.Header.Set("Idempotency-Key", key)
	req.Header.Set("X-Hedge-Principal", player)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("bet %s at %s: %s", key, ledgerURL, resp.Status)
	}
}

// results renders vegeta results as `vegeta encode -to json` does.
func results(t *testing.T, rs ...result) string {
	t.Helper()
	var b strings.Builder
	for i, r := range rs {
		line, err := json.Marshal(map[string]any{"seq": i, "method": r.Method, "url": r.URL, "code": r.Code,
			"error": r.Error, "headers": r.Headers, "body": r.Body, "latency": 1000, "bytes_in": 2})
		if err != nil {
			t.Fatal(err)
		}
		b.Write(line)
		b.WriteByte('\n')
	}
	return b.String()
}

func betResult(key string, code int, replayed bool) result {
	r := result{Method: "POST", URL: "https://play.edge.test:8443/api/bets#" + key, Code: code}
	if replayed {
		r.Headers = map[string][]string{"Idempotent-Replayed": {"true"}}
	}
	if code == 503 {
		r.Error = "503 Service Unavailable"
		r.Body = []byte(`{"type":"urn:hedge:problem:writer-unavailable","title":"…","status":503}`)
	}
	if code == 0 {
		r.Error = "Post \"" + r.URL + "\": context deadline exceeded"
	}
	return r
}

func TestVerify(t *testing.T) {
	sea, eu := ledger(t, "sea"), ledger(t, "eu")
	// What the ledgers hold before the checks: k1 (received twice), k2 at
	// sea; k3 at eu; an old run's key at eu; k5 applied twice (both
	// ledgers); k6 applied but its answer was lost.
	placeBet(t, sea, "load-1", "k1")
	placeBet(t, sea, "load-1", "k1")
	placeBet(t, sea, "load-2", "k2")
	placeBet(t, eu, "load-3", "k3")
	placeBet(t, eu, "load-9", "old-run")
	placeBet(t, sea, "load-5", "k5")
	placeBet(t, eu, "load-5", "k5")
	placeBet(t, sea, "load-6", "k6")
	balance := result{Method: "GET", URL: "https://play.edge.test:8443/api/wallet/balance", Code: 200}

	for _, c := range []struct {
		name    string
		results []result
		ok      bool
		check   func(*Report) string
	}{{
		name: "exactly once",
		results: []result{
			betResult("k1", 201, false), betResult("k1", 201, true), betResult("k1", 201, true), // third replayed by the edge
			betResult("k2", 201, false), betResult("k3", 201, false), balance,
			betResult("k6", 0, false), betResult("k7", 503, false),
		},
		ok: true,
		check: func(r *Report) string {
			if r.Sent != 8 || r.Bets != 7 || r.Keys != 5 || r.Acknowledged != 5 || r.AckKeys != 3 || r.Replayed != 2 ||
				r.Failed != 2 || r.Balances != 1 || r.BalancesOK != 1 || r.Applied != 4 || r.Received != 5 || r.AppliedNoAck != 1 {
				return "counts"
			}
			if r.FailedBy["503 Service Unavailable writer-unavailable"] != 1 || r.FailedBy["no answer: context deadline exceeded"] != 1 || len(r.FailedBy) != 2 {
				return "failures by cause"
			}
			if len(r.Ledgers) != 2 || r.Ledgers[0].Keys != 3 || r.Ledgers[1].Keys != 1 {
				return "per-ledger counts"
			}
			return ""
		},
	}, {
		name:    "acknowledged but missing",
		results: []result{betResult("k1", 201, false), betResult("k1", 201, false), betResult("k8", 201, false)},
		check: func(r *Report) string {
			if !slices.Equal(r.AckedMissing, []string{"k8"}) {
				return "AckedMissing"
			}
			return ""
		},
	}, {
		name:    "applied twice",
		results: []result{betResult("k5", 201, false), betResult("k5", 201, true)},
		check: func(r *Report) string {
			if !slices.Equal(r.AppliedTwice, []string{"k5"}) {
				return "AppliedTwice"
			}
			return ""
		},
	}, {
		name:    "received more often than sent",
		results: []result{betResult("k1", 201, false)},
		check: func(r *Report) string {
			if len(r.ReceivedTooOften) != 1 || !strings.HasPrefix(r.ReceivedTooOften[0], "k1 ") {
				return "ReceivedTooOften"
			}
			return ""
		},
	}, {
		name:    "nothing acknowledged",
		results: []result{betResult("k9", 503, false)},
	}} {
		t.Run(c.name, func(t *testing.T) {
			rep, err := Verify(context.Background(), strings.NewReader(results(t, c.results...)), []string{sea, eu}, nil)
			if err != nil {
				t.Fatal(err)
			}
			var out strings.Builder
			rep.Print(&out)
			if rep.OK() != c.ok {
				t.Errorf("want OK %v, got %v:\n%s", c.ok, rep.OK(), out.String())
			}
			if c.check != nil {
				if what := c.check(rep); what != "" {
					t.Errorf("wrong %s in the report: %+v\n%s", what, rep, out.String())
				}
			}
			if !c.ok && !strings.Contains(out.String(), "FAIL") {
				t.Errorf("a failed check should print FAIL:\n%s", out.String())
			}
		})
	}
}

func TestVerifyRefusesGarbage(t *testing.T) {
	if _, err := Verify(context.Background(), strings.NewReader("not json\n"), nil, nil); err == nil {
		t.Error("want an error for input that is not vegeta's JSON results")
	}
	if _, err := Verify(context.Background(), strings.NewReader(""), []string{"http://127.0.0.1:1"}, nil); err == nil {
		t.Error("want an error when a ledger cannot be asked")
	}
}
