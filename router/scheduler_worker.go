package router

import (
	"context"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/rcrouter/rcrouter/internal/store"
)

// worker is one destination's queue runner. Its loop (runWorker) is the only
// goroutine that claims; attempt goroutines report back through done and a
// poke. Everything below mu is guarded by it.
type worker struct {
	name string
	kick chan struct{} // cap 1: something changed, re-plan
	stop chan struct{} // closed by halt

	mu        sync.Mutex
	target    Target        // adapter and policy for the next claims
	limiter   *rate.Limiter // nil: unlimited
	br        breaker
	started   bool // its loop was started
	stopped   bool // halted: claims nothing more
	exited    bool // its loop returned: finish settles inline
	paused    bool // operator pause
	holdUntil time.Time
	inflight  int
	// dirty: a Wake (or a change) since the last claim; more: the last claim
	// filled its limit, so more may be due.
	dirty, more bool
	nextDue     time.Time // earliest retry this worker scheduled and has not claimed; zero: none known
	nextPoll    time.Time // fallback: ask the store at this time even if nothing is known
	lastFailed  bool      // the last settled attempt had a retryable failure
	done        []finished
}

func newWorker(t Target, now time.Time) *worker {
	w := &worker{
		name:  t.Name,
		kick:  make(chan struct{}, 1),
		stop:  make(chan struct{}),
		dirty: true, // the queue may hold anything at start
	}
	w.reconfigure(t, now)
	return w
}

// reconfigure swaps adapter and policy; breaker and limiter keep their state.
func (w *worker) reconfigure(t Target, now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.target = t
	w.br.configure(t.Policy.FailureThreshold, t.Policy.OpenFor)
	w.limiter = adjustLimiter(w.limiter, t.Policy.RateLimit, now)
	w.dirty = true
}

// adjustLimiter returns a token bucket for perSecond (nil for unlimited),
// reusing lim so a reload does not hand out a fresh burst. The burst is one
// second's worth, at least 1: a destination limited to 1/s sends at most one
// request at a time, and short bursts of faster ones stay within their limit
// over any second.
func adjustLimiter(lim *rate.Limiter, perSecond float64, now time.Time) *rate.Limiter {
	if perSecond <= 0 {
		return nil
	}
	burst := max(1, int(perSecond))
	if lim == nil {
		// rate.Limiter's clock is whatever time we pass: always the
		// scheduler's clock, so fake-clock tests control it too.
		lim = rate.NewLimiter(rate.Limit(perSecond), burst)
		lim.SetBurstAt(now, burst) // starts its clock at now, full
		return lim
	}
	lim.SetLimitAt(now, rate.Limit(perSecond))
	lim.SetBurstAt(now, burst)
	return lim
}

// tokenWait is how long until the bucket holds one whole token, rounded up
// to a millisecond so float rounding cannot leave it a hair short.
func tokenWait(limit rate.Limit, tokens float64) time.Duration {
	secs := (1 - tokens) / float64(limit)
	ms := math.Ceil(secs * 1000)
	return max(time.Duration(ms)*time.Millisecond, time.Millisecond)
}

func (w *worker) poke() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

func (w *worker) wake() {
	w.mu.Lock()
	w.dirty = true
	w.mu.Unlock()
	w.poke()
}

func (w *worker) halt() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.stopped {
		w.stopped = true
		close(w.stop)
	}
}

func (w *worker) setPaused(p bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.paused = p
	if !p {
		w.dirty = true
	}
}

func (w *worker) breakerState() breakerState {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.br.state
}

func (w *worker) state(now time.Time) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.paused:
		return StatePaused
	case w.br.state != breakerClosed:
		return StateCircuitOpen
	case w.lastFailed || now.Before(w.holdUntil):
		return StateRetrying
	default:
		return StateHealthy
	}
}

// workerPlan is what the loop does next: stop, claim up to limit, or park
// until wake (or a poke).
type workerPlan struct {
	stop  bool
	limit int
	wake  time.Time
}

// runWorker is the worker's loop. It asks the store only when there can be
// work: after a Wake, when a retry it scheduled falls due, when its last claim
// was full, or every poll interval as a fallback. Otherwise it parks on one
// timer, so an idle destination costs one claim query per poll interval.
func (s *Scheduler) runWorker(ctx context.Context, w *worker) {
	defer s.loops.Done()
	defer s.exitWorker(w)
	for {
		s.settle(w)
		now := s.clock.Now()
		p := s.plan(w, now)
		if p.stop {
			return
		}
		if p.limit > 0 {
			s.claim(ctx, w, p.limit, now)
			continue
		}
		t := s.clock.NewTimer(p.wake.Sub(now))
		select {
		case <-w.kick:
		case <-t.C():
		case <-w.stop:
		}
		t.Stop()
	}
}

