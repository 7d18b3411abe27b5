package postgres

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rcrouter/rcrouter/internal/store"
	"github.com/rcrouter/rcrouter/internal/store/postgres/pgtest"
)

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// replicas opens n stores, "rc-1" to "rc-n", on one new database.
func replicas(t *testing.T, n int) []*Store {
	t.Helper()
	dsn := pgtest.NewDatabase(t)
	out := make([]*Store, n)
	for i := range out {
		out[i] = openDB(t, dsn, fmt.Sprintf("rc-%d", i+1))
	}
	return out
}

func ingest(t *testing.T, s *Store, id string, at time.Time, dests ...string) {
	t.Helper()
	e := store.NewEvent{ID: id, Type: "RENEWAL", ReceivedAt: at, Body: []byte(`{"event":{"id":"` + id + `"}}`)}
	for _, d := range dests {
		e.Deliveries = append(e.Deliveries, store.NewDelivery{Destination: d, Route: "r"})
	}
	if created, err := s.Ingest(t.Context(), e); err != nil || !created {
		t.Fatalf("Ingest(%s) = %v, %v", id, created, err)
	}
}

// eventually waits, polling, until cond holds; it fails the test after 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// drained waits until ch is closed, discarding what it still holds.
func drained[T any](t *testing.T, ch <-chan T) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case _, open := <-ch:
			if !open {
				return
			}
		case <-timeout:
			t.Fatal("timed out waiting for a subscription to close")
		}
	}
}

// TestReplicasClaimDisjoint: stores with their own pools on one database,
// claiming one destination at once, never get the same delivery and
// together get all of them.
func TestReplicasClaimDisjoint(t *testing.T) {
	rs := replicas(t, 3)
	const events = 300
	for i := 0; i < events; i++ {
		ingest(t, rs[i%3], fmt.Sprintf("e%04d", i), t0.Add(time.Duration(i)*time.Millisecond), "a")
	}
	now := t0.Add(time.Minute)
	var mu sync.Mutex
	owner := map[string]string{}
	var wg sync.WaitGroup
	errs := make(chan error, len(rs)*2)
	for _, s := range rs {
		for w := 0; w < 2; w++ { // two workers per replica
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					ds, err := s.Claim(context.Background(), s.Replica(), "a", now, now.Add(time.Minute), 5)
					if err != nil {
						errs <- err
						return
					}
					if len(ds) == 0 {
						return
					}
					mu.Lock()
					for _, d := range ds {
						if prev, ok := owner[d.ID]; ok {
							errs <- fmt.Errorf("delivery %s claimed by %s and %s", d.ID, prev, s.Replica())
						}
						owner[d.ID] = s.Replica()
					}
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(owner) != events {
		t.Fatalf("%d deliveries claimed, want %d", len(owner), events)
	}
}

// TestReplicasIngestSameEvent: one event id posted to every replica at once
// is created exactly once.
func TestReplicasIngestSameEvent(t *testing.T) {
	rs := replicas(t, 3)
	var wg sync.WaitGroup
	results := make(chan bool, 30)
	for i := 0; i < 30; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			created, err := rs[i%3].Ingest(context.Background(), store.NewEvent{ID: "evt", Type: "RENEWAL", ReceivedAt: t0,
				Body: []byte(`{}`), Deliveries: []store.NewDelivery{{Destination: "a", Route: "r"}}})
			if err != nil {
				t.Error(err)
			}
			results <- created
		}()
	}
	wg.Wait()
	close(results)
	n := 0
	for c := range results {
		if c {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d ingests created the event, want 1", n)
	}
}

// TestMigrateConcurrent: replicas starting together on an empty database
// all migrate without error.
func TestMigrateConcurrent(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := Open(context.Background(), Options{DSN: dsn, Replica: fmt.Sprintf("m-%d", i), MaxConns: 2})
			if err != nil {
				t.Error(err)
				return
			}
			defer s.Close()
			if v, err := s.Migrate(context.Background()); err != nil || v != store.SchemaVersion {
				t.Errorf("Migrate = %d, %v; want %d", v, err, store.SchemaVersion)
			}
		}()
	}
	wg.Wait()
}

