package delivery

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/rcrouter/rcrouter/destinations"
	"github.com/rcrouter/rcrouter/internal/clock"
	"github.com/rcrouter/rcrouter/internal/event"
	"github.com/rcrouter/rcrouter/internal/store"
)

// Destination states reported by Scheduler.State (the `state` of
// GET /api/v1/destinations, plus StateRemoved for names no longer configured).
const (
	StateHealthy     = "healthy"
	StateRetrying    = "retrying"
	StateCircuitOpen = "circuit_open"
	StatePaused      = "paused"
	StateRemoved     = "removed"
)

// defaultPollInterval is how often an idle worker asks the store anyway: the
// fallback for work nobody announced (retries due that this process did not
// schedule, deliveries made due by another replica or by the admin API
// without a Wake, leases that expired).
const defaultPollInterval = time.Second

// releaseTimeout bounds the Release of abandoned deliveries at shutdown, whose
// own deadline has already passed by then.
const releaseTimeout = 10 * time.Second

// Target is one configured destination as the scheduler sees it.
type Target struct {
	Name   string
	Type   string // config block name (segment, slack, webhook, file); for logs
	Dest   destinations.Destination
	Policy Policy       // from the destination's options
	Caps   Capabilities // declared by the destination's type
}

// Lease is the longest one attempt of t holds its delivery, and so its
// adapter, when it starts at once: an adapter a reload replaced is closed no
// sooner.
func (t Target) Lease() time.Duration { return t.Policy.effective(t.Caps).lease() }

// SchedulerOptions configure a Scheduler. Decode is required.
type SchedulerOptions struct {
	Logger  *slog.Logger // default: discard
	Clock   clock.Clock  // default: clock.Real()
	Metrics *Metrics     // nil: no metrics
	// Decode turns a stored body into the normalized event (revenuecat.Decode).
	Decode func(body []byte) (*event.Event, error)
	// OnDispatch receives every dispatch record after the store committed it
	// (the live feed). It must not block: it runs on the worker's goroutine.
	OnDispatch func(store.Dispatch)
	// PollInterval is the fallback wake-up of an idle worker (default 1 s).
	PollInterval time.Duration
	// Rand returns a uniform value in [0, n) for the backoff jitter (default
	// math/rand/v2; must be safe for concurrent use).
	Rand func(n int64) int64
	// Owner names this process in the leases it claims (its replica name;
	// default <hostname>-<pid>).
	Owner string
	// Rate, Breaker and Signals are what replicas on one database share
	// (store/postgres): the rate limit of each destination for all of them
	// together, its circuit breaker, and other replicas' wake-ups and
	// pauses. Nil (SQLite, one process): rate limit and breaker in memory,
	// and only this process's own wake-ups.
	Rate    SharedRate
	Breaker SharedBreaker
	Signals Signals
	// Accepting reports how many webhooks the accept path is serving now
	// (nil: none). While it is at least BusyWebhooks, every destination runs
	// fewer attempts at once (see Scheduler.slots): webhooks come first.
	Accepting func() int
}

// BusyWebhooks is the number of webhooks being accepted at once from which
// fan-out yields: each further BusyWebhooks divide a destination's attempts
// in flight once more, down to one. A burst from RevenueCat then waits
// behind fewer Sends and completions, and the backlog a little longer; a
// single attempt per destination keeps it moving.
const BusyWebhooks = 8

