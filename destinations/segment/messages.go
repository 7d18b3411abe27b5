package segment

import (
	"crypto/sha256"
	"encoding/hex"
	"math"
	"strings"
	"time"

	analytics "github.com/segmentio/analytics-go/v3"

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

// defaultNames are RevenueCat's default Segment event names (its Segment
// integration page). Trial names are chosen by lifecycle, the rest by type.
var defaultNames = map[string]string{
	string(event.TrialStarted):    "rc_trial_started_event",
	string(event.TrialConverted):  "rc_trial_converted_event",
	string(event.TrialCancelled):  "rc_trial_cancelled_event",
	event.TypeInitialPurchase:     "rc_initial_purchase_event",
	event.TypeRenewal:             "rc_renewal_event",
	event.TypeCancellation:        "rc_cancellation_event",
	event.TypeUncancellation:      "rc_uncancellation_event",
	event.TypeNonRenewingPurchase: "rc_non_subscription_purchase_event",
	event.TypeSubscriptionPaused:  "rc_subscription_paused_event",
	event.TypeExpiration:          "rc_expiration_event",
	event.TypeBillingIssue:        "rc_billing_issue_event",
	event.TypeProductChange:       "rc_product_change_event",
}

// EventName returns the Segment event name for e and whether the event is
// sent at all. The events map wins over the defaults and, within the map and
// within the defaults, a lifecycle key wins over a type key. A name mapped to
// "" turns the event off, as a blank name does in RevenueCat's dashboard.
// TRANSFER, TEST and types without a default name are not sent unless the
// map names them.
func EventName(e *event.Event, events map[string]string) (string, bool) {
	for _, k := range []string{string(e.Lifecycle), e.Type} {
		if name, ok := events[k]; ok {
			return name, name != ""
		}
	}
	if e.IsTest || e.Type == event.TypeTest || e.Type == event.TypeTransfer {
		return "", false
	}
	for _, k := range []string{string(e.Lifecycle), e.Type} {
		if name, ok := defaultNames[k]; ok {
			return name, true
		}
	}
	return "", false
}

// MessageIDs derives the track's and the identify's messageId from the
// delivery key, so that a retried or replayed delivery carries the same ids
// and Segment deduplicates it. Keys too long for Segment's 100-character
// limit are replaced by their SHA-256.
func MessageIDs(key string) (track, identify string) {
	if len(key)+len(identifySuffix) > maxMessageID {
		sum := sha256.Sum256([]byte(key))
		key = hex.EncodeToString(sum[:])
	}
	return key, key + identifySuffix
}

// Revenue is the `revenue` property: the USD price after what the
// sales_reporting mode deducts, nil when the price is unknown, negative for
// refunds. Missing percentages deduct nothing. The result is rounded to six
// decimals to drop float noise (10.84 × 0.85 = 9.214, not 9.213999…).
func Revenue(e *event.Event, mode string) *float64 {
	if e.Price == nil {
		return nil
	}
	share := 1.0
	if mode == Proceeds || mode == ProceedsAfterTax {
		share -= deref(e.CommissionPercentage)
	}
	if mode == ProceedsAfterTax {
		share -= deref(e.TaxPercentage)
	}
	v := math.Round(*e.Price*share*1e6) / 1e6
	if v == 0 {
		v = 0 // no "-0" for a refund of nothing
	}
	return &v
}

func deref(p *float64) float64 {
	if p == nil {
		return 0
	}
	return *p
}

// messages builds the track and identify RevenueCat's integration sends for
// one event (its Segment page, "Sample Events").
func (d *Destination) messages(e *event.Event, name, trackID, identifyID string) (analytics.Track, analytics.Identify) {
	ts := time.UnixMilli(e.EventTimestampMs).UTC()
	track := analytics.Track{
		MessageId:  trackID,
		UserId:     e.UserID,
		Event:      name,
		Timestamp:  ts,
		Context:    d.context(e),
		Properties: d.properties(e),
	}
	identify := analytics.Identify{
		MessageId: identifyID,
		UserId:    e.UserID,
		Timestamp: ts,
		Context:   d.context(e),
		Traits: analytics.Traits{
			"last_seen_app_user_id": e.UserID,
			"aliases":               nonNil(e.Aliases),
		},
	}
	return track, identify
}

// context is per message: the batch-level context of analytics-go always
// names analytics-go as the library.
func (d *Destination) context(e *event.Event) *analytics.Context {
	return &analytics.Context{
		Library: analytics.LibraryInfo{Name: LibraryName, Version: d.version},
		Extra:   map[string]any{"environment": strings.ToLower(e.Environment)},
	}
}

// properties are the track properties RevenueCat sends, plus a few fields
// that help in Segment (event_id, event_type, reasons, country_code, …).
// Keys RevenueCat always sends are present even when null; the others only
// when the event has them.
func (d *Destination) properties(e *event.Event) analytics.Properties {
	p := analytics.Properties{
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
		"revenue":                 floatOrNil(Revenue(e, d.cfg.salesReporting())),
		"currency":                "USD", // revenue is always in USD, whatever the purchase currency
		"purchased_at":            secondsOrNil(e.PurchasedAtMs),
		"expires_at":              secondsOrNil(e.ExpirationAtMs),
		"period_type":             orNil(e.PeriodType),
		"environment":             orNil(e.Environment),
		"presented_offering_id":   orNil(e.PresentedOfferingID),
		"transaction_id":          orNil(e.TransactionID),
		"original_transaction_id": orNil(e.OriginalTransactionID),
		"subscriber_attributes":   attributes(e.SubscriberAttributes),
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

// attributes flattens {"$email": {"value": …, "updated_at_ms": …}} to
// {"$email": …}, as RevenueCat's integration does.
func attributes(attrs map[string]event.Attribute) map[string]string {
	out := make(map[string]string, len(attrs))
	for k, a := range attrs {
		out[k] = a.Value
	}
	return out
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
