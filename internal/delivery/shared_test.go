package delivery

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/rcrouter/rcrouter/internal/store"
	"github.com/rcrouter/rcrouter/internal/testutil"
)

// fakeRate is a shared bucket the test fills by hand: it grants what it
// holds, and with nothing left asks the caller to come back at next.
type fakeRate struct {
	mu     sync.Mutex
	tokens int
	next   time.Time
	asked  []int
}

func (f *fakeRate) TakeTokens(_ context.Context, _ string, rate float64, burst, want int, now time.Time) (int, time.Time, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, want)
	n := min(want, f.tokens)
	f.tokens -= n
	if n == 0 {
		return 0, f.next, nil
	}
	return n, time.Time{}, nil
}

func (f *fakeRate) fill(n int, next time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tokens, f.next = n, next
}

func TestSchedSharedRateLimit(t *testing.T) {
	rate := &fakeRate{tokens: 2, next: schedT0.Add(time.Second)}
	shared := func(o *SchedulerOptions) { o.Rate = rate }
	// Two replicas on one queue and one bucket.
	a := newSchedHarness(t, shared)
	b := newSchedHarness(t, shared)
	b.st, b.clk = a.st, a.clk
	b.s = NewScheduler(a.st, SchedulerOptions{Clock: a.clk, Decode: schedDecode, OnDispatch: a.feed.add,
		PollInterval: time.Hour, Rate: rate, Owner: "replica-b"})
	for _, id := range []string{"d1", "d2", "d3", "d4", "d5"} {
		a.st.add(id, "slack", schedT0)
	}
	pol := Policy{Concurrency: 4, RateLimit: 5}
	a.s.Apply([]Target{schedTarget("slack", newScriptDest(okResult()), pol)})
	b.s.Apply([]Target{schedTarget("slack", newScriptDest(okResult()), pol)})
	a.run(1)
	b.run(1)
	a.feed.wait(t, 2)
	a.parked(2)
	if n := a.st.count("slack", store.Delivered); n != 2 {
		t.Fatalf("%d delivered with 2 shared tokens, want 2", n)
	}
	if n := a.st.count("slack", store.Running); n != 0 {
		t.Fatalf("%d claimed beyond the shared tokens, want 0", n)
	}

	// Both replicas come back when the bucket said; 3 more tokens, 3 more sent.
	rate.fill(3, schedT0.Add(2*time.Second))
	a.clk.Advance(time.Second)
	a.feed.wait(t, 5)
	a.parked(2)
	if n := a.st.count("slack", store.Delivered); n != 5 {
		t.Fatalf("%d delivered, want 5", n)
	}
	rate.mu.Lock()
	defer rate.mu.Unlock()
	for _, w := range rate.asked {
		if w > pol.Concurrency {
			t.Errorf("asked for %d tokens, more than the %d free slots", w, pol.Concurrency)
		}
	}
}

// fakeBreaker answers permits with the test's choice (a probe only once)
// and records what the scheduler reports.
type fakeBreaker struct {
	mu      sync.Mutex
	permit  store.BreakerPermit
	state   string // returned by BreakerRecord
	records []breakerRecord
}

type breakerRecord struct {
	gen int64
	h   store.BreakerHealth
}

func (f *fakeBreaker) BreakerPermit(context.Context, string, time.Time, time.Duration) (store.BreakerPermit, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.permit
	if p.N == 1 { // one probe; the others wait for its result
		f.permit.N = 0
	}
	return p, nil
}

func (f *fakeBreaker) BreakerRecord(_ context.Context, _ string, gen int64, h store.BreakerHealth, _ int, _ time.Duration, _ time.Time) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.records = append(f.records, breakerRecord{gen, h})
	return f.state, nil
}

func (f *fakeBreaker) set(p store.BreakerPermit, state string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.permit, f.state = p, state
}

func (f *fakeBreaker) recorded() []breakerRecord {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]breakerRecord(nil), f.records...)
}

