package delivery

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
//
// A delivery moves through three bounded stages: ready (claimed and leased,
// not started), in flight (Send running; at most Concurrency), committing
// (Send returned, its completion queued for the store). Under a backlog the
// worker claims ahead of its free slots (claimAhead), so a claim round trip
// through the store never leaves the slots idle, and a slot that finishes
// starts the next ready delivery itself.
type worker struct {
	name string
	kick chan struct{} // cap 1: something changed, re-plan
	stop chan struct{} // closed by halt

	mu         sync.Mutex
	target     Target        // adapter and policy for the next claims
	limiter    *rate.Limiter // nil: unlimited
	br         breaker
	started    bool // its loop was started
	stopped    bool // halted: claims nothing more
	exited     bool // its loop returned: finish settles inline
	paused     bool // operator pause
	holdUntil  time.Time
	inflight   int             // Sends running
	committing int             // Sends returned, completions not yet written
	ready      []readyDelivery // claimed, not started; oldest due first
	// dirty: a Wake (or a change) since the last claim; more: the last claim
	// filled its limit, so more may be due.
	dirty, more bool
	nextDue     time.Time // earliest retry this worker scheduled and has not claimed; zero: none known
	nextPoll    time.Time // fallback: ask the store at this time even if nothing is known
	lastFailed  bool      // the last settled attempt had a retryable failure
	done        []finished
}

// readyDelivery is a claimed delivery waiting for a slot.
type readyDelivery struct {
	d          store.Delivery
	leaseUntil time.Time
}

// claimAhead is how many deliveries a worker with a backlog may hold claimed
// beyond its Concurrency. With 4 slots and deliveries that take a fraction of
// a millisecond, claims of 4 would make the store round trip (a transaction
// shared with ingest) the limit; 64 ahead turn one round trip into a batch.
// It bounds the ready queue (STYLE rule 7: when it is full, the worker does
// not claim). It applies only while the last claim came back full and the
// breaker is closed and no rate limit is set: a slow, failing or rate-limited
// destination claims no more than it can start.
const claimAhead = 64

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

// workerPlan is what the loop does next: stop, hand back the ready
// deliveries it cannot start, claim up to limit, or park until wake (or a
// poke).
type workerPlan struct {
	stop    bool
	release []store.Delivery
	limit   int
	lease   time.Time
	wake    time.Time
}

