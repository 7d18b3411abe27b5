package discord

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"text/template"
	"unicode/utf8"

	"github.com/rcrouter/rcrouter/destinations/internal/chat"
	"github.com/rcrouter/rcrouter/internal/event"
)

// TemplateData is what a `template:` renders: the normalized event's fields
// (.UserID, .ProductID, .Price, .Entitlements, .SubscriberAttribute "$email",
// …) and the parts of the default embed, already escaped.
type TemplateData struct {
	*event.Event
	Text      string // the plain phrase, "Customer 7821 just renewed …", escaped
	Headline  string // the default description, with emoji and code spans
	Revenue   string // "9.99 EUR ($10.84)" escaped, or "" without an amount
	StoreName string // "Google Play" for .Store PLAY_STORE
	Color     int    // the default embed's color for this event
	Timestamp string // the event time in ISO 8601, for an embed's timestamp
}

// funcs is the template's whole function map: chat's shared functions and
// Discord's quoting (markdown for descriptions, field values and titles;
// code for inline code; plain for footers and author names).
func funcs() template.FuncMap {
	f := chat.Funcs(Escape)
	f["markdown"] = Escape
	f["code"] = code
	f["plain"] = plain
	return f
}

// parseTemplate compiles a `template:` (a JSON array of embeds) and renders
// it for every sample event.
func parseTemplate(src string) (*template.Template, error) {
	return chat.ParseTemplate("discord", src, funcs(), func(t *template.Template, e *event.Event) error {
		m, err := renderTemplate(t, e)
		if err != nil {
			return err
		}
		for _, text := range embedTexts(m.Embeds) {
			if leak := chat.Leaks(text, "@everyone", "<@U0>"); leak != "" {
				return fmt.Errorf("event text reaches Discord unescaped (%s): pass it through markdown, code or plain", leak)
			}
		}
		return nil
	})
}

// renderTemplate renders one event into a message: the template's embeds,
// and allowed_mentions that no template can change.
func renderTemplate(t *template.Template, e *event.Event) (Message, error) {
	tone := chat.ToneOf(e)
	data := TemplateData{
		Event:     e,
		Text:      chat.Fallback(e, Escape),
		Headline:  headline(e),
		Revenue:   Escape(chat.Revenue(e)),
		StoreName: storeName(e.Store),
		Color:     colors[tone],
		Timestamp: timestamp(e),
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		return Message{}, err
	}
	dec := json.NewDecoder(&buf)
	dec.DisallowUnknownFields()
	var embeds []Embed
	if err := dec.Decode(&embeds); err != nil {
		return Message{}, fmt.Errorf("not a JSON array of embeds: %w", err)
	}
	if dec.More() {
		return Message{}, errors.New("not a JSON array of embeds: text after the array")
	}
	if err := validateEmbeds(embeds); err != nil {
		return Message{}, err
	}
	return Message{Embeds: embeds, AllowedMentions: noMentions()}, nil
}

// storeName is the display name of a store, or the value itself as code.
func storeName(store string) string {
	if name, ok := chat.StoreName(store); ok {
		return name
	}
	return code(store)
}

// Discord's embed limits; a message over them is refused (400 Invalid Form
// Body), which would make every delivery permanent.
const (
	maxEmbeds      = 10
	maxTitle       = 256
	maxDescription = 4096
	maxFields      = 25
	maxFieldName   = 256
	maxFieldValue  = 1024
	maxFooter      = 2048
	maxAuthor      = 256
	maxTotal       = 6000
)

// validateEmbeds checks what Discord would refuse: no embeds or too many,
// empty embeds or fields, texts over their limits and colors out of range.
func validateEmbeds(embeds []Embed) error {
	if len(embeds) == 0 || len(embeds) > maxEmbeds {
		return fmt.Errorf("%d embeds, Discord allows 1 to %d", len(embeds), maxEmbeds)
	}
	total := 0
	for i, e := range embeds {
		if err := validateEmbed(e); err != nil {
			return fmt.Errorf("embed %d: %w", i, err)
		}
		for _, t := range embedTexts([]Embed{e}) {
			total += utf8.RuneCountInString(t)
		}
	}
	if total > maxTotal {
		return fmt.Errorf("%d characters in all embeds, Discord allows %d", total, maxTotal)
	}
	return nil
}

func validateEmbed(e Embed) error {
	over := func(what, s string, max int) error {
		if n := utf8.RuneCountInString(s); n > max {
			return fmt.Errorf("%s: %d characters, Discord allows %d", what, n, max)
		}
		return nil
	}
	if e.Title == "" && e.Description == "" && len(e.Fields) == 0 && e.Author == nil && e.Image == nil && e.Thumbnail == nil {
		return errors.New("empty: set a title, description or fields")
	}
	if e.Color < 0 || e.Color > 0xFFFFFF {
		return fmt.Errorf("color %d is not an RGB value (0 to 16777215)", e.Color)
	}
	if len(e.Fields) > maxFields {
		return fmt.Errorf("%d fields, Discord allows %d", len(e.Fields), maxFields)
	}
	errs := []error{over("title", e.Title, maxTitle), over("description", e.Description, maxDescription)}
	if e.Footer != nil {
		errs = append(errs, over("footer", e.Footer.Text, maxFooter))
	}
	if e.Author != nil {
		errs = append(errs, over("author", e.Author.Name, maxAuthor))
	}
	for i, f := range e.Fields {
		if f.Name == "" || f.Value == "" {
			errs = append(errs, fmt.Errorf("field %d: name and value must not be empty", i))
			continue
		}
		errs = append(errs, over(fmt.Sprintf("field %d name", i), f.Name, maxFieldName),
			over(fmt.Sprintf("field %d value", i), f.Value, maxFieldValue))
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// embedTexts are the texts of embeds that Discord counts and shows.
func embedTexts(embeds []Embed) []string {
	var out []string
	for _, e := range embeds {
		out = append(out, e.Title, e.Description)
		if e.Footer != nil {
			out = append(out, e.Footer.Text)
		}
		if e.Author != nil {
			out = append(out, e.Author.Name)
		}
		for _, f := range e.Fields {
			out = append(out, f.Name, f.Value)
		}
	}
	return out
}