// Scheduler delivers queued deliveries: one worker per destination claims due
// deliveries from the store, asks its gates (pause, hold, breaker, rate limit), calls
// the adapter, and records the outcome and every attempt (DESIGN §1, §7).
// Destinations are isolated: each has its own worker, slots, gates and
// breaker, and the only shared stage, the batched store commit, never waits
// on a destination.
//
// Lifecycle: NewScheduler, Apply (any time, also before Run), Run in a
// goroutine, and Shutdown to stop gracefully; Run returns once Shutdown has
// finished. If Run's context ends first, Run stops at once: in-flight
// attempts are cancelled and their deliveries released, as by a Shutdown
// whose deadline has passed.
type Scheduler struct {
	st         store.Queue
	owner      string
	log        *slog.Logger
	clock      clock.Clock
	metrics    *Metrics
	decoded    *decodedEvents
	onDispatch func(store.Dispatch)
	poll       time.Duration
	rand       func(int64) int64
	accepting  func() int
	commits    *committer
	rates      SharedRate
	breakers   SharedBreaker
	signals    Signals
	share      shareMode

	reconfigure chan struct{} // cap 1: Apply asks Run to start new workers
	halting     chan struct{} // closed when Shutdown begins
	abort       chan struct{} // closed when Run's context ends: no more grace
	stopped     chan struct{} // closed when Shutdown has finished
	abortOnce   sync.Once
	pauseMu     sync.Mutex // orders Pause/Resume: the store and memory agree
	loops       sync.WaitGroup
	work        sync.WaitGroup // attempts that will still commit

	// inflightMu guards inflight and every attempt's abandoned flag; it is
	// taken after worker.mu, and the delivery path takes no other
	// scheduler-wide lock.
	inflightMu sync.Mutex
	inflight   map[string]*attempt // by delivery id: Send has not returned

	mu         sync.RWMutex // guards the fields below; taken before worker.mu
	workers    map[string]*worker
	paused     map[string]bool // operator pauses, loaded by Run
	running    bool
	stopping   bool
	cancelWork context.CancelFunc
	stopErr    error
}

