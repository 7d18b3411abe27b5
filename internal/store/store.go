// Package store keeps events, the delivery queue and the dispatch log.
//
// Store is implemented by store/sqlite (the embedded default) and later by
// store/postgres (scale-out). Both share one schema and one state machine and
// pass the conformance suite in store/storetest.
package store

import (
	"context"
	"encoding/json"
	"errors"
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
)

// State is the state of a delivery in the queue.
type State string

// Delivery states. Pending and Retrying are due at NextAttemptAt; Running is
// leased by a worker until LeaseUntil; the other three are final until an
// operator retries or replays.
const (
	Pending   State = "pending"
	Retrying  State = "retrying"
	Running   State = "running"
	Delivered State = "delivered"
	Dead      State = "dead"
	Skipped   State = "skipped"
)

// Store is the durable state of rcrouter. Every method is safe for concurrent use.
type Store interface {
	// Ingest stores an event and one delivery per destination in one durable
	// transaction (group commit: concurrent calls share a commit). It returns
	// created=false, and stores nothing, when the event id is already stored.
	Ingest(ctx context.Context, e NewEvent) (created bool, err error)

	// Claim leases up to limit deliveries of one destination that are due at
	// now (or whose lease expired), oldest due first, and marks them Running
	// until leaseUntil. Each returned Delivery carries the event body.
	Claim(ctx context.Context, destination string, now, leaseUntil time.Time, limit int) ([]Delivery, error)
	// Complete records the attempts of claimed deliveries and their new states,
	// in one transaction for the whole slice. It sets, in place, the ID of every
	// Dispatch that has none (so the caller can publish them), and fills empty
	// EventID/EventType/Destination/Route of the stored records from the
	// delivery. A Delivered delivery never moves backwards: a late completion
	// for it only appends its dispatch records. An unknown delivery id fails
	// the whole call with ErrNotFound.
	Complete(ctx context.Context, cs []Completion) error
	// Release puts Running deliveries back to Pending, due at now: on shutdown
	// (ids given) or at start-up of a single-process store (ids nil: all).
	Release(ctx context.Context, ids []string, now time.Time) error

	Event(ctx context.Context, id string) (Event, error)
	Delivery(ctx context.Context, id string) (Delivery, error)
	EventDeliveries(ctx context.Context, eventID string) ([]Delivery, error)
	Dispatch(ctx context.Context, id string) (Dispatch, error)
	// Dispatches lists dispatch records newest first (created_at, then id),
	// keyset-paginated: next is "" on the last page and is passed back as f.Before.
	Dispatches(ctx context.Context, f DispatchFilter) (items []Dispatch, next string, err error)

	// Retry makes one delivery due at now, whatever its final state
	// (ErrConflict while it is Running, ErrNotFound when absent).
	Retry(ctx context.Context, deliveryID string, now time.Time) error
	// Replay makes every delivery that matches f due at now; it returns how many.
	// With dryRun it only counts.
	Replay(ctx context.Context, f ReplayFilter, now time.Time, dryRun bool) (int, error)

	// Stats summarizes every destination that has deliveries; since bounds the
	// delivered/failed counters (the last 24 h for the API).
	Stats(ctx context.Context, since time.Time) (map[string]DestinationStats, error)

	// SetPaused persists the paused flag of a destination; Paused lists them.
	SetPaused(ctx context.Context, destination string, paused bool) error
	Paused(ctx context.Context) (map[string]bool, error)

	// Purge deletes, at most limit at a time, dispatch records older than
	// before, and events older than before whose deliveries are all final
	// (delivered or skipped) together with those deliveries.
	Purge(ctx context.Context, before time.Time, limit int) (int, error)

	// Ping checks that the store is reachable and writable.
	Ping(ctx context.Context) error
	Close() error
}

// NewEvent is what ingest stores for one webhook.
type NewEvent struct {
	ID         string
	Type       string
	ReceivedAt time.Time
	Body       []byte          // RevenueCat's exact bytes
	Routes     json.RawMessage // route verdicts at ingest time, shown on the event page
	Deliveries []NewDelivery
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
}

// Completion is the outcome of one claimed delivery: one try (Delivery.Tries
// grows by one) with its dispatch records.
type Completion struct {
	DeliveryID    string
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
	// Replica is the process that made the attempt (server.replica); empty
	// in a single-process store.
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
