package discord

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
// fake webhook and compares the body sent with testdata/golden (indented;
// the bytes inside strings are exactly those sent).
func TestGoldenFixtures(t *testing.T) {
	chattest.CheckGolden(t, build, reply{Status: 200, Body: `{"id":"1"}`}, hookPath+"?wait=true", func(t *testing.T, body []byte) {
		var m Message
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("body is not a message: %v", err)
		}
		if err := validateEmbeds(m.Embeds); err != nil || len(m.Embeds) != 1 {
			t.Errorf("%d embeds: %v", len(m.Embeds), err)
		}
	}, *update)
}

// TestAllowedMentionsAlways: every message, default or templated, tells
// Discord to notify nobody.
func TestAllowedMentionsAlways(t *testing.T) {
	tmpl := `[{"description":{{ .Headline | toJson }}}]`
	for _, cfg := range []Config{{}, {Template: tmpl}} {
		f := newFakeDiscord(t, reply{Status: 204})
		d := newDestination(t, f.URL, cfg)
		if res := d.Send(context.Background(), destinations.Delivery{Event: purchase("@everyone")}); res.Outcome != destinations.Delivered {
			t.Fatalf("result %s %q", res.Outcome, res.Message)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(f.Requests()[0].Body, &m); err != nil {
			t.Fatal(err)
		}
		if got := string(m["allowed_mentions"]); got != `{"parse":[]}` {
			t.Errorf("template %q: allowed_mentions = %s", cfg.Template, got)
		}
	}
}

func TestEscape(t *testing.T) {
	tests := []struct {
		name, in, escape, code, plain string
	}{
		{"plain word", "user_1", `user\_1`, "`user_1`", "user_1"},
		{"everyone", "@everyone", "@\u200beveryone", "`@\u200beveryone`", "@\u200beveryone"},
		{"here", "@here", "@\u200bhere", "`@\u200bhere`", "@\u200bhere"},
		{"user mention", "<@123>", `\<@` + "\u200b" + `123\>`, "`<@\u200b123>`", "<@\u200b123>"},
		{"role mention", "<@&456>", `\<@` + "\u200b" + `&456\>`, "`<@\u200b&456>`", "<@\u200b&456>"},
		{"channel mention", "<#789>", `\<#789\>`, "`<#789>`", "<#789>"},
		{"slack mention", "<!channel>", `\<!channel\>`, "`<!channel>`", "<!channel>"},
		{"bold and italics", "**b** *i* _u_ ~~s~~", `\*\*b\*\* \*i\* \_u\_ \~\~s\~\~`, "`**b** *i* _u_ ~~s~~`", "**b** *i* _u_ ~~s~~"},
		{"masked link", "[click](https://evil.example)", `\[click\](https\://evil.example)`, "`[click](https://evil.example)`", "[click](https://evil.example)"},
		{"spoiler and code", "||x|| `y`", `\|\|x\|\| ` + "\\`y\\`", "`||x|| ˋyˋ`", "||x|| `y`"},
		{"heading on a new line", "a\n# b\r\n> c", `a # b  \> c`, "`a # b  > c`", "a # b  > c"},
		{"html", "<script>alert(1)</script>", `\<script\>alert(1)\</script\>`, "`<script>alert(1)</script>`", "<script>alert(1)</script>"},
		{"backslash", `a\*`, `a\\\*`, "`a\\*`", `a\*`},
		{"heading", "# big", `\# big`, "`# big`", "# big"},
		{"list item", "- item", `\- item`, "`- item`", "- item"},
		{"quote", "> said", `\> said`, "`> said`", "> said"},
		{"numbered list", "12. item", `12\. item`, "`12. item`", "12. item"},
		{"negative amount", "-4.99 GBP (-$6.29)", `\-4.99 GBP (-$6.29)`, "`-4.99 GBP (-$6.29)`", "-4.99 GBP (-$6.29)"},
		{"amount", "9.99 EUR", "9.99 EUR", "`9.99 EUR`", "9.99 EUR"},
		{"dots and dashes inside", "com.example-app.v1", "com.example-app.v1", "`com.example-app.v1`", "com.example-app.v1"},
		{"empty", "", "", "*unknown*", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Escape(tt.in); got != tt.escape {
				t.Errorf("Escape(%q) = %q, want %q", tt.in, got, tt.escape)
			}
			if got := code(tt.in); got != tt.code {
				t.Errorf("code(%q) = %q, want %q", tt.in, got, tt.code)
			}
			if got := plain(tt.in); got != tt.plain {
				t.Errorf("plain(%q) = %q, want %q", tt.in, got, tt.plain)
			}
		})
	}
}

