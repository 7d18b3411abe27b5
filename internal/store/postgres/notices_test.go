package postgres

import (
	"fmt"
	"reflect"
	"testing"
	"time"
)

// TestNoticesFollowCommit: writes commit and return without waiting for
// their notices, which go out afterwards in one statement, one wake-up per
// destination however many writes asked for it, and reach other replicas.
func TestNoticesFollowCommit(t *testing.T) {
	rs := replicas(t, 2)
	a, b := rs[0], rs[1]
	ctx := t.Context()
	sent := make(chan [][2]string, 8)
	release := make(chan struct{})
	a.SetOnNotices(func(chans, payloads []string) {
		var ns [][2]string
		for i := range chans {
			ns = append(ns, [2]string{chans[i], payloads[i]})
		}
		sent <- ns
		select {
		case <-release:
		case <-ctx.Done(): // the stores close: their last sends go freely
		}
	})
	eventually(t, "b's notifier listening", func() bool { return b.Connects() > 0 })
	wake := b.SubscribeWakeups(ctx)
	if d := <-wake; d != "" {
		t.Fatalf("first wake-up = %q, want \"\"", d)
	}

	ingest(t, a, "e000", t0, "x", "y")
	if got, want := receive(t, sent), [][2]string{{chanDue, "x"}, {chanDue, "y"}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("first send = %v, want %v", got, want)
	}
	// The sender is held: writes still commit and return.
	for i := 1; i <= 20; i++ {
		ingest(t, a, fmt.Sprintf("e%03d", i), t0.Add(time.Duration(i)*time.Millisecond), "x")
	}
	if err := a.Retry(t.Context(), firstDelivery(t, a, "y"), t0); err != nil {
		t.Fatalf("Retry: %v", err)
	}
	select {
	case d := <-wake:
		t.Fatalf("b woke for %q before any notice was sent", d)
	default:
	}
	release <- struct{}{}
	if got, want := receive(t, sent), [][2]string{{chanDue, "x"}, {chanDue, "y"}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("second send (21 ingests and a retry) = %v, want %v", got, want)
	}
	release <- struct{}{}
	woke := map[string]int{}
	for len(woke) < 2 || woke["x"] < 2 {
		select {
		case d := <-wake:
			woke[d]++
		case <-time.After(10 * time.Second):
			t.Fatalf("b woke for %v, want x twice and y", woke)
		}
	}
}

func receive[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for a send")
		panic("unreachable")
	}
}

// firstDelivery returns the id of a delivery of destination.
func firstDelivery(t *testing.T, s *Store, destination string) string {
	t.Helper()
	var id string
	if err := s.pool.QueryRow(t.Context(), `SELECT id FROM deliveries WHERE destination = $1 LIMIT 1`, destination).Scan(&id); err != nil {
		t.Fatalf("delivery of %s: %v", destination, err)
	}
	return id
}

// TestNoticesRequeue: what a failed send took goes back ahead of what was
// queued since, wake-ups stay one per destination, and the bound holds.
func TestNoticesRequeue(t *testing.T) {
	tests := []struct {
		name             string
		taken, takenDue  []string
		since, sinceDue  []string
		limit            int
		wantIDs, wantDue []string
		wantDropped      int64
	}{
		{"failed first, then newer", []string{"a", "b"}, []string{"x"}, []string{"c"}, []string{"y", "x"}, 10,
			[]string{"a", "b", "c"}, []string{"x", "y"}, 0},
		{"nothing since", []string{"a"}, nil, nil, nil, 10, []string{"a"}, nil, 0},
		{"over the bound: the oldest go", []string{"a", "b", "c"}, nil, []string{"d"}, nil, 3,
			[]string{"b", "c", "d"}, nil, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := &notices{kick: make(chan struct{}, 1), dueSet: map[string]struct{}{}, maxIDs: tt.limit}
			n.announce(tt.since)
			n.wake(tt.sinceDue...)
			n.requeue(tt.taken, tt.takenDue)
			ids, due := n.take()
			if !reflect.DeepEqual(ids, tt.wantIDs) || !reflect.DeepEqual(due, tt.wantDue) {
				t.Errorf("after requeue: ids %v due %v, want %v %v", ids, due, tt.wantIDs, tt.wantDue)
			}
			if got := n.dropped.Load(); got != tt.wantDropped {
				t.Errorf("dropped %d, want %d", got, tt.wantDropped)
			}
		})
	}
}
