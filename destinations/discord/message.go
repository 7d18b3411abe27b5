package discord

import (
	"strings"
	"time"

	"github.com/rcrouter/rcrouter/destinations/internal/chat"
	"github.com/rcrouter/rcrouter/internal/event"
)

// Message is the body of one execute-webhook request.
type Message struct {
	Content string  `json:"content,omitempty"`
	Embeds  []Embed `json:"embeds"`
	// AllowedMentions is always {"parse": []}: whatever the text says,
	// Discord notifies nobody (@everyone, @here, users and roles).
	AllowedMentions AllowedMentions `json:"allowed_mentions"`
}

// AllowedMentions is Discord's allowed_mentions object.
type AllowedMentions struct {
	Parse []string `json:"parse"`
}

// noMentions is the allowed_mentions every message carries.
func noMentions() AllowedMentions { return AllowedMentions{Parse: []string{}} }

// Embed is one Discord embed, the fields a template may set.
type Embed struct {
	Title       string  `json:"title,omitempty"`
	Description string  `json:"description,omitempty"`
	URL         string  `json:"url,omitempty"`
	Color       int     `json:"color,omitempty"`
	Timestamp   string  `json:"timestamp,omitempty"`
	Footer      *Footer `json:"footer,omitempty"`
	Author      *Author `json:"author,omitempty"`
	Thumbnail   *Image  `json:"thumbnail,omitempty"`
	Image       *Image  `json:"image,omitempty"`
	Fields      []Field `json:"fields,omitempty"`
}

// Footer is an embed footer; Discord shows its text without markdown.
type Footer struct {
	Text    string `json:"text"`
	IconURL string `json:"icon_url,omitempty"`
}

// Author is an embed author; Discord shows its name without markdown.
type Author struct {
	Name    string `json:"name"`
	URL     string `json:"url,omitempty"`
	IconURL string `json:"icon_url,omitempty"`
}

// Image is an embed image or thumbnail.
type Image struct {
	URL string `json:"url"`
}

// Field is one embed field.
type Field struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	Inline bool   `json:"inline,omitempty"`
}

// markdown is Discord's dialect: emphasis, code, spoilers, masked links
// ([x](url)), mentions, channels and custom emoji (<@1>, <#1>, <:e:1>) and
// the colon of a URL that would become a link are escaped anywhere;
// headings, lists and quotes at the start. A zero-width space after each @
// keeps @everyone, @here and <@123> from being mentions even where a client
// would render them as one.
var markdown = chat.Markdown{Always: "\\*_~`|<>[]:", Leading: "#->+", Replace: map[rune]string{'@': "@\u200b"}}

// Escape makes event text literal in Discord markdown (descriptions, field
// values, titles). The text shows unchanged.
func Escape(s string) string { return markdown.Escape(s) }

// code shows event text as inline code, where Discord applies no markdown
// and no mention: clipped, on one line, a backtick (which would end the
// span) shown as ˋ, and @ followed by a zero-width space as in Escape.
func code(s string) string {
	if s == "" {
		return "*unknown*"
	}
	s = strings.ReplaceAll(chat.OneLine(chat.Clip(s)), "`", "ˋ")
	return "`" + strings.ReplaceAll(s, "@", "@\u200b") + "`"
}

// plain is event text for the places Discord shows without markdown
// (footer text, author name): clipped, on one line, @ defused as in Escape.
func plain(s string) string {
	return strings.ReplaceAll(chat.OneLine(chat.Clip(s)), "@", "@\u200b")
}

// style renders event values as inline code and event prose escaped.
var style = chat.Style{Value: code, Text: Escape}

// colors per tone: RevenueCat's green and red, and Discord's blurple and
// grey for the rest.
var colors = map[chat.Tone]int{
	chat.Good:         0x30B296,
	chat.Test:         0x5865F2,
	chat.Refund:       0xF2545B,
	chat.BillingIssue: 0xF2545B,
	chat.Loss:         0xF2545B,
	chat.Transfer:     0x95A5A6,
	chat.Info:         0x95A5A6,
}

// headline is the default description: an emoji, a bold label for news
// someone should look at, and the phrase with its values as code.
func headline(e *event.Event) string { return chat.MarkdownHeadline(e, style) }

// footer is the default footer: sandbox badge, type and event id.
func footer(e *event.Event) string {
	parts := []string{plain(e.Type), "event " + plain(e.ID)}
	if chat.IsSandbox(e) {
		parts = append([]string{"Sandbox"}, parts...)
	}
	return strings.Join(parts, " · ")
}

// timestamp is the event time as Discord wants it (ISO 8601), or "".
func timestamp(e *event.Event) string {
	if e.EventTimestampMs == 0 {
		return ""
	}
	return time.UnixMilli(e.EventTimestampMs).UTC().Format(time.RFC3339Nano)
}

// DefaultMessage is the message sent when no template is set: one embed
// with the headline, the facts as inline fields, the type and event id in
// the footer and the event time as the embed's timestamp.
func DefaultMessage(e *event.Event) Message {
	tone := chat.ToneOf(e)
	embed := Embed{
		Description: headline(e),
		Color:       colors[tone],
		Timestamp:   timestamp(e),
		Footer:      &Footer{Text: footer(e)},
	}
	for _, f := range chat.Facts(e) {
		embed.Fields = append(embed.Fields, Field{Name: f.Title, Value: f.Value.Render(style), Inline: true})
	}
	return Message{Embeds: []Embed{embed}, AllowedMentions: noMentions()}
}
