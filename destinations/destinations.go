// Package destinations defines what a destination adapter is: one method that
// makes one delivery attempt and classifies its result. Adapters never sleep or
// loop; the scheduler in package router owns retries, rate limits and the
// circuit breaker.
package destinations

import (
	"context"
	"time"

	"github.com/rcrouter/rcrouter/internal/event"
)

// Destination delivers one event to one place.
//
// Send makes one delivery attempt. It may issue more than one HTTP request when
// a client library retries internally; every request it made is returned in
// Result.Exchanges so the dispatch log shows them all.
type Destination interface {
	Send(ctx context.Context, d Delivery) Result
}

// Delivery is what an adapter needs to know about one queued delivery.
type Delivery struct {
	ID          string // delivery id in the store
	Key         string // deterministic idempotency key per (event, destination)
	Destination string // destination name
	Attempt     int    // number the first request of this Send gets (1-based)
	// Event is the normalized event; Event.Raw holds RevenueCat's bytes.
	// It is shared, read-only: the scheduler hands the same *event.Event to
	// every destination of the event, possibly at once.
	Event *event.Event
}

// Outcome classifies one attempt.
type Outcome string

// The outcomes of DESIGN §7.
const (
	Delivered Outcome = "delivered" // 2xx
	Retry     Outcome = "retry"     // 408, 425, 429, 5xx (not 501), network errors, timeouts
	Permanent Outcome = "permanent" // other 4xx and errors that repeating cannot fix
	Skipped   Outcome = "skipped"   // the adapter decided the event does not apply
)

// Reason is a failure reason from a small closed set; it is a metric label.
type Reason string

// The closed set of reasons.
const (
	ReasonNone        Reason = ""
	ReasonTimeout     Reason = "timeout"
	ReasonNetwork     Reason = "network"
	ReasonRateLimited Reason = "rate_limited"
	ReasonClientError Reason = "client_error"
	ReasonServerError Reason = "server_error"
	ReasonRejected    Reason = "rejected"
	ReasonSkipped     Reason = "skipped"
)

// Result is the classified result of one Send.
type Result struct {
	Outcome Outcome
	Reason  Reason
	// RetryAfter is the wait the destination asked for (Retry-After); zero
	// means "use the backoff policy". The scheduler caps it at max_interval.
	RetryAfter time.Duration
	// Message is a short human explanation ("channel_not_found",
	// "no Segment event name for TRANSFER"); it never holds secrets.
	Message string
	// PauseDestination asks the scheduler to hold every delivery of this
	// destination for RetryAfter (Slack's 429 applies to the whole webhook).
	PauseDestination bool
	// Exchanges are the real requests made, in order. Empty for skipped
	// deliveries and for adapters that do no HTTP (the scheduler then records
	// one attempt with Message).
	Exchanges []Exchange
}

// Exchange is one real request and what came back: one dispatch record.
type Exchange struct {
	Request  Request
	Response Response
	Started  time.Time
	Duration time.Duration
}

// Request is what was sent, already redacted and truncated.
type Request struct {
	Method  string            `json:"method"`
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers"`
	Body    string            `json:"body"`
}

// Response is what came back, truncated. Error is set for transport failures.
type Response struct {
	StatusCode int    `json:"status_code"`
	Body       string `json:"body"`
	Error      string `json:"error"`
}

// Classify maps an HTTP status code to an outcome and reason (DESIGN §7):
// 2xx success; 408, 425, 429 and 5xx except 501 retry; other codes are permanent.
func Classify(status int) (Outcome, Reason) {
	switch {
	case status >= 200 && status < 300:
		return Delivered, ReasonNone
	case status == 429:
		// 429: the limit is temporary and Retry-After says when.
		return Retry, ReasonRateLimited
	case status == 408:
		return Retry, ReasonTimeout
	case status == 425:
		return Retry, ReasonClientError
	case status == 501:
		// 501: the server will never implement this; repeating cannot help.
		return Permanent, ReasonServerError
	case status >= 500:
		return Retry, ReasonServerError
	default:
		return Permanent, ReasonClientError
	}
}