// plan decides, at now, whether the worker may claim and how many.
// Gates in order: halted, paused, held by the destination (Retry-After on
// the whole destination), breaker, free slots, known work, rate limit.
func (s *Scheduler) plan(w *worker, now time.Time) workerPlan {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return workerPlan{stop: true}
	}
	idle := now.Add(s.poll)
	if w.paused {
		return workerPlan{wake: idle}
	}
	if now.Before(w.holdUntil) {
		return workerPlan{wake: w.holdUntil}
	}
	before := w.br.state
	n, until := w.br.permit(now)
	s.breakerMoved(w, before)
	if n == 0 {
		if until.IsZero() {
			until = idle // the probe's result pokes us
		}
		return workerPlan{wake: until}
	}
	free := w.target.Policy.Concurrency - w.inflight
	if free <= 0 {
		return workerPlan{wake: idle} // a finishing attempt pokes us
	}
	limit := free
	if n > 0 {
		limit = min(limit, n)
	}
	due := w.dirty || w.more || !now.Before(w.nextPoll) ||
		(!w.nextDue.IsZero() && !now.Before(w.nextDue))
	if !due {
		wake := w.nextPoll
		if !w.nextDue.IsZero() && w.nextDue.Before(wake) {
			wake = w.nextDue
		}
		return workerPlan{wake: wake}
	}
	if w.limiter != nil {
		tokens := w.limiter.TokensAt(now)
		if tokens < 1 {
			return workerPlan{wake: now.Add(tokenWait(w.limiter.Limit(), tokens))}
		}
		limit = min(limit, int(tokens))
	}
	return workerPlan{limit: limit}
}

// claim leases up to limit due deliveries and starts an attempt for each.
// limit never exceeds the free slots (nor the tokens, nor the one probe), so
// a claimed delivery starts at once and the lease only has to outlast Send.
func (s *Scheduler) claim(ctx context.Context, w *worker, limit int, now time.Time) {
	w.mu.Lock()
	w.dirty, w.more = false, false
	w.nextPoll = now.Add(s.poll)
	if !w.nextDue.IsZero() && !now.Before(w.nextDue) {
		w.nextDue = time.Time{} // this claim collects it
	}
	leaseUntil := now.Add(w.target.Policy.lease())
	w.mu.Unlock()

	ds, err := s.st.Claim(ctx, w.name, now, leaseUntil, limit)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Error("claim deliveries", "destination", w.name, "err", err)
		}
		return // the next poll tries again
	}
	if len(ds) == 0 {
		return
	}

	s.mu.Lock()
	w.mu.Lock()
	if s.stopping || w.stopped {
		w.mu.Unlock()
		s.mu.Unlock()
		// Halted while claiming: hand them straight back.
		s.release(ctx, w.name, ds)
		return
	}
	w.more = len(ds) >= limit
	if w.limiter != nil {
		w.limiter.ReserveN(now, len(ds)) // plan checked the tokens
	}
	for _, d := range ds {
		a := &attempt{d: d, target: w.target, gen: w.br.begin(), leaseUntil: leaseUntil}
		w.inflight++
		s.inflight[d.ID] = a
		s.work.Add(1)
		go s.attempt(ctx, w, a)
	}
	w.mu.Unlock()
	s.mu.Unlock()
}

func (s *Scheduler) release(ctx context.Context, destination string, ds []store.Delivery) {
	ids := make([]string, len(ds))
	for i, d := range ds {
		ids[i] = d.ID
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	if err := s.st.Release(rctx, ids, s.clock.Now()); err != nil {
		s.log.Error("release claimed deliveries", "destination", destination, "count", len(ids), "err", err)
	}
}

// finish hands a finished attempt to its worker: to the loop, which settles
// it before planning again, or inline once the loop has exited.
func (s *Scheduler) finish(w *worker, f finished) {
	w.mu.Lock()
	if !w.exited {
		w.done = append(w.done, f)
		w.mu.Unlock()
		w.poke()
		return
	}
	s.settleLocked(w, f)
	w.mu.Unlock()
	s.publish(f.records)
}

// settle applies the attempts that finished since the loop last looked,
// then publishes their committed dispatch records.
func (s *Scheduler) settle(w *worker) {
	w.mu.Lock()
	done := w.done
	w.done = nil
	for _, f := range done {
		s.settleLocked(w, f)
	}
	w.mu.Unlock()
	for _, f := range done {
		s.publish(f.records)
	}
}

func (s *Scheduler) exitWorker(w *worker) {
	w.mu.Lock()
	w.exited = true
	w.mu.Unlock()
	s.settle(w)
}

func (s *Scheduler) settleLocked(w *worker, f finished) {
	w.inflight--
	before := w.br.state
	w.br.record(f.gen, f.health, f.at)
	s.breakerMoved(w, before)
	switch f.health {
	case healthFailed:
		w.lastFailed = true
	case healthOK:
		w.lastFailed = false
	}
	if !f.retryAt.IsZero() && (w.nextDue.IsZero() || f.retryAt.Before(w.nextDue)) {
		w.nextDue = f.retryAt
	}
	if f.holdUntil.After(w.holdUntil) {
		w.holdUntil = f.holdUntil
		s.log.Warn("destination asked to hold all deliveries", "destination", w.name, "until", f.holdUntil)
	}
}

// breakerMoved reports a breaker state change (metrics, log); w.mu is held.
func (s *Scheduler) breakerMoved(w *worker, before breakerState) {
	now := w.br.state
	if now == before || w.stopped {
		return
	}
	s.metrics.setBreaker(w.name, now)
	switch now {
	case breakerOpen:
		s.log.Warn("circuit breaker opened", "destination", w.name, "until", w.br.openUntil)
	case breakerHalfOpen:
		s.log.Info("circuit breaker half-open: probing", "destination", w.name)
	default:
		s.log.Info("circuit breaker closed", "destination", w.name)
	}
}

func (s *Scheduler) publish(records []store.Dispatch) {
	for _, r := range records {
		s.onDispatch(r)
	}
}
