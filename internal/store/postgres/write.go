package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rcrouter/rcrouter/internal/store"
)

// Notification channels. Payloads: a destination name on chanDue; a sign
// and a destination on chanPaused; "<replica>\n<id>,<id>…" on chanDispatch
// (records can exceed NOTIFY's 8000 bytes, so listeners read them by id).
const (
	chanDue      = "rcrouter_due"
	chanDispatch = "rcrouter_dispatch"
	chanPaused   = "rcrouter_paused" // "+<destination>" paused, "-<destination>" resumed
)

// Ingest stores e and its deliveries in the next group commit (ingest.go):
// committed, and flushed with the server's synchronous_commit, before it
// returns. The same id stored by another replica at the same moment is
// resolved by the primary key: exactly one of them creates it.
func (s *Store) Ingest(ctx context.Context, e store.NewEvent) (bool, error) {
	if err := s.usable(); err != nil {
		return false, err
	}
	if err := e.Check(); err != nil {
		return false, err
	}
	received := e.ReceivedAt
	if received.IsZero() {
		received = s.now()
	}
	r := &ingestReq{
		e: store.NewEvent{ID: e.ID, Type: e.Type, Body: append([]byte{}, e.Body...), // never nil: NOT NULL
			Deliveries: append([]store.NewDelivery(nil), e.Deliveries...),
			UserIDs:    store.Distinct(e.UserIDs), TransactionIDs: store.Distinct(e.TransactionIDs)},
		received: ms(received),
		ids:      make([]string, len(e.Deliveries)),
		done:     make(chan ingestResult, 1),
	}
	if e.Routes != nil {
		r.e.Routes = append([]byte{}, e.Routes...)
	}
	for i := range r.ids {
		r.ids[i] = s.ids.New()
	}
	return s.ingest.submit(ctx, r)
}

const deliveryCols = `d.id, d.event_id, d.event_type, d.destination, d.route, d.state, d.attempts, d.tries,
	d.next_attempt_at, d.created_at, d.updated_at, d.delivered_at, d.last_error`

// claimSQL leases the oldest due rows of one destination in one statement.
// SKIP LOCKED: rows another replica is claiming right now are passed over,
// never waited for, so concurrent claims get disjoint sets. The lease token
// comes from a sequence: unique per claim, so even the same owner claiming
// again after its lease expired fences its older attempt.
const claimSQL = `WITH c AS (
	SELECT id, due_at FROM deliveries
	WHERE destination = $1 AND due_at <= $2
	ORDER BY due_at, id
	LIMIT $3
	FOR UPDATE SKIP LOCKED
)
UPDATE deliveries d SET state = 'running', lease_until = $4, updated_at = $2,
	lease_owner = $5, lease_token = nextval('lease_tokens')
FROM c, events e
WHERE d.id = c.id AND e.id = d.event_id
RETURNING ` + deliveryCols + `, e.body, c.due_at, d.lease_token`

// Claim leases up to limit due deliveries of destination to owner until
// leaseUntil. A lease has expired at leaseUntil: from that instant another
// claim may take the row, and that claim's new token fences the old holder.
func (s *Store) Claim(ctx context.Context, owner, destination string, now, leaseUntil time.Time, limit int) ([]store.Delivery, error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, nil
	}
	if !leaseUntil.After(now) {
		return nil, fmt.Errorf("claim %s: lease end %v is not after now %v", destination, leaseUntil, now)
	}
	if owner == "" {
		return nil, fmt.Errorf("claim %s: empty owner", destination)
	}
	until := ms(leaseUntil)
	rows, err := s.pool.Query(ctx, claimSQL, destination, ms(now), limit, until, owner)
	if err != nil {
		return nil, s.fail("claim "+destination, err)
	}
	type claimed struct {
		d   store.Delivery
		due time.Time
	}
	var cs []claimed
	for rows.Next() {
		var c claimed
		var token int64
		dst := append(deliveryDest(&c.d), &c.d.Body, &c.due, &token)
		if err := rows.Scan(dst...); err != nil {
			rows.Close()
			return nil, s.fail("claim "+destination, err)
		}
		fixDelivery(&c.d)
		c.d.Lease = store.Lease{DeliveryID: c.d.ID, Owner: owner, Token: strconv.FormatInt(token, 10), Until: until}
		cs = append(cs, c)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("claim "+destination, err)
	}
	// RETURNING has no order: oldest due first, as the claim chose them.
	slices.SortFunc(cs, func(a, b claimed) int {
		if c := a.due.Compare(b.due); c != 0 {
			return c
		}
		return strings.Compare(a.d.ID, b.d.ID)
	})
	out := make([]store.Delivery, len(cs))
	for i := range cs {
		out[i] = cs[i].d
	}
	return out, nil
}

