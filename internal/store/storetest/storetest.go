// Package storetest is the conformance suite of store.Store: every
// implementation (SQLite, PostgreSQL) runs Run from its own tests.
//
// The suite pins the behaviour the interface leaves to prose:
//   - times are kept to the millisecond and returned in UTC;
//   - a lease has expired at leaseUntil (Claim at now == leaseUntil takes it);
//   - Claim returns the oldest due first (next_attempt_at, or lease_until for
//     an expired lease);
//   - Complete rejects an unknown delivery with ErrNotFound and records
//     nothing then, and assigns Dispatch IDs in place;
//   - a lease is fenced by the next claim of its delivery, by any owner: the
//     old holder's Complete is refused with a *LeaseLostError, writes
//     nothing, and the rest of its batch commits; its Release is a no-op;
//     until taken over, an expired lease still completes;
//   - concurrent claims of one destination are disjoint;
//   - LastError is the error of the failed completion with the latest
//     FinishedAt;
//   - Purge counts dispatch records, events and deliveries deleted, and
//     deletes oldest first, at most limit dispatch records and limit events
//     per call;
//   - Events lists newest first by (received_at, id), finds an event by
//     each of its UserIDs and TransactionIDs (ignoring empty and repeated
//     ones), and forgets a purged event;
//   - RouteMatches counts the matched verdicts of the stored routes JSON of
//     events received at or after since;
//   - DispatchBuckets returns every bucket of the window, oldest first,
//     counting delivered, retrying (failed) and dead records of the one
//     destination, with nearest-rank p50/p95 of their durations;
//   - Migrate reaches store.SchemaVersion and may be called again;
//   - Close may be called more than once; afterwards calls fail with ErrClosed.
//
// Single-process rules (the SQLite store's start-up ReleaseAll) and the
// upgrade of an existing database are tested by each store's own package.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rcrouter/rcrouter/destinations"
	"github.com/rcrouter/rcrouter/internal/store"
)

// Run runs the suite. open returns a new, empty store for one subtest and
// arranges for it to be closed (t.Cleanup) when the subtest ends.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, open func(t *testing.T) store.Store)
	}{
		{"Ingest", testIngest},
		{"IngestDuplicate", testIngestDuplicate},
		{"IngestConcurrentSameID", testIngestConcurrentSameID},
		{"Claim", testClaim},
		{"Complete", testComplete},
		{"CompleteAttemptsAndDispatchRoundtrip", testCompleteRoundtrip},
		{"CompleteSpentLease", testCompleteSpentLease},
		{"CompleteRejects", testCompleteRejects},
		{"Leases", testLeases},
		{"CompleteBatchLostLease", testCompleteBatchLostLease},
		{"ClaimConcurrent", testClaimConcurrent},
		{"Release", testRelease},
		{"ReleaseFencing", testReleaseFencing},
		{"Migrate", testMigrate},
		{"Retry", testRetry},
		{"Replay", testReplay},
		{"DispatchesFilters", testDispatchesFilters},
		{"DispatchesPagination", testDispatchesPagination},
		{"DispatchesLimits", testDispatchesLimits},
		{"DispatchesBadCursor", testDispatchesBadCursor},
		{"EventsPagination", testEventsPagination},
		{"EventsFilters", testEventsFilters},
		{"EventsBadCursor", testEventsBadCursor},
		{"EventsPurged", testEventsPurged},
		{"RouteMatches", testRouteMatches},
		{"DispatchBuckets", testDispatchBuckets},
		{"Stats", testStats},
		{"Paused", testPaused},
		{"Purge", testPurge},
		{"DispatchBodyOfEvent", testDispatchBodyOfEvent},
		{"PingAndClose", testPingAndClose},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open) })
	}
}

// t0 is the suite's "now"; every time is derived from it, to the millisecond.
var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

const lease = 30 * time.Second

// h wraps a store with helpers that fail the test on unexpected errors.
type h struct {
	t *testing.T
	s store.Store
}

func newH(t *testing.T, open func(t *testing.T) store.Store) *h {
	t.Helper()
	return &h{t: t, s: open(t)}
}

func body(id string) []byte {
	return []byte(`{"api_version":"1.0","event":{"id":"` + id + `","type":"RENEWAL"}}`)
}

// ingest stores an event of type RENEWAL routed by route "r" to dests.
func (h *h) ingest(id string, received time.Time, dests ...string) {
	h.t.Helper()
	h.ingestType(id, "RENEWAL", received, dests...)
}

func (h *h) ingestType(id, typ string, received time.Time, dests ...string) {
	h.t.Helper()
	e := store.NewEvent{ID: id, Type: typ, ReceivedAt: received, Body: body(id)}
	for _, d := range dests {
		e.Deliveries = append(e.Deliveries, store.NewDelivery{Destination: d, Route: "r-" + d})
	}
	created, err := h.s.Ingest(h.t.Context(), e)
	if err != nil || !created {
		h.t.Fatalf("Ingest(%s) = %v, %v; want true, nil", id, created, err)
	}
}

// owner is the claiming owner of the suite's helpers.
const owner = "replica-1"

func (h *h) claim(dest string, now time.Time, limit int) []store.Delivery {
	h.t.Helper()
	return h.claimBy(owner, dest, now, limit)
}

func (h *h) claimBy(who, dest string, now time.Time, limit int) []store.Delivery {
	h.t.Helper()
	ds, err := h.s.Claim(h.t.Context(), who, dest, now, now.Add(lease), limit)
	if err != nil {
		h.t.Fatalf("Claim(%s, %s, %v): %v", who, dest, now, err)
	}
	return ds
}

// claimOne claims at now and wants exactly the delivery of eventID.
func (h *h) claimOne(dest string, now time.Time, eventID string) store.Delivery {
	h.t.Helper()
	ds := h.claim(dest, now, 1)
	if len(ds) != 1 || ds[0].EventID != eventID {
		h.t.Fatalf("Claim(%s, %v) = %v; want the delivery of %s", dest, now, eventIDs(ds), eventID)
	}
	return ds[0]
}

func (h *h) complete(cs ...store.Completion) {
	h.t.Helper()
	if err := h.s.Complete(h.t.Context(), cs); err != nil {
		h.t.Fatalf("Complete: %v", err)
	}
}

// finish claims the delivery of eventID to dest at now and completes it in
// state with one dispatch record of that status (skipped and delivered
// included) created at now.
func (h *h) finish(dest, eventID string, now time.Time, state store.State, lastErr string) store.Delivery {
	h.t.Helper()
	d := h.claimOne(dest, now, eventID)
	c := store.Completion{DeliveryID: d.ID, LeaseToken: d.Lease.Token, State: state, LastError: lastErr, FinishedAt: now,
		Dispatches: []store.Dispatch{{Attempt: d.Attempts + 1, Status: string(state), CreatedAt: now}}}
	if state == store.Retrying {
		c.NextAttemptAt = now.Add(2 * time.Hour)
	}
	h.complete(c)
	return d
}

func (h *h) delivery(id string) store.Delivery {
	h.t.Helper()
	d, err := h.s.Delivery(h.t.Context(), id)
	if err != nil {
		h.t.Fatalf("Delivery(%s): %v", id, err)
	}
	return d
}

// deliveryOf returns the delivery of eventID to dest.
func (h *h) deliveryOf(eventID, dest string) store.Delivery {
	h.t.Helper()
	ds, err := h.s.EventDeliveries(h.t.Context(), eventID)
	if err != nil {
		h.t.Fatalf("EventDeliveries(%s): %v", eventID, err)
	}
	for _, d := range ds {
		if d.Destination == dest {
			return d
		}
	}
	h.t.Fatalf("event %s has no delivery to %s", eventID, dest)
	return store.Delivery{}
}

func (h *h) dispatches(f store.DispatchFilter) ([]store.Dispatch, string) {
	h.t.Helper()
	items, next, err := h.s.Dispatches(h.t.Context(), f)
	if err != nil {
		h.t.Fatalf("Dispatches(%+v): %v", f, err)
	}
	return items, next
}

func eventIDs(ds []store.Delivery) []string {
	out := []string{}
	for _, d := range ds {
		out = append(out, d.EventID)
	}
	return out
}

func dispatchIDs(ds []store.Dispatch) []string {
	out := []string{}
	for _, d := range ds {
		out = append(out, d.ID)
	}
	return out
}

func timePtr(t time.Time) *time.Time { return &t }

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

