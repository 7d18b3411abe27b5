package delivery

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/rcrouter/rcrouter/internal/store"
)

// TestSchedClaimsAheadUnderBacklog: once a claim comes back full, the worker
// claims up to claimAhead beyond its free slots, leases those for one Send
// budget more than the ones that start at once, starts no more than Concurrency, and hands back what has
// not started when the destination is paused.
func TestSchedClaimsAheadUnderBacklog(t *testing.T) {
	h := newSchedHarness(t)
	for i := range 100 {
		h.st.add(fmt.Sprintf("d%03d", i), "hook", schedT0)
	}
	g := newGatedDest()
	pol := Policy{Concurrency: 2, Timeout: 10 * time.Second}
	h.start(schedTarget("hook", g, pol))

	h.st.mu.Lock()
	limits := slices.Clone(h.st.claimLimits)
	h.st.mu.Unlock()
	if want := []int{2, claimAhead}; !slices.Equal(limits, want) {
		t.Fatalf("claim limits %v, want %v (the free slots, then claimAhead more)", limits, want)
	}
	if n := h.st.count("hook", store.Running); n != 2+claimAhead {
		t.Fatalf("%d deliveries leased, want %d", n, 2+claimAhead)
	}
	first, second := g.next(t), g.next(t)
	if n := g.n.Load(); n != 2 {
		t.Fatalf("%d Sends started, want 2 (Concurrency)", n)
	}
	p := pol.effective(Capabilities{})
	for i := range 2 + claimAhead {
		want := schedT0.Add(p.lease())
		if i >= 2 {
			// Behind the slots, however many: one Send budget more.
			want = want.Add(p.sendBudget())
		}
		if got := h.st.get(fmt.Sprintf("d%03d", i)).NextAttemptAt; !got.Equal(want) {
			t.Fatalf("d%03d leased until %v, want %v", i, got, want)
		}
	}

	mark := h.clk.Created()
	if err := h.s.Pause(context.Background(), "hook"); err != nil {
		t.Fatal(err)
	}
	h.parkedSince(mark, 1)
	if r, p := h.st.count("hook", store.Running), h.st.count("hook", store.Pending); r != 2 || p != 98 {
		t.Fatalf("paused: %d running and %d pending, want 2 in flight and 98 handed back", r, p)
	}
	// The two in flight finish; nothing else starts while paused.
	first.reply <- okResult()
	second.reply <- okResult()
	h.feed.wait(t, 2)
	h.parked(1)
	if n := g.n.Load(); n != 2 {
		t.Fatalf("%d Sends while paused, want 2", n)
	}
}

// TestSchedSlotRunsNextReady: a slot whose Send returns starts the next ready
// delivery itself, without waiting for the commit of the one before.
func TestSchedSlotRunsNextReady(t *testing.T) {
	h := newSchedHarness(t)
	for i := range 10 {
		h.st.add(fmt.Sprintf("d%03d", i), "hook", schedT0)
	}
	g := newGatedDest()
	h.start(schedTarget("hook", g, Policy{Concurrency: 1}))
	for i := range 10 {
		c := g.next(t)
		if want := fmt.Sprintf("d%03d", i); c.d.ID != want {
			t.Fatalf("Send %d got %s, want %s (oldest due first)", i, c.d.ID, want)
		}
		c.reply <- okResult()
	}
	for i := range 10 {
		h.st.waitState(t, fmt.Sprintf("d%03d", i), store.Delivered)
	}
	if n := g.n.Load(); n != 10 {
		t.Fatalf("%d Sends, want 10", n)
	}
}

// TestSchedHandsBackStaleClaimedAhead: deliveries claimed ahead that wait
// behind hanging Sends until their lease no longer leaves a Timeout for
// their own Send are handed back, at that moment (the worker wakes for it),
// and not before; the Sends in flight are left alone.
func TestSchedHandsBackStaleClaimedAhead(t *testing.T) {
	h := newSchedHarness(t)
	for i := range 100 {
		h.st.add(fmt.Sprintf("d%03d", i), "hook", schedT0)
	}
	g := newGatedDest()
	pol := Policy{Concurrency: 2, Timeout: 10 * time.Second}
	h.start(schedTarget("hook", g, pol))
	first, second := g.next(t), g.next(t)
	p := pol.effective(Capabilities{})
	staleAt := schedT0.Add(p.lease() + p.sendBudget() - leaseMargin - p.Timeout)

	// Just before: the worker's timer is set for staleAt, nothing moves.
	h.advance(staleAt.Sub(schedT0) - time.Millisecond)
	h.parked(1)
	h.st.mu.Lock()
	early := len(h.st.released)
	h.st.mu.Unlock()
	if early != 0 {
		t.Fatalf("%d handed back before their lease ran short, want 0", early)
	}

	h.advance(time.Millisecond)
	schedWaitFor(t, &h.st.sig, "the claimed-ahead deliveries handed back", func() bool {
		h.st.mu.Lock()
		defer h.st.mu.Unlock()
		return len(h.st.released) == claimAhead
	})
	h.st.mu.Lock()
	released := slices.Clone(h.st.released)
	h.st.mu.Unlock()
	slices.Sort(released)
	for i, id := range released {
		if want := fmt.Sprintf("d%03d", i+2); id != want {
			t.Fatalf("handed back %v, want d002 to d%03d (the ones not started)", released, claimAhead+1)
		}
	}
	for _, c := range []gatedCall{first, second} {
		if got := h.st.get(c.d.ID).State; got != store.Running {
			t.Fatalf("%s in flight is %s, want running (its lease is its own)", c.d.ID, got)
		}
	}
	if n := g.n.Load(); n != 2 {
		t.Fatalf("%d Sends started, want 2 (Concurrency)", n)
	}
	// Nothing more starts: the two in flight finish and the test ends.
	if err := h.s.Pause(context.Background(), "hook"); err != nil {
		t.Fatal(err)
	}
	first.reply <- okResult()
	second.reply <- okResult()
	h.feed.wait(t, 2)
}
