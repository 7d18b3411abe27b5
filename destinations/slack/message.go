package slack

import (
	"fmt"
	"math"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	slackapi "github.com/slack-go/slack"

	"github.com/rcrouter/rcrouter/internal/event"
)

// DashboardURL is where a customer lives in RevenueCat's dashboard.
const DashboardURL = "https://app.revenuecat.com/customers/"

// Message is what one Send posts: Block Kit blocks and the plain `text`
// Slack shows in notifications and where blocks cannot be shown.
type Message struct {
	Text   string
	Blocks []slackapi.Block
}

// Escape makes event-controlled text safe in Slack mrkdwn: Slack reads
// <…> as links and mentions (<!channel>, <@U123>) and & as the start of
// an escape, so those three characters are the ones it asks senders to
// escape. The text shows unchanged.
func Escape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// code shows event-controlled text as inline code: escaped, and inside
// backticks so that *, _ and ~ in it do not format (mrkdwn has no other way
// to escape them). A backtick in the text would end the span; it is shown
// as ˋ instead.
func code(s string) string {
	if s == "" {
		return "_unknown_"
	}
	return "`" + Escape(strings.ReplaceAll(clip(s), "`", "ˋ")) + "`"
}

// maxValue bounds one event value in the default message, so that a long
// product id or user id cannot push a block past Slack's limits
// (invalid_blocks would make the delivery permanent).
const maxValue = 200

func clip(s string) string {
	if utf8.RuneCountInString(s) <= maxValue {
		return s
	}
	return string([]rune(s)[:maxValue-1]) + "…"
}

// piece is part of a sentence: fixed words, or a value from the event.
type piece struct {
	text  string
	value bool
}

func words(s string) piece { return piece{text: s} }
func value(s string) piece { return piece{text: s, value: true} }

// sentence is one of RevenueCat's Slack phrases, with its values marked.
type sentence []piece

// mrkdwn renders values as inline code, and the customer as a link to the
// dashboard when there is one.
func (s sentence) mrkdwn(who string, link string) string {
	var b strings.Builder
	for _, p := range s {
		switch {
		case !p.value:
			b.WriteString(p.text)
		case p.text == who && link != "":
			// A link label cannot hold a code span; escaping &, < and > keeps
			// it from pinging or linking (a *word* in it may still show bold:
			// mrkdwn has no escape for that).
			b.WriteString("<" + Escape(link) + "|" + Escape(clip(p.text)) + ">")
		default:
			b.WriteString(code(p.text))
		}
	}
	return b.String()
}

// plain renders the `text` fallback: values as they are, escaped.
func (s sentence) plain() string {
	var b strings.Builder
	for _, p := range s {
		if p.value {
			if p.text == "" {
				b.WriteString("unknown")
				continue
			}
			b.WriteString(Escape(clip(p.text)))
		} else {
			b.WriteString(p.text)
		}
	}
	return b.String()
}

// phrase returns what happened, in RevenueCat's words where its Slack
// integration has them ("Customer 7821 just renewed their subscription of
// monthly"), and in the same style for the events it does not send.
func phrase(e *event.Event) sentence {
	u, p := value(e.UserID), value(e.ProductID)
	customer := func(middle string, tail ...piece) sentence {
		return append(sentence{words("Customer "), u, words(" " + middle + " ")}, tail...)
	}
	if e.IsTest || e.Type == event.TypeTest {
		return sentence{words("Test event from RevenueCat")}
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
		return customer("got a product change from", p, words(" to "), value(e.NewProductID))
	case event.Expired:
		return sentence{words("Customer "), u, words("'s subscription of "), p, words(" just expired")}
	case event.Paused:
		return customer("just paused their subscription of", p)
	case event.Extended:
		return customer("got their subscription of", p, words(" extended"))
	case event.Transferred:
		return sentence{words("Purchases were transferred from "), value(strings.Join(e.TransferredFrom, ", ")),
			words(" to "), value(strings.Join(e.TransferredTo, ", "))} // each clipped to maxValue
	}
	s := customer("got event", value(e.Type))
	if e.ProductID != "" {
		s = append(s, words(" for "), p)
	}
	return s
}

// FallbackText is the `text` of every message, default or templated.
func FallbackText(e *event.Event) string {
	text := phrase(e).plain()
	if isSandbox(e) {
		text = "[Sandbox] " + text
	}
	return text
}

