package sqlite

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	dest "github.com/rcrouter/rcrouter/destinations"
	"github.com/rcrouter/rcrouter/internal/store"
	"github.com/rcrouter/rcrouter/internal/store/storetest"
)

// readOnlyChildEnv makes the test binary, run as another user by
// TestReadOnlyFile, open the database it names and report.
const readOnlyChildEnv = "RCROUTER_SQLITE_READONLY_CHILD"

func TestMain(m *testing.M) {
	if path := os.Getenv(readOnlyChildEnv); path != "" {
		if err := checkReadOnly(path); err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		fmt.Println("ok")
		os.Exit(0)
	}
	os.Exit(m.Run())
}

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func openTest(t *testing.T, path string, opts Options) *Store {
	t.Helper()
	s, err := Open(path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// openHooked opens a store whose enqueue hook reports on the returned channel.
func openHooked(t *testing.T, opts Options) (*Store, chan struct{}) {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "rc.db"), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	enq := make(chan struct{}, 1024)
	s.onEnqueue = func() { enq <- struct{}{} }
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s, enq
}

func newEvent(id string, dests ...string) store.NewEvent {
	e := store.NewEvent{ID: id, Type: "RENEWAL", ReceivedAt: t0, Body: []byte(`{"event":{"id":"` + id + `"}}`)}
	for _, d := range dests {
		e.Deliveries = append(e.Deliveries, store.NewDelivery{Destination: d, Route: "r"})
	}
	return e
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		// A missing parent directory is created.
		return openTest(t, filepath.Join(t.TempDir(), "data", "nested", "rc.db"), Options{})
	})
}

func TestOpenSetsPragmas(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "rc.db"), Options{})
	tests := []struct{ pragma, want string }{
		{"journal_mode", "wal"},
		{"synchronous", "2"}, // FULL
		{"foreign_keys", "1"},
		{"busy_timeout", "5000"},
		{"user_version", fmt.Sprint(len(migrations))},
	}
	for _, tt := range tests {
		t.Run(tt.pragma, func(t *testing.T) {
			got, err := s.writerPragma(tt.pragma)
			if err != nil || got != tt.want {
				t.Fatalf("PRAGMA %s = %q, %v; want %q", tt.pragma, got, err, tt.want)
			}
		})
	}
}

// TestGroupCommit queues n ingests while the writer is busy and counts the
// transactions that serve them.
func TestGroupCommit(t *testing.T) {
	tests := []struct {
		name     string
		maxBatch int
		n        int
		wantTx   int64
	}{
		{"50 ingests share one commit", 256, 50, 1},
		{"batches hold at most MaxBatch", 8, 50, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, enq := openHooked(t, Options{MaxBatch: tt.maxBatch, QueueSize: 64})
			release := s.hold(t)
			<-enq
			before := s.commitCount()
			var wg sync.WaitGroup
			errs := make(chan error, tt.n)
			for i := 0; i < tt.n; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					created, err := s.Ingest(t.Context(), newEvent(fmt.Sprintf("evt-%d", i), "a", "b", "c"))
					if err == nil && !created {
						err = fmt.Errorf("evt-%d: not created", i)
					}
					errs <- err
				}()
			}
			for i := 0; i < tt.n; i++ {
				<-enq
			}
			release()
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			// +1: the held request's own transaction.
			if got := s.commitCount() - before; got != tt.wantTx+1 {
				t.Fatalf("%d ingests took %d transactions, want %d", tt.n, got-1, tt.wantTx)
			}
			ds, err := s.EventDeliveries(t.Context(), "evt-7")
			if err != nil || len(ds) != 3 {
				t.Fatalf("EventDeliveries(evt-7) = %d rows, %v; want 3", len(ds), err)
			}
		})
	}
}

