package delivery

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rcrouter/rcrouter/destinations"
	"github.com/rcrouter/rcrouter/internal/clock"
	"github.com/rcrouter/rcrouter/internal/store"
)

func TestSchedRetryThenDeliver(t *testing.T) {
	h := newSchedHarness(t)
	h.st.add("d1", "hook", schedT0)
	dest := newScriptDest(retryResult(503, 0), retryResult(503, 0), okResult())
	h.start(schedTarget("hook", dest, Policy{MaxAttempts: 5, InitialInterval: time.Second}))

	recs := h.feed.wait(t, 3)
	h.st.waitState(t, "d1", store.Delivered)

	calls := dest.called()
	if len(calls) != 3 {
		t.Fatalf("Send called %d times, want 3", len(calls))
	}
	wantKey := DeliveryKey("ev-d1", "hook")
	for i, c := range calls {
		if c.Key != wantKey {
			t.Errorf("call %d: Key = %q, want %q", i+1, c.Key, wantKey)
		}
		if c.Event == nil || c.Event.ID != "ev-d1" || c.Event.Type != "RENEWAL" {
			t.Errorf("call %d: Event = %+v, want ev-d1 RENEWAL", i+1, c.Event)
		}
		if c.Attempt != i+1 || c.ID != "d1" || c.Destination != "hook" {
			t.Errorf("call %d: Attempt %d ID %q Destination %q, want %d d1 hook", i+1, c.Attempt, c.ID, c.Destination, i+1)
		}
	}
	wantStatus := []string{"retrying", "retrying", "delivered"}
	for i, r := range recs {
		if r.Attempt != i+1 || r.Status != wantStatus[i] || r.ID == "" {
			t.Errorf("record %d: attempt %d status %q id %q, want %d %q with an id", i, r.Attempt, r.Status, r.ID, i+1, wantStatus[i])
		}
	}
	if got := h.st.get("d1").Attempts; got != 3 {
		t.Errorf("stored attempts = %d, want 3", got)
	}
	if got := h.s.State("hook"); got != StateHealthy {
		t.Errorf("State = %q, want healthy", got)
	}
	for _, m := range []struct {
		outcome, reason string
		want            float64
	}{{"retry", "server_error", 2}, {"delivered", "", 1}, {"permanent", "client_error", 0}} {
		got := schedGauge(h.metrics.attempts.WithLabelValues("hook", m.outcome, m.reason))
		if got != m.want {
			t.Errorf("rcrouter_attempts_total{hook,%s,%s} = %v, want %v", m.outcome, m.reason, got, m.want)
		}
	}
	if got := schedSeries(h.metrics.duration); got != 1 {
		t.Errorf("duration histogram series = %d, want 1", got)
	}
}

func TestSchedFinalOutcomes(t *testing.T) {
	tests := []struct {
		name      string
		result    destinations.Result
		wantState store.State
		wantError string // last_error and, without exchanges, the record's error
	}{
		{"permanent 400 is dead at once", retryResult(400, 0), store.Dead, "http status 400"},
		{"skipped is never retried",
			destinations.Result{Outcome: destinations.Skipped, Reason: destinations.ReasonSkipped, Message: "no Segment event name for TRANSFER"},
			store.Skipped, "no Segment event name for TRANSFER"},
		{"501 is permanent", retryResult(501, 0), store.Dead, "http status 501"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newSchedHarness(t)
			h.st.add("d1", "hook", schedT0)
			dest := newScriptDest(tc.result, okResult())
			h.start(schedTarget("hook", dest, Policy{MaxAttempts: 10, FailureThreshold: 1}))

			recs := h.feed.wait(t, 1)
			h.st.waitState(t, "d1", tc.wantState)
			if recs[0].Status != string(tc.wantState) || recs[0].NextAttemptAt != nil {
				t.Errorf("record status %q next %v, want %q and no next attempt", recs[0].Status, recs[0].NextAttemptAt, tc.wantState)
			}
			if got := h.st.get("d1").LastError; got != tc.wantError {
				t.Errorf("last error %q, want %q", got, tc.wantError)
			}
			// Much later, after a Wake and past every poll: still one call.
			h.parked(1)
			mark := h.clk.Created()
			h.s.Wake("hook")
			h.parkedSince(mark, 1)
			h.parkedSince(h.advance(3*time.Hour), 1)
			if n := len(dest.called()); n != 1 {
				t.Errorf("Send called %d times, want 1", n)
			}
			// Neither outcome counts against the breaker (threshold 1).
			if got := h.s.State("hook"); got != StateHealthy {
				t.Errorf("State = %q, want healthy", got)
			}
		})
	}
}