func TestSchedSharedBreaker(t *testing.T) {
	br := &fakeBreaker{permit: store.BreakerPermit{N: 0, Until: schedT0.Add(10 * time.Second), Gen: 4}, state: "open"}
	h := newSchedHarness(t, func(o *SchedulerOptions) { o.Breaker = br; o.PollInterval = 5 * time.Second })
	for _, id := range []string{"d1", "d2", "d3"} {
		h.st.add(id, "hook", schedT0)
	}
	g := newGatedDest()
	pol := Policy{Concurrency: 4, FailureThreshold: 2, OpenFor: 10 * time.Second}
	h.start(schedTarget("hook", g, pol))

	// Opened by another replica: nothing is claimed, the state says so.
	if n := h.st.count("hook", store.Running); n != 0 || g.n.Load() != 0 {
		t.Fatalf("%d claimed, %d sent while the shared breaker is open, want 0", n, g.n.Load())
	}
	if got := h.s.State("hook"); got != StateCircuitOpen {
		t.Fatalf("State %q, want circuit_open", got)
	}

	// Half-open, and this replica got the probe: exactly one delivery goes,
	// and its failure is reported in the probe's generation.
	br.set(store.BreakerPermit{N: 1, Until: schedT0.Add(time.Minute), Gen: 5}, "open")
	h.clk.Advance(5 * time.Second)
	probe := g.next(t)
	probe.reply <- retryResult(503, time.Hour)
	if !testutil.Poll(schedWait, func() bool { return len(br.recorded()) == 1 }) {
		t.Fatal("the probe's result never reached the shared breaker")
	}
	if got := br.recorded()[0]; got != (breakerRecord{5, store.BreakerFailed}) {
		t.Fatalf("probe recorded %+v, want gen 5 failed", got)
	}
	h.feed.wait(t, 1)
	h.parked(1)
	if n := g.n.Load(); n != 1 {
		t.Fatalf("%d sends in half-open, want 1 (the probe)", n)
	}

	// Closed again (a probe succeeded somewhere): the rest flow, and a
	// success after a failure is reported once.
	br.set(store.BreakerPermit{N: -1, Gen: 6}, "closed")
	h.clk.Advance(5 * time.Second)
	for range 2 {
		g.next(t).reply <- okResult()
	}
	h.st.waitState(t, "d2", store.Delivered)
	h.st.waitState(t, "d3", store.Delivered)
	h.parked(1)
	testutil.Poll(schedWait, func() bool { return len(br.recorded()) >= 2 })
	recs := br.recorded()
	if len(recs) != 2 || recs[1] != (breakerRecord{6, store.BreakerOK}) {
		t.Fatalf("records %+v, want the probe's failure then one success in gen 6", recs)
	}
	if got := h.s.State("hook"); got != StateHealthy && got != StateRetrying {
		t.Fatalf("State %q after the breaker closed, want healthy or retrying", got)
	}
}

// fakeSignals hands the scheduler the test's notices.
type fakeSignals struct {
	wakes  chan string
	pauses chan store.PauseChange
}

func (f *fakeSignals) SubscribeWakeups(context.Context) <-chan string { return f.wakes }
func (f *fakeSignals) SubscribePaused(context.Context) <-chan store.PauseChange {
	return f.pauses
}

func TestSchedFollowsOtherReplicas(t *testing.T) {
	sig := &fakeSignals{wakes: make(chan string, 4), pauses: make(chan store.PauseChange, 4)}
	h := newSchedHarness(t, func(o *SchedulerOptions) { o.Signals = sig })
	dest := newScriptDest(okResult())
	h.start(schedTarget("hook", dest, Policy{}))

	// Another replica stored a delivery and announced it: claimed at once,
	// without this scheduler's Wake.
	h.st.add("d1", "hook", schedT0)
	sig.wakes <- "hook"
	h.st.waitState(t, "d1", store.Delivered)

	// Paused on another replica (the store holds the flag already).
	h.st.SetPaused(context.Background(), "hook", true)
	sig.pauses <- store.PauseChange{Destination: "hook", Paused: true}
	if !testutil.Poll(schedWait, func() bool { return h.s.State("hook") == StatePaused }) {
		t.Fatalf("State %q after another replica paused, want paused", h.s.State("hook"))
	}
	mark := h.clk.Created()
	h.s.Wake("hook")
	h.parkedSince(mark, 1)
	claims := h.st.claimCount("hook")
	h.st.add("d2", "hook", schedT0)
	mark = h.clk.Created()
	sig.wakes <- ""
	h.parkedSince(mark, 1)
	if n := h.st.claimCount("hook"); n != claims {
		t.Fatalf("%d claims while paused, want none", n-claims)
	}
	if got := h.st.get("d2").State; got != store.Pending {
		t.Fatalf("d2 %s while paused by another replica, want pending", got)
	}

	// Resumed there, announced only as "re-read everything" (a reconnect).
	h.st.SetPaused(context.Background(), "hook", false)
	sig.pauses <- store.PauseChange{}
	h.st.waitState(t, "d2", store.Delivered)
	if got := h.s.State("hook"); got != StateHealthy {
		t.Errorf("State %q after the resume, want healthy", got)
	}
}
