package segment

import (
	"strings"
	"time"

	segmentio "github.com/segmentio/analytics-go/v3"

	"github.com/rcrouter/rcrouter/destinations/internal/analytics"
	"github.com/rcrouter/rcrouter/internal/event"
)

// LibraryName is context.library.name on every message. RevenueCat's own
// integration says "RevenueCat Segment events"; we name ourselves so that a
// Segment user can tell the two sources apart (context.environment, which
// RevenueCat documents for filtering, is kept identical).
const LibraryName = "rcrouter"

// maxMessageID is Segment's limit on messageId.
const maxMessageID = 100

// identifySuffix makes the identify's messageId from the track's.
const identifySuffix = "-identify"

// MessageIDs derives the track's and the identify's messageId from the
// delivery key, so that a retried or replayed delivery carries the same ids
// and Segment deduplicates it. Keys too long for Segment's 100-character
// limit are replaced by their SHA-256.
func MessageIDs(key string) (track, identify string) {
	track = analytics.MessageID(key, maxMessageID-len(identifySuffix))
	return track, track + identifySuffix
}

// messages builds the track and identify RevenueCat's integration sends for
// one event (its Segment page, "Sample Events").
func (d *Destination) messages(e *event.Event, name, trackID, identifyID string) (segmentio.Track, segmentio.Identify) {
	ts := time.UnixMilli(e.EventTimestampMs).UTC()
	track := segmentio.Track{
		MessageId:  trackID,
		UserId:     e.UserID,
		Event:      name,
		Timestamp:  ts,
		Context:    d.context(e),
		Properties: d.properties(e),
	}
	identify := segmentio.Identify{
		MessageId: identifyID,
		UserId:    e.UserID,
		Timestamp: ts,
		Context:   d.context(e),
		Traits: segmentio.Traits{
			"last_seen_app_user_id": e.UserID,
			"aliases":               nonNil(e.Aliases),
		},
	}
	return track, identify
}

// context is per message: the batch-level context of analytics-go always
// names analytics-go as the library.
func (d *Destination) context(e *event.Event) *segmentio.Context {
	return &segmentio.Context{
		Library: segmentio.LibraryInfo{Name: LibraryName, Version: d.version},
		Extra:   map[string]any{"environment": strings.ToLower(e.Environment)},
	}
}

// properties are the track properties RevenueCat sends, plus a few fields
// that help in Segment (event_id, event_type, reasons, country_code, …).
// Keys RevenueCat always sends are present even when null; the others only
// when the event has them.
func (d *Destination) properties(e *event.Event) segmentio.Properties {
	p := segmentio.Properties{
		"event_id":                e.ID,
		"event_type":              e.Type,
		"app_user_id":             orNil(e.AppUserID),
		"original_app_user_id":    orNil(e.OriginalAppUserID),
		"aliases":                 nonNil(e.Aliases),
		"app_id":                  orNil(e.AppID),
		"product_id":              orNil(e.ProductID),
		"store":                   orNil(e.Store),
		"entitlement":             entitlement(e),
		"entitlements":            sliceOrNil(e.Entitlements),
		"revenue":                 floatOrNil(analytics.Revenue(e, analytics.SalesReporting(d.cfg.SalesReporting))),
		"currency":                "USD", // revenue is always in USD, whatever the purchase currency
		"purchased_at":            secondsOrNil(e.PurchasedAtMs),
		"expires_at":              secondsOrNil(e.ExpirationAtMs),
		"period_type":             orNil(e.PeriodType),
		"environment":             orNil(e.Environment),
		"presented_offering_id":   orNil(e.PresentedOfferingID),
		"transaction_id":          orNil(e.TransactionID),
		"original_transaction_id": orNil(e.OriginalTransactionID),
		"subscriber_attributes":   analytics.Attributes(e.SubscriberAttributes),
	}
	optional := map[string]any{
		"new_product_id":              e.NewProductID,
		"cancellation_reason":         e.CancelReason,
		"expiration_reason":           e.ExpirationReason,
		"country_code":                e.CountryCode,
		"offer_code":                  e.OfferCode,
		"purchased_currency":          e.Currency,
		"auto_resumes_at":             secondsOrNil(e.AutoResumeAtMs),
		"grace_period_expires_at":     secondsOrNil(e.GracePeriodExpirationAtMs),
		"renewal_number":              intOrNil(e.RenewalNumber),
		"price_in_purchased_currency": floatOrNil(e.PriceInPurchasedCurrency),
		"transferred_from":            sliceOrNil(e.TransferredFrom),
		"transferred_to":              sliceOrNil(e.TransferredTo),
	}
	for k, v := range optional {
		if v != nil && v != "" {
			p[k] = v
		}
	}
	if e.Type == event.TypeRenewal {
		p["is_trial_conversion"] = e.IsTrialConversion
	}
	if e.IsFamilyShare {
		p["is_family_share"] = true
	}
	return p
}

// entitlement is the deprecated single entitlement RevenueCat still sends.
func entitlement(e *event.Event) any {
	if e.EntitlementID != nil {
		return *e.EntitlementID
	}
	return nil
}

func orNil(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func floatOrNil(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

func intOrNil(p *int64) any {
	if p == nil {
		return nil
	}
	return *p
}

// secondsOrNil turns RevenueCat's milliseconds into the Unix seconds its
// Segment integration sends.
func secondsOrNil(ms *int64) any {
	if ms == nil {
		return nil
	}
	return *ms / 1000
}

func sliceOrNil(s []string) any {
	if len(s) == 0 {
		return nil
	}
	return s
}

// nonNil keeps identify's aliases an array even when the event has none.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
