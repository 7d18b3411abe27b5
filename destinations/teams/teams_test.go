package teams

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rcrouter/rcrouter/destinations"
	"github.com/rcrouter/rcrouter/destinations/destinationstest"
	"github.com/rcrouter/rcrouter/destinations/internal/chat"
	"github.com/rcrouter/rcrouter/destinations/internal/chat/chattest"
	"github.com/rcrouter/rcrouter/internal/event"
	"github.com/rcrouter/rcrouter/internal/secret"
)

// TestGoldenFixtures posts every fixture of both fixture directories to a
// fake Workflows trigger and compares the body sent with testdata/golden
// (indented; the bytes inside strings are exactly those sent).
func TestGoldenFixtures(t *testing.T) {
	chattest.CheckGolden(t, build, reply{Status: 202}, hookPath, checkMessage, *update)
}

// checkMessage checks the envelope Teams wants and the card inside it.
func checkMessage(t *testing.T, body []byte) {
	t.Helper()
	var m struct {
		Type        string `json:"type"`
		Attachments []struct {
			ContentType string         `json:"contentType"`
			ContentURL  *string        `json:"contentUrl"`
			Content     map[string]any `json:"content"`
		} `json:"attachments"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("body is not a message: %v", err)
	}
	if m.Type != "message" || len(m.Attachments) != 1 || m.Attachments[0].ContentType != ContentType || m.Attachments[0].ContentURL != nil {
		t.Fatalf("envelope = %s", body)
	}
	if err := validateCard(m.Attachments[0].Content); err != nil {
		t.Errorf("card: %v", err)
	}
}

func TestEscape(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"plain id", "user_1", `user\_1`},
		{"bold and italics", "**b** _i_ ~~s~~", `\*\*b\*\* \_i\_ \~\~s\~\~`},
		{"link", "[click](https://evil.example)", `\[click\](https://evil.example)`},
		{"html", "<b>x</b> <script>", `\<b\>x\</b\> \<script\>`},
		{"at mention tag", "<at>Ana</at>", `\<at\>Ana\</at\>`},
		{"entity", "&lt;&amp;", `\&lt;\&amp;`},
		{"slack and discord mentions", "<!channel> <@U0> @everyone", `\<!channel\> \<@U0\> @everyone`},
		{"code", "`x`", "\\`x\\`"},
		{"heading, list, quote at the start", "# h", `\# h`},
		{"list item", "- item", `\- item`},
		{"numbered list", "1. item", `1\. item`},
		{"line breaks", "a\n\n- b", "a  - b"},
		{"amount", "-4.99 GBP (-$6.29)", `\-4.99 GBP (-$6.29)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Escape(tt.in); got != tt.want {
				t.Errorf("Escape(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// cardOf returns the card of a message body.
func cardOf(t *testing.T, body []byte) map[string]any {
	t.Helper()
	var m Message
	if err := json.Unmarshal(body, &m); err != nil || len(m.Attachments) != 1 {
		t.Fatalf("message %s: %v", body, err)
	}
	var card map[string]any
	if err := json.Unmarshal(m.Attachments[0].Content, &card); err != nil {
		t.Fatal(err)
	}
	return card
}

// markdownTexts are the texts of a card that Teams reads as markdown
// (TextBlock text, FactSet titles and values); plainTexts those it shows as
// they are (TextRuns).
func cardTexts(card map[string]any) (markdownTexts, plainTexts []string) {
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			switch v["type"] {
			case "TextBlock":
				markdownTexts = append(markdownTexts, v["text"].(string))
			case "TextRun":
				plainTexts = append(plainTexts, v["text"].(string))
			case "FactSet":
				for _, f := range v["facts"].([]any) {
					f := f.(map[string]any)
					markdownTexts = append(markdownTexts, f["title"].(string), f["value"].(string))
				}
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(card)
	return markdownTexts, plainTexts
}

// TestEscaping: hostile app_user_id, product and attributes reach Teams as
// TextRuns (no markdown) or escaped markdown, in the default card and in a
// template.
func TestEscaping(t *testing.T) {
	const evil = "@everyone <at>Ana</at> <!channel> **bold** [x](https://evil.example) <b>html</b>"
	e := purchase(evil)
	e.ProductID = "_it_ <@123>"
	e.SubscriberAttributes = map[string]event.Attribute{"$displayName": {Value: "# Boss\n- item"}}
	tmpl := `{"type":"AdaptiveCard","version":"1.4","body":[
		{"type":"TextBlock","wrap":true,"text":{{ printf "%s says hi to %s" (.SubscriberAttribute "$displayName" | markdown) (.UserID | markdown) | toJson }}},
		{"type":"FactSet","facts":[{"title":"Product","value":{{ .ProductID | markdown | toJson }}}]},
		{"type":"TextBlock","text":{{ .Headline | toJson }}}]}`

	tests := []struct {
		name          string
		cfg           Config
		wantMarkdown  []string
		wantPlainRuns []string
	}{
		{
			name:          "default card",
			wantMarkdown:  []string{`\_it\_ \<@123\>`},
			wantPlainRuns: []string{evil, "_it_ <@123>"},
		},
		{
			name: "template",
			cfg:  Config{Template: tmpl},
			wantMarkdown: []string{
				`\# Boss - item says hi to @everyone \<at\>Ana\</at\> \<!channel\> \*\*bold\*\* \[x\](https://evil.example) \<b\>html\</b\>`,
				`\_it\_ \<@123\>`,
				`😺 Customer @everyone \<at\>Ana\</at\> \<!channel\> \*\*bold\*\* \[x\](https://evil.example) \<b\>html\</b\> just started a subscription of \_it\_ \<@123\>`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, reply{Status: 202})
			d := newDestination(t, f.URL, tt.cfg)
			if res := d.Send(context.Background(), destinations.Delivery{Event: e}); res.Outcome != destinations.Delivered {
				t.Fatalf("result %s %q", res.Outcome, res.Message)
			}
			md, runs := cardTexts(cardOf(t, f.Requests()[0].Body))
			for _, w := range tt.wantMarkdown {
				if !contains(md, w) {
					t.Errorf("no markdown text\n%q\namong\n%q", w, md)
				}
			}
			for _, w := range tt.wantPlainRuns {
				if !contains(runs, w) {
					t.Errorf("no TextRun\n%q\namong\n%q", w, runs)
				}
			}
			for _, m := range md {
				for _, bad := range []string{"<at>", "**bold**", "<b>", "[x](", "_it_", "<@123>"} {
					if strings.Contains(m, bad) {
						t.Errorf("markdown text %q contains a live %q", m, bad)
					}
				}
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestOutcomes(t *testing.T) {
	date := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	destinationstest.Run(t, []destinationstest.Case{
		chattest.Case("202 Accepted from Workflows", answer(202, nil, ""), destinations.Delivered, destinations.ReasonNone, "", 0, false),
		chattest.Case("200 1 from a legacy webhook", answer(200, nil, "1"), destinations.Delivered, destinations.ReasonNone, "", 0, false),
		chattest.Case("400 from Workflows", answer(400, nil, `{"error":{"code":"InvalidRequestContent","message":"The request content is not valid and could not be deserialized."}}`),
			destinations.Permanent, destinations.ReasonClientError, "InvalidRequestContent: The request content is not valid and could not be deserialized.", 0, false),
		chattest.Case("400 from a legacy webhook", answer(400, nil, "Summary or Text is required."),
			destinations.Permanent, destinations.ReasonClientError, "Summary or Text is required.", 0, false),
		chattest.Case("401 bad signature", answer(401, nil, `{"error":{"code":"DirectApiInvalidAuthorizationScheme","message":"The provided authorization scheme is invalid."}}`),
			destinations.Permanent, destinations.ReasonClientError, "DirectApiInvalidAuthorizationScheme: The provided authorization scheme is invalid.", 0, false),
		chattest.Case("404 workflow deleted", answer(404, nil, `{"error":{"code":"WorkflowNotFound","message":"The workflow could not be found."}}`),
			destinations.Permanent, destinations.ReasonClientError, "WorkflowNotFound: The workflow could not be found.", 0, false),
		chattest.Case("404 without body", answer(404, nil, ""), destinations.Permanent, destinations.ReasonClientError, "HTTP 404", 0, false),
		chattest.Case("429 with Retry-After seconds", answer(429, map[string]string{"Retry-After": "17"}, `{"error":{"code":"WorkflowTriggerIsThrottled","message":"The trigger is throttled."}}`),
			destinations.Retry, destinations.ReasonRateLimited, "WorkflowTriggerIsThrottled: The trigger is throttled.", 17*time.Second, true),
		chattest.Case("429 with Retry-After date", answer(429, map[string]string{"Retry-After": date}, ""),
			destinations.Retry, destinations.ReasonRateLimited, "HTTP 429", 90*time.Second, true),
		chattest.Case("legacy 200 wrapping a 429", answer(200, nil, "Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP error 429 with ContextId tcid=0,server=msgapi-1,cv=x.0.."),
			destinations.Retry, destinations.ReasonRateLimited, "Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP error 429 with ContextId tcid=0,server=msgapi-1,cv=x.0..", 0, true),
		chattest.Case("legacy 200 wrapping a 413", answer(200, nil, "Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP error 413 with ContextId tcid=1.."),
			destinations.Permanent, destinations.ReasonClientError, "Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP error 413 with ContextId tcid=1..", 0, false),
		chattest.Case("legacy 200 wrapping a 400", answer(200, nil, "Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP error 400 with ContextId MS-CV=x.."),
			destinations.Permanent, destinations.ReasonClientError, "Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP error 400 with ContextId MS-CV=x..", 0, false),
		chattest.Case("legacy 200, Teams not reached", answer(200, nil, "Webhook message delivery failed with error: Error contacting Microsoft Teams endpoint"),
			destinations.Retry, destinations.ReasonServerError, "Webhook message delivery failed with error: Error contacting Microsoft Teams endpoint", 0, false),
		chattest.Case("500", answer(500, nil, `{"error":{"code":"InternalServerError","message":"Encountered an internal server error."}}`),
			destinations.Retry, destinations.ReasonServerError, "InternalServerError: Encountered an internal server error.", 0, false),
		chattest.Case("502 HTML", answer(502, nil, "<html>Bad Gateway</html>\n"), destinations.Retry, destinations.ReasonServerError, "<html>Bad Gateway</html>", 0, false),
		chattest.Case("503 without body", answer(503, nil, ""), destinations.Retry, destinations.ReasonServerError, "HTTP 503", 0, false),
		chattest.Case("302 is not followed", answer(302, map[string]string{"Location": "https://elsewhere.example/"}, ""), destinations.Permanent, destinations.ReasonClientError, "HTTP 302", 0, false),
	}, func(t *testing.T, _ destinationstest.Case, srv *destinationstest.Server) destinations.Result {
		return build(t, srv.URL, time.Second).Send(context.Background(), destinations.Delivery{Event: purchase("u1")})
	})
}

// TestNotFoundRecord is the dispatch record ops see for a deleted flow: the
// URL without its signature, Teams' answer, nothing secret.
func TestNotFoundRecord(t *testing.T) {
	f := newFake(t, reply{Status: 404, Body: `{"error":{"code":"WorkflowNotFound","message":"No flow for sig=` + hookSig + `"}}`})
	d := newDestination(t, f.URL, Config{})
	res := d.Send(context.Background(), destinations.Delivery{Event: purchase("u1")})
	if res.Outcome != destinations.Permanent || res.Message != "WorkflowNotFound: No flow for sig=<secret>" || len(res.Exchanges) != 1 {
		t.Fatalf("result = %s %q with %d exchanges", res.Outcome, res.Message, len(res.Exchanges))
	}
	x := res.Exchanges[0]
	u, _ := url.Parse(f.URL)
	if want := "http://" + u.Host + "/" + secret.Redacted; x.Request.URL != want {
		t.Errorf("URL = %q, want %q", x.Request.URL, want)
	}
	cfg := Config{WebhookURL: secret.Secret(f.URL + hookPath)}
	destinationstest.NoSecret(t, []string{hookSig, hookPath}, res, d, "", fmt.Sprintf("%v %+v %#v", cfg, cfg, cfg))
}

func TestNetworkError(t *testing.T) {
	chattest.CheckUnreachable(t, build, hookSig)
}

func TestTimeout(t *testing.T) { chattest.CheckTimeout(t, build, hookSig) }

func TestValidate(t *testing.T) {
	hook := secret.Secret("https://prod-00.westus.logic.azure.com:443" + hookPath)
	card := func(body string) string {
		return `{"type":"AdaptiveCard","version":"1.4","body":[` + body + `]}`
	}
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"workflows URL", Config{WebhookURL: hook}, ""},
		{"legacy URL", Config{WebhookURL: "https://contoso.webhook.office.com/webhookb2/a@b/IncomingWebhook/c/d"}, ""},
		{"missing", Config{}, "webhook_url: required (the HTTP URL of a Teams Workflows webhook trigger)"},
		{"not a URL, not quoted", Config{WebhookURL: secret.Secret("prod-00.westus.logic.azure.com" + hookPath)}, "webhook_url: must be an absolute http(s) URL"},
		{"credentials in the URL", Config{WebhookURL: "https://u:p@example.org/hook"}, "webhook_url: must be an absolute http(s) URL"},
		{"valid template", Config{WebhookURL: hook, Template: card(`{"type":"Container","style":{{ .Style | toJson }},"items":[{"type":"TextBlock","text":{{ .Headline | toJson }}}]}`)}, ""},
		{"template parse error", Config{WebhookURL: hook, Template: `{{ .UserID }`}, `template: template: teams:1: unexpected "}" in operand`},
		{"template unknown field", Config{WebhookURL: hook, Template: card(`{"type":"TextBlock","text":{{ .Nope | toJson }}}`)},
			`template: sample trial_started: template: teams:1:77: executing "teams" at <.Nope>: can't evaluate field Nope in type teams.TemplateData`},
		{"template without toJson", Config{WebhookURL: hook, Template: card(`{"type":"TextBlock","text":"{{ .UserID }}"}`)},
			`template: sample trial_started: not a JSON Adaptive Card: invalid character 'q' after object key:value pair`},
		{"template without escaping", Config{WebhookURL: hook, Template: card(`{"type":"TextBlock","text":{{ .UserID | toJson }}}`)},
			`template: sample trial_started: body[0] (TextBlock): event text reaches Teams unescaped (*b*): pass it through markdown`},
		{"template unescaped in a fact", Config{WebhookURL: hook, Template: card(`{"type":"Container","items":[{"type":"FactSet","facts":[{"title":"P","value":{{ .ProductID | toJson }}}]}]}`)},
			`template: sample trial_started: body[0].items[0] (FactSet) fact 0 value: event text reaches Teams unescaped (*b*): pass it through markdown`},
		{"template not a card", Config{WebhookURL: hook, Template: `{"type":"message","attachments":[]}`},
			`template: sample trial_started: "type" must be "AdaptiveCard", got "message"`},
		{"template without version", Config{WebhookURL: hook, Template: `{"type":"AdaptiveCard","body":[{"type":"TextBlock","text":"x"}]}`},
			`template: sample trial_started: "version" is required ("1.4" renders everywhere in Teams)`},
		{"template without body", Config{WebhookURL: hook, Template: card(``)}, `template: sample trial_started: "body" must be a non-empty array of elements`},
		{"template unknown element", Config{WebhookURL: hook, Template: card(`{"type":"Textblock","text":"x"}`)},
			`template: sample trial_started: body[0]: unknown element type "Textblock"`},
		{"template empty text", Config{WebhookURL: hook, Template: card(`{"type":"TextBlock","text":{{ .OfferCode | toJson }}}`)},
			`template: sample trial_started: body[0] (TextBlock): text must not be empty`},
		{"template not JSON", Config{WebhookURL: hook, Template: `card`}, `template: sample trial_started: not a JSON Adaptive Card: invalid character 'c' looking for beginning of value`},
		{"template fails for one lifecycle", Config{WebhookURL: hook, Template: card(`{"type":"TextBlock","text":{{ index .Entitlements 0 | markdown | toJson }}}`)},
			`template: sample transferred: template: teams:1:77: executing "teams" at <index .Entitlements 0>: error calling index: reflect: slice index out of range`},
		{"template checked once the URL is right", Config{WebhookURL: "nope", Template: "{{"}, "webhook_url: must be an absolute http(s) URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			chattest.CheckValidate(t, &tt.cfg, tt.want, hookSig)
		})
	}
}

// TestTemplateSend: the template's card, exactly (compacted), in the envelope.
func TestTemplateSend(t *testing.T) {
	f := newFake(t, reply{Status: 202})
	d := newDestination(t, f.URL, Config{Template: `{
		"type": "AdaptiveCard", "version": "1.4",
		"body": [
			{"type": "TextBlock", "weight": "Bolder", "text": {{ printf "%s on %s" .Type .StoreName | toJson }}},
			{"type": "TextBlock", "wrap": true, "text": {{ printf "%s · %s · %s" .Headline .Revenue (.Entitlements | join ", " | markdown) | toJson }}},
			{"type": "FactSet", "facts": [{"title": "Paid", "value": {{ money .PriceInPurchasedCurrency .Currency | default "none" | toJson }}}, {"title": "At", "value": {{ date .EventTimestampMs | toJson }}}]}
		]
	}`})
	res := d.Send(context.Background(), destinations.Delivery{Event: purchase("u1")})
	if res.Outcome != destinations.Delivered {
		t.Fatalf("result %s %q", res.Outcome, res.Message)
	}
	want := `{"type":"message","attachments":[{"contentType":"application/vnd.microsoft.card.adaptive","contentUrl":null,"content":{` +
		`"type":"AdaptiveCard","version":"1.4","body":[` +
		`{"type":"TextBlock","weight":"Bolder","text":"INITIAL_PURCHASE on Google Play"},` +
		`{"type":"TextBlock","wrap":true,"text":"😺 Customer u1 just started a subscription of pro\\_monthly:monthly-autorenew · 9.99 EUR ($10.84) · pro"},` +
		`{"type":"FactSet","facts":[{"title":"Paid","value":"9.99 EUR"},{"title":"At","value":"2026-01-01 00:00 UTC"}]}]}}]}`
	if got := string(f.Requests()[0].Body); got != want {
		t.Errorf("body =\n%s\nwant\n%s", got, want)
	}
}

// TestDefaultCardSamples: the default card is valid for every lifecycle and
// hostile text never reaches its markdown unescaped.
func TestDefaultCardSamples(t *testing.T) {
	for _, s := range chat.Samples() {
		t.Run(s.Name, func(t *testing.T) {
			raw, err := json.Marshal(DefaultCard(s.Event))
			if err != nil {
				t.Fatal(err)
			}
			var card map[string]any
			if err := json.Unmarshal(raw, &card); err != nil {
				t.Fatal(err)
			}
			if err := validateCard(card); err != nil {
				t.Error(err)
			}
			if len(raw) > maxMessage {
				t.Errorf("card of %d bytes", len(raw))
			}
		})
	}
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	_, err := New("t1", Config{}, destinations.Options{})
	if err == nil || err.Error() != "teams: webhook_url: required (the HTTP URL of a Teams Workflows webhook trigger)" {
		t.Errorf("New = %v", err)
	}
}
