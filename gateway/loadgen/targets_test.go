package loadgen

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"hedge/configs"
	"hedge/gateway/jwtauth"
)

func demo(t *testing.T) *configs.Config {
	t.Helper()
	cfg, err := configs.Demo()
	if err != nil {
		t.Fatalf("demo configuration: %v", err)
	}
	return cfg
}

var uuidLike = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// TestTargets reads a stream with vegeta's own JSON targeter and checks
// every target: tokens verify with the configuration, keys are fresh or
// repeat an earlier bet exactly, and the shares hold.
func TestTargets(t *testing.T) {
	cfg := demo(t)
	const n = 20000
	edges := []string{"https://sea.edge.test:8443", "https://eu.edge.test:8443/"}
	g, err := New(cfg, Settings{Edges: edges, Players: 50, RetryShare: 0.1, BalanceShare: 0.2, Count: n, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := g.WriteTo(&out); err != nil {
		t.Fatal(err)
	}
	if lines := bytes.Count(out.Bytes(), []byte("\n")); lines != n {
		t.Fatalf("want %d lines, got %d", n, lines)
	}
	ver, err := jwtauth.New(cfg.Auth.JWT)
	if err != nil {
		t.Fatal(err)
	}

	type betSeen struct {
		auth string
		body []byte
	}
	first := map[string]betSeen{}
	domains := map[string]string{} // subject → domain
	var bets, retries, balances, toSea int
	next := vegeta.NewJSONTargeter(&out, nil, nil)
	for i := 0; ; i++ {
		var tgt vegeta.Target
		err := next(&tgt)
		if err == vegeta.ErrNoTargets {
			break
		}
		if err != nil {
			t.Fatalf("target %d: vegeta cannot read it: %v", i, err)
		}
		if _, err := tgt.Request(); err != nil {
			t.Fatalf("target %d: vegeta cannot make a request of it: %v", i, err)
		}
		auth := tgt.Header.Get("Authorization")
		tok, ok := strings.CutPrefix(auth, "Bearer ")
		if !ok {
			t.Fatalf("target %d: want Authorization: Bearer …, got %q", i, auth)
		}
		claims, err := ver.Verify([]byte(tok))
		if err != nil {
			t.Fatalf("target %d: the token does not verify with the demo's auth.jwt: %v", i, err)
		}
		if d, seen := domains[claims.Subject]; seen && d != claims.Domain {
			t.Fatalf("player %s has domains %q and %q", claims.Subject, d, claims.Domain)
		}
		domains[claims.Subject] = claims.Domain

		edge, path, ok := strings.Cut(strings.TrimPrefix(tgt.URL, "https://"), "/")
		switch {
		case !ok || !strings.HasPrefix(tgt.URL, "https://"), edge != "sea.edge.test:8443" && edge != "eu.edge.test:8443":
			t.Fatalf("target %d: URL %q is not on one of the edges %v", i, tgt.URL, edges)
		case edge == "sea.edge.test:8443":
			toSea++
		}
		switch tgt.Method {
		case http.MethodGet:
			balances++
			if path != "api/wallet/balance" {
				t.Fatalf("target %d: balance read URL %q", i, tgt.URL)
			}
			continue
		case http.MethodPost:
		default:
			t.Fatalf("target %d: method %q", i, tgt.Method)
		}
		bets++
		key := tgt.Header.Get("Idempotency-Key")
		if !uuidLike.MatchString(key) {
			t.Fatalf("target %d: Idempotency-Key %q is not UUID-like", i, key)
		}
		if want := "api/bets#" + key; path != want {
			t.Fatalf("target %d: want URL https://%s/%s, got %q", i, edge, want, tgt.URL)
		}
		if ct := tgt.Header.Get("Content-Type"); ct != "application/json" {
			t.Fatalf("target %d: Content-Type %q", i, ct)
		}
		var body map[string]string
		if err := json.Unmarshal(tgt.Body, &body); err != nil {
			t.Fatalf("target %d: body %q: %v", i, tgt.Body, err)
		}
		if body["table"] != "bacc-07" || body["amount"] != "1.00" || body["currency"] != "EUR" || body["selection"] == "" || len(body) != 4 {
			t.Fatalf("target %d: unexpected bet %s", i, tgt.Body)
		}
		if prev, seen := first[key]; seen {
			retries++
			if prev.auth != auth || !bytes.Equal(prev.body, tgt.Body) {
				t.Fatalf("target %d retries key %s with another player or body:\nfirst %s %s\nnow   %s %s",
					i, key, prev.auth, prev.body, auth, tgt.Body)
			}
			continue
		}
		first[key] = betSeen{auth, tgt.Body}
	}

	if len(domains) != 50 {
		t.Errorf("want 50 players, got %d", len(domains))
	}
	perDomain := map[string]int{}
	for _, d := range domains {
		perDomain[d]++
	}
	if perDomain["sea"] != 25 || perDomain["eu"] != 25 {
		t.Errorf("want players spread evenly over the demo's domains sea and eu, got %v", perDomain)
	}
	for _, c := range []struct {
		what      string
		got, want float64
	}{
		{"retry share", float64(retries) / n, 0.1},
		{"balance share", float64(balances) / n, 0.2},
		{"fresh bet share", float64(bets-retries) / n, 0.7},
		{"share sent to the sea edge", float64(toSea) / n, 0.5},
	} {
		// 20000 draws: one standard deviation is at most 0.0035.
		if math.Abs(c.got-c.want) > 0.015 {
			t.Errorf("%s: want %.2f ± 0.015, got %.4f", c.what, c.want, c.got)
		}
	}
}

func TestSeedReproducesKeys(t *testing.T) {
	cfg := demo(t)
	keys := func(seed uint64) string {
		g, err := New(cfg, Settings{Count: 50, Seed: seed, RetryShare: 0.3})
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for range 50 {
			line := g.Next()
			if _, k, ok := bytes.Cut(line, []byte(BetsPath+"#")); ok {
				b.Write(k[:36])
			}
		}
		return b.String()
	}
	if a, b := keys(3), keys(3); a != b {
		t.Errorf("the same seed should give the same keys")
	}
	if a, b := keys(3), keys(4); a == b {
		t.Errorf("different seeds should give different keys")
	}
}

func TestSettingsRefused(t *testing.T) {
	cfg := demo(t)
	for _, s := range []Settings{
		{Edges: []string{"play.edge.test:8443"}},
		{Edges: []string{"https://sea.edge.test:8443", "https://play.edge.test:8443#x"}},
		{Players: -1},
		{RetryShare: 0.6, BalanceShare: 0.6},
		{RetryShare: -0.1},
		{Count: -1},
	} {
		if _, err := New(cfg, s); err == nil {
			t.Errorf("New(%+v): want an error, got none", s)
		}
	}
}

// TestEndlessStopsOnClosedReader is vegeta ending its attack: the pipe's
// reader goes away and the endless stream ends without an error.
func TestEndlessStopsOnClosedReader(t *testing.T) {
	g, err := New(demo(t), Settings{Count: 0})
	if err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	go func() {
		io.CopyN(io.Discard, r, 1<<20)
		r.Close()
	}()
	n, err := g.WriteTo(w)
	if err != nil {
		t.Fatalf("want the stream to end quietly when the reader leaves, got %v", err)
	}
	if n < 1<<20 {
		t.Fatalf("want at least the 1 MiB the reader took to be written, got %d bytes", n)
	}
}
