package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rcrouter/rcrouter/internal/store"
)

// migrations[i] moves the schema from version i to i+1. Entries are never
// edited once released; a change is a new entry. Version 1 is the schema
// the SQLite store calls version 1 (events, deliveries, dispatch log,
// destination flags), written for PostgreSQL: times are timestamptz kept to
// the millisecond, bodies bytea, route verdicts text (jsonb would reformat
// the bytes the event page shows).
//
// Indexes, and the query each one serves (as in SQLite):
//   - settle_checks_received (received_at, event_id): Purge, O(limit)
//     however many old events still hold work (version 6; before it,
//     events_settled).
//   - deliveries_due (destination, due_at) WHERE due_at IS NOT NULL: Claim.
//     due_at is when a row can next be claimed (next_attempt_at while
//     pending or retrying, lease_until while running, NULL when final).
//   - deliveries_state (destination, state, created_at): Stats, Replay.
//   - deliveries_event (event_id, destination) UNIQUE: an event's deliveries.
//   - deliveries_delivered (destination, delivered_at): Stats.
//   - dispatches: one index per list filter, each ending in (created_at, id).
var migrations = [...]string{
	`
CREATE TABLE events (
	id          text PRIMARY KEY,
	type        text NOT NULL,
	received_at timestamptz NOT NULL,
	body        bytea NOT NULL,
	routes      text,
	-- settled: every delivery is delivered or skipped (true when unrouted).
	settled     boolean NOT NULL
);
CREATE INDEX events_settled ON events (received_at) WHERE settled;

CREATE TABLE deliveries (
	id              text PRIMARY KEY,
	event_id        text NOT NULL REFERENCES events (id),
	event_type      text NOT NULL,
	destination     text NOT NULL,
	route           text NOT NULL,
	state           text NOT NULL,
	attempts        integer NOT NULL DEFAULT 0,
	tries           integer NOT NULL DEFAULT 0,
	next_attempt_at timestamptz NOT NULL,
	lease_until     timestamptz,
	created_at      timestamptz NOT NULL,
	updated_at      timestamptz NOT NULL,
	delivered_at    timestamptz,
	last_error      text NOT NULL DEFAULT '',
	due_at          timestamptz GENERATED ALWAYS AS (
		CASE state
			WHEN 'pending' THEN next_attempt_at
			WHEN 'retrying' THEN next_attempt_at
			WHEN 'running' THEN lease_until
		END) STORED
);
CREATE INDEX deliveries_due ON deliveries (destination, due_at) WHERE due_at IS NOT NULL;
CREATE INDEX deliveries_state ON deliveries (destination, state, created_at);
CREATE UNIQUE INDEX deliveries_event ON deliveries (event_id, destination);
CREATE INDEX deliveries_delivered ON deliveries (destination, delivered_at) WHERE delivered_at IS NOT NULL;

CREATE TABLE dispatches (
	id              text PRIMARY KEY,
	delivery_id     text NOT NULL,
	event_id        text NOT NULL,
	event_type      text NOT NULL,
	destination     text NOT NULL,
	route           text NOT NULL,
	attempt         integer NOT NULL,
	status          text NOT NULL,
	request         text NOT NULL,
	response        text NOT NULL,
	duration_ms     bigint NOT NULL,
	created_at      timestamptz NOT NULL,
	next_attempt_at timestamptz
);
CREATE INDEX dispatches_created ON dispatches (created_at, id);
CREATE INDEX dispatches_destination ON dispatches (destination, created_at, id);
CREATE INDEX dispatches_event ON dispatches (event_id, created_at, id);
CREATE INDEX dispatches_status ON dispatches (status, created_at, id);
CREATE INDEX dispatches_failed ON dispatches (destination, status, created_at);

CREATE TABLE destination_state (
	name          text PRIMARY KEY,
	paused        boolean NOT NULL DEFAULT false,
	last_error    text NOT NULL DEFAULT '',
	last_error_at timestamptz
);
`,
	// 2: a lease names its owner and the claim that holds it (a token from
	// a sequence, unique per claim), as SQLite's version 2; and what only
	// several replicas need, added in the same version since no PostgreSQL
	// database predates it: the replica that made each attempt, the
	// replicas' heartbeats, the housekeeping leader, and the rate limit and
	// breaker state of each destination.
	`
CREATE SEQUENCE lease_tokens;
ALTER TABLE deliveries ADD COLUMN lease_owner text, ADD COLUMN lease_token bigint;
ALTER TABLE dispatches ADD COLUMN replica text NOT NULL DEFAULT '';

CREATE TABLE replicas (
	name          text PRIMARY KEY,
	version       text NOT NULL,
	started_at    timestamptz NOT NULL,
	last_seen_at  timestamptz NOT NULL,
	config_sha256 text NOT NULL
);

CREATE TABLE leaders (
	role        text PRIMARY KEY,
	holder      text NOT NULL,
	term        bigint NOT NULL,
	lease_until timestamptz NOT NULL
);

CREATE TABLE rate_buckets (
	destination text PRIMARY KEY,
	tokens      double precision NOT NULL,
	updated_at  timestamptz NOT NULL
);

ALTER TABLE destination_state
	ADD COLUMN breaker_state    text NOT NULL DEFAULT 'closed',
	ADD COLUMN breaker_failures integer NOT NULL DEFAULT 0,
	ADD COLUMN breaker_until    timestamptz,
	ADD COLUMN breaker_gen      bigint NOT NULL DEFAULT 0;
`,
	// 3: as SQLite's version 3: events by received_at, and the customer and
	// transaction indexes Ingest fills from NewEvent.UserIDs and
	// TransactionIDs (Events). Events stored before are indexed from their
	// bodies by the same rule; a body that is not JSON is indexed under none.
	`
CREATE INDEX events_received ON events (received_at, id);

CREATE TABLE event_users (
	user_id     text NOT NULL,
	received_at timestamptz NOT NULL,
	event_id    text NOT NULL,
	PRIMARY KEY (user_id, received_at, event_id)
);
CREATE INDEX event_users_event ON event_users (event_id);

CREATE TABLE event_transactions (
	transaction_id text NOT NULL,
	received_at    timestamptz NOT NULL,
	event_id       text NOT NULL,
	PRIMARY KEY (transaction_id, received_at, event_id)
);
CREATE INDEX event_transactions_event ON event_transactions (event_id);

DO $$
DECLARE
	r record;
	ev jsonb;
BEGIN
	FOR r IN SELECT id, received_at, body FROM events LOOP
		BEGIN
			ev := convert_from(r.body, 'UTF8')::jsonb -> 'event';
		EXCEPTION WHEN others THEN
			CONTINUE;
		END;
		CONTINUE WHEN ev IS NULL OR jsonb_typeof(ev) <> 'object';
		INSERT INTO event_users (user_id, received_at, event_id)
			SELECT u, r.received_at, r.id FROM (
				SELECT ev->>'app_user_id' AS u WHERE jsonb_typeof(ev->'app_user_id') = 'string'
				UNION SELECT ev->>'original_app_user_id' WHERE jsonb_typeof(ev->'original_app_user_id') = 'string'
				UNION SELECT a FROM jsonb_array_elements_text(CASE WHEN jsonb_typeof(ev->'aliases') = 'array' THEN
					(SELECT jsonb_agg(x) FROM jsonb_array_elements(ev->'aliases') x WHERE jsonb_typeof(x) = 'string') END) a
				UNION SELECT ev->>'aliases' WHERE jsonb_typeof(ev->'aliases') = 'string'
			) ids WHERE u <> ''
			ON CONFLICT DO NOTHING;
		INSERT INTO event_transactions (transaction_id, received_at, event_id)
			SELECT x, r.received_at, r.id FROM (
				SELECT ev->>'transaction_id' AS x WHERE jsonb_typeof(ev->'transaction_id') = 'string'
				UNION SELECT ev->>'original_transaction_id' WHERE jsonb_typeof(ev->'original_transaction_id') = 'string'
			) ids WHERE x <> ''
			ON CONFLICT DO NOTHING;
	END LOOP;
END
$$;
`,
	// 4: dispatches_failed holds failed attempts only, the rows its one
	// query (Stats) counts, so a delivered record updates one index less;
	// as SQLite's version 4, whose other part (a dispatch record's request
	// body stored as a reference to its event's) is SQLite's own.
	`
DROP INDEX dispatches_failed;
CREATE INDEX dispatches_failed ON dispatches (destination, status, created_at) WHERE status IN ('retrying', 'dead');
`,
	// 5: SQLite's settled-events table; PostgreSQL updates a settled event
	// in place (MVCC writes a new tuple either way), so nothing changes here.
	`SELECT 1`,
	// 6: a completion takes no lock on its event and does not rewrite it.
	// Before, each completion locked its events (so that replicas finishing
	// one event's last two deliveries at once would not both miss that it
	// was settled) and the last one rewrote the event's row, body and all,
	// to set its settled flag; replicas completing one event's deliveries
	// waited for each other's commit flush. Now a delivery that becomes
	// delivered or skipped, and an unrouted event, adds a row to
	// settle_checks; Purge takes the oldest rows, locks their events'
	// deliveries and deletes the events whose deliveries are all finished,
	// and the rows of the others (the delivery finishing later adds one
	// again). The foreign key of deliveries goes too: every delivery insert
	// ran a trigger that locked its event's row, and every purged event a
	// query on deliveries; deliveries are inserted with their event in one
	// statement and deleted before it (Purge), so the code never relied on it.
	// And as SQLite's version 4: a dispatch record whose request body is
	// its event's own bytes (webhook body raw) stores a flag instead of a
	// copy, about 1.7 KB less per attempt in the table and the WAL; Purge
	// keeps such an event until those records are gone.
	`
CREATE TABLE settle_checks (
	event_id    text NOT NULL,
	received_at timestamptz NOT NULL
);
CREATE INDEX settle_checks_received ON settle_checks (received_at, event_id);
INSERT INTO settle_checks (event_id, received_at) SELECT id, received_at FROM events WHERE settled;
DROP INDEX events_settled;
ALTER TABLE events DROP COLUMN settled;
ALTER TABLE deliveries DROP CONSTRAINT deliveries_event_id_fkey;
ALTER TABLE dispatches ADD COLUMN request_body_event boolean NOT NULL DEFAULT false;
`,
}

