package analytics

import (
	"fmt"
	"strings"
	"testing"

	"github.com/rcrouter/rcrouter/internal/event"
)

func TestEventName(t *testing.T) {
	tests := []struct {
		name      string
		typ       string
		lifecycle event.Lifecycle
		events    map[string]string
		want      string
		send      bool
	}{
		{"initial purchase", event.TypeInitialPurchase, event.SubscriptionStarted, nil, "rc_initial_purchase_event", true},
		{"trial start", event.TypeInitialPurchase, event.TrialStarted, nil, "rc_trial_started_event", true},
		{"trial conversion", event.TypeRenewal, event.TrialConverted, nil, "rc_trial_converted_event", true},
		{"trial cancellation", event.TypeCancellation, event.TrialCancelled, nil, "rc_trial_cancelled_event", true},
		{"renewal", event.TypeRenewal, event.Renewed, nil, "rc_renewal_event", true},
		{"cancellation", event.TypeCancellation, event.Cancelled, nil, "rc_cancellation_event", true},
		{"refund is a cancellation", event.TypeCancellation, event.Refunded, nil, "rc_cancellation_event", true},
		{"uncancellation", event.TypeUncancellation, event.Uncancelled, nil, "rc_uncancellation_event", true},
		{"non-renewing purchase", event.TypeNonRenewingPurchase, event.OneTimePurchase, nil, "rc_non_subscription_purchase_event", true},
		{"paused", event.TypeSubscriptionPaused, event.Paused, nil, "rc_subscription_paused_event", true},
		{"expiration", event.TypeExpiration, event.Expired, nil, "rc_expiration_event", true},
		{"billing issue", event.TypeBillingIssue, event.BillingIssue, nil, "rc_billing_issue_event", true},
		{"product change", event.TypeProductChange, event.ProductChanged, nil, "rc_product_change_event", true},
		{"extended has no default", event.TypeSubscriptionExtended, event.Extended, nil, "", false},
		{"transfer has no default", event.TypeTransfer, event.Transferred, nil, "", false},
		{"transfer named by type", event.TypeTransfer, event.Transferred, map[string]string{"TRANSFER": "rc_transfer"}, "rc_transfer", true},
		{"test named by type", event.TypeTest, event.Other, map[string]string{"TEST": "rc_test"}, "rc_test", true},
		{"type key overrides default", event.TypeRenewal, event.Renewed, map[string]string{"RENEWAL": "Renewed"}, "Renewed", true},
		{"lifecycle key overrides default", event.TypeInitialPurchase, event.TrialStarted, map[string]string{"trial_started": "Trial"}, "Trial", true},
		{"lifecycle key wins over type key", event.TypeInitialPurchase, event.TrialStarted, map[string]string{"INITIAL_PURCHASE": "Purchase", "trial_started": "Trial"}, "Trial", true},
		{"type key applies to its other lifecycles", event.TypeInitialPurchase, event.SubscriptionStarted, map[string]string{"INITIAL_PURCHASE": "Purchase", "trial_started": "Trial"}, "Purchase", true},
		{"empty lifecycle name turns it off", event.TypeCancellation, event.Refunded, map[string]string{"refunded": ""}, "", false},
		{"other lifecycle key names unknown types", "PAYWALL_IMPRESSION", event.Other, map[string]string{"other": "rc_other"}, "rc_other", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &event.Event{Type: tt.typ, Lifecycle: tt.lifecycle, IsTest: tt.typ == event.TypeTest}
			got, send := EventName(e, tt.events)
			if got != tt.want || send != tt.send {
				t.Errorf("EventName = %q, %v; want %q, %v", got, send, tt.want, tt.send)
			}
		})
	}
}

