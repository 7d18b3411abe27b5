package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/rcrouter/rcrouter/internal/store"
)

// Ingest stores e and its deliveries in the next group commit. Its inputs are
// copied before queuing: the writer may still run them after ctx ends and the
// caller has reused its buffers.
func (s *Store) Ingest(ctx context.Context, e store.NewEvent) (bool, error) {
	if e.ID == "" {
		return false, errors.New("ingest: empty event id")
	}
	if e.Type == "" {
		return false, fmt.Errorf("ingest event %q: empty type", e.ID)
	}
	seen := make(map[string]bool, len(e.Deliveries))
	for _, d := range e.Deliveries {
		if d.Destination == "" {
			return false, fmt.Errorf("ingest event %q: delivery with empty destination", e.ID)
		}
		if seen[d.Destination] {
			return false, fmt.Errorf("ingest event %q: destination %q named twice", e.ID, d.Destination)
		}
		seen[d.Destination] = true
	}
	received := e.ReceivedAt
	if received.IsZero() {
		received = s.now()
	}
	at := ms(received)
	body := append([]byte{}, e.Body...) // never nil: the column is NOT NULL
	var routes any
	if e.Routes != nil {
		routes = string(e.Routes)
	}
	type row struct{ id, destination, route string }
	rows := make([]row, len(e.Deliveries))
	for i, d := range e.Deliveries {
		rows[i] = row{s.ids.New(), d.Destination, d.Route}
	}
	eventID, eventType := e.ID, e.Type
	users, txns := store.Distinct(e.UserIDs), store.Distinct(e.TransactionIDs)

	var created bool
	err := s.do(ctx, func(w *writer) error {
		created = false
		res, err := w.st.insEvent.ExecContext(w.ctx, eventID, eventType, at, body, routes)
		if err != nil {
			return fmt.Errorf("ingest event %q: %w", eventID, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("ingest event %q: %w", eventID, err)
		}
		if n == 0 {
			return nil // duplicate: stored before, or earlier in this batch
		}
		if len(rows) == 0 { // unrouted: nothing left to do
			if _, err := w.st.markSettled.ExecContext(w.ctx, at, eventID); err != nil {
				return fmt.Errorf("ingest event %q: settle: %w", eventID, err)
			}
		}
		for _, r := range rows {
			if _, err := w.st.insDelivery.ExecContext(w.ctx, r.id, eventID, eventType, r.destination, r.route, at, at, at); err != nil {
				return fmt.Errorf("ingest event %q: delivery to %s: %w", eventID, r.destination, err)
			}
		}
		for _, u := range users {
			if _, err := w.st.insUser.ExecContext(w.ctx, u, at, eventID); err != nil {
				return fmt.Errorf("ingest event %q: user index: %w", eventID, err)
			}
		}
		for _, x := range txns {
			if _, err := w.st.insTransaction.ExecContext(w.ctx, x, at, eventID); err != nil {
				return fmt.Errorf("ingest event %q: transaction index: %w", eventID, err)
			}
		}
		created = true
		return nil
	})
	if err != nil {
		return false, err
	}
	return created, nil
}

// Claim leases up to limit due deliveries of destination to owner. The
// leases live in memory (leaseTable): a claim reads and writes nothing on
// disk but the due rows it reads, and skips the rows whose lease has not
// ended. A lease has expired at leaseUntil: from that instant another Claim
// may take the row. One token serves every row of a call: it is unique to
// the call, so each claim of a row still gets its own.
func (s *Store) Claim(ctx context.Context, owner, destination string, now, leaseUntil time.Time, limit int) ([]store.Delivery, error) {
	if limit <= 0 {
		return nil, nil
	}
	if !leaseUntil.After(now) {
		return nil, fmt.Errorf("claim %s: lease end %v is not after now %v", destination, leaseUntil, now)
	}
	nowMs, leaseMs := ms(now), ms(leaseUntil)
	token := s.ids.New()
	var out []store.Delivery
	err := s.doBackground(ctx, func(w *writer) error {
		rows, err := w.st.claimSel.QueryContext(w.ctx, destination, nowMs)
		if err != nil {
			return fmt.Errorf("claim %s: %w", destination, err)
		}
		var refs []rowRef
		ds, err := scanDeliveriesN(rows, true, limit, func(id string) bool { return s.leases.live(id, nowMs) }, &refs)
		if err != nil {
			return fmt.Errorf("claim %s: %w", destination, err)
		}
		for i := range ds {
			d := &ds[i]
			s.leases.put(d.ID, &heldLease{owner: owner, token: token, until: leaseMs, claimedAt: nowMs, body: d.Body,
				eventID: d.EventID, eventType: d.EventType, destination: d.Destination, route: d.Route,
				rowid: refs[i].rowid, eventReceived: refs[i].received})
			d.State = store.Running
			d.UpdatedAt = fromMs(nowMs)
			d.Lease = store.Lease{DeliveryID: d.ID, Owner: owner, Token: token, Until: fromMs(leaseMs)}
		}
		out = ds
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// completion is a store.Completion copied and encoded for the writer.
type completion struct {
	deliveryID string
	token      string
	state      store.State
	next       sql.NullInt64 // set for Retrying only
	lastError  string
	finished   int64
	dispatches []dispatchRow
}

type dispatchRow struct {
	id, eventID, eventType, destination, route, replica string
	attempt                                             int
	status                                              string
	request, response                                   string
	bodyIsEvent                                         bool // request stored without its body, which is the event's
	durationMs, createdAt                               int64
	next                                                sql.NullInt64
}

// Complete records attempts and new states in one transaction, shared with
// other queued writes. A completion whose lease was lost writes nothing; the
// rest of the slice commits (store.Queue).
func (s *Store) Complete(ctx context.Context, cs []store.Completion) error {
	if len(cs) == 0 {
		return nil
	}
	now := s.now()
	rows := make([]completion, len(cs))
	for i := range cs {
		c := &cs[i]
		switch c.State {
		case store.Delivered, store.Retrying, store.Dead, store.Skipped:
		default:
			return fmt.Errorf("complete delivery %q: state %q is not a completion state", c.DeliveryID, c.State)
		}
		if c.LeaseToken == "" {
			return fmt.Errorf("complete delivery %q: no lease token", c.DeliveryID)
		}
		finished := c.FinishedAt
		if finished.IsZero() {
			finished = now
		}
		r := completion{deliveryID: c.DeliveryID, token: c.LeaseToken, state: c.State, lastError: c.LastError, finished: ms(finished)}
		// The claim's body, to store a request that sent it as a reference.
		var claimed *heldLease
		if l := s.leases.get(c.DeliveryID); l != nil && l.token == c.LeaseToken {
			claimed = l
		}
		if c.State == store.Retrying {
			r.next = sql.NullInt64{Int64: ms(c.NextAttemptAt), Valid: true}
		}
		for j := range c.Dispatches {
			d := &c.Dispatches[j]
			if d.ID == "" {
				d.ID = s.ids.New() // in place: the caller publishes the record with it
			}
			rq := d.Request
			bodyIsEvent := claimed != nil && rq.Body != "" && rq.Body == string(claimed.body) &&
				(d.EventID == "" || d.EventID == claimed.eventID)
			if bodyIsEvent {
				rq.Body = ""
			}
			req, err := json.Marshal(rq)
			if err != nil {
				return fmt.Errorf("complete delivery %q: encode request: %w", c.DeliveryID, err)
			}
			resp, err := json.Marshal(d.Response)
			if err != nil {
				return fmt.Errorf("complete delivery %q: encode response: %w", c.DeliveryID, err)
			}
			dr := dispatchRow{
				id: d.ID, eventID: d.EventID, eventType: d.EventType, destination: d.Destination, route: d.Route, replica: d.Replica,
				attempt: d.Attempt, status: d.Status, request: string(req), response: string(resp), bodyIsEvent: bodyIsEvent,
				durationMs: d.DurationMs, createdAt: ms(d.CreatedAt),
			}
			if d.NextAttemptAt != nil {
				dr.next = sql.NullInt64{Int64: ms(*d.NextAttemptAt), Valid: true}
			}
			r.dispatches = append(r.dispatches, dr)
		}
		rows[i] = r
	}
	var lost []string
	err := s.doBackground(ctx, func(w *writer) error {
		var err error
		lost, err = w.complete(rows)
		return err
	})
	if err != nil {
		return err
	}
	if len(lost) > 0 {
		return &store.LeaseLostError{DeliveryIDs: lost}
	}
	return nil
}

// complete applies rows and returns the deliveries whose lease was lost.
func (w *writer) complete(rows []completion) (lost []string, err error) {
	// An unknown id rejects the call before anything is written. A leased
	// delivery is known; only the others are looked up.
	for _, r := range rows {
		if w.leases.get(r.deliveryID) != nil {
			continue
		}
		if _, err := w.delivery(r.deliveryID); err != nil {
			return nil, err
		}
	}
	for _, r := range rows {
		// Taking the lease spends it: a second completion of one lease in
		// this slice, like any other stale one, finds it gone.
		cur := w.leases.take(r.deliveryID, r.token)
		if cur == nil {
			lost = append(lost, r.deliveryID)
			continue
		}
		args := []any{string(r.state), len(r.dispatches), r.next, r.lastError, r.finished, cur.rowid, r.deliveryID}
		res, err := w.st.completeUpd.ExecContext(w.ctx, args...)
		if err != nil {
			return nil, fmt.Errorf("complete delivery %q: %w", r.deliveryID, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return nil, fmt.Errorf("complete delivery %q: %w", r.deliveryID, err)
		} else if n == 0 {
			if _, err := w.st.completeByID.ExecContext(w.ctx, args...); err != nil {
				return nil, fmt.Errorf("complete delivery %q: %w", r.deliveryID, err)
			}
		}
		// Only a delivered or skipped delivery can settle its event: any
		// other state leaves it unsettled, as it was while this one was due.
		// Nor can it while another delivery of the event is leased (pending
		// on disk): with several destinations only the last to finish
		// usually runs the check.
		if (r.state == store.Delivered || r.state == store.Skipped) && !w.leases.eventHeld(cur.eventID) {
			if _, err := w.st.settle.ExecContext(w.ctx, cur.eventID, cur.eventReceived); err != nil {
				return nil, fmt.Errorf("complete delivery %q: settle event: %w", r.deliveryID, err)
			}
		}
		if r.state == store.Retrying || r.state == store.Dead {
			if _, err := w.st.setLastError.ExecContext(w.ctx, cur.destination, r.lastError, r.finished); err != nil {
				return nil, fmt.Errorf("complete delivery %q: last error: %w", r.deliveryID, err)
			}
		}
		for _, d := range r.dispatches {
			_, err := w.st.insDispatch.ExecContext(w.ctx, d.id, r.deliveryID,
				or(d.eventID, cur.eventID), or(d.eventType, cur.eventType), or(d.destination, cur.destination), or(d.route, cur.route),
				or(d.replica, cur.owner),
				d.attempt, d.status, d.request, d.response, d.durationMs, d.createdAt, d.next, d.bodyIsEvent)
			if err != nil {
				return nil, fmt.Errorf("complete delivery %q: dispatch %s: %w", r.deliveryID, d.id, err)
			}
		}
	}
	return lost, nil
}

type deliveryHead struct {
	eventID, eventType, destination, route string
	state                                  store.State
	owner, token                           sql.NullString // lease_owner, lease_token
}

// delivery reads the fields writes need; an absent row is a rejection.
func (w *writer) delivery(id string) (deliveryHead, error) {
	var h deliveryHead
	err := w.st.getDelivery.QueryRowContext(w.ctx, id).Scan(&h.eventID, &h.eventType, &h.destination, &h.route, &h.state, &h.owner, &h.token)
	if errors.Is(err, sql.ErrNoRows) {
		return h, reject(fmt.Errorf("delivery %q: %w", id, store.ErrNotFound))
	}
	if err != nil {
		return h, fmt.Errorf("read delivery %q: %w", id, err)
	}
	return h, nil
}

func or(v, fallback string) string {
	if v == "" {
		return fallback
	}
	return v
}

// Release makes the deliveries still held with the given leases Pending and
// due at now; the others are left alone.
func (s *Store) Release(ctx context.Context, leases []store.Lease, now time.Time) error {
	if len(leases) == 0 {
		return nil
	}
	at := ms(now)
	type held struct{ id, token string }
	hs := make([]held, len(leases))
	for i, l := range leases {
		hs[i] = held{l.DeliveryID, l.Token}
	}
	return s.doBackground(ctx, func(w *writer) error {
		for _, h := range hs {
			if w.leases.take(h.id, h.token) == nil {
				continue // another claim's, or finished
			}
			if _, err := w.st.releaseOne.ExecContext(w.ctx, at, h.id); err != nil {
				return fmt.Errorf("release %s: %w", h.id, err)
			}
		}
		return nil
	})
}

// ReleaseAll makes every Running delivery Pending and due at now, whoever
// holds it, and returns how many. It is for start-up only: one process owns
// the file, so what is running then was left by a process that died. The
// leases of this build live in memory and die with it; what ReleaseAll
// finds on disk are the running rows that builds leasing on disk left.
func (s *Store) ReleaseAll(ctx context.Context, now time.Time) (int, error) {
	at := ms(now)
	var n int64
	err := s.doBackground(ctx, func(w *writer) error {
		mem := w.leases.drain()
		for _, id := range mem {
			if _, err := w.st.releaseOne.ExecContext(w.ctx, at, id); err != nil {
				return fmt.Errorf("release all: %s: %w", id, err)
			}
		}
		res, err := w.st.releaseAll.ExecContext(w.ctx, at)
		if err != nil {
			return fmt.Errorf("release all: %w", err)
		}
		n, err = res.RowsAffected()
		if err != nil {
			return fmt.Errorf("release all: %w", err)
		}
		n += int64(len(mem))
		return nil
	})
	if err != nil {
		return 0, err
	}
	return int(n), nil
}

// Retry makes one delivery Pending and due at now, keeping its attempts.
func (s *Store) Retry(ctx context.Context, deliveryID string, now time.Time) error {
	at := ms(now)
	err := s.do(ctx, func(w *writer) error {
		cur, err := w.delivery(deliveryID)
		if err != nil {
			return err
		}
		if cur.state == store.Running || w.leases.get(deliveryID) != nil {
			return reject(fmt.Errorf("delivery %q is running: %w", deliveryID, store.ErrConflict))
		}
		if _, err := w.st.retryUpd.ExecContext(w.ctx, at, deliveryID); err != nil {
			return fmt.Errorf("delivery %q: %w", deliveryID, err)
		}
		if _, err := w.st.unsettle.ExecContext(w.ctx, cur.eventID); err != nil {
			return fmt.Errorf("delivery %q: unsettle event: %w", deliveryID, err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("retry: %w", err)
	}
	return nil
}

// replayWhere selects the deliveries a ReplayFilter names. It reads
// deliveries_state as a range on (destination, state, created_at).
const replayWhere = `destination = ?1 AND state = ?2 AND created_at >= ?3 AND created_at < ?4 AND (?5 = '' OR event_type = ?5)`

// Replay makes the matching deliveries Pending and due at now, in one
// transaction; a replay of a very large dead set holds the writer (and so
// ingest) for as long as that update takes.
func (s *Store) Replay(ctx context.Context, f store.ReplayFilter, now time.Time, dryRun bool) (int, error) {
	if f.Destination == "" {
		return 0, errors.New("replay: empty destination")
	}
	if f.Status == "" {
		f.Status = store.Dead
	}
	switch f.Status {
	case store.Pending, store.Retrying, store.Dead, store.Delivered, store.Skipped:
	default:
		// Running rows belong to a worker until their lease ends.
		return 0, fmt.Errorf("replay %s: cannot replay %s deliveries", f.Destination, f.Status)
	}
	since, until := int64(math.MinInt64), int64(math.MaxInt64)
	if !f.Since.IsZero() {
		since = ms(f.Since)
	}
	if !f.Until.IsZero() {
		until = ms(f.Until)
	}
	args := []any{f.Destination, string(f.Status), since, until, f.EventType}
	if dryRun {
		if err := s.readable(); err != nil {
			return 0, err
		}
		var n int
		if err := s.rdb.QueryRowContext(ctx, `SELECT COUNT(*) FROM deliveries WHERE `+replayWhere, args...).Scan(&n); err != nil {
			return 0, fmt.Errorf("replay %s: count: %w", f.Destination, err)
		}
		return n, nil
	}
	at := ms(now)
	var n int64
	// Only replaying delivered or skipped rows can unsettle an event.
	unsettle := f.Status == store.Delivered || f.Status == store.Skipped
	err := s.do(ctx, func(w *writer) error {
		if unsettle {
			if _, err := w.conn.ExecContext(w.ctx, `DELETE FROM settled_events WHERE (received_at, event_id) IN (
				SELECT received_at, id FROM events WHERE id IN (SELECT event_id FROM deliveries WHERE `+replayWhere+`))`, args...); err != nil {
				return fmt.Errorf("replay %s: unsettle events: %w", f.Destination, err)
			}
		}
		res, err := w.conn.ExecContext(w.ctx, `UPDATE deliveries SET state = 'pending', next_attempt_at = ?6,
			lease_until = NULL, delivered_at = NULL, updated_at = ?6 WHERE `+replayWhere, append(args, at)...)
		if err != nil {
			return fmt.Errorf("replay %s: %w", f.Destination, err)
		}
		n, err = res.RowsAffected()
		if err != nil {
			return fmt.Errorf("replay %s: %w", f.Destination, err)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return int(n), nil
}

// SetPaused persists the paused flag of a destination.
func (s *Store) SetPaused(ctx context.Context, destination string, paused bool) error {
	if destination == "" {
		return errors.New("set paused: empty destination")
	}
	return s.do(ctx, func(w *writer) error {
		_, err := w.conn.ExecContext(w.ctx, `INSERT INTO destination_state (name, paused) VALUES (?, ?)
			ON CONFLICT (name) DO UPDATE SET paused = excluded.paused`, destination, paused)
		if err != nil {
			return fmt.Errorf("set paused %s: %w", destination, err)
		}
		return nil
	})
}

// purgeEventsSQL reads only settled events (settled_events), so old events
// that still hold work (a large dead backlog) cost nothing. An event whose
// body a kept dispatch record refers to (request_body_event) stays until
// that record ages out; the check is one seek of dispatches_event.
const purgeEventsSQL = `SELECT event_id, received_at FROM settled_events s WHERE received_at < ?
	AND NOT EXISTS (SELECT 1 FROM dispatches WHERE dispatches.event_id = s.event_id AND request_body_event = 1)
	ORDER BY received_at LIMIT ?`

// Purge deletes, oldest first, at most limit dispatch records created before
// before, and at most limit events received before before whose deliveries
// are all delivered or skipped, with those deliveries. It returns the rows
// deleted (dispatches + events + deliveries); a caller loops until 0, and
// every call makes progress or returns 0, so the loop ends. Dispatch records
// are kept independently of their delivery: they age out on their own clock.
func (s *Store) Purge(ctx context.Context, before time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, fmt.Errorf("purge: limit %d must be positive", limit)
	}
	at := ms(before)
	var total int64
	err := s.doBackground(ctx, func(w *writer) error {
		total = 0
		res, err := w.conn.ExecContext(w.ctx, `DELETE FROM dispatches WHERE rowid IN (
			SELECT rowid FROM dispatches WHERE created_at < ? ORDER BY created_at LIMIT ?)`, at, limit)
		if err != nil {
			return fmt.Errorf("purge dispatches: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("purge dispatches: %w", err)
		}
		total += n
		rows, err := w.conn.QueryContext(w.ctx, purgeEventsSQL, at, limit)
		if err != nil {
			return fmt.Errorf("purge events: %w", err)
		}
		type settled struct {
			id string
			at int64
		}
		var evs []settled
		for rows.Next() {
			var e settled
			if err := rows.Scan(&e.id, &e.at); err != nil {
				rows.Close()
				return fmt.Errorf("purge events: %w", err)
			}
			evs = append(evs, e)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return fmt.Errorf("purge events: %w", err)
		}
		for _, e := range evs {
			id := e.id
			// The indexes are not counted: they are part of the event.
			if _, err := w.conn.ExecContext(w.ctx, `DELETE FROM settled_events WHERE received_at = ? AND event_id = ?`, e.at, id); err != nil {
				return fmt.Errorf("purge event %q: %w", id, err)
			}
			for _, q := range []string{`DELETE FROM event_users WHERE event_id = ?`, `DELETE FROM event_transactions WHERE event_id = ?`} {
				if _, err := w.conn.ExecContext(w.ctx, q, id); err != nil {
					return fmt.Errorf("purge event %q: %w", id, err)
				}
			}
			for _, q := range []string{`DELETE FROM deliveries WHERE event_id = ?`, `DELETE FROM events WHERE id = ?`} {
				res, err := w.conn.ExecContext(w.ctx, q, id)
				if err != nil {
					return fmt.Errorf("purge event %q: %w", id, err)
				}
				n, err := res.RowsAffected()
				if err != nil {
					return fmt.Errorf("purge event %q: %w", id, err)
				}
				total += n
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return int(total), nil
}
