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
// claims up to claimAhead beyond its free slots, leases those for the wait
// behind the slots, starts no more than Concurrency, and hands back what has
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
			// 64 behind 2 slots: 32 rounds of one Send each, then its own.
			want = want.Add(time.Duration(claimAhead/2) * p.sendBudget())
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
