package postgres

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/rcrouter/rcrouter/internal/store"
	"github.com/rcrouter/rcrouter/internal/store/postgres/pgtest"
)

// TestIngestGroupCommit: webhooks that arrive while the committer is busy
// share the next commit; a batch that fails is retried event by event, so
// only the bad event fails; the same id twice in one batch is created once.
func TestIngestGroupCommit(t *testing.T) {
	s, err := Open(t.Context(), Options{DSN: pgtest.NewDatabase(t), Replica: "rc-1", Committers: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	hold := make(chan struct{})
	var mu sync.Mutex
	var sizes []int
	s.SetOnBatch(func(n int) {
		mu.Lock()
		sizes = append(sizes, n)
		first := len(sizes) == 1
		mu.Unlock()
		if first {
			<-hold // the committer is busy with the first webhook
		}
	})
	ev := func(id, typ string) store.NewEvent {
		return store.NewEvent{ID: id, Type: typ, Body: []byte(`{}`), Deliveries: []store.NewDelivery{{Destination: "a", Route: "r"}}}
	}
	type result struct {
		id      string
		created bool
		err     error
	}
	results := make(chan result, 10)
	var wg sync.WaitGroup
	submit := func(e store.NewEvent) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			created, err := s.Ingest(context.Background(), e)
			results <- result{e.ID, created, err}
		}()
	}
	submit(ev("first", "RENEWAL"))
	eventually(t, "the first batch to start", func() bool { mu.Lock(); defer mu.Unlock(); return len(sizes) == 1 })
	// PostgreSQL refuses a NUL byte in text: this event fails the batch.
	later := []store.NewEvent{ev("e1", "RENEWAL"), ev("e2", "RENEWAL"), ev("bad", "BAD\x00TYPE"), ev("e1", "RENEWAL")}
	for _, e := range later {
		submit(e)
	}
	eventually(t, "the later webhooks to queue", func() bool { return s.Queued() == len(later) })
	close(hold)
	wg.Wait()
	close(results)
	got := map[string][]bool{}
	for r := range results {
		if (r.err != nil) != (r.id == "bad") {
			t.Fatalf("Ingest(%s) err = %v", r.id, r.err)
		}
		got[r.id] = append(got[r.id], r.created)
	}
	if e1 := got["e1"]; len(e1) == 2 && e1[1] {
		e1[0], e1[1] = e1[1], e1[0] // either e1 webhook may be the one created
	}
	if fmt.Sprint(got["first"], got["e1"], got["e2"], got["bad"]) != "[true] [true false] [true] [false]" {
		t.Fatalf("created per id = %v", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(sizes[:2], []int{1, len(later)}) {
		t.Fatalf("batch sizes %v; want 1, then the %d queued meanwhile together", sizes, len(later))
	}
	if ds, err := s.EventDeliveries(t.Context(), "e1"); err != nil || len(ds) != 1 {
		t.Fatalf("e1 deliveries = %v, %v; want one", ds, err)
	}
}
