package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rcrouter/rcrouter/internal/store"
)

// Event returns a stored event.
func (s *Store) Event(ctx context.Context, id string) (store.Event, error) {
	if err := s.usable(); err != nil {
		return store.Event{}, err
	}
	var e store.Event
	var routes *string
	err := s.pool.QueryRow(ctx, `SELECT id, type, received_at, body, routes FROM events WHERE id = $1`, id).
		Scan(&e.ID, &e.Type, &e.ReceivedAt, &e.Body, &routes)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Event{}, fmt.Errorf("event %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Event{}, s.fail(fmt.Sprintf("event %q", id), err)
	}
	e.ReceivedAt = utc(e.ReceivedAt)
	if routes != nil {
		e.Routes = json.RawMessage(*routes)
	}
	return e, nil
}

// deliveries runs a query of deliveryCols.
func (s *Store) deliveries(ctx context.Context, op, q string, args ...any) ([]store.Delivery, error) {
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, s.fail(op, err)
	}
	defer rows.Close()
	var out []store.Delivery
	for rows.Next() {
		var d store.Delivery
		if err := rows.Scan(deliveryDest(&d)...); err != nil {
			return nil, s.fail(op, err)
		}
		fixDelivery(&d)
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail(op, err)
	}
	return out, nil
}

// Delivery returns one delivery (without the event body).
func (s *Store) Delivery(ctx context.Context, id string) (store.Delivery, error) {
	if err := s.usable(); err != nil {
		return store.Delivery{}, err
	}
	op := fmt.Sprintf("delivery %q", id)
	ds, err := s.deliveries(ctx, op, `SELECT `+deliveryCols+` FROM deliveries d WHERE d.id = $1`, id)
	if err != nil {
		return store.Delivery{}, err
	}
	if len(ds) == 0 {
		return store.Delivery{}, fmt.Errorf("%s: %w", op, store.ErrNotFound)
	}
	return ds[0], nil
}

// EventDeliveries returns the deliveries of one event by destination name.
func (s *Store) EventDeliveries(ctx context.Context, eventID string) ([]store.Delivery, error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	return s.deliveries(ctx, fmt.Sprintf("deliveries of event %q", eventID),
		`SELECT `+deliveryCols+` FROM deliveries d WHERE d.event_id = $1 ORDER BY d.destination`, eventID)
}

// dispatchCols reads a record of the table dispatches (unaliased); a
// request body stored as a reference (request_body_event) is its event's
// body, read by primary key.
const dispatchCols = `id, delivery_id, event_id, event_type, destination, route, attempt, status,
	request, response, duration_ms, created_at, next_attempt_at, replica,
	CASE WHEN request_body_event THEN (SELECT body FROM events WHERE events.id = dispatches.event_id) END`

func scanDispatch(row pgx.Row) (store.Dispatch, error) {
	var d store.Dispatch
	var req, resp, replica string
	var eventBody []byte
	if err := row.Scan(&d.ID, &d.DeliveryID, &d.EventID, &d.EventType, &d.Destination, &d.Route, &d.Attempt,
		&d.Status, &req, &resp, &d.DurationMs, &d.CreatedAt, &d.NextAttemptAt, &replica, &eventBody); err != nil {
		return d, err
	}
	if err := json.Unmarshal([]byte(req), &d.Request); err != nil {
		return d, fmt.Errorf("decode request of dispatch %s: %w", d.ID, err)
	}
	if eventBody != nil {
		d.Request.Body = string(eventBody)
	}
	if err := json.Unmarshal([]byte(resp), &d.Response); err != nil {
		return d, fmt.Errorf("decode response of dispatch %s: %w", d.ID, err)
	}
	d.CreatedAt = utc(d.CreatedAt)
	d.NextAttemptAt = utcPtr(d.NextAttemptAt)
	d.Replica = replica
	return d, nil
}

