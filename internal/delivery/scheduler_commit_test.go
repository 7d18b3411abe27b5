package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"testing"

	"github.com/rcrouter/rcrouter/internal/store"
)

func TestSchedCommitterBatches(t *testing.T) {
	tests := []struct {
		name      string
		queued    int
		wantSizes []int
	}{
		{"one alone is written at once", 1, []int{1}},
		{"what queued during a write shares the next", 10, []int{10}},
		{"batches are bounded", 100, []int{commitBatch, 100 - commitBatch}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := newSchedStore()
			c := newCommitter(st, slog.New(slog.DiscardHandler))
			reqs := make([]commitReq, tc.queued)
			for i := range reqs {
				id := fmt.Sprintf("d%03d", i)
				st.add(id, "hook", schedT0)
				reqs[i] = commitReq{c: store.Completion{DeliveryID: id, State: store.Delivered,
					Dispatches: []store.Dispatch{{DeliveryID: id, Attempt: 1, Status: "delivered"}}}, reply: make(chan error, 1)}
				c.in <- reqs[i] // queued before the committer runs: as if they arrived during a write
			}
			go c.run(context.Background())
			for i, r := range reqs {
				if err := <-r.reply; err != nil {
					t.Fatalf("completion %d: %v", i, err)
				}
				if r.c.Dispatches[0].ID == "" {
					t.Fatalf("completion %d: dispatch id not set in place", i)
				}
			}
			c.close()
			if !slices.Equal(st.completes, tc.wantSizes) {
				t.Fatalf("Complete calls of sizes %v, want %v", st.completes, tc.wantSizes)
			}
		})
	}
}

func TestSchedCommitterIsolatesABadCompletion(t *testing.T) {
	st := newSchedStore()
	st.add("good1", "hook", schedT0)
	st.add("good2", "hook", schedT0)
	c := newCommitter(st, slog.New(slog.DiscardHandler))
	ids := []string{"good1", "deleted", "good2"}
	reqs := make([]commitReq, len(ids))
	for i, id := range ids {
		reqs[i] = commitReq{c: store.Completion{DeliveryID: id, State: store.Delivered}, reply: make(chan error, 1)}
		c.in <- reqs[i]
	}
	go c.run(context.Background())
	for i, r := range reqs {
		err := <-r.reply
		if wantErr := ids[i] == "deleted"; wantErr != errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: err %v", ids[i], err)
		}
	}
	c.close()
	for _, id := range []string{"good1", "good2"} {
		if got := st.get(id).State; got != store.Delivered {
			t.Errorf("%s is %s, want delivered despite the bad neighbour", id, got)
		}
	}
}