// TestOpenNoMigrate: with NoMigrate, Open refuses a database that is not at
// this build's version; without, it migrates.
func TestOpenNoMigrate(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	if s, err := Open(t.Context(), Options{DSN: dsn, Replica: "rc-1", NoMigrate: true}); err == nil {
		s.Close()
		t.Fatal("Open with NoMigrate on an empty database succeeded")
	} else if !strings.Contains(err.Error(), "schema version 0") {
		t.Fatalf("Open with NoMigrate: %v; want it to name version 0", err)
	}
	s, err := Open(t.Context(), Options{DSN: dsn, Replica: "rc-1"})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(t.Context(), Options{DSN: dsn, Replica: "rc-1", NoMigrate: true})
	if err != nil {
		t.Fatalf("Open with NoMigrate after migrating: %v", err)
	}
	s.Close()
}

// notifierPID is the backend pid of s's LISTEN session.
func notifierPID(t *testing.T, s *Store) int {
	t.Helper()
	var pid int
	err := s.pool.QueryRow(t.Context(), `SELECT pid FROM pg_stat_activity
		WHERE application_name = $1 AND datname = current_database()`, "rcrouter-notifier "+s.Replica()).Scan(&pid)
	if err != nil {
		t.Fatalf("find the notifier's backend: %v", err)
	}
	return pid
}

