package slack

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"text/template"
	"unicode/utf8"

	slackapi "github.com/slack-go/slack"

	"github.com/rcrouter/rcrouter/internal/event"
)

// TemplateData is what a `template:` renders: the normalized event's fields
// (.UserID, .ProductID, .Price, .Entitlements, .SubscriberAttribute "$email",
// …) and the parts of the default message, already escaped for mrkdwn.
type TemplateData struct {
	*event.Event
	Text        string // the fallback phrase, "Customer 7821 just renewed …"
	Headline    string // the default message's first line, with emoji and code spans
	Revenue     string // "9.99 EUR ($10.84)", or "" without an amount
	StoreName   string // "Google Play" for .Store PLAY_STORE
	CustomerURL string // the dashboard link, or "" without project_id
}

// funcs is the template's whole function map: formatting and quoting only,
// nothing that reads the environment, files or the network.
var funcs = template.FuncMap{
	"toJson": toJSON,
	"mrkdwn": Escape,
	"code":   code,
	"join":   func(sep string, s []string) string { return strings.Join(s, sep) },
	"upper":  strings.ToUpper,
	"lower":  strings.ToLower,
	"default": func(def, v any) any {
		if isEmpty(v) {
			return def
		}
		return v
	},
	"date":  templateDate,
	"money": templateMoney,
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
		return formatTime(v), nil
	case *int64:
		if v == nil {
			return "", nil
		}
		return formatTime(*v), nil
	}
	return "", fmt.Errorf("date: want milliseconds, got %T", ms)
}

// templateMoney formats an amount (float64 or *float64) in a currency.
func templateMoney(amount any, currency string) (string, error) {
	switch v := amount.(type) {
	case float64:
		return Escape(money(v, strings.ToUpper(currency))), nil
	case *float64:
		if v == nil {
			return "", nil
		}
		return Escape(money(*v, strings.ToUpper(currency))), nil
	}
	return "", fmt.Errorf("money: want an amount, got %T", amount)
}

// parseTemplate compiles a `template:` and renders it for every sample event:
// a template that fails for any of them would fail for real events too.
func parseTemplate(src string) (*template.Template, error) {
	t, err := template.New("slack").Funcs(funcs).Parse(src)
	if err != nil {
		return nil, err
	}
	for _, s := range samples() {
		m, err := renderTemplate(t, s.event, "proj_sample")
		if err != nil {
			return nil, fmt.Errorf("sample %s: %w", s.name, err)
		}
		if leak := mentionIn(m.Blocks); leak != "" {
			return nil, fmt.Errorf("sample %s: event text reaches Slack unescaped (%s): pass it through mrkdwn or code", s.name, leak)
		}
	}
	return t, nil
}

// renderTemplate renders one event into blocks; the text fallback stays the
// default phrase so that notifications read the same with any template.
func renderTemplate(t *template.Template, e *event.Event, projectID string) (Message, error) {
	data := TemplateData{
		Event:       e,
		Text:        FallbackText(e),
		Headline:    headline(e, projectID),
		Revenue:     Escape(revenue(e)),
		StoreName:   storeName(e.Store),
		CustomerURL: customerURL(e, projectID),
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		return Message{}, err
	}
	var blocks slackapi.Blocks
	if err := json.Unmarshal(buf.Bytes(), &blocks); err != nil {
		return Message{}, fmt.Errorf("not a JSON array of blocks: %w", err)
	}
	if err := validateBlocks(blocks.BlockSet); err != nil {
		return Message{}, err
	}
	return Message{Text: data.Text, Blocks: blocks.BlockSet}, nil
}

// Slack's Block Kit limits that a message breaks at delivery time.
const (
	maxBlocks        = 50
	maxSectionText   = 3000
	maxFieldText     = 2000
	maxFields        = 10
	maxHeaderText    = 150
	maxContextElems  = 10
	maxMarkdownBlock = 12000
)

// validateBlocks checks what slack-go accepts but Slack would refuse
// (invalid_blocks): unknown block types, empty or oversized text, too many
// blocks, fields or context elements.
func validateBlocks(blocks []slackapi.Block) error {
	if len(blocks) == 0 {
		return errors.New("no blocks")
	}
	if len(blocks) > maxBlocks {
		return fmt.Errorf("%d blocks, Slack allows %d", len(blocks), maxBlocks)
	}
	for i, b := range blocks {
		if err := validateBlock(b); err != nil {
			return fmt.Errorf("block %d (%s): %w", i, b.BlockType(), err)
		}
	}
	return nil
}

