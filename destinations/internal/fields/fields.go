// Package fields holds what the batching analytics adapters (Amplitude,
// Mixpanel, PostHog) share beyond package analytics:
//
//   - Of, the property map RevenueCat's integrations send with an event: the
//     webhook's own field names, every field the event carries
//     (type-specific ones too), flattened subscriber attributes, and
//     timestamps in the vendor's format (ISO, Seconds);
//   - SubscriptionStatus, the rc_subscription_status user property;
//   - EventName and Skipped, the start of a Send: the vendor's event name,
//     or the skipped result that says why the event is not sent;
//   - Check, the validation of the config keys their blocks share.
package fields

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/rcrouter/rcrouter/destinations"
	"github.com/rcrouter/rcrouter/destinations/internal/analytics"
	"github.com/rcrouter/rcrouter/internal/event"
)

// dropped are normalized fields that are not properties: user_id is the
// vendor's identity field, not a property, and extra is merged instead.
var dropped = []string{"user_id", "extra", "subscriber_attributes"}

// Of returns the properties of e. Each `<name>_at_ms` field becomes
// `<name>_at` with the value at(ms) gives (ISO 8601 for Amplitude and
// PostHog, Unix seconds for Mixpanel); event_timestamp_ms stays as it is.
// Fields RevenueCat sends that rcrouter does not model (Event.Extra) are
// included under their own names. Numbers keep their exact JSON form.
func Of(e *event.Event, at func(ms int64) any) map[string]any {
	b, err := json.Marshal(e)
	if err != nil {
		return map[string]any{} // an Event always marshals; keep the caller simple
	}
	props := map[string]any{}
	decode(b, &props)
	for _, k := range dropped {
		delete(props, k)
	}
	for k, raw := range e.Extra {
		if _, taken := props[k]; taken {
			continue
		}
		var v any
		decode(raw, &v)
		props[k] = v
	}
	for k, v := range props {
		name, ok := strings.CutSuffix(k, "_at_ms")
		if !ok {
			continue
		}
		delete(props, k)
		if n, isNum := v.(json.Number); isNum {
			if ms, err := n.Int64(); err == nil {
				props[name+"_at"] = at(ms)
				continue
			}
		}
		props[name+"_at"] = v
	}
	props["subscriber_attributes"] = analytics.Attributes(e.SubscriberAttributes)
	return props
}

func decode(b []byte, v any) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	_ = d.Decode(v)
}

// ISO writes a timestamp the way RevenueCat's Amplitude integration does
// (2026-01-01T00:00:00.000Z); PostHog takes the same.
func ISO(ms int64) any { return ISOString(ms) }

// ISOString is ISO as a string.
func ISOString(ms int64) string { return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z") }

// Seconds writes a timestamp as Unix seconds, as RevenueCat's Mixpanel
// integration does.
func Seconds(ms int64) any { return ms / 1000 }

// EventName is the first step of a Send: the vendor's event name for the
// delivery's event, or the result that ends the Send at once (no event; no
// name, so skipped with a reason an ops person can act on).
func EventName(dl destinations.Delivery, events map[string]string, vendor string) (string, *destinations.Result) {
	e := dl.Event
	if e == nil {
		return "", &destinations.Result{Outcome: destinations.Permanent, Reason: destinations.ReasonRejected, Message: "no event to send"}
	}
	name, ok := analytics.EventName(e, events)
	if !ok {
		r := Skipped(fmt.Sprintf("no %s event name for %s (%s): RevenueCat's integration does not send it; name it under events to send it", vendor, e.Type, e.Lifecycle))
		return "", &r
	}
	return name, nil
}

// Skipped is a skipped result with its reason.
func Skipped(msg string) destinations.Result {
	return destinations.Result{Outcome: destinations.Skipped, Reason: destinations.ReasonSkipped, Message: msg}
}

// StatusProperty is the user property RevenueCat's analytics integrations
// keep up to date with the subscriber's state.
const StatusProperty = "rc_subscription_status"

// SubscriptionStatus is the value of StatusProperty after e, one of
// RevenueCat's: active, intro, trial, promotional, cancelled,
// cancelled_trial, grace_period, grace_period_trial, expired,
// expired_promotional, paused; "" when e says nothing about the
// subscription (a one-time purchase, a transfer, a test). RevenueCat does not
// publish its rules; these follow the names: the event type says what
// happened, the period type which kind of period it happened in.
func SubscriptionStatus(e *event.Event) string {
	trial, promo := e.PeriodType == "TRIAL", e.PeriodType == "PROMOTIONAL"
	switch e.Type {
	case event.TypeExpiration:
		if promo {
			return "expired_promotional"
		}
		return "expired"
	case event.TypeCancellation:
		if trial {
			return "cancelled_trial"
		}
		return "cancelled"
	case event.TypeBillingIssue:
		if trial {
			return "grace_period_trial"
		}
		return "grace_period"
	case event.TypeSubscriptionPaused:
		return "paused"
	case event.TypeInitialPurchase, event.TypeRenewal, event.TypeUncancellation, event.TypeProductChange,
		event.TypeSubscriptionExtended, event.TypeTemporaryEntitlementGrant:
		switch e.PeriodType {
		case "TRIAL":
			return "trial"
		case "INTRO":
			return "intro"
		case "PROMOTIONAL":
			return "promotional"
		}
		return "active"
	}
	return ""
}