func testIngest(t *testing.T, open func(t *testing.T) store.Store) {
	routes := json.RawMessage(`[{"name":"r1","matched":true,"reason":"type"}]`)
	tests := []struct {
		name    string
		in      store.NewEvent
		wantErr bool
		want    []store.Delivery // ID is not compared
	}{
		{
			name: "routed to two destinations",
			in: store.NewEvent{ID: "evt-1", Type: "RENEWAL", ReceivedAt: t0, Body: body("evt-1"), Routes: routes,
				Deliveries: []store.NewDelivery{{Destination: "b", Route: "r2"}, {Destination: "a", Route: "r1"}}},
			want: []store.Delivery{
				{EventID: "evt-1", EventType: "RENEWAL", Destination: "a", Route: "r1", State: store.Pending, NextAttemptAt: t0, CreatedAt: t0, UpdatedAt: t0},
				{EventID: "evt-1", EventType: "RENEWAL", Destination: "b", Route: "r2", State: store.Pending, NextAttemptAt: t0, CreatedAt: t0, UpdatedAt: t0},
			},
		},
		{
			name: "unrouted: stored without deliveries",
			in:   store.NewEvent{ID: "evt-2", Type: "TEST", ReceivedAt: t0, Body: body("evt-2"), Routes: json.RawMessage(`[]`)},
		},
		{
			name: "no route verdicts",
			in:   store.NewEvent{ID: "evt-3", Type: "TEST", ReceivedAt: t0, Body: body("evt-3")},
		},
		{
			name:    "empty id",
			in:      store.NewEvent{Type: "TEST", ReceivedAt: t0, Body: body("")},
			wantErr: true,
		},
		{
			name: "destination named twice",
			in: store.NewEvent{ID: "evt-4", Type: "TEST", ReceivedAt: t0, Body: body("evt-4"),
				Deliveries: []store.NewDelivery{{Destination: "a", Route: "r1"}, {Destination: "a", Route: "r2"}}},
			wantErr: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newH(t, open)
			created, err := h.s.Ingest(t.Context(), tt.in)
			if tt.wantErr {
				if err == nil || created {
					t.Fatalf("Ingest = %v, %v; want an error", created, err)
				}
				if tt.in.ID != "" {
					if _, err := h.s.Event(t.Context(), tt.in.ID); !errors.Is(err, store.ErrNotFound) {
						t.Fatalf("Event after a refused ingest: err = %v, want ErrNotFound", err)
					}
				}
				return
			}
			if err != nil || !created {
				t.Fatalf("Ingest = %v, %v; want true, nil", created, err)
			}
			e, err := h.s.Event(t.Context(), tt.in.ID)
			if err != nil {
				t.Fatal(err)
			}
			want := store.Event{ID: tt.in.ID, Type: tt.in.Type, ReceivedAt: tt.in.ReceivedAt, Body: tt.in.Body, Routes: tt.in.Routes}
			if !reflect.DeepEqual(e, want) {
				t.Fatalf("Event = %+v\nwant    %+v", e, want)
			}
			ds, err := h.s.EventDeliveries(t.Context(), tt.in.ID)
			if err != nil {
				t.Fatal(err)
			}
			if len(ds) != len(tt.want) {
				t.Fatalf("EventDeliveries = %d rows, want %d", len(ds), len(tt.want))
			}
			sort.Slice(ds, func(i, j int) bool { return ds[i].Destination < ds[j].Destination })
			ids := map[string]bool{}
			for i, d := range ds {
				if d.ID == "" || ids[d.ID] {
					t.Fatalf("delivery id %q is empty or repeated", d.ID)
				}
				ids[d.ID] = true
				got, err := h.s.Delivery(t.Context(), d.ID)
				if err != nil || !reflect.DeepEqual(got, d) {
					t.Fatalf("Delivery(%s) = %+v, %v; want %+v", d.ID, got, err, d)
				}
				d.ID = ""
				if !reflect.DeepEqual(d, tt.want[i]) {
					t.Fatalf("delivery %d = %+v\nwant         %+v", i, d, tt.want[i])
				}
			}
		})
	}
}

func testIngestDuplicate(t *testing.T, open func(t *testing.T) store.Store) {
	h := newH(t, open)
	h.ingest("evt-1", t0, "a", "b")
	first, err := h.s.EventDeliveries(t.Context(), "evt-1")
	if err != nil {
		t.Fatal(err)
	}
	again := store.NewEvent{ID: "evt-1", Type: "CANCELLATION", ReceivedAt: at(time.Hour), Body: []byte(`{}`),
		Deliveries: []store.NewDelivery{{Destination: "c", Route: "r-c"}}}
	created, err := h.s.Ingest(t.Context(), again)
	if err != nil || created {
		t.Fatalf("second Ingest = %v, %v; want false, nil", created, err)
	}
	e, err := h.s.Event(t.Context(), "evt-1")
	if err != nil {
		t.Fatal(err)
	}
	if e.Type != "RENEWAL" || string(e.Body) != string(body("evt-1")) || !e.ReceivedAt.Equal(t0) {
		t.Fatalf("duplicate changed the event: %+v", e)
	}
	after, err := h.s.EventDeliveries(t.Context(), "evt-1")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(after, first) {
		t.Fatalf("duplicate changed the deliveries:\n%+v\nwant\n%+v", after, first)
	}
}

func testIngestConcurrentSameID(t *testing.T, open func(t *testing.T) store.Store) {
	h := newH(t, open)
	const n = 20
	start := make(chan struct{})
	type result struct {
		created bool
		err     error
	}
	results := make(chan result, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			created, err := h.s.Ingest(t.Context(), store.NewEvent{ID: "evt-same", Type: "RENEWAL", ReceivedAt: t0,
				Body: body("evt-same"), Deliveries: []store.NewDelivery{{Destination: "a", Route: "r"}, {Destination: "b", Route: "r"}}})
			results <- result{created, err}
		}()
	}
	close(start)
	wg.Wait()
	close(results)
	createdCount := 0
	for r := range results {
		if r.err != nil {
			t.Fatalf("Ingest: %v", r.err)
		}
		if r.created {
			createdCount++
		}
	}
	if createdCount != 1 {
		t.Fatalf("%d of %d concurrent ingests created the event, want exactly 1", createdCount, n)
	}
	ds, err := h.s.EventDeliveries(t.Context(), "evt-same")
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 2 {
		t.Fatalf("EventDeliveries = %d rows, want 2", len(ds))
	}
}

func testClaim(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		run  func(t *testing.T, h *h)
	}{
		{"due only, oldest first, inclusive of now", func(t *testing.T, h *h) {
			h.ingest("e1", at(0), "a")
			h.ingest("e2", at(2*time.Minute), "a")
			h.ingest("e3", at(time.Minute), "a")
			now := at(time.Minute)
			ds := h.claim("a", now, 10)
			if got, want := eventIDs(ds), []string{"e1", "e3"}; !reflect.DeepEqual(got, want) {
				t.Fatalf("claimed %v, want %v", got, want)
			}
			for _, d := range ds {
				if d.State != store.Running || string(d.Body) != string(body(d.EventID)) || d.EventType != "RENEWAL" ||
					d.Destination != "a" || d.Route != "r-a" || !d.UpdatedAt.Equal(now) {
					t.Fatalf("claimed delivery = %+v", d)
				}
				if got := h.delivery(d.ID); got.State != store.Running {
					t.Fatalf("stored state after claim = %s, want running", got.State)
				}
			}
			if got := eventIDs(h.claim("a", now, 10)); len(got) != 0 {
				t.Fatalf("second claim took %v, want nothing", got)
			}
		}},
		{"limit", func(t *testing.T, h *h) {
			for i := 0; i < 5; i++ {
				h.ingest(fmt.Sprintf("e%d", i), at(time.Duration(i)*time.Second), "a")
			}
			now := at(time.Minute)
			for _, want := range [][]string{{"e0", "e1"}, {"e2", "e3"}, {"e4"}, {}} {
				if got := eventIDs(h.claim("a", now, 2)); !reflect.DeepEqual(got, want) {
					t.Fatalf("claimed %v, want %v", got, want)
				}
			}
		}},
		{"limit zero claims nothing", func(t *testing.T, h *h) {
			h.ingest("e1", at(0), "a")
			if got := h.claim("a", at(0), 0); len(got) != 0 {
				t.Fatalf("claimed %v with limit 0", eventIDs(got))
			}
			h.claimOne("a", at(0), "e1")
		}},
		{"expired lease is claimed again", func(t *testing.T, h *h) {
			h.ingest("e1", at(0), "a")
			first := h.claimOne("a", at(0), "e1")
			if got := h.claim("a", at(lease-time.Millisecond), 10); len(got) != 0 {
				t.Fatalf("claimed %v before the lease ended", eventIDs(got))
			}
			again := h.claimOne("a", at(lease), "e1")
			if again.ID != first.ID || again.Attempts != 0 {
				t.Fatalf("reclaimed %+v, want delivery %s with 0 attempts", again, first.ID)
			}
			if got := h.claim("a", at(lease+time.Second), 10); len(got) != 0 {
				t.Fatalf("claimed %v under the new lease", eventIDs(got))
			}
		}},
		{"destinations are isolated", func(t *testing.T, h *h) {
			h.ingest("e1", at(0), "a", "b")
			h.ingest("e2", at(time.Second), "b")
			ds := h.claim("b", at(time.Minute), 10)
			if got, want := eventIDs(ds), []string{"e1", "e2"}; !reflect.DeepEqual(got, want) {
				t.Fatalf("claimed %v for b, want %v", got, want)
			}
			for _, d := range ds {
				if d.Destination != "b" {
					t.Fatalf("claim for b returned a delivery to %s", d.Destination)
				}
			}
			h.claimOne("a", at(time.Minute), "e1")
		}},
		{"bad lease", func(t *testing.T, h *h) {
			h.ingest("e1", at(0), "a")
			if _, err := h.s.Claim(t.Context(), owner, "a", at(0), at(0), 1); err == nil {
				t.Fatal("Claim with leaseUntil == now succeeded")
			}
			h.claimOne("a", at(0), "e1")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, newH(t, open)) })
	}
}