// token parses a lease token; ok is false for one this store never issued
// (which then holds nothing).
func token(t string) (int64, bool) {
	n, err := strconv.ParseInt(t, 10, 64)
	return n, err == nil
}

// deliveryDest lists the scan targets of deliveryCols.
func deliveryDest(d *store.Delivery) []any {
	return []any{&d.ID, &d.EventID, &d.EventType, &d.Destination, &d.Route, &d.State, &d.Attempts, &d.Tries,
		&d.NextAttemptAt, &d.CreatedAt, &d.UpdatedAt, &d.DeliveredAt, &d.LastError}
}

// fixDelivery returns the times of a scanned delivery in UTC.
func fixDelivery(d *store.Delivery) {
	d.NextAttemptAt, d.CreatedAt, d.UpdatedAt = utc(d.NextAttemptAt), utc(d.CreatedAt), utc(d.UpdatedAt)
	d.DeliveredAt = utcPtr(d.DeliveredAt)
}

// head is what a write needs to know of a delivery.
type head struct {
	eventID, eventType, destination, route string
	state                                  store.State
	token                                  *int64    // the lease's, while one holds the row
	owner                                  string    // the lease's owner, while one holds the row
	created                                time.Time // the delivery's created_at: its event's received_at
	body                                   []byte    // the event's body
}

// lockHeads locks the given deliveries FOR UPDATE, in id order (as Purge
// locks the deliveries it checks), and returns their current heads, each
// with its event's body (read, not locked: Complete stores a request that
// sent it as a reference). Their events are not locked: a completion never
// writes its event's row, and Purge decides which events are settled
// (schema.go, version 6).
func lockHeads(ctx context.Context, tx pgx.Tx, ids []string) (map[string]head, error) {
	rows, err := tx.Query(ctx, `SELECT id, event_id, event_type, destination, route, state, lease_token,
		COALESCE(lease_owner, ''), created_at, (SELECT body FROM events WHERE events.id = deliveries.event_id)
		FROM deliveries WHERE id = ANY($1) ORDER BY id FOR UPDATE`, ids)
	if err != nil {
		return nil, err
	}
	heads := make(map[string]head, len(ids))
	for rows.Next() {
		var id string
		var h head
		if err := rows.Scan(&id, &h.eventID, &h.eventType, &h.destination, &h.route, &h.state, &h.token, &h.owner,
			&h.created, &h.body); err != nil {
			rows.Close()
			return nil, err
		}
		heads[id] = h
	}
	return heads, rows.Err()
}

// settleSQL adds the settle checks of deliveries that became delivered or
// skipped: Purge later tells from all of an event's deliveries whether it
// is settled. Deciding it here would need every completion of an event to
// wait for the others' commits (two replicas finishing its last two
// deliveries at once would each see the other's still running).
const settleSQL = `INSERT INTO settle_checks (event_id, received_at)
	SELECT * FROM unnest($1::text[], $2::timestamptz[])`

