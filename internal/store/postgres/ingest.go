package postgres

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/rcrouter/rcrouter/internal/store"
)

// Ingest batching. On this 2-core machine PostgreSQL's own group commit did
// not share flushes between concurrent one-event transactions (about one
// commit per WAL flush at 8 and 32 writers, and fewer events/s than one
// writer: BENCHMARKS.md), so concurrent webhooks are grouped here, as the
// SQLite writer does: a committer (Options.Committers, one by default)
// takes every request queued at that moment (up to MaxBatch) and stores them
// in one statement, one round trip and one commit; what arrives meanwhile
// goes in the next. An idle store adds no delay: a lone request is committed
// at once.

// batchSQL stores many events and their deliveries in one statement. An id
// already stored, or being stored by a concurrent batch (of any replica),
// is skipped by ON CONFLICT once that batch commits; RETURNING names the
// events created; an unrouted event is settled as it is stored, so its
// settle check goes with it (schema.go, version 6). Rows go in id order, so
// two batches holding the same ids wait for each other in one order and
// never deadlock. The wake-ups of the
// created events' destinations follow the commit (notices.go): one per
// destination for the whole batch.
const batchSQL = `WITH input AS (
	SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::bytea[], $5::text[], $6::boolean[])
		AS x(id, type, received_at, body, routes, unrouted)
), e AS (
	INSERT INTO events (id, type, received_at, body, routes)
	SELECT id, type, received_at, body, routes FROM input ORDER BY id
	ON CONFLICT (id) DO NOTHING
	RETURNING id, type, received_at
), s AS (
	INSERT INTO settle_checks (event_id, received_at)
	SELECT e.id, e.received_at FROM e JOIN input ON input.id = e.id WHERE input.unrouted
), d AS (
	INSERT INTO deliveries (id, event_id, event_type, destination, route, state, next_attempt_at, created_at, updated_at)
	SELECT x.id, e.id, e.type, x.destination, x.route, 'pending', e.received_at, e.received_at, e.received_at
	FROM unnest($7::text[], $8::text[], $9::text[], $10::text[]) AS x(event_id, id, destination, route)
	JOIN e ON e.id = x.event_id
	RETURNING destination
), u AS (
	INSERT INTO event_users (user_id, received_at, event_id)
	SELECT x.key, e.received_at, e.id FROM unnest($11::text[], $12::text[]) AS x(event_id, key)
	JOIN e ON e.id = x.event_id
	ON CONFLICT DO NOTHING
), t AS (
	INSERT INTO event_transactions (transaction_id, received_at, event_id)
	SELECT x.key, e.received_at, e.id FROM unnest($13::text[], $14::text[]) AS x(event_id, key)
	JOIN e ON e.id = x.event_id
	ON CONFLICT DO NOTHING
)
SELECT e.id FROM e`

// ingestReq is one caller's event, copied (the caller may reuse its
// buffers once it stops waiting).
type ingestReq struct {
	e        store.NewEvent
	received time.Time
	ids      []string // delivery ids
	done     chan ingestResult
}

type ingestResult struct {
	created bool
	err     error
}

// batcher owns the committers. mu guards closed and sends on reqs: close
// takes it exclusively, so nothing is queued after the committers drained.
type batcher struct {
	s        *Store
	maxBatch int

	mu     sync.RWMutex
	closed bool
	reqs   chan *ingestReq
	wg     sync.WaitGroup

	// onBatch, nil in production, is called with each batch's size
	// before it is stored (tests hold the committer with it).
	onBatch func(n int)
}

func newBatcher(s *Store, committers, maxBatch int) *batcher {
	b := &batcher{s: s, maxBatch: maxBatch, reqs: make(chan *ingestReq, 4*maxBatch)}
	for range committers {
		b.wg.Add(1)
		go b.run()
	}
	return b
}