func testComplete(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name        string
		state       store.State
		lastErr     string
		wantNext    time.Time  // NextAttemptAt after completion
		claimableAt *time.Time // nil: never claimable again
		delivered   bool
	}{
		{name: "delivered", state: store.Delivered, wantNext: t0, delivered: true},
		{name: "retrying", state: store.Retrying, lastErr: "server_error: HTTP 503", wantNext: at(5 * time.Minute), claimableAt: timePtr(at(5 * time.Minute))},
		{name: "dead", state: store.Dead, lastErr: "client_error: HTTP 400", wantNext: t0},
		{name: "skipped", state: store.Skipped, lastErr: "no Segment event name for TRANSFER", wantNext: t0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newH(t, open)
			h.ingest("e1", t0, "a")
			d := h.claimOne("a", t0, "e1")
			finished := at(time.Second)
			c := store.Completion{DeliveryID: d.ID, LeaseToken: d.Lease.Token, State: tt.state, LastError: tt.lastErr, FinishedAt: finished,
				Dispatches: []store.Dispatch{{Attempt: 1, Status: string(tt.state), CreatedAt: t0}}}
			if tt.state == store.Retrying {
				c.NextAttemptAt = tt.wantNext
			}
			h.complete(c)
			got := h.delivery(d.ID)
			want := store.Delivery{ID: d.ID, EventID: "e1", EventType: "RENEWAL", Destination: "a", Route: "r-a",
				State: tt.state, Attempts: 1, Tries: 1, NextAttemptAt: tt.wantNext, CreatedAt: t0, UpdatedAt: finished, LastError: tt.lastErr}
			if tt.delivered {
				want.DeliveredAt = timePtr(finished)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("Delivery = %+v\nwant       %+v", got, want)
			}
			if tt.claimableAt == nil {
				if ds := h.claim("a", at(1000*time.Hour), 10); len(ds) != 0 {
					t.Fatalf("a %s delivery was claimed", tt.state)
				}
				return
			}
			if ds := h.claim("a", tt.claimableAt.Add(-time.Millisecond), 10); len(ds) != 0 {
				t.Fatal("a retrying delivery was claimed before next_attempt_at")
			}
			h.claimOne("a", *tt.claimableAt, "e1")
		})
	}
}

func testCompleteRoundtrip(t *testing.T, open func(t *testing.T) store.Store) {
	h := newH(t, open)
	h.ingest("e1", t0, "a")
	d := h.claimOne("a", t0, "e1")
	retryAt := at(10 * time.Minute)
	first := []store.Dispatch{
		{
			Attempt: 1, Status: "retrying", DurationMs: 41, CreatedAt: at(time.Second), NextAttemptAt: &retryAt,
			Request: destinations.Request{Method: "POST", URL: "https://hooks.example.com/<secret>",
				Headers: map[string]string{"Content-Type": "application/json", "Idempotency-Key": "k-1"}, Body: `{"x":1}`},
			Response: destinations.Response{StatusCode: 503, Body: "unavailable"},
		},
		{
			Attempt: 2, Status: "retrying", DurationMs: 10000, CreatedAt: at(2 * time.Second), NextAttemptAt: &retryAt,
			Route:    "caller-route", // values the caller set are kept
			Replica:  "caller-replica",
			Request:  destinations.Request{Method: "POST", URL: "https://hooks.example.com/<secret>", Headers: map[string]string{}},
			Response: destinations.Response{Error: "timeout: context deadline exceeded"},
		},
	}
	cs := []store.Completion{{DeliveryID: d.ID, LeaseToken: d.Lease.Token, State: store.Retrying, NextAttemptAt: retryAt, LastError: "timeout",
		FinishedAt: at(3 * time.Second), Dispatches: first}}
	h.complete(cs...)
	for i, dp := range cs[0].Dispatches {
		if dp.ID == "" {
			t.Fatalf("Complete left dispatch %d without an ID", i)
		}
	}
	for i, in := range cs[0].Dispatches {
		want := in
		want.DeliveryID, want.EventID, want.EventType, want.Destination = d.ID, "e1", "RENEWAL", "a"
		if want.Route == "" {
			want.Route = "r-a"
		}
		if want.Replica == "" {
			want.Replica = owner // the lease's owner
		}
		got, err := h.s.Dispatch(t.Context(), in.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("Dispatch %d = %+v\nwant         %+v", i, got, want)
		}
	}
	if _, err := h.s.Dispatch(t.Context(), "no-such-dispatch"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Dispatch(unknown) err = %v, want ErrNotFound", err)
	}

	d = h.claimOne("a", retryAt, "e1")
	if d.Attempts != 2 {
		t.Fatalf("Attempts after 2 records = %d", d.Attempts)
	}
	h.complete(store.Completion{DeliveryID: d.ID, LeaseToken: d.Lease.Token, State: store.Delivered, FinishedAt: at(11 * time.Minute),
		Dispatches: []store.Dispatch{{Attempt: 3, Status: "delivered", CreatedAt: retryAt,
			Response: destinations.Response{StatusCode: 200, Body: "ok"}}}})
	got := h.delivery(d.ID)
	if got.Attempts != 3 || got.State != store.Delivered || got.LastError != "" {
		t.Fatalf("after delivery: %+v; want delivered, 3 attempts, no error", got)
	}
}

func testCompleteSpentLease(t *testing.T, open func(t *testing.T) store.Store) {
	h := newH(t, open)
	h.ingest("e1", t0, "a")
	d := h.claimOne("a", t0, "e1")
	h.complete(store.Completion{DeliveryID: d.ID, LeaseToken: d.Lease.Token, State: store.Delivered, FinishedAt: at(time.Second),
		Dispatches: []store.Dispatch{{Attempt: 1, Status: "delivered", CreatedAt: t0}}})
	// A second completion of the same lease: it was spent by the first.
	late := []store.Dispatch{{Attempt: 2, Status: "retrying", CreatedAt: at(2 * time.Second)}}
	err := h.s.Complete(t.Context(), []store.Completion{{DeliveryID: d.ID, LeaseToken: d.Lease.Token, State: store.Retrying,
		NextAttemptAt: at(time.Hour), LastError: "boom", FinishedAt: at(3 * time.Second), Dispatches: late}})
	wantLost(t, err, d.ID)
	got := h.delivery(d.ID)
	if got.State != store.Delivered || !sameTime(got.DeliveredAt, timePtr(at(time.Second))) || got.LastError != "" ||
		!got.NextAttemptAt.Equal(t0) || got.Attempts != 1 || got.Tries != 1 {
		t.Fatalf("after a spent lease's completion: %+v; want delivered at %v, no error, 1 attempt", got, at(time.Second))
	}
	h.wantNoDispatch(late[0].ID)
	if items, _ := h.dispatches(store.DispatchFilter{}); len(items) != 1 {
		t.Fatalf("dispatch log holds %d records, want only the delivered one", len(items))
	}
}

// wantLost fails unless err is a *store.LeaseLostError naming exactly ids.
func wantLost(t *testing.T, err error, ids ...string) {
	t.Helper()
	var lost *store.LeaseLostError
	if !errors.Is(err, store.ErrLeaseLost) || !errors.As(err, &lost) {
		t.Fatalf("Complete err = %v, want a *LeaseLostError", err)
	}
	if !reflect.DeepEqual(lost.DeliveryIDs, ids) {
		t.Fatalf("LeaseLostError names %v, want %v", lost.DeliveryIDs, ids)
	}
	for _, id := range ids {
		if !lost.Lost(id) {
			t.Fatalf("LeaseLostError.Lost(%s) = false", id)
		}
	}
}

// wantNoDispatch fails if a refused completion's record was stored. A store
// may or may not have assigned it an id.
func (h *h) wantNoDispatch(id string) {
	h.t.Helper()
	if id == "" {
		return
	}
	if _, err := h.s.Dispatch(h.t.Context(), id); !errors.Is(err, store.ErrNotFound) {
		h.t.Fatalf("Dispatch(%s) of a refused completion: err = %v, want ErrNotFound", id, err)
	}
}

func testCompleteRejects(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name     string
		second   store.Completion // after a valid completion of e1
		notFound bool
	}{
		{name: "unknown delivery", second: store.Completion{DeliveryID: "no-such-delivery", LeaseToken: "t", State: store.Delivered}, notFound: true},
		{name: "not a completion state", second: store.Completion{State: store.Pending}},
		{name: "no lease token", second: store.Completion{State: store.Delivered}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newH(t, open)
			h.ingest("e1", t0, "a")
			d := h.claimOne("a", t0, "e1")
			if tt.second.DeliveryID == "" {
				tt.second.DeliveryID = d.ID
			}
			if tt.second.LeaseToken == "" && tt.second.State == store.Pending {
				tt.second.LeaseToken = d.Lease.Token
			}
			err := h.s.Complete(t.Context(), []store.Completion{
				{DeliveryID: d.ID, LeaseToken: d.Lease.Token, State: store.Delivered, FinishedAt: at(time.Second),
					Dispatches: []store.Dispatch{{Attempt: 1, Status: "delivered", CreatedAt: t0}}},
				tt.second,
			})
			if err == nil || errors.Is(err, store.ErrNotFound) != tt.notFound || errors.Is(err, store.ErrLeaseLost) {
				t.Fatalf("Complete err = %v; want an error (ErrNotFound: %v), not ErrLeaseLost", err, tt.notFound)
			}
			if got := h.delivery(d.ID); got.State != store.Running || got.Attempts != 0 {
				t.Fatalf("a refused Complete changed the delivery: %+v", got)
			}
			if items, _ := h.dispatches(store.DispatchFilter{}); len(items) != 0 {
				t.Fatalf("a refused Complete recorded %d dispatches", len(items))
			}
		})
	}
}

