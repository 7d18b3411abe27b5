//go:build reliability

// Fault injection on three replicas sharing one PostgreSQL database
// (DESIGN §8). Run with the other long scenarios (RELIABILITY.md):
//
//	go test -tags reliability -run ReliabilityReplicas -v -p 1 -timeout 30m ./cmd/rcrouter
package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rcrouter/rcrouter/internal/store/postgres/pgtest"
)

// replicaLoad posts fresh events to every replica, clients goroutines each,
// until each replica got max or stopped answering.
func replicaLoad(l *ledger, rs []replica, prefix string, clients, max int) []*load {
	loads := make([]*load, len(rs))
	for i, r := range rs {
		loads[i] = startLoad(l, r.addr, fmt.Sprintf("%s-%s", prefix, r.name), clients, max, 0)
	}
	return loads
}

// waitDelivered waits until every acknowledged event reached the sink and
// returns how many did not (lost) and how many extra 2xx deliveries it saw.
func waitDelivered(t *testing.T, l *ledger, sink *recSink, timeout time.Duration) (lost, dups int) {
	t.Helper()
	want := l.expected()["sink"]
	check := func() (int, int) {
		got := sink.delivered()
		lost, dups := 0, 0
		for _, id := range want {
			switch n := got[id]; {
			case n == 0:
				lost++
			case n > 1:
				dups += n - 1
			}
		}
		return lost, dups
	}
	waitEvery(timeout, 100*time.Millisecond, func() bool { n, _ := check(); return n == 0 })
	return check()
}

func TestReliabilityReplicasKillOne(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	sink := newRecSink(t)
	sink.set(0, 30*time.Millisecond) // deliveries are in flight when the kill comes
	rs, _ := startReplicas(t, 3, dsn, sink.URL())
	l := newLedger()
	loads := replicaLoad(l, rs, "kill", 4, 600)
	if !waitUntil(30*time.Second, func() bool { return l.count() >= 600 }) {
		t.Fatalf("load did not reach 600 acknowledged events: %d", l.count())
	}
	started, _, _ := sink.counters()
	kill(t, rs[1].p)
	killedAt := time.Now()
	for _, ld := range loads {
		ld.wait()
	}
	// The dead replica's leases expire, then the others take its work. A
	// lease covers the attempt and, for deliveries claimed ahead, their wait
	// behind the replica's slots: the longest one bounds the recovery.
	until, held := leasesOf(t, dsn, rs[1].name)
	lost, dups := waitDelivered(t, l, sink, time.Until(until)+time.Minute)
	t.Logf("figures: %d events acknowledged by 3 replicas, %s killed with SIGKILL after %d sink requests, holding %d leases "+
		"(the last expiring %s after the kill); lost %d, duplicate deliveries %d (the killed replica's in-flight attempts), "+
		"all delivered %s after the kill; non-200 %v",
		l.count(), rs[1].name, started, held, until.Sub(killedAt).Round(100*time.Millisecond), lost, dups,
		time.Since(killedAt).Round(100*time.Millisecond), l.codes)
	if lost > 0 {
		t.Fatalf("%d acknowledged events never delivered; in the store:\n%s", lost, undelivered(t, dsn))
	}
	// Only the killed replica's attempts in flight repeat: at most its
	// concurrency (4) plus what it had sent and not yet committed.
	if dups > 4+64 {
		t.Errorf("%d duplicates: more than the killed replica can have had in flight", dups)
	}
}

