package sqlite

import (
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rcrouter/rcrouter/internal/store"
)

func TestMigrationsMatchSchemaVersion(t *testing.T) {
	if len(migrations) != store.SchemaVersion {
		t.Fatalf("%d migrations, store.SchemaVersion is %d", len(migrations), store.SchemaVersion)
	}
}

// writeV1 makes the database the first release left: its schema
// (migrations[0], never edited), user_version 1, and rows written with that
// release's statements: e1 to a pending, e1 to b running under a lease
// that ends at t0+1m, e2 to a delivered with one dispatch record; b paused.
func writeV1(t *testing.T, path string) {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	at := ms(t0)
	lease := ms(t0.Add(time.Minute))
	stmts := []struct {
		q    string
		args []any
	}{
		{migrations[0], nil},
		{`INSERT INTO events (id, type, received_at, body, routes, settled) VALUES
			('e1', 'RENEWAL', ?1, '{}', NULL, 0), ('e2', 'RENEWAL', ?1, '{}', '[]', 1)`, []any{at}},
		{`INSERT INTO deliveries (id, event_id, event_type, destination, route, state, next_attempt_at, created_at, updated_at, lease_until)
			VALUES ('d1a', 'e1', 'RENEWAL', 'a', 'r', 'pending', ?1, ?1, ?1, NULL),
			('d1b', 'e1', 'RENEWAL', 'b', 'r', 'running', ?1, ?1, ?1, ?2)`, []any{at, lease}},
		{`INSERT INTO deliveries (id, event_id, event_type, destination, route, state, attempts, tries, next_attempt_at,
			created_at, updated_at, delivered_at) VALUES ('d2a', 'e2', 'RENEWAL', 'a', 'r', 'delivered', 1, 1, ?1, ?1, ?1, ?1)`, []any{at}},
		{`INSERT INTO dispatches (id, delivery_id, event_id, event_type, destination, route, attempt, status, request,
			response, duration_ms, created_at) VALUES ('x1', 'd2a', 'e2', 'RENEWAL', 'a', 'r', 1, 'delivered', '{}', '{}', 5, ?1)`, []any{at}},
		{`INSERT INTO destination_state (name, paused) VALUES ('b', 1)`, nil},
		{`PRAGMA user_version = 1`, nil},
	}
	for _, st := range stmts {
		if _, err := db.Exec(st.q, st.args...); err != nil {
			t.Fatalf("write version 1 database: %v", err)
		}
	}
}

func TestMigrateFromVersion1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rc.db")
	writeV1(t, path)
	s := openTest(t, path, Options{})
	ctx := t.Context()
	if v, err := s.writerPragma("user_version"); err != nil || v != fmt.Sprint(store.SchemaVersion) {
		t.Fatalf("user_version after Open = %s, %v; want %d", v, err, store.SchemaVersion)
	}
	if v, err := s.Migrate(ctx); err != nil || v != store.SchemaVersion {
		t.Fatalf("Migrate = %d, %v", v, err)
	}
	// Every row is still there.
	if d, err := s.Delivery(ctx, "d2a"); err != nil || d.State != store.Delivered || d.Attempts != 1 {
		t.Fatalf("delivered row = %+v, %v", d, err)
	}
	if _, err := s.Dispatch(ctx, "x1"); err != nil {
		t.Fatalf("dispatch record: %v", err)
	}
	if p, err := s.Paused(ctx); err != nil || !p["b"] {
		t.Fatalf("Paused = %v, %v; want b", p, err)
	}
	// e2 was settled under version 1 (settled_events since version 5): Purge
	// takes it with its delivery and record; e1 still holds work.
	if n, err := s.Purge(ctx, t0.Add(time.Hour), 10); err != nil || n != 3 {
		t.Fatalf("Purge = %d, %v; want 3 (x1, e2, d2a)", n, err)
	}
	if _, err := s.Event(ctx, "e2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Event(e2) after Purge: err = %v, want ErrNotFound", err)
	}
	if _, err := s.Event(ctx, "e1"); err != nil {
		t.Fatalf("Event(e1) after Purge: %v", err)
	}
	// The pending row is claimed and completed under the new leases.
	ds, err := s.Claim(ctx, "p1", "a", t0, t0.Add(time.Minute), 10)
	if err != nil || len(ds) != 1 || ds[0].ID != "d1a" || ds[0].Lease.Token == "" {
		t.Fatalf("Claim(a) = %+v, %v; want d1a with a lease", ds, err)
	}
	if err := s.Complete(ctx, []store.Completion{{DeliveryID: "d1a", LeaseToken: ds[0].Lease.Token, State: store.Delivered,
		FinishedAt: t0}}); err != nil {
		t.Fatalf("Complete(d1a): %v", err)
	}
	// The row running under version 1 has no token: no completion holds it,
	// and ReleaseAll at start-up makes it due.
	err = s.Complete(ctx, []store.Completion{{DeliveryID: "d1b", LeaseToken: "any", State: store.Delivered}})
	if !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("Complete of a version-1 lease: err = %v, want ErrLeaseLost", err)
	}
	if n, err := s.ReleaseAll(ctx, t0.Add(time.Second)); err != nil || n != 1 {
		t.Fatalf("ReleaseAll = %d, %v; want 1", n, err)
	}
	if ds, err := s.Claim(ctx, "p1", "b", t0.Add(time.Second), t0.Add(time.Minute), 10); err != nil || len(ds) != 1 || ds[0].ID != "d1b" {
		t.Fatalf("Claim(b) after ReleaseAll = %+v, %v; want d1b", ds, err)
	}
}

