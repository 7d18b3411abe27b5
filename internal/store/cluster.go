package store

import (
	"context"
	"time"
)

// The interfaces below are what several replicas on one database share
// (DESIGN §8). Only the PostgreSQL store implements them; the app checks for
// them with a type assertion and, on SQLite, keeps its in-process versions.

// Notifier carries wake-ups and the live dispatch feed between replicas.
type Notifier interface {
	// SubscribeWakeups receives the destinations whose deliveries became due
	// now on any replica, and "" when notices may have been lost (check
	// every destination). Closed when ctx ends or the store closes.
	SubscribeWakeups(ctx context.Context) <-chan string
	// SubscribePaused receives every change of a paused flag on any
	// replica, and a zero PauseChange when changes may have been lost
	// (re-read Paused). Closed when ctx ends or the store closes.
	SubscribePaused(ctx context.Context) <-chan PauseChange
	// SubscribeDispatches receives every replica's dispatch records, this
	// replica's own included. Closed when ctx ends or the store closes.
	SubscribeDispatches(ctx context.Context) <-chan Dispatch
}

// PauseChange is a destination paused or resumed by an operator on some
// replica.
type PauseChange struct {
	Destination string
	Paused      bool
}

// Replica is one row of GET /api/v1/replicas.
type Replica struct {
	Name         string    `json:"name"`
	Version      string    `json:"version"`
	StartedAt    time.Time `json:"started_at"`
	LastSeenAt   time.Time `json:"last_seen_at"`
	ConfigSHA256 string    `json:"config_sha256"`
	Alive        bool      `json:"alive"`
}

// ExpiredLease is a claim that expired without a completion (its replica
// died or hung), as the reaper returned it to the queue.
type ExpiredLease struct {
	DeliveryID  string
	EventID     string
	Destination string
	Owner       string // the replica that held it
	Until       time.Time
}

// BreakerHealth is what one attempt tells a destination's breaker.
type BreakerHealth int

// Attempt results as the breaker counts them.
const (
	// BreakerNeutral: permanent or skipped; neither a failure nor a success.
	BreakerNeutral BreakerHealth = iota
	BreakerOK
	BreakerFailed
)

// BreakerPermit is a breaker's answer to "may attempts start now?".
type BreakerPermit struct {
	// N is -1 (closed: no limit), 1 (half-open: this caller runs the one
	// probe) or 0 (none until Until, or until the probe's result when Until
	// is the probe's deadline).
	N     int
	Until time.Time
	// Gen is the breaker generation the attempts belong to; pass it back to
	// the record call so a result from an older generation is ignored.
	Gen int64
}