// runWorker is the worker's loop. It asks the store only when there can be
// work: after a Wake, when a retry it scheduled falls due, when its last claim
// was full, or every poll interval as a fallback. Otherwise it parks on one
// timer, so an idle destination costs one claim query per poll interval.
func (s *Scheduler) runWorker(ctx context.Context, w *worker) {
	defer s.loops.Done()
	defer s.exitWorker(ctx, w)
	for {
		s.settle(w)
		now := s.clock.Now()
		p := s.plan(ctx, w, now)
		if len(p.release) > 0 {
			s.release(ctx, w.name, p.release)
		}
		if p.stop {
			return
		}
		if p.limit > 0 {
			s.claim(ctx, w, p.limit, now, p.lease)
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

// plan decides, at now, what the worker does. Gates in order: halted,
// paused, held by the destination (Retry-After on the whole destination),
// breaker, free slots, known work, rate limit. Ready deliveries start here
// as slots allow; ready deliveries that a gate blocks are handed back.
func (s *Scheduler) plan(ctx context.Context, w *worker, now time.Time) workerPlan {
	s.mu.Lock()
	defer s.mu.Unlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped || s.stopping {
		return workerPlan{stop: true, release: w.takeReady()}
	}
	idle := now.Add(s.poll)
	if w.paused {
		return workerPlan{wake: idle, release: w.takeReady()}
	}
	if now.Before(w.holdUntil) {
		return workerPlan{wake: w.holdUntil, release: w.takeReady()}
	}
	before := w.br.state
	n, until := w.br.permit(now)
	s.breakerMoved(w, before)
	if n == 0 {
		if until.IsZero() {
			// Half-open, the probe in flight: its result pokes us, and it
			// comes within a Send, which the ready leases allow for.
			return workerPlan{wake: idle}
		}
		return workerPlan{wake: until, release: w.takeReady()}
	}
	n = s.startReadyLocked(ctx, w, n)
	if n == 0 {
		return workerPlan{wake: idle} // the probe started; its result pokes us
	}
	pol := w.target.Policy
	held := w.inflight + w.committing + len(w.ready)
	capacity, least := pol.Concurrency, 1
	if w.more && n < 0 && w.limiter == nil {
		capacity, least = pol.Concurrency+claimAhead, claimAhead/2
	}
	room := capacity - held
	if free := pol.Concurrency - w.inflight - len(w.ready); room <= 0 || (room < least && free <= 0) {
		return workerPlan{wake: idle} // a finishing attempt pokes us
	}
	limit := room
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
	// The lease covers the wait of the last claimed delivery behind the
	// ready ones: one Send per slot per round, plus its own Send.
	waiting := len(w.ready) + limit - max(pol.Concurrency-w.inflight, 0)
	rounds := 0
	if waiting > 0 {
		rounds = (waiting + pol.Concurrency - 1) / pol.Concurrency
	}
	lease := now.Add(pol.lease() + time.Duration(rounds)*pol.sendBudget())
	return workerPlan{limit: limit, lease: lease}
}

// takeReady empties the ready queue, for the caller to release; w.mu is held.
func (w *worker) takeReady() []store.Delivery {
	if len(w.ready) == 0 {
		return nil
	}
	ds := make([]store.Delivery, len(w.ready))
	for i, r := range w.ready {
		ds[i] = r.d
	}
	clear(w.ready)
	w.ready = w.ready[:0]
	return ds
}

// startReadyLocked starts ready deliveries while slots are free and the
// breaker permits (n: -1 no limit, else how many). It returns what is left of
// n. s.mu and w.mu are held.
func (s *Scheduler) startReadyLocked(ctx context.Context, w *worker, n int) int {
	for len(w.ready) > 0 && n != 0 && w.inflight < w.target.Policy.Concurrency {
		r := w.ready[0]
		w.ready[0] = readyDelivery{}
		w.ready = w.ready[1:]
		a := s.beginLocked(w, r)
		go s.attempt(ctx, w, a)
		if n > 0 {
			n--
		}
	}
	if len(w.ready) == 0 {
		w.ready = nil // let a drained queue's array go
	}
	return n
}

// beginLocked registers one attempt of r as in flight; s.mu and w.mu are held.
func (s *Scheduler) beginLocked(w *worker, r readyDelivery) *attempt {
	a := &attempt{d: r.d, target: w.target, gen: w.br.begin(), leaseUntil: r.leaseUntil}
	w.inflight++
	s.inflight[r.d.ID] = a
	s.work.Add(1)
	return a
}

// next is called by an attempt whose Send returned: it starts the next ready
// delivery on the same goroutine when every gate allows it at once, so a
// busy destination does not wait for its loop between two Sends.
func (s *Scheduler) next(w *worker) *attempt {
	now := s.clock.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.ready) == 0 || s.stopping || w.stopped || w.paused || now.Before(w.holdUntil) ||
		w.br.state != breakerClosed || w.limiter != nil || w.inflight >= w.target.Policy.Concurrency {
		return nil
	}
	r := w.ready[0]
	w.ready[0] = readyDelivery{}
	w.ready = w.ready[1:]
	return s.beginLocked(w, r)
}

// claim leases up to limit due deliveries until leaseUntil, queues them as
// ready and starts what the slots allow; the loop starts the rest as slots
// free up.
func (s *Scheduler) claim(ctx context.Context, w *worker, limit int, now, leaseUntil time.Time) {
	w.mu.Lock()
	w.dirty, w.more = false, false
	w.nextPoll = now.Add(s.poll)
	if !w.nextDue.IsZero() && !now.Before(w.nextDue) {
		w.nextDue = time.Time{} // this claim collects it
	}
	w.mu.Unlock()

	ds, err := s.st.Claim(ctx, s.owner, w.name, now, leaseUntil, limit)
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
		w.ready = append(w.ready, readyDelivery{d: d, leaseUntil: leaseUntil})
	}
	// Attempts that ended during the claim may have opened the breaker:
	// ask it again. Ready deliveries it holds back are handed back by the
	// next plan.
	before := w.br.state
	n, _ := w.br.permit(s.clock.Now())
	s.breakerMoved(w, before)
	s.startReadyLocked(ctx, w, n)
	w.mu.Unlock()
	s.mu.Unlock()
}

func (s *Scheduler) release(ctx context.Context, destination string, ds []store.Delivery) {
	leases := make([]store.Lease, len(ds))
	for i, d := range ds {
		leases[i] = d.Lease
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	if err := s.st.Release(rctx, leases, s.clock.Now()); err != nil {
		s.log.Error("release claimed deliveries", "destination", destination, "count", len(leases), "err", err)
	}
}

// sent tells the worker that an attempt's Send returned: its slot is free,
// its completion is about to be committed, and the breaker and the
// destination's hold learn its result now, before the next Send can start.
func (s *Scheduler) sent(w *worker, f finished) {
	w.mu.Lock()
	w.inflight--
	w.committing++
	before := w.br.state
	w.br.record(f.gen, f.health, f.at)
	s.breakerMoved(w, before)
	switch f.health {
	case healthFailed:
		w.lastFailed = true
	case healthOK:
		w.lastFailed = false
	}
	if f.holdUntil.After(w.holdUntil) {
		w.holdUntil = f.holdUntil
		s.log.Warn("destination asked to hold all deliveries", "destination", w.name, "until", f.holdUntil)
	}
	w.mu.Unlock()
}

// finish hands a committed (or failed to commit) attempt to its worker: to
// the loop, which settles it before planning again, or inline once the loop
// has exited.
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

func (s *Scheduler) exitWorker(ctx context.Context, w *worker) {
	w.mu.Lock()
	w.exited = true
	ready := w.takeReady()
	w.mu.Unlock()
	if len(ready) > 0 {
		s.release(ctx, w.name, ready)
	}
	s.settle(w)
}

// settleLocked applies what only the commit tells: the retry is scheduled.
func (s *Scheduler) settleLocked(w *worker, f finished) {
	w.committing--
	if !f.retryAt.IsZero() && (w.nextDue.IsZero() || f.retryAt.Before(w.nextDue)) {
		w.nextDue = f.retryAt
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
