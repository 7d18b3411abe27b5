package sqlite

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/rcrouter/rcrouter/internal/store"
)

const deliveryCols = `d.id, d.event_id, d.event_type, d.destination, d.route, d.state, d.attempts, d.tries,
	d.next_attempt_at, d.created_at, d.updated_at, d.delivered_at, d.last_error`

// scanDeliveries reads and closes rows of deliveryCols, plus the event body
// when withBody.
func scanDeliveries(rows *sql.Rows, withBody bool) ([]store.Delivery, error) {
	return scanDeliveriesN(rows, withBody, 0, nil, nil)
}

// rowRef is where a claimed row is and when its event was received
// (claimSQL's last columns), so its completion seeks neither by id.
type rowRef struct{ rowid, received int64 }

// scanDeliveriesN is scanDeliveries keeping at most max rows (0: all), and
// only those skip (when set) does not refuse. With refs, each row has a
// rowRef after the body, appended there.
func scanDeliveriesN(rows *sql.Rows, withBody bool, max int, skip func(id string) bool, refs *[]rowRef) ([]store.Delivery, error) {
	defer rows.Close()
	var out []store.Delivery
	if max > 0 {
		out = make([]store.Delivery, 0, max)
	}
	for (max <= 0 || len(out) < max) && rows.Next() {
		var d store.Delivery
		var next, created, updated int64
		var delivered sql.NullInt64
		var ref rowRef
		dst := []any{&d.ID, &d.EventID, &d.EventType, &d.Destination, &d.Route, &d.State, &d.Attempts, &d.Tries,
			&next, &created, &updated, &delivered, &d.LastError}
		if withBody {
			dst = append(dst, &d.Body)
		}
		if refs != nil {
			dst = append(dst, &ref.rowid, &ref.received)
		}
		if err := rows.Scan(dst...); err != nil {
			return nil, err
		}
		if skip != nil && skip(d.ID) {
			continue
		}
		d.NextAttemptAt, d.CreatedAt, d.UpdatedAt = fromMs(next), fromMs(created), fromMs(updated)
		d.DeliveredAt = nullMs(delivered)
		out = append(out, d)
		if refs != nil {
			*refs = append(*refs, ref)
		}
	}
	return out, rows.Err()
}

// Event returns a stored event.
func (s *Store) Event(ctx context.Context, id string) (store.Event, error) {
	if err := s.readable(); err != nil {
		return store.Event{}, err
	}
	var e store.Event
	var received int64
	var routes sql.NullString
	err := s.rdb.QueryRowContext(ctx, `SELECT id, type, received_at, body, routes FROM events WHERE id = ?`, id).
		Scan(&e.ID, &e.Type, &received, &e.Body, &routes)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Event{}, fmt.Errorf("event %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Event{}, fmt.Errorf("event %q: %w", id, err)
	}
	e.ReceivedAt = fromMs(received)
	if routes.Valid {
		e.Routes = json.RawMessage(routes.String)
	}
	return e, nil
}

// Delivery returns one delivery (without the event body).
func (s *Store) Delivery(ctx context.Context, id string) (store.Delivery, error) {
	if err := s.readable(); err != nil {
		return store.Delivery{}, err
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT `+deliveryCols+` FROM deliveries d WHERE d.id = ?`, id)
	if err != nil {
		return store.Delivery{}, fmt.Errorf("delivery %q: %w", id, err)
	}
	ds, err := scanDeliveries(rows, false)
	if err != nil {
		return store.Delivery{}, fmt.Errorf("delivery %q: %w", id, err)
	}
	if len(ds) == 0 {
		return store.Delivery{}, fmt.Errorf("delivery %q: %w", id, store.ErrNotFound)
	}
	s.leases.overlay(ds)
	return ds[0], nil
}

// EventDeliveries returns the deliveries of one event by destination name;
// none (and no error) for an unknown or unrouted event.
func (s *Store) EventDeliveries(ctx context.Context, eventID string) ([]store.Delivery, error) {
	if err := s.readable(); err != nil {
		return nil, err
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT `+deliveryCols+` FROM deliveries d WHERE d.event_id = ? ORDER BY d.destination`, eventID)
	if err != nil {
		return nil, fmt.Errorf("deliveries of event %q: %w", eventID, err)
	}
	ds, err := scanDeliveries(rows, false)
	if err != nil {
		return nil, fmt.Errorf("deliveries of event %q: %w", eventID, err)
	}
	s.leases.overlay(ds)
	return ds, nil
}

