package gateway

import (
	"context"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hedge/configs"
	"hedge/internal/testkit"
)

// TestReloadUnderLoad reloads twice while keep-alive clients hammer the
// edge: a valid configuration is swapped in without a failed request or a
// dropped connection, an invalid one is rejected and the old one serves on.
func TestReloadUnderLoad(t *testing.T) {
	f := newFixture(t)
	var dials atomic.Int64
	tr := &http.Transport{
		MaxConnsPerHost: 4, MaxIdleConnsPerHost: 4,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}

	ctx, stop := context.WithTimeout(context.Background(), 20*time.Second)
	defer stop()
	var sent, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && sent.Load() < 200_000 {
				resp, err := client.Post(f.edge.url+"/api/bets", "application/json", strings.NewReader(`{"amount":"1.00"}`))
				sent.Add(1)
				if err != nil {
					if ctx.Err() == nil {
						failed.Add(1)
						firstErr.CompareAndSwap(nil, err.Error())
					}
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, resp.Status)
				}
			}
		}()
	}
	testkit.WaitUntil(t, "load running", 5*time.Second, func() bool { return sent.Load() > 200 })

	rewriteConfig(t, f.edge, "routes:\n", "routes:\n  - name: extra\n    match: {path_prefix: /extra/}\n    pool: games\n")
	if err := f.edge.g.Reload(context.Background()); err != nil {
		t.Fatalf("valid reload rejected: %v", err)
	}
	if resp, _ := do(t, "GET", f.edge.url+"/extra/x", "", ""); resp.StatusCode != 200 {
		t.Fatalf("route added by reload: want 200, got %d", resp.StatusCode)
	}
	mid := sent.Load()
	testkit.WaitUntil(t, "load after reload", 5*time.Second, func() bool { return sent.Load() > mid+200 })

	rewriteConfig(t, f.edge, "routes:\n", "bogus_field: 1\nroutes:\n")
	resp, body := do(t, "POST", f.edge.admin+"/admin/reload", "", "")
	if resp.StatusCode != 422 || !strings.Contains(body, "bogus_field") || !strings.Contains(body, "hedge.yaml:") {
		t.Fatalf("invalid reload: want 422 naming file and field, got %d %s", resp.StatusCode, body)
	}
	if resp, _ := do(t, "GET", f.edge.url+"/extra/x", "", ""); resp.StatusCode != 200 {
		t.Fatalf("after a rejected reload the previous configuration must serve, got %d", resp.StatusCode)
	}
	mid = sent.Load()
	testkit.WaitUntil(t, "load after rejected reload", 5*time.Second, func() bool { return sent.Load() > mid+200 })
	stop()
	wg.Wait()
	t.Logf("requests %d, failed %d, connections opened %d", sent.Load(), failed.Load(), dials.Load())
	if failed.Load() != 0 {
		t.Fatalf("%d requests failed during reloads; first: %v", failed.Load(), firstErr.Load())
	}
	if dials.Load() > 4 {
		t.Fatalf("reload dropped connections: %d opened for 4 keep-alive clients", dials.Load())
	}
}

