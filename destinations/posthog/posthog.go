// Package posthog delivers events to PostHog's batch capture API
// ({endpoint}/batch/) with RevenueCat's analytics conventions: its rc_*
// event names, distinct_id from the $posthogUserId attribute (else the app
// user id), revenue per sales_reporting in USD, and the webhook's fields,
// with ISO dates and flattened subscriber attributes, as properties; the
// person's rc_subscription_status through $set.
//
// No SDK: posthog-go queues and retries on its own goroutines and reports
// per-event results only through callbacks after its own retries, and it
// adds feature-flag and person requests of its own; the shared HTTP client
// lets every real request pass our capture transport, be classified and
// become one dispatch record.
//
// Concurrent Sends are batched (package batch) into one request of up to
// BatchSize events. Every event carries uuid, a name-based UUID of the
// delivery key, which PostHog deduplicates on: a retry or replay sends the
// same uuid and is not counted twice.
//
// Answers: 200 delivered. 400 (an invalid event) is permanent for a single
// event; a batch refused so is split in halves and sent again at once, to
// find the event PostHog does not name; 413 splits the same way. 401 (a bad
// project API key) is permanent. 429 is retried after Retry-After and holds
// the whole destination; 5xx, timeouts and network errors are retried.
package posthog

import (
	"cmp"
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/rcrouter/rcrouter/destinations"
	"github.com/rcrouter/rcrouter/destinations/batch"
	"github.com/rcrouter/rcrouter/destinations/internal/analytics"
	"github.com/rcrouter/rcrouter/destinations/internal/fields"
	"github.com/rcrouter/rcrouter/internal/event"
)

// BatchSize is the most events one request carries (PostHog takes up to
// 20 MB per request; RevenueCat events are 1–3 KB).
const BatchSize = 100

// UserIDAttribute is the attribute the distinct_id is read from.
const UserIDAttribute = "$posthogUserId"

// LibraryName is $lib on every event, so that PostHog shows where events
// came from.
const LibraryName = "rcrouter"

// Destination is one PostHog destination; safe for concurrent Sends.
type Destination struct {
	batch.Named // prints as posthog "<name>", never its secrets
	cfg         Config
	version     string
	client      *batch.Client
	batches     *batch.Batcher[Event]
}

var _ destinations.Destination = (*Destination)(nil)

// Event is one event of the batch array, as sent.
type Event struct {
	Event      string         `json:"event"`
	DistinctID string         `json:"distinct_id"`
	UUID       string         `json:"uuid"`
	Timestamp  string         `json:"timestamp"`
	Properties map[string]any `json:"properties"`
}

// request is the body of one POST /batch/.
type request struct {
	APIKey string  `json:"api_key"`
	Batch  []Event `json:"batch"`
}

// New builds the destination from a block that passed Validate.
func New(name string, cfg Config, opts destinations.Options) (*Destination, error) {
	if err := cfg.Validate().Err(); err != nil {
		return nil, err
	}
	opts = opts.WithDefaults()
	d := &Destination{
		Named:   batch.Named{Kind: "posthog", Name: name},
		cfg:     cfg,
		version: opts.Version,
		client:  batch.NewClient(opts, cfg.APIKey),
	}
	api := &batch.Endpoint[Event]{
		Client: d.client,
		URL:    strings.TrimRight(cmp.Or(cfg.Endpoint, DefaultEndpoint), "/") + "/batch/",
		Encode: d.encode,
		Judge:  d.judge,
	}
	d.batches = batch.New(BatchSize, batch.MaxRequests*opts.Timeout, api.Send)
	return d, nil
}

// Capabilities are the batcher's: a batch worth of Sends at once, and a
// MaxWait that covers the flush ahead and its own.
func (d *Destination) Capabilities() destinations.Capabilities { return d.batches.Capabilities() }

// Close releases idle connections; the app calls it when a reload retires
// the destination.
func (d *Destination) Close() error { return d.client.Close() }

// Send queues the event for the next batch and returns its result.
func (d *Destination) Send(ctx context.Context, dl destinations.Delivery) destinations.Result {
	name, stop := fields.EventName(dl, d.cfg.Events, "PostHog")
	if stop != nil {
		return *stop
	}
	e := dl.Event
	ev := Build(e, name, analytics.Key(dl.Key, e.ID, dl.Destination), analytics.SalesReporting(d.cfg.SalesReporting), d.version)
	if ev.DistinctID == "" {
		return fields.Skipped("PostHog needs a distinct_id: the event has no app user id and no " + UserIDAttribute + " attribute")
	}
	return d.batches.Do(ctx, ev)
}

// Build is the PostHog event for e.
func Build(e *event.Event, name, key, salesReporting, version string) Event {
	props := fields.Of(e, fields.ISO)
	if r := analytics.Revenue(e, salesReporting); r != nil {
		props["revenue"] = *r
	}
	if status := fields.SubscriptionStatus(e); status != "" {
		// $set updates the person, as RevenueCat's integrations keep
		// rc_subscription_status on the user.
		props["$set"] = map[string]string{fields.StatusProperty: status}
	}
	props["$lib"] = LibraryName
	props["$lib_version"] = version
	return Event{
		Event:      name,
		DistinctID: cmp.Or(e.SubscriberAttribute(UserIDAttribute), e.UserID),
		UUID:       analytics.UUID(key),
		Timestamp:  fields.ISOString(e.EventTimestampMs),
		Properties: props,
	}
}

func (d *Destination) encode(evs []Event) ([]byte, error) {
	return json.Marshal(request{APIKey: d.cfg.APIKey.Value(), Batch: evs})
}

// judge reads PostHog's answer to a request for evs.
func (d *Destination) judge(resp batch.Response, _ []Event) batch.Verdict {
	detail := d.client.Detail(resp.Body)
	res := d.client.Classify(resp, batch.StatusMessage("posthog", resp.Status, detail))
	switch resp.Status {
	case http.StatusOK:
		res.Message = ""
	case http.StatusBadRequest:
		// PostHog refuses the whole batch for one invalid event and does
		// not say which: halves are sent again until it is alone.
		res.Reason = destinations.ReasonRejected
		res.Message = "posthog rejected the event: " + detail
		return batch.Verdict{Split: true, All: res}
	case http.StatusUnauthorized:
		res.Message = "posthog rejected the project API key (HTTP 401): " + detail
	case http.StatusRequestEntityTooLarge:
		res.Reason = destinations.ReasonRejected
		res.Message = "posthog rejected the event as too large (HTTP 413)"
		return batch.Verdict{Split: true, All: res}
	case http.StatusTooManyRequests:
		// A quota applies to the project: hold every delivery, not just this one.
		res.PauseDestination = res.RetryAfter > 0
	}
	return batch.Verdict{All: res}
}
