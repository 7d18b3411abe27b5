package sqlite

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
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

// timelineEvents is how many events BenchmarkTimeline stores (DESIGN's
// target: a timeline page under 20 ms with 1,000,000 events);
// RCROUTER_BENCH_EVENTS overrides it for a quick run.
func timelineEvents(b *testing.B) int {
	if v := os.Getenv("RCROUTER_BENCH_EVENTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1000 {
			b.Fatalf("RCROUTER_BENCH_EVENTS=%q: want a number of at least 1000", v)
		}
		return n
	}
	return 1_000_000
}

// BenchmarkTimeline measures one page (50 events) of a customer's timeline
// among many stored events: 10 events per customer, each found by its app
// user id, an anonymous original id and an alias, as Ingest indexes them.
// The table is filled in one transaction on the writing connection (with
// the statements Ingest prepares) because a million fsync'd ingests would
// take the benchmark's whole budget; the read is the real Events.
func BenchmarkTimeline(b *testing.B) {
	n := timelineEvents(b)
	s, err := Open(filepath.Join(b.TempDir(), "rc.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	customers := n / 10
	err = s.do(context.Background(), func(w *writer) error {
		for i := 0; i < n; i++ {
			id, c := fmt.Sprintf("evt-%08d", i), i%customers
			at := ms(t0.Add(time.Duration(i) * time.Second))
			if _, err := w.st.insEvent.ExecContext(w.ctx, id, "RENEWAL", at, benchBody, `[{"name":"all","matched":true}]`, true); err != nil {
				return err
			}
			for _, u := range []string{fmt.Sprintf("user-%d", c), fmt.Sprintf("$RCAnonymousID:%d", c), fmt.Sprintf("alias-%d", c)} {
				if _, err := w.st.insUser.ExecContext(w.ctx, u, at, id); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		items, _, err := s.Events(context.Background(), store.EventFilter{UserID: fmt.Sprintf("alias-%d", i%customers), Limit: 50})
		if err != nil || len(items) != 10 {
			b.Fatalf("timeline: %d items, %v", len(items), err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/page")
}
