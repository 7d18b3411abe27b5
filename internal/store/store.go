// Package store keeps events, the delivery queue and the dispatch log.
//
// The interfaces are split by consumer, so each part of rcrouter depends on
// the methods it calls and a test fake implements only those:
//   - Ingester: the webhook;
//   - Queue: the delivery engine (claims, completions, releases, paused flags);
//   - Reader: the admin API and the UI;
//   - Admin: operators' writes and housekeeping (retry, replay, pause, purge).
//
// Store is all of them plus the lifecycle (Migrate, Ping, Close), for the
// app that opens one. It is implemented by store/sqlite (the embedded
// default, one process) and store/postgres (several replicas on one
// database, DESIGN §8). Both share one state machine and pass the
// conformance suite in store/storetest; how a store batches its writes is
// its own business, documented in its package.
//
// # Leases
//
// Claim gives each delivery it returns a Lease: the claiming owner (a
// replica or process name), a token unique to that claim, and the time it
// ends. From Until on, another Claim may take the delivery over, which gives
// it a new token. Complete and Release act only on a delivery still held
// with the token given: a holder whose lease was taken over, even by a later
// claim of the same owner, is fenced off and overwrites nothing. Expiry
// alone does not fence: until another claim takes the delivery, the holder
// may still complete or release it.
//
// # Schema versions
//
// Every store numbers its schema migrations the same way, from 1, one number
// per schema change whatever the database; SchemaVersion is the version this
// build migrates to. Migrations are forward-only: a store refuses a database
// whose version is newer than SchemaVersion.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/rcrouter/rcrouter/destinations"
)

// Errors a Store returns; callers test them with errors.Is.
var (
	ErrNotFound = errors.New("not found")
	// ErrConflict: the operation does not apply in the row's current state
	// (retrying a delivery that is in flight).
	ErrConflict = errors.New("conflict")
	// ErrClosed: the store is closed or closing.
	ErrClosed = errors.New("store closed")
	// ErrBadCursor: a pagination cursor that this store did not issue.
	ErrBadCursor = errors.New("invalid cursor")
	// ErrLeaseLost: the caller no longer holds the delivery's lease: another
	// claim took it over after it expired, or it was already completed or
	// released (see the package doc, Leases).
	ErrLeaseLost = errors.New("lease lost")
)

// SchemaVersion is the schema version of this build: Migrate brings a
// database to it. Version 1 is the schema of the first release; 2 adds the
// owner and token of a delivery's lease, and the replica of a dispatch record;
// 3 adds the index of events by received_at, by customer and by
// transaction (Events); 4 lets a dispatch record refer to its event's body instead of copying it;
// 5 keeps SQLite's settled events in a table of their own (nothing changes on PostgreSQL);
// 6 does the same on PostgreSQL, where completions stop locking their events (nothing changes on SQLite).
const SchemaVersion = 6

// State is the state of a delivery in the queue.
type State string

// Delivery states. Pending and Retrying are due at NextAttemptAt; Running is
// leased by one claim (Delivery.Lease); the other three are final until an
// operator retries or replays.
const (
	Pending   State = "pending"
	Retrying  State = "retrying"
	Running   State = "running"
	Delivered State = "delivered"
	Dead      State = "dead"
	Skipped   State = "skipped"
)

// Ingester is what the webhook needs.
type Ingester interface {
	// Ingest stores an event and one delivery per destination in one durable
	// transaction: it returns only after the commit. It returns
	// created=false, and stores nothing, when the event id is already stored
	// (also when another caller stores it at the same time: exactly one of
	// them creates it).
	Ingest(ctx context.Context, e NewEvent) (created bool, err error)
}

// Queue is what the delivery engine needs: the queue of deliveries, and the
// paused flags it obeys.
type Queue interface {
	// Claim leases up to limit deliveries of one destination that are due at
	// now (or whose lease has expired: now >= its Until), oldest due first,
	// to owner until leaseUntil, which must be after now. Each is returned
	// Running, with the event body and its Lease. Concurrent claims never
	// return the same delivery twice unless its lease expired in between.
	Claim(ctx context.Context, owner, destination string, now, leaseUntil time.Time, limit int) ([]Delivery, error)

	// Complete records the outcome of claimed deliveries: their new states
	// and dispatch records. It sets, in place, the ID of every Dispatch that
	// has none (so the caller can publish them), and fills empty
	// EventID/EventType/Destination/Route of the stored records from the
	// delivery, and an empty Replica from the lease's owner.
	//
	// A completion applies only while its LeaseToken still holds the
	// delivery; one that does not is refused and writes nothing, not even
	// its dispatch records. The others of the slice are written all the
	// same, and Complete then returns a *LeaseLostError naming the refused
	// ones (errors.Is(err, ErrLeaseLost)). An unknown delivery id, or a
	// completion that is not valid, fails the whole call and writes nothing
	// (ErrNotFound for the unknown id).
	Complete(ctx context.Context, cs []Completion) error

	// Release puts the given leased deliveries back to Pending, due at now
	// (shutdown, or claimed deliveries the engine will not start). A
	// delivery no longer held with the lease's token is left alone: it is
	// another claim's work now, and that is not an error.
	Release(ctx context.Context, leases []Lease, now time.Time) error

	// Paused lists the destinations whose paused flag is set.
	Paused(ctx context.Context) (map[string]bool, error)
	// SetPaused persists the paused flag of a destination.
	SetPaused(ctx context.Context, destination string, paused bool) error
}

