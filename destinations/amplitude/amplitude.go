// Package amplitude delivers events to Amplitude's HTTP V2 API
// ({endpoint}/2/httpapi) the way RevenueCat's own Amplitude integration
// does: its rc_* event names, user_id from the $amplitudeUserId attribute
// (else the app user id) and device_id from $amplitudeDeviceId, revenue per
// sales_reporting in USD with productId, and the webhook's fields, with ISO
// dates and flattened subscriber attributes, as event_properties. platform
// is the store (APP_STORE, PLAY_STORE, …); user_properties keeps
// rc_subscription_status up to date. RevenueCat's partner_id
// "revenuecat" is not sent: it would credit RevenueCat with events it did
// not send; nothing in Amplitude's charts depends on it.
//
// No SDK: Amplitude's Go SDK (analytics-go) queues and retries on its own
// goroutines with its own HTTP client, and reports a result per event only
// through callbacks after its own retries; the shared HTTP client lets every
// real request pass our capture transport, be classified from Amplitude's
// documented answers and become one dispatch record.
//
// Concurrent Sends are batched (package batch) into one request of up to
// BatchSize events. Every event carries insert_id, derived from the delivery
// key, which Amplitude deduplicates on for 7 days: a retry or replay, or an
// event sent again with the rest of a partly rejected batch, is not counted
// twice.
//
// Answers: 200 delivered. 400 with events_with_invalid_fields,
// events_with_missing_fields or silenced_events names the bad events by
// index: those are permanent, the others are sent again at once in a request
// without them, as Amplitude advises; a 400 naming no event (missing
// api_key, bad JSON) is permanent for all. 413: a batch is split in halves
// and sent again at once; a single event too large is permanent. 429 (a user
// or device above 30 events/s) is retried after Retry-After, or the 30 s
// Amplitude asks for. 5xx, timeouts and network errors are retried.
package amplitude

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/rcrouter/rcrouter/destinations"
	"github.com/rcrouter/rcrouter/destinations/batch"
	"github.com/rcrouter/rcrouter/destinations/internal/analytics"
	"github.com/rcrouter/rcrouter/destinations/internal/fields"
	"github.com/rcrouter/rcrouter/internal/event"
)

// BatchSize is the most events one request carries. Amplitude takes up to
// 2000 events and 1 MB; RevenueCat events with attributes are 1–3 KB.
const BatchSize = 100

// throttleWait is the pause Amplitude asks for after a 429 when the answer
// has no Retry-After.
const throttleWait = 30 * time.Second

// The attributes RevenueCat's integration reads the identity from.
const (
	UserIDAttribute   = "$amplitudeUserId"
	DeviceIDAttribute = "$amplitudeDeviceId"
)

// Destination is one Amplitude destination; safe for concurrent Sends.
type Destination struct {
	batch.Named // prints as amplitude "<name>", never its secrets
	cfg         Config
	client      *batch.Client
	batches     *batch.Batcher[Event]
}

var _ destinations.Destination = (*Destination)(nil)

// Event is one event of the events[] array, as sent.
type Event struct {
	EventType       string         `json:"event_type"`
	UserID          string         `json:"user_id,omitempty"`
	DeviceID        string         `json:"device_id,omitempty"`
	InsertID        string         `json:"insert_id"`
	Time            int64          `json:"time"` // ms
	Platform        string         `json:"platform,omitempty"`
	ProductID       string         `json:"productId,omitempty"`
	Revenue         *float64       `json:"revenue,omitempty"` // USD, negative for refunds
	EventProperties map[string]any `json:"event_properties"`
	// UserProperties sets rc_subscription_status, as RevenueCat does, when
	// the event tells the subscription's state.
	UserProperties map[string]string `json:"user_properties,omitempty"`
}

// request is the body of one POST /2/httpapi.
type request struct {
	APIKey  string  `json:"api_key"`
	Events  []Event `json:"events"`
	Options reqOpts `json:"options"`
}

// reqOpts: Amplitude rejects user and device ids shorter than 5 characters
// unless told otherwise; app user ids such as "9034" are common.
type reqOpts struct {
	MinIDLength int `json:"min_id_length"`
}

// New builds the destination from a block that passed Validate.
func New(name string, cfg Config, opts destinations.Options) (*Destination, error) {
	if err := cfg.Validate().Err(); err != nil {
		return nil, err
	}
	opts = opts.WithDefaults()
	d := &Destination{
		Named:  batch.Named{Kind: "amplitude", Name: name},
		cfg:    cfg,
		client: batch.NewClient(opts, cfg.APIKey),
	}
	url := strings.TrimRight(cmp.Or(cfg.Endpoint, DefaultEndpoint), "/") + "/2/httpapi"
	api := &batch.Endpoint[Event]{Client: d.client, URL: url, Encode: d.encode, Judge: d.judge}
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
	name, stop := fields.EventName(dl, d.cfg.Events, "Amplitude")
	if stop != nil {
		return *stop
	}
	e := dl.Event
	ev := Build(e, name, analytics.Key(dl.Key, e.ID, dl.Destination), analytics.SalesReporting(d.cfg.SalesReporting))
	if ev.UserID == "" && ev.DeviceID == "" {
		return fields.Skipped("Amplitude needs a user_id or device_id: the event has no app user id and no " +
			UserIDAttribute + " or " + DeviceIDAttribute + " attribute")
	}
	return d.batches.Do(ctx, ev)
}