func validateBlock(b slackapi.Block) error {
	switch v := b.(type) {
	case *slackapi.UnknownBlock:
		return errors.New("unknown block type")
	case *slackapi.SectionBlock:
		if v.Text == nil && len(v.Fields) == 0 {
			return errors.New("needs text or fields")
		}
		if v.Text != nil {
			if err := validateText(v.Text, maxSectionText); err != nil {
				return fmt.Errorf("text: %w", err)
			}
		}
		if len(v.Fields) > maxFields {
			return fmt.Errorf("%d fields, Slack allows %d", len(v.Fields), maxFields)
		}
		for i, f := range v.Fields {
			if err := validateText(f, maxFieldText); err != nil {
				return fmt.Errorf("field %d: %w", i, err)
			}
		}
	case *slackapi.HeaderBlock:
		if v.Text == nil || v.Text.Type != slackapi.PlainTextType {
			return errors.New("text must be plain_text")
		}
		if err := validateText(v.Text, maxHeaderText); err != nil {
			return fmt.Errorf("text: %w", err)
		}
	case *slackapi.ContextBlock:
		n := len(v.ContextElements.Elements)
		if n == 0 || n > maxContextElems {
			return fmt.Errorf("%d elements, Slack allows 1 to %d", n, maxContextElems)
		}
		for i, el := range v.ContextElements.Elements {
			if t, ok := el.(*slackapi.TextBlockObject); ok {
				if err := validateText(t, maxSectionText); err != nil {
					return fmt.Errorf("element %d: %w", i, err)
				}
			}
		}
	case *slackapi.MarkdownBlock:
		if v.Text == "" || utf8.RuneCountInString(v.Text) > maxMarkdownBlock {
			return fmt.Errorf("text must have 1 to %d characters", maxMarkdownBlock)
		}
	}
	return nil
}

func validateText(t *slackapi.TextBlockObject, max int) error {
	if t == nil {
		return errors.New("missing")
	}
	if err := t.Validate(); err != nil {
		return err
	}
	if n := utf8.RuneCountInString(t.Text); n > max {
		return fmt.Errorf("%d characters, Slack allows %d", n, max)
	}
	return nil
}

// mentionIn returns the first unescaped control sequence of the samples'
// event text found in a mrkdwn text, or "".
func mentionIn(blocks []slackapi.Block) string {
	var texts []string
	for _, b := range blocks {
		switch v := b.(type) {
		case *slackapi.SectionBlock:
			if v.Text != nil && v.Text.Type == slackapi.MarkdownType {
				texts = append(texts, v.Text.Text)
			}
			for _, f := range v.Fields {
				if f != nil && f.Type == slackapi.MarkdownType {
					texts = append(texts, f.Text)
				}
			}
		case *slackapi.ContextBlock:
			for _, el := range v.ContextElements.Elements {
				if t, ok := el.(*slackapi.TextBlockObject); ok && t.Type == slackapi.MarkdownType {
					texts = append(texts, t.Text)
				}
			}
		case *slackapi.MarkdownBlock:
			texts = append(texts, v.Text)
		}
	}
	for _, t := range texts {
		for _, s := range hostileSequences {
			if strings.Contains(t, s) {
				return s
			}
		}
	}
	return ""
}

// hostile is the text every sample event carries in its user id, product,
// entitlements and attributes: quotes and backslashes break a template that
// does not use toJson, and Slack control sequences show one that does not
// escape.
const hostile = `<!channel> "q" \ *b* & <@U0>`

var hostileSequences = []string{"<!channel>", "<@U0>"}

type sample struct {
	name  string
	event *event.Event
}

// samples are synthetic events, one per lifecycle plus TEST, with the
// derived fields set as normalization sets them. They are built here, not
// read from fixtures: validation runs at config load, in any directory.
func samples() []sample {
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
	var out []sample
	add := func(name string, e *event.Event) { out = append(out, sample{name, e}) }

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