// TestEscaping: hostile app_user_id, product and attributes cannot ping,
// link or format, in the default embed and in a template.
func TestEscaping(t *testing.T) {
	const evil = "@everyone <@123> <!channel> **bold** [x](https://evil.example) <b>html</b>"
	e := purchase(evil)
	e.ProductID = "<@&42>`||spoiler||"
	e.SubscriberAttributes = map[string]event.Attribute{"$displayName": {Value: "@here _Ana_"}}
	tmpl := `[{"title":{{ .SubscriberAttribute "$displayName" | markdown | toJson }},
		"description":{{ printf "%s says hi, %s" (.SubscriberAttribute "$displayName" | code) (.UserID | markdown) | toJson }},
		"footer":{"text":{{ .UserID | plain | toJson }}}}]`

	tests := []struct {
		name string
		cfg  Config
		want []string // exact texts that must be present
	}{
		{
			name: "default embed",
			want: []string{
				"😺 Customer `@\u200beveryone <@\u200b123> <!channel> **bold** [x](https://evil.example) <b>html</b>` just started a subscription of `<@\u200b&42>ˋ||spoiler||`",
				"`<@\u200b&42>ˋ||spoiler||`",
			},
		},
		{
			name: "template",
			cfg:  Config{Template: tmpl},
			want: []string{
				"@\u200bhere \\_Ana\\_",
				"`@\u200bhere _Ana_` says hi, @\u200beveryone \\<@\u200b123\\> \\<!channel\\> \\*\\*bold\\*\\* \\[x\\](https\\://evil.example) \\<b\\>html\\</b\\>",
				"@\u200beveryone <@\u200b123> <!channel> **bold** [x](https://evil.example) <b>html</b>",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeDiscord(t, reply{Status: 200, Body: "{}"})
			d := newDestination(t, f.URL, tt.cfg)
			if res := d.Send(context.Background(), destinations.Delivery{Event: e}); res.Outcome != destinations.Delivered {
				t.Fatalf("result %s %q", res.Outcome, res.Message)
			}
			var m Message
			if err := json.Unmarshal(f.Requests()[0].Body, &m); err != nil {
				t.Fatal(err)
			}
			got := embedTexts(m.Embeds)
			for _, w := range tt.want {
				found := false
				for _, g := range got {
					found = found || g == w
				}
				if !found {
					t.Errorf("no text\n%q\namong\n%q", w, got)
				}
			}
			for _, g := range got {
				for _, bad := range []string{"@everyone", "@here", "<@123>", "<@&42>"} {
					if strings.Contains(g, bad) {
						t.Errorf("text %q contains a live %q", g, bad)
					}
				}
			}
		})
	}
}

// answer is a reply, in the tables' short form.
func answer(status int, header map[string]string, body string) reply {
	return reply{Status: status, Header: header, Body: body}
}