// Complete records attempts and new states in one transaction for the
// whole slice. A completion applies only while its token still holds the
// delivery (fencing): the row's lease_token is set by each claim and cleared
// by completion and release, and the row is locked while it is compared, so
// a completion racing a takeover either lands before the new claim or is
// refused. The refused ones write nothing; the others commit, and the error
// is a *store.LeaseLostError naming the refused ones.
func (s *Store) Complete(ctx context.Context, cs []store.Completion) error {
	if err := s.usable(); err != nil {
		return err
	}
	if len(cs) == 0 {
		return nil
	}
	now := s.now()
	ids := make([]string, 0, len(cs))
	for i := range cs {
		if err := cs[i].Check(); err != nil {
			return err
		}
		ids = append(ids, cs[i].DeliveryID)
	}
	var lost, published []string
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		heads, err := lockHeads(ctx, tx, ids)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if _, ok := heads[id]; !ok {
				return fmt.Errorf("delivery %q: %w", id, store.ErrNotFound)
			}
		}
		b := &pgx.Batch{}
		var done finishedRows
		var recs dispatchRows
		var checkEvents []string
		var checkTimes []time.Time
		lost, published = lost[:0], published[:0]
		for i := range cs {
			c := &cs[i]
			cur := heads[c.DeliveryID]
			if tok, ok := token(c.LeaseToken); !ok || cur.token == nil || *cur.token != tok {
				lost = append(lost, c.DeliveryID)
				continue
			}
			cur.token = nil // spent: a second completion in this slice is lost too
			heads[c.DeliveryID] = cur
			finished := c.FinishedAt
			if finished.IsZero() {
				finished = now
			}
			var next *time.Time
			if c.State == store.Retrying {
				n := ms(c.NextAttemptAt)
				next = &n
			}
			done.add(c.DeliveryID, string(c.State), len(c.Dispatches), next, c.LastError, ms(finished))
			if c.State == store.Delivered || c.State == store.Skipped {
				checkEvents, checkTimes = append(checkEvents, cur.eventID), append(checkTimes, cur.created)
			}
			if c.State == store.Retrying || c.State == store.Dead {
				// A late completion must not replace a newer error.
				b.Queue(`INSERT INTO destination_state (name, last_error, last_error_at) VALUES ($1, $2, $3)
					ON CONFLICT (name) DO UPDATE SET last_error = excluded.last_error, last_error_at = excluded.last_error_at
					WHERE destination_state.last_error_at IS NULL OR excluded.last_error_at >= destination_state.last_error_at`,
					cur.destination, c.LastError, ms(finished))
			}
			for j := range c.Dispatches {
				d := &c.Dispatches[j]
				// In place: the caller publishes the record with them.
				if d.ID == "" {
					d.ID = s.ids.New()
				}
				if d.Replica == "" {
					d.Replica = cur.owner
				}
				if err := recs.add(d, c.DeliveryID, cur); err != nil {
					return err
				}
				published = append(published, d.ID)
			}
		}
		if len(done.ids) > 0 {
			b.Queue(finishSQL, done.ids, done.states, done.attempts, done.next, done.errs, done.finished)
		}
		if len(recs.ids) > 0 {
			b.Queue(dispatchSQL, recs.ids, recs.deliveries, recs.events, recs.types, recs.dests, recs.routes,
				recs.attempts, recs.statuses, recs.requests, recs.responses, recs.durations, recs.created, recs.next, recs.replicas, recs.bodyIsEvent)
		}
		if len(checkEvents) > 0 {
			b.Queue(settleSQL, checkEvents, checkTimes)
		}
		if b.Len() == 0 {
			return nil
		}
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return s.fail("complete", err)
	}
	s.notices.announce(published)
	if len(lost) > 0 {
		return &store.LeaseLostError{DeliveryIDs: lost}
	}
	return nil
}

// finishSQL writes the new states of a Complete's deliveries in one
// statement, and dispatchSQL its attempt records: one statement each for
// the whole slice instead of one per row (BENCHMARKS.md, "PostgreSQL
// completions without event locks").
const (
	finishSQL = `UPDATE deliveries d SET state = u.state, attempts = d.attempts + u.n, tries = d.tries + 1,
	next_attempt_at = COALESCE(u.next, d.next_attempt_at), last_error = u.err, lease_until = NULL,
	lease_owner = NULL, lease_token = NULL, updated_at = u.finished,
	delivered_at = CASE WHEN u.state = 'delivered' THEN u.finished END
	FROM unnest($1::text[], $2::text[], $3::integer[], $4::timestamptz[], $5::text[], $6::timestamptz[])
		AS u(id, state, n, next, err, finished)
	WHERE d.id = u.id`
	dispatchSQL = `INSERT INTO dispatches (id, delivery_id, event_id, event_type, destination, route,
	attempt, status, request, response, duration_ms, created_at, next_attempt_at, replica, request_body_event)
	SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
		$7::integer[], $8::text[], $9::text[], $10::text[], $11::bigint[], $12::timestamptz[], $13::timestamptz[], $14::text[],
		$15::boolean[])`
)

// finishedRows are the columns of finishSQL, a row per completion.
type finishedRows struct {
	ids, states, errs []string
	attempts          []int32
	next              []*time.Time
	finished          []time.Time
}

func (r *finishedRows) add(id, state string, attempts int, next *time.Time, lastError string, finished time.Time) {
	r.ids, r.states, r.errs = append(r.ids, id), append(r.states, state), append(r.errs, lastError)
	r.attempts, r.next, r.finished = append(r.attempts, int32(attempts)), append(r.next, next), append(r.finished, finished)
}