// testLeases pins fencing: a claim that takes over an expired lease fences
// the older holder, whoever it is, and a holder not taken over keeps its
// lease past expiry.
func testLeases(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name      string
		takeover  string // owner of the second claim; "" for none
		wantTaken bool
	}{
		{name: "another owner takes an expired lease over", takeover: "replica-2", wantTaken: true},
		{name: "the same owner claiming again fences its older attempt", takeover: owner, wantTaken: true},
		{name: "an expired lease nobody took is still held", takeover: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newH(t, open)
			h.ingest("e1", t0, "a")
			first := h.claimOne("a", t0, "e1")
			if l := first.Lease; l.DeliveryID != first.ID || l.Owner != owner || l.Token == "" || !l.Until.Equal(at(lease)) {
				t.Fatalf("Lease = %+v; want delivery %s, owner %s, a token, until %v", l, first.ID, owner, at(lease))
			}
			var second store.Delivery
			if tt.takeover != "" {
				ds := h.claimBy(tt.takeover, "a", at(lease), 10)
				if len(ds) != 1 || ds[0].ID != first.ID {
					t.Fatalf("claim at lease end took %v, want %s", eventIDs(ds), first.ID)
				}
				second = ds[0]
				if second.Lease.Token == first.Lease.Token || second.Lease.Owner != tt.takeover {
					t.Fatalf("takeover lease %+v; want owner %s and a new token (old %q)", second.Lease, tt.takeover, first.Lease.Token)
				}
			}
			old := []store.Dispatch{{Attempt: 1, Status: "delivered", CreatedAt: at(time.Second)}}
			err := h.s.Complete(t.Context(), []store.Completion{{DeliveryID: first.ID, LeaseToken: first.Lease.Token,
				State: store.Delivered, FinishedAt: at(lease + time.Second), Dispatches: old}})
			if !tt.wantTaken {
				if err != nil {
					t.Fatalf("Complete of an expired lease nobody took: %v", err)
				}
				if got := h.delivery(first.ID); got.State != store.Delivered || got.Attempts != 1 {
					t.Fatalf("after Complete: %+v; want delivered, 1 attempt", got)
				}
				return
			}
			wantLost(t, err, first.ID)
			if got := h.delivery(first.ID); got.State != store.Running || got.Attempts != 0 || got.Tries != 0 || got.DeliveredAt != nil {
				t.Fatalf("a fenced Complete changed the delivery: %+v", got)
			}
			h.wantNoDispatch(old[0].ID)
			if items, _ := h.dispatches(store.DispatchFilter{}); len(items) != 0 {
				t.Fatalf("a fenced Complete recorded %d dispatches", len(items))
			}
			// The new holder's completion is unaffected.
			h.complete(store.Completion{DeliveryID: second.ID, LeaseToken: second.Lease.Token, State: store.Retrying,
				NextAttemptAt: at(time.Hour), LastError: "boom", FinishedAt: at(lease + 2*time.Second),
				Dispatches: []store.Dispatch{{Attempt: 1, Status: "retrying", CreatedAt: at(lease)}}})
			if got := h.delivery(first.ID); got.State != store.Retrying || got.Attempts != 1 || got.Tries != 1 || got.LastError != "boom" {
				t.Fatalf("after the new holder's Complete: %+v; want retrying, 1 attempt", got)
			}
		})
	}
}

// testCompleteBatchLostLease: the completions of a batch whose lease holds
// commit; the lost ones are named and write nothing.
func testCompleteBatchLostLease(t *testing.T, open func(t *testing.T) store.Store) {
	h := newH(t, open)
	h.ingest("e1", at(0), "a")
	h.ingest("e2", at(time.Second), "a")
	h.ingest("e3", at(2*time.Second), "a")
	// e1's lease ends at t0+30s, e2's and e3's at t0+40s.
	ds := []store.Delivery{h.claimOne("a", at(0), "e1")}
	ds = append(ds, h.claim("a", at(10*time.Second), 10)...)
	if got := eventIDs(ds); !reflect.DeepEqual(got, []string{"e1", "e2", "e3"}) {
		t.Fatalf("claimed %v", got)
	}
	// replica-2 takes e1 over when its lease ends; e3's holder releases it
	// and replica-2 claims it; e2 stays with its holder.
	if taken := h.claimBy("replica-2", "a", at(lease), 10); len(taken) != 1 || taken[0].EventID != "e1" {
		t.Fatalf("takeover claimed %v, want e1", eventIDs(taken))
	}
	if err := h.s.Release(t.Context(), []store.Lease{ds[2].Lease}, at(lease+time.Second)); err != nil {
		t.Fatal(err)
	}
	if taken := h.claimBy("replica-2", "a", at(lease+time.Second), 10); len(taken) != 1 || taken[0].EventID != "e3" {
		t.Fatalf("claim after the release took %v, want e3", eventIDs(taken))
	}
	cs := make([]store.Completion, len(ds))
	for i, d := range ds {
		cs[i] = store.Completion{DeliveryID: d.ID, LeaseToken: d.Lease.Token, State: store.Delivered, FinishedAt: at(time.Hour),
			Dispatches: []store.Dispatch{{Attempt: 1, Status: "delivered", CreatedAt: at(time.Minute)}}}
	}
	err := h.s.Complete(t.Context(), cs)
	wantLost(t, err, ds[0].ID, ds[2].ID)
	var lost *store.LeaseLostError
	if errors.As(err, &lost) && lost.Lost(ds[1].ID) {
		t.Fatalf("LeaseLostError names %s, whose lease held", ds[1].ID)
	}
	if got := h.delivery(ds[1].ID); got.State != store.Delivered || got.Attempts != 1 {
		t.Fatalf("the held completion of the batch: %+v; want delivered, 1 attempt", got)
	}
	if _, err := h.s.Dispatch(t.Context(), cs[1].Dispatches[0].ID); err != nil {
		t.Fatalf("the held completion's record: %v", err)
	}
	for _, i := range []int{0, 2} {
		if got := h.delivery(ds[i].ID); got.State != store.Running || got.Attempts != 0 {
			t.Fatalf("a lost completion of the batch changed %s: %+v", ds[i].EventID, got)
		}
		h.wantNoDispatch(cs[i].Dispatches[0].ID)
	}
}

// testClaimConcurrent: owners claiming one destination at once never get
// the same delivery, and together get every one.
func testClaimConcurrent(t *testing.T, open func(t *testing.T) store.Store) {
	h := newH(t, open)
	const events, owners, limit = 120, 6, 7
	for i := 0; i < events; i++ {
		h.ingest(fmt.Sprintf("e%03d", i), at(time.Duration(i)*time.Millisecond), "a", "b")
	}
	now := at(time.Second)
	start := make(chan struct{})
	claimed := make([][]store.Delivery, owners)
	errs := make([]error, owners)
	var wg sync.WaitGroup
	for o := 0; o < owners; o++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			who := fmt.Sprintf("replica-%d", o)
			for {
				ds, err := h.s.Claim(t.Context(), who, "a", now, now.Add(lease), limit)
				if err != nil {
					errs[o] = err
					return
				}
				if len(ds) == 0 {
					return
				}
				claimed[o] = append(claimed[o], ds...)
			}
		}()
	}
	close(start)
	wg.Wait()
	seen := map[string]string{}
	for o, ds := range claimed {
		if errs[o] != nil {
			t.Fatalf("owner %d: Claim: %v", o, errs[o])
		}
		for _, d := range ds {
			who := fmt.Sprintf("replica-%d", o)
			if prev, ok := seen[d.ID]; ok {
				t.Fatalf("delivery %s (%s) claimed by %s and %s", d.ID, d.EventID, prev, who)
			}
			if d.Destination != "a" || d.Lease.Owner != who || d.Lease.DeliveryID != d.ID {
				t.Fatalf("owner %s got %+v", who, d)
			}
			seen[d.ID] = who
		}
	}
	if len(seen) != events {
		t.Fatalf("%d deliveries claimed in all, want %d", len(seen), events)
	}
	if ds := h.claim("b", now, events+1); len(ds) != events {
		t.Fatalf("claims of a took deliveries of b: %d left, want %d", len(ds), events)
	}
}

func testRelease(t *testing.T, open func(t *testing.T) store.Store) {
	h := newH(t, open)
	h.ingest("e1", at(0), "a")
	h.ingest("e2", at(time.Second), "a", "b")
	h.ingest("e3", at(2*time.Second), "a")
	h.finish("a", "e1", at(time.Second), store.Retrying, "boom") // retrying until t0+1s+2h
	ds := h.claim("a", at(time.Minute), 10)
	if got := eventIDs(ds); !reflect.DeepEqual(got, []string{"e2", "e3"}) {
		t.Fatalf("claimed %v", got)
	}
	e2b := h.claimOne("b", at(time.Minute), "e2")
	e2a, e3a := ds[0], ds[1]

	// Inside the leases taken at t0+1m, which end at t0+1m30s.
	now := at(time.Minute + 10*time.Second)
	if err := h.s.Release(t.Context(), []store.Lease{e2a.Lease}, now); err != nil {
		t.Fatal(err)
	}
	got := h.delivery(e2a.ID)
	if got.State != store.Pending || !got.NextAttemptAt.Equal(now) {
		t.Fatalf("released delivery = %+v; want pending, due %v", got, now)
	}
	for _, d := range []store.Delivery{e3a, e2b} {
		if got := h.delivery(d.ID); got.State != store.Running {
			t.Fatalf("a delivery not named was released: %+v", got)
		}
	}
	// Due now although its old lease has not ended.
	again := h.claimOne("a", now, "e2")
	if again.Lease.Token == e2a.Lease.Token {
		t.Fatal("a claim after a release reused the released lease's token")
	}
	if err := h.s.Release(t.Context(), nil, now); err != nil {
		t.Fatalf("Release(nil): %v", err)
	}
	if got := h.delivery(e3a.ID); got.State != store.Running {
		t.Fatalf("Release(nil) released %+v", got)
	}
}

