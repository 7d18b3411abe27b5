package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/rcrouter/rcrouter/internal/store"
)

// request is one write: op runs inside the writer's batch transaction.
type request struct {
	ctx        context.Context
	op         func(w *writer) error
	done       chan error // buffered: the writer never waits for the caller
	background bool       // queued with doBackground
}

// rejection marks an error an op returns before it has written anything (not
// found, conflict): the batch goes on and commits for the other requests.
// Any other error from an op aborts the whole batch.
type rejection struct{ err error }

func (r rejection) Error() string { return r.err.Error() }
func (r rejection) Unwrap() error { return r.err }

func reject(err error) error { return rejection{err} }

// do queues op for the writer and waits for its answer. If ctx ends while
// waiting, do returns ctx.Err(); op may still run and commit (an ingest then
// becomes a duplicate when RevenueCat retries, which is correct).
func (s *Store) do(ctx context.Context, op func(w *writer) error) error {
	return s.queue(ctx, op, false)
}

// doBackground is do for the delivery pipeline's writes (claims,
// completions, releases) and maintenance: the writer serves them after the
// foreground ones, bounded per transaction while webhooks wait (see writeLoop).
func (s *Store) doBackground(ctx context.Context, op func(w *writer) error) error {
	return s.queue(ctx, op, true)
}