// dispatchRows are the columns of dispatchSQL, a row per attempt record.
type dispatchRows struct {
	ids, deliveries, events, types, dests, routes, statuses, requests, responses, replicas []string
	attempts                                                                               []int32
	durations                                                                              []int64
	created                                                                                []time.Time
	next                                                                                   []*time.Time
	bodyIsEvent                                                                            []bool
}

// add appends d, made under delivery (whose head is cur: the record's
// fields left empty are taken from it).
func (r *dispatchRows) add(d *store.Dispatch, delivery string, cur head) error {
	rq := d.Request
	eventID := or(d.EventID, cur.eventID)
	bodyIsEvent := rq.Body != "" && eventID == cur.eventID && rq.Body == string(cur.body)
	if bodyIsEvent {
		rq.Body = ""
	}
	req, err := json.Marshal(rq)
	if err != nil {
		return fmt.Errorf("delivery %q: encode request: %w", delivery, err)
	}
	resp, err := json.Marshal(d.Response)
	if err != nil {
		return fmt.Errorf("delivery %q: encode response: %w", delivery, err)
	}
	var next *time.Time
	if d.NextAttemptAt != nil {
		n := ms(*d.NextAttemptAt)
		next = &n
	}
	r.ids, r.deliveries = append(r.ids, d.ID), append(r.deliveries, delivery)
	r.events, r.types = append(r.events, eventID), append(r.types, or(d.EventType, cur.eventType))
	r.dests, r.routes = append(r.dests, or(d.Destination, cur.destination)), append(r.routes, or(d.Route, cur.route))
	r.attempts, r.statuses = append(r.attempts, int32(d.Attempt)), append(r.statuses, d.Status)
	r.requests, r.responses = append(r.requests, string(req)), append(r.responses, string(resp))
	r.durations, r.created = append(r.durations, d.DurationMs), append(r.created, ms(d.CreatedAt))
	r.next, r.replicas = append(r.next, next), append(r.replicas, d.Replica)
	r.bodyIsEvent = append(r.bodyIsEvent, bodyIsEvent)
	return nil
}

func or(v, fallback string) string {
	if v == "" {
		return fallback
	}
	return v
}

// Release makes the given leased deliveries Pending and due at now
// (shutdown, or claims the engine will not start), each only while its
// token still holds it: another claim's work is left alone. There is no
// "release everything": several replicas never release each other's work;
// expired leases are the reaper's (ReapExpired).
func (s *Store) Release(ctx context.Context, leases []store.Lease, now time.Time) error {
	if err := s.usable(); err != nil {
		return err
	}
	ids := make([]string, 0, len(leases))
	toks := make([]int64, 0, len(leases))
	for _, l := range leases {
		if t, ok := token(l.Token); ok {
			ids, toks = append(ids, l.DeliveryID), append(toks, t)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	rows, err := s.pool.Query(ctx, `UPDATE deliveries d SET state = 'pending', next_attempt_at = $1, lease_until = NULL,
			lease_owner = NULL, lease_token = NULL, updated_at = $1
		FROM unnest($2::text[], $3::bigint[]) AS l(id, token)
		WHERE d.id = l.id AND d.lease_token = l.token
		RETURNING d.destination`, ms(now), ids, toks)
	if err != nil {
		return s.fail("release", err)
	}
	dests, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return s.fail("release", err)
	}
	s.notices.wake(dests...)
	return nil
}

// Retry makes one delivery Pending and due at now, keeping its attempts.
func (s *Store) Retry(ctx context.Context, deliveryID string, now time.Time) error {
	if err := s.usable(); err != nil {
		return err
	}
	at := ms(now)
	var dest string
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		heads, err := lockHeads(ctx, tx, []string{deliveryID})
		if err != nil {
			return err
		}
		cur, ok := heads[deliveryID]
		if !ok {
			return fmt.Errorf("delivery %q: %w", deliveryID, store.ErrNotFound)
		}
		if cur.state == store.Running {
			return fmt.Errorf("delivery %q is running: %w", deliveryID, store.ErrConflict)
		}
		dest = cur.destination
		_, err = tx.Exec(ctx, `UPDATE deliveries SET state = 'pending', next_attempt_at = $1, lease_until = NULL,
			lease_owner = NULL, lease_token = NULL, delivered_at = NULL, updated_at = $1 WHERE id = $2`, at, deliveryID)
		return err
	})
	if err != nil {
		return s.fail("retry", err)
	}
	s.notices.wake(dest)
	return nil
}

