package chat

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"text/template"

	"github.com/rcrouter/rcrouter/internal/event"
)

// Funcs are the template functions every chat adapter offers: formatting and
// quoting only, nothing that reads the environment, files or the network.
// escape is the vendor's escaping, applied to what money returns (the
// currency comes from the event). Adapters add their own markup functions
// (Slack's mrkdwn and code) to a copy.
func Funcs(escape func(string) string) template.FuncMap {
	return template.FuncMap{
		"toJson": toJSON,
		"join":   func(sep string, s []string) string { return strings.Join(s, sep) },
		"upper":  strings.ToUpper,
		"lower":  strings.ToLower,
		"default": func(def, v any) any {
			if isEmpty(v) {
				return def
			}
			return v
		},
		"date": templateDate,
		"money": func(amount any, currency string) (string, error) {
			s, err := templateMoney(amount, currency)
			return escape(s), err
		},
	}
}

// toJSON quotes a value for a JSON template: {{ .UserID | mrkdwn | toJson }}.
func toJSON(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}

func isEmpty(v any) bool {
	if v == nil {
		return true
	}
	r := reflect.ValueOf(v)
	switch r.Kind() {
	case reflect.Pointer, reflect.Interface:
		return r.IsNil()
	case reflect.String, reflect.Slice, reflect.Map:
		return r.Len() == 0
	}
	return r.IsZero()
}

// templateDate formats milliseconds (int64 or *int64) as "2006-01-02 15:04 UTC".
func templateDate(ms any) (string, error) {
	switch v := ms.(type) {
	case int64:
		return FormatTime(v), nil
	case *int64:
		if v == nil {
			return "", nil
		}
		return FormatTime(*v), nil
	}
	return "", fmt.Errorf("date: want milliseconds, got %T", ms)
}

// templateMoney formats an amount (float64 or *float64) in a currency.
func templateMoney(amount any, currency string) (string, error) {
	switch v := amount.(type) {
	case float64:
		return money(v, strings.ToUpper(currency)), nil
	case *float64:
		if v == nil {
			return "", nil
		}
		return money(*v, strings.ToUpper(currency)), nil
	}
	return "", fmt.Errorf("money: want an amount, got %T", amount)
}

// ParseTemplate compiles a `template:` with funcs and calls render for every
// sample event: a template that fails for any of them would fail for real
// events too. render builds the vendor message and returns an error when it
// is invalid or lets hostile text through unescaped (see Leaks).
func ParseTemplate(name, src string, funcs template.FuncMap, render func(t *template.Template, e *event.Event) error) (*template.Template, error) {
	t, err := template.New(name).Funcs(funcs).Parse(src)
	if err != nil {
		return nil, err
	}
	for _, s := range Samples() {
		if err := render(t, s.Event); err != nil {
			return nil, fmt.Errorf("sample %s: %w", s.Name, err)
		}
	}
	return t, nil
}

// hostile is the text every sample event carries in its user id, product,
// entitlements and attributes: quotes and backslashes break a template that
// does not use toJson, and mention sequences (Slack's <!channel> and <@U0>,
// Discord's @everyone) show one that does not escape.
const hostile = `<!channel> "q" \ *b* & <@U0> @everyone`

// Leaks returns the first of sequences found in text, or "": an adapter
// passes the mention sequences its vendor would act on.
func Leaks(text string, sequences ...string) string {
	for _, s := range sequences {
		if strings.Contains(text, s) {
			return s
		}
	}
	return ""
}

// Sample is a synthetic event for template validation.
type Sample struct {
	Name  string
	Event *event.Event
}

