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

// TestSchedCommitterLostLease: a completion refused for its lease gets
// ErrLeaseLost; the rest of its batch is written in the same call.
func TestSchedCommitterLostLease(t *testing.T) {
	st := newSchedStore()
	ids := []string{"d1", "d2", "d3"}
	for _, id := range ids {
		st.addWith(store.Delivery{ID: id, Destination: "hook", State: store.Running, NextAttemptAt: schedT0,
			Lease: store.Lease{DeliveryID: id, Owner: "r1", Token: "tok-" + id}})
	}
	c := newCommitter(st, slog.New(slog.DiscardHandler))
	reqs := make([]commitReq, len(ids))
	for i, id := range ids {
		token := "tok-" + id
		if id == "d2" {
			token = "stale"
		}
		reqs[i] = commitReq{c: store.Completion{DeliveryID: id, LeaseToken: token, State: store.Delivered}, reply: make(chan error, 1)}
		c.in <- reqs[i]
	}
	go c.run(context.Background())
	for i, r := range reqs {
		err := <-r.reply
		if wantLost := ids[i] == "d2"; wantLost != errors.Is(err, store.ErrLeaseLost) || (!wantLost && err != nil) {
			t.Errorf("%s: err %v", ids[i], err)
		}
	}
	c.close()
	if !slices.Equal(st.completes, []int{3}) {
		t.Errorf("Complete calls of sizes %v, want one of 3 (no one-by-one retry)", st.completes)
	}
	for i, id := range ids {
		want := store.Delivered
		if i == 1 {
			want = store.Running
		}
		if got := st.get(id).State; got != want {
			t.Errorf("%s is %s, want %s", id, got, want)
		}
	}
}
