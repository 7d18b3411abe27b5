package postgres

import (
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rcrouter/rcrouter/destinations"
	"github.com/rcrouter/rcrouter/internal/store"
	"github.com/rcrouter/rcrouter/internal/store/postgres/pgtest"
)

// stmt is one statement of an old database's contents.
type stmt struct {
	q    string
	args []any
}

// openOld writes a database at schema version (its migrations, then
// stmts), opens it, which migrates it to this build's version, and returns
// the store, closed when t ends.
func openOld(t *testing.T, version int, stmts ...stmt) *Store {
	t.Helper()
	dsn := pgtest.NewDatabase(t)
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	var all []stmt
	for _, m := range migrations[:version] {
		all = append(all, stmt{m, nil})
	}
	all = append(all, stmt{`CREATE TABLE schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`, nil},
		stmt{`INSERT INTO schema_migrations (version) SELECT generate_series(1, $1::integer)`, []any{version}})
	for _, st := range append(all, stmts...) {
		if _, err := conn.Exec(t.Context(), st.q, st.args...); err != nil {
			t.Fatalf("write version %d database: %v", version, err)
		}
	}
	s, err := Open(t.Context(), Options{DSN: dsn, Replica: "rc-1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestMigrateIndexesStoredUsers: version 3 indexes the customers and
// transactions of the events a version 2 database holds, from their bodies,
// by the rule Ingest follows (as SQLite's test of the same name).
func TestMigrateIndexesStoredUsers(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	var stmts []stmt
	insert := `INSERT INTO events (id, type, received_at, body, routes, settled) VALUES ($1, 'RENEWAL', $2, $3, NULL, true)`
	for i, body := range []string{
		`{"event":{"app_user_id":"alice","original_app_user_id":"$RCAnonymousID:1","aliases":["$RCAnonymousID:1","alice@example.com"],"transaction_id":"T2","original_transaction_id":"T1"}}`,
		`{"event":{"app_user_id":"alice","aliases":[],"transaction_id":"T1"}}`,
		`not json`,
		`{"event":{"app_user_id":"","aliases":"bob","original_app_user_id":7}}`,
	} {
		stmts = append(stmts, stmt{insert, []any{"e" + string(rune('1'+i)), t0.Add(time.Duration(i) * time.Second), []byte(body)}})
	}
	s := openOld(t, 2, stmts...)
	tests := []struct {
		name string
		f    store.EventFilter
		want string
	}{
		{"app user id", store.EventFilter{UserID: "alice"}, "e2,e1"},
		{"original id", store.EventFilter{UserID: "$RCAnonymousID:1"}, "e1"},
		{"alias", store.EventFilter{UserID: "alice@example.com"}, "e1"},
		{"a lone alias string", store.EventFilter{UserID: "bob"}, "e4"},
		{"not a string", store.EventFilter{UserID: "7"}, ""},
		{"everything", store.EventFilter{}, "e4,e3,e2,e1"},
		{"transaction", store.EventFilter{TransactionID: "T1"}, "e2,e1"},
		{"original transaction", store.EventFilter{TransactionID: "T2"}, "e1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			items, _, err := s.Events(t.Context(), tt.f)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range items {
				got = append(got, e.ID)
			}
			if strings.Join(got, ",") != tt.want {
				t.Fatalf("Events(%+v) = %v, want %s", tt.f, got, tt.want)
			}
		})
	}
}

// TestMigrateSettleChecks: a version 5 database, whose events carry a
// settled flag, migrates to settle checks: Purge deletes the events that
// were settled and keeps the one still holding work.
func TestMigrateSettleChecks(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	s := openOld(t, 5,
		stmt{`INSERT INTO events (id, type, received_at, body, routes, settled) VALUES
			('done', 'RENEWAL', $1, '{}', NULL, true), ('unrouted', 'RENEWAL', $1, '{}', NULL, true),
			('open', 'RENEWAL', $1, '{}', NULL, false)`, []any{t0}},
		stmt{`INSERT INTO deliveries (id, event_id, event_type, destination, route, state, next_attempt_at, created_at, updated_at, delivered_at)
			VALUES ('d1', 'done', 'RENEWAL', 'a', 'r', 'delivered', $1, $1, $1, $1),
			('d2', 'open', 'RENEWAL', 'a', 'r', 'delivered', $1, $1, $1, $1),
			('d3', 'open', 'RENEWAL', 'b', 'r', 'retrying', $1, $1, $1, NULL)`, []any{t0}})
	n, err := s.Purge(t.Context(), t0.Add(time.Hour), 10)
	if err != nil || n != 3 { // done and d1, unrouted
		t.Fatalf("Purge = %d, %v; want 3", n, err)
	}
	for _, tt := range []struct {
		id   string
		kept bool
	}{{"done", false}, {"unrouted", false}, {"open", true}} {
		_, err := s.Event(t.Context(), tt.id)
		if tt.kept != (err == nil) {
			t.Errorf("Event(%s): %v, want kept %v", tt.id, err, tt.kept)
		}
	}
}

// TestDispatchBodyStoredAsReference: a request that sent its event's own
// bytes is stored with a flag and without them; another body is stored as it
// is (storetest's DispatchBodyOfEvent reads both back whole).
func TestDispatchBodyStoredAsReference(t *testing.T) {
	s := openNew(t)
	ctx := t.Context()
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	body := `{"event":{"id":"evt-1","type":"RENEWAL"}}`
	if _, err := s.Ingest(ctx, store.NewEvent{ID: "evt-1", Type: "RENEWAL", ReceivedAt: t0, Body: []byte(body),
		Deliveries: []store.NewDelivery{{Destination: "raw", Route: "r"}, {Destination: "templated", Route: "r"}}}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, destination, body string
		ref                     bool
	}{
		{"raw body", "raw", body, true},
		{"another body", "templated", `{"text":"renewal"}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds, err := s.Claim(ctx, "rc-1", tt.destination, t0, t0.Add(time.Minute), 1)
			if err != nil || len(ds) != 1 {
				t.Fatalf("Claim = %v, %v", ds, err)
			}
			cs := []store.Completion{{DeliveryID: ds[0].ID, LeaseToken: ds[0].Lease.Token, State: store.Delivered, FinishedAt: t0,
				Dispatches: []store.Dispatch{{Attempt: 1, Status: "delivered", CreatedAt: t0,
					Request: destinations.Request{Method: "POST", URL: "http://127.0.0.1/hook", Body: tt.body}}}}}
			if err := s.Complete(ctx, cs); err != nil {
				t.Fatal(err)
			}
			var ref bool
			var stored string
			if err := s.pool.QueryRow(ctx, `SELECT request_body_event, request FROM dispatches WHERE id = $1`,
				cs[0].Dispatches[0].ID).Scan(&ref, &stored); err != nil {
				t.Fatal(err)
			}
			if ref != tt.ref || (tt.ref && strings.Contains(stored, "evt-1")) {
				t.Fatalf("stored request_body_event = %v, request %s; want reference %v", ref, stored, tt.ref)
			}
		})
	}
}
