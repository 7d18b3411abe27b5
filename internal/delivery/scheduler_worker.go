package delivery

import (
	"context"
	"sync"
	"time"

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
	target     Target          // adapter and policy for the next claims
	gates      gates           // pause, hold, breaker, rate limit
	started    bool            // its loop was started
	stopped    bool            // halted: claims nothing more
	exited     bool            // its loop returned: finish settles inline
	inflight   int             // Sends running
	committing int             // Sends returned, completions not yet written
	ready      []readyDelivery // claimed, not started; oldest due first
	// dirty: a Wake (or a change) since the last claim; more: the last claim
	// filled its limit, so more may be due.
	dirty, more bool
	nextDue     time.Time // earliest retry this worker scheduled and has not claimed; zero: none known
	nextPoll    time.Time // fallback: ask the store at this time even if nothing is known
	lastFailed  bool      // the last settled attempt had a retryable failure
	claimErrs   int       // claims failed in a row (the store is unreachable): back off
	shared      sharedState
	done        []finished
}

// readyDelivery is a claimed delivery waiting for a slot.
type readyDelivery struct {
	d          store.Delivery
	leaseUntil time.Time
	sharedGen  int64 // the shared breaker's generation at claim time
	probe      bool  // the shared breaker's half-open probe
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

func newWorker(t Target, now time.Time, shared shareMode) *worker {
	w := &worker{
		name:  t.Name,
		kick:  make(chan struct{}, 1),
		stop:  make(chan struct{}),
		dirty: true, // the queue may hold anything at start
	}
	w.reconfigure(t, now, shared)
	return w
}

// shareMode says which gates the store holds for every replica.
type shareMode struct{ rate, breaker bool }

// reconfigure swaps adapter and policy; breaker and rate limit keep their
// state. A gate the store shares stays open in memory.
func (w *worker) reconfigure(t Target, now time.Time, shared shareMode) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.target = t
	threshold, rate := t.Policy.FailureThreshold, t.Policy.RateLimit
	w.shared.rate = 0
	if shared.breaker {
		threshold = 0
	}
	if shared.rate {
		w.shared.rate, rate = rate, 0
	}
	w.gates.br.configure(threshold, t.Policy.OpenFor)
	w.gates.rate.configure(rate, now)
	w.dirty = true
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
	w.gates.pause.paused = p
	if !p {
		w.dirty = true
	}
}

func (w *worker) breakerState() breakerState {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.shared.open() {
		return sharedBreakerState(w.shared.breaker)
	}
	return w.gates.br.state
}

func (w *worker) state(now time.Time) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.gates.pause.paused:
		return StatePaused
	case w.gates.br.state != breakerClosed || w.shared.open():
		return StateCircuitOpen
	case w.lastFailed || w.gates.hold.held(now):
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

// plan decides, at now, what the worker does: stop when halted; else ask
// the start gates (pause, hold, breaker) how many attempts may start, start
// ready deliveries as slots allow, and claim more when there is room, known
// work and rate-limit tokens. Ready deliveries a start gate holds back for
// longer than their leases are handed back.
//
// Only w.mu is held: Shutdown halts every worker before it waits for the
// attempts, so a worker that is not stopped may still begin one.
func (s *Scheduler) plan(ctx context.Context, w *worker, now time.Time) workerPlan {
	w.mu.Lock()
	defer w.mu.Unlock()
	stale := w.takeStaleLocked(now)
	p := s.planLocked(ctx, w, now)
	p.release = append(stale, p.release...)
	if at := w.staleAtLocked(); p.limit == 0 && !at.IsZero() && (p.wake.IsZero() || at.Before(p.wake)) {
		p.wake = at
	}
	return p
}

