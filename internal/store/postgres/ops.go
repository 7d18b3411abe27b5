package postgres

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/rcrouter/rcrouter/internal/store"
)

// Page sizes of Events (as Dispatches').
const maxEventLimit = 500

// Events lists stored events newest first: an ordered range scan of
// events_received, or with a user (a transaction) of event_users
// (event_transactions) joined to events by primary key, as in SQLite.
func (s *Store) Events(ctx context.Context, f store.EventFilter) ([]store.Event, string, error) {
	if err := s.usable(); err != nil {
		return nil, "", err
	}
	limit := f.Limit
	if limit <= 0 {
		limit = store.DefaultPageLimit
	}
	limit = min(limit, maxEventLimit)
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	at, id := "e.received_at", "e.id"
	q := `SELECT e.id, e.type, e.received_at, e.body, e.routes FROM events e`
	switch {
	case f.UserID != "":
		at, id = "u.received_at", "u.event_id"
		q = `SELECT e.id, e.type, e.received_at, e.body, e.routes FROM event_users u JOIN events e ON e.id = u.event_id`
		where = append(where, "u.user_id = "+arg(f.UserID))
	case f.TransactionID != "":
		at, id = "u.received_at", "u.event_id"
		q = `SELECT e.id, e.type, e.received_at, e.body, e.routes FROM event_transactions u JOIN events e ON e.id = u.event_id`
		where = append(where, "u.transaction_id = "+arg(f.TransactionID))
	}
	if f.Type != "" {
		where = append(where, "e.type = "+arg(f.Type))
	}
	if !f.Since.IsZero() {
		where = append(where, at+" >= "+arg(ms(f.Since)))
	}
	if !f.Until.IsZero() {
		where = append(where, at+" < "+arg(ms(f.Until)))
	}
	if f.Before != "" {
		bat, bid, err := store.DecodeCursor(f.Before)
		if err != nil {
			return nil, "", err
		}
		where = append(where, "("+at+", "+id+") < ("+arg(bat)+", "+arg(bid)+")")
	}
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY ` + at + ` DESC, ` + id + ` DESC LIMIT ` + arg(limit+1)
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, "", s.fail("events", err)
	}
	defer rows.Close()
	items := make([]store.Event, 0, limit+1)
	for rows.Next() {
		var e store.Event
		var routes *string
		if err := rows.Scan(&e.ID, &e.Type, &e.ReceivedAt, &e.Body, &routes); err != nil {
			return nil, "", s.fail("events", err)
		}
		e.ReceivedAt = utc(e.ReceivedAt)
		if routes != nil {
			e.Routes = json.RawMessage(*routes)
		}
		items = append(items, e)
	}
	if err := rows.Err(); err != nil {
		return nil, "", s.fail("events", err)
	}
	if len(items) <= limit {
		return items, "", nil
	}
	items = items[:limit]
	last := items[limit-1]
	return items, store.EncodeCursor(last.ReceivedAt, last.ID), nil
}

// RouteMatches counts matched verdicts per route over the window (a range
// scan of events_received; the verdicts are JSON text, read as jsonb).
func (s *Store) RouteMatches(ctx context.Context, since time.Time) (map[string]int, error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT v->>'name', count(*) FROM events e,
		jsonb_array_elements(CASE WHEN jsonb_typeof(e.routes::jsonb) = 'array' THEN e.routes::jsonb ELSE '[]'::jsonb END) v
		WHERE e.received_at >= $1 AND v->'matched' = 'true'::jsonb AND jsonb_typeof(v->'name') = 'string'
		GROUP BY 1`, ms(since))
	if err != nil {
		return nil, s.fail("route matches", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var name string
		var n int
		if err := rows.Scan(&name, &n); err != nil {
			return nil, s.fail("route matches", err)
		}
		out[name] = n
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("route matches", err)
	}
	return out, nil
}

// DispatchBuckets reads the window's dispatch records of one destination
// through dispatches_destination and buckets them as every store does.
func (s *Store) DispatchBuckets(ctx context.Context, f store.BucketFilter) ([]store.Bucket, error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	b := store.NewBucketer(f)
	until := f.Since.Add(time.Duration(f.Count) * f.Width)
	rows, err := s.pool.Query(ctx, `SELECT created_at, status, duration_ms FROM dispatches
		WHERE destination = $1 AND created_at >= $2 AND created_at < $3 ORDER BY created_at, id`, f.Destination, ms(f.Since), ms(until))
	if err != nil {
		return nil, s.fail("dispatch buckets "+f.Destination, err)
	}
	defer rows.Close()
	for rows.Next() {
		var at time.Time
		var status string
		var dur int64
		if err := rows.Scan(&at, &status, &dur); err != nil {
			return nil, s.fail("dispatch buckets "+f.Destination, err)
		}
		b.Add(utc(at), status, dur)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("dispatch buckets "+f.Destination, err)
	}
	return b.Buckets(), nil
}
