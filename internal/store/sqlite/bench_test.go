package sqlite

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rcrouter/rcrouter/internal/store"
)

// benchBody is a RevenueCat-sized event body (~1.5 KB).
var benchBody = append([]byte(`{"api_version":"1.0","event":{"type":"RENEWAL","x":"`), append(bytes.Repeat([]byte("x"), 1450), `"}}`...)...)

func benchEvent(n int64) store.NewEvent {
	return store.NewEvent{ID: fmt.Sprintf("evt-%d", n), Type: "RENEWAL", ReceivedAt: t0, Body: benchBody,
		Routes: []byte(`[{"name":"all","matched":true}]`),
		Deliveries: []store.NewDelivery{{Destination: "segment", Route: "all"}, {Destination: "slack", Route: "all"},
			{Destination: "warehouse", Route: "all"}}}
}

// BenchmarkIngest measures accepted events (1 event + 3 deliveries, fsync'd
// with synchronous=FULL) with g concurrent callers per GOMAXPROCS.
func BenchmarkIngest(b *testing.B) {
	for _, g := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("callers=%dxGOMAXPROCS", g), func(b *testing.B) {
			s, err := Open(filepath.Join(b.TempDir(), "rc.db"), Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			var n atomic.Int64
			before := s.commitCount()
			b.SetParallelism(g)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := s.Ingest(context.Background(), benchEvent(n.Add(1))); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(b.N)/float64(s.commitCount()-before), "events/commit")
		})
	}
}

// BenchmarkClaimComplete measures one worker draining a destination: claim
// batch deliveries, complete each as delivered with one dispatch record.
// One op is one delivery.
func BenchmarkClaimComplete(b *testing.B) {
	for _, batch := range []int{1, 10} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			s, err := Open(filepath.Join(b.TempDir(), "rc.db"), Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			fill(b, s, b.N)
			ctx := context.Background()
			now := t0.Add(time.Second)
			b.ResetTimer()
			for done := 0; done < b.N; {
				ds, err := s.Claim(ctx, "bench", "segment", now, now.Add(time.Minute), batch)
				if err != nil || len(ds) == 0 {
					b.Fatalf("Claim = %d rows, %v after %d", len(ds), err, done)
				}
				cs := make([]store.Completion, len(ds))
				for i, d := range ds {
					cs[i] = store.Completion{DeliveryID: d.ID, LeaseToken: d.Lease.Token, State: store.Delivered, FinishedAt: now,
						Dispatches: []store.Dispatch{{Attempt: 1, Status: "delivered", DurationMs: 40, CreatedAt: now}}}
				}
				if err := s.Complete(ctx, cs); err != nil {
					b.Fatal(err)
				}
				done += len(ds)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}

// fill ingests n events (+ a margin for the last claim) with many callers,
// so the setup itself uses group commit.
func fill(b *testing.B, s *Store, n int) {
	b.Helper()
	const workers = 32
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(n)+10 {
					return
				}
				if _, err := s.Ingest(context.Background(), benchEvent(i)); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}
