package delivery

import (
	"context"
	"time"

	"github.com/rcrouter/rcrouter/internal/store"
)

// What several replicas on one database share (DESIGN §8). The scheduler
// takes each from SchedulerOptions; without it (SQLite, one process) it
// keeps the in-memory version.

// SharedRate is a destination's rate limit held for every replica together
// (store/postgres TakeTokens): it grants up to want tokens at now, and with 0
// says when the next one is due.
type SharedRate interface {
	TakeTokens(ctx context.Context, destination string, rate float64, burst, want int, now time.Time) (int, time.Time, error)
}

// SharedBreaker is a destination's circuit breaker held for every replica
// together (store/postgres BreakerPermit and BreakerRecord): a breaker opened
// by one replica's failures holds the destination on all of them, and one
// replica at a time runs the half-open probe.
type SharedBreaker interface {
	BreakerPermit(ctx context.Context, destination string, now time.Time, probeFor time.Duration) (store.BreakerPermit, error)
	BreakerRecord(ctx context.Context, destination string, gen int64, h store.BreakerHealth,
		threshold int, openFor time.Duration, now time.Time) (string, error)
}

// Signals are the notices of other replicas the scheduler obeys: deliveries
// that became due (a wake-up; "" means any destination) and paused flags
// that changed (a zero PauseChange means re-read them all).
type Signals interface {
	SubscribeWakeups(ctx context.Context) <-chan string
	SubscribePaused(ctx context.Context) <-chan store.PauseChange
}

// okEvery bounds how often a replica tells the shared breaker about
// successes while it has seen no failure: one write per destination per
// second instead of one per delivery, at the price of resetting other
// replicas' failure count up to a second late.
const okEvery = time.Second

// sharedState is what a worker knows of its shared breaker and rate limit;
// the worker's mutex guards it.
type sharedState struct {
	rate     float64   // requests per second for all replicas; 0: unlimited (or in memory)
	rateWait time.Time // no tokens before this
	breaker  string    // last state the store reported: closed, open or half_open
	brWait   time.Time // the breaker holds every attempt until then
	failed   bool      // a failure was recorded since the last recorded success
	okAt     time.Time // when a success was last recorded
}

// held reports whether the shared breaker holds attempts at now.
func (s *sharedState) held(now time.Time) bool { return now.Before(s.brWait) }

// open reports whether the shared breaker is not closed, for State.
func (s *sharedState) open() bool { return s.breaker != "" && s.breaker != "closed" }

// sharedBreakerState maps the store's breaker state to the gauge's.
func sharedBreakerState(s string) breakerState {
	switch s {
	case "open":
		return breakerOpen
	case "half_open":
		return breakerHalfOpen
	default:
		return breakerClosed
	}
}

// sharedGates asks the shared rate limit, then the shared breaker, how many
// of limit deliveries w may claim at now. Tokens go first: tokens taken for
// a claim the breaker refuses are wasted, which errs on the safe side, while
// a probe permitted and then refused tokens would stall the breaker.
// ok=false: claim nothing now (the worker knows when to ask again).
func (s *Scheduler) sharedGates(ctx context.Context, w *worker, limit int, now time.Time) (p store.BreakerPermit, n int, ok bool) {
	w.mu.Lock()
	pol, rate := w.target.Policy, w.shared.rate
	w.mu.Unlock()
	n = limit
	p.N = -1
	if rate > 0 {
		got, next, err := s.rates.TakeTokens(ctx, w.name, rate, max(1, int(rate)), n, now)
		if err != nil {
			s.claimFailed(ctx, w, now, err)
			return p, 0, false
		}
		if got == 0 {
			if next.IsZero() || !next.After(now) {
				next = now.Add(time.Millisecond)
			}
			w.mu.Lock()
			w.shared.rateWait = next
			w.mu.Unlock()
			return p, 0, false
		}
		n = min(n, got)
	}
	if s.breakers == nil || pol.FailureThreshold <= 0 {
		return p, n, true
	}
	p, err := s.breakers.BreakerPermit(ctx, w.name, now, pol.lease())
	if err != nil {
		s.claimFailed(ctx, w, now, err)
		return p, 0, false
	}
	state := "closed"
	w.mu.Lock()
	switch p.N {
	case 0:
		// Open, or another replica's probe is out: ask again at the end of
		// the open period, and at least every poll, so a probe that
		// succeeded elsewhere frees this replica soon.
		state, w.shared.brWait = "open", now.Add(s.poll)
		if !p.Until.IsZero() && p.Until.Before(w.shared.brWait) {
			w.shared.brWait = p.Until
		}
	case 1:
		state, w.shared.brWait = "half_open", time.Time{}
		n = 1
	default:
		w.shared.brWait = time.Time{}
	}
	s.sharedMoved(w, state)
	w.mu.Unlock()
	return p, n, p.N != 0
}

// sharedMoved records the shared breaker's state and reports a change; w.mu
// is held.
func (s *Scheduler) sharedMoved(w *worker, state string) {
	before := w.shared.breaker
	w.shared.breaker = state
	if before == "" {
		before = "closed"
	}
	if state == before || w.stopped {
		return
	}
	s.metrics.setBreaker(w.name, sharedBreakerState(state))
	switch state {
	case "open":
		s.log.Warn("circuit breaker open (shared by every replica)", "destination", w.name)
	case "half_open":
		s.log.Info("circuit breaker half-open: this replica probes", "destination", w.name)
	default:
		s.log.Info("circuit breaker closed (shared by every replica)", "destination", w.name)
	}
}

