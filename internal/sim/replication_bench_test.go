package sim

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

// BenchmarkBet measures one bet over loopback HTTP at a writer alone, with
// a synchronous replica and with an asynchronous one: the price of RPO 0
// is one more round trip per bet.
func BenchmarkBet(b *testing.B) {
	for _, mode := range []string{"alone", ReplicationSync, ReplicationAsync} {
		b.Run(mode, func(b *testing.B) {
			quiet := slog.New(slog.DiscardHandler)
			serve := func(s LedgerSettings) string {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					b.Fatal(err)
				}
				s.Logger = quiet
				l := NewLedger(s)
				go l.Serve(ln)
				b.Cleanup(func() { l.Close() })
				return "http://" + ln.Addr().String()
			}
			s := LedgerSettings{Domain: "sea", StartBalance: "999999999.00"}
			if mode != "alone" {
				s.Replicas = []string{serve(LedgerSettings{Domain: "sea", Role: RoleReplica, StartBalance: "999999999.00"})}
				s.Replication = mode
			}
			base := serve(s)
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			var n atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1)
					req, _ := http.NewRequest(http.MethodPost, base+"/bets", strings.NewReader(`{"amount":"1.00"}`))
					req.Header.Set("Idempotency-Key", fmt.Sprint("k", i))
					req.Header.Set("X-Hedge-Principal", fmt.Sprint("p", i%64))
					resp, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusCreated {
						b.Errorf("bet: expected 201, got %d", resp.StatusCode)
						return
					}
				}
			})
		})
	}
}
