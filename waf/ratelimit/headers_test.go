package ratelimit

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"hedge/internal/problem"
)

func TestHeaderValues(t *testing.T) {
	tests := []struct {
		name        string
		p           Policy
		d           Decision
		policy      string
		ratelimit   string
		retryAfter  string // "" = absent
		wantQuota   int64
		wantWindowS int64
	}{
		{
			name:   "allowed, remaining above the quota is capped at q",
			p:      Policy{Name: "api", Rate: 10, Burst: 20},
			d:      Decision{Allowed: true, Remaining: 19, Reset: 100 * time.Millisecond},
			policy: `"api";q=10;w=1`, ratelimit: `"api";r=10;t=1`,
			wantQuota: 10, wantWindowS: 1,
		},
		{
			name:   "allowed, a minute window",
			p:      Policy{Name: "bets", Rate: 2, Burst: 5, Window: time.Minute},
			d:      Decision{Allowed: true, Remaining: 3, Reset: 1500 * time.Millisecond},
			policy: `"bets";q=120;w=60`, ratelimit: `"bets";r=3;t=2`,
			wantQuota: 120, wantWindowS: 60,
		},
		{
			name:   "window rounded up to whole seconds",
			p:      Policy{Name: "w", Rate: 3, Burst: 3, Window: 1500 * time.Millisecond},
			d:      Decision{Allowed: true, Remaining: 2, Reset: 333 * time.Millisecond},
			policy: `"w";q=6;w=2`, ratelimit: `"w";r=2;t=1`,
			wantQuota: 6, wantWindowS: 2,
		},
		{
			name:   "slow rate: default window earns one token",
			p:      Policy{Name: "login", Rate: 0.25, Burst: 2},
			d:      Decision{Allowed: true, Remaining: 1, Reset: 4 * time.Second},
			policy: `"login";q=1;w=4`, ratelimit: `"login";r=1;t=4`,
			wantQuota: 1, wantWindowS: 4,
		},
		{
			name:   "denied: r=0 and Retry-After rounded up",
			p:      Policy{Name: "api", Rate: 10, Burst: 20},
			d:      Decision{Allowed: false, Reset: 2*time.Second + time.Millisecond, RetryAfter: 100 * time.Millisecond},
			policy: `"api";q=10;w=1`, ratelimit: `"api";r=0;t=3`, retryAfter: "1",
			wantQuota: 10, wantWindowS: 1,
		},
		{
			name:   "denied for longer",
			p:      Policy{Name: "cashier", Rate: 0.1, Burst: 1, Window: time.Hour},
			d:      Decision{Allowed: false, Reset: 10 * time.Second, RetryAfter: 9*time.Second + 1},
			policy: `"cashier";q=360;w=3600`, ratelimit: `"cashier";r=0;t=10`, retryAfter: "10",
			wantQuota: 360, wantWindowS: 3600,
		},
		{
			name:   "name escaped as a structured-field string",
			p:      Policy{Name: `a"b\c d`, Rate: 1, Burst: 1},
			d:      Decision{Allowed: true, Remaining: 0, Reset: time.Second},
			policy: `"a\"b\\c d";q=1;w=1`, ratelimit: `"a\"b\\c d";r=0;t=1`,
			wantQuota: 1, wantWindowS: 1,
		},
		{
			name:   "exempt client: a full bucket",
			p:      Policy{Name: "api", Rate: 100, Burst: 50},
			d:      Decision{Allowed: true, Exempt: true, Remaining: 50},
			policy: `"api";q=100;w=1`, ratelimit: `"api";r=50;t=0`,
			wantQuota: 100, wantWindowS: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.p.Validate(); err != nil {
				t.Fatalf("test policy invalid: %v", err)
			}
			if q, w := tc.p.Quota(), tc.p.WindowSeconds(); q != tc.wantQuota || w != tc.wantWindowS {
				t.Errorf("Quota, WindowSeconds = %d, %d, want %d, %d", q, w, tc.wantQuota, tc.wantWindowS)
			}
			var h fasthttp.ResponseHeader
			SetHeaders(&h, tc.p, tc.d)
			for _, f := range []struct{ name, want string }{
				{HeaderPolicy, tc.policy},
				{HeaderRateLimit, tc.ratelimit},
				{HeaderRetryAfter, tc.retryAfter},
			} {
				if got := string(h.Peek(f.name)); got != f.want {
					t.Errorf("%s: got %q, want %q", f.name, got, f.want)
				}
			}
		})
	}
}

// The whole path over a real socket: a fasthttp server limits by client
// address; a client sees the headers on success and a 429 problem+json with
// Retry-After once the burst is spent.
func TestHeadersOverHTTP(t *testing.T) {
	p := Policy{Name: "edge", By: ByIP, Rate: 1, Burst: 2, Window: 10 * time.Second}
	l := New(p)
	defer l.Close()
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		client, _ := netip.AddrFromSlice(ctx.RemoteIP())
		var kb [16]byte
		d := l.Allow(time.Now(), client, AppendAddr(kb[:0], client, 64))
		if !d.Allowed {
			problem.Write(ctx, problem.RateLimited, "", []byte("req-1"))
		}
		SetHeaders(&ctx.Response.Header, l.Policy(), d)
		if !d.Allowed {
			return
		}
		ctx.SetBodyString("ok")
	}}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln) //nolint:errcheck // ends with Shutdown
	defer srv.Shutdown()

	c := &http.Client{Timeout: 5 * time.Second}
	type answer struct {
		status                         int
		policy, ratelimit, retry, body string
	}
	get := func() answer {
		resp, err := c.Get("http://" + ln.Addr().String() + "/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return answer{resp.StatusCode, resp.Header.Get("RateLimit-Policy"), resp.Header.Get("RateLimit"), resp.Header.Get("Retry-After"), string(b)}
	}
	want := []answer{
		{200, `"edge";q=10;w=10`, `"edge";r=1;t=1`, "", "ok"},
		{200, `"edge";q=10;w=10`, `"edge";r=0;t=2`, "", "ok"},
	}
	for i, w := range want {
		if got := get(); got != w {
			t.Fatalf("request %d: got %+v, want %+v", i+1, got, w)
		}
	}
	got := get()
	if got.status != 429 || got.policy != `"edge";q=10;w=10` || got.ratelimit != `"edge";r=0;t=2` || got.retry != "1" {
		t.Fatalf("request 3: got %+v, want 429 with r=0, t=2 and Retry-After 1", got)
	}
	var doc struct {
		Type      string `json:"type"`
		Status    int    `json:"status"`
		RequestID string `json:"request_id"`
	}
	if err := json.Unmarshal([]byte(got.body), &doc); err != nil {
		t.Fatalf("429 body %q: %v", got.body, err)
	}
	if doc.Type != "urn:hedge:problem:rate-limited" || doc.Status != 429 || doc.RequestID != "req-1" {
		t.Errorf("429 body = %+v, want type urn:hedge:problem:rate-limited, status 429, request_id req-1", doc)
	}
}