// TestBatchSemantics runs requests that meet in one batch, in a known order.
func TestBatchSemantics(t *testing.T) {
	type outcome struct {
		created bool
		err     error
	}
	tests := []struct {
		name string
		// queue queues requests one at a time (each waits for its enqueue)
		// and returns how to read their outcomes once the batch ran.
		run func(t *testing.T, s *Store, enq chan struct{})
	}{
		{"same id twice: first creates, second is a duplicate", func(t *testing.T, s *Store, enq chan struct{}) {
			a, b := newEvent("evt-1", "a"), newEvent("evt-1", "b")
			a.Body, b.Body = []byte(`"first"`), []byte(`"second"`)
			out := make([]chan outcome, 2)
			release := s.hold(t)
			<-enq
			for i, e := range []store.NewEvent{a, b} {
				out[i] = make(chan outcome, 1)
				go func() {
					created, err := s.Ingest(context.Background(), e)
					out[i] <- outcome{created, err}
				}()
				<-enq
			}
			release()
			if o := <-out[0]; !o.created || o.err != nil {
				t.Fatalf("first = %+v, want created", o)
			}
			if o := <-out[1]; o.created || o.err != nil {
				t.Fatalf("second = %+v, want duplicate", o)
			}
			e, err := s.Event(t.Context(), "evt-1")
			if err != nil || string(e.Body) != `"first"` {
				t.Fatalf("Event = %s, %v; want the first body", e.Body, err)
			}
			ds, err := s.EventDeliveries(t.Context(), "evt-1")
			if err != nil || len(ds) != 1 || ds[0].Destination != "a" {
				t.Fatalf("deliveries = %+v, %v; want only the first's", ds, err)
			}
		}},
		{"a failed write fails the whole batch", func(t *testing.T, s *Store, enq chan struct{}) {
			release := s.hold(t)
			<-enq
			out := make(chan error, 3)
			go func() { _, err := s.Ingest(context.Background(), newEvent("evt-1", "a")); out <- err }()
			<-enq
			go func() { out <- s.poison(context.Background()) }()
			<-enq
			go func() { _, err := s.Ingest(context.Background(), newEvent("evt-2", "a")); out <- err }()
			<-enq
			release()
			for i := 0; i < 3; i++ {
				if err := <-out; !errors.Is(err, errPoison) {
					t.Fatalf("request %d err = %v, want the batch's error", i, err)
				}
			}
			for _, id := range []string{"evt-1", "evt-2"} {
				if _, err := s.Event(t.Context(), id); !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("Event(%s) after a failed batch: err = %v, want ErrNotFound", id, err)
				}
			}
			if created, err := s.Ingest(t.Context(), newEvent("evt-1", "a")); !created || err != nil {
				t.Fatalf("Ingest after a failed batch = %v, %v; want created", created, err)
			}
		}},
		{"a rejected request does not fail the batch", func(t *testing.T, s *Store, enq chan struct{}) {
			release := s.hold(t)
			<-enq
			retried, ingested := make(chan error, 1), make(chan error, 1)
			go func() { retried <- s.Retry(context.Background(), "no-such-delivery", t0) }()
			<-enq
			go func() { _, err := s.Ingest(context.Background(), newEvent("evt-1", "a")); ingested <- err }()
			<-enq
			release()
			if err := <-retried; !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("Retry err = %v, want ErrNotFound", err)
			}
			if err := <-ingested; err != nil {
				t.Fatalf("Ingest err = %v", err)
			}
			if _, err := s.Event(t.Context(), "evt-1"); err != nil {
				t.Fatalf("Event: %v", err)
			}
		}},
		{"a caller that gives up is answered and its write skipped", func(t *testing.T, s *Store, enq chan struct{}) {
			release := s.hold(t)
			<-enq
			ctx, cancel := context.WithCancel(context.Background())
			out := make(chan error, 1)
			go func() { _, err := s.Ingest(ctx, newEvent("evt-gone", "a")); out <- err }()
			<-enq
			cancel()
			if err := <-out; !errors.Is(err, context.Canceled) {
				t.Fatalf("Ingest err = %v, want context.Canceled", err)
			}
			release()
			if err := s.Ping(t.Context()); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Event(t.Context(), "evt-gone"); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("Event of an abandoned ingest: err = %v, want ErrNotFound", err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, enq := openHooked(t, Options{})
			tt.run(t, s, enq)
		})
	}
}