// Build is the Amplitude event RevenueCat's integration sends for e.
func Build(e *event.Event, name, key, salesReporting string) Event {
	ev := Event{
		EventType:       name,
		UserID:          cmp.Or(e.SubscriberAttribute(UserIDAttribute), e.UserID),
		DeviceID:        e.SubscriberAttribute(DeviceIDAttribute),
		InsertID:        analytics.MessageID(key, 100),
		Time:            e.EventTimestampMs,
		Platform:        e.Store,
		EventProperties: fields.Of(e, fields.ISO),
	}
	if status := fields.SubscriptionStatus(e); status != "" {
		ev.UserProperties = map[string]string{fields.StatusProperty: status}
	}
	if r := analytics.Revenue(e, salesReporting); r != nil {
		ev.Revenue, ev.ProductID = r, e.ProductID
	}
	return ev
}

// encode is the request body for evs.
func (d *Destination) encode(evs []Event) ([]byte, error) {
	return json.Marshal(request{APIKey: d.cfg.APIKey.Value(), Events: evs, Options: reqOpts{MinIDLength: 1}})
}

// judge reads Amplitude's answer to a request for evs.
func (d *Destination) judge(resp batch.Response, evs []Event) batch.Verdict {
	var ans answer
	_ = json.Unmarshal(resp.Body, &ans)
	v := batch.Verdict{All: d.classify(resp, ans, d.client.Detail(resp.Body))}
	switch resp.Status {
	case http.StatusBadRequest:
		// The other events were not ingested either: they are sent again
		// without the rejected ones, as Amplitude's batching guide says.
		v.Again = true
		for i, why := range ans.badEvents() {
			if v.Each == nil {
				v.Each = map[int]destinations.Result{}
			}
			v.Each[i] = destinations.Result{Outcome: destinations.Permanent, Reason: destinations.ReasonRejected,
				Message: "amplitude rejected the event: " + why}
		}
	case http.StatusRequestEntityTooLarge:
		v.Split = true // too big together: each half on its own, at once
	}
	return v
}

// classify is the result of an answer that applies to every event of the batch.
func (d *Destination) classify(resp batch.Response, ans answer, detail string) destinations.Result {
	msg := batch.StatusMessage("amplitude", resp.Status, detail)
	res := d.client.Classify(resp, msg)
	switch resp.Status {
	case http.StatusOK:
		res.Message = ""
	case http.StatusBadRequest:
		res.Reason = destinations.ReasonRejected
		if ans.MissingField != "" {
			res.Message = d.client.Redact(fmt.Sprintf("amplitude rejected the request: %s (missing_field: %s)", ans.Error, ans.MissingField))
		}
	case http.StatusRequestEntityTooLarge:
		res.Reason = destinations.ReasonRejected
		res.Message = "amplitude rejected the event as too large (HTTP 413; its limit is 1 MB per request)"
	case http.StatusTooManyRequests:
		if res.RetryAfter == 0 {
			res.RetryAfter = throttleWait
		}
		res.Message = "amplitude throttled the request (HTTP 429; a user or device above 30 events/s): " + detail
	}
	return res
}

// answer is what Amplitude's error bodies say.
type answer struct {
	Code                    int              `json:"code"`
	Error                   string           `json:"error"`
	MissingField            string           `json:"missing_field"`
	EventsWithInvalidFields map[string][]int `json:"events_with_invalid_fields"`
	EventsWithMissingFields map[string][]int `json:"events_with_missing_fields"`
	SilencedEvents          []int            `json:"silenced_events"`
}

// badEvents maps the index of each event a 400 names to why.
func (a answer) badEvents() map[int]string {
	bad := map[int]string{}
	add := func(what string, byField map[string][]int) {
		keys := make([]string, 0, len(byField))
		for k := range byField {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, f := range keys {
			for _, i := range byField[f] {
				if _, seen := bad[i]; !seen {
					bad[i] = what + " " + f
				}
			}
		}
	}
	add("invalid field", a.EventsWithInvalidFields)
	add("missing field", a.EventsWithMissingFields)
	for _, i := range a.SilencedEvents {
		if _, seen := bad[i]; !seen {
			bad[i] = "silenced (a blocked device or user id)"
		}
	}
	return bad
}