// dispatchCols reads a record; a request body stored as a reference
// (request_body_event) is its event's body, read by primary key.
const dispatchCols = `id, delivery_id, event_id, event_type, destination, route, replica, attempt, status,
	request, response, duration_ms, created_at, next_attempt_at,
	CASE WHEN request_body_event = 1 THEN (SELECT body FROM events WHERE events.id = dispatches.event_id) END`

func scanDispatch(sc interface{ Scan(...any) error }) (store.Dispatch, error) {
	var d store.Dispatch
	var req, resp string
	var created int64
	var next sql.NullInt64
	var eventBody []byte
	if err := sc.Scan(&d.ID, &d.DeliveryID, &d.EventID, &d.EventType, &d.Destination, &d.Route, &d.Replica, &d.Attempt,
		&d.Status, &req, &resp, &d.DurationMs, &created, &next, &eventBody); err != nil {
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
	d.CreatedAt = fromMs(created)
	d.NextAttemptAt = nullMs(next)
	return d, nil
}

// Dispatch returns one dispatch record.
func (s *Store) Dispatch(ctx context.Context, id string) (store.Dispatch, error) {
	if err := s.readable(); err != nil {
		return store.Dispatch{}, err
	}
	d, err := scanDispatch(s.rdb.QueryRowContext(ctx, `SELECT `+dispatchCols+` FROM dispatches WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Dispatch{}, fmt.Errorf("dispatch %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Dispatch{}, fmt.Errorf("dispatch %q: %w", id, err)
	}
	return d, nil
}

// Page sizes of Dispatches.
const (
	defaultLimit = 50
	maxLimit     = 500
)

// Dispatches lists dispatch records newest first. Each filter has an index
// ending in (created_at, id), so a page is an ordered range scan that stops
// after limit+1 rows; event_type has none and filters the newest-first scan,
// which is cheap for common types and slower for rare ones.
func (s *Store) Dispatches(ctx context.Context, f store.DispatchFilter) ([]store.Dispatch, string, error) {
	if err := s.readable(); err != nil {
		return nil, "", err
	}
	q, args, limit, err := dispatchQuery(f)
	if err != nil {
		return nil, "", fmt.Errorf("dispatches: %w", err)
	}
	rows, err := s.rdb.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, "", fmt.Errorf("dispatches: %w", err)
	}
	defer rows.Close()
	items := make([]store.Dispatch, 0, limit)
	more := false
	for rows.Next() {
		if len(items) == limit {
			more = true
			break
		}
		d, err := scanDispatch(rows)
		if err != nil {
			return nil, "", fmt.Errorf("dispatches: %w", err)
		}
		items = append(items, d)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("dispatches: %w", err)
	}
	next := ""
	if more {
		last := items[len(items)-1]
		next = encodeCursor(ms(last.CreatedAt), last.ID)
	}
	return items, next, nil
}

// dispatchQuery builds the page query of f; it asks for limit+1 rows, the
// extra one telling whether a next page exists.
func dispatchQuery(f store.DispatchFilter) (q string, args []any, limit int, err error) {
	limit = f.Limit
	if limit <= 0 {
		limit = defaultLimit
	}
	if limit > maxLimit {
		limit = maxLimit
	}
	var where []string
	for _, c := range []struct{ col, v string }{
		{"destination", f.Destination}, {"status", f.Status}, {"event_id", f.EventID}, {"event_type", f.EventType},
	} {
		if c.v != "" {
			where = append(where, c.col+" = ?")
			args = append(args, c.v)
		}
	}
	if f.Before != "" {
		at, id, err := decodeCursor(f.Before)
		if err != nil {
			return "", nil, 0, err
		}
		where = append(where, "(created_at, id) < (?, ?)")
		args = append(args, at, id)
	}
	q = `SELECT ` + dispatchCols + ` FROM dispatches`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY created_at DESC, id DESC LIMIT ?`
	return q, append(args, limit+1), limit, nil
}

// A cursor is the (created_at, id) of the last item of a page, opaque to
// clients: base64url of "<unix ms>.<id>".
func encodeCursor(at int64, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(at, 10) + "." + id))
}

func decodeCursor(c string) (int64, string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, "", fmt.Errorf("%w %q", store.ErrBadCursor, c)
	}
	at, id, ok := strings.Cut(string(raw), ".")
	if !ok || id == "" {
		return 0, "", fmt.Errorf("%w %q", store.ErrBadCursor, c)
	}
	n, err := strconv.ParseInt(at, 10, 64)
	if err != nil {
		return 0, "", fmt.Errorf("%w %q", store.ErrBadCursor, c)
	}
	return n, id, nil
}