func TestCloseFinishesQueuedRequests(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rc.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	enq, closing := make(chan struct{}, 4), make(chan struct{})
	s.onEnqueue = func() { enq <- struct{}{} }
	s.onClosing = func() { close(closing) }

	release := s.hold(t)
	<-enq
	out := make(chan error, 1)
	go func() {
		created, err := s.Ingest(context.Background(), newEvent("evt-1", "a"))
		if err == nil && !created {
			err = errors.New("not created")
		}
		out <- err
	}()
	<-enq
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	<-closing // Close has begun: no new request is accepted
	if _, err := s.Ingest(t.Context(), newEvent("evt-2", "a")); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Ingest while closing: err = %v, want ErrClosed", err)
	}
	release()
	if err := <-out; err != nil {
		t.Fatalf("queued Ingest: %v", err)
	}
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = openTest(t, path, Options{})
	if _, err := s.Event(t.Context(), "evt-1"); err != nil {
		t.Fatalf("queued event after reopen: %v", err)
	}
}

func TestReopenKeepsEverything(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rc.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := s.Ingest(ctx, newEvent("evt-1", "a", "b")); err != nil {
		t.Fatal(err)
	}
	ds, err := s.Claim(ctx, "p1", "a", t0, t0.Add(time.Minute), 1)
	if err != nil || len(ds) != 1 {
		t.Fatalf("Claim = %v, %v", ds, err)
	}
	cs := []store.Completion{{DeliveryID: ds[0].ID, LeaseToken: ds[0].Lease.Token, State: store.Delivered, FinishedAt: t0,
		Dispatches: []store.Dispatch{{Attempt: 1, Status: "delivered", CreatedAt: t0}}}}
	if err := s.Complete(ctx, cs); err != nil {
		t.Fatal(err)
	}
	inflight, err := s.Claim(ctx, "p1", "b", t0, t0.Add(time.Minute), 1)
	if err != nil || len(inflight) != 1 {
		t.Fatalf("Claim = %v, %v", inflight, err)
	}
	if err := s.SetPaused(ctx, "b", true); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopening migrates nothing and finds every row.
	s = openTest(t, path, Options{})
	if v, err := s.writerPragma("user_version"); err != nil || v != fmt.Sprint(len(migrations)) {
		t.Fatalf("user_version = %s, %v", v, err)
	}
	if _, err := s.Event(ctx, "evt-1"); err != nil {
		t.Fatal(err)
	}
	if d, err := s.Delivery(ctx, ds[0].ID); err != nil || d.State != store.Delivered {
		t.Fatalf("delivery = %+v, %v; want delivered", d, err)
	}
	if _, err := s.Dispatch(ctx, cs[0].Dispatches[0].ID); err != nil {
		t.Fatal(err)
	}
	if p, err := s.Paused(ctx); err != nil || !p["b"] {
		t.Fatalf("Paused = %v, %v; want b", p, err)
	}
	// Start-up of a single process: leases lived in the process that
	// closed, so what was in flight is due at once, with nothing to release.
	if d, err := s.Delivery(ctx, inflight[0].ID); err != nil || d.State != store.Pending {
		t.Fatalf("in-flight delivery after reopening = %+v, %v; want pending", d, err)
	}
	if n, err := s.ReleaseAll(ctx, t0.Add(time.Second)); err != nil || n != 0 {
		t.Fatalf("ReleaseAll = %d, %v; want 0", n, err)
	}
	// The dead process's lease is gone: its late completion is refused,
	// before and after another claim.
	late := []store.Completion{{DeliveryID: inflight[0].ID, LeaseToken: inflight[0].Lease.Token, State: store.Delivered}}
	if err := s.Complete(ctx, late); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("Complete of a lease from the closed store: err = %v, want ErrLeaseLost", err)
	}
	got, err := s.Claim(ctx, "p2", "b", t0.Add(time.Second), t0.Add(time.Minute), 10)
	if err != nil || len(got) != 1 {
		t.Fatalf("Claim after reopening = %d rows, %v; want 1", len(got), err)
	}
	if err := s.Complete(ctx, late); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("Complete of a lease from the closed store after a new claim: err = %v, want ErrLeaseLost", err)
	}
}

