// Package mixpanel delivers events to Mixpanel's ingestion API the way
// RevenueCat's own Mixpanel integration does: a track of its rc_* event name
// ({endpoint}/track) with distinct_id from the $mixpanelDistinctId attribute
// (else the app user id), the project token, time in seconds, revenue per
// sales_reporting in USD and the webhook's fields with flattened subscriber
// attributes; and profile updates ({endpoint}/engage): rc_subscription_status
// $set when the event tells the subscription's state, and for an event with
// revenue an $append of the transaction to $transactions.
//
// No SDK: Mixpanel's Go library (mixpanel-go) sends one request per call
// with its own client and no per-event batching; the shared HTTP client
// lets every request pass our capture transport and be classified.
//
// Concurrent Sends are batched (package batch): one /track request carries
// up to BatchSize events (Mixpanel takes 2000), then one /engage request the
// profile updates of those that were tracked. Every track carries $insert_id,
// derived from the delivery key, which Mixpanel deduplicates on, so a retry
// or replay is not counted twice. Profile updates have no such id ($set is
// harmless to repeat, $append is not): they are sent only after their track
// succeeded, so a retry repeats an $append only when Mixpanel applied it but
// its answer was lost.
//
// Requests use ?verbose=1, so that Mixpanel answers {"status":1} or
// {"status":0,"error":"…"}. A status 0, even on HTTP 200, is permanent for
// a single event; a batch refused so is split in halves and sent again at
// once, to find the event Mixpanel does not name. 413 splits the same way.
// 429 is retried after Retry-After and holds the whole destination (the
// limit is the project's); 5xx, timeouts and network errors are retried;
// other 4xx (401 bad token) are permanent. /track takes events of the last
// 5 days only (older ones need /import and the project secret): a replay of
// an older event is refused, and the refusal is what the dispatch log shows.
package mixpanel

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/rcrouter/rcrouter/destinations"
	"github.com/rcrouter/rcrouter/destinations/batch"
	"github.com/rcrouter/rcrouter/destinations/internal/analytics"
	"github.com/rcrouter/rcrouter/destinations/internal/fields"
	"github.com/rcrouter/rcrouter/internal/event"
)

// BatchSize is the most events one /track request carries.
const BatchSize = 50

// DistinctIDAttribute is the attribute RevenueCat's integration reads the
// distinct_id from.
const DistinctIDAttribute = "$mixpanelDistinctId"

// insertIDLen: Mixpanel's $insert_id takes at most 36 letters, digits or "-".
const insertIDLen = 36

// Destination is one Mixpanel destination; safe for concurrent Sends.
type Destination struct {
	batch.Named // prints as mixpanel "<name>", never its secrets
	cfg         Config
	client      *batch.Client
	track       *batch.Endpoint[Message]
	engage      *batch.Endpoint[[]Engage]
	batches     *batch.Batcher[Message]
}

var _ destinations.Destination = (*Destination)(nil)

// Message is one delivery's track and its profile updates.
type Message struct {
	Track   Track
	Profile []Engage
}

// Track is one event of a /track request, as sent.
type Track struct {
	Event      string         `json:"event"`
	Properties map[string]any `json:"properties"`
}

// Engage is one profile update of an /engage request, as sent.
type Engage struct {
	Token      string                 `json:"$token"`
	DistinctID string                 `json:"$distinct_id"`
	Set        map[string]string      `json:"$set,omitempty"`
	Append     map[string]Transaction `json:"$append,omitempty"`
}

// Transaction is what RevenueCat appends to $transactions.
type Transaction struct {
	Time      string  `json:"$time"`
	Amount    float64 `json:"$amount"`
	ProductID string  `json:"product_id,omitempty"`
	Store     string  `json:"store,omitempty"`
}

// New builds the destination from a block that passed Validate.
func New(name string, cfg Config, opts destinations.Options) (*Destination, error) {
	if err := cfg.Validate().Err(); err != nil {
		return nil, err
	}
	opts = opts.WithDefaults()
	endpoint := strings.TrimRight(cmp.Or(cfg.Endpoint, DefaultEndpoint), "/")
	d := &Destination{
		Named:  batch.Named{Kind: "mixpanel", Name: name},
		cfg:    cfg,
		client: batch.NewClient(opts, cfg.Token),
	}
	d.track = &batch.Endpoint[Message]{Client: d.client, URL: endpoint + "/track?verbose=1", Encode: encodeTracks, Judge: judge[Message](d.client, "track")}
	d.engage = &batch.Endpoint[[]Engage]{Client: d.client, URL: endpoint + "/engage?verbose=1", Encode: encodeProfiles, Judge: judge[[]Engage](d.client, "profile update")}
	d.batches = batch.New(BatchSize, 2*batch.MaxRequests*opts.Timeout, d.flush)
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
	name, stop := fields.EventName(dl, d.cfg.Events, "Mixpanel")
	if stop != nil {
		return *stop
	}
	e := dl.Event
	m := Build(e, name, analytics.Key(dl.Key, e.ID, dl.Destination), d.cfg.Token.Value(), analytics.SalesReporting(d.cfg.SalesReporting))
	if m.Track.Properties["distinct_id"] == "" {
		return fields.Skipped("Mixpanel needs a distinct_id: the event has no app user id and no " + DistinctIDAttribute + " attribute")
	}
	return d.batches.Do(ctx, m)
}

