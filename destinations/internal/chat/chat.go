// Package chat holds what the chat destinations (Slack, Discord, Teams)
// share: RevenueCat-style phrasing of each lifecycle ("Customer 7821 just
// renewed their subscription of monthly"), the tone and facts of a message,
// money and time formatting, and the template functions and sample events
// that validate a `template:` at load.
//
// Nothing here knows a chat vendor's markup. Event text is kept apart from
// fixed words (Piece.Kind), and each adapter renders it with its own escaping
// through a Style, so that event text can never mention or inject markup.
package chat

import (
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/rcrouter/rcrouter/internal/event"
)

// Kind says where the text of a Piece comes from, and so how it must be shown.
type Kind int

// The kinds of Piece.
const (
	Word  Kind = iota // fixed words of the phrase or derived from numbers: shown as they are
	Value             // an id-like value from the event (user, product): code style, escaped
	Text              // prose built from event data (a revenue with its currency): escaped only
)

// Piece is part of a sentence.
type Piece struct {
	Text string
	Kind Kind
}

// words, val and prose make pieces of each kind.
func words(s string) Piece { return Piece{Text: s, Kind: Word} }
func val(s string) Piece   { return Piece{Text: s, Kind: Value} }
func prose(s string) Piece { return Piece{Text: s, Kind: Text} }

// Sentence is a phrase with its event values marked.
type Sentence []Piece

// Style renders the event-controlled pieces of a Sentence in one vendor's
// markup. Value receives the value unclipped and empty values too ("" is an
// unknown value, shown as such); Text receives the text unclipped.
type Style struct {
	Value func(string) string
	Text  func(string) string
}

// Render writes s in style st: words as they are, the rest through st.
func (s Sentence) Render(st Style) string {
	var b strings.Builder
	for _, p := range s {
		switch p.Kind {
		case Value:
			b.WriteString(st.Value(p.Text))
		case Text:
			b.WriteString(st.Text(p.Text))
		default:
			b.WriteString(p.Text)
		}
	}
	return b.String()
}

// MaxValue bounds one event value in a default message, so that a long
// product or user id cannot push a message past the vendor's limits (which
// would make the delivery permanent).
const MaxValue = 200

// Clip cuts s to MaxValue runes, ending in "…" when cut.
func Clip(s string) string {
	if utf8.RuneCountInString(s) <= MaxValue {
		return s
	}
	return string([]rune(s)[:MaxValue-1]) + "…"
}

// Phrase returns what happened, in RevenueCat's words where its Slack
// integration has them, and in the same style for the events it does not
// send. A transfer's lists are joined with ", " (each a single value).
func Phrase(e *event.Event) Sentence {
	u, p := val(e.UserID), val(e.ProductID)
	customer := func(middle string, tail ...Piece) Sentence {
		return append(Sentence{words("Customer "), u, words(" " + middle + " ")}, tail...)
	}
	if IsTest(e) {
		return Sentence{words("Test event from RevenueCat")}
	}
	switch e.Lifecycle {
	case event.TrialStarted:
		return customer("just started a free trial of", p)
	case event.TrialConverted:
		return customer("just converted from a free trial of", p)
	case event.TrialCancelled:
		return customer("just cancelled their free trial of", p)
	case event.SubscriptionStarted:
		return customer("just started a subscription of", p)
	case event.Renewed:
		return customer("just renewed their subscription of", p)
	case event.Cancelled:
		return customer("just cancelled their subscription of", p)
	case event.Uncancelled:
		return customer("just uncancelled their subscription of", p)
	case event.OneTimePurchase:
		return customer("just purchased", p)
	case event.BillingIssue:
		return customer("got a billing issue on", p)
	case event.Refunded:
		return customer("got a refund for", p)
	case event.ProductChanged:
		if e.NewProductID == "" {
			return customer("got a product change from", p)
		}
		return customer("got a product change from", p, words(" to "), val(e.NewProductID))
	case event.Expired:
		return Sentence{words("Customer "), u, words("'s subscription of "), p, words(" just expired")}
	case event.Paused:
		return customer("just paused their subscription of", p)
	case event.Extended:
		return customer("got their subscription of", p, words(" extended"))
	case event.Transferred:
		return Sentence{words("Purchases were transferred from "), val(strings.Join(e.TransferredFrom, ", ")),
			words(" to "), val(strings.Join(e.TransferredTo, ", "))}
	}
	s := customer("got event", val(e.Type))
	if e.ProductID != "" {
		s = append(s, words(" for "), p)
	}
	return s
}

