package slack

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"text/template"
	"unicode/utf8"

	slackapi "github.com/slack-go/slack"

	"github.com/rcrouter/rcrouter/destinations/internal/chat"
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

// funcs is the template's whole function map: chat's shared functions and
// Slack's mrkdwn quoting.
func funcs() template.FuncMap {
	f := chat.Funcs(Escape)
	f["mrkdwn"] = Escape
	f["code"] = code
	return f
}

// parseTemplate compiles a `template:` and renders it for every sample event:
// a template that fails for any of them would fail for real events too.
func parseTemplate(src string) (*template.Template, error) {
	return chat.ParseTemplate("slack", src, funcs(), func(t *template.Template, e *event.Event) error {
		m, err := renderTemplate(t, e, "proj_sample")
		if err != nil {
			return err
		}
		if leak := mentionIn(m.Blocks); leak != "" {
			return fmt.Errorf("event text reaches Slack unescaped (%s): pass it through mrkdwn or code", leak)
		}
		return nil
	})
}

// renderTemplate renders one event into blocks; the text fallback stays the
// default phrase so that notifications read the same with any template.
func renderTemplate(t *template.Template, e *event.Event, projectID string) (Message, error) {
	data := TemplateData{
		Event:       e,
		Text:        FallbackText(e),
		Headline:    headline(e, projectID),
		Revenue:     Escape(chat.Revenue(e)),
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
		if leak := chat.Leaks(t, "<!channel>", "<@U0>"); leak != "" {
			return leak
		}
	}
	return ""
}