// recv waits for a value on ch that satisfies ok.
func recv[T any](t *testing.T, ch <-chan T, what string, ok func(T) bool) T {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case v, open := <-ch:
			if !open {
				t.Fatalf("channel closed while waiting for %s", what)
			}
			if ok(v) {
				return v
			}
		case <-timeout:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestNotifierSurvivesTermination: wake-ups and the dispatch feed cross
// replicas, and keep doing so after the listening backend is killed.
func TestNotifierSurvivesTermination(t *testing.T) {
	rs := replicas(t, 2)
	a, b := rs[0], rs[1]
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	wake := b.SubscribeWakeups(ctx)
	feed := b.SubscribeDispatches(ctx)
	pauses := b.SubscribePaused(ctx)
	recv(t, pauses, "the resync of a new subscription", func(p store.PauseChange) bool { return p == store.PauseChange{} })
	recv(t, wake, "the resync of a new subscription", func(d string) bool { return d == "" })
	eventually(t, "the notifier to listen", func() bool { return b.Connects() >= 1 })

	ingest(t, a, "e1", t0, "dest-x")
	recv(t, wake, "a wake-up for dest-x", func(d string) bool { return d == "dest-x" })

	var killed bool
	if err := a.pool.QueryRow(t.Context(), `SELECT pg_terminate_backend($1)`, notifierPID(t, b)).Scan(&killed); err != nil || !killed {
		t.Fatalf("pg_terminate_backend = %v, %v", killed, err)
	}
	recv(t, wake, "the resync after reconnecting", func(d string) bool { return d == "" })
	if b.Connects() < 2 {
		t.Fatalf("notifier connects = %d after a resync, want 2", b.Connects())
	}

	ingest(t, a, "e2", t0, "dest-y")
	recv(t, wake, "a wake-up for dest-y after the reconnect", func(d string) bool { return d == "dest-y" })

	ds, err := a.Claim(t.Context(), a.Replica(), "dest-y", t0, t0.Add(time.Minute), 1)
	if err != nil || len(ds) != 1 {
		t.Fatalf("Claim = %v, %v", ds, err)
	}
	err = a.Complete(t.Context(), []store.Completion{{DeliveryID: ds[0].ID, LeaseToken: ds[0].Lease.Token, State: store.Delivered,
		Dispatches: []store.Dispatch{{Attempt: 1, Status: "delivered", CreatedAt: t0.Add(time.Second)}}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, paused := range []bool{true, false} {
		if err := a.SetPaused(t.Context(), "dest-y", paused); err != nil {
			t.Fatal(err)
		}
		want := store.PauseChange{Destination: "dest-y", Paused: paused}
		recv(t, pauses, fmt.Sprintf("%+v on b", want), func(p store.PauseChange) bool { return p == want })
	}
	got := recv(t, feed, "a's dispatch on b's feed", func(d store.Dispatch) bool { return d.DeliveryID == ds[0].ID })
	if got.Replica != "rc-1" || got.EventID != "e2" || got.Destination != "dest-y" {
		t.Fatalf("feed record = %+v; want replica rc-1, event e2, dest-y", got)
	}
}

// TestSubscriptionsCloseWithStore: a subscriber's channel closes when its
// context ends and when the store closes.
func TestSubscriptionsCloseWithStore(t *testing.T) {
	s := openNew(t)
	ctx, cancel := context.WithCancel(t.Context())
	w := s.SubscribeWakeups(ctx)
	cancel()
	drained(t, w)
	d := s.SubscribeDispatches(t.Context())
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	drained(t, d)
	if w := s.SubscribeWakeups(t.Context()); w != nil {
		drained(t, w) // subscribing to a closed store gets a closed channel
	}
}

// TestLeaderTakeover: one holder at a time; a holder that stops renewing
// is replaced when its ttl ends, with a new term; Resign frees the role.
func TestLeaderTakeover(t *testing.T) {
	rs := replicas(t, 2)
	a, b := rs[0], rs[1]
	const ttl = 15 * time.Second
	lead := func(s *Store, now time.Time) (bool, int64) {
		t.Helper()
		ok, term, err := s.Lead(t.Context(), "housekeeping", ttl, now)
		if err != nil {
			t.Fatal(err)
		}
		return ok, term
	}
	steps := []struct {
		name     string
		s        *Store
		at       time.Duration
		want     bool
		wantTerm int64
	}{
		{"a takes the free role", a, 0, true, 1},
		{"b cannot while a's lease runs", b, 5 * time.Second, false, 0},
		{"a renews in its term", a, 10 * time.Second, true, 1},
		{"b still cannot", b, 24 * time.Second, false, 0},
		{"a dies; b takes over at the end of the ttl", b, 25 * time.Second, true, 2},
		{"a, back, is not leader", a, 26 * time.Second, false, 0},
		{"b renews", b, 30 * time.Second, true, 2},
	}
	for _, st := range steps {
		ok, term := lead(st.s, t0.Add(st.at))
		if ok != st.want || term != st.wantTerm {
			t.Fatalf("%s: Lead = %v, term %d; want %v, term %d", st.name, ok, term, st.want, st.wantTerm)
		}
	}
	if err := a.Resign(t.Context(), "housekeeping"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := lead(a, t0.Add(31*time.Second)); ok {
		t.Fatal("a's Resign freed a role it did not hold")
	}
	if err := b.Resign(t.Context(), "housekeeping"); err != nil {
		t.Fatal(err)
	}
	if ok, term := lead(a, t0.Add(31*time.Second)); !ok || term != 1 {
		t.Fatalf("after b resigned: a Lead = %v, term %d; want the role, a new row (term 1)", ok, term)
	}
}

// TestReaper: a lease of a dead replica is returned once expired, never
// before, and its old holder is then fenced.
func TestReaper(t *testing.T) {
	rs := replicas(t, 2)
	a, b := rs[0], rs[1]
	ingest(t, a, "e1", t0, "d")
	ingest(t, a, "e2", t0, "d")
	ds, err := a.Claim(t.Context(), a.Replica(), "d", t0, t0.Add(time.Minute), 1)
	if err != nil || len(ds) != 1 {
		t.Fatalf("Claim = %v, %v", ds, err)
	}
	// b's live lease on the other delivery, taken later, must survive.
	live, err := b.Claim(t.Context(), b.Replica(), "d", t0, t0.Add(time.Hour), 1)
	if err != nil || len(live) != 1 {
		t.Fatalf("Claim = %v, %v", live, err)
	}
	if got, err := b.ReapExpired(t.Context(), t0.Add(time.Minute-time.Millisecond), 10); err != nil || len(got) != 0 {
		t.Fatalf("reap before expiry = %+v, %v; want none", got, err)
	}
	got, err := b.ReapExpired(t.Context(), t0.Add(time.Minute), 10)
	if err != nil || len(got) != 1 {
		t.Fatalf("reap = %+v, %v; want one", got, err)
	}
	want := store.ExpiredLease{DeliveryID: ds[0].ID, EventID: ds[0].EventID, Destination: "d", Owner: "rc-1", Until: t0.Add(time.Minute)}
	if got[0] != want {
		t.Fatalf("reaped %+v, want %+v", got[0], want)
	}
	if d, err := b.Delivery(t.Context(), ds[0].ID); err != nil || d.State != store.Pending || !d.NextAttemptAt.Equal(t0.Add(time.Minute)) {
		t.Fatalf("reaped delivery = %+v, %v; want pending, due at the reap", d, err)
	}
	if d, _ := b.Delivery(t.Context(), live[0].ID); d.State != store.Running {
		t.Fatalf("the live lease was reaped: %+v", d)
	}
	err = a.Complete(t.Context(), []store.Completion{{DeliveryID: ds[0].ID, LeaseToken: ds[0].Lease.Token, State: store.Delivered}})
	if !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("Complete after the reap: err = %v, want ErrLeaseLost", err)
	}
}

// TestSharedRateLimit: two stores taking tokens of one destination at once
// share one bucket: 5/s with burst 5 grants 5 in all at an instant, and
// refills at 5/s.
func TestSharedRateLimit(t *testing.T) {
	rs := replicas(t, 2)
	const rate, burst = 5.0, 5
	take := func(now time.Time) int {
		var mu sync.Mutex
		total := 0
		var wg sync.WaitGroup
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				n, _, err := rs[i%2].TakeTokens(context.Background(), "slack", rate, burst, 2, now)
				if err != nil {
					t.Error(err)
				}
				mu.Lock()
				total += n
				mu.Unlock()
			}()
		}
		wg.Wait()
		return total
	}
	steps := []struct {
		at   time.Duration
		want int
	}{
		{0, 5},                       // the full burst, shared
		{100 * time.Millisecond, 0},  // half a token
		{1 * time.Second, 5},         // 1 s of refill (the 0.5 carried counts)
		{1200 * time.Millisecond, 1}, // 0.2 s + what was left
		{10 * time.Second, 5},        // capped at the burst
	}
	for _, st := range steps {
		if got := take(t0.Add(st.at)); got != st.want {
			t.Fatalf("at +%v: granted %d in all, want %d", st.at, got, st.want)
		}
	}
	n, retry, err := rs[0].TakeTokens(t.Context(), "slack", rate, burst, 1, t0.Add(10*time.Second))
	if err != nil || n != 0 || !retry.Equal(t0.Add(10*time.Second+200*time.Millisecond)) {
		t.Fatalf("empty bucket: TakeTokens = %d, %v, %v; want 0, retry at +10.2s", n, retry, err)
	}
	if n, _, err := rs[1].TakeTokens(t.Context(), "other", rate, burst, 3, t0); err != nil || n != 3 {
		t.Fatalf("another destination's bucket = %d, %v; want 3", n, err)
	}
	if n, _, err := rs[1].TakeTokens(t.Context(), "unlimited", 0, 0, 7, t0); err != nil || n != 7 {
		t.Fatalf("rate 0 = %d, %v; want all 7", n, err)
	}
}

// TestSharedBreaker: failures counted across replicas open the breaker for
// all; after the open period exactly one replica probes; its success closes
// it; results from an older generation are ignored.
func TestSharedBreaker(t *testing.T) {
	rs := replicas(t, 2)
	a, b := rs[0], rs[1]
	const threshold, openFor, probe = 3, 30 * time.Second, 10 * time.Second
	permit := func(s *Store, at time.Duration) store.BreakerPermit {
		t.Helper()
		p, err := s.BreakerPermit(t.Context(), "hook", t0.Add(at), probe)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	record := func(s *Store, gen int64, h store.BreakerHealth, at time.Duration) string {
		t.Helper()
		st, err := s.BreakerRecord(t.Context(), "hook", gen, h, threshold, openFor, t0.Add(at))
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	p := permit(a, 0)
	if p.N != -1 {
		t.Fatalf("a fresh breaker: %+v, want closed", p)
	}
	gen := p.Gen
	record(a, gen, store.BreakerFailed, 0)
	record(b, gen, store.BreakerFailed, 0)
	if st := record(a, gen, store.BreakerOK, 0); st != "closed" {
		t.Fatalf("success: state %s", st)
	}
	for i, s := range []*Store{a, b, a} {
		st := record(s, gen, store.BreakerFailed, time.Second)
		if want := map[bool]string{true: "open", false: "closed"}[i == 2]; st != want {
			t.Fatalf("failure %d: state %s, want %s", i+1, st, want)
		}
	}
	if p := permit(b, 10*time.Second); p.N != 0 || !p.Until.Equal(t0.Add(31*time.Second)) {
		t.Fatalf("b while open: %+v; want none until +31s", p)
	}
	// A slow attempt of the old generation fails late: ignored.
	if st := record(b, gen, store.BreakerFailed, 20*time.Second); st != "open" {
		t.Fatalf("stale result: state %s", st)
	}
	pa, pb := permit(a, 31*time.Second), permit(b, 31*time.Second)
	if pa.N+pb.N != 1 || min(pa.N, pb.N) != 0 {
		t.Fatalf("after the open period: a %+v, b %+v; want exactly one probe", pa, pb)
	}
	prober := a
	pp := pa
	if pb.N == 1 {
		prober, pp = b, pb
	}
	if st := record(prober, pp.Gen, store.BreakerOK, 32*time.Second); st != "closed" {
		t.Fatalf("probe success: state %s", st)
	}
	if p := permit(a, 33*time.Second); p.N != -1 {
		t.Fatalf("after the probe: %+v, want closed", p)
	}
}

// TestHeartbeatReplicas: each replica's row, alive within the window.
func TestHeartbeatReplicas(t *testing.T) {
	rs := replicas(t, 2)
	for i, s := range rs {
		info := ReplicaInfo{Version: "v1.2.3", StartedAt: t0, ConfigSHA256: strings.Repeat(fmt.Sprint(i), 64)}
		if err := s.Heartbeat(t.Context(), info, t0.Add(time.Duration(i)*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	got, err := rs[0].Replicas(t.Context(), t0.Add(time.Minute+10*time.Second), 30*time.Second, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.Replica{
		{Name: "rc-1", Version: "v1.2.3", StartedAt: t0, LastSeenAt: t0, ConfigSHA256: strings.Repeat("0", 64), Alive: false},
		{Name: "rc-2", Version: "v1.2.3", StartedAt: t0, LastSeenAt: t0.Add(time.Minute), ConfigSHA256: strings.Repeat("1", 64), Alive: true},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Replicas =\n%+v\nwant\n%+v", got, want)
	}
	got, err = rs[0].Replicas(t.Context(), t0.Add(time.Hour), 30*time.Second, 59*time.Minute+30*time.Second)
	if err != nil || len(got) != 1 || got[0].Name != "rc-2" {
		t.Fatalf("Replicas forgetting after 59m30s = %+v, %v; want only rc-2", got, err)
	}
}

// TestOpenErrorsHideThePassword: a DSN's password never shows in errors.
func TestOpenErrorsHideThePassword(t *testing.T) {
	const pw = "s3cret-Passw0rd"
	for _, dsn := range []string{
		"postgres://rc:" + pw + "@127.0.0.1:1/db?sslmode=disable&connect_timeout=2",
		"host=127.0.0.1 port=1 user=rc password=" + pw + " dbname=db connect_timeout=2",
		"postgres://rc:" + pw + "@127.0.0.1:5432/db?sslmode=bogus",
	} {
		_, err := Open(t.Context(), Options{DSN: dsn, Replica: "rc-1"})
		if err == nil {
			t.Fatalf("Open(%q) succeeded", dsn)
		}
		if strings.Contains(err.Error(), pw) {
			t.Fatalf("Open error shows the password: %v", err)
		}
	}
}

// TestRecoversWhenBackendsAreTerminated: every session of the database is
// killed (as a server restart does); calls fail with an error meanwhile,
// never with a false success, and work again without reopening the store.
func TestRecoversWhenBackendsAreTerminated(t *testing.T) {
	rs := replicas(t, 2)
	s, killer := rs[0], rs[1]
	ingest(t, s, "before", t0, "a")
	eventually(t, "the notifier to listen", func() bool { return s.Connects() >= 1 })
	var n int
	err := killer.pool.QueryRow(t.Context(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name LIKE '%rc-1'`).Scan(&n)
	if err != nil || n < 2 {
		t.Fatalf("terminated %d sessions of rc-1, %v; want the pool's and the notifier's", n, err)
	}
	for i := 0; ; i++ {
		created, err := s.Ingest(t.Context(), store.NewEvent{ID: "after", Type: "RENEWAL", ReceivedAt: t0, Body: []byte(`{}`)})
		if err == nil {
			if !created {
				t.Fatal("Ingest after the restart: duplicate, want created")
			}
			break
		}
		if i == 5 {
			t.Fatalf("Ingest still fails after %d tries: %v", i+1, err)
		}
	}
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping after the restart: %v", err)
	}
	eventually(t, "the notifier to reconnect", func() bool { return s.Connects() >= 2 })
}

// TestStartLeavesOtherLeases: a replica that starts (opens and migrates)
// while another holds leases releases none of them.
func TestStartLeavesOtherLeases(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	a := openDB(t, dsn, "rc-1")
	ingest(t, a, "e1", t0, "d")
	ds, err := a.Claim(t.Context(), a.Replica(), "d", t0, t0.Add(time.Minute), 1)
	if err != nil || len(ds) != 1 {
		t.Fatalf("Claim = %v, %v", ds, err)
	}
	b := openDB(t, dsn, "rc-2")
	if got, err := b.Claim(t.Context(), b.Replica(), "d", t0.Add(time.Second), t0.Add(time.Minute), 10); err != nil || len(got) != 0 {
		t.Fatalf("the new replica claimed %v, %v; want nothing while rc-1's lease runs", got, err)
	}
	err = a.Complete(t.Context(), []store.Completion{{DeliveryID: ds[0].ID, LeaseToken: ds[0].Lease.Token, State: store.Delivered,
		Dispatches: []store.Dispatch{{Attempt: 1, Status: "delivered", CreatedAt: t0}}}})
	if err != nil {
		t.Fatalf("rc-1's Complete after rc-2 started: %v", err)
	}
	if d, _, err := b.Dispatches(t.Context(), store.DispatchFilter{}); err != nil || len(d) != 1 || d[0].Replica != "rc-1" {
		t.Fatalf("dispatches = %+v, %v; want rc-1's record", d, err)
	}
}

// TestNotifierPingsWhenIdle: a silent LISTEN connection is checked with a
// ping, and notices still arrive between pings.
func TestNotifierPingsWhenIdle(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	a := openDB(t, dsn, "rc-1")
	b, err := Open(t.Context(), Options{DSN: dsn, Replica: "rc-2", idlePing: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	wake := b.SubscribeWakeups(t.Context())
	eventually(t, "two idle pings", func() bool { return b.Pings() >= 2 })
	ingest(t, a, "e1", t0, "dest-z")
	recv(t, wake, "a wake-up between pings", func(d string) bool { return d == "dest-z" })
	if b.Connects() != 1 {
		t.Fatalf("notifier connects = %d; idle pings must keep the one session", b.Connects())
	}
}

// TestReplicasSettleTogether: the two deliveries of each event finish on
// two replicas at about the same moment (one claims every "a", the other
// every "b", and both complete in the same order at once), as no
// completion needs to see the other's; Purge finds every event settled and
// deletes it, and an event whose other delivery is still pending stays.
func TestReplicasSettleTogether(t *testing.T) {
	rs := replicas(t, 2)
	const events = 200
	for i := 0; i < events; i++ {
		ingest(t, rs[0], fmt.Sprintf("e%04d", i), t0.Add(time.Duration(i)*time.Millisecond), "a", "b")
	}
	ingest(t, rs[0], "open", t0, "a", "c") // its c is never claimed
	now := t0.Add(time.Minute)
	claimed := make([][]store.Delivery, 2)
	for i, dest := range []string{"a", "b"} {
		ds, err := rs[i].Claim(t.Context(), rs[i].Replica(), dest, now, now.Add(time.Minute), events+1)
		if err != nil {
			t.Fatal(err)
		}
		claimed[i] = ds
	}
	if len(claimed[0]) != events+1 || len(claimed[1]) != events {
		t.Fatalf("claimed %d a and %d b, want %d and %d", len(claimed[0]), len(claimed[1]), events+1, events)
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range rs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for _, d := range claimed[i] {
				err := rs[i].Complete(context.Background(), []store.Completion{{DeliveryID: d.ID, LeaseToken: d.Lease.Token,
					State: store.Delivered, FinishedAt: now,
					Dispatches: []store.Dispatch{{Attempt: 1, Status: "delivered", CreatedAt: now}}}})
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	if t.Failed() {
		return
	}
	deleted := 0
	for {
		// Dispatch records are created at now: only events are old enough.
		n, err := rs[1].Purge(t.Context(), now, 50)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		deleted += n
	}
	if want := events * 3; deleted != want { // each event and its two deliveries
		t.Fatalf("Purge deleted %d rows, want %d", deleted, want)
	}
	if _, err := rs[0].Event(t.Context(), "open"); err != nil {
		t.Fatalf("the event with a pending delivery: %v", err)
	}
	var left int
	if err := rs[0].pool.QueryRow(t.Context(), `SELECT count(*) FROM events`).Scan(&left); err != nil || left != 1 {
		t.Fatalf("%d events left (%v), want 1", left, err)
	}
}
