package revenuecat

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"

	"github.com/rcrouter/rcrouter/internal/event"
)

// testEnvelope is the shape of RevenueCat's dashboard "Send test event"
// body. Pointer fields marshal as null, as RevenueCat sends them for a TEST.
type testEnvelope struct {
	APIVersion string        `json:"api_version"`
	Event      testEventBody `json:"event"`
}

type testEventBody struct {
	ID                       string                     `json:"id"`
	Type                     string                     `json:"type"`
	EventTimestampMs         int64                      `json:"event_timestamp_ms"`
	AppUserID                string                     `json:"app_user_id"`
	OriginalAppUserID        string                     `json:"original_app_user_id"`
	Aliases                  []string                   `json:"aliases"`
	ProductID                string                     `json:"product_id"`
	EntitlementID            *string                    `json:"entitlement_id"`
	EntitlementIDs           []string                   `json:"entitlement_ids"`
	PeriodType               string                     `json:"period_type"`
	PurchasedAtMs            int64                      `json:"purchased_at_ms"`
	ExpirationAtMs           int64                      `json:"expiration_at_ms"`
	Store                    string                     `json:"store"`
	Environment              string                     `json:"environment"`
	Currency                 *string                    `json:"currency"`
	Price                    *float64                   `json:"price"`
	PriceInPurchasedCurrency *float64                   `json:"price_in_purchased_currency"`
	TransactionID            *string                    `json:"transaction_id"`
	OriginalTransactionID    *string                    `json:"original_transaction_id"`
	IsFamilyShare            bool                       `json:"is_family_share"`
	CountryCode              *string                    `json:"country_code"`
	OfferCode                *string                    `json:"offer_code"`
	SubscriberAttributes     map[string]event.Attribute `json:"subscriber_attributes"`
}

// TestEventBody returns a synthetic TEST webhook body like the one
// RevenueCat's dashboard sends with "Send test event": sandbox, App Store,
// product test_product, no entitlement or price, event_timestamp_ms = now.
// The anonymous app user id is derived from id, so one id always gives the
// same body. id must be non-empty for the body to Decode.
func TestEventBody(id string, now time.Time) []byte {
	sum := sha256.Sum256([]byte(id))
	user := "$RCAnonymousID:" + hex.EncodeToString(sum[:16])
	ms := now.UnixMilli()
	b, err := json.Marshal(testEnvelope{
		APIVersion: "1.0",
		Event: testEventBody{
			ID:                   id,
			Type:                 event.TypeTest,
			EventTimestampMs:     ms,
			AppUserID:            user,
			OriginalAppUserID:    user,
			Aliases:              []string{user},
			ProductID:            "test_product",
			PeriodType:           "NORMAL",
			PurchasedAtMs:        ms,
			ExpirationAtMs:       ms + (24 * time.Hour).Milliseconds(),
			Store:                "APP_STORE",
			Environment:          environmentSandbox,
			SubscriberAttributes: map[string]event.Attribute{},
		},
	})
	if err != nil {
		// Unreachable: every field is a string, number, bool, nil pointer or
		// string slice, which encoding/json always marshals.
		panic("revenuecat: marshal test event: " + err.Error())
	}
	return b
}
