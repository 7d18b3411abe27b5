package revenuecat

import (
	"cmp"

	"github.com/rcrouter/rcrouter/internal/event"
)

// RevenueCat enum values the derived fields depend on.
const (
	periodTrial           = "TRIAL"
	cancelCustomerSupport = "CUSTOMER_SUPPORT"
	environmentSandbox    = "SANDBOX"
)

// Normalize sets the derived fields of e (DESIGN §3) from its RevenueCat
// fields. Decode calls it; code that builds an event by hand calls it too.
// It may be called again: every derived field is recomputed, and the two
// RevenueCat fields it fills in (environment, is_trial_conversion) reach a
// fixed point after the first call.
func Normalize(e *event.Event) {
	e.Entitlements = entitlements(e)
	// TRANSFER has no app_user_id; the user it is about is the receiver.
	e.UserID = cmp.Or(e.AppUserID, first(e.TransferredTo), e.OriginalAppUserID)
	// VIRTUAL_CURRENCY_TRANSACTION names it purchase_environment.
	e.Environment = cmp.Or(e.Environment, e.PurchaseEnvironment)

	e.IsTrialStart = e.Type == event.TypeInitialPurchase && e.PeriodType == periodTrial
	// RevenueCat sends is_trial_conversion on RENEWAL only; elsewhere it means nothing.
	e.IsTrialConversion = e.Type == event.TypeRenewal && e.IsTrialConversion
	// A refund arrives as a CANCELLATION for customer support, and its price
	// is negative; a negative price on any type is money going back.
	e.IsRefund = e.Type == event.TypeCancellation && e.CancelReason == cancelCustomerSupport ||
		e.Price != nil && *e.Price < 0
	e.IsSandbox = e.Environment == environmentSandbox
	e.IsTest = e.Type == event.TypeTest
	e.Lifecycle = lifecycle(e)
}

// lifecycle maps a type and the flags above to its business meaning. It
// needs IsTrialStart, IsTrialConversion and IsRefund already set.
func lifecycle(e *event.Event) event.Lifecycle {
	switch e.Type {
	case event.TypeInitialPurchase:
		if e.IsTrialStart {
			return event.TrialStarted
		}
		return event.SubscriptionStarted
	case event.TypeRenewal:
		// The first paid period after a trial is reported as a renewal.
		if e.IsTrialConversion {
			return event.TrialConverted
		}
		return event.Renewed
	case event.TypeCancellation:
		// A refund is a cancellation that gives money back, so it wins over
		// the trial check: a refunded trial is a refund.
		if e.IsRefund {
			return event.Refunded
		}
		if e.PeriodType == periodTrial {
			return event.TrialCancelled
		}
		return event.Cancelled
	case event.TypeUncancellation:
		return event.Uncancelled
	case event.TypeNonRenewingPurchase:
		return event.OneTimePurchase
	case event.TypeSubscriptionPaused:
		// Play only: a pause is scheduled; access ends later with an EXPIRATION.
		return event.Paused
	case event.TypeExpiration:
		return event.Expired
	case event.TypeBillingIssue:
		return event.BillingIssue
	case event.TypeProductChange:
		return event.ProductChanged
	case event.TypeTransfer:
		return event.Transferred
	case event.TypeSubscriptionExtended:
		return event.Extended
	}
	// TEST, informational types (SUBSCRIBER_ALIAS, EXPERIMENT_ENROLLMENT, …)
	// and types RevenueCat adds later.
	return event.Other
}

// entitlements prefers entitlement_ids; the deprecated entitlement_id counts
// only when entitlement_ids is null or absent, because it is often null while
// entitlement_ids is set. The result is never nil, so it marshals as [].
func entitlements(e *event.Event) []string {
	switch {
	case e.EntitlementIDs != nil:
		return append(make([]string, 0, len(e.EntitlementIDs)), e.EntitlementIDs...)
	case e.EntitlementID != nil && *e.EntitlementID != "":
		return []string{*e.EntitlementID}
	}
	return []string{}
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}
