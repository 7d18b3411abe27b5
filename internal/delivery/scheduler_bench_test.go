package delivery

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rcrouter/rcrouter/destinations"
	"github.com/rcrouter/rcrouter/internal/event"
	"github.com/rcrouter/rcrouter/internal/revenuecat"
	"github.com/rcrouter/rcrouter/internal/store"
	"github.com/rcrouter/rcrouter/internal/store/sqlite"
	"github.com/rcrouter/rcrouter/internal/testutil"
)

// benchSink is a destination that answers at once, with one exchange shaped
// like the webhook adapter's (the raw body sent, a 200), so the dispatch
// records written are as large as real ones.
type benchSink struct{ n atomic.Int64 }

func (d *benchSink) Send(_ context.Context, dl destinations.Delivery) destinations.Result {
	d.n.Add(1)
	now := time.Now()
	return destinations.Result{Outcome: destinations.Delivered, Exchanges: []destinations.Exchange{{
		Request: destinations.Request{Method: "POST", URL: "http://127.0.0.1:9/hook", Body: string(dl.Event.Raw),
			Headers: map[string]string{"Content-Type": "application/json", "Idempotency-Key": dl.Key, "User-Agent": "rcrouter/bench"}},
		Response: destinations.Response{StatusCode: 200},
		Started:  now,
	}}}
}

// BenchmarkSchedulerDrain measures the scheduler and the SQLite store
// together, without HTTP: b.N pending deliveries (events × 3 destinations)
// are drained by the real scheduler into destinations that answer at once.
// One op is one delivery: claimed, decoded, sent, completed with its dispatch
// record, fsync'd.
func BenchmarkSchedulerDrain(b *testing.B) {
	body := testutil.ReadFixture(b, "revenuecat/initial_purchase_paid_eur.json")
	ev, err := revenuecat.Decode(body)
	if err != nil {
		b.Fatal(err)
	}
	for _, conc := range []int{4, 64} {
		b.Run(fmt.Sprintf("concurrency=%d", conc), func(b *testing.B) {
			st, err := sqlite.Open(filepath.Join(b.TempDir(), "rc.db"), sqlite.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			names := []string{"a", "b", "c"}
			events := (b.N + len(names) - 1) / len(names)
			benchFill(b, st, body, ev.ID, events, names)
			sinks := make([]*benchSink, len(names))
			targets := make([]Target, len(names))
			for i, n := range names {
				sinks[i] = &benchSink{}
				targets[i] = Target{Name: n, Type: "webhook", Dest: sinks[i], Policy: Policy{Concurrency: conc}}
			}
			var decodes atomic.Int64
			s := NewScheduler(st, SchedulerOptions{Decode: func(b []byte) (*event.Event, error) {
				decodes.Add(1)
				return revenuecat.Decode(b)
			}})
			s.Apply(targets)
			want := int64(events * len(names))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			cpu := benchCPU()
			b.ResetTimer()
			done := make(chan error, 1)
			go func() { done <- s.Run(ctx) }()
			deadline := time.Now().Add(10 * time.Minute)
			for {
				var got int64
				for _, k := range sinks {
					got += k.n.Load()
				}
				if got >= want {
					break
				}
				if time.Now().After(deadline) {
					b.Fatalf("drained %d of %d deliveries in 10 minutes", got, want)
				}
				time.Sleep(time.Millisecond)
			}
			// Every completion is committed once Shutdown returns.
			if err := s.Shutdown(context.Background()); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			<-done
			b.ReportMetric(float64(want)/b.Elapsed().Seconds(), "deliveries/s")
			b.ReportMetric(float64(benchCPU()-cpu)/float64(want)/1e3, "cpu-µs/delivery")
			b.ReportMetric(float64(decodes.Load())/float64(events), "decodes/event")
		})
	}
}

// benchFill ingests events (each to every destination) with many callers,
// so the setup uses group commit.
func benchFill(b *testing.B, st store.Store, body []byte, id string, events int, names []string) {
	b.Helper()
	deliveries := make([]store.NewDelivery, len(names))
	for i, n := range names {
		deliveries[i] = store.NewDelivery{Destination: n, Route: "everything"}
	}
	quoted := []byte(strconv.Quote(id))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(events) {
					return
				}
				eid := fmt.Sprintf("bench-%012d-%s", i, id[:8])
				b2 := replaceOnce(body, quoted, []byte(strconv.Quote(eid)))
				if _, err := st.Ingest(context.Background(), store.NewEvent{ID: eid, Type: "INITIAL_PURCHASE",
					ReceivedAt: time.Now(), Body: b2, Deliveries: deliveries}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func replaceOnce(b, old, new []byte) []byte { return bytes.Replace(b, old, new, 1) }

// benchCPU is the CPU time (user + system) of this process so far: on a
// shared machine the wall clock of an fsync-bound drain measures the disk's
// other tenants as much as this code; CPU per delivery does not.
func benchCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
