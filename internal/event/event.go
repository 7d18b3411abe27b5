// Package event holds the normalized RevenueCat event that every other stage
// works with. It imports nothing from this module.
package event

import "encoding/json"

// Lifecycle is the business meaning of an event, derived from its type and
// fields. It is what growth teams think in ("a trial converted"), where the
// RevenueCat type is what the store reported ("a RENEWAL").
type Lifecycle string

// The closed set of lifecycles. Unknown or informational types are LifecycleOther.
const (
	TrialStarted        Lifecycle = "trial_started"
	TrialConverted      Lifecycle = "trial_converted"
	TrialCancelled      Lifecycle = "trial_cancelled"
	SubscriptionStarted Lifecycle = "subscription_started"
	Renewed             Lifecycle = "renewed"
	Cancelled           Lifecycle = "cancelled"
	Uncancelled         Lifecycle = "uncancelled"
	Expired             Lifecycle = "expired"
	BillingIssue        Lifecycle = "billing_issue"
	Refunded            Lifecycle = "refunded"
	ProductChanged      Lifecycle = "product_changed"
	Paused              Lifecycle = "paused"
	Transferred         Lifecycle = "transferred"
	Extended            Lifecycle = "extended"
	OneTimePurchase     Lifecycle = "one_time_purchase"
	Other               Lifecycle = "other"
)

// Lifecycles lists every lifecycle, in the order above.
var Lifecycles = []Lifecycle{
	TrialStarted, TrialConverted, TrialCancelled, SubscriptionStarted, Renewed,
	Cancelled, Uncancelled, Expired, BillingIssue, Refunded, ProductChanged,
	Paused, Transferred, Extended, OneTimePurchase, Other,
}

// Known RevenueCat event types. The set is open: any other string is accepted.
const (
	TypeTest                       = "TEST"
	TypeInitialPurchase            = "INITIAL_PURCHASE"
	TypeRenewal                    = "RENEWAL"
	TypeCancellation               = "CANCELLATION"
	TypeUncancellation             = "UNCANCELLATION"
	TypeNonRenewingPurchase        = "NON_RENEWING_PURCHASE"
	TypeSubscriptionPaused         = "SUBSCRIPTION_PAUSED"
	TypeExpiration                 = "EXPIRATION"
	TypeBillingIssue               = "BILLING_ISSUE"
	TypeProductChange              = "PRODUCT_CHANGE"
	TypeTransfer                   = "TRANSFER"
	TypeSubscriptionExtended       = "SUBSCRIPTION_EXTENDED"
	TypeTemporaryEntitlementGrant  = "TEMPORARY_ENTITLEMENT_GRANT"
	TypeRefundReversed             = "REFUND_REVERSED"
	TypeInvoiceIssuance            = "INVOICE_ISSUANCE"
	TypeVirtualCurrencyTransaction = "VIRTUAL_CURRENCY_TRANSACTION"
	TypeExperimentEnrollment       = "EXPERIMENT_ENROLLMENT"
	TypeSubscriberAlias            = "SUBSCRIBER_ALIAS"
)

// Attribute is one subscriber attribute as RevenueCat sends it.
type Attribute struct {
	Value       string `json:"value" expr:"value"`
	UpdatedAtMs int64  `json:"updated_at_ms" expr:"updated_at_ms"`
}

// Experiment is one A/B experiment enrollment carried on an event.
type Experiment struct {
	ExperimentID      string `json:"experiment_id" expr:"experiment_id"`
	ExperimentVariant string `json:"experiment_variant" expr:"experiment_variant"`
	EnrolledAtMs      *int64 `json:"enrolled_at_ms,omitempty" expr:"enrolled_at_ms"`
}