// planLocked is plan's decision; w.mu is held and no ready delivery is stale.
func (s *Scheduler) planLocked(ctx context.Context, w *worker, now time.Time) workerPlan {
	if w.stopped {
		return workerPlan{stop: true, release: w.takeReady()}
	}
	idle := now.Add(s.poll)
	n := s.admitLocked(w, now)
	if n.n == 0 {
		p := workerPlan{wake: n.wake}
		if p.wake.IsZero() {
			p.wake = idle
		}
		if n.release {
			p.release = w.takeReady()
		}
		return p
	}
	left := s.startReadyLocked(ctx, w, n.n)
	if left == 0 {
		return workerPlan{wake: idle} // the probe started; its result pokes us
	}
	pol := w.target.Policy
	slots := s.slots(w)
	held := w.inflight + w.committing + len(w.ready)
	capacity, least := slots, 1
	if w.more && left < 0 && w.gates.rate.unlimited() && w.shared.rate <= 0 {
		capacity, least = slots+claimAhead, claimAhead/2
	}
	room := capacity - held
	if free := slots - w.inflight - len(w.ready); room <= 0 || (room < least && free <= 0) {
		return workerPlan{wake: idle} // a finishing attempt pokes us
	}
	limit := room
	if left > 0 {
		limit = min(limit, left)
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
	if now.Before(w.shared.rateWait) {
		return workerPlan{wake: w.shared.rateWait}
	}
	tokens := w.gates.rate.admit(now)
	if tokens.n == 0 {
		return workerPlan{wake: tokens.wake}
	}
	if tokens.n > 0 {
		limit = min(limit, tokens.n)
	}
	// Deliveries that will wait behind the slots get one Send budget more
	// than those that start at once, however many wait: a replica that dies
	// leaves its claimed-ahead work to the others no later than that (a
	// lease covering every round behind the slots kept it for many Send
	// budgets). Sends that succeed take a fraction of a budget, so under a
	// backlog the ready queue is drained long before; one that is still
	// waiting when its lease no longer leaves a Timeout for its Send is
	// handed back (takeStaleLocked) and claimed again, here or elsewhere.
	lease := now.Add(pol.lease())
	if len(w.ready)+limit > max(slots-w.inflight, 0) {
		lease = lease.Add(pol.sendBudget())
	}
	return workerPlan{limit: limit, lease: lease}
}

// slots is how many attempts w may have in flight now: its Concurrency,
// divided by 1 + accepting/BusyWebhooks while the accept path is busy, and
// at least one. Under CPU pressure a webhook then waits behind fewer Sends
// and fewer completions; the ready queue and its leases are unchanged.
func (s *Scheduler) slots(w *worker) int {
	c := w.target.Policy.Concurrency
	if s.accepting == nil {
		return c
	}
	if q := s.accepting(); q >= BusyWebhooks {
		c = max(1, c/(1+q/BusyWebhooks))
	}
	return c
}

// admitLocked asks the start gates and reports a breaker that moved; w.mu
// is held.
func (s *Scheduler) admitLocked(w *worker, now time.Time) admission {
	if w.shared.held(now) && !w.gates.pause.paused {
		return admission{wake: w.shared.brWait, release: true}
	}
	before := w.gates.br.state
	a := w.gates.start(now)
	s.breakerMoved(w, before)
	return a
}

// staleAt is when a ready delivery's lease stops leaving a Timeout for its
// Send (the Send's deadline is the lease minus leaseMargin).
func (w *worker) staleAt(r readyDelivery) time.Time {
	return r.leaseUntil.Add(-leaseMargin - w.target.Policy.Timeout)
}

// takeStaleLocked removes the ready deliveries that waited so long for a
// slot that their lease no longer covers a Send, for the caller to release;
// w.mu is held.
func (w *worker) takeStaleLocked(now time.Time) []store.Delivery {
	var stale []store.Delivery
	kept := w.ready[:0]
	for _, r := range w.ready {
		if now.Before(w.staleAt(r)) {
			kept = append(kept, r)
		} else {
			stale = append(stale, r.d)
		}
	}
	clear(w.ready[len(kept):])
	w.ready = kept
	return stale
}

// staleAtLocked is when the first ready delivery turns stale; zero when
// none is ready. w.mu is held.
func (w *worker) staleAtLocked() time.Time {
	var at time.Time
	for _, r := range w.ready {
		if t := w.staleAt(r); at.IsZero() || t.Before(at) {
			at = t
		}
	}
	return at
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
// n. w.mu is held.
func (s *Scheduler) startReadyLocked(ctx context.Context, w *worker, n int) int {
	slots := s.slots(w)
	for len(w.ready) > 0 && n != 0 && w.inflight < slots {
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

// beginLocked registers one attempt of r as in flight; w.mu is held, and the
// worker is not stopped, so Shutdown has not begun to wait for s.work.
func (s *Scheduler) beginLocked(w *worker, r readyDelivery) *attempt {
	a := &attempt{d: r.d, target: w.target, gen: w.gates.br.begin(), leaseUntil: r.leaseUntil,
		sharedGen: r.sharedGen, probe: r.probe}
	w.inflight++
	s.work.Add(1)
	s.inflightMu.Lock()
	s.inflight[r.d.ID] = a
	s.inflightMu.Unlock()
	return a
}

// next is called by an attempt whose Send returned: it starts the next ready
// delivery on the same goroutine when every start gate is wide open (not a
// half-open probe) and a slot is free, so a busy destination does not wait
// for its loop between two Sends. Ready deliveries hold their rate-limit
// tokens already.
func (s *Scheduler) next(w *worker) *attempt {
	now := s.clock.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.ready) == 0 || w.stopped || !w.gates.clear(now) || w.shared.held(now) ||
		w.inflight >= s.slots(w) {
		return nil
	}
	if !now.Before(w.staleAt(w.ready[0])) {
		w.poke() // the loop hands it back
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
	permit, limit, ok := s.sharedGates(ctx, w, limit, now)
	if !ok {
		return // the gates set when to ask again; the work stays known
	}
	w.mu.Lock()
	w.dirty, w.more = false, false
	w.nextPoll = now.Add(s.poll)
	if !w.nextDue.IsZero() && !now.Before(w.nextDue) {
		w.nextDue = time.Time{} // this claim collects it
	}
	w.mu.Unlock()

	ds, err := s.st.Claim(ctx, s.owner, w.name, now, leaseUntil, limit)
	if err != nil {
		s.claimFailed(ctx, w, now, err)
		return // the next poll tries again
	}
	s.claimed(w)
	if len(ds) == 0 {
		if permit.N == 1 {
			s.probeUnused(ctx, w, permit, now)
		}
		return
	}

	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		// Halted while claiming: hand them straight back.
		s.release(ctx, w.name, ds)
		return
	}
	w.more = len(ds) >= limit
	w.gates.rate.take(now, len(ds)) // plan checked the tokens
	for i, d := range ds {
		w.ready = append(w.ready, readyDelivery{d: d, leaseUntil: leaseUntil, sharedGen: permit.Gen, probe: permit.N == 1 && i == 0})
	}
	// Attempts that ended during the claim may have opened the breaker, an
	// operator may have paused: ask the start gates again. Ready deliveries
	// they hold back are handed back by the next plan.
	if a := s.admitLocked(w, s.clock.Now()); a.n != 0 {
		s.startReadyLocked(ctx, w, a.n)
	}
	w.mu.Unlock()
}

// maxClaimBackoff bounds the wait between claims while the store fails.
const maxClaimBackoff = 30 * time.Second

// claimFailed backs the worker off while the store cannot be reached (the
// database is down): the poll interval, doubled at every failure in a row
// up to maxClaimBackoff. Only the first failure of a run is an error in the
// log. A wake-up (the notifier reconnecting, say) still claims at once.
func (s *Scheduler) claimFailed(ctx context.Context, w *worker, now time.Time, err error) {
	w.mu.Lock()
	w.claimErrs++
	n := w.claimErrs
	wait := min(s.poll<<min(n-1, 6), max(maxClaimBackoff, s.poll))
	w.nextPoll = now.Add(wait)
	w.dirty, w.more = false, false
	stopped := w.stopped
	w.mu.Unlock()
	switch {
	case stopped || ctx.Err() != nil:
	case n == 1:
		s.log.Error("claim deliveries; backing off while the store fails", "destination", w.name, "err", err)
	default:
		s.log.Debug("claim deliveries", "destination", w.name, "failures", n, "next_in", wait, "err", err)
	}
}

// claimed ends a run of failed claims.
func (s *Scheduler) claimed(w *worker) {
	w.mu.Lock()
	n := w.claimErrs
	w.claimErrs = 0
	w.mu.Unlock()
	if n > 0 {
		s.log.Info("claims work again", "destination", w.name, "failed_before", n)
	}
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
	before := w.gates.br.state
	w.gates.br.record(f.gen, f.health, f.at)
	s.breakerMoved(w, before)
	switch f.health {
	case healthFailed:
		w.lastFailed = true
	case healthOK:
		w.lastFailed = false
	}
	if w.gates.hold.extend(f.holdUntil) {
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
	now := w.gates.br.state
	if now == before || w.stopped {
		return
	}
	s.metrics.setBreaker(w.name, now)
	switch now {
	case breakerOpen:
		s.log.Warn("circuit breaker opened", "destination", w.name, "until", w.gates.br.openUntil)
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
