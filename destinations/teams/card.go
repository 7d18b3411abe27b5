package teams

import (
	"encoding/json"
	"strings"

	"github.com/rcrouter/rcrouter/destinations/internal/chat"
	"github.com/rcrouter/rcrouter/internal/event"
)

// ContentType is the attachment type of an Adaptive Card.
const ContentType = "application/vnd.microsoft.card.adaptive"

// Message is the body of one webhook request: a Teams message whose only
// attachment is an Adaptive Card, the shape Workflows' "Post card in a chat
// or channel" step and the legacy incoming webhooks both take.
type Message struct {
	Type        string       `json:"type"` // "message"
	Attachments []Attachment `json:"attachments"`
}

// Attachment carries the card.
type Attachment struct {
	ContentType string          `json:"contentType"`
	ContentURL  *string         `json:"contentUrl"` // always null
	Content     json.RawMessage `json:"content"`
}

// newMessage wraps a card's JSON into a message.
func newMessage(card json.RawMessage) Message {
	return Message{Type: "message", Attachments: []Attachment{{ContentType: ContentType, Content: card}}}
}

// Card is the default Adaptive Card.
type Card struct {
	Schema  string    `json:"$schema"`
	Type    string    `json:"type"`    // "AdaptiveCard"
	Version string    `json:"version"` // 1.4: what Teams renders on desktop, web and mobile
	MSTeams MSTeams   `json:"msteams"`
	Body    []Element `json:"body"`
}

// MSTeams are Teams' own card settings.
type MSTeams struct {
	Width string `json:"width"` // "Full": use the width of the conversation
}

// Element is one card element, the fields the default card uses.
type Element struct {
	Type    string    `json:"type"`
	Style   string    `json:"style,omitempty"`   // Container
	Items   []Element `json:"items,omitempty"`   // Container
	Inlines []TextRun `json:"inlines,omitempty"` // RichTextBlock
	Facts   []Fact    `json:"facts,omitempty"`   // FactSet
	Spacing string    `json:"spacing,omitempty"`
}

// TextRun is text of a RichTextBlock. Teams applies no markdown to it,
// which is why event text in the default card travels in TextRuns.
type TextRun struct {
	Type     string `json:"type"` // "TextRun"
	Text     string `json:"text"`
	Weight   string `json:"weight,omitempty"`
	FontType string `json:"fontType,omitempty"`
	Color    string `json:"color,omitempty"`
	Size     string `json:"size,omitempty"`
	IsSubtle bool   `json:"isSubtle,omitempty"`
}

// Fact is one title and value of a FactSet; Teams reads both as markdown.
type Fact struct {
	Title string `json:"title"`
	Value string `json:"value"`
}

// markdown is the dialect of TextBlocks and FactSets: emphasis, code,
// links, HTML-like tags (<at>…</at> mentions) and entities escaped
// anywhere; headings, lists and quotes at the start.
var markdown = chat.Markdown{Always: "\\*_~`[]<>&|", Leading: "#->+"}

// Escape makes event text literal in a TextBlock or FactSet. The text
// shows unchanged.
func Escape(s string) string { return markdown.Escape(s) }

// value shows one event value in markdown: clipped and escaped, or an
// italic "unknown".
func value(s string) string {
	if s == "" {
		return "_unknown_"
	}
	return Escape(chat.Clip(s))
}

// style renders event values and prose for markdown.
var style = chat.Style{Value: value, Text: Escape}

// containerStyles colour the headline per tone: good news green,
// someone-should-look red.
var containerStyles = map[chat.Tone]string{
	chat.Good:         "good",
	chat.Test:         "accent",
	chat.Refund:       "attention",
	chat.BillingIssue: "attention",
	chat.Loss:         "attention",
	chat.Transfer:     "emphasis",
	chat.Info:         "emphasis",
}

// run is a TextRun of event or fixed text, on one line.
func run(text string) TextRun { return TextRun{Type: "TextRun", Text: chat.OneLine(text)} }

// headlineRuns are the default headline: emoji, a bold label for news
// someone should look at, and the phrase, with event values in monospace.
func headlineRuns(e *event.Event) []TextRun {
	tone := chat.ToneOf(e)
	runs := []TextRun{run(chat.Emoji[tone] + " ")}
	if l := tone.Label(); l != "" {
		r := run(l + " · ")
		r.Weight = "Bolder"
		runs = append(runs, r)
	}
	for _, p := range chat.Phrase(e) {
		switch p.Kind {
		case chat.Value:
			r := run(chat.Clip(p.Text))
			if p.Text == "" {
				r.Text = "unknown"
			}
			r.FontType = "Monospace"
			runs = append(runs, r)
		default:
			runs = append(runs, run(p.Text))
		}
	}
	return runs
}

// headline is the headline in markdown, for templates' TextBlocks.
func headline(e *event.Event) string { return chat.MarkdownHeadline(e, style) }

// footer is the default card's last line: sandbox badge, type, time and
// event id.
func footer(e *event.Event) string {
	parts := []string{chat.Clip(e.Type)}
	if e.EventTimestampMs != 0 {
		parts = append(parts, chat.FormatTime(e.EventTimestampMs))
	}
	parts = append(parts, "event "+chat.Clip(e.ID))
	if chat.IsSandbox(e) {
		parts = append([]string{"Sandbox"}, parts...)
	}
	return strings.Join(parts, " · ")
}

// DefaultCard is the card sent when no template is set: the headline in a
// coloured container, the facts as a FactSet and a subtle footer line.
func DefaultCard(e *event.Event) Card {
	tone := chat.ToneOf(e)
	body := []Element{{
		Type:  "Container",
		Style: containerStyles[tone],
		Items: []Element{{Type: "RichTextBlock", Inlines: headlineRuns(e)}},
	}}
	if facts := chat.Facts(e); len(facts) > 0 {
		fs := Element{Type: "FactSet"}
		for _, f := range facts {
			fs.Facts = append(fs.Facts, Fact{Title: f.Title, Value: f.Value.Render(style)})
		}
		body = append(body, fs)
	}
	foot := run(footer(e))
	foot.Size, foot.IsSubtle = "Small", true
	body = append(body, Element{Type: "RichTextBlock", Inlines: []TextRun{foot}, Spacing: "Medium"})
	return Card{
		Schema:  "http://adaptivecards.io/schemas/adaptive-card.json",
		Type:    "AdaptiveCard",
		Version: "1.4",
		MSTeams: MSTeams{Width: "Full"},
		Body:    body,
	}
}
