package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// loadResult is what one closed-loop run of the generator saw.
type loadResult struct {
	Sent     int64         // requests that got an answer or an error
	OK       int64         // answered 200
	Other    map[int]int64 // other statuses, by code
	Errors   int64         // transport errors (timeouts, resets)
	FirstErr string
	Wall     time.Duration
	P50, P99 time.Duration // of the requests answered 200
	Stopped  bool          // the time limit ended the run before n requests
}

// closedLoop sends n requests of kind k to addr over conns keep-alive
// connections, each connection sending its next request as soon as the
// previous answer is read (a closed loop: the server's speed sets the
// rate). It stops early, with Stopped set, when limit passes or ctx ends.
//
// The client is fasthttp's HostClient: it reuses request and response
// objects, so on the load CPU it costs a small fraction of what the servers
// under test spend per request.
func closedLoop(ctx context.Context, addr string, k kind, n, conns int, limit time.Duration) loadResult {
	c := &fasthttp.HostClient{
		Addr:                          addr,
		MaxConns:                      conns,
		ReadTimeout:                   10 * time.Second,
		WriteTimeout:                  10 * time.Second,
		MaxIdleConnDuration:           time.Minute,
		NoDefaultUserAgentHeader:      true,
		DisableHeaderNamesNormalizing: true,
	}
	defer c.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()

	var (
		next    atomic.Int64
		mu      sync.Mutex
		res     = loadResult{Other: map[int]int64{}}
		latency = make([]time.Duration, 0, n)
		wg      sync.WaitGroup
	)
	start := time.Now()
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			fill(req, k, false)
			var (
				lat          []time.Duration
				sent, ok, ne int64
				other        = map[int]int64{}
				firstErr     string
			)
			for next.Add(1) <= int64(n) && ctx.Err() == nil {
				t0 := time.Now()
				err := c.Do(req, resp)
				d := time.Since(t0)
				sent++
				switch {
				case err != nil:
					ne++
					if firstErr == "" {
						firstErr = err.Error()
					}
				case resp.StatusCode() == fasthttp.StatusOK:
					ok++
					lat = append(lat, d)
				default:
					other[resp.StatusCode()]++
				}
			}
			mu.Lock()
			defer mu.Unlock()
			res.Sent += sent
			res.OK += ok
			res.Errors += ne
			for code, c := range other {
				res.Other[code] += c
			}
			if res.FirstErr == "" {
				res.FirstErr = firstErr
			}
			latency = append(latency, lat...)
		}()
	}
	wg.Wait()
	res.Wall = time.Since(start)
	res.Stopped = res.Sent < int64(n)
	slices.Sort(latency)
	res.P50, res.P99 = quantile(latency, 0.50), quantile(latency, 0.99)
	return res
}

// quantile is the q-quantile of sorted (nearest rank), 0 when empty.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// problems says what went wrong in r besides 200s, or "".
func (r loadResult) problems() string {
	var s string
	if r.Errors > 0 {
		s += fmt.Sprintf("%d transport errors (first: %s); ", r.Errors, r.FirstErr)
	}
	for code, c := range r.Other {
		s += fmt.Sprintf("%d answered %d; ", c, code)
	}
	return s
}

// once sends one request of kind k (the attack when attack is set) and
// returns the status and the start of the body.
func once(addr string, k kind, attack bool) (int, string, error) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	fill(req, k, attack)
	c := &fasthttp.HostClient{Addr: addr, NoDefaultUserAgentHeader: true, DisableHeaderNamesNormalizing: true}
	defer c.CloseIdleConnections()
	if err := c.DoTimeout(req, resp, 10*time.Second); err != nil {
		return 0, "", err
	}
	body := resp.Body()
	if len(body) > 300 {
		body = body[:300]
	}
	return resp.StatusCode(), string(body), nil
}
