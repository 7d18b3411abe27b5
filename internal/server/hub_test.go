package server

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/rcrouter/rcrouter/internal/store"
)

// fakeSource is a Feed source that records its subscriptions.
type fakeSource struct {
	mu         sync.Mutex
	subs       []*fakeSub
	subscribed chan *fakeSub // each new subscription
}

type fakeSub struct {
	ctx context.Context
	ch  chan store.Dispatch
}

func (f *fakeSource) subscribe(ctx context.Context) <-chan store.Dispatch {
	s := &fakeSub{ctx: ctx, ch: make(chan store.Dispatch, 4)}
	f.mu.Lock()
	f.subs = append(f.subs, s)
	f.mu.Unlock()
	f.subscribed <- s
	go func() { <-ctx.Done(); close(s.ch) }()
	return s.ch
}

func (f *fakeSource) all() []*fakeSub {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*fakeSub(nil), f.subs...)
}

func next(t *testing.T, ch <-chan store.Dispatch) store.Dispatch {
	t.Helper()
	select {
	case d := <-ch:
		return d
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for a record")
		return store.Dispatch{}
	}
}

func ended(t *testing.T, ctx context.Context) {
	t.Helper()
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the source's subscription did not end")
	}
}

// TestHubFeedsOnlyWhileSubscribed: the hub subscribes to its source only
// while it has stream clients, at once when the first one arrives, and
// shows a client every record the source sends from then on.
func TestHubFeedsOnlyWhileSubscribed(t *testing.T) {
	h := NewHub()
	src := &fakeSource{subscribed: make(chan *fakeSub, 4)}
	ctx, cancel := context.WithCancel(t.Context())
	fed := make(chan struct{})
	go func() { defer close(fed); h.Feed(ctx, src.subscribe) }()

	// Feed has not necessarily begun: a client that arrives first is
	// served once it does.
	c1, cancel1 := h.Subscribe()
	select {
	case <-src.subscribed:
	case <-time.After(10 * time.Second):
		t.Fatal("no subscription to the source with a client connected")
	}
	subs := src.all()
	subs[0].ch <- store.Dispatch{ID: "d1"}
	if d := next(t, c1); d.ID != "d1" {
		t.Fatalf("client got %q, want d1", d.ID)
	}

	c2, cancel2 := h.Subscribe()
	if n := len(src.all()); n != 1 {
		t.Fatalf("a second client made %d subscriptions, want 1", n)
	}
	subs[0].ch <- store.Dispatch{ID: "d2"}
	for _, c := range []<-chan store.Dispatch{c1, c2} {
		if d := next(t, c); d.ID != "d2" {
			t.Fatalf("client got %q, want d2", d.ID)
		}
	}
	cancel1()
	if subs[0].ctx.Err() != nil {
		t.Fatal("the subscription ended while a client was still connected")
	}
	cancel2()
	ended(t, subs[0].ctx)

	// A new client: a new subscription, at once (before Subscribe returns).
	c3, cancel3 := h.Subscribe()
	defer cancel3()
	subs = src.all()
	if len(subs) != 2 {
		t.Fatalf("%d subscriptions after a client came back, want 2", len(subs))
	}
	subs[1].ch <- store.Dispatch{ID: "d3"}
	if d := next(t, c3); d.ID != "d3" {
		t.Fatalf("client got %q, want d3", d.ID)
	}

	cancel()
	select {
	case <-fed:
	case <-time.After(10 * time.Second):
		t.Fatal("Feed did not return after its context ended")
	}
	ended(t, subs[1].ctx)
	select {
	case _, open := <-c3:
		t.Fatalf("Feed's end sent to or closed a client's stream (open %v); only the hub's Close closes it", open)
	default:
	}
}

// TestHubWithoutSourcePublishes: a hub with no Feed (SQLite: the scheduler
// publishes) works as before.
func TestHubWithoutSourcePublishes(t *testing.T) {
	h := NewHub()
	c, cancel := h.Subscribe()
	defer cancel()
	h.Publish(store.Dispatch{ID: "local"})
	if d := next(t, c); d.ID != "local" {
		t.Fatalf("client got %q, want local", d.ID)
	}
	h.Close()
	if _, open := <-c; open {
		t.Fatal("Close left a client's stream open")
	}
}
