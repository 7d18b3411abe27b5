package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/rcrouter/rcrouter/destinations"
	"github.com/rcrouter/rcrouter/internal/clock"
	"github.com/rcrouter/rcrouter/internal/event"
	"github.com/rcrouter/rcrouter/internal/store"
)

// schedT0 is where the fake clock of scheduler tests starts.
var schedT0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// schedWait bounds every wait in these tests; hitting it is a failure.
const schedWait = 5 * time.Second

// schedSignal is closed-and-replaced on every change, so tests wait for a
// condition without polling.
type schedSignal struct {
	mu sync.Mutex
	ch chan struct{}
}

func (s *schedSignal) c() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

func (s *schedSignal) fire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch != nil {
		close(s.ch)
	}
	s.ch = make(chan struct{})
}

// schedWaitFor waits until cond holds, re-checking whenever sig fires.
func schedWaitFor(t *testing.T, sig *schedSignal, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(schedWait)
	defer deadline.Stop()
	for {
		ch := sig.c()
		if cond() {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// schedStore is an in-memory store.Queue with the queue semantics the
// scheduler relies on, leases included: a completion or release whose token
// is not the delivery's current one is refused (a delivery added without a
// lease takes the empty token).
type schedStore struct {
	sig schedSignal

	mu          sync.Mutex
	deliveries  map[string]*store.Delivery
	dispatches  []store.Dispatch
	paused      map[string]bool
	claims      map[string]int // Claim calls per destination
	claimLimits []int
	completes   []int // size of every Complete call
	released    []string
	lost        []string // completions refused for their lease
	nextID      int
	nextLease   int
	failNext    int // Complete calls still to fail
}

func newSchedStore() *schedStore {
	return &schedStore{deliveries: map[string]*store.Delivery{}, paused: map[string]bool{}, claims: map[string]int{}}
}

// add queues a delivery of a test event, due at due.
func (s *schedStore) add(id, destination string, due time.Time) *store.Delivery {
	return s.addWith(store.Delivery{ID: id, Destination: destination, NextAttemptAt: due, CreatedAt: due})
}

func (s *schedStore) addWith(d store.Delivery) *store.Delivery {
	if d.EventID == "" {
		d.EventID = "ev-" + d.ID
	}
	if d.EventType == "" {
		d.EventType = "RENEWAL"
	}
	if d.Route == "" {
		d.Route = "route-1"
	}
	if d.State == "" {
		d.State = store.Pending
	}
	if d.Body == nil {
		d.Body = schedBody(d.EventID, d.EventType)
	}
	s.mu.Lock()
	s.deliveries[d.ID] = &d
	s.mu.Unlock()
	s.sig.fire()
	return &d
}

func schedBody(id, typ string) []byte {
	b, _ := json.Marshal(map[string]any{"api_version": "1.0", "event": map[string]string{"id": id, "type": typ}})
	return b
}

// schedDecode stands in for revenuecat.Decode.
func schedDecode(body []byte) (*event.Event, error) {
	var env struct {
		Event *event.Event `json:"event"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, err
	}
	if env.Event == nil || env.Event.ID == "" {
		return nil, errors.New("no event")
	}
	env.Event.Raw = body
	return env.Event, nil
}

func (s *schedStore) get(id string) store.Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return *s.deliveries[id]
}

// count returns how many deliveries of destination are in state. Claims run
// on the worker's goroutine before it parks, so after a park this is exact,
// where counting Send calls would race with the attempt goroutines.
func (s *schedStore) count(destination string, state store.State) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, d := range s.deliveries {
		if d.Destination == destination && d.State == state {
			n++
		}
	}
	return n
}

func (s *schedStore) claimCount(destination string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.claims[destination]
}

func (s *schedStore) records(deliveryID string) []store.Dispatch {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []store.Dispatch
	for _, d := range s.dispatches {
		if d.DeliveryID == deliveryID {
			out = append(out, d)
		}
	}
	return out
}

func (s *schedStore) waitState(t *testing.T, id string, want store.State) {
	t.Helper()
	schedWaitFor(t, &s.sig, fmt.Sprintf("delivery %s %s", id, want), func() bool { return s.get(id).State == want })
}

var _ store.Queue = (*schedStore)(nil)

// takeOver gives delivery id a new lease, as another replica's claim after
// expiry would: the holder's completion is then refused.
func (s *schedStore) takeOver(id, owner string) {
	s.mu.Lock()
	s.nextLease++
	d := s.deliveries[id]
	d.Lease = store.Lease{DeliveryID: id, Owner: owner, Token: fmt.Sprintf("lease-%d", s.nextLease), Until: d.NextAttemptAt}
	s.mu.Unlock()
	s.sig.fire()
}

func (s *schedStore) lostLeases() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.lost)
}

func (s *schedStore) Claim(_ context.Context, owner, destination string, now, leaseUntil time.Time, limit int) ([]store.Delivery, error) {
	defer s.sig.fire()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.claims[destination]++
	s.claimLimits = append(s.claimLimits, limit)
	var due []*store.Delivery
	for _, d := range s.deliveries {
		if d.Destination != destination {
			continue
		}
		switch d.State {
		case store.Pending, store.Retrying:
			if !d.NextAttemptAt.After(now) {
				due = append(due, d)
			}
		case store.Running:
			if d.NextAttemptAt.Before(now) { // lease expired
				due = append(due, d)
			}
		}
	}
	sort.Slice(due, func(i, j int) bool {
		if !due[i].NextAttemptAt.Equal(due[j].NextAttemptAt) {
			return due[i].NextAttemptAt.Before(due[j].NextAttemptAt)
		}
		return due[i].ID < due[j].ID
	})
	if len(due) > limit {
		due = due[:limit]
	}
	out := make([]store.Delivery, len(due))
	for i, d := range due {
		s.nextLease++
		d.State = store.Running
		d.NextAttemptAt = leaseUntil
		d.Lease = store.Lease{DeliveryID: d.ID, Owner: owner, Token: fmt.Sprintf("lease-%d", s.nextLease), Until: leaseUntil}
		out[i] = *d
	}
	return out, nil
}

func (s *schedStore) Complete(_ context.Context, cs []store.Completion) error {
	defer s.sig.fire()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failNext > 0 {
		s.failNext--
		return errors.New("disk I/O error")
	}
	for _, c := range cs {
		if s.deliveries[c.DeliveryID] == nil {
			return fmt.Errorf("complete %s: %w", c.DeliveryID, store.ErrNotFound)
		}
	}
	s.completes = append(s.completes, len(cs))
	var lost []string
	for _, c := range cs {
		d := s.deliveries[c.DeliveryID]
		if d.Lease.Token != c.LeaseToken {
			lost = append(lost, c.DeliveryID)
			continue
		}
		d.Lease = store.Lease{}
		d.State, d.NextAttemptAt, d.LastError = c.State, c.NextAttemptAt, c.LastError
		d.Attempts += len(c.Dispatches)
		d.Tries++
		for i := range c.Dispatches {
			if c.Dispatches[i].ID == "" {
				s.nextID++
				c.Dispatches[i].ID = fmt.Sprintf("dsp-%03d", s.nextID)
			}
			s.dispatches = append(s.dispatches, c.Dispatches[i])
		}
	}
	if len(lost) > 0 {
		s.lost = append(s.lost, lost...)
		return &store.LeaseLostError{DeliveryIDs: lost}
	}
	return nil
}

func (s *schedStore) Release(_ context.Context, leases []store.Lease, now time.Time) error {
	defer s.sig.fire()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range leases {
		if d := s.deliveries[l.DeliveryID]; d != nil && d.State == store.Running && d.Lease.Token == l.Token {
			d.State, d.NextAttemptAt, d.Lease = store.Pending, now, store.Lease{}
			s.released = append(s.released, l.DeliveryID)
		}
	}
	return nil
}

func (s *schedStore) SetPaused(_ context.Context, destination string, paused bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.paused[destination] = paused
	return nil
}

func (s *schedStore) Paused(context.Context) (map[string]bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]bool{}
	for k, v := range s.paused {
		if v {
			out[k] = true
		}
	}
	return out, nil
}

// scriptDest answers call i with script[i] (the last entry repeats) and
// records every Delivery it got.
type scriptDest struct {
	sig    schedSignal
	mu     sync.Mutex
	script []destinations.Result
	calls  []destinations.Delivery
}

func newScriptDest(script ...destinations.Result) *scriptDest { return &scriptDest{script: script} }

func (f *scriptDest) Send(_ context.Context, d destinations.Delivery) destinations.Result {
	defer f.sig.fire()
	f.mu.Lock()
	defer f.mu.Unlock()
	i := min(len(f.calls), len(f.script)-1)
	f.calls = append(f.calls, d)
	return f.script[i]
}

func (f *scriptDest) called() []destinations.Delivery {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// gatedDest hands every call to the test, which answers it; a call whose
// context ends first returns a timeout retry, as an HTTP adapter would.
type gatedDest struct {
	calls chan gatedCall
	n     atomic.Int32
}

type gatedCall struct {
	ctx   context.Context
	d     destinations.Delivery
	reply chan destinations.Result
}

func newGatedDest() *gatedDest { return &gatedDest{calls: make(chan gatedCall, 64)} }

func (g *gatedDest) Send(ctx context.Context, d destinations.Delivery) destinations.Result {
	g.n.Add(1)
	c := gatedCall{ctx: ctx, d: d, reply: make(chan destinations.Result, 1)}
	g.calls <- c
	select {
	case r := <-c.reply:
		return r
	case <-ctx.Done():
		return destinations.Result{Outcome: destinations.Retry, Reason: destinations.ReasonTimeout, Message: ctx.Err().Error()}
	}
}

// next returns the next call, failing the test if none comes.
func (g *gatedDest) next(t *testing.T) gatedCall {
	t.Helper()
	select {
	case c := <-g.calls:
		return c
	case <-time.After(schedWait):
		t.Fatal("timed out waiting for a Send call")
		return gatedCall{}
	}
}

// schedFeed collects OnDispatch records.
type schedFeed struct {
	sig  schedSignal
	mu   sync.Mutex
	recs []store.Dispatch
}

func (f *schedFeed) add(d store.Dispatch) {
	f.mu.Lock()
	f.recs = append(f.recs, d)
	f.mu.Unlock()
	f.sig.fire()
}

func (f *schedFeed) all() []store.Dispatch {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.recs)
}

// wait returns the records once there are at least n.
func (f *schedFeed) wait(t *testing.T, n int) []store.Dispatch {
	t.Helper()
	schedWaitFor(t, &f.sig, fmt.Sprintf("%d dispatch records", n), func() bool { return len(f.all()) >= n })
	return f.all()
}

// schedHarness runs a Scheduler over a schedStore on a fake clock.
type schedHarness struct {
	t       *testing.T
	clk     *clock.Fake
	st      *schedStore
	feed    *schedFeed
	reg     *prometheus.Registry
	metrics *Metrics
	s       *Scheduler
	cancel  context.CancelFunc
	runDone chan error
}

// newSchedHarness builds the scheduler; the default jitter draws 0, so retries
// wait exactly their Retry-After (or are due at once) unless a test says otherwise.
func newSchedHarness(t *testing.T, opts ...func(*SchedulerOptions)) *schedHarness {
	t.Helper()
	h := &schedHarness{t: t, clk: clock.NewFake(schedT0), st: newSchedStore(), feed: &schedFeed{}, reg: prometheus.NewRegistry()}
	h.metrics = NewMetrics(h.reg)
	o := SchedulerOptions{
		Clock:        h.clk,
		Metrics:      h.metrics,
		Decode:       schedDecode,
		OnDispatch:   h.feed.add,
		PollInterval: time.Hour, // tests advance the clock; the fallback poll stays out of the way
		Rand:         func(int64) int64 { return 0 },
	}
	for _, f := range opts {
		f(&o)
	}
	h.s = NewScheduler(h.st, o)
	return h
}

// start applies targets, runs the scheduler and waits until every worker has
// made its first claim and parked.
func (h *schedHarness) start(targets ...Target) {
	h.t.Helper()
	h.s.Apply(targets)
	h.run(len(targets))
}

// run runs the scheduler and waits until n workers have parked.
func (h *schedHarness) run(n int) {
	h.t.Helper()
	mark := h.clk.Created()
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.runDone = make(chan error, 1)
	go func() { h.runDone <- h.s.Run(ctx) }()
	h.t.Cleanup(h.stop)
	h.parkedSince(mark, n)
}

func (h *schedHarness) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), schedWait)
	defer cancel()
	if err := h.s.Shutdown(ctx); err != nil && !errors.Is(err, context.Canceled) {
		h.t.Errorf("Shutdown: %v", err)
	}
	h.cancel()
	select {
	case err := <-h.runDone:
		if err != nil {
			h.t.Errorf("Run: %v", err)
		}
	case <-time.After(schedWait):
		h.t.Error("Run did not return after Shutdown")
	}
}

// parked waits until n workers are parked on a timer. Use it after an event
// a worker reported itself (a dispatch record): the worker stopped its old
// timer before reporting, so every pending timer is a new one.
func (h *schedHarness) parked(n int) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), schedWait)
	defer cancel()
	if err := h.clk.BlockUntil(ctx, n); err != nil {
		h.t.Fatalf("waiting for %d parked workers: %v", n, err)
	}
}

// parkedSince waits until n workers parked on timers made after mark (a
// clk.Created() taken before the test's action woke them).
func (h *schedHarness) parkedSince(mark uint64, n int) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), schedWait)
	defer cancel()
	if err := h.clk.BlockUntilCreated(ctx, mark, n); err != nil {
		h.t.Fatalf("waiting for %d workers to park again: %v", n, err)
	}
}

// advance moves the fake clock and returns a mark taken before it.
func (h *schedHarness) advance(d time.Duration) uint64 {
	mark := h.clk.Created()
	h.clk.Advance(d)
	return mark
}

func schedTarget(name string, d destinations.Destination, p Policy) Target {
	return Target{Name: name, Type: "webhook", Dest: d, Policy: p}
}

func retryResult(status int, retryAfter time.Duration) destinations.Result {
	o, r := destinations.Classify(status)
	return destinations.Result{Outcome: o, Reason: r, RetryAfter: retryAfter,
		Exchanges: []destinations.Exchange{{Request: destinations.Request{Method: "POST", URL: "https://example.test/hook"},
			Response: destinations.Response{StatusCode: status, Body: fmt.Sprintf("status %d", status)}, Started: schedT0, Duration: 40 * time.Millisecond}}}
}

func okResult() destinations.Result { return retryResult(200, 0) }

// schedGauge reads the value of one counter or gauge. (prometheus/testutil
// would need a module go.mod does not list.)
func schedGauge(m prometheus.Metric) float64 {
	var out dto.Metric
	if err := m.Write(&out); err != nil {
		panic(err)
	}
	switch {
	case out.Counter != nil:
		return out.Counter.GetValue()
	case out.Gauge != nil:
		return out.Gauge.GetValue()
	}
	panic("not a counter or gauge")
}

// schedSeries counts the series a collector exports.
func schedSeries(c prometheus.Collector) int {
	ch := make(chan prometheus.Metric, 100)
	c.Collect(ch)
	close(ch)
	return len(ch)
}