// isReadOnly reports whether err is SQLite's SQLITE_READONLY (any extended code).
func isReadOnly(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_READONLY
}

// TestReadOnlyWhileRunning: a file that stops being writable under a running
// store (a read-only remount) makes SQLite answer SQLITE_READONLY on the open
// connection; query_only produces exactly that answer. Ping and Ingest must
// fail, not report success, and work again once writes do.
func TestReadOnlyWhileRunning(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "rc.db"), Options{})
	ctx := t.Context()
	if err := s.setQueryOnly(true); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); !isReadOnly(err) {
		t.Fatalf("Ping on a read-only database: err = %v, want SQLITE_READONLY", err)
	}
	created, err := s.Ingest(ctx, newEvent("evt-1", "a"))
	if !isReadOnly(err) || created {
		t.Fatalf("Ingest on a read-only database = %v, %v; want SQLITE_READONLY", created, err)
	}
	if err := s.setQueryOnly(false); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping after recovery: %v", err)
	}
	if created, err := s.Ingest(ctx, newEvent("evt-1", "a")); !created || err != nil {
		t.Fatalf("Ingest after recovery = %v, %v; want created", created, err)
	}
}

// TestReadOnlyFile: a database file and directory made read-only (chmod)
// cannot be used to accept events. Mode bits do not bind root, so when the
// test runs as root it checks from a copy of the test binary running as
// nobody (uid 65534).
func TestReadOnlyFile(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "db")
	path := filepath.Join(dir, "rc.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Ingest(t.Context(), newEvent("evt-1", "a")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o444); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(dir, 0o755) }) // let TempDir's cleanup delete it

	if os.Geteuid() != 0 {
		if err := checkReadOnly(path); err != nil {
			t.Fatal(err)
		}
		return
	}
	// nobody must reach base and run the binary copy there.
	for _, d := range []string{filepath.Dir(base), base} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(base, "store.test")
	if err := copyFile(bin, os.Args[0]); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), readOnlyChildEnv+"="+path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("check as nobody: %v: %s", err, out)
	}
}

// checkReadOnly opens a database the process cannot write. Opening fails
// (switching it to WAL mode needs a write); were it to succeed, Ping and
// Ingest must both fail.
func checkReadOnly(path string) error {
	s, err := Open(path, Options{})
	if err != nil {
		if !isReadOnly(err) {
			return fmt.Errorf("Open: %v, want SQLITE_READONLY", err)
		}
		return nil
	}
	defer s.Close()
	if err := s.Ping(context.Background()); err == nil {
		return errors.New("Ping on a read-only database succeeded")
	}
	if created, err := s.Ingest(context.Background(), newEvent("evt-2", "a")); err == nil || created {
		return fmt.Errorf("Ingest on a read-only database = %v, %v; want an error", created, err)
	}
	return nil
}

func copyFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// TestQueryPlans pins the indexes the hot and periodic queries use, so a
// schema change cannot silently turn them into scans or full sorts.
func TestQueryPlans(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "rc.db"), Options{})
	page := func(f store.DispatchFilter) (string, []any) {
		q, args, _, err := dispatchQuery(f)
		if err != nil {
			t.Fatal(err)
		}
		return q, args
	}
	cursor := encodeCursor(1, "x")
	events := func(f store.EventFilter) (string, []any) {
		q, args, _, err := eventQuery(f)
		if err != nil {
			t.Fatal(err)
		}
		return q, args
	}
	tests := []struct {
		name string
		q    func() (string, []any)
		want []string // each must appear in the plan
	}{
		{"claim", func() (string, []any) { return claimSQL, []any{"a", 1} },
			[]string{"SEARCH d USING INDEX deliveries_due (destination=? AND due_at<?)"}},
		{"release all", func() (string, []any) { return releaseAllSQL, []any{1} },
			[]string{"USING COVERING INDEX deliveries_state (destination=? AND state=?)"}},
		{"purge events", func() (string, []any) { return purgeEventsSQL, []any{1, 10} },
			[]string{"SEARCH s USING PRIMARY KEY (received_at<?)"}},
		{"stats states", func() (string, []any) { return statsStatesSQL, []any{"a"} },
			[]string{"USING COVERING INDEX deliveries_state (destination=? AND state=?)"}},
		{"stats delivered", func() (string, []any) { return statsDeliveredSQL, []any{"a", 1} },
			[]string{"USING COVERING INDEX deliveries_delivered (destination=? AND delivered_at>?)"}},
		{"stats failed", func() (string, []any) { return statsFailedSQL, []any{"a", 1} },
			[]string{"USING COVERING INDEX dispatches_failed (destination=? AND status=? AND created_at>?)"}},
		{"dispatches newest", func() (string, []any) { return page(store.DispatchFilter{Before: cursor}) },
			[]string{"USING INDEX dispatches_created"}},
		{"dispatches by destination", func() (string, []any) { return page(store.DispatchFilter{Destination: "a", Before: cursor}) },
			[]string{"USING INDEX dispatches_destination (destination=?"}},
		{"dispatches by event", func() (string, []any) { return page(store.DispatchFilter{EventID: "e"}) },
			[]string{"USING INDEX dispatches_event (event_id=?)"}},
		{"dispatches by status", func() (string, []any) { return page(store.DispatchFilter{Status: "dead"}) },
			[]string{"USING INDEX dispatches_status (status=?)"}},
		{"events newest", func() (string, []any) { return events(store.EventFilter{Before: cursor}) },
			[]string{"SEARCH e USING INDEX events_received"}},
		{"events of a window", func() (string, []any) {
			return events(store.EventFilter{Since: t0, Until: t0.Add(time.Hour), Before: cursor})
		},
			[]string{"SEARCH e USING INDEX events_received (received_at>? AND received_at<?)"}},
		{"events by transaction", func() (string, []any) { return events(store.EventFilter{TransactionID: "x", Before: cursor}) },
			[]string{"SEARCH u USING PRIMARY KEY (transaction_id=? AND (received_at,event_id)<(?,?))"}},
		{"route matches", func() (string, []any) { return routeMatchesSQL, []any{1} },
			[]string{"SEARCH e USING INDEX events_received (received_at>?)"}},
		{"dispatch buckets", func() (string, []any) { return bucketsSQL, []any{"a", 1, 2} },
			[]string{"SEARCH dispatches USING INDEX dispatches_destination (destination=? AND created_at>? AND created_at<?)"}},
		{"timeline", func() (string, []any) {
			return events(store.EventFilter{UserID: "u", Type: "RENEWAL", Since: t0, Until: t0.Add(time.Hour), Before: cursor})
		}, []string{"SEARCH u USING PRIMARY KEY (user_id=? AND received_at>? AND received_at<?)", "SEARCH e USING INDEX sqlite_autoindex_events_1 (id=?)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, args := tt.q()
			rows, err := s.rdb.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+q, args...)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var plan []string
			for rows.Next() {
				var id, parent, unused int
				var detail string
				if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
					t.Fatal(err)
				}
				plan = append(plan, detail)
			}
			all := strings.Join(plan, "\n")
			for _, w := range tt.want {
				if !strings.Contains(all, w) {
					t.Errorf("plan lacks %q:\n%s", w, all)
				}
			}
			if strings.Contains(all, "TEMP B-TREE") || strings.Contains(all, "SCAN d\n") || strings.HasPrefix(all, "SCAN ") {
				t.Errorf("plan sorts or scans:\n%s", all)
			}
		})
	}
}