// NewScheduler returns a scheduler over st. It panics when opts.Decode is nil.
func NewScheduler(st store.Queue, opts SchedulerOptions) *Scheduler {
	if opts.Decode == nil {
		panic("delivery: SchedulerOptions.Decode is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real()
	}
	if opts.OnDispatch == nil {
		opts.OnDispatch = func(store.Dispatch) {}
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = defaultPollInterval
	}
	if opts.Rand == nil {
		opts.Rand = defaultRand
	}
	if opts.Owner == "" {
		opts.Owner = DefaultOwner()
	}
	return &Scheduler{
		st:          st,
		owner:       opts.Owner,
		log:         opts.Logger,
		clock:       opts.Clock,
		metrics:     opts.Metrics,
		decoded:     newDecodedEvents(opts.Decode, decodedCap),
		onDispatch:  opts.OnDispatch,
		poll:        opts.PollInterval,
		rand:        opts.Rand,
		accepting:   opts.Accepting,
		commits:     newCommitter(st, opts.Logger),
		rates:       opts.Rate,
		breakers:    opts.Breaker,
		signals:     opts.Signals,
		share:       shareMode{rate: opts.Rate != nil, breaker: opts.Breaker != nil},
		reconfigure: make(chan struct{}, 1),
		halting:     make(chan struct{}),
		abort:       make(chan struct{}),
		stopped:     make(chan struct{}),
		workers:     map[string]*worker{},
		paused:      map[string]bool{},
		inflight:    map[string]*attempt{},
	}
}

// DeliveryKey is the outbound idempotency key of one (event, destination)
// pair: "rc-" and the hex of the first 16 bytes of
// sha256(eventID + "\x00" + destination). It is the same for every attempt and
// replay, and at 35 characters fits Segment's 100-character messageId.
func DeliveryKey(eventID, destination string) string {
	sum := sha256.Sum256([]byte(eventID + "\x00" + destination))
	return "rc-" + hex.EncodeToString(sum[:16])
}

// Apply sets the destinations to deliver to, at start and on every reload.
// New names get a worker; removed names stop claiming (their queued
// deliveries stay in the store untouched, and State reports StateRemoved);
// a changed adapter or policy applies to the next claims, while attempts in
// flight finish with what they started with. Breaker and pause state survive
// a change. Safe to call at any time, concurrently with running workers.
func (s *Scheduler) Apply(targets []Target) {
	now := s.clock.Now()
	keep := make(map[string]bool, len(targets))
	var removed, changed []*worker
	s.mu.Lock()
	for _, t := range targets {
		t.Policy = t.Policy.effective(t.Caps)
		keep[t.Name] = true
		if w := s.workers[t.Name]; w != nil {
			w.reconfigure(t, now, s.share)
			changed = append(changed, w)
			continue
		}
		w := newWorker(t, now, s.share)
		w.gates.pause.paused = s.paused[t.Name]
		s.workers[t.Name] = w
		s.metrics.setBreaker(t.Name, breakerClosed)
		s.metrics.setPaused(t.Name, s.paused[t.Name])
	}
	for name, w := range s.workers {
		if !keep[name] {
			delete(s.workers, name)
			removed = append(removed, w)
		}
	}
	s.mu.Unlock()

	for _, w := range changed {
		s.metrics.setBreaker(w.name, w.breakerState())
		w.poke()
	}
	for _, w := range removed {
		w.halt()
		s.metrics.forget(w.name)
		s.log.Info("destination removed: its queued deliveries stay in the store", "destination", w.name)
	}
	select {
	case s.reconfigure <- struct{}{}:
	default:
	}
}

// Run delivers until Shutdown is called or ctx is done. It returns nil after
// a shutdown, or an error when it cannot start (the paused flags cannot be
// read, or Run was already called).
func (s *Scheduler) Run(ctx context.Context) error {
	paused, err := s.st.Paused(ctx)
	if err != nil {
		err = fmt.Errorf("scheduler: load paused destinations: %w", err)
		s.log.Error("scheduler not started", "err", err)
		return err
	}
	// Attempts and claims get a context that Run's ctx does not cancel
	// directly: shutdown first marks unfinished attempts abandoned, then
	// cancels, so a cancelled Send is released rather than recorded as a
	// failed attempt.
	base := context.WithoutCancel(ctx)
	workCtx, cancelWork := context.WithCancel(base)
	defer cancelWork()

	s.mu.Lock()
	if s.running || s.stopping {
		s.mu.Unlock()
		return errors.New("scheduler: run called twice or after shutdown")
	}
	s.running = true
	s.cancelWork = cancelWork
	for name, p := range paused {
		s.paused[name] = p
	}
	for name, w := range s.workers {
		w.setPaused(paused[name])
		s.metrics.setPaused(name, paused[name])
	}
	s.mu.Unlock()

	go s.commits.run(base)
	if s.signals != nil {
		s.loops.Add(1)
		go s.follow(workCtx)
	}
	s.startWorkers(workCtx)
	for {
		select {
		case <-s.reconfigure:
			s.startWorkers(workCtx)
		case <-s.halting:
			<-s.stopped
			return nil
		case <-ctx.Done():
			s.abortOnce.Do(func() { close(s.abort) })
			expired, cancel := context.WithCancel(base)
			cancel()
			s.Shutdown(expired) // or cuts short a Shutdown already running
			<-s.stopped
			return nil
		}
	}
}

// startWorkers starts the loop of every worker that has none yet.
func (s *Scheduler) startWorkers(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return
	}
	for _, w := range s.workers {
		if !w.started {
			w.started = true
			s.loops.Add(1)
			go s.runWorker(ctx, w)
		}
	}
}

// Shutdown stops gracefully: no new claims, attempts in flight may finish and
// be recorded until ctx is done; then they are cancelled and their
// deliveries released (due again at once, so a restart resumes them) without
// a dispatch record, since their result is unknown. Completions already
// handed to the store are always written. It returns ctx's error when it had
// to cancel attempts, else nil. Later calls wait for the first to finish.
//
// Adapters must return promptly once their context is cancelled; the result
// of one that does not is discarded whenever it comes.
func (s *Scheduler) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		select {
		case <-s.stopped:
			s.mu.RLock()
			defer s.mu.RUnlock()
			return s.stopErr
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.stopping = true
	close(s.halting)
	running, cancelWork := s.running, s.cancelWork
	workers := make([]*worker, 0, len(s.workers))
	for _, w := range s.workers {
		workers = append(workers, w)
	}
	s.mu.Unlock()
	if !running {
		close(s.stopped)
		return nil
	}

	for _, w := range workers {
		w.halt()
	}
	workDone := make(chan struct{})
	go func() {
		// Owned by Shutdown: ends when the loops are gone and every attempt
		// has committed or been abandoned below.
		s.loops.Wait()
		s.work.Wait()
		close(workDone)
	}()

	var err error
	select {
	case <-workDone:
	case <-ctx.Done():
		err = ctx.Err()
	case <-s.abort:
		err = context.Canceled
	}
	if err != nil {
		leases := s.abandon()
		cancelWork()
		if len(leases) > 0 {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
			if rerr := s.st.Release(rctx, leases, s.clock.Now()); rerr != nil {
				s.log.Error("release unfinished deliveries at shutdown", "count", len(leases), "err", rerr)
			} else {
				s.log.Warn("shutdown deadline passed: unfinished deliveries released", "count", len(leases))
			}
			cancel()
		}
		<-workDone // only attempts already committing remain
	}
	cancelWork()
	s.commits.close()

	s.mu.Lock()
	s.stopErr = err
	s.mu.Unlock()
	close(s.stopped)
	return err
}

