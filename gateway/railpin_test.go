package gateway

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"hedge/gateway/upstream"
	"hedge/internal/sim"
	"hedge/internal/testkit"
	"hedge/internal/testredis"
)

// railPairConfig: a cashier in front of two independent payment rails
// (a failover pool: rail-a first), served by two edge nodes of region sea
// sharing one Redis. {{SELF}} is the node a test edge runs; the other's
// addresses are {{PEER}} and {{PEERADMIN}}. Active health checks are off,
// so each node's view of its members is what the test sets.
const railPairConfig = testHead + testJWT + `routes:
` + cashierRoute + `regions:
  - name: sea
    idempotency: {store: redis, redis: {address: "{{REDIS}}"}}
    nodes:
      - name: {{SELF}}
        listeners: [{name: public, address: "{{EDGE}}", tls: {mode: off}}]
        admin: {address: "{{ADMIN}}"}
      - name: {{OTHER}}
        listeners: [{name: public, address: "{{PEER}}", tls: {mode: off}}]
        admin: {address: "{{PEERADMIN}}"}
    pools:
      - name: cashier
        policy: failover
        members: [{name: rail-a, url: "http://{{RAILA}}"}, {name: rail-b, url: "http://{{RAILB}}"}]
        health: {disabled: true}
        passive: {max_fails: 100}
        timeouts: {connect: 200ms, response: 2s}
        retries: {attempts: 2}
`

// cashierPool is the pool a test edge's node proxies the cashier to.
func cashierPool(e *testEdge) *upstream.Pool { return e.g.Nodes()[0].state.Load().pools["cashier"] }

// killStore closes the node's idempotency store the way a kill would leave
// it: nothing completed, released or pinned, its liveness key gone.
func killStore(t *testing.T, e *testEdge) {
	t.Helper()
	e.g.storesMu.Lock()
	rs := e.g.stores["sea"]
	e.g.storesMu.Unlock()
	if rs == nil {
		t.Fatal("the node has no idempotency store for region sea")
	}
	rs.store.Close()
}