// testReleaseFencing: Release leaves alone a delivery its lease no longer
// holds: taken over, completed, or released already.
func testReleaseFencing(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name  string
		after func(h *h, d store.Delivery) // what happens to d's lease before the stale Release
		want  store.State
	}{
		{"taken over after expiry", func(h *h, d store.Delivery) { h.claimBy("replica-2", "a", at(lease), 1) }, store.Running},
		{"taken over by the same owner", func(h *h, d store.Delivery) { h.claimBy(owner, "a", at(lease), 1) }, store.Running},
		{"completed", func(h *h, d store.Delivery) {
			h.complete(store.Completion{DeliveryID: d.ID, LeaseToken: d.Lease.Token, State: store.Dead, LastError: "gone",
				FinishedAt: at(time.Second)})
		}, store.Dead},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newH(t, open)
			h.ingest("e1", t0, "a")
			d := h.claimOne("a", t0, "e1")
			tt.after(h, d)
			before := h.delivery(d.ID)
			if err := h.s.Release(t.Context(), []store.Lease{d.Lease}, at(lease+time.Second)); err != nil {
				t.Fatalf("stale Release: %v", err)
			}
			got := h.delivery(d.ID)
			if got.State != tt.want || !reflect.DeepEqual(got, before) {
				t.Fatalf("a stale Release changed the delivery: %+v\nbefore %+v", got, before)
			}
			if tt.want == store.Running {
				if ds := h.claim("a", at(lease+time.Second), 10); len(ds) != 0 {
					t.Fatalf("the stale Release made %v claimable", eventIDs(ds))
				}
			}
		})
	}
}

func testMigrate(t *testing.T, open func(t *testing.T) store.Store) {
	h := newH(t, open)
	h.ingest("e1", t0, "a")
	for i := 0; i < 2; i++ {
		v, err := h.s.Migrate(t.Context())
		if err != nil || v != store.SchemaVersion {
			t.Fatalf("Migrate #%d = %d, %v; want %d", i+1, v, err, store.SchemaVersion)
		}
	}
	h.claimOne("a", t0, "e1")
}

func testRetry(t *testing.T, open func(t *testing.T) store.Store) {
	now := at(time.Hour)
	tests := []struct {
		name    string
		setup   func(h *h) string // returns the delivery id to retry
		wantErr error
		want    store.State // state after Retry
	}{
		{"dead", func(h *h) string { return h.finish("a", "e1", t0, store.Dead, "gone").ID }, nil, store.Pending},
		{"delivered", func(h *h) string { return h.finish("a", "e1", t0, store.Delivered, "").ID }, nil, store.Pending},
		{"skipped", func(h *h) string { return h.finish("a", "e1", t0, store.Skipped, "").ID }, nil, store.Pending},
		{"retrying", func(h *h) string { return h.finish("a", "e1", t0, store.Retrying, "boom").ID }, nil, store.Pending},
		{"running", func(h *h) string { return h.claimOne("a", t0, "e1").ID }, store.ErrConflict, store.Running},
		{"absent", func(h *h) string { return "no-such-delivery" }, store.ErrNotFound, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newH(t, open)
			h.ingest("e1", t0, "a")
			id := tt.setup(h)
			before, _ := h.s.Delivery(t.Context(), id)
			err := h.s.Retry(t.Context(), id, now)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("Retry err = %v, want %v", err, tt.wantErr)
			}
			if tt.want == "" {
				return
			}
			got := h.delivery(id)
			if got.State != tt.want || got.Attempts != before.Attempts {
				t.Fatalf("after Retry: %+v; want %s with %d attempts", got, tt.want, before.Attempts)
			}
			if tt.wantErr != nil {
				return
			}
			if !got.NextAttemptAt.Equal(now) || got.DeliveredAt != nil {
				t.Fatalf("after Retry: %+v; want due %v, not delivered", got, now)
			}
			h.claimOne("a", now, "e1")
		})
	}
}

func testReplay(t *testing.T, open func(t *testing.T) store.Store) {
	// a: dead e1 (t0, RENEWAL), e2 (t0+1h, RENEWAL), e3 (t0+2h, CANCELLATION);
	// delivered e4 (t0+1h). b: dead e2.
	setup := func(h *h) {
		h.ingest("e1", at(0), "a")
		h.finish("a", "e1", at(0), store.Dead, "gone")
		h.ingest("e2", at(time.Hour), "a", "b")
		h.finish("a", "e2", at(time.Hour), store.Dead, "gone")
		h.finish("b", "e2", at(time.Hour), store.Dead, "gone")
		h.ingestType("e3", "CANCELLATION", at(2*time.Hour), "a")
		h.finish("a", "e3", at(2*time.Hour), store.Dead, "gone")
		h.ingest("e4", at(time.Hour), "a")
		h.finish("a", "e4", at(3*time.Hour), store.Delivered, "")
	}
	now := at(5 * time.Hour)
	tests := []struct {
		name   string
		f      store.ReplayFilter
		dryRun bool
		want   []string // events of a whose delivery is replayed
	}{
		{"dead by default", store.ReplayFilter{Destination: "a"}, false, []string{"e1", "e2", "e3"}},
		{"since inclusive, until exclusive", store.ReplayFilter{Destination: "a", Since: at(time.Hour), Until: at(2 * time.Hour)}, false, []string{"e2"}},
		{"event type", store.ReplayFilter{Destination: "a", EventType: "CANCELLATION"}, false, []string{"e3"}},
		{"delivered", store.ReplayFilter{Destination: "a", Status: store.Delivered}, false, []string{"e4"}},
		{"dry run only counts", store.ReplayFilter{Destination: "a"}, true, []string{"e1", "e2", "e3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newH(t, open)
			setup(h)
			n, err := h.s.Replay(t.Context(), tt.f, now, tt.dryRun)
			if err != nil || n != len(tt.want) {
				t.Fatalf("Replay = %d, %v; want %d", n, err, len(tt.want))
			}
			replayed := map[string]bool{}
			if !tt.dryRun {
				for _, e := range tt.want {
					replayed[e] = true
				}
			}
			for _, e := range []string{"e1", "e2", "e3", "e4"} {
				d := h.deliveryOf(e, "a")
				if replayed[e] {
					if d.State != store.Pending || !d.NextAttemptAt.Equal(now) || d.Attempts != 1 {
						t.Fatalf("replayed %s = %+v; want pending, due %v, 1 attempt", e, d, now)
					}
				} else if d.State == store.Pending {
					t.Fatalf("%s was replayed, want untouched", e)
				}
			}
			if d := h.deliveryOf("e2", "b"); d.State != store.Dead {
				t.Fatalf("replay of a touched destination b: %+v", d)
			}
		})
	}
	t.Run("no destination", func(t *testing.T) {
		h := newH(t, open)
		if _, err := h.s.Replay(t.Context(), store.ReplayFilter{}, now, false); err == nil {
			t.Fatal("Replay without a destination succeeded")
		}
	})
}

// dispatchSet stores, for events e1 (a, b) and e2 (a, type CANCELLATION),
// records with known destinations, statuses and times. It returns their ids
// by name.
func dispatchSet(h *h) map[string]string {
	h.ingest("e1", t0, "a", "b")
	h.ingestType("e2", "CANCELLATION", t0, "a")
	ds := h.claim("a", t0, 10)
	db := h.claimOne("b", t0, "e1")
	byEvent := map[string]store.Delivery{}
	for _, d := range ds {
		byEvent[d.EventID] = d
	}
	mk := func(attempt int, status string, sec int) store.Dispatch {
		return store.Dispatch{Attempt: attempt, Status: status, CreatedAt: at(time.Duration(sec) * time.Second)}
	}
	cs := []store.Completion{
		{DeliveryID: byEvent["e1"].ID, LeaseToken: byEvent["e1"].Lease.Token, State: store.Delivered, Dispatches: []store.Dispatch{mk(1, "retrying", 1), mk(2, "delivered", 3)}},
		{DeliveryID: db.ID, LeaseToken: db.Lease.Token, State: store.Dead, LastError: "400", Dispatches: []store.Dispatch{mk(1, "dead", 2)}},
		{DeliveryID: byEvent["e2"].ID, LeaseToken: byEvent["e2"].Lease.Token, State: store.Skipped, Dispatches: []store.Dispatch{mk(1, "skipped", 4)}},
	}
	h.complete(cs...)
	return map[string]string{
		"e1a1": cs[0].Dispatches[0].ID, "e1a2": cs[0].Dispatches[1].ID,
		"e1b1": cs[1].Dispatches[0].ID, "e2a1": cs[2].Dispatches[0].ID,
	}
}

