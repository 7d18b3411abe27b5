package server

import (
	"context"
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

	// The source of Feed, and the subscription to it that exists while the
	// hub has subscribers.
	source  func(context.Context) <-chan store.Dispatch
	base    context.Context    // Feed's
	stopSrc context.CancelFunc // ends the current subscription; nil: none
	gen     uint64             // grows at every start and stop of a subscription
	forward sync.WaitGroup     // the goroutines that forward subscriptions
}

// NewHub returns an empty hub.
func NewHub() *Hub { return &Hub{subs: map[chan store.Dispatch]struct{}{}} }

// Publish sends d to every subscriber that has room.
func (h *Hub) Publish(d store.Dispatch) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.publishLocked(d)
}

func (h *Hub) publishLocked(d store.Dispatch) {
	for ch := range h.subs {
		select {
		case ch <- d:
		default: // slow subscriber: drop for it alone
		}
	}
}

// Feed publishes the records of source until ctx ends, subscribing to it
// only while the hub has subscribers: source(sctx) is called, under the
// hub's lock, when the first stream client arrives (at once if one is
// there already) and must return at once, without calling the hub; sctx
// ends when the last client leaves. A replica's store reads every
// replica's records back from the database for its feed (DESIGN §8), work
// worth doing only while someone watches. Records that source sends are
// shown from the moment the subscription exists, so a client sees every
// record its replica's source hears of after it subscribed. Feed returns
// when ctx has ended and every forwarding goroutine has stopped.
func (h *Hub) Feed(ctx context.Context, source func(context.Context) <-chan store.Dispatch) {
	h.mu.Lock()
	h.source, h.base = source, ctx
	if len(h.subs) > 0 {
		h.startLocked()
	}
	h.mu.Unlock()
	<-ctx.Done()
	h.mu.Lock()
	h.source = nil
	h.stopLocked()
	h.mu.Unlock()
	h.forward.Wait()
}

// startLocked subscribes to the source, if there is one and no subscription
// yet; h.mu is held.
func (h *Hub) startLocked() {
	if h.source == nil || h.stopSrc != nil {
		return
	}
	sctx, cancel := context.WithCancel(h.base)
	h.stopSrc = cancel
	h.gen++
	gen, ch := h.gen, h.source(sctx)
	h.forward.Add(1)
	go func() {
		defer h.forward.Done()
		for d := range ch {
			h.mu.Lock()
			// A record still in flight from a subscription that has ended
			// is dropped: a newer one (or none) serves the clients now.
			if h.gen == gen {
				h.publishLocked(d)
			}
			h.mu.Unlock()
		}
	}()
}

// stopLocked ends the subscription to the source, if any; h.mu is held.
func (h *Hub) stopLocked() {
	if h.stopSrc != nil {
		h.stopSrc()
		h.stopSrc = nil
		h.gen++
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
	h.startLocked()
	return ch, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if _, ok := h.subs[ch]; ok {
			delete(h.subs, ch)
			close(ch)
			if len(h.subs) == 0 {
				h.stopLocked()
			}
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
	h.stopLocked()
}