// replayWhere selects the deliveries a ReplayFilter names, a range of
// deliveries_state.
const replayWhere = `destination = $1 AND state = $2 AND created_at >= $3 AND created_at < $4 AND ($5 = '' OR event_type = $5)`

// Replay makes the matching deliveries Pending and due at now, in one
// transaction.
func (s *Store) Replay(ctx context.Context, f store.ReplayFilter, now time.Time, dryRun bool) (int, error) {
	if err := s.usable(); err != nil {
		return 0, err
	}
	f, err := f.Normalize()
	if err != nil {
		return 0, err
	}
	// Unbounded ends are the widest timestamptz values.
	since, until := pgMinTime, pgMaxTime
	if !f.Since.IsZero() {
		since = ms(f.Since)
	}
	if !f.Until.IsZero() {
		until = ms(f.Until)
	}
	args := []any{f.Destination, string(f.Status), since, until, f.EventType}
	if dryRun {
		var n int
		if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM deliveries WHERE `+replayWhere, args...).Scan(&n); err != nil {
			return 0, s.fail("replay "+f.Destination, err)
		}
		return n, nil
	}
	var n int64
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// Locked in id order first, as Complete and Purge lock deliveries,
		// so that a replay and a purge of the same settled events wait for
		// each other instead of deadlocking.
		if _, err := tx.Exec(ctx, `SELECT 1 FROM deliveries WHERE `+replayWhere+` ORDER BY id FOR UPDATE`, args...); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `UPDATE deliveries SET state = 'pending', next_attempt_at = $6,
			lease_until = NULL, lease_owner = NULL, lease_token = NULL, delivered_at = NULL, updated_at = $6
			WHERE `+replayWhere, append(args, ms(now))...)
		if err != nil {
			return err
		}
		n = tag.RowsAffected()
		return nil
	})
	if err != nil {
		return 0, s.fail("replay "+f.Destination, err)
	}
	if n > 0 {
		s.notices.wake(f.Destination)
	}
	return int(n), nil
}

// The bounds of an open Replay range, inside timestamptz's range.
var (
	pgMinTime = time.Date(-4000, 1, 1, 0, 0, 0, 0, time.UTC)
	pgMaxTime = time.Date(200000, 1, 1, 0, 0, 0, 0, time.UTC)
)

// SetPaused persists the paused flag of a destination, for every replica.
func (s *Store) SetPaused(ctx context.Context, destination string, paused bool) error {
	if err := s.usable(); err != nil {
		return err
	}
	if destination == "" {
		return errors.New("set paused: empty destination")
	}
	sign := "+"
	if !paused {
		sign = "-"
	}
	// The pause notice is part of the write's own transaction, unlike the
	// other notices (see notices): a pause is an operator's order, rare, so
	// the notify lock costs nothing here, and no replica misses it because
	// this process died or lost the database between the commit and a send.
	if _, err := s.pool.Exec(ctx, `WITH u AS (
			INSERT INTO destination_state (name, paused) VALUES ($1, $2)
			ON CONFLICT (name) DO UPDATE SET paused = excluded.paused
			RETURNING 1)
		SELECT pg_notify('`+chanPaused+`', $3) FROM u`, destination, paused, sign+destination); err != nil {
		return s.fail("set paused "+destination, err)
	}
	// Resuming also wakes the destination: its backlog is due on every
	// replica at once.
	if !paused {
		s.notices.wake(destination)
	}
	return nil
}

// Purge deletes, oldest first, at most limit dispatch records created
// before before, and at most limit settled events received before before
// with their deliveries. It returns the rows deleted; a caller loops until 0.
//
// An event is settled when every one of its deliveries is delivered or
// skipped. Completions do not decide it (schema.go, version 6): Purge takes
// the oldest settle checks, locks the deliveries of their events in id
// order, waiting for any completion, retry or replay that holds one, and
// then reads their states as committed. The checks of an event that is not
// settled after all (a delivery retried, replayed or still to finish) are
// deleted; the delivery that finishes later adds one again.
func (s *Store) Purge(ctx context.Context, before time.Time, limit int) (int, error) {
	if err := s.usable(); err != nil {
		return 0, err
	}
	if limit <= 0 {
		return 0, fmt.Errorf("purge: limit %d must be positive", limit)
	}
	at := ms(before)
	var total int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		total = 0
		tag, err := tx.Exec(ctx, `DELETE FROM dispatches WHERE id IN (
			SELECT id FROM dispatches WHERE created_at < $1 ORDER BY created_at, id LIMIT $2)`, at, limit)
		if err != nil {
			return fmt.Errorf("dispatches: %w", err)
		}
		total += tag.RowsAffected()
		// Until limit events are gone or no old check is left: checks of
		// events that are not settled are deleted without counting, so a
		// call that found only those goes on to the next.
		for events := int64(0); events < int64(limit); {
			n, deleted, more, err := purgeSettled(ctx, tx, at, limit-int(events))
			if err != nil {
				return fmt.Errorf("events: %w", err)
			}
			events, total = events+n, total+deleted
			if !more {
				break
			}
		}
		return nil
	})
	if err != nil {
		return 0, s.fail("purge", err)
	}
	return int(total), nil
}

// purgeSettled checks the events of the oldest settle checks received
// before at, up to limit events, and deletes those settled. It returns the
// events deleted and the rows reported for them (events and deliveries;
// their index rows are part of them); more is false when no check was left
// to take.
func purgeSettled(ctx context.Context, tx pgx.Tx, at time.Time, limit int) (events, deleted int64, more bool, err error) {
	// An event whose body a kept dispatch record refers to stays until that
	// record ages out (one seek of dispatches_event); it is looked for again
	// once the deliveries are locked, since no attempt can add a record then.
	rows, err := tx.Query(ctx, `SELECT event_id, received_at FROM settle_checks c WHERE received_at < $1
		AND NOT EXISTS (SELECT 1 FROM dispatches WHERE dispatches.event_id = c.event_id AND request_body_event)
		GROUP BY received_at, event_id ORDER BY received_at, event_id LIMIT $2`, at, limit)
	if err != nil {
		return 0, 0, false, err
	}
	var checked []string
	received := map[string]time.Time{}
	for rows.Next() {
		var id string
		var t time.Time
		if err := rows.Scan(&id, &t); err != nil {
			rows.Close()
			return 0, 0, false, err
		}
		checked, received[id] = append(checked, id), t
	}
	if err := rows.Err(); err != nil || len(checked) == 0 {
		return 0, 0, false, err
	}
	rows, err = tx.Query(ctx, `SELECT event_id, state FROM deliveries WHERE event_id = ANY($1) ORDER BY id FOR UPDATE`, checked)
	if err != nil {
		return 0, 0, false, err
	}
	open := map[string]bool{}
	for rows.Next() {
		var id string
		var state store.State
		if err := rows.Scan(&id, &state); err != nil {
			rows.Close()
			return 0, 0, false, err
		}
		if state != store.Delivered && state != store.Skipped {
			open[id] = true
		}
	}
	if err := rows.Err(); err != nil {
		return 0, 0, false, err
	}
	var final []string
	for _, id := range checked {
		if !open[id] {
			final = append(final, id)
		}
	}
	rows, err = tx.Query(ctx, `SELECT id FROM unnest($1::text[]) AS x(id) WHERE NOT EXISTS (
		SELECT 1 FROM dispatches WHERE dispatches.event_id = x.id AND request_body_event)`, final)
	if err != nil {
		return 0, 0, false, err
	}
	settled, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, 0, false, err
	}
	// The checks of the events that hold work go, and those of the settled
	// ones; those of events a new record refers to stay. Deleted by
	// (received_at, event_id), their index.
	var ids []string
	var times []time.Time
	for _, id := range slices.Concat(settled, slices.Collect(maps.Keys(open))) {
		ids, times = append(ids, id), append(times, received[id])
	}
	if _, err := tx.Exec(ctx, `DELETE FROM settle_checks c USING unnest($1::timestamptz[], $2::text[]) AS x(received_at, event_id)
		WHERE c.received_at = x.received_at AND c.event_id = x.event_id`, times, ids); err != nil {
		return 0, 0, false, err
	}
	if len(settled) == 0 {
		return 0, 0, true, nil
	}
	for _, q := range []string{`DELETE FROM event_users WHERE event_id = ANY($1)`, `DELETE FROM event_transactions WHERE event_id = ANY($1)`} {
		if _, err := tx.Exec(ctx, q, settled); err != nil {
			return 0, 0, false, err
		}
	}
	for _, q := range []string{`DELETE FROM deliveries WHERE event_id = ANY($1)`, `DELETE FROM events WHERE id = ANY($1)`} {
		tag, err := tx.Exec(ctx, q, settled)
		if err != nil {
			return 0, 0, false, err
		}
		deleted += tag.RowsAffected()
	}
	return int64(len(settled)), deleted, true, nil
}
