package postgres

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rcrouter/rcrouter/internal/store"
	"github.com/rcrouter/rcrouter/internal/store/postgres/pgtest"
)

// BenchmarkIngestConcurrent measures durable ingest (one event, two
// deliveries, synchronous_commit on) at several numbers of concurrent
// webhooks, and how many events share one WAL flush: PostgreSQL's own
// group commit, which is why this store has no batching writer.
//
//	go test -run '^$' -bench IngestConcurrent -benchtime 2s ./internal/store/postgres/
//
// events/flush reads the server-wide pg_stat_wal: other load on the
// server during the run blurs it.
func BenchmarkIngestConcurrent(b *testing.B) {
	dsn := pgtest.NewDatabase(b)
	var seq atomic.Int64
	body := []byte(`{"api_version":"1.0","event":{"id":"x","type":"RENEWAL"}}`)
	modes := []struct {
		name string
		opts Options
	}{
		{"batched", Options{}},
		// One event per commit, as many commits at once as writers: what
		// PostgreSQL's own group commit does alone.
		{"unbatched", Options{MaxBatch: 1, Committers: 32, MaxConns: 32}},
	}
	for _, m := range modes {
		m.opts.DSN, m.opts.Replica = dsn, "bench"
		s, err := Open(b.Context(), m.opts)
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		if _, err := s.Migrate(b.Context()); err != nil {
			b.Fatal(err)
		}
		for _, writers := range []int{1, 8, 32} {
			b.Run(fmt.Sprintf("%s/writers=%d", m.name, writers), func(b *testing.B) {
				benchIngest(b, s, &seq, body, writers)
			})
		}
	}
}

func benchIngest(b *testing.B, s *Store, seq *atomic.Int64, body []byte, writers int) {
	var syncs0, syncs1 int64
	if err := s.pool.QueryRow(b.Context(), `SELECT wal_sync FROM pg_stat_wal`).Scan(&syncs0); err != nil {
		b.Fatal(err)
	}
	var left atomic.Int64
	left.Store(int64(b.N))
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for left.Add(-1) >= 0 {
				id := fmt.Sprintf("evt-%d", seq.Add(1))
				_, err := s.Ingest(b.Context(), store.NewEvent{ID: id, Type: "RENEWAL", Body: body,
					Deliveries: []store.NewDelivery{{Destination: "a", Route: "r"}, {Destination: "b", Route: "r"}}})
				if err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := s.pool.QueryRow(b.Context(), `SELECT wal_sync FROM pg_stat_wal`).Scan(&syncs1); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	if d := syncs1 - syncs0; d > 0 {
		b.ReportMetric(float64(b.N)/float64(d), "events/flush")
	}
}