// TestTakenOverDepositStaysWithItsRail: node A claims a deposit's key and
// sends it to rail-b (rail-a is down at A, or refuses it with 503 before
// A retries on rail-b), rail-b books it and is slow to answer, and A dies
// holding the claim. The client's retry through node B, which sees both
// rails healthy and would pick rail-a, takes the claim over and goes to
// rail-b: the rail was recorded with the key before A sent anything. While
// rail-b is down at B the retry fails closed. One deposit across both
// rails.
func TestTakenOverDepositStaysWithItsRail(t *testing.T) {
	cases := []struct {
		name string
		// railADownAtA makes node A send to rail-b first: it marks rail-a
		// down at A (the claim names rail-b), or has rail-a refuse the
		// deposit with 503 (A moves the claim to rail-b before retrying).
		railADownAtA func(e *testEdge, railA *sim.Rail)
	}{
		{name: "claimed for rail-b", railADownAtA: func(e *testEdge, _ *sim.Rail) {
			cashierPool(e).Members[0].Health.Set(false, "test: down at node A")
		}},
		{name: "moved to rail-b before sending", railADownAtA: func(_ *testEdge, railA *sim.Rail) {
			railA.SetHealthy(false)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			railA, addrA := startRail(t, "rail-a")
			railB, addrB := startRail(t, "rail-b")
			redisAddr := testredis.Start(t)
			edgeA, adminA, edgeB, adminB := testkit.FreeAddr(t), testkit.FreeAddr(t), testkit.FreeAddr(t), testkit.FreeAddr(t)
			common := []string{"{{REDIS}}", redisAddr, "{{RAILA}}", addrA, "{{RAILB}}", addrB}
			a := startEdgeNode(t, railPairConfig, "sea", "sea-1", append(common, "{{SELF}}", "sea-1", "{{OTHER}}", "sea-2",
				"{{EDGE}}", edgeA, "{{ADMIN}}", adminA, "{{PEER}}", edgeB, "{{PEERADMIN}}", adminB)...)
			b := startEdgeNode(t, railPairConfig, "sea", "sea-2", append(common, "{{SELF}}", "sea-2", "{{OTHER}}", "sea-1",
				"{{EDGE}}", edgeB, "{{ADMIN}}", adminB, "{{PEER}}", edgeA, "{{PEERADMIN}}", adminA)...)
			tok := token(t, "player-1", "")
			const key, body = "dep-taken-1", `{"amount":"50.00","currency":"EUR"}`
			hdr := []string{"Authorization", "Bearer " + tok, "Idempotency-Key", key, "Content-Type", "application/json"}

			// Node A sends the deposit to rail-b, which books it and holds
			// the answer back past A's response timeout.
			c.railADownAtA(a, railA)
			railB.SetDelay(3 * time.Second)
			first := make(chan int, 1)
			go func() {
				req, _ := http.NewRequest("POST", a.url+"/cashier/deposit", strings.NewReader(body))
				for i := 0; i+1 < len(hdr); i += 2 {
					req.Header.Set(hdr[i], hdr[i+1])
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					first <- 0
					return
				}
				resp.Body.Close()
				first <- resp.StatusCode
			}()
			testkit.WaitUntil(t, "rail-b books the deposit sent by node A", 2*time.Second, func() bool { return booked(railB, key) == 1 })
			// A dies holding the claim, before its timeout could pin the key.
			killStore(t, a)
			railB.SetDelay(0)
			railA.SetHealthy(true)

			// At B rail-b is down: the taken-over key fails closed.
			pool := cashierPool(b)
			pool.Members[1].Health.Set(false, "test: down at node B")
			resp, got := do(t, "POST", b.url+"/cashier/deposit", "", body, hdr...)
			wantProblem(t, resp, got, 503, "pinned-upstream-unavailable")
			if resp.Header.Get("Retry-After") == "" {
				t.Fatal("503 pinned-upstream-unavailable without Retry-After")
			}
			// rail-b is back at B: the retry goes there and finds its booking.
			pool.Members[1].Health.Set(true, "test: up at node B")
			if !pool.Members[0].Health.Healthy() {
				t.Fatal("rail-a must be healthy at node B, so that only the key's pin keeps the retry off it")
			}
			resp, got = do(t, "POST", b.url+"/cashier/deposit", "", body, hdr...)
			if resp.StatusCode != 200 || !strings.Contains(got, `"rail":"rail-b"`) {
				t.Fatalf("the retry through node B: want rail-b's booking (200), got %d %s", resp.StatusCode, got)
			}
			if na, nb := booked(railA, key), booked(railB, key); na != 0 || nb != 1 {
				t.Fatalf("want one deposit, at rail-b; got rail-a %d, rail-b %d", na, nb)
			}
			select {
			case <-first:
			case <-time.After(10 * time.Second):
				t.Fatal("node A's call did not end")
			}
		})
	}
}

// BenchmarkCashierPath runs the whole edge handler for a keyed deposit on
// a cashier route to a pool of two independent rails — token, the
// Idempotency-Key claim naming the rail it goes to and its completion, in
// the memory store or a real Redis, the allowlisted upstream request,
// proxying to a rail on loopback — and reports allocations per request.
func BenchmarkCashierPath(b *testing.B) {
	for _, store := range []string{"memory", "redis"} {
		b.Run(store, func(b *testing.B) {
			addr := benchWriter(b)
			var e *testEdge
			if store == "memory" {
				e = startEdgeNode(b, railsConfig, "sea", "sea-1", "{{RAILA}}", addr, "{{RAILB}}", addr)
			} else {
				e = startEdgeNode(b, railPairConfig, "sea", "sea-1", "{{REDIS}}", testredis.Start(b), "{{RAILA}}", addr, "{{RAILB}}", addr,
					"{{SELF}}", "sea-1", "{{OTHER}}", "sea-2", "{{PEER}}", testkit.FreeAddr(b), "{{PEERADMIN}}", testkit.FreeAddr(b))
			}
			benchKeyedPosts(b, e, "/cashier/deposit", []byte(`{"amount":"50.00","currency":"EUR"}`))
		})
	}
}