// TestShutdownDrainsThenFinishesInFlight: health turns red during the drain
// period while requests are still served, then the listener closes and a
// request already in flight completes.
func TestShutdownDrainsThenFinishesInFlight(t *testing.T) {
	l1, g1, g2 := newUpstream(t, "l1"), newUpstream(t, "g1"), newUpstream(t, "g2")
	cfg := strings.Replace(baseConfig, "drain_period: 10ms", "drain_period: 400ms", 1)
	e := startEdge(t, cfg, "{{L1}}", l1.addr(), "{{G1}}", g1.addr(), "{{G2}}", g2.addr())
	l1.delay.Store(int64(700 * time.Millisecond))

	type result struct {
		status int
		err    error
	}
	inflight := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest("POST", e.url+"/api/bets", strings.NewReader("{}"))
		req.Header.Set("X-Slow", "1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			inflight <- result{err: err}
			return
		}
		resp.Body.Close()
		inflight <- result{status: resp.StatusCode}
	}()
	testkit.WaitUntil(t, "slow request reached the upstream", 2*time.Second, func() bool { return l1.hits.Load() == 1 })

	done := make(chan struct{})
	go func() {
		e.g.Shutdown(context.Background())
		close(done)
	}()
	testkit.WaitUntil(t, "healthz red while draining", time.Second, func() bool {
		resp, err := http.Get(e.url + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 503
	})
	if resp, _ := do(t, "GET", e.url+"/games/x", "play.edge.test", ""); resp.StatusCode != 200 {
		t.Fatalf("requests during the drain period: want 200, got %d", resp.StatusCode)
	}
	r := <-inflight
	if r.err != nil || r.status != 200 {
		t.Fatalf("in-flight request during shutdown: want 200, got %d %v", r.status, r.err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("shutdown did not finish")
	}
	if c, err := net.DialTimeout("tcp", strings.TrimPrefix(e.url, "http://"), time.Second); err == nil {
		c.Close()
		t.Fatal("listener still accepting after shutdown")
	}
}

// TestNoGoroutineLeak: a gateway that served good and bad requests leaves
// no goroutine of its own behind once shut down. (fasthttp keeps a few
// process-wide helpers — the Date header ticker, worker-pool and idle
// connection cleaners — that end by themselves; they are not hedge's.)
func TestNoGoroutineLeak(t *testing.T) {
	l1, g1, g2 := newUpstream(t, "l1"), newUpstream(t, "g1"), newUpstream(t, "g2")
	e := startEdge(t, baseConfig, "{{L1}}", l1.addr(), "{{G1}}", g1.addr(), "{{G2}}", g2.addr())
	addr := strings.TrimPrefix(e.url, "http://")
	do(t, "POST", e.url+"/api/bets", "", "{}")
	do(t, "GET", e.url+"/nowhere", "", "")
	testkit.RawExchange(t, addr, "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", false)
	testkit.RawExchange(t, addr, "POST /api/bets HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n\r\n", false)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e.g.Shutdown(ctx)

	var leaked []string
	deadline := time.Now().Add(5 * time.Second)
	for {
		leaked = hedgeGoroutines()
		if len(leaked) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(leaked) > 0 {
		t.Fatalf("%d goroutines of hedge's outlived shutdown:\n%s", len(leaked), strings.Join(leaked, "\n\n"))
	}
}

// hedgeGoroutines returns the stacks of goroutines running hedge code,
// other than tests.
func hedgeGoroutines() []string {
	buf := make([]byte, 1<<22)
	var out []string
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.Contains(g, "hedge/") && !strings.Contains(g, "_test.go") && !strings.Contains(g, "testing.tRunner") {
			out = append(out, g)
		}
	}
	return out
}

// A Start that fails after its edge listeners are up (here: the admin
// address is taken) stops them and returns, every time: a listener shut
// down before its Serve goroutine ran used to keep Start waiting forever.
func TestFailedStartReleasesListeners(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for i := range 30 {
		dir := t.TempDir()
		edge := testkit.FreeAddr(t)
		r := strings.NewReplacer("{{EDGE}}", edge, "{{ADMIN}}", taken.Addr().String(), "{{DATA}}", dir,
			"{{L1}}", "127.0.0.1:9", "{{G1}}", "127.0.0.1:9", "{{G2}}", "127.0.0.1:9")
		file := dir + "/hedge.yaml"
		writeFile(t, file, r.Replace(baseConfig))
		cfg, err := configs.Load(file)
		if err != nil {
			t.Fatal(err)
		}
		g, err := New(cfg, Options{Logger: testLogger(nil)})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- g.Start(context.Background()) }()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "address already in use") {
				t.Fatalf("start %d with the admin address taken: expected address already in use, got %v", i, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("start %d with the admin address taken: still not returned after 10 s", i)
		}
		// The edge listener's address is free again.
		ln, err := net.Listen("tcp", edge)
		if err != nil {
			t.Fatalf("start %d: the failed start left its edge listener bound: %v", i, err)
		}
		ln.Close()
	}
}
