package chat

import (
	"errors"
	"strings"
	"testing"
	"text/template"

	"github.com/rcrouter/rcrouter/internal/event"
)

func TestRevenueText(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	tests := []struct {
		name       string
		usd, local *float64
		currency   string
		want       string
	}{
		{"local and USD", f(10.84), f(9.99), "EUR", "9.99 EUR ($10.84)"},
		{"USD purchase", f(39.99), f(39.99), "USD", "$39.99"},
		{"refund", f(-6.29), f(-4.99), "GBP", "-4.99 GBP (-$6.29)"},
		{"zero-decimal currency", f(7.9), f(1200), "JPY", "1200 JPY ($7.90)"},
		{"three decimals round", f(25.487), f(32.99), "CAD", "32.99 CAD ($25.49)"},
		{"local only", nil, f(9), "USD", "$9.00"},
		{"local only, other currency", nil, f(9), "EUR", "9.00 EUR"},
		{"USD only", f(5), nil, "EUR", "$5.00"},
		{"no currency", f(5), nil, "", "$5.00"},
		{"trial is empty", f(0), f(0), "EUR", ""},
		{"unknown is empty", nil, nil, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &event.Event{Price: tt.usd, PriceInPurchasedCurrency: tt.local, Currency: tt.currency}
			if got := Revenue(e); got != tt.want {
				t.Errorf("Revenue = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestFacts(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	ms := int64(1768435200000)
	e := &event.Event{
		Lifecycle: event.BillingIssue, ProductID: "monthly", NewProductID: "yearly",
		Entitlements: []string{"a", "b", "c", "d", "e", "f", "g"}, Price: f(10.84), PriceInPurchasedCurrency: f(9.99),
		Currency: "eur", Store: "WEIRD_STORE", CancelReason: "UNSUBSCRIBE", GracePeriodExpirationAtMs: &ms, CountryCode: "DE",
	}
	st := Style{Value: func(s string) string { return "[" + s + "]" }, Text: func(s string) string { return "{" + s + "}" }}
	var got []string
	for _, fact := range Facts(e) {
		got = append(got, fact.Title+"="+fact.Value.Render(st))
	}
	want := []string{
		"Product=[monthly] → [yearly]",
		"Entitlements=[a], [b], [c], [d], [e], and 2 more",
		"Revenue={9.99 EUR ($10.84)}",
		"Store=[WEIRD_STORE]",
		"Reason=[UNSUBSCRIBE]",
		"Grace period until=2026-01-15 00:00 UTC",
		"Country=[DE]",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Facts =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestToneAndPhrase(t *testing.T) {
	tests := []struct {
		name  string
		e     event.Event
		tone  Tone
		label string
		plain string
	}{
		{"refund", event.Event{Lifecycle: event.Refunded, UserID: "u<1>", ProductID: "p"}, Refund, "Refund", "Customer u&lt;1&gt; got a refund for p"},
		{"billing issue", event.Event{Lifecycle: event.BillingIssue, UserID: "u", ProductID: "p"}, BillingIssue, "Billing issue", "Customer u got a billing issue on p"},
		{"expired", event.Event{Lifecycle: event.Expired, UserID: "u", ProductID: "p"}, Loss, "", "Customer u's subscription of p just expired"},
		{"test", event.Event{Type: event.TypeTest, Lifecycle: event.Other}, Test, "", "Test event from RevenueCat"},
		{"unknown values", event.Event{Lifecycle: event.Renewed}, Good, "", "Customer unknown just renewed their subscription of unknown"},
		{"long value clipped", event.Event{Lifecycle: event.Renewed, UserID: strings.Repeat("x", 300), ProductID: "p"}, Good, "",
			"Customer " + strings.Repeat("x", MaxValue-1) + "… just renewed their subscription of p"},
	}
	esc := strings.NewReplacer("<", "&lt;", ">", "&gt;").Replace
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tone := ToneOf(&tt.e)
			if tone != tt.tone || tone.Label() != tt.label {
				t.Errorf("tone = %v %q, want %v %q", tone, tone.Label(), tt.tone, tt.label)
			}
			if got := Phrase(&tt.e).Render(plainStyle(esc)); got != tt.plain {
				t.Errorf("plain = %q, want %q", got, tt.plain)
			}
		})
	}
}

func TestParseTemplate(t *testing.T) {
	funcs := Funcs(strings.NewReplacer("<", "&lt;").Replace)
	calls := 0
	_, err := ParseTemplate("t", `{{ money .Price .Currency }} {{ date .EventTimestampMs }} {{ .UserID | toJson }}`, funcs,
		func(tm *template.Template, e *event.Event) error {
			calls++
			var b strings.Builder
			return tm.Execute(&b, e)
		})
	if err != nil || calls != len(Samples()) {
		t.Fatalf("ParseTemplate = %v after %d renders, want nil after %d", err, calls, len(Samples()))
	}
	_, err = ParseTemplate("t", `{{ .UserID }}`, funcs, func(tm *template.Template, e *event.Event) error {
		var b strings.Builder
		if err := tm.Execute(&b, e); err != nil {
			return err
		}
		if leak := Leaks(b.String(), "@everyone"); leak != "" {
			return errors.New("unescaped " + leak)
		}
		return nil
	})
	if err == nil || err.Error() != "sample trial_started: unescaped @everyone" {
		t.Errorf("err = %v, want the first sample's leak", err)
	}
	if _, err := ParseTemplate("t", `{{ nosuch }}`, funcs, nil); err == nil || !strings.Contains(err.Error(), `function "nosuch" not defined`) {
		t.Errorf("err = %v, want an undefined function", err)
	}
}