// abandon gives up on every attempt whose Send has not returned: their
// results will be discarded, and the caller releases the returned leases.
func (s *Scheduler) abandon() []store.Lease {
	s.inflightMu.Lock()
	defer s.inflightMu.Unlock()
	leases := make([]store.Lease, 0, len(s.inflight))
	for _, a := range s.inflight {
		a.abandoned = true
		leases = append(leases, a.d.Lease)
		s.work.Done()
	}
	clear(s.inflight)
	return leases
}

// DefaultOwner is the lease owner of a process that has no replica name:
// <hostname>-<pid>.
func DefaultOwner() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "rcrouter"
	}
	return fmt.Sprintf("%s-%d", host, os.Getpid())
}

// Wake tells the workers of the named destinations (all, when none is named)
// that new deliveries may be due. It never blocks and costs a lock and a
// channel send per destination, so ingest calls it after every commit.
func (s *Scheduler) Wake(destinations ...string) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if len(destinations) == 0 {
		for _, w := range s.workers {
			w.wake()
		}
		return
	}
	for _, name := range destinations {
		if w := s.workers[name]; w != nil {
			w.wake()
		}
	}
}

// Pause stops a destination from claiming until Resume; the flag is stored,
// so it survives restarts. Attempts in flight finish. An unknown destination
// is store.ErrNotFound.
func (s *Scheduler) Pause(ctx context.Context, name string) error {
	return s.setPaused(ctx, name, true)
}

// Resume undoes Pause.
func (s *Scheduler) Resume(ctx context.Context, name string) error {
	return s.setPaused(ctx, name, false)
}

func (s *Scheduler) setPaused(ctx context.Context, name string, paused bool) error {
	verb := "pause"
	if !paused {
		verb = "resume"
	}
	s.pauseMu.Lock()
	defer s.pauseMu.Unlock()
	s.mu.RLock()
	w := s.workers[name]
	s.mu.RUnlock()
	if w == nil {
		return fmt.Errorf("%s destination %s: %w", verb, name, store.ErrNotFound)
	}
	if err := s.st.SetPaused(ctx, name, paused); err != nil {
		return fmt.Errorf("%s destination %s: %w", verb, name, err)
	}
	s.mu.Lock()
	s.paused[name] = paused
	s.mu.Unlock()
	w.setPaused(paused)
	s.metrics.setPaused(name, paused)
	w.poke()
	s.log.Info("destination "+verb+"d", "destination", name)
	return nil
}

// State reports a destination's state for the admin API:
//   - paused: an operator paused it;
//   - circuit_open: the breaker is open or half-open (probing);
//   - retrying: the last settled attempt failed with a retryable outcome, or
//     the destination asked to be left alone for a while (Slack's 429);
//     permanent failures make dead deliveries, not a retrying destination;
//   - healthy: otherwise;
//   - removed: the name is not configured (its deliveries are orphans).
func (s *Scheduler) State(name string) string {
	s.mu.RLock()
	w := s.workers[name]
	s.mu.RUnlock()
	if w == nil {
		return StateRemoved
	}
	return w.state(s.clock.Now())
}