// Paused returns the destinations whose paused flag is set.
func (s *Store) Paused(ctx context.Context) (map[string]bool, error) {
	if err := s.readable(); err != nil {
		return nil, err
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT name FROM destination_state WHERE paused`)
	if err != nil {
		return nil, fmt.Errorf("paused: %w", err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, fmt.Errorf("paused: %w", err)
		}
		out[name] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("paused: %w", err)
	}
	return out, nil
}

// Stats summarizes every destination that has deliveries, from one read
// snapshot.
//
// Cost: the destination list is one index seek per destination. Per
// destination, the state counts and oldest unfinished row are range scans of
// deliveries_state over the unfinished and dead rows only (delivered rows are
// not read), the delivered counter scans deliveries_delivered over the window
// and the failed counter scans dispatches_failed over the window; last success
// and last error are single seeks. So a call costs O(backlog + window
// activity): about 0.2 s with 1,000,000 pending or dead rows (measured on the
// 2-core dev VM). That is fine for the API and for metrics scraped every few
// seconds; do not call it per request on a hot path.
func (s *Store) Stats(ctx context.Context, since time.Time) (map[string]store.DestinationStats, error) {
	if err := s.readable(); err != nil {
		return nil, err
	}
	tx, err := s.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("stats: %w", err)
	}
	defer func() { _ = tx.Rollback() }()

	names, err := destinations(ctx, tx)
	if err != nil {
		return nil, fmt.Errorf("stats: %w", err)
	}
	sinceMs := ms(since)
	out := make(map[string]store.DestinationStats, len(names))
	for _, name := range names {
		st, err := destinationStats(ctx, tx, name, sinceMs)
		if err != nil {
			return nil, fmt.Errorf("stats %s: %w", name, err)
		}
		out[name] = st
	}
	return out, nil
}

const destinationsSQL = destinationsCTE + `SELECT name FROM dest WHERE name IS NOT NULL`

// Queries of Stats, per destination; each reads one index range.
const (
	statsStatesSQL = `SELECT state, COUNT(*), MIN(created_at) FROM deliveries
		WHERE destination = ? AND state IN ('pending', 'retrying', 'running', 'dead') GROUP BY state`
	statsDeliveredSQL   = `SELECT COUNT(*) FROM deliveries WHERE destination = ? AND delivered_at >= ?`
	statsLastSuccessSQL = `SELECT MAX(delivered_at) FROM deliveries WHERE destination = ? AND delivered_at IS NOT NULL`
	statsFailedSQL      = `SELECT COUNT(*) FROM dispatches WHERE destination = ? AND status IN ('retrying', 'dead') AND created_at >= ?`
	statsLastErrorSQL   = `SELECT last_error FROM destination_state WHERE name = ?`
)

func destinations(ctx context.Context, tx *sql.Tx) ([]string, error) {
	rows, err := tx.QueryContext(ctx, destinationsSQL)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		names = append(names, n)
	}
	return names, rows.Err()
}

func destinationStats(ctx context.Context, tx *sql.Tx, name string, since int64) (store.DestinationStats, error) {
	var st store.DestinationStats
	rows, err := tx.QueryContext(ctx, statsStatesSQL, name)
	if err != nil {
		return st, err
	}
	var oldest sql.NullInt64
	for rows.Next() {
		var state store.State
		var n int
		var first int64
		if err := rows.Scan(&state, &n, &first); err != nil {
			rows.Close()
			return st, err
		}
		switch state {
		case store.Dead:
			st.Dead = n
			continue
		case store.Retrying:
			st.Retrying = n
		}
		st.Pending += n
		if !oldest.Valid || first < oldest.Int64 {
			oldest = sql.NullInt64{Int64: first, Valid: true}
		}
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return st, err
	}
	st.OldestPending = nullMs(oldest)

	var last sql.NullInt64
	if err := tx.QueryRowContext(ctx, statsDeliveredSQL, name, since).Scan(&st.Delivered); err != nil {
		return st, err
	}
	if err := tx.QueryRowContext(ctx, statsLastSuccessSQL, name).Scan(&last); err != nil {
		return st, err
	}
	st.LastSuccessAt = nullMs(last)
	if err := tx.QueryRowContext(ctx, statsFailedSQL, name, since).Scan(&st.Failed); err != nil {
		return st, err
	}
	err = tx.QueryRowContext(ctx, statsLastErrorSQL, name).Scan(&st.LastError)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return st, err
	}
	return st, nil
}

// Events lists stored events newest first. Without a user it is an ordered
// range scan of events_received; with one, of event_users (with a
// transaction, of event_transactions), joined to events by primary key. A type filters either scan (no index of its own: ingest
// pays for every index, and a type alone is not how ops look for events).
func (s *Store) Events(ctx context.Context, f store.EventFilter) ([]store.Event, string, error) {
	if err := s.readable(); err != nil {
		return nil, "", err
	}
	q, args, limit, err := eventQuery(f)
	if err != nil {
		return nil, "", fmt.Errorf("events: %w", err)
	}
	rows, err := s.rdb.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, "", fmt.Errorf("events: %w", err)
	}
	defer rows.Close()
	items := make([]store.Event, 0, limit)
	more := false
	for rows.Next() {
		if len(items) == limit {
			more = true
			break
		}
		var e store.Event
		var received int64
		var routes sql.NullString
		if err := rows.Scan(&e.ID, &e.Type, &received, &e.Body, &routes); err != nil {
			return nil, "", fmt.Errorf("events: %w", err)
		}
		e.ReceivedAt = fromMs(received)
		if routes.Valid {
			e.Routes = json.RawMessage(routes.String)
		}
		items = append(items, e)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("events: %w", err)
	}
	next := ""
	if more {
		last := items[len(items)-1]
		next = encodeCursor(ms(last.ReceivedAt), last.ID)
	}
	return items, next, nil
}

// eventQuery builds the page query of f, asking for limit+1 rows.
func eventQuery(f store.EventFilter) (q string, args []any, limit int, err error) {
	limit = f.Limit
	if limit <= 0 {
		limit = defaultLimit
	}
	if limit > maxLimit {
		limit = maxLimit
	}
	// at and id name the ordering columns of the scanned index.
	at, id := "e.received_at", "e.id"
	q = `SELECT e.id, e.type, e.received_at, e.body, e.routes FROM events e`
	var where []string
	switch {
	case f.UserID != "":
		at, id = "u.received_at", "u.event_id"
		q = `SELECT e.id, e.type, e.received_at, e.body, e.routes FROM event_users u JOIN events e ON e.id = u.event_id`
		where = append(where, "u.user_id = ?")
		args = append(args, f.UserID)
	case f.TransactionID != "":
		at, id = "u.received_at", "u.event_id"
		q = `SELECT e.id, e.type, e.received_at, e.body, e.routes FROM event_transactions u JOIN events e ON e.id = u.event_id`
		where = append(where, "u.transaction_id = ?")
		args = append(args, f.TransactionID)
	}
	if f.Type != "" {
		where = append(where, "e.type = ?")
		args = append(args, f.Type)
	}
	if !f.Since.IsZero() {
		where = append(where, at+" >= ?")
		args = append(args, ms(f.Since))
	}
	if !f.Until.IsZero() {
		where = append(where, at+" < ?")
		args = append(args, ms(f.Until))
	}
	if f.Before != "" {
		bat, bid, err := decodeCursor(f.Before)
		if err != nil {
			return "", nil, 0, err
		}
		where = append(where, "("+at+", "+id+") < (?, ?)")
		args = append(args, bat, bid)
	}
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY ` + at + ` DESC, ` + id + ` DESC LIMIT ?`
	return q, append(args, limit+1), limit, nil
}

// routeMatchesSQL reads the window through events_received and each event's
// stored verdicts, one row per match; routes that are not a JSON list count
// nothing. The few route names are counted in Go rather than grouped in a
// temporary b-tree.
const routeMatchesSQL = `SELECT json_extract(r.value, '$.name') AS name FROM events e,
	json_each(CASE WHEN json_valid(e.routes) AND json_type(e.routes) = 'array' THEN e.routes ELSE '[]' END) r
	WHERE e.received_at >= ? AND json_extract(r.value, '$.matched') = 1 AND typeof(name) = 'text'`

// RouteMatches counts matched verdicts per route since since. It reads every
// event of the window (O(window)): a day of traffic is a range scan, for
// the routes page, not for a hot path.
func (s *Store) RouteMatches(ctx context.Context, since time.Time) (map[string]int, error) {
	if err := s.readable(); err != nil {
		return nil, err
	}
	rows, err := s.rdb.QueryContext(ctx, routeMatchesSQL, ms(since))
	if err != nil {
		return nil, fmt.Errorf("route matches: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, fmt.Errorf("route matches: %w", err)
		}
		out[name]++
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("route matches: %w", err)
	}
	return out, nil
}

// bucketsSQL is a range scan of dispatches_destination over the window.
const bucketsSQL = `SELECT created_at, status, duration_ms FROM dispatches
	WHERE destination = ? AND created_at >= ? AND created_at < ? ORDER BY created_at, id`

// DispatchBuckets reads the window's dispatch records of one destination
// (O(records in the window)) and buckets them in Go.
func (s *Store) DispatchBuckets(ctx context.Context, f store.BucketFilter) ([]store.Bucket, error) {
	if err := s.readable(); err != nil {
		return nil, err
	}
	b := store.NewBucketer(f)
	until := f.Since.Add(time.Duration(f.Count) * f.Width)
	rows, err := s.rdb.QueryContext(ctx, bucketsSQL, f.Destination, ms(f.Since), ms(until))
	if err != nil {
		return nil, fmt.Errorf("dispatch buckets %s: %w", f.Destination, err)
	}
	defer rows.Close()
	for rows.Next() {
		var at, dur int64
		var status string
		if err := rows.Scan(&at, &status, &dur); err != nil {
			return nil, fmt.Errorf("dispatch buckets %s: %w", f.Destination, err)
		}
		b.Add(fromMs(at), status, dur)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("dispatch buckets %s: %w", f.Destination, err)
	}
	return b.Buckets(), nil
}