// terminateBackends ends every session on the test database, as a database
// restart does, and returns how many it ended.
func terminateBackends(t *testing.T, dsn string) int {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, pgtest.ServerDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var n int
	if err := c.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = $1 AND pid <> pg_backend_pid()`, strings.TrimPrefix(u.Path, "/")).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestReliabilityReplicasBackendsTerminated(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	sink := newRecSink(t)
	rs, _ := startReplicas(t, 3, dsn, sink.URL())
	l := newLedger()
	loads := replicaLoad(l, rs, "term", 4, 800)
	if !waitUntil(30*time.Second, func() bool { return l.count() >= 300 }) {
		t.Fatalf("load did not reach 300 acknowledged events: %d", l.count())
	}
	ended := 0
	for round := range 5 {
		ended += terminateBackends(t, dsn)
		// The next round once the replicas acknowledge again: each round
		// hits replicas that have just recovered.
		before := l.count()
		if round < 4 && !waitUntil(30*time.Second, func() bool { return l.count() >= before+20 }) {
			t.Fatalf("round %d: no events acknowledged after the sessions were terminated", round+1)
		}
	}
	for _, ld := range loads {
		ld.wait()
	}
	lost, dups := waitDelivered(t, l, sink, time.Minute)
	t.Logf("figures: %d sessions terminated in 5 rounds during load; %d events acknowledged, non-200 answers %v "+
		"(503 without Retry-After: %d), requests without answer %d; lost %d, duplicate deliveries %d",
		ended, l.count(), l.codes, l.noRetryAfter, l.errs, lost, dups)
	if lost > 0 {
		t.Fatalf("%d acknowledged events never delivered", lost)
	}
	if l.noRetryAfter > 0 {
		t.Errorf("%d 503 answers without Retry-After", l.noRetryAfter)
	}
	for code := range l.codes {
		if code != http.StatusServiceUnavailable {
			t.Errorf("answer %d during the outage: only 200 (committed) and 503 are allowed", code)
		}
	}
	for _, r := range rs {
		waitReady(t, r.p, r.addr) // every replica recovered without a restart
	}
}

func TestReliabilityReplicasSharedRateLimit(t *testing.T) {
	const rate, events = 5, 90
	dsn := pgtest.NewDatabase(t)
	sink := newRecSink(t)
	text := strings.Replace(fmt.Sprintf(replicaConfig, procAuth, procAdmin, sink.URL()),
		"    webhook: {url:", fmt.Sprintf("    rate_limit: %d\n    webhook: {url:", rate), 1)
	rs, _ := startReplicasConfig(t, 3, dsn, []byte(text))
	l := newLedger()
	client := &http.Client{Timeout: 10 * time.Second}
	for i := range events {
		id := fmt.Sprintf("rate-%03d", i)
		if code := l.post(client, rs[i%len(rs)].addr, eventBody(id), id); code != 200 {
			t.Fatalf("post %s: %d", id, code)
		}
	}
	lost, _ := waitDelivered(t, l, sink, 2*time.Minute)
	if lost > 0 {
		t.Fatalf("%d events not delivered", lost)
	}
	var at []time.Time
	sink.mu.Lock()
	for _, ts := range sink.first {
		at = append(at, ts)
	}
	sink.mu.Unlock()
	sort.Slice(at, func(i, j int) bool { return at[i].Before(at[j]) })
	// The busiest 3-second window at the sink, all replicas together.
	worst := 0
	for i := range at {
		n := sort.Search(len(at), func(j int) bool { return !at[j].Before(at[i].Add(3 * time.Second)) }) - i
		worst = max(worst, n)
	}
	span := at[len(at)-1].Sub(at[0])
	t.Logf("figures: %d deliveries by 3 replicas at rate_limit %d in %s (%.1f/s); busiest 3 s window %d (limit %d = 3 s × %d + burst %d)",
		len(at), rate, span.Round(10*time.Millisecond), float64(len(at)-1)/span.Seconds(), worst, 3*rate+rate, rate, rate)
	if worst > 3*rate+rate {
		t.Errorf("a 3 s window saw %d deliveries, more than %d: the limit does not hold across replicas", worst, 3*rate+rate)
	}
}

// undelivered describes the deliveries that are not final, for a failure
// message.
func undelivered(t *testing.T, dsn string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err.Error()
	}
	defer c.Close(ctx)
	rows, err := c.Query(ctx, `SELECT event_id || ' ' || state || ' owner=' || COALESCE(lease_owner, '') ||
		' lease_until=' || COALESCE(lease_until::text, '') || ' due_at=' || COALESCE(due_at::text, '') || ' now=' || now()::text
		FROM deliveries WHERE state NOT IN ('delivered', 'dead', 'skipped') ORDER BY event_id LIMIT 20`)
	if err != nil {
		return err.Error()
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err.Error()
	}
	return strings.Join(lines, "\n")
}

// leasesOf returns when the last lease held by owner ends, and how many it
// holds.
func leasesOf(t *testing.T, dsn, owner string) (time.Time, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var until *time.Time
	var n int
	if err := c.QueryRow(ctx, `SELECT max(lease_until), count(*) FROM deliveries WHERE state = 'running' AND lease_owner = $1`,
		owner).Scan(&until, &n); err != nil {
		t.Fatal(err)
	}
	if until == nil {
		return time.Now(), 0
	}
	return *until, n
}