func TestOutcomes(t *testing.T) {
	date := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	destinationstest.Run(t, []destinationstest.Case{
		chattest.Case("200 with the message", answer(200, nil, `{"id":"1","type":0}`), destinations.Delivered, destinations.ReasonNone, "", 0, false),
		chattest.Case("204 without wait", answer(204, nil, ""), destinations.Delivered, destinations.ReasonNone, "", 0, false),
		chattest.Case("404 Unknown Webhook", answer(404, nil, `{"message": "Unknown Webhook", "code": 10015}`),
			destinations.Permanent, destinations.ReasonClientError, "Unknown Webhook (code 10015)", 0, false),
		chattest.Case("401 Invalid Webhook Token", answer(401, nil, `{"message": "Invalid Webhook Token", "code": 50027}`),
			destinations.Permanent, destinations.ReasonClientError, "Invalid Webhook Token (code 50027)", 0, false),
		chattest.Case("403 Missing Permissions", answer(403, nil, `{"message": "Missing Permissions", "code": 50013}`),
			destinations.Permanent, destinations.ReasonClientError, "Missing Permissions (code 50013)", 0, false),
		chattest.Case("400 Invalid Form Body names the field", answer(400, nil, `{"code": 50035, "errors": {"embeds": {"0": {"description": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 4096 or fewer in length."}]}}}}, "message": "Invalid Form Body"}`),
			destinations.Permanent, destinations.ReasonClientError, "Invalid Form Body (code 50035): embeds.0.description: Must be 4096 or fewer in length.", 0, false),
		chattest.Case("429 webhook limit with retry_after", answer(429, map[string]string{"Retry-After": "2", "X-RateLimit-Reset-After": "1.9", "X-RateLimit-Scope": "user"}, `{"message": "You are being rate limited.", "retry_after": 1.234, "global": false}`),
			destinations.Retry, destinations.ReasonRateLimited, "You are being rate limited.", 1234*time.Millisecond, true),
		chattest.Case("429 global", answer(429, map[string]string{"Retry-After": "7", "X-RateLimit-Global": "true", "X-RateLimit-Scope": "global"}, `{"message": "You are being rate limited.", "retry_after": 6.5001, "global": true, "code": 0}`),
			destinations.Retry, destinations.ReasonRateLimited, "global rate limit: You are being rate limited.", 6501*time.Millisecond, true),
		chattest.Case("429 with only X-RateLimit-Reset-After", answer(429, map[string]string{"X-RateLimit-Reset-After": "0.35"}, `{"message": "You are being rate limited."}`),
			destinations.Retry, destinations.ReasonRateLimited, "You are being rate limited.", 350*time.Millisecond, true),
		chattest.Case("429 from Cloudflare, HTML with Retry-After date", answer(429, map[string]string{"Retry-After": date}, "<html>error code: 1015</html>"),
			destinations.Retry, destinations.ReasonRateLimited, "<html>error code: 1015</html>", 90*time.Second, true),
		chattest.Case("429 without any wait", answer(429, nil, ""), destinations.Retry, destinations.ReasonRateLimited, "HTTP 429", 0, true),
		// Beyond any Duration: a long wait (the scheduler caps it), never
		// an overflow into "retry at once".
		chattest.Case("429 with retry_after beyond a Duration", answer(429, nil, `{"message": "You are being rate limited.", "retry_after": 1e300}`),
			destinations.Retry, destinations.ReasonRateLimited, "You are being rate limited.", maxWait, true),
		chattest.Case("429 with X-RateLimit-Reset-After Inf", answer(429, map[string]string{"X-RateLimit-Reset-After": "+Inf"}, `{"message": "You are being rate limited."}`),
			destinations.Retry, destinations.ReasonRateLimited, "You are being rate limited.", maxWait, true),
		chattest.Case("500", answer(500, nil, `{"message": "500: Internal Server Error", "code": 0}`),
			destinations.Retry, destinations.ReasonServerError, "500: Internal Server Error", 0, false),
		chattest.Case("502 HTML", answer(502, nil, "<html>Bad Gateway</html>\n"), destinations.Retry, destinations.ReasonServerError, "<html>Bad Gateway</html>", 0, false),
		chattest.Case("503 without body", answer(503, nil, ""), destinations.Retry, destinations.ReasonServerError, "HTTP 503", 0, false),
		chattest.Case("302 is not followed", answer(302, map[string]string{"Location": "https://elsewhere.example/"}, ""), destinations.Permanent, destinations.ReasonClientError, "HTTP 302", 0, false),
	}, func(t *testing.T, _ destinationstest.Case, srv *destinationstest.Server) destinations.Result {
		return build(t, srv.URL, time.Second).Send(context.Background(), destinations.Delivery{Event: purchase("u1")})
	})
}

// TestUnknownWebhookRecord is the dispatch record ops see for a deleted
// webhook: the URL without its token, Discord's answer, nothing secret.
func TestUnknownWebhookRecord(t *testing.T) {
	// An error page that quotes the path it was asked for.
	f := newFakeDiscord(t, reply{Status: 404, Body: `{"message": "Unknown Webhook", "code": 10015, "path": "` + hookPath + `"}`})
	d := newDestination(t, f.URL, Config{})
	res := d.Send(context.Background(), destinations.Delivery{Event: purchase("u1")})
	if res.Outcome != destinations.Permanent || res.Message != "Unknown Webhook (code 10015)" || len(res.Exchanges) != 1 {
		t.Fatalf("result = %s %q with %d exchanges", res.Outcome, res.Message, len(res.Exchanges))
	}
	x := res.Exchanges[0]
	u, _ := url.Parse(f.URL)
	if want := "http://" + u.Host + "/" + secret.Redacted; x.Request.URL != want {
		t.Errorf("URL = %q, want %q", x.Request.URL, want)
	}
	if want := `{"message": "Unknown Webhook", "code": 10015, "path": "<secret>"}`; x.Response.StatusCode != 404 || x.Response.Body != want {
		t.Errorf("response = %+v, want body %s", x.Response, want)
	}
	cfg := Config{WebhookURL: secret.Secret(f.URL + hookPath)}
	destinationstest.NoSecret(t, []string{hookToken, hookPath}, res, d, "", fmt.Sprintf("%v %+v %#v", cfg, cfg, cfg))
}

