package revenuecat

import (
	"reflect"
	"testing"

	"github.com/rcrouter/rcrouter/internal/event"
)

// derived is every field Normalize sets.
type derived struct {
	Entitlements      []string
	UserID            string
	Environment       string
	IsTrialStart      bool
	IsTrialConversion bool
	IsRefund          bool
	IsSandbox         bool
	IsTest            bool
	Lifecycle         event.Lifecycle
}

func derivedOf(e *event.Event) derived {
	return derived{
		Entitlements: e.Entitlements, UserID: e.UserID, Environment: e.Environment,
		IsTrialStart: e.IsTrialStart, IsTrialConversion: e.IsTrialConversion, IsRefund: e.IsRefund,
		IsSandbox: e.IsSandbox, IsTest: e.IsTest, Lifecycle: e.Lifecycle,
	}
}

func TestNormalize(t *testing.T) {
	// d is a derived value with the usual defaults and the given lifecycle.
	d := func(l event.Lifecycle, change func(*derived)) derived {
		v := derived{Entitlements: []string{}, Lifecycle: l}
		if change != nil {
			change(&v)
		}
		return v
	}
	tests := []struct {
		name string
		in   event.Event
		want derived
	}{
		// Lifecycle, one rule at a time.
		{"initial purchase", event.Event{Type: "INITIAL_PURCHASE", PeriodType: "NORMAL"}, d(event.SubscriptionStarted, nil)},
		{"initial purchase intro", event.Event{Type: "INITIAL_PURCHASE", PeriodType: "INTRO"}, d(event.SubscriptionStarted, nil)},
		{"trial start", event.Event{Type: "INITIAL_PURCHASE", PeriodType: "TRIAL"}, d(event.TrialStarted, func(v *derived) { v.IsTrialStart = true })},
		{"renewal", event.Event{Type: "RENEWAL"}, d(event.Renewed, nil)},
		{"trial conversion", event.Event{Type: "RENEWAL", IsTrialConversion: true}, d(event.TrialConverted, func(v *derived) { v.IsTrialConversion = true })},
		{"is_trial_conversion outside RENEWAL means nothing", event.Event{Type: "INITIAL_PURCHASE", IsTrialConversion: true}, d(event.SubscriptionStarted, nil)},
		{"cancellation", event.Event{Type: "CANCELLATION", CancelReason: "UNSUBSCRIBE", Price: ptr(0.0)}, d(event.Cancelled, nil)},
		{"cancellation for billing error", event.Event{Type: "CANCELLATION", CancelReason: "BILLING_ERROR"}, d(event.Cancelled, nil)},
		{"refund by customer support", event.Event{Type: "CANCELLATION", CancelReason: "CUSTOMER_SUPPORT"}, d(event.Refunded, func(v *derived) { v.IsRefund = true })},
		{"refund by negative price", event.Event{Type: "CANCELLATION", CancelReason: "UNKNOWN", Price: ptr(-4.99)}, d(event.Refunded, func(v *derived) { v.IsRefund = true })},
		{"refunded trial is a refund", event.Event{Type: "CANCELLATION", PeriodType: "TRIAL", CancelReason: "CUSTOMER_SUPPORT"}, d(event.Refunded, func(v *derived) { v.IsRefund = true })},
		{"trial cancelled", event.Event{Type: "CANCELLATION", PeriodType: "TRIAL", CancelReason: "UNSUBSCRIBE"}, d(event.TrialCancelled, nil)},
		{"negative price outside CANCELLATION is a refund, lifecycle unchanged", event.Event{Type: "RENEWAL", Price: ptr(-1.0)}, d(event.Renewed, func(v *derived) { v.IsRefund = true })},
		{"customer support outside CANCELLATION is not a refund", event.Event{Type: "EXPIRATION", CancelReason: "CUSTOMER_SUPPORT"}, d(event.Expired, nil)},
		{"zero price is not a refund", event.Event{Type: "CANCELLATION", Price: ptr(0.0)}, d(event.Cancelled, nil)},
		{"uncancellation", event.Event{Type: "UNCANCELLATION"}, d(event.Uncancelled, nil)},
		{"non-renewing purchase", event.Event{Type: "NON_RENEWING_PURCHASE"}, d(event.OneTimePurchase, nil)},
		{"paused", event.Event{Type: "SUBSCRIPTION_PAUSED"}, d(event.Paused, nil)},
		{"expiration", event.Event{Type: "EXPIRATION"}, d(event.Expired, nil)},
		{"billing issue", event.Event{Type: "BILLING_ISSUE"}, d(event.BillingIssue, nil)},
		{"product change", event.Event{Type: "PRODUCT_CHANGE"}, d(event.ProductChanged, nil)},
		{"transfer", event.Event{Type: "TRANSFER", TransferredTo: []string{"to"}}, d(event.Transferred, func(v *derived) { v.UserID = "to" })},
		{"extended", event.Event{Type: "SUBSCRIPTION_EXTENDED"}, d(event.Extended, nil)},
		{"test", event.Event{Type: "TEST", Environment: "SANDBOX"}, d(event.Other, func(v *derived) {
			v.IsTest, v.IsSandbox, v.Environment = true, true, "SANDBOX"
		})},
		{"informational type", event.Event{Type: "SUBSCRIBER_ALIAS"}, d(event.Other, nil)},
		{"refund reversed", event.Event{Type: "REFUND_REVERSED", Price: ptr(5.0)}, d(event.Other, nil)},
		{"unknown type", event.Event{Type: "PAYWALL_IMPRESSION"}, d(event.Other, nil)},
		{"type matched exactly", event.Event{Type: "renewal"}, d(event.Other, nil)},

		// Entitlements.
		{"entitlement_ids", event.Event{EntitlementIDs: []string{"a", "b"}, EntitlementID: ptr("old")}, d(event.Other, func(v *derived) { v.Entitlements = []string{"a", "b"} })},
		{"entitlement_ids empty", event.Event{EntitlementIDs: []string{}, EntitlementID: ptr("old")}, d(event.Other, nil)},
		{"entitlement_id fallback", event.Event{EntitlementID: ptr("pro")}, d(event.Other, func(v *derived) { v.Entitlements = []string{"pro"} })},
		{"entitlement_id empty", event.Event{EntitlementID: ptr("")}, d(event.Other, nil)},

		// User id and environment.
		{"user id is app_user_id first", event.Event{AppUserID: "app", TransferredTo: []string{"to"}, OriginalAppUserID: "orig"}, d(event.Other, func(v *derived) { v.UserID = "app" })},
		{"user id falls back to original", event.Event{TransferredTo: []string{""}, OriginalAppUserID: "orig"}, d(event.Other, func(v *derived) { v.UserID = "orig" })},
		{"environment kept over purchase_environment", event.Event{Environment: "PRODUCTION", PurchaseEnvironment: "SANDBOX"}, d(event.Other, func(v *derived) { v.Environment = "PRODUCTION" })},
		{"purchase_environment fallback", event.Event{PurchaseEnvironment: "SANDBOX"}, d(event.Other, func(v *derived) { v.Environment, v.IsSandbox = "SANDBOX", true })},
		{"sandbox matched exactly", event.Event{Environment: "sandbox"}, d(event.Other, func(v *derived) { v.Environment = "sandbox" })},
		{"stale derived fields are recomputed", event.Event{Type: "EXPIRATION", IsRefund: true, IsTest: true, IsTrialStart: true, UserID: "x", Lifecycle: event.Refunded, Entitlements: []string{"x"}}, d(event.Expired, nil)},
	}
	seen := map[event.Lifecycle]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := tt.in
			Normalize(&e)
			got := derivedOf(&e)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("\n got: %+v\nwant: %+v", got, tt.want)
			}
			again := e
			Normalize(&again)
			if !reflect.DeepEqual(derivedOf(&again), got) {
				t.Errorf("second Normalize changed %+v to %+v", got, derivedOf(&again))
			}
			if len(e.EntitlementIDs) > 0 && &e.Entitlements[0] == &e.EntitlementIDs[0] {
				t.Error("entitlements shares its array with entitlement_ids")
			}
		})
		seen[tt.want.Lifecycle] = true
	}
	for _, l := range event.Lifecycles {
		if !seen[l] {
			t.Errorf("no case produces lifecycle %q", l)
		}
	}
}