func TestSchedRetryTiming(t *testing.T) {
	tests := []struct {
		name       string
		policy     Policy
		rand       func(int64) int64
		retryAfter time.Duration
		wantWait   time.Duration
	}{
		{"Retry-After 1s", Policy{InitialInterval: 100 * time.Millisecond, MaxInterval: time.Minute}, nil, time.Second, time.Second},
		{"Retry-After capped at MaxInterval", Policy{InitialInterval: time.Second, MaxInterval: time.Minute}, nil, 10 * time.Hour, time.Minute},
		{"backoff longer than Retry-After wins", Policy{InitialInterval: 5 * time.Second, MaxInterval: time.Minute},
			func(n int64) int64 { return n - 1 }, time.Second, 5 * time.Second},
		{"full jitter draw", Policy{InitialInterval: 8 * time.Second, MaxInterval: time.Minute},
			func(n int64) int64 { return n / 2 }, 0, 4 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newSchedHarness(t, func(o *SchedulerOptions) {
				if tc.rand != nil {
					o.Rand = tc.rand
				}
			})
			h.st.add("d1", "hook", schedT0)
			dest := newScriptDest(retryResult(429, tc.retryAfter), okResult())
			h.start(schedTarget("hook", dest, tc.policy))

			recs := h.feed.wait(t, 1)
			if recs[0].NextAttemptAt == nil || !recs[0].NextAttemptAt.Equal(schedT0.Add(tc.wantWait)) {
				t.Fatalf("next attempt at %v, want t0+%v", recs[0].NextAttemptAt, tc.wantWait)
			}
			if got := h.st.get("d1"); got.State != store.Retrying || !got.NextAttemptAt.Equal(schedT0.Add(tc.wantWait)) {
				t.Fatalf("stored %s due %v, want retrying at t0+%v", got.State, got.NextAttemptAt, tc.wantWait)
			}
			if got := h.s.State("hook"); got != StateRetrying {
				t.Errorf("State = %q, want retrying", got)
			}
			h.parked(1)
			h.clk.Advance(tc.wantWait - time.Millisecond)
			h.parked(1)
			if got := h.st.get("d1").State; got != store.Retrying {
				t.Fatalf("d1 is %s 1ms before the retry is due, want retrying (not claimed)", got)
			}
			h.clk.Advance(time.Millisecond)
			h.feed.wait(t, 2)
			h.st.waitState(t, "d1", store.Delivered)
			if n := len(dest.called()); n != 2 {
				t.Fatalf("attempted %d times, want 2", n)
			}
		})
	}
}

func TestSchedGivesUp(t *testing.T) {
	tests := []struct {
		name       string
		policy     Policy
		createdAgo time.Duration
		rand       func(int64) int64
		wantCalls  int
		wantStatus []string
		result     destinations.Result // default: one 503
	}{
		{"max attempts", Policy{MaxAttempts: 3, InitialInterval: time.Second}, 0, nil, 3,
			[]string{"retrying", "retrying", "dead"}, destinations.Result{}},
		// A library burst of three requests is one try: max_attempts 2 means
		// two Sends (six records), not one.
		{"max attempts counts tries, not requests", Policy{MaxAttempts: 2, InitialInterval: time.Second}, 0, nil, 2,
			[]string{"retrying", "retrying", "retrying", "retrying", "retrying", "dead"},
			destinations.Result{Outcome: destinations.Retry, Reason: destinations.ReasonServerError, Exchanges: []destinations.Exchange{
				{Response: destinations.Response{StatusCode: 503}}, {Response: destinations.Response{StatusCode: 503}}, {Response: destinations.Response{StatusCode: 503}}}}},
		{"max elapsed time", Policy{InitialInterval: time.Minute, MaxElapsedTime: time.Hour}, time.Hour - 30*time.Second,
			func(n int64) int64 { return n - 1 }, 1, []string{"dead"}, destinations.Result{}},
		{"retry landing exactly at the elapsed limit is allowed", Policy{MaxAttempts: 2, InitialInterval: time.Minute, MaxElapsedTime: time.Hour},
			time.Hour - time.Minute, func(n int64) int64 { return n - 1 }, 2, []string{"retrying", "dead"}, destinations.Result{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newSchedHarness(t, func(o *SchedulerOptions) {
				if tc.rand != nil {
					o.Rand = tc.rand
				}
			})
			h.st.addWith(store.Delivery{ID: "d1", Destination: "hook", NextAttemptAt: schedT0, CreatedAt: schedT0.Add(-tc.createdAgo)})
			res := tc.result
			if res.Outcome == "" {
				res = retryResult(503, 0)
			}
			dest := newScriptDest(res)
			h.start(schedTarget("hook", dest, tc.policy))

			perCall := max(1, len(res.Exchanges))
			for i := 1; i < tc.wantCalls; i++ {
				h.feed.wait(t, i*perCall)
				h.parked(1)
				h.clk.Advance(time.Minute) // past any wait of these policies
			}
			recs := h.feed.wait(t, len(tc.wantStatus))
			h.st.waitState(t, "d1", store.Dead)
			for i, r := range recs {
				if r.Status != tc.wantStatus[i] {
					t.Errorf("record %d status %q, want %q", i, r.Status, tc.wantStatus[i])
				}
			}
			if n := len(dest.called()); n != tc.wantCalls {
				t.Errorf("Send called %d times, want %d", n, tc.wantCalls)
			}
		})
	}
}