// plainStyle renders a sentence as plain text (notification fallbacks):
// values as they are, clipped, "unknown" when empty, through escape.
func plainStyle(escape func(string) string) Style {
	return Style{
		Value: func(s string) string {
			if s == "" {
				return "unknown"
			}
			return escape(Clip(s))
		},
		Text: escape,
	}
}

// Fallback is the plain phrase of e with a "[Sandbox] " prefix for sandbox
// events: the text notifications show, with any template.
func Fallback(e *event.Event, escape func(string) string) string {
	text := Phrase(e).Render(plainStyle(escape))
	if IsSandbox(e) {
		text = "[Sandbox] " + text
	}
	return text
}

// Tone is how a message should look: what kind of news it is.
type Tone int

// The tones, from good news to neutral.
const (
	Good         Tone = iota // purchases, renewals, conversions
	Test                     // the TEST event
	Refund                   // a refund: someone should look
	BillingIssue             // a billing issue: someone should look
	Loss                     // cancellations, expirations, pauses
	Transfer                 // purchases moved between users
	Info                     // events without a lifecycle of their own
)

// ToneOf classifies e.
func ToneOf(e *event.Event) Tone {
	switch {
	case IsTest(e):
		return Test
	case e.Lifecycle == event.Refunded:
		return Refund
	case e.Lifecycle == event.BillingIssue:
		return BillingIssue
	case e.Lifecycle == event.Cancelled || e.Lifecycle == event.TrialCancelled ||
		e.Lifecycle == event.Expired || e.Lifecycle == event.Paused:
		return Loss
	case e.Lifecycle == event.Transferred:
		return Transfer
	case e.Lifecycle == event.Other:
		return Info
	}
	return Good
}

// Label is the bold label a headline starts with for news someone should
// look at ("Refund", "Billing issue"), or "".
func (t Tone) Label() string {
	switch t {
	case Refund:
		return "Refund"
	case BillingIssue:
		return "Billing issue"
	}
	return ""
}

// Fact is one titled field of a default message.
type Fact struct {
	Title string
	Value Sentence
}

// maxList is how many values of a list a fact shows before "and N more".
const maxList = 5

// list shows values as Value pieces separated by ", ", at most maxList of them.
func list(s []string) Sentence {
	var out Sentence
	for i, v := range s {
		if i == maxList {
			out = append(out, words(fmt.Sprintf(", and %d more", len(s)-maxList)))
			break
		}
		if i > 0 {
			out = append(out, words(", "))
		}
		out = append(out, val(v))
	}
	return out
}

