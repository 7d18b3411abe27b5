package app

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rcrouter/rcrouter/internal/clock"
	"github.com/rcrouter/rcrouter/internal/config"
	"github.com/rcrouter/rcrouter/internal/revenuecat"
	"github.com/rcrouter/rcrouter/internal/store"
)

// newIdleApp builds an App on cfg (after configHead) with clk and never runs
// it: the scheduler stays still, so the test moves deliveries itself.
func newIdleApp(t *testing.T, clk clock.Clock, cfg string) *App {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(configHead()+cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := New(Options{ConfigPath: path, Clock: clk, Getenv: func(string) (string, bool) { return "", false }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// settle claims the one due delivery of dest at the app's time and completes
// it in state st, as a worker would.
func settle(t *testing.T, a *App, dest string, st store.State) store.Delivery {
	t.Helper()
	ctx := context.Background()
	now := a.opts.Clock.Now()
	ds, err := a.store.Claim(ctx, "test", dest, now, now.Add(time.Minute), 10)
	if err != nil || len(ds) != 1 {
		t.Fatalf("claim at %s: %d deliveries, %v; want 1", now, len(ds), err)
	}
	if err := a.store.Complete(ctx, []store.Completion{{DeliveryID: ds[0].ID, LeaseToken: ds[0].Lease.Token, State: st}}); err != nil {
		t.Fatal(err)
	}
	return ds[0]
}

// TestFakeClockTimesEverything: with a fake clock, every time the app writes
// or asks the store for is the fake time: ingest, retry, replay, the 24 h
// stats window, retention, the test event and reload status.
func TestFakeClockTimesEverything(t *testing.T) {
	t0 := time.Date(2031, 6, 1, 12, 0, 0, 0, time.UTC) // far from the wall clock
	clk := clock.NewFake(t0)
	a := newIdleApp(t, clk, "  retention: 48h\ndestinations:\n  archive:\n    file: {path: data/events.jsonl}\nroutes:\n  - name: all\n    to: [archive]\n")
	ctx := context.Background()
	accept := func(id string) {
		t.Helper()
		e, err := revenuecat.Decode(fixtureEvent(id, "RENEWAL"))
		if err != nil {
			t.Fatal(err)
		}
		if res, err := a.Accept(ctx, e); err != nil || !res.Created {
			t.Fatalf("accept %s: %+v %v", id, res, err)
		}
	}
	delivered24h := func() int {
		t.Helper()
		ds, err := a.Destinations(ctx)
		if err != nil || len(ds) != 1 {
			t.Fatalf("destinations: %+v %v", ds, err)
		}
		return ds[0].Delivered24h
	}

	if st := a.LastReload(); !st.At.Equal(t0) {
		t.Errorf("start reload at %s, want %s", st.At, t0)
	}
	accept("old")
	if ev, err := a.store.Event(ctx, "old"); err != nil || !ev.ReceivedAt.Equal(t0) {
		t.Fatalf("received at %s (%v), want %s", ev.ReceivedAt, err, t0)
	}

	// A dead delivery retried an hour later is due then, not at wall time.
	dead := settle(t, a, "archive", store.Dead)
	clk.Advance(time.Hour)
	if err := a.Retry(ctx, dead.ID); err != nil {
		t.Fatal(err)
	}
	if d, _ := a.store.Delivery(ctx, dead.ID); d.State != store.Pending || !d.NextAttemptAt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("after retry: %s due %s, want pending due %s", d.State, d.NextAttemptAt, t0.Add(time.Hour))
	}
	settle(t, a, "archive", store.Delivered)
	if n := delivered24h(); n != 1 {
		t.Errorf("delivered in the last 24 h: %d, want 1", n)
	}
	clk.Advance(25 * time.Hour)
	if n := delivered24h(); n != 0 {
		t.Errorf("delivered in the last 24 h, 25 h later: %d, want 0", n)
	}

	// Replay makes the delivered one due at the fake now.
	now := clk.Now()
	if n, err := a.Replay(ctx, "archive", store.ReplayFilter{Status: store.Delivered}, false); err != nil || n != 1 {
		t.Fatalf("replay: %d %v", n, err)
	}
	if d, _ := a.store.Delivery(ctx, dead.ID); !d.NextAttemptAt.Equal(now) {
		t.Errorf("replayed delivery due %s, want %s", d.NextAttemptAt, now)
	}
	settle(t, a, "archive", store.Delivered)

	// Retention (48 h) counts from the fake time: at t0+49h "old" (t0) is
	// gone and "new" (t0+26h) stays.
	accept("new")
	settle(t, a, "archive", store.Delivered)
	clk.Advance(23 * time.Hour)
	a.purge(ctx)
	if _, err := a.store.Event(ctx, "old"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("old event after retention: %v, want not found", err)
	}
	if _, err := a.store.Event(ctx, "new"); err != nil {
		t.Errorf("new event after retention: %v, want kept", err)
	}

	id, err := a.SendTest(ctx, "archive")
	if err != nil {
		t.Fatal(err)
	}
	if ev, err := a.store.Event(ctx, id); err != nil || !ev.ReceivedAt.Equal(clk.Now()) {
		t.Errorf("test event received at %s (%v), want %s", ev.ReceivedAt, err, clk.Now())
	}
	if err := a.ReloadFrom("test"); err != nil {
		t.Fatal(err)
	}
	if st := a.LastReload(); !st.At.Equal(clk.Now()) {
		t.Errorf("reload at %s, want %s", st.At, clk.Now())
	}
}

// TestReloadRefusalIsConfigErrors: a refused reload returns the config's own
// *config.Errors, whatever the trigger, and the API alone turns it into 422.
func TestReloadRefusalIsConfigErrors(t *testing.T) {
	good := "destinations:\n  archive:\n    file: {path: data/events.jsonl}\nroutes:\n  - name: all\n    to: [archive]\n"
	a := newIdleApp(t, clock.Real(), good)
	broken := configHead() + strings.Replace(good, "to: [archive]", "to: [nowhere]", 1)
	if err := os.WriteFile(a.opts.ConfigPath, []byte(broken), 0o600); err != nil {
		t.Fatal(err)
	}

	err := a.ReloadFrom("sighup")
	var problems *config.Errors
	if !errors.As(err, &problems) || len(*problems) != 1 {
		t.Fatalf("SIGHUP reload error %T %v, want a *config.Errors with one problem", err, err)
	}
	_, want := config.Load(a.opts.ConfigPath, a.opts.Getenv, Types())
	if err.Error() != want.Error() {
		t.Errorf("reload error %q, want the config's own %q", err, want)
	}
	if st := a.LastReload(); st.OK || st.Error != want.Error() {
		t.Errorf("last reload %+v, want refused with %q", st, want)
	}

	req := httptest.NewRequest("POST", "/api/v1/reload", nil)
	req.Header.Set("Authorization", "Bearer "+hAdmin)
	rec := httptest.NewRecorder()
	a.Server().Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusUnprocessableEntity || !strings.Contains(rec.Body.String(), `unknown destination \"nowhere\"`) {
		t.Errorf("API reload: %d %s, want 422 naming the unknown destination", rec.Code, rec.Body)
	}
}