// submit queues r and waits for its commit or ctx. When ctx ends first the
// event may still be committed: the caller answers 503, RevenueCat retries,
// and the retry is a duplicate.
func (b *batcher) submit(ctx context.Context, r *ingestReq) (bool, error) {
	b.mu.RLock()
	if b.closed {
		b.mu.RUnlock()
		return false, store.ErrClosed
	}
	select {
	case b.reqs <- r:
	case <-ctx.Done():
		b.mu.RUnlock()
		return false, ctx.Err()
	}
	b.mu.RUnlock()
	select {
	case res := <-r.done:
		return res.created, res.err
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

// close stops accepting and waits until every queued request is answered.
func (b *batcher) close() {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		close(b.reqs)
	}
	b.mu.Unlock()
	b.wg.Wait()
}

func (b *batcher) run() {
	defer b.wg.Done()
	for first := range b.reqs {
		batch := []*ingestReq{first}
	drain:
		for len(batch) < b.maxBatch {
			select {
			case r, ok := <-b.reqs:
				if !ok {
					break drain
				}
				batch = append(batch, r)
			default:
				break drain
			}
		}
		b.commit(batch)
	}
}

// commit stores a batch. If the batch statement fails, each event is tried
// alone, so one bad event fails only its own webhook.
func (b *batcher) commit(batch []*ingestReq) {
	if b.onBatch != nil {
		b.onBatch(len(batch))
	}
	// Committed even when every caller gave up: a caller that timed out
	// may have been retried already, and the retry is then a duplicate.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	created, err := b.insert(ctx, batch)
	if err != nil && len(batch) > 1 {
		for _, r := range batch {
			c, err := b.insert(ctx, []*ingestReq{r})
			if err == nil {
				b.wake([]*ingestReq{r}, c)
			}
			r.done <- ingestResult{created: c[r.e.ID] && err == nil, err: b.s.wrapIngest(r.e.ID, err)}
		}
		return
	}
	if err == nil {
		b.wake(batch, created)
	}
	// The same id twice in one batch: the first queued is the one created.
	answered := make(map[string]bool, len(batch))
	for _, r := range batch {
		ok := err == nil && created[r.e.ID] && !answered[r.e.ID]
		answered[r.e.ID] = true
		r.done <- ingestResult{created: ok, err: b.s.wrapIngest(r.e.ID, err)}
	}
}

// wake queues the wake-ups of the destinations of the created events.
func (b *batcher) wake(batch []*ingestReq, created map[string]bool) {
	var dests []string
	for _, r := range batch {
		if created[r.e.ID] {
			for _, d := range r.e.Deliveries {
				dests = append(dests, d.Destination)
			}
		}
	}
	b.s.notices.wake(dests...)
}

func (s *Store) wrapIngest(id string, err error) error {
	if err == nil {
		return nil
	}
	return s.fail(fmt.Sprintf("ingest event %q", id), err)
}

// insert runs batchSQL for the batch and returns the ids it created.
func (b *batcher) insert(ctx context.Context, batch []*ingestReq) (map[string]bool, error) {
	n := len(batch)
	ids, types, bodies, routes := make([]string, 0, n), make([]string, 0, n), make([][]byte, 0, n), make([]*string, 0, n)
	received, unrouted := make([]time.Time, 0, n), make([]bool, 0, n)
	var devents, dids, ddests, droutes, uevents, users, tevents, txns []string
	seen := make(map[string]bool, n)
	for _, r := range batch {
		if seen[r.e.ID] {
			continue // a duplicate within the batch: unnest must not hold it twice
		}
		seen[r.e.ID] = true
		ids, types, bodies = append(ids, r.e.ID), append(types, r.e.Type), append(bodies, r.e.Body)
		received, unrouted = append(received, r.received), append(unrouted, len(r.e.Deliveries) == 0)
		var rt *string
		if r.e.Routes != nil {
			v := string(r.e.Routes)
			rt = &v
		}
		routes = append(routes, rt)
		for i, d := range r.e.Deliveries {
			devents, dids = append(devents, r.e.ID), append(dids, r.ids[i])
			ddests, droutes = append(ddests, d.Destination), append(droutes, d.Route)
		}
		for _, u := range r.e.UserIDs {
			uevents, users = append(uevents, r.e.ID), append(users, u)
		}
		for _, x := range r.e.TransactionIDs {
			tevents, txns = append(tevents, r.e.ID), append(txns, x)
		}
	}
	rows, err := b.s.pool.Query(ctx, batchSQL, ids, types, received, bodies, routes, unrouted, devents, dids, ddests, droutes,
		uevents, users, tevents, txns)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	created := make(map[string]bool, n)
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		created[id] = true
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return created, nil
}