func TestRevenue(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	tests := []struct {
		name                     string
		price, commission, taxes *float64
		mode                     string
		want                     *float64
	}{
		{"gross", f(10.84), f(0.15), f(0.1597), Gross, f(10.84)},
		{"empty mode is gross", f(10.84), f(0.15), f(0.1597), "", f(10.84)},
		{"proceeds", f(10.84), f(0.15), f(0.1597), Proceeds, f(9.214)},
		{"proceeds after tax", f(10.84), f(0.15), f(0.1597), ProceedsAfterTax, f(7.482852)},
		{"refund gross is negative", f(-6.29), f(0.25), f(0.1667), Gross, f(-6.29)},
		{"refund proceeds is negative", f(-6.29), f(0.25), f(0.1667), Proceeds, f(-4.7175)},
		{"refund after tax is negative", f(-6.29), f(0.25), f(0.1667), ProceedsAfterTax, f(-3.668957)},
		{"null price is null", nil, f(0.3), f(0), ProceedsAfterTax, nil},
		{"trial is zero", f(0), f(0.3), f(0.1), ProceedsAfterTax, f(0)},
		{"missing percentages deduct nothing", f(5), nil, nil, ProceedsAfterTax, f(5)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &event.Event{Price: tt.price, CommissionPercentage: tt.commission, TaxPercentage: tt.taxes}
			got := Revenue(e, tt.mode)
			switch {
			case got == nil && tt.want == nil:
			case got == nil || tt.want == nil || *got != *tt.want:
				t.Errorf("Revenue = %v, want %v", show(got), show(tt.want))
			}
		})
	}
}

func show(p *float64) string {
	if p == nil {
		return "nil"
	}
	return fmt.Sprint(*p)
}

func TestIDs(t *testing.T) {
	long := strings.Repeat("k", 95)
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"key fits", MessageID("rc:evt:dest", 91), "rc:evt:dest"},
		{"key of exactly max fits", MessageID(strings.Repeat("k", 91), 91), strings.Repeat("k", 91)},
		{"long key hashed", MessageID(long, 91), Digest(long, 0)},
		{"hash cut to max", MessageID(long, 36), Digest(long, 36)},
		{"digest is sha-256 hex", Digest("abc", 0), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
		{"digest cut", Digest("abc", 8), "ba7816bf"},
		{"key from delivery", Key("k1", "evt", "dest"), "k1"},
		{"key derived without one", Key("", "evt", "dest"), "rc:evt:dest"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
}

func TestUUID(t *testing.T) {
	a, b := UUID("rc:evt:dest"), UUID("rc:evt:other")
	if a != UUID("rc:evt:dest") {
		t.Errorf("UUID not deterministic")
	}
	if a == b {
		t.Errorf("two keys share UUID %s", a)
	}
	for _, u := range []string{a, b} {
		if len(u) != 36 || u[8] != '-' || u[13] != '-' || u[18] != '-' || u[23] != '-' {
			t.Errorf("%q is not a UUID", u)
		}
		if u[14] != '5' || !strings.ContainsRune("89ab", rune(u[19])) {
			t.Errorf("%q is not a version-5 RFC UUID", u)
		}
	}
}

func TestCheckEvents(t *testing.T) {
	got := CheckEvents(map[string]string{"RENEWAL": "r", "trial_started": "t", "renewal": "x", "Bad-Key": "y", "PAYWALL_IMPRESSION": "p"})
	var keys []string
	for _, b := range got {
		keys = append(keys, b.Key)
	}
	if fmt.Sprint(keys) != "[Bad-Key renewal]" {
		t.Fatalf("bad keys = %v, want [Bad-Key renewal]", keys)
	}
	want := `unknown event type or lifecycle "renewal": types are UPPER_CASE (RENEWAL), lifecycles are one of trial_started, trial_converted, trial_cancelled, subscription_started, renewed, cancelled, uncancelled, expired, billing_issue, refunded, product_changed, paused, transferred, extended, one_time_purchase, other`
	if got[1].Message != want {
		t.Errorf("message = %q\nwant %q", got[1].Message, want)
	}
}

func TestCheckSalesReporting(t *testing.T) {
	for _, mode := range []string{"", Gross, Proceeds, ProceedsAfterTax} {
		if msg := CheckSalesReporting(mode); msg != "" {
			t.Errorf("%q: %s", mode, msg)
		}
	}
	if got, want := CheckSalesReporting("net"), `must be gross, proceeds or proceeds_after_tax, got "net"`; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if SalesReporting("") != Gross || SalesReporting(Proceeds) != Proceeds {
		t.Errorf("SalesReporting default is not gross")
	}
}

func TestAttributes(t *testing.T) {
	got := Attributes(map[string]event.Attribute{"$email": {Value: "a@b.c", UpdatedAtMs: 1}, "plan": {Value: "pro"}})
	if fmt.Sprint(got) != "map[$email:a@b.c plan:pro]" {
		t.Errorf("Attributes = %v", got)
	}
	if Attributes(nil) == nil {
		t.Errorf("Attributes(nil) is nil, want an empty map")
	}
}