// Reader is what the admin API and the UI read.
type Reader interface {
	Event(ctx context.Context, id string) (Event, error)
	Delivery(ctx context.Context, id string) (Delivery, error)
	// EventDeliveries lists the deliveries of one event by destination name;
	// none (and no error) for an unknown or unrouted event.
	EventDeliveries(ctx context.Context, eventID string) ([]Delivery, error)
	Dispatch(ctx context.Context, id string) (Dispatch, error)
	// Dispatches lists dispatch records newest first (created_at, then id),
	// keyset-paginated: next is "" on the last page and is passed back as f.Before.
	Dispatches(ctx context.Context, f DispatchFilter) (items []Dispatch, next string, err error)
	// Events lists stored events newest first (received_at, then id),
	// keyset-paginated like Dispatches. f.UserID finds an event by any of
	// the NewEvent.UserIDs it was stored with (f.TransactionID by its
	// NewEvent.TransactionIDs), through an index: a
	// customer's timeline and the route backtest read pages of it, never a
	// scan of the whole table.
	Events(ctx context.Context, f EventFilter) (items []Event, next string, err error)
	// RouteMatches counts, per route name, the events received since since
	// whose verdicts stored at ingest (NewEvent.Routes) say the route
	// matched. Routes with no match are absent.
	RouteMatches(ctx context.Context, since time.Time) (map[string]int, error)
	// DispatchBuckets cuts one destination's dispatch records of a window
	// into buckets as a Bucketer does: every bucket of f, oldest first.
	DispatchBuckets(ctx context.Context, f BucketFilter) ([]Bucket, error)
	// Stats summarizes every destination that has deliveries; since bounds the
	// delivered/failed counters (the last 24 h for the API).
	Stats(ctx context.Context, since time.Time) (map[string]DestinationStats, error)
}

// Admin is what operators and housekeeping write.
type Admin interface {
	// Retry makes one delivery due at now, whatever its final state
	// (ErrConflict while it is Running, ErrNotFound when absent).
	Retry(ctx context.Context, deliveryID string, now time.Time) error
	// Replay makes every delivery that matches f due at now; it returns how many.
	// With dryRun it only counts.
	Replay(ctx context.Context, f ReplayFilter, now time.Time, dryRun bool) (int, error)
	// SetPaused persists the paused flag of a destination (as Queue's).
	SetPaused(ctx context.Context, destination string, paused bool) error
	// Purge deletes, at most limit at a time, dispatch records older than
	// before, and events older than before whose deliveries are all final
	// (delivered or skipped) together with those deliveries. It returns the
	// rows deleted; a caller loops until 0.
	Purge(ctx context.Context, before time.Time, limit int) (int, error)
}

// Store is the durable state of rcrouter: every consumer's interface plus
// the lifecycle. Every method is safe for concurrent use.
type Store interface {
	Ingester
	Queue
	Reader
	Admin

	// Migrate applies the pending schema migrations, in order, and returns
	// the version reached (SchemaVersion). It is idempotent; a database
	// newer than this build is an error.
	Migrate(ctx context.Context) (version int, err error)
	// Ping checks that the store is reachable and writable.
	Ping(ctx context.Context) error
	// Close releases the store's resources; later calls fail with
	// ErrClosed. Calling it again returns the first result.
	Close() error
}

// Lease is one claim's hold on one delivery.
type Lease struct {
	DeliveryID string
	// Owner is the replica or process that claimed it.
	Owner string
	// Token is unique to this claim: a later claim of the delivery, by any
	// owner, gets another. It is what Complete and Release check.
	Token string
	// Until is when the lease expires and another claim may take the
	// delivery over.
	Until time.Time
}

// LeaseLostError is Complete's error when some completions were refused
// because their lease was lost; the other completions of the call were
// written. errors.Is(err, ErrLeaseLost) reports it.
type LeaseLostError struct {
	DeliveryIDs []string // the refused completions' deliveries, in call order
}

func (e *LeaseLostError) Error() string {
	if len(e.DeliveryIDs) == 1 {
		return fmt.Sprintf("complete delivery %q: %v", e.DeliveryIDs[0], ErrLeaseLost)
	}
	return fmt.Sprintf("complete %d deliveries %q: %v", len(e.DeliveryIDs), e.DeliveryIDs, ErrLeaseLost)
}

// Unwrap makes errors.Is(err, ErrLeaseLost) true.
func (e *LeaseLostError) Unwrap() error { return ErrLeaseLost }

// Lost reports whether Complete's err refused the completion of deliveryID
// for a lost lease.
func (e *LeaseLostError) Lost(deliveryID string) bool {
	return slices.Contains(e.DeliveryIDs, deliveryID)
}