// Event is a RevenueCat webhook event, typed and normalized.
//
// Field names follow RevenueCat's JSON names. Nullable numbers are pointers:
// price may be null (unknown), 0 (trial) or negative (refund). The `expr` tags
// are the names route `when` expressions use.
type Event struct {
	ID                        string               `json:"id" expr:"id"`
	Type                      string               `json:"type" expr:"type"`
	AppID                     string               `json:"app_id,omitempty" expr:"app_id"`
	EventTimestampMs          int64                `json:"event_timestamp_ms" expr:"event_timestamp_ms"`
	AppUserID                 string               `json:"app_user_id,omitempty" expr:"app_user_id"`
	OriginalAppUserID         string               `json:"original_app_user_id,omitempty" expr:"original_app_user_id"`
	Aliases                   []string             `json:"aliases,omitempty" expr:"aliases"`
	ProductID                 string               `json:"product_id,omitempty" expr:"product_id"`
	NewProductID              string               `json:"new_product_id,omitempty" expr:"new_product_id"`
	EntitlementID             *string              `json:"entitlement_id,omitempty" expr:"entitlement_id"`
	EntitlementIDs            []string             `json:"entitlement_ids,omitempty" expr:"entitlement_ids"`
	PeriodType                string               `json:"period_type,omitempty" expr:"period_type"`
	PurchasedAtMs             *int64               `json:"purchased_at_ms,omitempty" expr:"purchased_at_ms"`
	ExpirationAtMs            *int64               `json:"expiration_at_ms,omitempty" expr:"expiration_at_ms"`
	GracePeriodExpirationAtMs *int64               `json:"grace_period_expiration_at_ms,omitempty" expr:"grace_period_expiration_at_ms"`
	AutoResumeAtMs            *int64               `json:"auto_resume_at_ms,omitempty" expr:"auto_resume_at_ms"`
	Store                     string               `json:"store,omitempty" expr:"store"`
	Environment               string               `json:"environment,omitempty" expr:"environment"`
	CancelReason              string               `json:"cancel_reason,omitempty" expr:"cancel_reason"`
	ExpirationReason          string               `json:"expiration_reason,omitempty" expr:"expiration_reason"`
	PresentedOfferingID       string               `json:"presented_offering_id,omitempty" expr:"presented_offering_id"`
	Price                     *float64             `json:"price,omitempty" expr:"price"`
	Currency                  string               `json:"currency,omitempty" expr:"currency"`
	PriceInPurchasedCurrency  *float64             `json:"price_in_purchased_currency,omitempty" expr:"price_in_purchased_currency"`
	TaxPercentage             *float64             `json:"tax_percentage,omitempty" expr:"tax_percentage"`
	CommissionPercentage      *float64             `json:"commission_percentage,omitempty" expr:"commission_percentage"`
	TakehomePercentage        *float64             `json:"takehome_percentage,omitempty" expr:"takehome_percentage"`
	TransactionID             string               `json:"transaction_id,omitempty" expr:"transaction_id"`
	OriginalTransactionID     string               `json:"original_transaction_id,omitempty" expr:"original_transaction_id"`
	IsFamilyShare             bool                 `json:"is_family_share" expr:"is_family_share"`
	CountryCode               string               `json:"country_code,omitempty" expr:"country_code"`
	OfferCode                 string               `json:"offer_code,omitempty" expr:"offer_code"`
	RenewalNumber             *int64               `json:"renewal_number,omitempty" expr:"renewal_number"`
	Metadata                  map[string]any       `json:"metadata,omitempty" expr:"metadata"`
	SubscriberAttributes      map[string]Attribute `json:"subscriber_attributes,omitempty" expr:"subscriber_attributes"`
	Experiments               []Experiment         `json:"experiments,omitempty" expr:"experiments"`
	TransferredFrom           []string             `json:"transferred_from,omitempty" expr:"transferred_from"`
	TransferredTo             []string             `json:"transferred_to,omitempty" expr:"transferred_to"`
	PurchaseEnvironment       string               `json:"purchase_environment,omitempty" expr:"purchase_environment"`

	// Derived by normalization (DESIGN §3).
	Entitlements      []string  `json:"entitlements" expr:"entitlements"`
	UserID            string    `json:"user_id" expr:"user_id"`
	IsTrialStart      bool      `json:"is_trial_start" expr:"is_trial_start"`
	IsTrialConversion bool      `json:"is_trial_conversion" expr:"is_trial_conversion"`
	IsRefund          bool      `json:"is_refund" expr:"is_refund"`
	IsSandbox         bool      `json:"is_sandbox" expr:"is_sandbox"`
	IsTest            bool      `json:"is_test" expr:"is_test"`
	Lifecycle         Lifecycle `json:"lifecycle" expr:"lifecycle"`

	// Extra holds every event field this type does not name, unchanged
	// (type-specific fields such as adjustments, paywall_id, experiment_id).
	Extra map[string]json.RawMessage `json:"extra,omitempty" expr:"extra"`

	// Raw is the exact request body RevenueCat posted (the whole envelope),
	// kept for `body: raw` pass-through.
	Raw json.RawMessage `json:"-" expr:"-"`
}

// SubscriberAttribute returns the value of one subscriber attribute, or "".
func (e *Event) SubscriberAttribute(key string) string {
	return e.SubscriberAttributes[key].Value
}