// TestSchedSlowDestinationIsolation measures, with the real clock, that a
// destination blocked in Send does not delay another one.
func TestSchedSlowDestinationIsolation(t *testing.T) {
	feed := &schedFeed{}
	st := newSchedStore()
	s := NewScheduler(st, SchedulerOptions{Clock: clock.Real(), Decode: schedDecode, OnDispatch: feed.add, PollInterval: time.Hour})
	release := make(chan struct{})
	slowStarted := make(chan struct{}, 16)
	slow := destFunc(func(ctx context.Context, d destinations.Delivery) destinations.Result {
		slowStarted <- struct{}{}
		select {
		case <-release:
		case <-ctx.Done():
		case <-time.After(5 * time.Second):
		}
		return okResult()
	})
	now := time.Now()
	for _, id := range []string{"s1", "s2", "s3"} {
		st.add(id, "slow", now)
	}
	s.Apply([]Target{
		schedTarget("slow", slow, Policy{Concurrency: 2, Timeout: 10 * time.Second}),
		schedTarget("fast", newScriptDest(okResult()), Policy{Concurrency: 1}),
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runDone := make(chan error, 1)
	go func() { runDone <- s.Run(ctx) }()
	for range 2 {
		select {
		case <-slowStarted:
		case <-time.After(schedWait):
			t.Fatal("slow destination never started")
		}
	}

	var worst time.Duration
	for i, id := range []string{"f1", "f2", "f3", "f4", "f5"} {
		begin := time.Now()
		st.add(id, "fast", begin)
		s.Wake("fast")
		st.waitState(t, id, store.Delivered)
		feed.wait(t, i+1)
		worst = max(worst, time.Since(begin))
	}
	t.Logf("fast destination: worst latency %v over 5 deliveries while the slow one is blocked", worst)
	if worst >= 200*time.Millisecond {
		t.Errorf("fast destination latency %v while the slow one is blocked, want < 200ms", worst)
	}
	for _, id := range []string{"s1", "s2"} {
		if got := st.get(id).State; got != store.Running {
			t.Errorf("slow delivery %s is %s during the measurement, want running (blocked)", id, got)
		}
	}
	close(release)
	st.waitState(t, "s3", store.Delivered)
	sctx, scancel := context.WithTimeout(context.Background(), schedWait)
	defer scancel()
	if err := s.Shutdown(sctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-runDone; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

type destFunc func(context.Context, destinations.Delivery) destinations.Result

func (f destFunc) Send(ctx context.Context, d destinations.Delivery) destinations.Result {
	return f(ctx, d)
}

func TestSchedBreaker(t *testing.T) {
	h := newSchedHarness(t)
	for _, id := range []string{"d1", "d2", "d3", "d4", "d5"} {
		h.st.add(id, "hook", schedT0)
	}
	g := newGatedDest()
	pol := Policy{Concurrency: 1, FailureThreshold: 3, OpenFor: 10 * time.Second, InitialInterval: time.Second}
	breakerGauge := func() float64 { return schedGauge(h.metrics.breaker.WithLabelValues("hook")) }
	h.s.Apply([]Target{schedTarget("hook", g, pol)})
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.runDone = cancel, make(chan error, 1)
	go func() { h.runDone <- h.s.Run(ctx) }()
	t.Cleanup(h.stop)

	// Three retryable failures in a row open it (retries are due at once: jitter 0).
	for range 3 {
		g.next(t).reply <- retryResult(503, 0)
	}
	h.feed.wait(t, 3)
	h.parked(1)
	if n := h.st.count("hook", store.Running); n != 0 {
		t.Fatalf("%d deliveries claimed after the breaker opened, want 0", n)
	}
	if n := g.n.Load(); n != 3 {
		t.Fatalf("Send called %d times before the breaker opened, want 3", n)
	}
	if got := h.s.State("hook"); got != StateCircuitOpen || breakerGauge() != 2 {
		t.Fatalf("State %q gauge %v, want circuit_open and 2", got, breakerGauge())
	}

	// A reload to 4 slots keeps the breaker open; nothing is sent while open.
	pol.Concurrency = 4
	mark := h.clk.Created()
	h.s.Apply([]Target{schedTarget("hook", g, pol)})
	h.parkedSince(mark, 1)
	mark = h.clk.Created()
	h.s.Wake("hook") // new work arrives: still nothing is claimed
	h.parkedSince(mark, 1)
	h.clk.Advance(10*time.Second - time.Millisecond)
	h.parked(1)
	if n := h.st.count("hook", store.Running); n != 0 {
		t.Fatalf("%d deliveries claimed while open, want 0", n)
	}

	// Half-open: exactly one probe although 4 slots are free and 5 are due.
	mark = h.advance(time.Millisecond)
	probe := g.next(t)
	h.parkedSince(mark, 1)
	if n := h.st.count("hook", store.Running); n != 1 {
		t.Fatalf("%d deliveries claimed in half-open, want 1 (the probe)", n)
	}
	if breakerGauge() != 1 || h.s.State("hook") != StateCircuitOpen {
		t.Fatalf("half-open: gauge %v state %q, want 1 and circuit_open", breakerGauge(), h.s.State("hook"))
	}

	// The probe fails: open again for another 10 s.
	probe.reply <- retryResult(503, 0)
	h.feed.wait(t, 4)
	h.parked(1)
	if breakerGauge() != 2 {
		t.Fatalf("gauge %v after a failed probe, want 2", breakerGauge())
	}
	h.clk.Advance(10*time.Second - time.Millisecond)
	h.parked(1)
	if n := h.st.count("hook", store.Running); n != 0 {
		t.Fatalf("%d deliveries claimed while re-opened, want 0", n)
	}

	// The next probe succeeds: closed, and the backlog flows 4 at a time.
	h.clk.Advance(time.Millisecond)
	g.next(t).reply <- okResult()
	for range 4 {
		g.next(t).reply <- okResult()
	}
	for _, id := range []string{"d1", "d2", "d3", "d4", "d5"} {
		h.st.waitState(t, id, store.Delivered)
	}
	if n := g.n.Load(); n != 9 {
		t.Errorf("Send called %d times in all, want 9", n)
	}
	if got := h.s.State("hook"); got != StateHealthy || breakerGauge() != 0 {
		t.Errorf("State %q gauge %v after recovery, want healthy and 0", got, breakerGauge())
	}
}

func TestSchedPauseResume(t *testing.T) {
	h := newSchedHarness(t)
	h.st.add("d1", "hook", schedT0)
	dest := newScriptDest(okResult())
	h.s.Apply([]Target{schedTarget("hook", dest, Policy{})})
	ctx := context.Background()
	if err := h.s.Pause(ctx, "hook"); err != nil {
		t.Fatalf("Pause: %v", err)
	}
	if err := h.s.Pause(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Pause(unknown) = %v, want ErrNotFound", err)
	}
	h.run(1) // the worker exists already; Run loads the stored flag too

	mark := h.clk.Created()
	h.s.Wake("hook")
	h.parkedSince(mark, 1)
	h.parkedSince(h.advance(2*time.Hour), 1)
	if n := h.st.claimCount("hook"); n != 0 {
		t.Fatalf("paused destination claimed %d times, want 0", n)
	}
	if got := h.s.State("hook"); got != StatePaused {
		t.Fatalf("State = %q, want paused", got)
	}
	if p, _ := h.st.Paused(ctx); !p["hook"] {
		t.Fatal("pause not persisted in the store")
	}
	if got := schedGauge(h.metrics.paused.WithLabelValues("hook")); got != 1 {
		t.Fatalf("paused gauge = %v, want 1", got)
	}

	if err := h.s.Resume(ctx, "hook"); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	h.st.waitState(t, "d1", store.Delivered)
	if got := h.s.State("hook"); got != StateHealthy {
		t.Errorf("State = %q after resume, want healthy", got)
	}
	if p, _ := h.st.Paused(ctx); p["hook"] {
		t.Error("resume not persisted in the store")
	}
	if got := schedGauge(h.metrics.paused.WithLabelValues("hook")); got != 0 {
		t.Errorf("paused gauge = %v after resume, want 0", got)
	}
}

func TestSchedPauseLoadedAtStart(t *testing.T) {
	h := newSchedHarness(t)
	h.st.SetPaused(context.Background(), "hook", true)
	h.st.add("d1", "hook", schedT0)
	h.start(schedTarget("hook", newScriptDest(okResult()), Policy{}))
	if n := h.st.claimCount("hook"); n != 0 {
		t.Fatalf("destination paused in the store claimed %d times, want 0", n)
	}
	if got := h.s.State("hook"); got != StatePaused {
		t.Fatalf("State = %q, want paused", got)
	}
}

func TestSchedPauseDestinationResult(t *testing.T) {
	h := newSchedHarness(t)
	h.st.add("d1", "slack", schedT0)
	h.st.add("d2", "slack", schedT0.Add(time.Millisecond))
	slack429 := retryResult(429, 30*time.Second)
	slack429.PauseDestination = true
	dest := newScriptDest(slack429, okResult())
	h.start(schedTarget("slack", dest, Policy{Concurrency: 1, InitialInterval: time.Second}))

	h.feed.wait(t, 1)
	h.parked(1)
	h.clk.Advance(time.Second) // d2 is due, but the destination is held
	mark := h.clk.Created()
	h.s.Wake("slack")
	h.parkedSince(mark, 1)
	h.clk.Advance(28*time.Second + 999*time.Millisecond)
	h.parked(1)
	if got := h.st.get("d2").State; got != store.Pending {
		t.Fatalf("d2 is %s during the 30 s hold, want pending (not claimed)", got)
	}
	if got := h.s.State("hook"); got != StateRemoved {
		t.Fatalf("State(unknown) = %q, want removed", got)
	}
	if got := h.s.State("slack"); got != StateRetrying {
		t.Fatalf("State = %q during the hold, want retrying", got)
	}
	h.clk.Advance(time.Millisecond)
	h.st.waitState(t, "d1", store.Delivered)
	h.st.waitState(t, "d2", store.Delivered)
	calls := dest.called()
	// Oldest due first: d2 (due at t0+1ms) before d1 (its retry, due at t0+30s).
	if len(calls) != 3 || calls[1].ID != "d2" || calls[2].ID != "d1" {
		t.Fatalf("calls after the hold: %d, want d2 then d1", len(calls))
	}
}

func TestSchedApplyRemovesDestination(t *testing.T) {
	h := newSchedHarness(t)
	keep, gone := newScriptDest(okResult()), newScriptDest(okResult())
	h.start(schedTarget("keep", keep, Policy{}), schedTarget("gone", gone, Policy{}))
	claimsBefore := h.st.claimCount("gone")

	h.s.Apply([]Target{schedTarget("keep", keep, Policy{})})
	h.st.add("g1", "gone", schedT0)
	h.st.add("k1", "keep", schedT0)
	mark := h.clk.Created()
	h.s.Wake("gone", "keep")
	h.st.waitState(t, "k1", store.Delivered)
	h.parkedSince(mark, 1)
	h.parkedSince(h.advance(3*time.Hour), 1)

	if n := h.st.claimCount("gone") - claimsBefore; n != 0 {
		t.Fatalf("removed destination claimed %d times, want 0", n)
	}
	if d := h.st.get("g1"); d.State != store.Pending || d.Attempts != 0 {
		t.Fatalf("removed destination's delivery is %s with %d attempts, want pending and untouched", d.State, d.Attempts)
	}
	if got := h.s.State("gone"); got != StateRemoved {
		t.Fatalf("State = %q, want removed", got)
	}
	if n := schedSeries(h.metrics.breaker); n != 1 {
		t.Fatalf("breaker gauge has %d series, want 1 (removed destination dropped)", n)
	}

	// Configured again, it picks its queue up.
	h.s.Apply([]Target{schedTarget("keep", keep, Policy{}), schedTarget("gone", gone, Policy{})})
	h.st.waitState(t, "g1", store.Delivered)
}

func TestSchedApplyChangesAdapterWhileInFlight(t *testing.T) {
	h := newSchedHarness(t)
	h.st.add("d1", "hook", schedT0)
	h.st.add("d2", "hook", schedT0)
	h.clk.Advance(time.Millisecond)
	old, next := newGatedDest(), newScriptDest(okResult())
	h.start(schedTarget("hook", old, Policy{Concurrency: 1}))
	inFlight := old.next(t)
	if inFlight.d.ID != "d1" {
		t.Fatalf("first call for %s, want d1", inFlight.d.ID)
	}

	// New adapter and a second slot: d2 goes to the new adapter at once,
	// while d1 is still in the old one.
	h.s.Apply([]Target{schedTarget("hook", next, Policy{Concurrency: 2})})
	h.st.waitState(t, "d2", store.Delivered)
	if calls := next.called(); len(calls) != 1 || calls[0].ID != "d2" {
		t.Fatalf("new adapter got %d calls, want exactly d2", len(calls))
	}
	if got := h.st.get("d1").State; got != store.Running {
		t.Fatalf("d1 is %s while its Send runs, want running", got)
	}

	inFlight.reply <- okResult()
	h.st.waitState(t, "d1", store.Delivered)
	if n := old.n.Load(); n != 1 {
		t.Fatalf("old adapter called %d times, want 1", n)
	}
	if recs := h.st.records("d1"); len(recs) != 1 || recs[0].Status != "delivered" {
		t.Fatalf("d1 records %+v, want one delivered", recs)
	}
}

func TestSchedShutdown(t *testing.T) {
	h := newSchedHarness(t)
	for _, id := range []string{"d1", "d2", "d3"} {
		h.st.add(id, "hook", schedT0)
	}
	g := newGatedDest()
	h.s.Apply([]Target{schedTarget("hook", g, Policy{Concurrency: 2})})
	runCtx, cancelRun := context.WithCancel(context.Background())
	defer cancelRun()
	runDone := make(chan error, 1)
	go func() { runDone <- h.s.Run(runCtx) }()
	first, second := g.next(t), g.next(t)

	ctx, cancel := context.WithCancel(context.Background())
	shutdownDone := make(chan error, 1)
	go func() { shutdownDone <- h.s.Shutdown(ctx) }()
	<-h.s.halting

	// One attempt finishes within the grace period: it is recorded.
	first.reply <- okResult()
	h.st.waitState(t, first.d.ID, store.Delivered)
	select {
	case err := <-shutdownDone:
		t.Fatalf("Shutdown returned %v with an attempt still in flight", err)
	default:
	}

	// The deadline passes: the other is cancelled and released, unrecorded.
	cancel()
	if err := <-shutdownDone; !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown = %v, want context.Canceled", err)
	}
	if second.ctx.Err() == nil {
		t.Error("the unfinished Send's context was not cancelled")
	}
	if d := h.st.get(second.d.ID); d.State != store.Pending || d.Attempts != 0 || len(h.st.records(second.d.ID)) != 0 {
		t.Errorf("unfinished delivery is %s with %d attempts, want pending, released, no record", d.State, d.Attempts)
	}
	if d := h.st.get("d3"); d.State != store.Pending {
		t.Errorf("d3 is %s, want pending: nothing is claimed during shutdown", d.State)
	}
	if err := <-runDone; err != nil {
		t.Errorf("Run = %v, want nil after Shutdown", err)
	}
	if recs := h.feed.all(); len(recs) != 1 || recs[0].DeliveryID != first.d.ID {
		t.Errorf("published %d records, want only the finished attempt's", len(recs))
	}
	if err := h.s.Shutdown(context.Background()); !errors.Is(err, context.Canceled) {
		t.Errorf("second Shutdown = %v, want the first one's result", err)
	}
}

func TestSchedRunContextEndStopsAtOnce(t *testing.T) {
	h := newSchedHarness(t)
	h.st.add("d1", "hook", schedT0)
	g := newGatedDest()
	h.s.Apply([]Target{schedTarget("hook", g, Policy{})})
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- h.s.Run(ctx) }()
	call := g.next(t)

	cancel()
	if err := <-runDone; err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	<-call.ctx.Done()
	if d := h.st.get("d1"); d.State != store.Pending || d.Attempts != 0 {
		t.Fatalf("in-flight delivery is %s with %d attempts, want released", d.State, d.Attempts)
	}
}

// TestSchedCommitFailure: when the store cannot record an attempt, nothing
// is published and the delivery stays leased; when the lease ends it is
// claimed and attempted again (at least once), numbered as if the lost
// attempt never happened.
func TestSchedCommitFailure(t *testing.T) {
	h := newSchedHarness(t)
	h.st.add("d1", "hook", schedT0)
	h.st.mu.Lock()
	h.st.failNext = 1
	h.st.mu.Unlock()
	dest := newScriptDest(okResult())
	pol := Policy{Timeout: 10 * time.Second}
	h.start(schedTarget("hook", dest, pol))
	// After settling the lost attempt the worker claims once more (its batch
	// was full), finds nothing due, and parks.
	schedWaitFor(t, &h.st.sig, "the claim after the failed commit", func() bool { return h.st.claimCount("hook") == 2 })
	h.parked(1)
	if recs := h.feed.all(); len(recs) != 0 {
		t.Fatalf("%d records published for an attempt the store did not record", len(recs))
	}
	if got := h.st.get("d1").State; got != store.Running {
		t.Fatalf("d1 is %s, want still leased", got)
	}

	// The lease (3×10 s + 30 s) ends, the fallback poll comes: attempted again.
	h.clk.Advance(pol.effective(Capabilities{}).lease() + time.Hour)
	recs := h.feed.wait(t, 1)
	h.st.waitState(t, "d1", store.Delivered)
	if len(dest.called()) != 2 || recs[0].Attempt != 1 {
		t.Fatalf("%d calls, record attempt %d; want 2 calls and attempt 1", len(dest.called()), recs[0].Attempt)
	}
}

// TestSchedLeaseLost: an attempt that outlived its lease, taken over by
// another claim meanwhile, is not recorded or published; the delivery is the
// new holder's, and the worker goes on.
func TestSchedLeaseLost(t *testing.T) {
	h := newSchedHarness(t, func(o *SchedulerOptions) { o.Owner = "replica-1" })
	h.st.add("d1", "hook", schedT0)
	h.st.add("d2", "hook", schedT0)
	g := newGatedDest()
	h.start(schedTarget("hook", g, Policy{Concurrency: 1}))

	call := g.next(t)
	if got := h.st.get(call.d.ID).Lease; got.Owner != "replica-1" || got.Token == "" {
		t.Fatalf("lease of the claimed delivery = %+v; want owner replica-1 and a token", got)
	}
	h.st.takeOver(call.d.ID, "replica-2")
	call.reply <- okResult()
	schedWaitFor(t, &h.st.sig, "the refused completion", func() bool { return len(h.st.lostLeases()) == 1 })
	if got := h.st.lostLeases(); got[0] != call.d.ID {
		t.Fatalf("refused completions %v, want %s", got, call.d.ID)
	}
	if d := h.st.get(call.d.ID); d.State != store.Running || d.Attempts != 0 || d.Lease.Owner != "replica-2" {
		t.Fatalf("taken-over delivery = %+v; want running under replica-2, no attempts", d)
	}
	// The slot is free: the other delivery is attempted and recorded.
	next := g.next(t)
	if next.d.ID == call.d.ID {
		t.Fatalf("the taken-over delivery %s was attempted again by its old holder", call.d.ID)
	}
	next.reply <- okResult()
	h.st.waitState(t, next.d.ID, store.Delivered)
	recs := h.feed.wait(t, 1)
	if len(recs) != 1 || recs[0].DeliveryID != next.d.ID {
		t.Fatalf("published %+v; want only %s's record", recs, next.d.ID)
	}
}

func TestSchedDispatchRecords(t *testing.T) {
	long := strings.Repeat("x", 40)
	started := func(i int) time.Time { return schedT0.Add(time.Duration(i) * time.Second) }
	ex := func(i, status int, errText string) destinations.Exchange {
		return destinations.Exchange{
			Request:  destinations.Request{Method: "POST", URL: "https://example.test/hook", Headers: map[string]string{"Authorization": "<secret>"}, Body: long},
			Response: destinations.Response{StatusCode: status, Body: long, Error: errText},
			Started:  started(i), Duration: time.Duration(100*(i+1)) * time.Millisecond,
		}
	}
	retryIn := 5 * time.Second
	tests := []struct {
		name        string
		body        []byte
		result      destinations.Result
		wantStatus  []string
		wantNext    bool // the last record carries NextAttemptAt
		wantCreated []time.Time
		wantError   string // Response.Error of the last record
	}{
		{"library retried, then delivered",
			nil, destinations.Result{Outcome: destinations.Delivered, Exchanges: []destinations.Exchange{ex(0, 500, ""), ex(1, 0, "connection reset"), ex(2, 200, "")}},
			[]string{"retrying", "retrying", "delivered"}, false, []time.Time{started(0), started(1), started(2)}, ""},
		{"library retried, still failing",
			nil, destinations.Result{Outcome: destinations.Retry, Reason: destinations.ReasonServerError, RetryAfter: retryIn, Exchanges: []destinations.Exchange{ex(0, 503, ""), ex(1, 503, "")}},
			[]string{"retrying", "retrying"}, true, []time.Time{started(0), started(1)}, ""},
		{"permanent after a library retry",
			nil, destinations.Result{Outcome: destinations.Permanent, Reason: destinations.ReasonClientError, Message: "bad request: no such channel",
				Exchanges: []destinations.Exchange{ex(0, 503, ""), ex(1, 400, "")}},
			[]string{"retrying", "dead"}, false, []time.Time{started(0), started(1)}, "bad reques" + destinations.TruncatedMarker},
		{"no exchanges: the message is the error",
			nil, destinations.Result{Outcome: destinations.Skipped, Reason: destinations.ReasonSkipped, Message: "no event name for TRANSFER, which is long"},
			[]string{"skipped"}, false, []time.Time{schedT0}, "no event n" + destinations.TruncatedMarker},
		{"body that does not decode",
			[]byte("not json"), destinations.Result{Outcome: destinations.Delivered},
			[]string{"dead"}, false, []time.Time{schedT0}, "destinatio" + destinations.TruncatedMarker},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newSchedHarness(t)
			h.st.addWith(store.Delivery{ID: "d1", EventID: "evt-9", EventType: "INITIAL_PURCHASE", Route: "pro-wins",
				Destination: "hook", Attempts: 2, NextAttemptAt: schedT0, CreatedAt: schedT0, Body: tc.body})
			dest := newScriptDest(tc.result)
			h.start(schedTarget("hook", dest, Policy{MaxBody: 10, MaxAttempts: 20}))

			recs := h.feed.wait(t, len(tc.wantStatus))
			if len(recs) != len(tc.wantStatus) {
				t.Fatalf("%d records, want %d", len(recs), len(tc.wantStatus))
			}
			for i, r := range recs {
				if r.ID == "" || r.DeliveryID != "d1" || r.EventID != "evt-9" || r.EventType != "INITIAL_PURCHASE" ||
					r.Destination != "hook" || r.Route != "pro-wins" {
					t.Errorf("record %d identity: %+v", i, r)
				}
				if r.Attempt != 3+i {
					t.Errorf("record %d attempt %d, want %d", i, r.Attempt, 3+i)
				}
				if r.Status != tc.wantStatus[i] {
					t.Errorf("record %d status %q, want %q", i, r.Status, tc.wantStatus[i])
				}
				if !r.CreatedAt.Equal(tc.wantCreated[i]) {
					t.Errorf("record %d created %v, want %v", i, r.CreatedAt, tc.wantCreated[i])
				}
				last := i == len(recs)-1
				if hasNext := r.NextAttemptAt != nil; hasNext != (last && tc.wantNext) {
					t.Errorf("record %d NextAttemptAt %v, want set only on the last retrying one", i, r.NextAttemptAt)
				}
				if last && tc.wantNext && !r.NextAttemptAt.Equal(schedT0.Add(retryIn)) {
					t.Errorf("NextAttemptAt %v, want t0+%v", r.NextAttemptAt, retryIn)
				}
				if len(tc.result.Exchanges) > 0 {
					want := strings.Repeat("x", 10) + destinations.TruncatedMarker
					if r.Request.Body != want || r.Response.Body != want {
						t.Errorf("record %d bodies %q / %q, want both truncated to %q", i, r.Request.Body, r.Response.Body, want)
					}
					if r.DurationMs != int64(100*(i+1)) {
						t.Errorf("record %d duration %dms, want %d", i, r.DurationMs, 100*(i+1))
					}
					if r.Request.Headers["Authorization"] != "<secret>" {
						t.Errorf("record %d headers %v, want the adapter's redacted headers", i, r.Request.Headers)
					}
				}
				if last && tc.wantError != "" && r.Response.Error != tc.wantError {
					t.Errorf("last record error %q, want %q", r.Response.Error, tc.wantError)
				}
			}
			if got := h.st.get("d1").Attempts; got != 2+len(tc.wantStatus) {
				t.Errorf("stored attempts %d, want %d", got, 2+len(tc.wantStatus))
			}
			if tc.body != nil && len(dest.called()) != 0 {
				t.Error("a body that does not decode reached the adapter")
			}
		})
	}
}