// headline is the first line of the default message: an emoji, a bold label
// for the events someone should look at (refunds, billing issues), and the
// phrase. RevenueCat's Slack messages use the same cats.
func headline(e *event.Event, projectID string) string {
	emoji, label := ":smiley_cat:", ""
	switch {
	case e.IsTest || e.Type == event.TypeTest:
		emoji = ":test_tube:"
	case e.Lifecycle == event.Refunded:
		emoji, label = ":money_with_wings:", "*Refund* · "
	case e.Lifecycle == event.BillingIssue:
		emoji, label = ":scream_cat:", "*Billing issue* · "
	case e.Lifecycle == event.Cancelled || e.Lifecycle == event.TrialCancelled ||
		e.Lifecycle == event.Expired || e.Lifecycle == event.Paused:
		emoji = ":crying_cat_face:"
	case e.Lifecycle == event.Transferred:
		emoji = ":arrows_counterclockwise:"
	case e.Lifecycle == event.Other:
		emoji = ":information_source:"
	}
	return emoji + " " + label + phrase(e).mrkdwn(e.UserID, customerURL(e, projectID))
}

// customerURL links the event's customer in RevenueCat's dashboard, or is
// empty without a project id.
func customerURL(e *event.Event, projectID string) string {
	if projectID == "" || e.UserID == "" {
		return ""
	}
	link := DashboardURL + url.PathEscape(projectID) + "/" + url.PathEscape(e.UserID)
	if len(link) > maxLink {
		// It would not fit Slack's 3000 characters with the rest of the
		// headline; the id is still shown.
		return ""
	}
	return link
}

const maxLink = 1500

// DefaultMessage is the Block Kit message sent when no template is set: the
// headline, the facts as fields, and a context line with the event's type,
// time and id (and a sandbox badge).
func DefaultMessage(e *event.Event, projectID string) Message {
	blocks := []slackapi.Block{
		slackapi.NewSectionBlock(mrkdwn(headline(e, projectID)), nil, nil),
	}
	if fields := facts(e); len(fields) > 0 {
		blocks = append(blocks, slackapi.NewSectionBlock(nil, fields, nil))
	}
	var ctx []slackapi.MixedElement
	if isSandbox(e) {
		ctx = append(ctx, mrkdwn(":construction: *Sandbox*"))
	}
	meta := []string{code(e.Type)}
	if e.EventTimestampMs != 0 {
		meta = append(meta, formatTime(e.EventTimestampMs))
	}
	meta = append(meta, "event "+code(e.ID))
	ctx = append(ctx, mrkdwn(strings.Join(meta, " · ")))
	blocks = append(blocks, slackapi.NewContextBlock("", ctx...))
	return Message{Text: FallbackText(e), Blocks: blocks}
}

// facts are the fields of the default message, those the event has.
func facts(e *event.Event) []*slackapi.TextBlockObject {
	var f []*slackapi.TextBlockObject
	add := func(title, v string) {
		if v != "" {
			f = append(f, mrkdwn("*"+title+"*\n"+v))
		}
	}
	if e.Lifecycle == event.Transferred {
		add("From", codes(e.TransferredFrom))
		add("To", codes(e.TransferredTo))
	}
	if e.ProductID != "" {
		product := code(e.ProductID)
		if e.NewProductID != "" {
			product += " → " + code(e.NewProductID)
		}
		add("Product", product)
	}
	add("Entitlements", codes(e.Entitlements))
	add("Revenue", Escape(revenue(e)))
	if e.Store != "" {
		add("Store", storeName(e.Store))
	}
	if e.CancelReason != "" {
		add("Reason", code(e.CancelReason))
	}
	if e.ExpirationReason != "" {
		add("Reason", code(e.ExpirationReason))
	}
	switch e.Lifecycle {
	case event.BillingIssue:
		if e.GracePeriodExpirationAtMs != nil {
			add("Grace period until", formatTime(*e.GracePeriodExpirationAtMs))
		}
	case event.Paused:
		if e.AutoResumeAtMs != nil {
			add("Resumes", formatTime(*e.AutoResumeAtMs))
		}
	case event.Extended:
		if e.ExpirationAtMs != nil {
			add("Expires", formatTime(*e.ExpirationAtMs))
		}
	}
	if e.CountryCode != "" {
		add("Country", code(e.CountryCode))
	}
	return f
}

// codes lists values as code, at most maxList of them.
func codes(s []string) string {
	out := make([]string, 0, min(len(s), maxList)+1)
	for i, v := range s {
		if i == maxList {
			out = append(out, fmt.Sprintf("and %d more", len(s)-maxList))
			break
		}
		out = append(out, code(v))
	}
	return strings.Join(out, ", ")
}

const maxList = 5

func mrkdwn(s string) *slackapi.TextBlockObject {
	return slackapi.NewTextBlockObject(slackapi.MarkdownType, s, false, false)
}

func isSandbox(e *event.Event) bool {
	return e.IsSandbox || e.Environment == "SANDBOX"
}

func formatTime(ms int64) string {
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

// storeName is the display name of a store, or the value itself as code.
func storeName(store string) string {
	if name, ok := stores[store]; ok {
		return name
	}
	return code(store)
}

// revenue shows what the customer paid, in their currency and in USD:
// "9.99 EUR ($10.84)", "$39.99", "-4.99 GBP (-$6.29)". It is empty when the
// event carries no amount, or only zero (trials, cancellations).
func revenue(e *event.Event) string {
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
