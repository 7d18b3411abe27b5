// Package batch groups the concurrent Sends of one destination into shared
// requests, for vendor APIs that take many events per request (Amplitude,
// Mixpanel, PostHog).
//
// The policy is group commit: a Send that finds no request in flight sends
// its event at once, alone; Sends that arrive while a request is in flight
// queue up and leave together, up to Max items, when it ends. A quiet
// destination so adds no latency, and a busy one sends few, full requests.
// There is no timer and no goroutine of its own: the Send at the head of the
// queue makes the next request, so every request has a caller that owns it.
package batch

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/rcrouter/rcrouter/destinations"
)

// Flush sends items (one request, or a few when the vendor's answer asks
// for a split) and returns one result per item, in order. ctx bounds the
// flush; it is not any one caller's context.
type Flush[T any] func(ctx context.Context, items []T) []destinations.Result

// Batcher is the queue of one destination. The zero value is not usable; use New.
type Batcher[T any] struct {
	max     int
	timeout time.Duration
	flush   Flush[T]

	mu      sync.Mutex
	queue   []*call[T]
	running bool // a request is in flight or about to be
}

type call[T any] struct {
	item    T
	res     destinations.Result
	taken   bool          // in a request; its result will come
	done    chan struct{} // closed when res is set
	promote chan struct{} // closed when this call must make the next request
}

// New returns a batcher that sends at most size items per request (at least
// 1); one flush (every request it makes, splits included) is bounded by
// timeout.
func New[T any](size int, timeout time.Duration, flush Flush[T]) *Batcher[T] {
	return &Batcher[T]{max: max(size, 1), timeout: timeout, flush: flush}
}

// Do queues item and returns its result once the request that carried it has
// ended. When ctx ends before the item was taken into a request, Do returns
// Retry and the item is never sent. Once taken, Do waits for the request,
// which its own timeout bounds, so that every real request reaches the
// dispatch log.
func (b *Batcher[T]) Do(ctx context.Context, item T) destinations.Result {
	c := &call[T]{item: item, done: make(chan struct{}), promote: make(chan struct{})}
	b.mu.Lock()
	b.queue = append(b.queue, c)
	lead := !b.running
	b.running = true
	b.mu.Unlock()
	if lead {
		b.run(ctx)
	}
	for {
		select {
		case <-c.done:
			return c.res
		case <-c.promote:
			b.run(ctx)
		case <-ctx.Done():
			b.mu.Lock()
			if c.taken || isClosed(c.promote) {
				// In a request, or chosen to make the next one: see it through.
				b.mu.Unlock()
				select {
				case <-c.done:
					return c.res
				case <-c.promote:
					b.run(ctx)
					continue
				}
			}
			b.remove(c)
			b.mu.Unlock()
			return destinations.Result{Outcome: destinations.Retry, Reason: destinations.ReasonTimeout,
				Message: fmt.Sprintf("not sent: the attempt ended while waiting for a batch (%v)", ctx.Err())}
		}
	}
}

// run makes one request of the queue's first items and hands the next
// request to the call then at the head of the queue.
func (b *Batcher[T]) run(ctx context.Context) {
	b.mu.Lock()
	n := min(len(b.queue), b.max)
	calls := append([]*call[T](nil), b.queue[:n]...)
	b.queue = append(b.queue[:0:0], b.queue[n:]...)
	for _, c := range calls {
		c.taken = true
	}
	b.mu.Unlock()

	if len(calls) > 0 {
		// The request outlives a caller that gives up: the others wait for it.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.timeout)
		items := make([]T, len(calls))
		for i, c := range calls {
			items[i] = c.item
		}
		results := b.flush(rctx, items)
		cancel()
		for i, c := range calls {
			if i < len(results) {
				c.res = results[i]
			} else {
				c.res = destinations.Result{Outcome: destinations.Retry, Reason: destinations.ReasonServerError,
					Message: "no result for this event from its batch"}
			}
			close(c.done)
		}
	}

	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.queue) == 0 {
		b.running = false
		return
	}
	close(b.queue[0].promote)
}

// remove drops c from the queue; b.mu is held.
func (b *Batcher[T]) remove(c *call[T]) {
	for i, q := range b.queue {
		if q == c {
			b.queue = append(b.queue[:i], b.queue[i+1:]...)
			return
		}
	}
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// Queued is how many items wait for a request (tests wait on it).
func (b *Batcher[T]) Queued() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.queue)
}

// Named gives a destination a String, GoString and LogValue that print only
// its type and name: printing it (%v, %+v, %#v, slog) never walks its
// fields, which hold secrets that fmt cannot redact.
type Named struct {
	Kind string // "amplitude"
	Name string // the destination's name
}

// String is "<kind> \"<name>\"".
func (n Named) String() string { return fmt.Sprintf("%s %q", n.Kind, n.Name) }

// GoString implements fmt.GoStringer; see String.
func (n Named) GoString() string { return n.String() }

// LogValue implements slog.LogValuer; see String.
func (n Named) LogValue() slog.Value { return slog.StringValue(n.String()) }

// Capabilities are what a destination built on b asks of the scheduler: a
// batch worth of Sends at once, and time for a Send to wait out the flush
// ahead of it and then its own.
func (b *Batcher[T]) Capabilities() destinations.Capabilities {
	return destinations.Capabilities{Batch: b.max, MaxWait: 2*b.timeout + time.Second}
}
