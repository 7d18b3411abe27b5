package postgres

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rcrouter/rcrouter/internal/store"
)

// Subscriber buffers. A full buffer drops: wake-ups are hints (the
// scheduler's poll finds due work anyway) and the live feed is best-effort
// (the dispatch log in the database is complete).
const (
	wakeBuffer     = 64
	dispatchBuffer = 256
)

// Reconnect backoff of the notifier's connection, and how it checks a
// silent connection.
const (
	minReconnect = 100 * time.Millisecond
	maxReconnect = 5 * time.Second
	idlePing     = 15 * time.Second
	pingTimeout  = 5 * time.Second
)

// feed owns the notifier: one dedicated connection (not from the pool: a
// LISTEN lives as long as its session) that LISTENs on every channel and
// reconnects by itself, with backoff, whenever it is lost (server restart,
// pg_terminate_backend, network).
type feed struct {
	s *Store

	wake   *hub[string]
	paused *hub[store.PauseChange]
	disp   *hub[store.Dispatch]

	idle     time.Duration // silence after which the connection is pinged
	connects atomic.Int64  // successful LISTEN sessions so far (tests wait on it)
	pings    atomic.Int64  // idle pings that succeeded
}

func newFeed(s *Store, idle time.Duration) *feed {
	return &feed{s: s, idle: idle, wake: newHub[string](wakeBuffer), paused: newHub[store.PauseChange](wakeBuffer),
		disp: newHub[store.Dispatch](dispatchBuffer)}
}

// hub fans one kind of notice out to its subscribers' buffered channels.
type hub[T any] struct {
	size    int
	mu      sync.Mutex
	subs    map[chan T]struct{}
	dropped atomic.Int64 // notices a full subscriber did not get
}

func newHub[T any](size int) *hub[T] { return &hub[T]{size: size, subs: map[chan T]struct{}{}} }

// subscribe returns a channel that gets first (when not nil) at once, then
// every notice, until ctx ends or done is closed; then it is closed.
func (h *hub[T]) subscribe(ctx context.Context, done <-chan struct{}, first *T) <-chan T {
	ch := make(chan T, h.size)
	if first != nil {
		ch <- *first
	}
	h.mu.Lock()
	h.subs[ch] = struct{}{}
	h.mu.Unlock()
	go func() {
		select {
		case <-ctx.Done():
		case <-done:
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		if _, ok := h.subs[ch]; ok {
			delete(h.subs, ch)
			close(ch)
		}
	}()
	return ch
}

func (h *hub[T]) len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// send gives v to every subscriber that has room.
func (h *hub[T]) send(vs ...T) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		for _, v := range vs {
			select {
			case ch <- v:
			default:
				h.dropped.Add(1)
			}
		}
	}
}

func (h *hub[T]) closeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		delete(h.subs, ch)
		close(ch)
	}
}

// SubscribeWakeups returns a channel that receives, until ctx ends or the
// store closes (then it is closed), the name of each destination whose
// deliveries became due now on any replica: ingest, retry, replay, release,
// resume, reaped leases. Future due times (backoff) are not announced; the
// scheduler's own timers and poll find them.
//
// It receives "" at once, and each time the notifier (re)connects: notices
// sent before the subscription or while the notifier was away are lost, so
// "" means "check every destination".
func (s *Store) SubscribeWakeups(ctx context.Context) <-chan string {
	first := ""
	return s.feed.wake.subscribe(ctx, s.done, &first)
}

// SubscribePaused returns a channel that receives every change of a paused
// flag made on any replica (SetPaused), until ctx ends or the store closes.
// It receives a zero PauseChange at once and after each reconnect: re-read
// Paused, changes may have been missed.
func (s *Store) SubscribePaused(ctx context.Context) <-chan store.PauseChange {
	return s.feed.paused.subscribe(ctx, s.done, &store.PauseChange{})
}

// SubscribeDispatches returns a channel that receives every dispatch record
// committed by any replica, this one included, until ctx ends or the store
// closes (then it is closed). Records arrive in commit order per replica.
// The feed is what the SSE stream and the UI show; a subscriber too slow to
// keep up with its buffer loses records (counted), never blocks the others.
func (s *Store) SubscribeDispatches(ctx context.Context) <-chan store.Dispatch {
	return s.feed.disp.subscribe(ctx, s.done, nil)
}

// run listens until ctx ends, reconnecting after every loss, then closes
// every subscriber.
func (f *feed) run(ctx context.Context) {
	defer f.closeAll()
	wait := minReconnect
	for ctx.Err() == nil {
		listened, err := f.listen(ctx)
		if ctx.Err() != nil {
			return
		}
		if listened {
			wait = minReconnect
		}
		f.s.log.Warn("store notifier disconnected; reconnecting", "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, maxReconnect)
	}
}

// listen runs one LISTEN session; listened reports that it got as far as
// listening (so the backoff restarts).
func (f *feed) listen(ctx context.Context) (listened bool, err error) {
	conn, err := pgx.ConnectConfig(ctx, f.s.connCfg)
	if err != nil {
		return false, err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, `LISTEN `+chanDue+`; LISTEN `+chanDispatch+`; LISTEN `+chanPaused); err != nil {
		return false, err
	}
	f.connects.Add(1)
	// Anything sent while we were away is lost.
	f.wake.send("")
	f.paused.send(store.PauseChange{})
	for {
		// A connection lost without a reset (network partition, host gone)
		// never errors on its own: after idlePing of silence, ping it.
		wctx, cancel := context.WithTimeout(ctx, f.idle)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		if err != nil && ctx.Err() == nil && pgconn.Timeout(err) {
			pctx, cancel := context.WithTimeout(ctx, pingTimeout)
			err = conn.Ping(pctx)
			cancel()
			if err == nil {
				f.pings.Add(1)
				continue
			}
		}
		if err != nil {
			return true, err
		}
		switch n.Channel {
		case chanDue:
			f.wake.send(n.Payload)
		case chanPaused:
			dest, paused := strings.CutPrefix(n.Payload, "+")
			if !paused {
				dest = strings.TrimPrefix(n.Payload, "-")
			}
			f.paused.send(store.PauseChange{Destination: dest, Paused: paused})
		case chanDispatch:
			f.dispatches(ctx, n.Payload)
		}
	}
}

// dispatches reads the announced records (through the pool) and hands them
// to every subscriber.
func (f *feed) dispatches(ctx context.Context, payload string) {
	if f.disp.len() == 0 {
		return
	}
	_, list, ok := strings.Cut(payload, "\n")
	if !ok || list == "" {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ds, err := f.s.dispatchesByID(rctx, strings.Split(list, ","))
	if err != nil {
		f.s.log.Warn("store notifier: read announced dispatches", "err", err)
		return
	}
	f.disp.send(ds...)
}

func (f *feed) closeAll() {
	f.wake.closeAll()
	f.paused.closeAll()
	f.disp.closeAll()
}