func TestSchedRateLimit(t *testing.T) {
	h := newSchedHarness(t)
	for _, id := range []string{"d1", "d2", "d3", "d4", "d5"} {
		h.st.add(id, "slack", schedT0)
	}
	dest := newScriptDest(okResult())
	h.start(schedTarget("slack", dest, Policy{Concurrency: 4, RateLimit: 2})) // burst 2, then one per 500 ms

	steps := []struct {
		advance   time.Duration
		wantCalls int
	}{
		{0, 2},
		{499 * time.Millisecond, 2},
		{time.Millisecond, 3},
		{499 * time.Millisecond, 3},
		{time.Millisecond, 4},
		{500 * time.Millisecond, 5},
	}
	for i, st := range steps {
		h.clk.Advance(st.advance)
		h.feed.wait(t, st.wantCalls)
		h.parked(1)
		if n, r := h.st.count("slack", store.Delivered), h.st.count("slack", store.Running); n != st.wantCalls || r != 0 {
			t.Fatalf("step %d (+%v): %d delivered and %d claimed, want %d and 0", i, st.advance, n, r, st.wantCalls)
		}
	}
}

func TestSchedIdleAsksStoreOnlyWhenWorkIsPossible(t *testing.T) {
	h := newSchedHarness(t)
	h.start(schedTarget("hook", newScriptDest(okResult()), Policy{}))
	if n := h.st.claimCount("hook"); n != 1 {
		t.Fatalf("%d claims at start, want 1", n)
	}
	h.clk.Advance(59 * time.Minute) // poll interval is 1 h
	h.parked(1)
	if n := h.st.claimCount("hook"); n != 1 {
		t.Fatalf("%d claims while idle, want 1", n)
	}
	mark := h.clk.Created()
	h.s.Wake("hook")
	h.parkedSince(mark, 1)
	if n := h.st.claimCount("hook"); n != 2 {
		t.Fatalf("%d claims after a Wake, want 2", n)
	}
	h.parkedSince(h.advance(time.Hour), 1)
	if n := h.st.claimCount("hook"); n != 3 {
		t.Fatalf("%d claims after the fallback poll, want 3", n)
	}
	for _, l := range h.st.claimLimits {
		if l != 1 { // default concurrency: never the whole backlog
			t.Fatalf("claim limit %d, want 1 (free slots)", l)
		}
	}
}