// Every store numbers its versions alike (store.SchemaVersion).
var _ [0]struct{} = [len(migrations) - store.SchemaVersion]struct{}{}

// migrateLock is the advisory lock key replicas that start together
// serialise their migrations on ("rcrmigr" in ASCII).
const migrateLock int64 = 0x7263726d69677200

// migrate applies the pending migrations in one transaction under an
// advisory transaction lock: replicas that start together wait for each other
// and the later ones find nothing to do; a failure leaves the old version.
func migrate(ctx context.Context, conn interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}) (from, to int, err error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("begin migration: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrateLock); err != nil {
		return 0, 0, fmt.Errorf("lock for migration: %w", err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer PRIMARY KEY,
		applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return 0, 0, fmt.Errorf("create schema_migrations: %w", err)
	}
	if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&from); err != nil {
		return 0, 0, fmt.Errorf("read schema version: %w", err)
	}
	if from > len(migrations) {
		return from, from, fmt.Errorf("schema version %d is newer than this build knows (%d)", from, len(migrations))
	}
	for v := from; v < len(migrations); v++ {
		if _, err := tx.Exec(ctx, migrations[v]); err != nil {
			return from, v, fmt.Errorf("migrate schema to version %d: %w", v+1, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version) VALUES ($1)`, v+1); err != nil {
			return from, v, fmt.Errorf("record schema version %d: %w", v+1, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return from, from, fmt.Errorf("commit migration: %w", err)
	}
	return from, len(migrations), nil
}

// checkVersion refuses a schema that is not this build's.
func checkVersion(ctx context.Context, pool *pgxpool.Pool) error {
	var v int
	err := pool.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "42P01" { // undefined_table: never migrated
		v, err = 0, nil
	}
	if err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if v != store.SchemaVersion {
		return fmt.Errorf("schema version %d, this build needs %d (run rcrouter migrate)", v, store.SchemaVersion)
	}
	return nil
}