// TestDispatchBodyIsTheEvents: a request that sent the event's own bytes is
// stored as a reference to them and read back whole; another body is stored
// as it is (storetest's DispatchBodyOfEvent checks Purge keeps the event).
func TestDispatchBodyIsTheEvents(t *testing.T) {
	ctx := t.Context()
	s := openTest(t, filepath.Join(t.TempDir(), "rc.db"), Options{})
	e := newEvent("evt-1", "raw", "templated")
	if _, err := s.Ingest(ctx, e); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, destination, body string
		ref                     bool // stored as a reference
	}{
		{"raw body", "raw", string(e.Body), true},
		{"another body", "templated", `{"text":"renewal"}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds, err := s.Claim(ctx, "p1", tt.destination, t0, t0.Add(time.Minute), 1)
			if err != nil || len(ds) != 1 {
				t.Fatalf("Claim = %v, %v", ds, err)
			}
			rec := store.Dispatch{Attempt: 1, Status: "delivered", CreatedAt: t0.Add(48 * time.Hour),
				Request: dest.Request{Method: "POST", URL: "http://127.0.0.1/hook", Body: tt.body}}
			cs := []store.Completion{{DeliveryID: ds[0].ID, LeaseToken: ds[0].Lease.Token, State: store.Delivered, FinishedAt: t0,
				Dispatches: []store.Dispatch{rec}}}
			if err := s.Complete(ctx, cs); err != nil {
				t.Fatal(err)
			}
			id := cs[0].Dispatches[0].ID
			got, err := s.Dispatch(ctx, id)
			if err != nil || got.Request.Body != tt.body || got.Request.Method != "POST" {
				t.Fatalf("Dispatch = %+v, %v; want request body %q", got.Request, err, tt.body)
			}
			var ref bool
			var stored string
			if err := s.rdb.QueryRowContext(ctx, `SELECT request_body_event, request FROM dispatches WHERE id = ?`, id).Scan(&ref, &stored); err != nil {
				t.Fatal(err)
			}
			if ref != tt.ref || (tt.ref && strings.Contains(stored, "evt-1")) {
				t.Fatalf("stored request_body_event = %v, request %s; want reference %v", ref, stored, tt.ref)
			}
		})
	}
}

// TestCompleteFindsAMovedRow: a completion writes the row by the rowid its
// claim read; a row whose rowid changed since (nothing in the store does
// that, a VACUUM could) is written by its id, and settles its event.
func TestCompleteFindsAMovedRow(t *testing.T) {
	ctx := t.Context()
	s := openTest(t, filepath.Join(t.TempDir(), "rc.db"), Options{})
	if _, err := s.Ingest(ctx, newEvent("evt-1", "a")); err != nil {
		t.Fatal(err)
	}
	ds, err := s.Claim(ctx, "p1", "a", t0, t0.Add(time.Minute), 1)
	if err != nil || len(ds) != 1 {
		t.Fatalf("Claim = %v, %v", ds, err)
	}
	err = s.do(ctx, func(w *writer) error {
		_, err := w.conn.ExecContext(w.ctx, `UPDATE deliveries SET rowid = rowid + 1000 WHERE id = ?`, ds[0].ID)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Complete(ctx, []store.Completion{{DeliveryID: ds[0].ID, LeaseToken: ds[0].Lease.Token, State: store.Delivered,
		FinishedAt: t0}}); err != nil {
		t.Fatal(err)
	}
	if d, err := s.Delivery(ctx, ds[0].ID); err != nil || d.State != store.Delivered || d.Tries != 1 {
		t.Fatalf("Delivery = %+v, %v; want delivered after one try", d, err)
	}
	if n, err := s.Purge(ctx, t0.Add(time.Hour), 10); err != nil || n != 2 {
		t.Fatalf("Purge = %d, %v; want 2 (the settled event and its delivery)", n, err)
	}
}