func testDispatchesFilters(t *testing.T, open func(t *testing.T) store.Store) {
	h := newH(t, open)
	ids := dispatchSet(h)
	tests := []struct {
		name string
		f    store.DispatchFilter
		want []string // names, newest first
	}{
		{"all", store.DispatchFilter{}, []string{"e2a1", "e1a2", "e1b1", "e1a1"}},
		{"destination", store.DispatchFilter{Destination: "a"}, []string{"e2a1", "e1a2", "e1a1"}},
		{"status", store.DispatchFilter{Status: "dead"}, []string{"e1b1"}},
		{"event id", store.DispatchFilter{EventID: "e1"}, []string{"e1a2", "e1b1", "e1a1"}},
		{"event type", store.DispatchFilter{EventType: "CANCELLATION"}, []string{"e2a1"}},
		{"destination and status", store.DispatchFilter{Destination: "a", Status: "retrying"}, []string{"e1a1"}},
		{"no match", store.DispatchFilter{Destination: "zzz"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			items, next := h.dispatches(tt.f)
			want := []string{}
			for _, n := range tt.want {
				want = append(want, ids[n])
			}
			if got := dispatchIDs(items); !reflect.DeepEqual(got, want) || next != "" {
				t.Fatalf("Dispatches = %v, next %q; want %v, no next (names %v)", got, next, want, tt.want)
			}
		})
	}
}

func testDispatchesPagination(t *testing.T, open func(t *testing.T) store.Store) {
	h := newH(t, open)
	h.ingest("e1", t0, "a")
	d := h.claimOne("a", t0, "e1")
	// Three records share one created_at and two another: only the id
	// separates them, and no page boundary may lose or repeat one.
	secs := []int{1, 5, 5, 5, 7, 7, 9}
	var in []store.Dispatch
	for i, s := range secs {
		in = append(in, store.Dispatch{Attempt: i + 1, Status: "retrying", CreatedAt: at(time.Duration(s) * time.Second)})
	}
	h.complete(store.Completion{DeliveryID: d.ID, LeaseToken: d.Lease.Token, State: store.Retrying, NextAttemptAt: at(time.Hour), Dispatches: in})

	all, next := h.dispatches(store.DispatchFilter{Limit: 500})
	if len(all) != len(secs) || next != "" {
		t.Fatalf("one page: %d items, next %q", len(all), next)
	}
	for i := 1; i < len(all); i++ {
		a, b := all[i-1], all[i]
		if a.CreatedAt.Before(b.CreatedAt) || (a.CreatedAt.Equal(b.CreatedAt) && a.ID <= b.ID) {
			t.Fatalf("items %d and %d are not newest first by (created_at, id)", i-1, i)
		}
	}
	tests := []struct {
		name  string
		f     store.DispatchFilter
		sizes []int
	}{
		{"pages of 3", store.DispatchFilter{Limit: 3}, []int{3, 3, 1}},
		{"pages of 2 by destination", store.DispatchFilter{Limit: 2, Destination: "a"}, []int{2, 2, 2, 1}},
		{"exact fit", store.DispatchFilter{Limit: 7}, []int{7}},
		{"pages of 1", store.DispatchFilter{Limit: 1}, []int{1, 1, 1, 1, 1, 1, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []store.Dispatch
			var sizes []int
			f := tt.f
			for page := 0; ; page++ {
				if page > len(secs) {
					t.Fatal("pagination does not end")
				}
				items, next := h.dispatches(f)
				got = append(got, items...)
				sizes = append(sizes, len(items))
				if next == "" {
					break
				}
				f.Before = next
			}
			if !reflect.DeepEqual(sizes, tt.sizes) {
				t.Fatalf("page sizes %v, want %v", sizes, tt.sizes)
			}
			if !reflect.DeepEqual(dispatchIDs(got), dispatchIDs(all)) {
				t.Fatalf("pages hold %v, want %v", dispatchIDs(got), dispatchIDs(all))
			}
		})
	}
}

func testDispatchesLimits(t *testing.T, open func(t *testing.T) store.Store) {
	h := newH(t, open)
	h.ingest("e1", t0, "a")
	d := h.claimOne("a", t0, "e1")
	var in []store.Dispatch
	for i := 0; i < 501; i++ {
		in = append(in, store.Dispatch{Attempt: i + 1, Status: "retrying", CreatedAt: at(time.Duration(i) * time.Millisecond)})
	}
	h.complete(store.Completion{DeliveryID: d.ID, LeaseToken: d.Lease.Token, State: store.Retrying, NextAttemptAt: at(time.Hour), Dispatches: in})
	tests := []struct {
		name     string
		limit    int
		want     int
		wantNext bool
	}{
		{"default 50", 0, 50, true},
		{"negative means default", -1, 50, true},
		{"capped at 500", 1000, 500, true},
		{"500", 500, 500, true},
		{"7", 7, 7, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			items, next := h.dispatches(store.DispatchFilter{Limit: tt.limit})
			if len(items) != tt.want || (next != "") != tt.wantNext {
				t.Fatalf("Limit %d: %d items, next %q; want %d, next: %v", tt.limit, len(items), next, tt.want, tt.wantNext)
			}
		})
	}
}

func testDispatchesBadCursor(t *testing.T, open func(t *testing.T) store.Store) {
	h := newH(t, open)
	h.ingest("e1", t0, "a")
	for _, c := range []string{"!!not a cursor!!", "Zm9vYmFy", "%%%", strings.Repeat("A", 40)} {
		t.Run(c, func(t *testing.T) {
			_, _, err := h.s.Dispatches(t.Context(), store.DispatchFilter{Before: c})
			if !errors.Is(err, store.ErrBadCursor) {
				t.Fatalf("Dispatches(Before: %q) err = %v, want ErrBadCursor", c, err)
			}
		})
	}
}