// Build is the track and the profile updates RevenueCat's integration sends
// for e: rc_subscription_status set when the event tells it, and the
// transaction appended when it has revenue.
func Build(e *event.Event, name, key, token, salesReporting string) Message {
	id := cmp.Or(e.SubscriberAttribute(DistinctIDAttribute), e.UserID)
	props := fields.Of(e, fields.Seconds)
	props["distinct_id"] = id
	props["token"] = token
	props["time"] = e.EventTimestampMs / 1000
	props["$insert_id"] = analytics.Digest(key, insertIDLen)
	revenue := analytics.Revenue(e, salesReporting)
	if revenue != nil {
		props["revenue"] = *revenue
	}
	m := Message{Track: Track{Event: name, Properties: props}}
	if status := fields.SubscriptionStatus(e); status != "" {
		m.Profile = append(m.Profile, Engage{Token: token, DistinctID: id, Set: map[string]string{fields.StatusProperty: status}})
	}
	if revenue != nil && *revenue != 0 {
		m.Profile = append(m.Profile, Engage{Token: token, DistinctID: id, Append: map[string]Transaction{"$transactions": {
			Time:      time.UnixMilli(e.EventTimestampMs).UTC().Format("2006-01-02T15:04:05"),
			Amount:    *revenue,
			ProductID: e.ProductID,
			Store:     e.Store,
		}}})
	}
	return m
}

// flush tracks the batch, then appends the transactions of the events that
// were tracked.
func (d *Destination) flush(ctx context.Context, ms []Message) []destinations.Result {
	results := d.track.Send(ctx, ms)
	var profiles [][]Engage
	var at []int
	for i, m := range ms {
		if len(m.Profile) > 0 && results[i].Outcome == destinations.Delivered {
			profiles, at = append(profiles, m.Profile), append(at, i)
		}
	}
	if len(profiles) == 0 {
		return results
	}
	for j, r := range d.engage.Send(ctx, profiles) {
		i := at[j]
		r.Exchanges = append(results[i].Exchanges, r.Exchanges...)
		if r.Outcome != destinations.Delivered {
			r.Message = "tracked, but the profile was not updated: " + r.Message
		}
		results[i] = r
	}
	return results
}

func encodeTracks(ms []Message) ([]byte, error) {
	ts := make([]Track, len(ms))
	for i, m := range ms {
		ts[i] = m.Track
	}
	return json.Marshal(ts)
}

// encodeProfiles is one /engage array of every delivery's updates.
func encodeProfiles(ps [][]Engage) ([]byte, error) {
	var all []Engage
	for _, p := range ps {
		all = append(all, p...)
	}
	return json.Marshal(all)
}

// judge reads Mixpanel's answer to a /track or /engage request.
func judge[T any](c *batch.Client, what string) func(batch.Response, []T) batch.Verdict {
	return func(resp batch.Response, _ []T) batch.Verdict {
		detail := c.Detail(resp.Body)
		res := c.Classify(resp, batch.StatusMessage("mixpanel", resp.Status, detail))
		var ans struct {
			Status *int   `json:"status"`
			Error  string `json:"error"`
		}
		_ = json.Unmarshal(resp.Body, &ans)
		switch {
		case resp.Status == http.StatusOK && ans.Status != nil && *ans.Status == 1:
			return batch.Verdict{All: destinations.Result{Outcome: destinations.Delivered}}
		case resp.Status == http.StatusOK:
			// verbose=1 answers status 0 with the reason when Mixpanel
			// refuses the data; repeating the same data cannot help.
			msg := cmp.Or(c.Redact(ans.Error), "no status in the answer: "+detail)
			return batch.Verdict{Split: true, All: destinations.Result{Outcome: destinations.Permanent,
				Reason: destinations.ReasonRejected, Message: fmt.Sprintf("mixpanel rejected the %s: %s", what, msg)}}
		case resp.Status == http.StatusRequestEntityTooLarge:
			res.Reason = destinations.ReasonRejected
			return batch.Verdict{Split: true, All: res}
		case resp.Status == http.StatusTooManyRequests:
			// The limit is the project's: hold every delivery, not just this one.
			res.PauseDestination = res.RetryAfter > 0
		}
		return batch.Verdict{All: res}
	}
}
