package fields

import (
	"encoding/json"
	"testing"

	"github.com/rcrouter/rcrouter/internal/event"
)

func TestOf(t *testing.T) {
	purchased, grace := int64(1767225600123), int64(1767312000000)
	e := &event.Event{
		ID: "e1", Type: "RENEWAL", AppUserID: "u1", UserID: "u1", EventTimestampMs: 1767225603000,
		PurchasedAtMs: &purchased, GracePeriodExpirationAtMs: &grace,
		SubscriberAttributes: map[string]event.Attribute{"$email": {Value: "a@example.org", UpdatedAtMs: 5}},
		Extra: map[string]json.RawMessage{"paywall_id": json.RawMessage(`"pw_1"`), "type": json.RawMessage(`"SHADOWED"`),
			"offer_at_ms": json.RawMessage(`1767225600000`)},
	}
	tests := []struct {
		name string
		at   func(int64) any
		key  string
		want any
	}{
		{"iso purchased_at", ISO, "purchased_at", "2026-01-01T00:00:00.123Z"},
		{"seconds purchased_at", Seconds, "purchased_at", int64(1767225600)},
		{"grace period", ISO, "grace_period_expiration_at", "2026-01-02T00:00:00.000Z"},
		{"extra timestamp too", Seconds, "offer_at", int64(1767225600)},
		{"extra field", ISO, "paywall_id", "pw_1"},
		{"a modelled field wins over extra", ISO, "type", "RENEWAL"},
		{"event timestamp kept", ISO, "event_timestamp_ms", json.Number("1767225603000")},
		{"attributes flattened", ISO, "subscriber_attributes", map[string]string{"$email": "a@example.org"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Of(e, tt.at)
			got, _ := json.Marshal(p[tt.key])
			want, _ := json.Marshal(tt.want)
			if string(got) != string(want) {
				t.Errorf("%s = %s, want %s", tt.key, got, want)
			}
			for _, k := range []string{"user_id", "extra", "purchased_at_ms", "offer_at_ms"} {
				if _, ok := p[k]; ok {
					t.Errorf("%s is present", k)
				}
			}
		})
	}
}

func TestSubscriptionStatus(t *testing.T) {
	tests := []struct {
		typ, period, want string
	}{
		{event.TypeInitialPurchase, "NORMAL", "active"},
		{event.TypeInitialPurchase, "TRIAL", "trial"},
		{event.TypeRenewal, "INTRO", "intro"},
		{event.TypeUncancellation, "PROMOTIONAL", "promotional"},
		{event.TypeCancellation, "NORMAL", "cancelled"},
		{event.TypeCancellation, "TRIAL", "cancelled_trial"},
		{event.TypeBillingIssue, "NORMAL", "grace_period"},
		{event.TypeBillingIssue, "TRIAL", "grace_period_trial"},
		{event.TypeExpiration, "NORMAL", "expired"},
		{event.TypeExpiration, "PROMOTIONAL", "expired_promotional"},
		{event.TypeSubscriptionPaused, "NORMAL", "paused"},
		{event.TypeNonRenewingPurchase, "NORMAL", ""},
		{event.TypeTransfer, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.typ+"/"+tt.period, func(t *testing.T) {
			if got := SubscriptionStatus(&event.Event{Type: tt.typ, PeriodType: tt.period}); got != tt.want {
				t.Errorf("status = %q, want %q", got, tt.want)
			}
		})
	}
}
