package sqlite

import (
	"context"
	"database/sql"
	"fmt"
)

// migrations[i] moves the schema from version i to i+1 (store.SchemaVersion
// is len(migrations)); the version is kept in PRAGMA user_version. Entries
// are never edited once released; a change is a new entry, and takes the
// same number in every store (store/postgres).
//
// Times are INTEGER Unix milliseconds (UTC). Indexes, and the query each one
// serves:
//   - settled_events (received_at, event_id), the table itself (version 5;
//     before, events_settled (received_at) WHERE settled = 1): Purge, which
//     then costs O(limit) however many old events still hold work.
//   - deliveries_due (destination, due_at) WHERE due_at IS NOT NULL: Claim.
//     due_at is when a row can next be claimed (next_attempt_at while pending
//     or retrying, lease_until while running, NULL when final), so a claim is
//     one ordered range scan over unfinished rows only, however many final
//     rows the table holds.
//   - deliveries_state (destination, state, created_at): Stats counts and
//     oldest pending, Replay, Release of every running row.
//   - deliveries_event (event_id, destination) UNIQUE: an event's deliveries;
//     a destination gets an event at most once.
//   - deliveries_delivered (destination, delivered_at): Stats delivered
//     counter and last success.
//   - dispatches: one index per list filter, each ending in (created_at, id)
//     so a filtered page is an ordered range scan; (destination, status,
//     created_at) of failed attempts only counts failures for Stats.
//   - events_received (received_at, id): Events without a user, newest
//     first (the event list and the route backtest's window).
//   - event_users (user_id, received_at, event_id), the table itself: a
//     customer's timeline (Events with a user) is one ordered range scan
//     whatever the table holds; event_users_event (event_id) lets Purge
//     drop an event's rows. event_transactions is the same for store
//     transaction ids (the UI's search box).
var migrations = []string{
	`
CREATE TABLE events (
	id          TEXT PRIMARY KEY,
	type        TEXT NOT NULL,
	received_at INTEGER NOT NULL,
	body        BLOB NOT NULL,
	routes      TEXT,
	-- settled: every delivery is delivered or skipped (true when unrouted).
	-- Kept up to date by each write that changes a delivery's state, so
	-- Purge reads only what it may delete, never the backlog.
	settled     INTEGER NOT NULL
);
CREATE INDEX events_settled ON events (received_at) WHERE settled = 1;

CREATE TABLE deliveries (
	id              TEXT PRIMARY KEY,
	event_id        TEXT NOT NULL REFERENCES events (id),
	event_type      TEXT NOT NULL,
	destination     TEXT NOT NULL,
	route           TEXT NOT NULL,
	state           TEXT NOT NULL,
	attempts        INTEGER NOT NULL DEFAULT 0,
	tries           INTEGER NOT NULL DEFAULT 0,
	next_attempt_at INTEGER NOT NULL,
	lease_until     INTEGER,
	created_at      INTEGER NOT NULL,
	updated_at      INTEGER NOT NULL,
	delivered_at    INTEGER,
	last_error      TEXT NOT NULL DEFAULT '',
	due_at          INTEGER GENERATED ALWAYS AS (
		CASE state
			WHEN 'pending' THEN next_attempt_at
			WHEN 'retrying' THEN next_attempt_at
			WHEN 'running' THEN lease_until
		END) VIRTUAL
);
CREATE INDEX deliveries_due ON deliveries (destination, due_at) WHERE due_at IS NOT NULL;
CREATE INDEX deliveries_state ON deliveries (destination, state, created_at);
CREATE UNIQUE INDEX deliveries_event ON deliveries (event_id, destination);
CREATE INDEX deliveries_delivered ON deliveries (destination, delivered_at) WHERE delivered_at IS NOT NULL;

CREATE TABLE dispatches (
	id              TEXT PRIMARY KEY,
	delivery_id     TEXT NOT NULL,
	event_id        TEXT NOT NULL,
	event_type      TEXT NOT NULL,
	destination     TEXT NOT NULL,
	route           TEXT NOT NULL,
	attempt         INTEGER NOT NULL,
	status          TEXT NOT NULL,
	request         TEXT NOT NULL,
	response        TEXT NOT NULL,
	duration_ms     INTEGER NOT NULL,
	created_at      INTEGER NOT NULL,
	next_attempt_at INTEGER
);
CREATE INDEX dispatches_created ON dispatches (created_at, id);
CREATE INDEX dispatches_destination ON dispatches (destination, created_at, id);
CREATE INDEX dispatches_event ON dispatches (event_id, created_at, id);
CREATE INDEX dispatches_status ON dispatches (status, created_at, id);
CREATE INDEX dispatches_failed ON dispatches (destination, status, created_at);

CREATE TABLE destination_state (
	name          TEXT PRIMARY KEY,
	paused        INTEGER NOT NULL DEFAULT 0,
	last_error    TEXT NOT NULL DEFAULT '',
	last_error_at INTEGER
);

-- heartbeat is what Ping writes: a real committed write proves the file is writable.
CREATE TABLE heartbeat (
	id INTEGER PRIMARY KEY CHECK (id = 1),
	at INTEGER NOT NULL
);
`,
	// 2: a lease names its owner and the claim that holds it (a token unique
	// per claim), so Complete and Release can fence off a superseded holder;
	// a dispatch record names the replica that made it.
	// Rows of version 1 that are running keep no token: only ReleaseAll or
	// a claim after their lease ends takes them again.
	`
ALTER TABLE deliveries ADD COLUMN lease_owner TEXT;
ALTER TABLE deliveries ADD COLUMN lease_token TEXT;
ALTER TABLE dispatches ADD COLUMN replica TEXT NOT NULL DEFAULT '';
`,
	// 3: events by received_at, and the customer index: one row per (user
	// id, event) for app_user_id, original_app_user_id and each alias,
	// written by Ingest from NewEvent.UserIDs; the transaction index alike
	// from NewEvent.TransactionIDs. Events stored before are indexed here
	// from their bodies, by the same rule.
	`
CREATE INDEX events_received ON events (received_at, id);

CREATE TABLE event_users (
	user_id     TEXT NOT NULL,
	received_at INTEGER NOT NULL,
	event_id    TEXT NOT NULL,
	PRIMARY KEY (user_id, received_at, event_id)
) WITHOUT ROWID;
CREATE INDEX event_users_event ON event_users (event_id);

CREATE TABLE event_transactions (
	transaction_id TEXT NOT NULL,
	received_at    INTEGER NOT NULL,
	event_id       TEXT NOT NULL,
	PRIMARY KEY (transaction_id, received_at, event_id)
) WITHOUT ROWID;
CREATE INDEX event_transactions_event ON event_transactions (event_id);

CREATE TEMP TABLE v3_bodies AS
	SELECT id, received_at, CAST(body AS TEXT) AS b FROM events WHERE json_valid(CAST(body AS TEXT));
INSERT OR IGNORE INTO event_users (user_id, received_at, event_id)
	SELECT u, received_at, id FROM (
		SELECT json_extract(b, '$.event.app_user_id') AS u, received_at, id FROM v3_bodies
		UNION ALL
		SELECT json_extract(b, '$.event.original_app_user_id'), received_at, id FROM v3_bodies
		UNION ALL
		SELECT a.value, v.received_at, v.id FROM v3_bodies v, json_each(v.b, '$.event.aliases') a
	) WHERE typeof(u) = 'text' AND u != '';
INSERT OR IGNORE INTO event_transactions (transaction_id, received_at, event_id)
	SELECT x, received_at, id FROM (
		SELECT json_extract(b, '$.event.transaction_id') AS x, received_at, id FROM v3_bodies
		UNION ALL
		SELECT json_extract(b, '$.event.original_transaction_id'), received_at, id FROM v3_bodies
	) WHERE typeof(x) = 'text' AND x != '';
DROP TABLE v3_bodies;
`,
	// 4: cheaper dispatch records, the writer's main work per delivery.
	// A record whose request body is its event's own bytes (webhook body
	// raw) stores a flag instead of a copy: about 1.7 KB less to insert and
	// to write to the WAL; Purge keeps such an event until those records
	// are gone. dispatches_failed holds failed attempts only, the rows its
	// one query (Stats) counts, so a delivered record updates one index less.
	`
ALTER TABLE dispatches ADD COLUMN request_body_event INTEGER NOT NULL DEFAULT 0;
DROP INDEX dispatches_failed;
CREATE INDEX dispatches_failed ON dispatches (destination, status, created_at) WHERE status IN ('retrying', 'dead');
`,
	// 5: an event is settled by a row of its own, not by rewriting the
	// event: the flag lived in the event row with its body (about 1.8 KB),
	// so settling each event dirtied a page of old events again, a WAL frame
	// per two events; a row here is appended at the table's end. The settled
	// column stays and is no longer read; new events write 0 there (dropping
	// or clearing it would rewrite every stored event).
	`
CREATE TABLE settled_events (
	received_at INTEGER NOT NULL,
	event_id    TEXT NOT NULL,
	PRIMARY KEY (received_at, event_id)
) WITHOUT ROWID;
INSERT INTO settled_events (received_at, event_id) SELECT received_at, id FROM events WHERE settled = 1;
DROP INDEX events_settled;
`,
	// 6: PostgreSQL's settle checks (its version 6); SQLite's single writer
	// settles events as version 5 does, so nothing changes here.
	`SELECT 1`,
}