func TestOpenSchemaVersions(t *testing.T) {
	tests := []struct {
		name      string
		setup     func(t *testing.T, path string)
		noMigrate bool
		wantErr   string // "" for success
		wantVer   int    // user_version afterwards
	}{
		{name: "new file", setup: func(*testing.T, string) {}, wantVer: store.SchemaVersion},
		{name: "new file, no migrate", setup: func(*testing.T, string) {}, noMigrate: true, wantErr: "schema version is 0", wantVer: 0},
		{name: "version 1, no migrate", setup: writeV1, noMigrate: true, wantErr: "run rcrouter migrate", wantVer: 1},
		{name: "current, no migrate", setup: func(t *testing.T, path string) {
			s, err := Open(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
		}, noMigrate: true, wantVer: store.SchemaVersion},
		{name: "newer than this build", setup: func(t *testing.T, path string) {
			writeV1(t, path)
			setUserVersion(t, path, 99)
		}, wantErr: "newer than this build", wantVer: 99},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "rc.db")
			tt.setup(t, path)
			s, err := Open(path, Options{NoMigrate: tt.noMigrate})
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
			} else if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				if err == nil {
					s.Close()
				}
				t.Fatalf("Open err = %v, want one containing %q", err, tt.wantErr)
			}
			if v := userVersion(t, path); v != tt.wantVer {
				t.Fatalf("user_version afterwards = %d, want %d", v, tt.wantVer)
			}
		})
	}
}

func userVersion(t *testing.T, path string) int {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v int
	if err := db.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func setUserVersion(t *testing.T, path string, v int) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(fmt.Sprintf("PRAGMA user_version = %d", v)); err != nil {
		t.Fatal(err)
	}
}

// TestMigrateIndexesStoredUsers: version 3 indexes the customers and
// transactions of the events already stored, from their bodies, by the rule
// Ingest follows (app_user_id, original_app_user_id, aliases;
// transaction_id, original_transaction_id); a body that is not JSON, or
// has no ids, is kept and indexed under none.
func TestMigrateIndexesStoredUsers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rc.db")
	db, err := sql.Open("sqlite", path+"?_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	insert := `INSERT INTO events (id, type, received_at, body, routes, settled) VALUES (?, 'RENEWAL', ?, ?, NULL, 1)`
	stmts := []struct {
		q    string
		args []any
	}{
		{migrations[0], nil},
		{migrations[1], nil},
		// Bodies are stored as BLOB by Ingest; json1 must read them as text.
		{insert, []any{"e1", ms(t0), []byte(`{"event":{"app_user_id":"alice","original_app_user_id":"$RCAnonymousID:1","aliases":["$RCAnonymousID:1","alice@example.com"],"transaction_id":"T2","original_transaction_id":"T1"}}`)}},
		{insert, []any{"e2", ms(t0.Add(time.Second)), []byte(`{"event":{"app_user_id":"alice","aliases":[],"transaction_id":"T1"}}`)}},
		{insert, []any{"e3", ms(t0.Add(2 * time.Second)), []byte(`not json`)}},
		{insert, []any{"e4", ms(t0.Add(3 * time.Second)), []byte(`{"event":{"app_user_id":"","aliases":"bob","original_app_user_id":7}}`)}},
		{`PRAGMA user_version = 2`, nil},
	}
	for _, st := range stmts {
		if _, err := db.Exec(st.q, st.args...); err != nil {
			db.Close()
			t.Fatalf("write version 2 database: %v", err)
		}
	}
	db.Close()

	s := openTest(t, path, Options{})
	tests := []struct {
		user string
		want []string
	}{
		{"alice", []string{"e2", "e1"}},
		{"$RCAnonymousID:1", []string{"e1"}},
		{"alice@example.com", []string{"e1"}},
		{"bob", []string{"e4"}}, // a lone string where a list belongs still names the customer
		{"7", nil},
		{"", []string{"e4", "e3", "e2", "e1"}},
		{"txn:T1", []string{"e2", "e1"}},
		{"txn:T2", []string{"e1"}},
	}
	for _, tt := range tests {
		t.Run(tt.user, func(t *testing.T) {
			f := store.EventFilter{UserID: tt.user}
			if x, ok := strings.CutPrefix(tt.user, "txn:"); ok {
				f = store.EventFilter{TransactionID: x}
			}
			items, _, err := s.Events(t.Context(), f)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range items {
				got = append(got, e.ID)
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("Events(user %q) = %v, want %v", tt.user, got, tt.want)
			}
		})
	}
}
