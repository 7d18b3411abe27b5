package teams

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/template"

	"github.com/rcrouter/rcrouter/destinations/internal/chat"
	"github.com/rcrouter/rcrouter/internal/event"
)

// TemplateData is what a `template:` renders: the normalized event's fields
// (.UserID, .ProductID, .Price, .Entitlements, .SubscriberAttribute "$email",
// …) and the parts of the default card, already escaped for markdown.
type TemplateData struct {
	*event.Event
	Text      string // the plain phrase, "Customer 7821 just renewed …", escaped
	Headline  string // the default headline with emoji, bold label and escaped values
	Revenue   string // "9.99 EUR ($10.84)" escaped, or "" without an amount
	StoreName string // "Google Play" for .Store PLAY_STORE
	Style     string // the default headline's Container style (good, attention, …)
}

// funcs is the template's whole function map: chat's shared functions and
// markdown, Teams' escaping for TextBlocks and FactSets.
func funcs() template.FuncMap {
	f := chat.Funcs(Escape)
	f["markdown"] = Escape
	return f
}

// parseTemplate compiles a `template:` (the JSON of one Adaptive Card) and
// renders it for every sample event.
func parseTemplate(src string) (*template.Template, error) {
	return chat.ParseTemplate("teams", src, funcs(), func(t *template.Template, e *event.Event) error {
		_, err := renderTemplate(t, e)
		return err
	})
}

// maxMessage is Teams' limit on one message, card included (about 28 KB).
const maxMessage = 28 << 10

// renderTemplate renders one event into a card and checks it.
func renderTemplate(t *template.Template, e *event.Event) (json.RawMessage, error) {
	data := TemplateData{
		Event:     e,
		Text:      chat.Fallback(e, Escape),
		Headline:  headline(e),
		Revenue:   Escape(chat.Revenue(e)),
		StoreName: storeName(e.Store),
		Style:     containerStyles[chat.ToneOf(e)],
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		return nil, err
	}
	var card map[string]any
	dec := json.NewDecoder(bytes.NewReader(buf.Bytes()))
	if err := dec.Decode(&card); err != nil {
		return nil, fmt.Errorf("not a JSON Adaptive Card: %w", err)
	}
	if dec.More() {
		return nil, errors.New("not a JSON Adaptive Card: text after the card")
	}
	if err := validateCard(card); err != nil {
		return nil, err
	}
	raw, err := compact(buf.Bytes())
	if err != nil {
		return nil, err
	}
	if len(raw) > maxMessage {
		return nil, fmt.Errorf("card of %d bytes, Teams allows about %d", len(raw), maxMessage)
	}
	return raw, nil
}

// storeName is the display name of a store, or the value itself escaped.
func storeName(store string) string {
	if name, ok := chat.StoreName(store); ok {
		return name
	}
	return value(store)
}

// elements are the Adaptive Card elements (schema 1.5) a card may hold.
var elements = map[string]bool{
	"TextBlock": true, "RichTextBlock": true, "FactSet": true, "Image": true, "ImageSet": true,
	"Container": true, "ColumnSet": true, "ActionSet": true, "Table": true, "Media": true,
}

// validateCard checks what Teams would refuse or show as an error card:
// not an AdaptiveCard, no version or body, unknown elements, and event text
// that reaches markdown unescaped.
func validateCard(card map[string]any) error {
	if card["type"] != "AdaptiveCard" {
		return fmt.Errorf(`"type" must be "AdaptiveCard", got %v`, jsonText(card["type"]))
	}
	if v, _ := card["version"].(string); v == "" {
		return errors.New(`"version" is required ("1.4" renders everywhere in Teams)`)
	}
	body, _ := card["body"].([]any)
	if len(body) == 0 {
		return errors.New(`"body" must be a non-empty array of elements`)
	}
	return validateElements("body", body)
}

func validateElements(path string, items []any) error {
	for i, it := range items {
		p := fmt.Sprintf("%s[%d]", path, i)
		el, ok := it.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: not an element object", p)
		}
		typ, _ := el["type"].(string)
		if !elements[typ] {
			return fmt.Errorf("%s: unknown element type %s", p, jsonText(el["type"]))
		}
		if err := validateElement(p, typ, el); err != nil {
			return err
		}
	}
	return nil
}

func validateElement(path, typ string, el map[string]any) error {
	switch typ {
	case "TextBlock":
		text, _ := el["text"].(string)
		if text == "" {
			return fmt.Errorf("%s (TextBlock): text must not be empty", path)
		}
		return leak(path+" (TextBlock)", text)
	case "FactSet":
		facts, _ := el["facts"].([]any)
		for i, f := range facts {
			fact, _ := f.(map[string]any)
			for _, k := range []string{"title", "value"} {
				if s, _ := fact[k].(string); s != "" {
					if err := leak(fmt.Sprintf("%s (FactSet) fact %d %s", path, i, k), s); err != nil {
						return err
					}
				}
			}
		}
	case "Container":
		items, _ := el["items"].([]any)
		return validateElements(path+".items", items)
	case "ColumnSet":
		cols, _ := el["columns"].([]any)
		for i, c := range cols {
			col, _ := c.(map[string]any)
			items, _ := col["items"].([]any)
			if err := validateElements(fmt.Sprintf("%s.columns[%d].items", path, i), items); err != nil {
				return err
			}
		}
	}
	return nil
}

// leak reports event text that Teams would read as markdown or as a tag:
// the samples' hostile text, unescaped.
func leak(where, text string) error {
	if s := chat.Leaks(text, "*b*", "<@U0>", "<!channel>"); s != "" {
		return fmt.Errorf("%s: event text reaches Teams unescaped (%s): pass it through markdown", where, s)
	}
	return nil
}

func jsonText(v any) string {
	if v == nil {
		return "nothing"
	}
	b, _ := json.Marshal(v)
	return strings.TrimSpace(string(b))
}
