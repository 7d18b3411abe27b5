package server

import (
	"sync"

	"github.com/rcrouter/rcrouter/internal/store"
)

// subscriberBuffer bounds what one slow stream client may lag behind. Past it,
// records are dropped for that client only (it sees a gap, never a stall of
// the scheduler).
const subscriberBuffer = 256

// Hub fans dispatch records out to live stream subscribers. Publish never
// blocks.
type Hub struct {
	mu     sync.Mutex
	subs   map[chan store.Dispatch]struct{}
	closed bool
}

// NewHub returns an empty hub.
func NewHub() *Hub { return &Hub{subs: map[chan store.Dispatch]struct{}{}} }

// Publish sends d to every subscriber that has room.
func (h *Hub) Publish(d store.Dispatch) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		select {
		case ch <- d:
		default: // slow subscriber: drop for it alone
		}
	}
}

// Subscribe returns a channel of dispatch records and a cancel function. The
// channel is closed by cancel or when the hub closes.
func (h *Hub) Subscribe() (<-chan store.Dispatch, func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ch := make(chan store.Dispatch, subscriberBuffer)
	if h.closed {
		close(ch)
		return ch, func() {}
	}
	h.subs[ch] = struct{}{}
	return ch, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if _, ok := h.subs[ch]; ok {
			delete(h.subs, ch)
			close(ch)
		}
	}
}

// Close ends every subscription; later subscriptions end at once.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for ch := range h.subs {
		delete(h.subs, ch)
		close(ch)
	}
}