// probeUnused tells the shared breaker that a permitted probe found nothing
// to claim, so that the next caller, on any replica, may probe at once.
func (s *Scheduler) probeUnused(ctx context.Context, w *worker, p store.BreakerPermit, now time.Time) {
	w.mu.Lock()
	pol := w.target.Policy
	w.mu.Unlock()
	if _, err := s.breakers.BreakerRecord(ctx, w.name, p.Gen, store.BreakerNeutral, pol.FailureThreshold, pol.OpenFor, now); err != nil {
		s.log.Warn("circuit breaker: free an unused probe", "destination", w.name, "err", err)
	}
}

// shareResult tells the shared breaker what one attempt showed: every
// failure, the probe's result, and successes after a failure or at most
// every okEvery. It runs on the attempt's goroutine after its slot is free.
func (s *Scheduler) shareResult(ctx context.Context, w *worker, a *attempt, f finished) {
	pol := a.target.Policy
	if s.breakers == nil || pol.FailureThreshold <= 0 {
		return
	}
	var h store.BreakerHealth
	switch f.health {
	case healthOK:
		h = store.BreakerOK
	case healthFailed:
		h = store.BreakerFailed
	default:
		h = store.BreakerNeutral
	}
	w.mu.Lock()
	tell := a.probe || h == store.BreakerFailed ||
		(h == store.BreakerOK && (w.shared.failed || f.at.Sub(w.shared.okAt) >= okEvery))
	// A success to tell is taken as told at once: another success that
	// finishes while this one is recorded is then not told again.
	wasFailed, okAt := w.shared.failed, w.shared.okAt
	if tell && h == store.BreakerOK {
		w.shared.failed, w.shared.okAt = false, f.at
	}
	w.mu.Unlock()
	if !tell {
		return
	}
	state, err := s.breakers.BreakerRecord(ctx, w.name, a.sharedGen, h, pol.FailureThreshold, pol.OpenFor, f.at)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("circuit breaker: record attempt", "destination", w.name, "err", err)
		}
		if h == store.BreakerOK {
			// Not told after all: the next success tells it. A failure
			// recorded meanwhile keeps failed set.
			w.mu.Lock()
			w.shared.failed = w.shared.failed || wasFailed
			w.shared.okAt = okAt
			w.mu.Unlock()
		}
		return
	}
	w.mu.Lock()
	if h == store.BreakerFailed {
		w.shared.failed = true
	}
	switch state {
	case "closed":
		w.shared.brWait = time.Time{}
	case "open":
		// Hold what this worker claimed; the next claim asks the store
		// when the open period ends.
		w.shared.brWait = f.at.Add(min(s.poll, max(pol.OpenFor, time.Millisecond)))
	}
	s.sharedMoved(w, state)
	w.mu.Unlock()
	w.poke()
}

// follow obeys other replicas' notices until Shutdown begins: a wake-up
// wakes its destination's worker (all of them for ""), a pause or resume
// changes the worker's gate (all of them are re-read after a gap). Run
// starts it when there are Signals.
func (s *Scheduler) follow(ctx context.Context) {
	defer s.loops.Done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wakes := s.signals.SubscribeWakeups(ctx)
	pauses := s.signals.SubscribePaused(ctx)
	for {
		select {
		case <-s.halting:
			return
		case name, ok := <-wakes:
			switch {
			case !ok:
				wakes = nil // the store closed; Shutdown follows
			case name == "":
				s.Wake()
			default:
				s.Wake(name)
			}
		case c, ok := <-pauses:
			switch {
			case !ok:
				pauses = nil
			case c.Destination == "":
				s.reloadPaused(ctx)
			default:
				s.notePaused(c.Destination, c.Paused)
			}
		}
	}
}

// notePaused applies a paused flag another replica (or this one) stored.
func (s *Scheduler) notePaused(name string, paused bool) {
	s.pauseMu.Lock()
	defer s.pauseMu.Unlock()
	s.mu.Lock()
	s.paused[name] = paused
	w := s.workers[name]
	s.mu.Unlock()
	if w == nil {
		return
	}
	w.mu.Lock()
	changed := w.gates.pause.paused != paused
	w.mu.Unlock()
	if !changed {
		return
	}
	w.setPaused(paused)
	s.metrics.setPaused(name, paused)
	w.poke()
	verb := "paused"
	if !paused {
		verb = "resumed"
	}
	s.log.Info("destination "+verb+" by another replica", "destination", name)
}

// reloadPaused re-reads every paused flag after notices may have been lost.
func (s *Scheduler) reloadPaused(ctx context.Context) {
	paused, err := s.st.Paused(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("re-read paused destinations", "err", err)
		}
		return
	}
	s.mu.RLock()
	names := make([]string, 0, len(s.workers))
	for name := range s.workers {
		names = append(names, name)
	}
	s.mu.RUnlock()
	for _, name := range names {
		s.notePaused(name, paused[name])
	}
}
