package delivery

import (
	"bytes"
	"sync"

	"github.com/rcrouter/rcrouter/internal/event"
)

// decodedCap bounds the decoded events kept for the other destinations of
// the same event. Each destination's worker claims an event's delivery at
// about the same time (they become due together), so a few batches' worth
// is enough; about 1,024 × 5 KB at most.
const decodedCap = 1024

// decodedEvents shares one decode of a stored event among the deliveries
// of all its destinations: without it each destination's attempt decodes
// the same body again (a tenth of rcrouter's CPU while fanning out to three).
// The shared *event.Event is read by several adapters at once; adapters
// never change the event they are given (destinations.Delivery).
//
// Entries leave oldest first. A hit needs the same event id and the same
// body bytes, so a store that returned another body for an id is decoded
// again rather than trusted.
type decodedEvents struct {
	decode func([]byte) (*event.Event, error)

	mu    sync.Mutex
	m     map[string]decodedEntry
	order []string // ring of the keys of m, oldest at next
	next  int
}

type decodedEntry struct {
	body []byte
	ev   *event.Event
}

func newDecodedEvents(decode func([]byte) (*event.Event, error), capacity int) *decodedEvents {
	capacity = max(capacity, 1)
	return &decodedEvents{decode: decode, m: make(map[string]decodedEntry, capacity), order: make([]string, 0, capacity)}
}

// get returns the decoded body of event id. A body that fails to decode is
// not kept: each delivery records its own failure.
func (c *decodedEvents) get(id string, body []byte) (*event.Event, error) {
	c.mu.Lock()
	e, ok := c.m[id]
	c.mu.Unlock()
	if ok && bytes.Equal(e.body, body) {
		return e.ev, nil
	}
	ev, err := c.decode(body)
	if err != nil || id == "" {
		return ev, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[id]; !ok {
		if len(c.order) < cap(c.order) {
			c.order = append(c.order, id)
		} else {
			delete(c.m, c.order[c.next])
			c.order[c.next] = id
			c.next = (c.next + 1) % len(c.order)
		}
	}
	// body is the claim's own slice (store.Delivery.Body), never reused.
	c.m[id] = decodedEntry{body: body, ev: ev}
	return ev, nil
}
