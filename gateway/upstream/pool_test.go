package upstream

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"hedge/configs"
)

func pool(t *testing.T, policy string, members ...string) *Pool {
	t.Helper()
	pc := configs.Pool{Name: "p", Policy: configs.PoolPolicy(policy), MaxConnsPerMember: 4,
		Health:   configs.HealthCheck{Path: "/healthz", Interval: configs.Duration(time.Second), Timeout: configs.Duration(time.Second), Rise: 1, Fall: 1},
		Passive:  configs.PassiveHealth{MaxFails: 1, EjectFor: configs.Duration(time.Minute)},
		Timeouts: configs.Timeouts{Connect: configs.Duration(time.Second), Response: configs.Duration(time.Second)},
		Retries:  configs.Retries{Attempts: 2, Budget: 0.2, MinPerSecond: 1},
	}
	for _, m := range members {
		pc.Members = append(pc.Members, configs.Member{Name: m, URL: "http://" + m + ":80"})
	}
	p, err := New(pc, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPickPolicies(t *testing.T) {
	rr := pool(t, "round_robin", "a", "b", "c")
	seen := map[string]int{}
	for range 30 {
		seen[rr.Pick(nil).Name]++
	}
	if seen["a"] != 10 || seen["b"] != 10 || seen["c"] != 10 {
		t.Fatalf("round robin: want 10 each, got %v", seen)
	}
	// Tried members and unhealthy ones are skipped.
	rr.Members[1].Health.ReportFailure(errors.New("refused")) // MaxFails 1: ejected
	for range 10 {
		if m := rr.Pick([]*Member{rr.Members[0]}); m == nil || m.Name != "c" {
			t.Fatalf("want c (a tried, b ejected), got %v", m)
		}
	}
	if rr.Healthy() != 2 {
		t.Fatalf("healthy: want 2, got %d", rr.Healthy())
	}

	fo := pool(t, "failover", "primary", "backup")
	for range 5 {
		if m := fo.Pick(nil); m.Name != "primary" {
			t.Fatalf("failover: want primary, got %s", m.Name)
		}
	}
	fo.Members[0].Health.Set(false, "test")
	if m := fo.Pick(nil); m.Name != "backup" {
		t.Fatalf("failover with primary down: want backup, got %s", m.Name)
	}
	fo.Members[1].Health.Set(false, "test")
	if m := fo.Pick(nil); m != nil {
		t.Fatalf("no healthy member: want nil, got %s", m.Name)
	}
}

func TestBudget(t *testing.T) {
	b := NewBudget(0.2, 1)
	if !b.Withdraw() {
		t.Fatal("the per-second floor must allow one retry")
	}
	if b.Withdraw() {
		t.Fatal("no requests deposited: a second retry must be refused")
	}
	for range 10 {
		b.Deposit() // 10 requests × 0.2 = 2 retries
	}
	for i := range 2 {
		if !b.Withdraw() {
			t.Fatalf("10 requests at 20 %% must allow 2 retries; retry %d refused", i+1)
		}
	}
	if b.Withdraw() {
		t.Fatal("the budget must be spent after 2 retries")
	}
}

func TestErrorClassification(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	_, err := Dialer(time.Second)(addr)
	if !BeforeSend(err) || Timeout(err) {
		t.Fatalf("connection refused: want before-send, not timeout, got %v", err)
	}
	if !Timeout(fasthttp.ErrTimeout) || BeforeSend(fasthttp.ErrTimeout) {
		t.Fatal("a response timeout is after sending")
	}
	if BeforeSend(fasthttp.ErrConnectionClosed) {
		t.Fatal("a connection closed mid-exchange may have been applied: not before-send")
	}
}
