package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/rcrouter/rcrouter/internal/store"
)

// cpuTime is the CPU time (user + system) this process used so far. The
// benchmarks below report it per operation because on a shared machine the
// wall clock of an fsync-bound loop measures the disk's other tenants more
// than this code.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkDrainBatch is one worker draining one destination the way the
// scheduler does under load: claim batch deliveries, complete them all in
// one Complete call (delivered, one dispatch record with a webhook-sized
// request), both fsync'd. One op is one delivery.
func BenchmarkDrainBatch(b *testing.B) {
	for _, batch := range []int{10, 64, 256} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			s, err := Open(filepath.Join(b.TempDir(), "rc.db"), Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			fill(b, s, b.N)
			ctx := context.Background()
			now := t0.Add(time.Second)
			req := store.Dispatch{Attempt: 1, Status: "delivered", DurationMs: 1, CreatedAt: now}
			req.Request.Method, req.Request.URL, req.Request.Body = "POST", "http://127.0.0.1:9/hook", string(benchBody)
			req.Request.Headers = map[string]string{"Content-Type": "application/json", "Idempotency-Key": "rc-0123456789abcdef0123456789abcdef"}
			req.Response.StatusCode = 200
			commits := s.commitCount()
			cpu := cpuTime()
			b.ResetTimer()
			for done := 0; done < b.N; {
				ds, err := s.Claim(ctx, "bench", "segment", now, now.Add(time.Minute), min(batch, b.N-done))
				if err != nil || len(ds) == 0 {
					b.Fatalf("Claim = %d rows, %v after %d", len(ds), err, done)
				}
				cs := make([]store.Completion, len(ds))
				for i, d := range ds {
					cs[i] = store.Completion{DeliveryID: d.ID, LeaseToken: d.Lease.Token, State: store.Delivered, FinishedAt: now,
						Dispatches: []store.Dispatch{req}}
				}
				if err := s.Complete(ctx, cs); err != nil {
					b.Fatal(err)
				}
				done += len(ds)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
			b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N)/1e3, "cpu-µs/delivery")
			b.ReportMetric(float64(s.commitCount()-commits), "commits")
		})
	}
}
