package ui

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/rcrouter/rcrouter/internal/event"
	"github.com/rcrouter/rcrouter/internal/server"
	"github.com/rcrouter/rcrouter/internal/store"
)

// fakeBackend answers the destinations list and records the calls the UI's
// scripts make through the API.
type fakeBackend struct {
	mu      sync.Mutex
	dests   []server.DestinationStatus
	retried []string
}

func (b *fakeBackend) Accept(context.Context, *event.Event) (server.Accepted, error) {
	return server.Accepted{}, errors.New("not used")
}

func (b *fakeBackend) Destinations(context.Context) ([]server.DestinationStatus, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.dests), nil
}

func (b *fakeBackend) Retry(_ context.Context, id string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.retried = append(b.retried, id)
	return nil
}

func (b *fakeBackend) Replay(context.Context, string, store.ReplayFilter, bool) (int, error) {
	return 0, nil
}
func (b *fakeBackend) SendTest(context.Context, string) (string, error) { return "test-1", nil }
func (b *fakeBackend) Pause(context.Context, string) error              { return nil }
func (b *fakeBackend) Resume(context.Context, string) error             { return nil }
func (b *fakeBackend) Reload(context.Context) error                     { return nil }
func (b *fakeBackend) Ready(context.Context) error                      { return nil }

// fakeStore keeps events, deliveries and dispatch records in memory and
// implements the read side the UI uses; the queue methods are not needed.
type fakeStore struct {
	mu         sync.Mutex
	events     map[string]store.Event
	deliveries map[string][]store.Delivery
	dispatches []store.Dispatch // any order; Dispatches sorts
	filters    []store.DispatchFilter
}

func newFakeStore() *fakeStore {
	return &fakeStore{events: map[string]store.Event{}, deliveries: map[string][]store.Delivery{}}
}

var _ store.Reader = (*fakeStore)(nil)

// errUnused answers the two reads the UI never makes.
var errUnused = errors.New("not used by the UI")

func (s *fakeStore) Delivery(context.Context, string) (store.Delivery, error) {
	return store.Delivery{}, errUnused
}
func (s *fakeStore) Stats(context.Context, time.Time) (map[string]store.DestinationStats, error) {
	return nil, errUnused
}

func (s *fakeStore) Event(_ context.Context, id string) (store.Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.events[id]
	if !ok {
		return store.Event{}, store.ErrNotFound
	}
	return e, nil
}

func (s *fakeStore) EventDeliveries(_ context.Context, id string) ([]store.Delivery, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.deliveries[id]), nil
}

func (s *fakeStore) Dispatch(_ context.Context, id string) (store.Dispatch, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.dispatches {
		if d.ID == id {
			return d, nil
		}
	}
	return store.Dispatch{}, store.ErrNotFound
}

// Dispatches filters and pages like the real store: newest first, and the
// cursor is the offset of the next page.
func (s *fakeStore) Dispatches(_ context.Context, f store.DispatchFilter) ([]store.Dispatch, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.filters = append(s.filters, f)
	var match []store.Dispatch
	for _, d := range s.dispatches {
		if (f.Destination == "" || d.Destination == f.Destination) && (f.Status == "" || d.Status == f.Status) &&
			(f.EventID == "" || d.EventID == f.EventID) && (f.EventType == "" || d.EventType == f.EventType) {
			match = append(match, d)
		}
	}
	slices.SortFunc(match, func(a, b store.Dispatch) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		switch {
		case a.ID > b.ID:
			return -1
		case a.ID < b.ID:
			return 1
		}
		return 0
	})
	start := 0
	if f.Before != "" {
		n, err := strconv.Atoi(f.Before)
		if err != nil || n < 0 || n > len(match) {
			return nil, "", store.ErrBadCursor
		}
		start = n
	}
	limit := f.Limit
	if limit == 0 {
		limit = 50
	}
	end := min(start+limit, len(match))
	next := ""
	if end < len(match) {
		next = strconv.Itoa(end)
	}
	return match[start:end], next, nil
}

func (s *fakeStore) lastFilter() store.DispatchFilter {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.filters) == 0 {
		return store.DispatchFilter{}
	}
	return s.filters[len(s.filters)-1]
}