func testStats(t *testing.T, open func(t *testing.T) store.Store) {
	h := newH(t, open)
	since := at(-time.Hour)
	// Each event is ingested and settled before the next, so every claim
	// takes exactly the intended delivery.
	h.ingest("e6", at(-3*time.Hour), "a")
	h.finish("a", "e6", at(-2*time.Hour), store.Retrying, "old") // failure before the window
	h.finish("a", "e6", at(-2*time.Hour+2*time.Hour), store.Delivered, "")
	h.ingest("e5", at(25*time.Minute), "a", "c")
	h.finish("a", "e5", at(30*time.Minute), store.Delivered, "")
	h.finish("c", "e5", at(31*time.Minute), store.Delivered, "")
	h.ingest("e4", at(15*time.Minute), "a")
	h.finish("a", "e4", at(20*time.Minute), store.Dead, "gone")
	h.ingest("e3", at(5*time.Minute), "a")
	h.finish("a", "e3", at(10*time.Minute), store.Retrying, "boom") // finished before "gone"
	h.ingest("e2", at(time.Minute), "a", "b")
	h.claimOne("a", at(time.Minute), "e2") // running
	h.ingest("e1", at(0), "a")             // pending, the oldest unfinished

	got, err := h.s.Stats(t.Context(), since)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]store.DestinationStats{
		// e6 was delivered at t0 (inside the window) after failing before it.
		"a": {Pending: 3, Retrying: 1, Dead: 1, Delivered: 2, Failed: 2, LastSuccessAt: timePtr(at(30 * time.Minute)),
			LastError: "gone", OldestPending: timePtr(at(0))},
		"b": {Pending: 1, OldestPending: timePtr(at(time.Minute))},
		"c": {Delivered: 1, LastSuccessAt: timePtr(at(31 * time.Minute))},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Stats =\n%+v\nwant\n%+v", got, want)
	}
	narrow, err := h.s.Stats(t.Context(), at(25*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if a := narrow["a"]; a.Delivered != 1 || a.Failed != 0 {
		t.Fatalf("Stats since t0+25m: a = %+v; want 1 delivered, 0 failed", a)
	}
}

func testPaused(t *testing.T, open func(t *testing.T) store.Store) {
	h := newH(t, open)
	steps := []struct {
		dest   string
		paused bool
		want   map[string]bool
	}{
		{"", false, map[string]bool{}},
		{"a", true, map[string]bool{"a": true}},
		{"b", true, map[string]bool{"a": true, "b": true}},
		{"a", false, map[string]bool{"b": true}},
		{"a", false, map[string]bool{"b": true}},
	}
	for i, st := range steps {
		if st.dest != "" {
			if err := h.s.SetPaused(t.Context(), st.dest, st.paused); err != nil {
				t.Fatal(err)
			}
		}
		got, err := h.s.Paused(t.Context())
		if err != nil || !reflect.DeepEqual(got, st.want) {
			t.Fatalf("step %d: Paused = %v, %v; want %v", i, got, err, st.want)
		}
	}
}

func testPurge(t *testing.T, open func(t *testing.T) store.Store) {
	h := newH(t, open)
	day := 24 * time.Hour
	h.ingest("old1", at(-10*day), "a")
	h.finish("a", "old1", at(-10*day), store.Delivered, "")
	h.ingest("old2", at(-9*day), "a", "b")
	h.finish("a", "old2", at(-9*day+time.Second), store.Skipped, "")
	h.finish("b", "old2", at(-9*day+2*time.Second), store.Delivered, "")
	h.ingest("old4", at(-7*day)) // unrouted
	h.ingest("old5", at(-6*day), "a")
	h.finish("a", "old5", at(-6*day), store.Dead, "gone")
	// Settled once, then scheduled again by an operator: kept.
	h.ingest("old6", at(-5*day), "c")
	retried := h.finish("c", "old6", at(-5*day), store.Delivered, "")
	if err := h.s.Retry(t.Context(), retried.ID, at(-5*day+time.Second)); err != nil {
		t.Fatal(err)
	}
	h.claimOne("c", at(-5*day+time.Second), "old6") // and now in flight
	h.ingest("old7", at(-4*day), "d")
	h.finish("d", "old7", at(-4*day), store.Skipped, "")
	if n, err := h.s.Replay(t.Context(), store.ReplayFilter{Destination: "d", Status: store.Skipped}, at(-4*day+time.Second), false); err != nil || n != 1 {
		t.Fatalf("Replay = %d, %v; want 1", n, err)
	}
	h.ingest("old3", at(-8*day), "a") // pending: kept
	h.ingest("new1", t0, "b")
	h.finish("b", "new1", t0, store.Delivered, "")
	old3 := h.deliveryOf("old3", "a")
	gone := h.deliveryOf("old1", "a")

	if _, err := h.s.Purge(t.Context(), at(-day), 0); err == nil {
		t.Fatal("Purge with limit 0 succeeded")
	}
	// Per call, oldest first: one dispatch record and one event with its
	// deliveries.
	for i, want := range []int{1 + 1 + 1, 1 + 1 + 2, 1 + 1, 1, 1, 1, 0, 0} {
		n, err := h.s.Purge(t.Context(), at(-day), 1)
		if err != nil || n != want {
			t.Fatalf("Purge call %d = %d, %v; want %d", i, n, err, want)
		}
	}
	for _, tt := range []struct {
		event string
		kept  bool
	}{{"old1", false}, {"old2", false}, {"old4", false}, {"old3", true}, {"old5", true}, {"old6", true}, {"old7", true}, {"new1", true}} {
		_, err := h.s.Event(t.Context(), tt.event)
		if tt.kept != (err == nil) || (!tt.kept && !errors.Is(err, store.ErrNotFound)) {
			t.Fatalf("Event(%s) err = %v; kept: %v", tt.event, err, tt.kept)
		}
	}
	if _, err := h.s.Delivery(t.Context(), gone.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delivery of a purged event: err = %v, want ErrNotFound", err)
	}
	if items, _ := h.dispatches(store.DispatchFilter{}); len(items) != 1 || items[0].EventID != "new1" {
		t.Fatalf("dispatches after purge: %v; want only new1's", dispatchIDs(items))
	}
	if d := h.claimOne("a", t0, "old3"); d.ID != old3.ID {
		t.Fatalf("kept pending delivery claimed as %s, want %s", d.ID, old3.ID)
	}
}

func testPingAndClose(t *testing.T, open func(t *testing.T) store.Store) {
	h := newH(t, open)
	ctx := context.Background()
	if err := h.s.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if err := h.s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := h.s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	calls := []struct {
		name string
		call func() error
	}{
		{"Ingest", func() error {
			_, err := h.s.Ingest(ctx, store.NewEvent{ID: "e1", Type: "TEST", ReceivedAt: t0})
			return err
		}},
		{"Claim", func() error { _, err := h.s.Claim(ctx, owner, "a", t0, at(lease), 1); return err }},
		{"Complete", func() error {
			return h.s.Complete(ctx, []store.Completion{{DeliveryID: "d", LeaseToken: "t", State: store.Delivered}})
		}},
		{"Release", func() error {
			return h.s.Release(ctx, []store.Lease{{DeliveryID: "d", Owner: owner, Token: "t"}}, t0)
		}},
		{"Ping", func() error { return h.s.Ping(ctx) }},
		{"Event", func() error { _, err := h.s.Event(ctx, "e1"); return err }},
		{"Dispatches", func() error { _, _, err := h.s.Dispatches(ctx, store.DispatchFilter{}); return err }},
	}
	for _, c := range calls {
		if err := c.call(); !errors.Is(err, store.ErrClosed) {
			t.Fatalf("%s after Close: err = %v, want ErrClosed", c.name, err)
		}
	}
}

// ingestUsers stores an unrouted event of type typ found by users.
func (h *h) ingestUsers(id, typ string, received time.Time, users ...string) {
	h.t.Helper()
	e := store.NewEvent{ID: id, Type: typ, ReceivedAt: received, Body: body(id), UserIDs: users}
	if created, err := h.s.Ingest(h.t.Context(), e); err != nil || !created {
		h.t.Fatalf("Ingest(%s) = %v, %v; want true, nil", id, created, err)
	}
}

// events reads every page of f, failing on a page that is not newest first.
func (h *h) events(f store.EventFilter) (ids []string, sizes []int) {
	h.t.Helper()
	var last store.Event
	for page := 0; ; page++ {
		if page > 1000 {
			h.t.Fatal("pagination does not end")
		}
		items, next, err := h.s.Events(h.t.Context(), f)
		if err != nil {
			h.t.Fatalf("Events(%+v): %v", f, err)
		}
		for _, e := range items {
			if last.ID != "" && (last.ReceivedAt.Before(e.ReceivedAt) || (last.ReceivedAt.Equal(e.ReceivedAt) && last.ID <= e.ID)) {
				h.t.Fatalf("%s after %s: not newest first by (received_at, id)", e.ID, last.ID)
			}
			last = e
			ids = append(ids, e.ID)
		}
		sizes = append(sizes, len(items))
		if next == "" {
			return ids, sizes
		}
		f.Before = next
	}
}

func testEventsPagination(t *testing.T, open func(t *testing.T) store.Store) {
	h := newH(t, open)
	// Three events share one received_at and two another: only the id
	// separates them, and no page boundary may lose or repeat one.
	secs := []int{1, 5, 5, 5, 7, 7, 9}
	for i, s := range secs {
		h.ingestUsers(fmt.Sprintf("e%d", i), "RENEWAL", at(time.Duration(s)*time.Second), "u")
	}
	want := []string{"e6", "e5", "e4", "e3", "e2", "e1", "e0"}
	tests := []struct {
		name  string
		f     store.EventFilter
		sizes []int
	}{
		{"one page", store.EventFilter{Limit: 500}, []int{7}},
		{"pages of 3", store.EventFilter{Limit: 3}, []int{3, 3, 1}},
		{"pages of 2 by user", store.EventFilter{Limit: 2, UserID: "u"}, []int{2, 2, 2, 1}},
		{"exact fit", store.EventFilter{Limit: 7}, []int{7}},
		{"pages of 1 by user", store.EventFilter{Limit: 1, UserID: "u"}, []int{1, 1, 1, 1, 1, 1, 1}},
		{"default 50", store.EventFilter{}, []int{7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ids, sizes := h.events(tt.f)
			if !reflect.DeepEqual(sizes, tt.sizes) {
				t.Fatalf("page sizes %v, want %v", sizes, tt.sizes)
			}
			if !reflect.DeepEqual(ids, want) {
				t.Fatalf("pages hold %v, want %v", ids, want)
			}
		})
	}
	items, _, err := h.s.Events(t.Context(), store.EventFilter{Limit: 1})
	if err != nil || len(items) != 1 {
		t.Fatalf("Events(Limit 1) = %d items, %v", len(items), err)
	}
	if e := items[0]; e.ID != "e6" || e.Type != "RENEWAL" || !e.ReceivedAt.Equal(at(9*time.Second)) || string(e.Body) != string(body("e6")) {
		t.Fatalf("Events item = %+v; want e6 as ingested", e)
	}
}

func testEventsFilters(t *testing.T, open func(t *testing.T) store.Store) {
	h := newH(t, open)
	// alice's app_user_id, her anonymous original id and an alias.
	h.ingestUsers("a1", "INITIAL_PURCHASE", at(1*time.Minute), "alice", "$RCAnonymousID:1", "alice@example.com")
	h.ingestUsers("a2", "RENEWAL", at(2*time.Minute), "alice", "$RCAnonymousID:1", "alice", "")
	h.ingestUsers("b1", "RENEWAL", at(3*time.Minute), "bob")
	h.ingestUsers("a3", "CANCELLATION", at(4*time.Minute), "alice@example.com")
	h.ingestUsers("n1", "TEST", at(5*time.Minute))
	h.ingest("r1", at(6*time.Minute), "a") // routed, no users
	for _, e := range []store.NewEvent{
		{ID: "t1", Type: "INITIAL_PURCHASE", ReceivedAt: at(7 * time.Minute), Body: body("t1"), UserIDs: []string{"dora"}, TransactionIDs: []string{"GPA.1", "GPA.1"}},
		{ID: "t2", Type: "RENEWAL", ReceivedAt: at(8 * time.Minute), Body: body("t2"), TransactionIDs: []string{"GPA.2", "GPA.1", ""}},
	} {
		if _, err := h.s.Ingest(t.Context(), e); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		f    store.EventFilter
		want []string
	}{
		{"everything", store.EventFilter{}, []string{"t2", "t1", "r1", "n1", "a3", "b1", "a2", "a1"}},
		{"transaction id", store.EventFilter{TransactionID: "GPA.1"}, []string{"t2", "t1"}},
		{"renewal's transaction id", store.EventFilter{TransactionID: "GPA.2"}, []string{"t2"}},
		{"transaction ids are not user ids", store.EventFilter{UserID: "GPA.1"}, nil},
		{"user ids are not transaction ids", store.EventFilter{TransactionID: "dora"}, nil},
		{"app user id", store.EventFilter{UserID: "alice"}, []string{"a2", "a1"}},
		{"original app user id", store.EventFilter{UserID: "$RCAnonymousID:1"}, []string{"a2", "a1"}},
		{"alias", store.EventFilter{UserID: "alice@example.com"}, []string{"a3", "a1"}},
		{"unknown user", store.EventFilter{UserID: "carol"}, nil},
		{"user ids are exact", store.EventFilter{UserID: "ALICE"}, nil},
		{"type", store.EventFilter{Type: "RENEWAL"}, []string{"t2", "r1", "b1", "a2"}},
		{"user and type", store.EventFilter{UserID: "alice", Type: "RENEWAL"}, []string{"a2"}},
		{"since inclusive", store.EventFilter{Since: at(3 * time.Minute), Until: at(7 * time.Minute)}, []string{"r1", "n1", "a3", "b1"}},
		{"until exclusive", store.EventFilter{Until: at(3 * time.Minute)}, []string{"a2", "a1"}},
		{"window by user", store.EventFilter{UserID: "alice@example.com", Since: at(time.Minute), Until: at(4 * time.Minute)}, []string{"a1"}},
		{"window by user, pages of 1", store.EventFilter{UserID: "$RCAnonymousID:1", Since: at(time.Minute), Limit: 1}, []string{"a2", "a1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ids, _ := h.events(tt.f)
			if !reflect.DeepEqual(ids, tt.want) {
				t.Fatalf("Events(%+v) = %v, want %v", tt.f, ids, tt.want)
			}
		})
	}
}

func testEventsBadCursor(t *testing.T, open func(t *testing.T) store.Store) {
	h := newH(t, open)
	h.ingestUsers("e1", "RENEWAL", t0, "u")
	for _, f := range []store.EventFilter{{Before: "!!not a cursor!!"}, {Before: "Zm9vYmFy", UserID: "u"}, {Before: "%%%"}} {
		t.Run(f.Before, func(t *testing.T) {
			if _, _, err := h.s.Events(t.Context(), f); !errors.Is(err, store.ErrBadCursor) {
				t.Fatalf("Events(%+v) err = %v, want ErrBadCursor", f, err)
			}
		})
	}
}

func testEventsPurged(t *testing.T, open func(t *testing.T) store.Store) {
	h := newH(t, open)
	day := 24 * time.Hour
	for _, e := range []store.NewEvent{
		{ID: "old", Type: "RENEWAL", ReceivedAt: at(-3 * day), Body: body("old"), UserIDs: []string{"u"}, TransactionIDs: []string{"x"}}, // unrouted: settled
		{ID: "new", Type: "RENEWAL", ReceivedAt: t0, Body: body("new"), UserIDs: []string{"u"}, TransactionIDs: []string{"x"}},
	} {
		if _, err := h.s.Ingest(t.Context(), e); err != nil {
			t.Fatal(err)
		}
	}
	for {
		n, err := h.s.Purge(t.Context(), at(-day), 10)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	for _, f := range []store.EventFilter{{}, {UserID: "u"}, {TransactionID: "x"}} {
		if ids, _ := h.events(f); !reflect.DeepEqual(ids, []string{"new"}) {
			t.Fatalf("Events(%+v) after purge = %v, want [new]", f, ids)
		}
	}
}

func testRouteMatches(t *testing.T, open func(t *testing.T) store.Store) {
	h := newH(t, open)
	ingest := func(id string, received time.Time, routes string) {
		t.Helper()
		e := store.NewEvent{ID: id, Type: "RENEWAL", ReceivedAt: received, Body: body(id)}
		if routes != "" {
			e.Routes = json.RawMessage(routes)
		}
		if _, err := h.s.Ingest(t.Context(), e); err != nil {
			t.Fatal(err)
		}
	}
	v := func(name string, matched bool) string {
		return fmt.Sprintf(`{"name":%q,"matched":%v,"reason":"r"}`, name, matched)
	}
	ingest("old", at(-2*time.Hour), "["+v("all", true)+"]")
	ingest("e1", at(-time.Hour), "["+v("all", true)+","+v("pro", true)+","+v("never", false)+"]")
	ingest("e2", at(-time.Minute), "["+v("all", true)+","+v("pro", false)+"]")
	ingest("e3", t0, "[]")
	ingest("e4", t0, "") // no verdicts stored
	tests := []struct {
		name  string
		since time.Time
		want  map[string]int
	}{
		{"last hour, inclusive", at(-time.Hour), map[string]int{"all": 2, "pro": 1}},
		{"everything", at(-24 * time.Hour), map[string]int{"all": 3, "pro": 1}},
		{"nothing yet", at(time.Second), map[string]int{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := h.s.RouteMatches(t.Context(), tt.since)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("RouteMatches(%s) = %v, want %v", tt.since, got, tt.want)
			}
		})
	}
}

func testDispatchBuckets(t *testing.T, open func(t *testing.T) store.Store) {
	h := newH(t, open)
	h.ingest("e1", at(-time.Hour), "a", "b")
	rec := func(sec int, status string, ms int64) store.Dispatch {
		return store.Dispatch{Status: status, DurationMs: ms, CreatedAt: at(time.Duration(sec) * time.Second)}
	}
	da := h.claimOne("a", at(-time.Hour), "e1")
	var in []store.Dispatch
	for i, d := range []store.Dispatch{
		rec(-1, "delivered", 999), // before the window
		rec(10, "delivered", 100), rec(20, "retrying", 300), rec(30, "dead", 200),
		rec(70, "delivered", 50), rec(70, "skipped", 7),
		rec(180, "delivered", 999), // at the window's end: outside
	} {
		d.Attempt = i + 1
		in = append(in, d)
	}
	h.complete(store.Completion{DeliveryID: da.ID, LeaseToken: da.Lease.Token, State: store.Retrying, NextAttemptAt: at(time.Hour), Dispatches: in})
	db := h.claimOne("b", at(-time.Hour), "e1")
	h.complete(store.Completion{DeliveryID: db.ID, LeaseToken: db.Lease.Token, State: store.Delivered,
		Dispatches: []store.Dispatch{{Attempt: 1, Status: "delivered", DurationMs: 5, CreatedAt: at(10 * time.Second)}}})

	got, err := h.s.DispatchBuckets(t.Context(), store.BucketFilter{Destination: "a", Since: t0, Width: time.Minute, Count: 3})
	if err != nil {
		t.Fatal(err)
	}
	want := []store.Bucket{
		{Start: t0, Delivered: 1, Failed: 1, Dead: 1, P50Ms: 200, P95Ms: 300},
		{Start: at(time.Minute), Delivered: 1, P50Ms: 50, P95Ms: 50},
		{Start: at(2 * time.Minute)},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("DispatchBuckets(a) =\n%+v\nwant\n%+v", got, want)
	}
	got, err = h.s.DispatchBuckets(t.Context(), store.BucketFilter{Destination: "none", Since: t0, Width: time.Hour, Count: 2})
	if err != nil || len(got) != 2 || got[0] != (store.Bucket{Start: t0}) || got[1] != (store.Bucket{Start: at(time.Hour)}) {
		t.Fatalf("DispatchBuckets(none) = %+v, %v; want 2 empty buckets", got, err)
	}
}

// testDispatchBodyOfEvent: a record whose request sent the event's own
// bytes reads back whole (a store may keep it as a reference to the event's
// body), as does one with another body; Purge keeps the event while such a
// record is kept, and deletes it once the record is gone.
func testDispatchBodyOfEvent(t *testing.T, open func(t *testing.T) store.Store) {
	h := newH(t, open)
	h.ingest("evt-1", t0, "raw", "templated")
	tests := []struct{ name, destination, body string }{
		{"the event's body", "raw", string(body("evt-1"))},
		{"another body", "templated", `{"text":"renewal"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := h.claimOne(tt.destination, t0, "evt-1")
			cs := []store.Completion{{DeliveryID: d.ID, LeaseToken: d.Lease.Token, State: store.Delivered, FinishedAt: t0,
				Dispatches: []store.Dispatch{{Attempt: 1, Status: "delivered", CreatedAt: at(48 * time.Hour),
					Request: destinations.Request{Method: "POST", URL: "http://127.0.0.1/hook", Body: tt.body}}}}}
			if err := h.s.Complete(t.Context(), cs); err != nil {
				t.Fatal(err)
			}
			got, err := h.s.Dispatch(t.Context(), cs[0].Dispatches[0].ID)
			if err != nil || got.Request.Body != tt.body || got.Request.Method != "POST" {
				t.Fatalf("Dispatch = %+v, %v; want request body %q", got.Request, err, tt.body)
			}
		})
	}
	// Every delivery is final and the event is old, but its records were
	// made two days after it.
	if _, err := h.s.Purge(t.Context(), at(24*time.Hour), 10); err != nil {
		t.Fatal(err)
	}
	if _, err := h.s.Event(t.Context(), "evt-1"); err != nil {
		t.Fatalf("event purged while its dispatch records are kept: %v", err)
	}
	if _, err := h.s.Purge(t.Context(), at(72*time.Hour), 10); err != nil {
		t.Fatal(err)
	}
	if _, err := h.s.Event(t.Context(), "evt-1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("event after its records aged out: err = %v, want ErrNotFound", err)
	}
}