func TestDeliveryKey(t *testing.T) {
	tests := []struct {
		name          string
		event, dest   string
		otherE, other string
	}{
		{"differs by destination", "ev-1", "segment-prod", "ev-1", "sales-slack"},
		{"differs by event", "ev-1", "segment-prod", "ev-2", "segment-prod"},
		{"separator keeps pairs apart", "ab", "c", "a", "bc"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k := DeliveryKey(tc.event, tc.dest)
			if k != DeliveryKey(tc.event, tc.dest) {
				t.Fatal("key is not deterministic")
			}
			if !strings.HasPrefix(k, "rc-") || len(k) != 35 || strings.Trim(k[3:], "0123456789abcdef") != "" {
				t.Fatalf("key %q, want rc- and 32 lower-case hex digits", k)
			}
			if k == DeliveryKey(tc.otherE, tc.other) {
				t.Fatalf("(%s,%s) and (%s,%s) share key %s", tc.event, tc.dest, tc.otherE, tc.other, k)
			}
		})
	}
	// A fixed value, so a change of the scheme (which would break
	// destination-side dedupe across an upgrade) cannot pass unnoticed.
	if got, want := DeliveryKey("evt_1", "segment"), "rc-"+schedKeyVector; got != want {
		t.Errorf("DeliveryKey(evt_1, segment) = %s, want %s", got, want)
	}
}