func (s *Store) queue(ctx context.Context, op func(w *writer) error, background bool) error {
	r := &request{ctx: ctx, op: op, done: make(chan error, 1), background: background}
	q := s.reqs
	if background {
		q = s.bg
	}
	s.sendMu.RLock()
	if s.closed {
		s.sendMu.RUnlock()
		return store.ErrClosed
	}
	select {
	case q <- r:
	case <-ctx.Done():
		s.sendMu.RUnlock()
		return ctx.Err()
	}
	s.sendMu.RUnlock()
	if s.onEnqueue != nil {
		s.onEnqueue()
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// backgroundWithForeground is how many background requests a transaction
// takes when foreground ones (webhooks) are waiting too, and it takes them
// only if the transaction before took none. A background request is a batch
// (up to ~130 claimed rows, or 64 completions with their dispatch records:
// milliseconds of work), so taking every queued one would make each webhook
// wait behind the whole delivery pipeline. This way at least every other
// transaction is webhooks alone, and deliveries still move in every other
// one, in larger batches (cmd/rcbench, 32 connections, three destinations,
// two paired runs against taking one in every transaction: ingest +40% and
// +6%, deliveries/s +25% and -4%). With no webhook waiting, the writer takes
// as many as MaxBatch allows.
const backgroundWithForeground = 1

// takeQueued appends at most n requests already waiting on *ch, without
// blocking. A closed channel becomes nil, so later selects skip it.
func takeQueued(ch *chan *request, batch []*request, n int) []*request {
	for ; n > 0 && *ch != nil; n-- {
		select {
		case r, ok := <-*ch:
			if !ok {
				*ch = nil
				return batch
			}
			batch = append(batch, r)
		default:
			return batch
		}
	}
	return batch
}

// writeLoop is the writer goroutine, owned by the Store: Close closes both
// queues and waits for writerDone. It takes every queued foreground request
// (up to maxBatch), then background ones (see backgroundWithForeground), and
// serves them with one transaction.
func (s *Store) writeLoop() {
	defer close(s.writerDone)
	batch := make([]*request, 0, s.maxBatch)
	reqs, bg := s.reqs, s.bg
	lastBack := 0 // background requests in the previous transaction
	for reqs != nil || bg != nil {
		// A waiting webhook starts the batch, so the background quota below
		// is counted against it; otherwise whichever comes first.
		var first *request
		select {
		case r, ok := <-reqs:
			if !ok {
				reqs = nil
				continue
			}
			first = r
		default:
			select {
			case r, ok := <-reqs:
				if !ok {
					reqs = nil
					continue
				}
				first = r
			case r, ok := <-bg:
				if !ok {
					bg = nil
					continue
				}
				first = r
			}
		}
		batch = append(batch[:0], first)
		fore := 0
		if !batch[0].background {
			fore = 1
		}
		before := len(batch)
		batch = takeQueued(&reqs, batch, s.maxBatch-len(batch))
		fore += len(batch) - before
		quota := s.maxBatch
		if fore > 0 {
			quota = backgroundWithForeground
			if lastBack > 0 {
				quota = 0
			}
		}
		back := len(batch) - fore
		before = len(batch)
		batch = takeQueued(&bg, batch, min(s.maxBatch-len(batch), quota-back))
		back += len(batch) - before
		lastBack = back
		s.runBatch(batch)
		clear(batch) // drop references to answered requests
	}
}

func (s *Store) runBatch(batch []*request) {
	live := make([]*request, 0, len(batch))
	for _, r := range batch {
		// A caller that gave up before its turn gets its answer and its
		// write is not done: nobody is waiting for the result.
		if err := r.ctx.Err(); err != nil {
			r.done <- err
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	errs := make([]error, len(live))
	if err := s.runTx(live, errs); err != nil {
		s.log.Error("store write transaction failed", "requests", len(live), "err", err)
		for _, r := range live {
			r.done <- err
		}
		return
	}
	s.commits.Add(1)
	s.cp.committed()
	for i, r := range live {
		r.done <- errs[i]
	}
}

// runTx runs the ops of live in one transaction; errs gets each rejection.
func (s *Store) runTx(live []*request, errs []error) error {
	w := s.w
	if _, err := w.st.begin.ExecContext(w.ctx); err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	for i, r := range live {
		err := r.op(w)
		var rej rejection
		switch {
		case err == nil:
		case errors.As(err, &rej):
			errs[i] = rej.err
		default:
			w.rollback()
			return err
		}
	}
	if _, err := w.st.commit.ExecContext(w.ctx); err != nil {
		w.rollback()
		return fmt.Errorf("commit transaction: %w", err)
	}
	return nil
}

// claimSQL reads the deliveries a Claim leases. ORDER BY due_at alone (no
// tie-breaker) keeps it an ordered scan of deliveries_due, which Claim stops
// reading after its limit, whatever the backlog. It has no LIMIT ?: SQLite's
// planner reads a bound LIMIT, so every new binding expired the prepared
// statement and each claim paid a full re-prepare (~80 µs, a third of a
// claim's CPU under load). The plan is the same index scan without it.
const claimSQL = `SELECT ` + deliveryCols + `, e.body, d.rowid, e.received_at FROM deliveries d JOIN events e ON e.id = d.event_id
	WHERE d.destination = ? AND d.due_at <= ? ORDER BY d.due_at`

// destinationsCTE lists the distinct destinations of deliveries with one
// index seek each (a skip scan of deliveries_state) instead of a table scan.
const destinationsCTE = `WITH RECURSIVE dest(name) AS (
	SELECT (SELECT MIN(destination) FROM deliveries)
	UNION ALL
	SELECT (SELECT MIN(destination) FROM deliveries WHERE destination > dest.name) FROM dest WHERE dest.name IS NOT NULL) `

// releaseAllSQL reads deliveries_state per (destination, 'running').
const releaseAllSQL = destinationsCTE + `UPDATE deliveries SET state = 'pending', next_attempt_at = ?1, lease_until = NULL,
	lease_owner = NULL, lease_token = NULL, updated_at = ?1 WHERE state = 'running' AND destination IN (SELECT name FROM dest WHERE name IS NOT NULL)`

// completeSQL writes a finished attempt's delivery; the caller adds the
// WHERE clause (?6 rowid, ?7 id).
const completeSQL = `UPDATE deliveries SET
	state = ?1,
	attempts = attempts + ?2,
	tries = tries + 1,
	next_attempt_at = COALESCE(?3, next_attempt_at),
	last_error = ?4,
	lease_until = NULL,
	lease_owner = NULL,
	lease_token = NULL,
	updated_at = ?5,
	delivered_at = CASE WHEN ?1 = 'delivered' THEN ?5 END
	`

// writer is the writing connection and its prepared statements; only the
// writer goroutine uses it (and Open and Close, before and after it runs).
type writer struct {
	// ctx is never cancelled: one caller giving up must not cut off a
	// statement that serves the whole batch.
	ctx    context.Context
	conn   *sql.Conn
	st     stmts
	leases *leaseTable
}

type stmts struct {
	begin, commit, rollback *sql.Stmt
	insEvent, insDelivery   *sql.Stmt
	insUser, insTransaction *sql.Stmt
	settle, unsettle        *sql.Stmt
	markSettled             *sql.Stmt
	claimSel                *sql.Stmt
	getDelivery             *sql.Stmt
	completeUpd             *sql.Stmt
	completeByID            *sql.Stmt
	insDispatch             *sql.Stmt
	setLastError            *sql.Stmt
	releaseOne, releaseAll  *sql.Stmt
	retryUpd                *sql.Stmt
	heartbeat               *sql.Stmt
	all                     []*sql.Stmt
}

func newWriter(ctx context.Context, conn *sql.Conn) (*writer, error) {
	w := &writer{ctx: ctx, conn: conn, leases: newLeaseTable()}
	prep := []struct {
		dst **sql.Stmt
		sql string
	}{
		{&w.st.begin, `BEGIN IMMEDIATE`},
		{&w.st.commit, `COMMIT`},
		{&w.st.rollback, `ROLLBACK`},
		// settled is unused since schema version 5 (settled_events).
		{&w.st.insEvent, `INSERT INTO events (id, type, received_at, body, routes, settled) VALUES (?, ?, ?, ?, ?, 0)
			ON CONFLICT (id) DO NOTHING`},
		{&w.st.markSettled, `INSERT OR IGNORE INTO settled_events (received_at, event_id) VALUES (?, ?)`},
		// Recomputed rather than counted, so it cannot drift. It runs when a
		// delivery becomes delivered or skipped, and so finds the event
		// unsettled (that delivery was not final); only the last one writes,
		// the others read.
		{&w.st.settle, `INSERT OR IGNORE INTO settled_events (received_at, event_id)
			SELECT ?2, ?1 WHERE NOT EXISTS (
				SELECT 1 FROM deliveries WHERE event_id = ?1 AND state NOT IN ('delivered', 'skipped'))`},
		{&w.st.unsettle, `DELETE FROM settled_events WHERE received_at = (SELECT received_at FROM events WHERE id = ?1) AND event_id = ?1`},
		{&w.st.insUser, `INSERT OR IGNORE INTO event_users (user_id, received_at, event_id) VALUES (?, ?, ?)`},
		{&w.st.insTransaction, `INSERT OR IGNORE INTO event_transactions (transaction_id, received_at, event_id) VALUES (?, ?, ?)`},
		{&w.st.insDelivery, `INSERT INTO deliveries (id, event_id, event_type, destination, route, state,
			next_attempt_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?)`},
		{&w.st.claimSel, claimSQL},
		{&w.st.getDelivery, `SELECT event_id, event_type, destination, route, state, lease_owner, lease_token FROM deliveries WHERE id = ?`},
		// By rowid, which the claim read: no seek of the id index. Nothing
		// renumbers rowids while the store runs (no VACUUM), but if a row
		// moved anyway, complete falls back to its id.
		{&w.st.completeUpd, completeSQL + `WHERE rowid = ?6 AND id = ?7`},
		{&w.st.completeByID, completeSQL + `WHERE id = ?7`},
		{&w.st.insDispatch, `INSERT INTO dispatches (id, delivery_id, event_id, event_type, destination, route, replica,
			attempt, status, request, response, duration_ms, created_at, next_attempt_at, request_body_event)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`},
		// A late completion must not replace a newer error.
		{&w.st.setLastError, `INSERT INTO destination_state (name, last_error, last_error_at) VALUES (?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET last_error = excluded.last_error, last_error_at = excluded.last_error_at
			WHERE destination_state.last_error_at IS NULL OR excluded.last_error_at >= destination_state.last_error_at`},
		{&w.st.releaseOne, `UPDATE deliveries SET state = 'pending', next_attempt_at = ?1, lease_until = NULL,
			lease_owner = NULL, lease_token = NULL, updated_at = ?1 WHERE id = ?2`},
		{&w.st.releaseAll, releaseAllSQL},
		{&w.st.retryUpd, `UPDATE deliveries SET state = 'pending', next_attempt_at = ?1, lease_until = NULL,
			delivered_at = NULL, updated_at = ?1 WHERE id = ?2`},
		{&w.st.heartbeat, `INSERT INTO heartbeat (id, at) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET at = excluded.at`},
	}
	for _, p := range prep {
		st, err := conn.PrepareContext(ctx, p.sql)
		if err != nil {
			w.close()
			return nil, fmt.Errorf("prepare %q: %w", p.sql, err)
		}
		*p.dst = st
		w.st.all = append(w.st.all, st)
	}
	return w, nil
}

// rollback ends a failed transaction. SQLite may already have rolled back on
// its own (I/O error, disk full); the error of a second rollback says only
// that, so it is dropped.
func (w *writer) rollback() {
	_, _ = w.st.rollback.ExecContext(w.ctx)
}

func (w *writer) close() error {
	var errs []error
	for _, st := range w.st.all {
		errs = append(errs, st.Close())
	}
	errs = append(errs, w.conn.Close())
	return errors.Join(errs...)
}