// migrate brings the schema to the newest version in one transaction, so a
// crash mid-way leaves the old version intact. It reports the versions.
// Open runs it before the writer starts.
func migrate(ctx context.Context, c *sql.Conn) (from, to int, err error) {
	if _, err := c.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return 0, 0, fmt.Errorf("begin migration: %w", err)
	}
	defer func() {
		if err != nil {
			_, _ = c.ExecContext(ctx, "ROLLBACK")
		}
	}()
	from, to, err = applyMigrations(ctx, c)
	if err != nil {
		return from, to, err
	}
	if _, err := c.ExecContext(ctx, "COMMIT"); err != nil {
		return from, from, fmt.Errorf("commit migration: %w", err)
	}
	return from, to, nil
}

// applyMigrations runs the pending migrations inside the caller's
// transaction.
func applyMigrations(ctx context.Context, c *sql.Conn) (from, to int, err error) {
	from, err = schemaVersion(ctx, c)
	if err != nil {
		return 0, 0, err
	}
	if from > len(migrations) {
		return from, from, fmt.Errorf("schema version %d is newer than this build knows (%d)", from, len(migrations))
	}
	if from == len(migrations) {
		return from, from, nil
	}
	for v := from; v < len(migrations); v++ {
		if _, err := c.ExecContext(ctx, migrations[v]); err != nil {
			return from, v, fmt.Errorf("migrate schema to version %d: %w", v+1, err)
		}
	}
	// PRAGMA takes no bound parameters; the value is our own integer.
	if _, err := c.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", len(migrations))); err != nil {
		return from, from, fmt.Errorf("set schema version: %w", err)
	}
	return from, len(migrations), nil
}

func schemaVersion(ctx context.Context, c *sql.Conn) (int, error) {
	var v int
	if err := c.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}

// Migrate applies pending migrations (Open has already applied them unless
// Options.NoMigrate) and returns the schema version.
func (s *Store) Migrate(ctx context.Context) (int, error) {
	var to int
	err := s.do(ctx, func(w *writer) error {
		var err error
		_, to, err = applyMigrations(w.ctx, w.conn)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}
	return to, nil
}