// schedKeyVector is printf 'evt_1\0segment' | sha256sum | cut -c1-32.
const schedKeyVector = "b0bfa34e73f78e24e32cab7601b04daa"

// TestSchedYieldsToWebhooks: while the accept path is busy, a destination
// runs fewer attempts at once (SchedulerOptions.Accepting), and still
// delivers everything.
func TestSchedYieldsToWebhooks(t *testing.T) {
	tests := []struct {
		name      string
		accepting int
		want      int // attempts in flight with Concurrency 4
	}{
		{"idle", 0, 4},
		{"below the threshold", BusyWebhooks - 1, 4},
		{"busy", BusyWebhooks, 2},
		{"very busy", 4 * BusyWebhooks, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newSchedHarness(t, func(o *SchedulerOptions) { o.Accepting = func() int { return tt.accepting } })
			const n = 6
			for i := range n {
				h.st.add("d"+strconv.Itoa(i), "a", schedT0)
			}
			g := newGatedDest()
			h.start(schedTarget("a", g, Policy{Concurrency: 4}))
			w := h.s.workers["a"]
			w.mu.Lock()
			inflight := w.inflight
			w.mu.Unlock()
			if inflight != tt.want {
				t.Fatalf("attempts in flight = %d, want %d", inflight, tt.want)
			}
			for range n {
				g.next(t).reply <- okResult()
			}
			for i := range n {
				h.st.waitState(t, "d"+strconv.Itoa(i), store.Delivered)
			}
		})
	}
}
