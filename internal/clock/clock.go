// Package clock lets code that waits be tested without sleeping: production
// code takes a Clock, gets Real(), and tests pass a Fake whose time moves only
// when the test calls Advance.
package clock

import (
	"context"
	"slices"
	"sync"
	"time"
)

// Clock tells the time and makes timers.
type Clock interface {
	Now() time.Time
	// NewTimer returns a timer that sends the time on C() once d has passed.
	NewTimer(d time.Duration) Timer
	// After is NewTimer(d).C() for waits that are never stopped early.
	After(d time.Duration) <-chan time.Time
}

// Timer is the part of *time.Timer that callers use.
type Timer interface {
	C() <-chan time.Time
	// Stop prevents the timer from firing; it reports whether it was pending.
	Stop() bool
	// Reset makes a stopped or fired timer fire again after d; it reports
	// whether the timer was pending.
	Reset(d time.Duration) bool
}

// Real returns the wall clock.
func Real() Clock { return realClock{} }

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) NewTimer(d time.Duration) Timer         { return realTimer{time.NewTimer(d)} }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time        { return r.t.C }
func (r realTimer) Stop() bool                 { return r.t.Stop() }
func (r realTimer) Reset(d time.Duration) bool { return r.t.Reset(d) }

// Fake is a Clock for tests. Its time stands still until Advance; timers fire
// only inside Advance (or at once when made with d <= 0), in deadline order.
// A fired timer sends its deadline on a one-slot channel and never blocks.
//
// Tests that hand a Fake to a goroutine must not Advance while that goroutine
// is about to make a timer: BlockUntil (n timers pending) and
// BlockUntilCreated (n pending timers made after a Created mark) say when the
// goroutine has parked on its timer.
type Fake struct {
	mu      sync.Mutex
	now     time.Time
	pending []*fakeTimer
	created uint64
	// changed is closed and replaced whenever the set of timers changes, so
	// waiters re-check without polling.
	changed chan struct{}
}

// NewFake returns a Fake clock standing at t0.
func NewFake(t0 time.Time) *Fake {
	return &Fake{now: t0, changed: make(chan struct{})}
}

// Now returns the fake time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// NewTimer makes a timer due at Now()+d.
func (f *Fake) NewTimer(d time.Duration) Timer {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.created++
	t := &fakeTimer{f: f, c: make(chan time.Time, 1), seq: f.created}
	f.scheduleLocked(t, d)
	return t
}

// After returns the channel of a new timer due at Now()+d.
func (f *Fake) After(d time.Duration) <-chan time.Time { return f.NewTimer(d).C() }

// Advance moves the time forward by d and fires, in deadline order (then in
// creation order), every timer due by the new time. While a timer fires, Now
// reads its deadline.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	target := f.now.Add(d)
	for {
		i := f.earliestLocked()
		if i < 0 || f.pending[i].at.After(target) {
			break
		}
		t := f.pending[i]
		f.removeLocked(t)
		if t.at.After(f.now) {
			f.now = t.at
		}
		t.fire()
	}
	if target.After(f.now) {
		f.now = target
	}
	f.notifyLocked()
}

// Timers returns how many timers are pending.
func (f *Fake) Timers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.pending)
}

// Created returns how many timers were made (or reset) so far: a mark for
// BlockUntilCreated.
func (f *Fake) Created() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.created
}

// BlockUntil waits until at least n timers are pending, or ctx is done.
func (f *Fake) BlockUntil(ctx context.Context, n int) error {
	return f.wait(ctx, func() bool { return len(f.pending) >= n })
}

// BlockUntilCreated waits until at least n timers made after the mark (a
// Created value) are pending, or ctx is done. It tells a test that a goroutine
// woken by the test's last action has parked again, which BlockUntil cannot
// when the goroutine's old timer is still pending.
func (f *Fake) BlockUntilCreated(ctx context.Context, mark uint64, n int) error {
	return f.wait(ctx, func() bool {
		c := 0
		for _, t := range f.pending {
			if t.seq > mark {
				c++
			}
		}
		return c >= n
	})
}

func (f *Fake) wait(ctx context.Context, ok func() bool) error {
	for {
		f.mu.Lock()
		if ok() {
			f.mu.Unlock()
			return nil
		}
		ch := f.changed
		f.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (f *Fake) scheduleLocked(t *fakeTimer, d time.Duration) {
	t.at = f.now.Add(d)
	if d <= 0 {
		t.fire()
		return
	}
	f.pending = append(f.pending, t)
	f.notifyLocked()
}

func (f *Fake) earliestLocked() int {
	best := -1
	for i, t := range f.pending {
		if best < 0 || t.at.Before(f.pending[best].at) ||
			(t.at.Equal(f.pending[best].at) && t.seq < f.pending[best].seq) {
			best = i
		}
	}
	return best
}

func (f *Fake) removeLocked(t *fakeTimer) bool {
	i := slices.Index(f.pending, t)
	if i < 0 {
		return false
	}
	f.pending = slices.Delete(f.pending, i, i+1)
	f.notifyLocked()
	return true
}

func (f *Fake) notifyLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

type fakeTimer struct {
	f   *Fake
	c   chan time.Time
	at  time.Time
	seq uint64
}

// fire sends the deadline without blocking: like a runtime timer, a value
// nobody read yet is not doubled.
func (t *fakeTimer) fire() {
	select {
	case t.c <- t.at:
	default:
	}
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }

func (t *fakeTimer) Stop() bool {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	return t.f.removeLocked(t)
}

func (t *fakeTimer) Reset(d time.Duration) bool {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	was := t.f.removeLocked(t)
	// Like time.Timer since Go 1.23: a value left from before Reset is dropped.
	select {
	case <-t.c:
	default:
	}
	// A reset timer counts as a new one for BlockUntilCreated.
	t.f.created++
	t.seq = t.f.created
	t.f.scheduleLocked(t, d)
	return was
}
