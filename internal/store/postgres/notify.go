package postgres

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rcrouter/rcrouter/internal/store"
)

// Subscriber buffers. A full buffer drops: wake-ups are hints (the
// scheduler's poll finds due work anyway) and the live feed is best-effort
// (the dispatch log in the database is complete).
const (
	wakeBuffer     = 64
	dispatchBuffer = 256
)

// Reconnect backoff of the notifier's connection.
const (
	minReconnect = 100 * time.Millisecond
	maxReconnect = 5 * time.Second
)

// feed owns the notifier: one dedicated connection (not from the pool: a
// LISTEN lives as long as its session) that LISTENs on both channels and
// reconnects by itself, with backoff, whenever it is lost (server restart,
// pg_terminate_backend, network).
type feed struct {
	s *Store

	mu   sync.Mutex
	wake map[chan string]struct{}
	disp map[chan store.Dispatch]struct{}

	connects atomic.Int64 // successful LISTEN sessions so far (tests wait on it)
	dropped  atomic.Int64 // notices a full subscriber did not get
}

func newFeed(s *Store) *feed {
	return &feed{s: s, wake: map[chan string]struct{}{}, disp: map[chan store.Dispatch]struct{}{}}
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
	ch := make(chan string, wakeBuffer)
	ch <- ""
	f := s.feed
	f.mu.Lock()
	f.wake[ch] = struct{}{}
	f.mu.Unlock()
	go func() {
		select {
		case <-ctx.Done():
		case <-s.done:
		}
		f.mu.Lock()
		if _, ok := f.wake[ch]; ok {
			delete(f.wake, ch)
			close(ch)
		}
		f.mu.Unlock()
	}()
	return ch
}

// SubscribeDispatches returns a channel that receives every dispatch record
// committed by any replica, this one included, until ctx ends or the store
// closes (then it is closed). Records arrive in commit order per replica.
// The feed is what the SSE stream and the UI show; a subscriber too slow to
// keep up with its buffer loses records (counted), never blocks the others.
func (s *Store) SubscribeDispatches(ctx context.Context) <-chan store.Dispatch {
	ch := make(chan store.Dispatch, dispatchBuffer)
	f := s.feed
	f.mu.Lock()
	f.disp[ch] = struct{}{}
	f.mu.Unlock()
	go func() {
		select {
		case <-ctx.Done():
		case <-s.done:
		}
		f.mu.Lock()
		if _, ok := f.disp[ch]; ok {
			delete(f.disp, ch)
			close(ch)
		}
		f.mu.Unlock()
	}()
	return ch
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
	if _, err := conn.Exec(ctx, `LISTEN `+chanDue+`; LISTEN `+chanDispatch); err != nil {
		return false, err
	}
	f.connects.Add(1)
	f.wakeAll("") // anything sent while we were away is lost
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return true, err
		}
		switch n.Channel {
		case chanDue:
			f.wakeAll(n.Payload)
		case chanDispatch:
			f.dispatches(ctx, n.Payload)
		}
	}
}

func (f *feed) wakeAll(dest string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for ch := range f.wake {
		select {
		case ch <- dest:
		default:
			f.dropped.Add(1)
		}
	}
}

// dispatches reads the announced records (through the pool) and hands them
// to every subscriber.
func (f *feed) dispatches(ctx context.Context, payload string) {
	f.mu.Lock()
	n := len(f.disp)
	f.mu.Unlock()
	if n == 0 {
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
	f.mu.Lock()
	defer f.mu.Unlock()
	for ch := range f.disp {
		for _, d := range ds {
			select {
			case ch <- d:
			default:
				f.dropped.Add(1)
			}
		}
	}
}

func (f *feed) closeAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for ch := range f.wake {
		delete(f.wake, ch)
		close(ch)
	}
	for ch := range f.disp {
		delete(f.disp, ch)
		close(ch)
	}
}
