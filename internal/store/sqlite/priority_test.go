package sqlite

import (
	"context"
	"path/filepath"
	"slices"
	"sync"
	"testing"
)

// TestWriterServesWebhooksFirst: with webhooks (foreground) waiting, a
// transaction takes at most one background request (delivery pipeline), and
// none if the transaction before took one; with no webhook waiting, the
// background requests go together.
func TestWriterServesWebhooksFirst(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "rc.db"), Options{})
	var mu sync.Mutex
	tx := map[string]int64{} // request name → transactions committed before it ran
	var all []*request
	req := func(name string, background bool, then func()) *request {
		r := &request{ctx: context.Background(), done: make(chan error, 1), background: background,
			op: func(*writer) error {
				mu.Lock()
				tx[name] = s.commitCount()
				mu.Unlock()
				if then != nil {
					then()
				}
				return nil
			}}
		all = append(all, r)
		return r
	}
	release := s.hold(t)
	// Queued while the writer is busy, as a burst would be. bg1 runs in the
	// first transaction and queues fg2 meanwhile: a webhook that arrived
	// during that transaction.
	fg2 := req("fg2", false, nil)
	s.reqs <- req("fg1", false, nil)
	s.bg <- req("bg1", true, func() { s.reqs <- fg2 })
	s.bg <- req("bg2", true, nil)
	s.bg <- req("bg3", true, nil)
	base := s.commitCount() + 1 // the held request's transaction
	release()
	for _, r := range all {
		if err := <-r.done; err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	got := map[int64][]string{}
	for name, n := range tx {
		got[n-base] = append(got[n-base], name)
	}
	for _, names := range got {
		slices.Sort(names)
	}
	want := map[int64][]string{
		0: {"bg1", "fg1"}, // webhooks waiting: one background request
		1: {"fg2"},        // and none in the next transaction
		2: {"bg2", "bg3"}, // no webhook waiting: all of them
	}
	for i := int64(0); i < 3; i++ {
		if !slices.Equal(got[i], want[i]) {
			t.Fatalf("transactions: %v, want %v", got, want)
		}
	}
}