func TestNetworkError(t *testing.T) {
	chattest.CheckUnreachable(t, build, hookToken)
}

func TestTimeout(t *testing.T) { chattest.CheckTimeout(t, build, hookToken) }

// TestWebhookURLQuery: a thread_id in the configured URL is kept; wait is ours.
func TestWebhookURLQuery(t *testing.T) {
	f := newFakeDiscord(t, reply{Status: 200, Body: "{}"})
	d, err := New("discord-test", Config{WebhookURL: secret.Secret(f.URL + hookPath + "?thread_id=99&wait=false")}, destinations.Options{})
	if err != nil {
		t.Fatal(err)
	}
	d.Send(context.Background(), destinations.Delivery{Event: purchase("u1")})
	if got := f.Requests()[0].Query; got != "thread_id=99&wait=true" {
		t.Errorf("query = %q", got)
	}
}

func TestValidate(t *testing.T) {
	hook := secret.Secret("https://discord.com" + hookPath)
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"webhook", Config{WebhookURL: hook}, ""},
		{"versioned API path", Config{WebhookURL: secret.Secret("https://discord.com/api/v10/webhooks/1/" + hookToken)}, ""},
		{"missing", Config{}, "webhook_url: required (the channel's webhook URL from Discord's Integrations settings)"},
		{"not a URL, not quoted", Config{WebhookURL: "discord.com/api/webhooks/1/" + hookToken}, "webhook_url: must be an absolute http(s) URL"},
		{"credentials in the URL", Config{WebhookURL: secret.Secret("https://u:p@discord.com" + hookPath)}, "webhook_url: must be an absolute http(s) URL"},
		{"a Slack URL", Config{WebhookURL: "https://hooks.slack.com/services/T0/B0/" + hookToken},
			"webhook_url: is not a Discord webhook URL (https://discord.com/api/webhooks/<id>/<token>)"},
		{"valid template", Config{WebhookURL: hook, Template: `[{"description":{{ .Headline | toJson }},"color":{{ .Color }}}]`}, ""},
		{"template parse error", Config{WebhookURL: hook, Template: `[{{ .UserID }]`},
			`template: template: discord:1: unexpected "}" in operand`},
		{"template unknown field", Config{WebhookURL: hook, Template: `[{"description":{{ .Nope | toJson }}}]`},
			`template: sample trial_started: template: discord:1:19: executing "discord" at <.Nope>: can't evaluate field Nope in type discord.TemplateData`},
		{"template without toJson", Config{WebhookURL: hook, Template: `[{"description":"{{ .UserID }}"}]`},
			`template: sample trial_started: not a JSON array of embeds: invalid character 'q' after object key:value pair`},
		{"template without escaping", Config{WebhookURL: hook, Template: `[{"description":{{ .UserID | toJson }}}]`},
			`template: sample trial_started: event text reaches Discord unescaped (@everyone): pass it through markdown, code or plain`},
		{"template unescaped in the footer", Config{WebhookURL: hook, Template: `[{"title":"x","footer":{"text":{{ .ProductID | toJson }}}}]`},
			`template: sample trial_started: event text reaches Discord unescaped (@everyone): pass it through markdown, code or plain`},
		{"template unknown embed key", Config{WebhookURL: hook, Template: `[{"descripton":"x"}]`},
			`template: sample trial_started: not a JSON array of embeds: json: unknown field "descripton"`},
		{"template not an array", Config{WebhookURL: hook, Template: `{"description":"x"}`},
			`template: sample trial_started: not a JSON array of embeds: json: cannot unmarshal object into Go value of type []discord.Embed`},
		{"template no embeds", Config{WebhookURL: hook, Template: `[]`}, `template: sample trial_started: 0 embeds, Discord allows 1 to 10`},
		{"template empty embed", Config{WebhookURL: hook, Template: `[{"color":1}]`}, `template: sample trial_started: embed 0: empty: set a title, description or fields`},
		{"template empty field", Config{WebhookURL: hook, Template: `[{"fields":[{"name":"Offer","value":{{ .OfferCode | toJson }}}]}]`},
			`template: sample trial_started: embed 0: field 0: name and value must not be empty`},
		{"template title too long", Config{WebhookURL: hook, Template: `[{"title":"{{ printf "%0300d" 7 }}"}]`},
			`template: sample trial_started: embed 0: title: 300 characters, Discord allows 256`},
		{"template bad color", Config{WebhookURL: hook, Template: `[{"title":"x","color":16777216}]`},
			`template: sample trial_started: embed 0: color 16777216 is not an RGB value (0 to 16777215)`},
		{"template fails for one lifecycle", Config{WebhookURL: hook, Template: `[{"description":{{ index .Entitlements 0 | markdown | toJson }}}]`},
			`template: sample transferred: template: discord:1:19: executing "discord" at <index .Entitlements 0>: error calling index: reflect: slice index out of range`},
		{"template checked once the URL is right", Config{WebhookURL: "nope", Template: "[{{"}, "webhook_url: must be an absolute http(s) URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			chattest.CheckValidate(t, &tt.cfg, tt.want, hookToken)
		})
	}
}