// Samples are synthetic events, one per lifecycle plus TEST, with the
// derived fields set as normalization sets them. They are built here, not
// read from fixtures: validation runs at config load, in any directory.
func Samples() []Sample {
	f := func(v float64) *float64 { return &v }
	ms := func(v int64) *int64 { return &v }
	base := func(typ string, lc event.Lifecycle) *event.Event {
		return &event.Event{
			ID:                       "00000000-0000-4000-8000-000000000000",
			Type:                     typ,
			AppID:                    "app_sample",
			EventTimestampMs:         1767225603000,
			AppUserID:                "user " + hostile,
			OriginalAppUserID:        "$RCAnonymousID:sample",
			Aliases:                  []string{"$RCAnonymousID:sample", "user " + hostile},
			ProductID:                "product " + hostile,
			EntitlementIDs:           []string{"pro " + hostile},
			PeriodType:               "NORMAL",
			PurchasedAtMs:            ms(1767225600000),
			ExpirationAtMs:           ms(1769904000000),
			Store:                    "APP_STORE",
			Environment:              "PRODUCTION",
			Currency:                 "EUR",
			Price:                    f(10.84),
			PriceInPurchasedCurrency: f(9.99),
			TaxPercentage:            f(0.16),
			CommissionPercentage:     f(0.15),
			CountryCode:              "DE",
			SubscriberAttributes: map[string]event.Attribute{
				"$email":       {Value: "sample@example.org " + hostile, UpdatedAtMs: 1767225000000},
				"$displayName": {Value: "Sample " + hostile, UpdatedAtMs: 1767225000000},
			},
			Entitlements: []string{"pro " + hostile},
			UserID:       "user " + hostile,
			Lifecycle:    lc,
		}
	}
	var out []Sample
	add := func(name string, e *event.Event) { out = append(out, Sample{name, e}) }

	e := base(event.TypeInitialPurchase, event.TrialStarted)
	e.PeriodType, e.Price, e.PriceInPurchasedCurrency, e.IsTrialStart = "TRIAL", f(0), f(0), true
	add("trial_started", e)
	e = base(event.TypeRenewal, event.TrialConverted)
	e.IsTrialConversion = true
	add("trial_converted", e)
	e = base(event.TypeCancellation, event.TrialCancelled)
	e.PeriodType, e.CancelReason, e.Price = "TRIAL", "UNSUBSCRIBE", f(0)
	add("trial_cancelled", e)
	add("subscription_started", base(event.TypeInitialPurchase, event.SubscriptionStarted))
	add("renewed", base(event.TypeRenewal, event.Renewed))
	e = base(event.TypeCancellation, event.Cancelled)
	e.CancelReason = "UNSUBSCRIBE"
	add("cancelled", e)
	add("uncancelled", base(event.TypeUncancellation, event.Uncancelled))
	e = base(event.TypeExpiration, event.Expired)
	e.ExpirationReason = "UNSUBSCRIBE"
	add("expired", e)
	e = base(event.TypeBillingIssue, event.BillingIssue)
	e.GracePeriodExpirationAtMs = ms(1768435200000)
	add("billing_issue", e)
	e = base(event.TypeCancellation, event.Refunded)
	e.CancelReason, e.Price, e.PriceInPurchasedCurrency, e.IsRefund = "CUSTOMER_SUPPORT", f(-10.84), f(-9.99), true
	add("refunded", e)
	e = base(event.TypeProductChange, event.ProductChanged)
	e.NewProductID = "new product " + hostile
	add("product_changed", e)
	e = base(event.TypeSubscriptionPaused, event.Paused)
	e.AutoResumeAtMs = ms(1772323200000)
	add("paused", e)
	add("extended", base(event.TypeSubscriptionExtended, event.Extended))
	e = base(event.TypeNonRenewingPurchase, event.OneTimePurchase)
	e.ExpirationAtMs = nil
	add("one_time_purchase", e)
	e = &event.Event{
		ID: "00000000-0000-4000-8000-000000000001", Type: event.TypeTransfer, AppID: "app_sample",
		EventTimestampMs: 1767225603000, Store: "APP_STORE", Environment: "PRODUCTION",
		TransferredFrom: []string{"from " + hostile}, TransferredTo: []string{"to " + hostile},
		Entitlements: []string{}, UserID: "to " + hostile, Lifecycle: event.Transferred,
	}
	add("transferred", e)
	e = base("SUBSCRIBER_ALIAS", event.Other)
	e.ProductID, e.Price, e.PriceInPurchasedCurrency, e.Currency = "", nil, nil, ""
	add("other", e)
	e = base(event.TypeTest, event.Other)
	e.Environment, e.IsSandbox, e.IsTest = "SANDBOX", true, true
	e.Price, e.PriceInPurchasedCurrency, e.Currency, e.EntitlementIDs, e.Entitlements = nil, nil, "", nil, []string{}
	add("test", e)
	return out
}