// Dispatch returns one dispatch record.
func (s *Store) Dispatch(ctx context.Context, id string) (store.Dispatch, error) {
	if err := s.usable(); err != nil {
		return store.Dispatch{}, err
	}
	d, err := scanDispatch(s.pool.QueryRow(ctx, `SELECT `+dispatchCols+` FROM dispatches WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Dispatch{}, fmt.Errorf("dispatch %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Dispatch{}, s.fail(fmt.Sprintf("dispatch %q", id), err)
	}
	return d, nil
}

// dispatchesByID reads records for the feed, in id (creation) order.
func (s *Store) dispatchesByID(ctx context.Context, ids []string) ([]store.Dispatch, error) {
	return s.queryDispatches(ctx, `SELECT `+dispatchCols+` FROM dispatches WHERE id = ANY($1) ORDER BY id`, ids)
}

// queryDispatches runs a query of dispatchCols.
func (s *Store) queryDispatches(ctx context.Context, q string, args ...any) ([]store.Dispatch, error) {
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Dispatch
	for rows.Next() {
		d, err := scanDispatch(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// Dispatches lists dispatch records newest first. Each filter has an index
// ending in (created_at, id), so a page is an ordered range scan that stops
// after limit+1 rows.
func (s *Store) Dispatches(ctx context.Context, f store.DispatchFilter) ([]store.Dispatch, string, error) {
	if err := s.usable(); err != nil {
		return nil, "", err
	}
	limit := f.PageLimit()
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	for _, c := range []struct{ col, v string }{
		{"destination", f.Destination}, {"status", f.Status}, {"event_id", f.EventID}, {"event_type", f.EventType},
	} {
		if c.v != "" {
			where = append(where, c.col+" = "+arg(c.v))
		}
	}
	if f.Before != "" {
		at, id, err := store.DecodeCursor(f.Before)
		if err != nil {
			return nil, "", fmt.Errorf("dispatches: %w", err)
		}
		where = append(where, "(created_at, id) < ("+arg(at)+", "+arg(id)+")")
	}
	q := `SELECT ` + dispatchCols + ` FROM dispatches`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY created_at DESC, id DESC LIMIT ` + arg(limit+1)
	items, err := s.queryDispatches(ctx, q, args...)
	if err != nil {
		return nil, "", s.fail("dispatches", err)
	}
	items, next := store.Page(items, limit)
	return items, next, nil
}

// Paused returns the destinations whose paused flag is set.
func (s *Store) Paused(ctx context.Context) (map[string]bool, error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT name FROM destination_state WHERE paused`)
	if err != nil {
		return nil, s.fail("paused", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, s.fail("paused", err)
	}
	out := make(map[string]bool, len(names))
	for _, n := range names {
		out[n] = true
	}
	return out, nil
}

// statsSQL summarizes every destination in one statement (one snapshot).
// The destination list is a loose index scan (one seek per destination);
// each figure is a range of one index, as in SQLite: unfinished and dead
// rows, and the window's activity, never the delivered history.
const statsSQL = `WITH RECURSIVE dest(name) AS (
	(SELECT min(destination) FROM deliveries)
	UNION ALL
	SELECT (SELECT min(destination) FROM deliveries WHERE destination > dest.name) FROM dest WHERE dest.name IS NOT NULL
)
SELECT dest.name,
	(SELECT count(*) FROM deliveries WHERE destination = dest.name AND state IN ('pending', 'retrying', 'running')),
	(SELECT count(*) FROM deliveries WHERE destination = dest.name AND state = 'retrying'),
	(SELECT count(*) FROM deliveries WHERE destination = dest.name AND state = 'dead'),
	(SELECT min(created_at) FROM deliveries WHERE destination = dest.name AND state IN ('pending', 'retrying', 'running')),
	(SELECT count(*) FROM deliveries WHERE destination = dest.name AND delivered_at >= $1),
	(SELECT max(delivered_at) FROM deliveries WHERE destination = dest.name AND delivered_at IS NOT NULL),
	(SELECT count(*) FROM dispatches WHERE destination = dest.name AND status IN ('retrying', 'dead') AND created_at >= $1),
	COALESCE((SELECT last_error FROM destination_state WHERE destination_state.name = dest.name), '')
FROM dest WHERE dest.name IS NOT NULL`

// Stats summarizes every destination that has deliveries.
func (s *Store) Stats(ctx context.Context, since time.Time) (map[string]store.DestinationStats, error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, statsSQL, ms(since))
	if err != nil {
		return nil, s.fail("stats", err)
	}
	defer rows.Close()
	out := map[string]store.DestinationStats{}
	for rows.Next() {
		var name string
		var st store.DestinationStats
		if err := rows.Scan(&name, &st.Pending, &st.Retrying, &st.Dead, &st.OldestPending, &st.Delivered,
			&st.LastSuccessAt, &st.Failed, &st.LastError); err != nil {
			return nil, s.fail("stats", err)
		}
		st.OldestPending, st.LastSuccessAt = utcPtr(st.OldestPending), utcPtr(st.LastSuccessAt)
		out[name] = st
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("stats", err)
	}
	return out, nil
}