// TestTemplateSend: the template's embeds, exactly, with allowed_mentions.
func TestTemplateSend(t *testing.T) {
	f := newFakeDiscord(t, reply{Status: 200, Body: "{}"})
	d := newDestination(t, f.URL, Config{Template: `[{
		"title": {{ printf "%s on %s" .Type .StoreName | toJson }},
		"description": {{ printf "%s · %s · %s" .Headline .Revenue (.Entitlements | join ", " | markdown) | toJson }},
		"color": {{ .Color }},
		"timestamp": {{ .Timestamp | toJson }},
		"fields": [{"name": "Paid", "value": {{ money .PriceInPurchasedCurrency .Currency | default "none" | toJson }}, "inline": true}],
		"footer": {"text": {{ date .EventTimestampMs | toJson }}}
	}]`})
	res := d.Send(context.Background(), destinations.Delivery{Event: purchase("u1")})
	if res.Outcome != destinations.Delivered {
		t.Fatalf("result %s %q", res.Outcome, res.Message)
	}
	want := `{"embeds":[{"title":"INITIAL_PURCHASE on Google Play",` +
		`"description":"😺 Customer ` + "`u1`" + ` just started a subscription of ` + "`pro_monthly:monthly-autorenew`" + ` · 9.99 EUR ($10.84) · pro",` +
		`"color":3191446,"timestamp":"2026-01-01T00:00:03Z","footer":{"text":"2026-01-01 00:00 UTC"},` +
		`"fields":[{"name":"Paid","value":"9.99 EUR","inline":true}]}],"allowed_mentions":{"parse":[]}}`
	if got := string(f.Requests()[0].Body); got != want {
		t.Errorf("body =\n%s\nwant\n%s", got, want)
	}
}

// TestDefaultMessageSamples: the default embed is valid for every
// lifecycle, and hostile event text never reaches it live.
func TestDefaultMessageSamples(t *testing.T) {
	for _, s := range chat.Samples() {
		t.Run(s.Name, func(t *testing.T) {
			m := DefaultMessage(s.Event)
			if err := validateEmbeds(m.Embeds); err != nil {
				t.Error(err)
			}
			for _, text := range embedTexts(m.Embeds) {
				if leak := chat.Leaks(text, "@everyone", "<@U0>", "*b*"); leak != "" && !strings.Contains(text, "`") {
					t.Errorf("unescaped %s in %q", leak, text)
				}
				if leak := chat.Leaks(text, "@everyone", "<@U0>"); leak != "" {
					t.Errorf("live mention %s in %q", leak, text)
				}
			}
		})
	}
}

// TestDefaultMessageLongValues: values are clipped so the embed stays
// within Discord's limits.
func TestDefaultMessageLongValues(t *testing.T) {
	e := purchase(strings.Repeat("u", 5000))
	e.ProductID = strings.Repeat("p", 5000)
	e.Entitlements = []string{strings.Repeat("e", 3000), "b", "c", "d", "e", "f", "g"}
	m := DefaultMessage(e)
	if err := validateEmbeds(m.Embeds); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(m.Embeds[0].Fields[1].Value, ", and 2 more") {
		t.Errorf("entitlements = %q", m.Embeds[0].Fields[1].Value)
	}
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	_, err := New("d1", Config{}, destinations.Options{})
	if err == nil || err.Error() != "discord: webhook_url: required (the channel's webhook URL from Discord's Integrations settings)" {
		t.Errorf("New = %v", err)
	}
}