// Facts are the fields of a default message, those the event has, in order.
func Facts(e *event.Event) []Fact {
	var f []Fact
	add := func(title string, v Sentence) {
		if len(v) > 0 {
			f = append(f, Fact{Title: title, Value: v})
		}
	}
	if e.Lifecycle == event.Transferred {
		add("From", list(e.TransferredFrom))
		add("To", list(e.TransferredTo))
	}
	if e.ProductID != "" {
		product := Sentence{val(e.ProductID)}
		if e.NewProductID != "" {
			product = append(product, words(" → "), val(e.NewProductID))
		}
		add("Product", product)
	}
	add("Entitlements", list(e.Entitlements))
	if r := Revenue(e); r != "" {
		add("Revenue", Sentence{prose(r)})
	}
	if e.Store != "" {
		if name, ok := StoreName(e.Store); ok {
			add("Store", Sentence{words(name)})
		} else {
			add("Store", Sentence{val(e.Store)})
		}
	}
	if e.CancelReason != "" {
		add("Reason", Sentence{val(e.CancelReason)})
	}
	if e.ExpirationReason != "" {
		add("Reason", Sentence{val(e.ExpirationReason)})
	}
	at := func(title string, ms *int64) {
		if ms != nil {
			add(title, Sentence{words(FormatTime(*ms))})
		}
	}
	switch e.Lifecycle {
	case event.BillingIssue:
		at("Grace period until", e.GracePeriodExpirationAtMs)
	case event.Paused:
		at("Resumes", e.AutoResumeAtMs)
	case event.Extended:
		at("Expires", e.ExpirationAtMs)
	}
	if e.CountryCode != "" {
		add("Country", Sentence{val(e.CountryCode)})
	}
	return f
}

// IsTest reports whether e is RevenueCat's test event.
func IsTest(e *event.Event) bool { return e.IsTest || e.Type == event.TypeTest }

// IsSandbox reports whether e comes from a sandbox purchase.
func IsSandbox(e *event.Event) bool { return e.IsSandbox || e.Environment == "SANDBOX" }

// FormatTime shows milliseconds since the epoch as "2006-01-02 15:04 UTC".
func FormatTime(ms int64) string {
	return time.UnixMilli(ms).UTC().Format("2006-01-02 15:04 UTC")
}

// stores are display names of RevenueCat's store values.
var stores = map[string]string{
	"APP_STORE":     "App Store",
	"MAC_APP_STORE": "Mac App Store",
	"PLAY_STORE":    "Google Play",
	"AMAZON":        "Amazon Appstore",
	"STRIPE":        "Stripe",
	"RC_BILLING":    "Web Billing",
	"PADDLE":        "Paddle",
	"PROMOTIONAL":   "Promotional",
	"ROKU":          "Roku",
	"TEST_STORE":    "Test Store",
}

// StoreName is the display name of a store ("Google Play" for PLAY_STORE)
// and true, or the value itself and false for a store it does not know.
func StoreName(store string) (string, bool) {
	if name, ok := stores[store]; ok {
		return name, true
	}
	return store, false
}

// Revenue shows what the customer paid, in their currency and in USD:
// "9.99 EUR ($10.84)", "$39.99", "-4.99 GBP (-$6.29)". It is empty when the
// event carries no amount, or only zero (trials, cancellations). The currency
// comes from the event: escape the result.
func Revenue(e *event.Event) string {
	usd, local := e.Price, e.PriceInPurchasedCurrency
	if (usd == nil || *usd == 0) && (local == nil || *local == 0) {
		return ""
	}
	cur := strings.ToUpper(e.Currency)
	switch {
	case cur == "" || cur == "USD":
		if usd != nil {
			return money(*usd, "USD")
		}
		return money(*local, "USD")
	case usd == nil:
		return money(*local, cur)
	case local == nil:
		return money(*usd, "USD")
	}
	return money(*local, cur) + " (" + money(*usd, "USD") + ")"
}

// zeroDecimal are currencies without minor units.
var zeroDecimal = map[string]bool{"JPY": true, "KRW": true, "VND": true, "CLP": true, "ISK": true, "PYG": true, "UGX": true}

// money formats an amount in a currency (upper-case ISO code): "$9.99",
// "-4.99 GBP", "1200 JPY".
func money(amount float64, currency string) string {
	sign := ""
	if amount < 0 {
		sign, amount = "-", -amount
	}
	digits := 2
	if zeroDecimal[currency] {
		digits = 0
	}
	n := fmt.Sprintf("%.*f", digits, math.Round(amount*math.Pow10(digits))/math.Pow10(digits))
	if currency == "USD" {
		return sign + "$" + n
	}
	return sign + n + " " + currency
}