// NewEvent is what ingest stores for one webhook.
type NewEvent struct {
	ID         string
	Type       string
	ReceivedAt time.Time
	Body       []byte          // RevenueCat's exact bytes
	Routes     json.RawMessage // route verdicts at ingest time, shown on the event page
	Deliveries []NewDelivery
	// UserIDs are the customer ids the event is found by (EventFilter.UserID):
	// app_user_id, original_app_user_id and aliases. Empty and repeated
	// values are ignored.
	UserIDs []string
	// TransactionIDs are the store transaction ids the event is found by
	// (EventFilter.TransactionID): transaction_id and
	// original_transaction_id, under the same rule.
	TransactionIDs []string
}

// NewDelivery is one destination an event is routed to, and the route that named it first.
type NewDelivery struct {
	Destination string
	Route       string
}

// Event is a stored event.
type Event struct {
	ID         string
	Type       string
	ReceivedAt time.Time
	Body       []byte
	Routes     json.RawMessage
}

// Delivery is one (event, destination) pair in the queue.
type Delivery struct {
	ID          string `json:"id"`
	EventID     string `json:"event_id"`
	EventType   string `json:"event_type"`
	Destination string `json:"destination"`
	Route       string `json:"route"`
	State       State  `json:"status"`
	Attempts    int    `json:"attempts"` // dispatch records so far (real requests)
	// Tries counts the scheduler's delivery attempts (Sends); one try may
	// hold several requests when a client library retries internally.
	// max_attempts and the backoff count tries.
	Tries         int        `json:"tries"`
	NextAttemptAt time.Time  `json:"next_attempt_at"`
	CreatedAt     time.Time  `json:"created_at"`
	UpdatedAt     time.Time  `json:"updated_at"`
	DeliveredAt   *time.Time `json:"delivered_at"`
	LastError     string     `json:"last_error"`
	Body          []byte     `json:"-"` // the event body; filled by Claim only
	Lease         Lease      `json:"-"` // filled by Claim only
}

// Completion is the outcome of one claimed delivery: one try (Delivery.Tries
// grows by one) with its dispatch records.
type Completion struct {
	DeliveryID string
	// LeaseToken is the Lease.Token of the claim that made the attempt.
	LeaseToken    string
	State         State     // Delivered, Retrying, Dead or Skipped
	NextAttemptAt time.Time // for Retrying
	LastError     string
	Dispatches    []Dispatch // the attempt records to append, Attempt already numbered
	// FinishedAt is when the attempt ended: the delivery's updated_at and,
	// when Delivered, delivered_at. Zero means the store's clock.
	FinishedAt time.Time
}

// Dispatch is one attempt: one record of the dispatch log (DESIGN §6).
type Dispatch struct {
	ID            string                `json:"id"`
	DeliveryID    string                `json:"delivery_id"`
	EventID       string                `json:"event_id"`
	EventType     string                `json:"event_type"`
	Destination   string                `json:"destination"`
	Route         string                `json:"route"`
	Attempt       int                   `json:"attempt"`
	Status        string                `json:"status"` // delivered | retrying | dead | skipped
	Request       destinations.Request  `json:"request"`
	Response      destinations.Response `json:"response"`
	DurationMs    int64                 `json:"duration_ms"`
	CreatedAt     time.Time             `json:"created_at"`
	NextAttemptAt *time.Time            `json:"next_attempt_at"`
	// Replica is the process that made the attempt (server.replica): the
	// owner of the lease it ran under.
	Replica string `json:"replica"`
}

// DispatchFilter selects dispatch records; empty fields match everything.
type DispatchFilter struct {
	Destination string
	Status      string
	EventID     string
	EventType   string
	Limit       int    // 1..500; 0 means 50
	Before      string // cursor from a previous page
}

// EventFilter selects stored events; empty fields match everything.
type EventFilter struct {
	UserID string // one of the event's NewEvent.UserIDs
	// TransactionID is one of the event's NewEvent.TransactionIDs; it is
	// not combined with UserID (UserID wins).
	TransactionID string
	Type          string    // the RevenueCat event type
	Since         time.Time // received at or after; zero: no bound
	Until         time.Time // received before; zero: no bound
	Limit         int       // 1..500; 0 means 50
	Before        string    // cursor from a previous page
}

// ReplayFilter selects deliveries of one destination to replay.
type ReplayFilter struct {
	Destination string
	Status      State     // default Dead
	Since       time.Time // created at or after; zero: no bound
	Until       time.Time // created before; zero: no bound
	EventType   string
}

// DestinationStats summarizes one destination's queue and recent results.
type DestinationStats struct {
	Pending       int // pending, retrying or running
	Retrying      int // waiting after a failed attempt
	Dead          int
	Delivered     int // deliveries delivered since the window start
	Failed        int // failed attempts since the window start
	LastSuccessAt *time.Time
	LastError     string
	OldestPending *time.Time // created_at of the oldest unfinished delivery
}
