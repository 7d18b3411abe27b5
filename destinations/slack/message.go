package slack

import (
	"net/url"
	"strings"

	slackapi "github.com/slack-go/slack"

	"github.com/rcrouter/rcrouter/destinations/internal/chat"
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
	return "`" + Escape(strings.ReplaceAll(chat.Clip(s), "`", "ˋ")) + "`"
}

// mrkdwnStyle renders event values as inline code, and the customer as a
// link to the dashboard when there is one.
func mrkdwnStyle(who, link string) chat.Style {
	return chat.Style{
		Value: func(v string) string {
			if v == who && link != "" {
				// A link label cannot hold a code span; escaping &, < and >
				// keeps it from pinging or linking (a *word* in it may still
				// show bold: mrkdwn has no escape for that).
				return "<" + Escape(link) + "|" + Escape(chat.Clip(v)) + ">"
			}
			return code(v)
		},
		Text: Escape,
	}
}

// FallbackText is the `text` of every message, default or templated.
func FallbackText(e *event.Event) string { return chat.Fallback(e, Escape) }

// headline is the first line of the default message: an emoji, a bold label
// for the events someone should look at (refunds, billing issues), and the
// phrase. RevenueCat's Slack messages use the same cats.
func headline(e *event.Event, projectID string) string {
	tone := chat.ToneOf(e)
	label := ""
	if l := tone.Label(); l != "" {
		label = "*" + l + "* · "
	}
	return emoji[tone] + " " + label + chat.Phrase(e).Render(mrkdwnStyle(e.UserID, customerURL(e, projectID)))
}

// emoji are the cats of RevenueCat's own Slack messages, per tone.
var emoji = map[chat.Tone]string{
	chat.Good:         ":smiley_cat:",
	chat.Test:         ":test_tube:",
	chat.Refund:       ":money_with_wings:",
	chat.BillingIssue: ":scream_cat:",
	chat.Loss:         ":crying_cat_face:",
	chat.Transfer:     ":arrows_counterclockwise:",
	chat.Info:         ":information_source:",
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
	if chat.IsSandbox(e) {
		ctx = append(ctx, mrkdwn(":construction: *Sandbox*"))
	}
	meta := []string{code(e.Type)}
	if e.EventTimestampMs != 0 {
		meta = append(meta, chat.FormatTime(e.EventTimestampMs))
	}
	meta = append(meta, "event "+code(e.ID))
	ctx = append(ctx, mrkdwn(strings.Join(meta, " · ")))
	blocks = append(blocks, slackapi.NewContextBlock("", ctx...))
	return Message{Text: FallbackText(e), Blocks: blocks}
}

// facts are the fields of the default message, those the event has.
func facts(e *event.Event) []*slackapi.TextBlockObject {
	var f []*slackapi.TextBlockObject
	st := mrkdwnStyle("", "")
	for _, fact := range chat.Facts(e) {
		f = append(f, mrkdwn("*"+fact.Title+"*\n"+fact.Value.Render(st)))
	}
	return f
}

func mrkdwn(s string) *slackapi.TextBlockObject {
	return slackapi.NewTextBlockObject(slackapi.MarkdownType, s, false, false)
}

// storeName is the display name of a store, or the value itself as code.
func storeName(store string) string {
	if name, ok := chat.StoreName(store); ok {
		return name
	}
	return code(store)
}
