package slack

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	slackapi "github.com/slack-go/slack"

	"github.com/rcrouter/rcrouter/destinations"
	"github.com/rcrouter/rcrouter/destinations/destinationstest"
	"github.com/rcrouter/rcrouter/destinations/internal/chat"
	"github.com/rcrouter/rcrouter/internal/event"
	"github.com/rcrouter/rcrouter/internal/revenuecat"
	"github.com/rcrouter/rcrouter/internal/secret"
	"github.com/rcrouter/rcrouter/internal/testutil"
)

// TestGoldenFixtures posts every fixture of both fixture directories to a
// fake incoming webhook and compares the exact message (blocks and text)
// with testdata/golden. One fixture is posted again with a project_id.
func TestGoldenFixtures(t *testing.T) {
	type run struct {
		fx        testutil.Fixture
		projectID string
		golden    string
	}
	var runs []run
	for _, fx := range testutil.Fixtures(t) {
		runs = append(runs, run{fx, "", fx.Dir + "/" + fx.Stem() + ".json"})
		if fx.Stem() == "initial_purchase_paid_eur" {
			runs = append(runs, run{fx, "proj1a2b3c4d", fx.Dir + "/" + fx.Stem() + ".project_id.json"})
		}
	}
	f := destinationstest.NewServer(t, destinationstest.Reply{Status: 200, Body: "ok"})
	for _, r := range runs {
		t.Run(r.golden, func(t *testing.T) {
			e, err := revenuecat.Decode(r.fx.Body)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			d := newWebhookDestination(t, f.URL, Config{ProjectID: r.projectID})
			before := len(f.Requests())
			res := d.Send(context.Background(), destinations.Delivery{Key: "k", Event: e})
			if res.Outcome != destinations.Delivered || len(res.Exchanges) != 1 {
				t.Fatalf("result = %s %q with %d exchanges", res.Outcome, res.Message, len(res.Exchanges))
			}
			got := f.Requests()[before:]
			if len(got) != 1 || got[0].Path != webhookPath {
				t.Fatalf("webhook got %d requests", len(got))
			}
			if res.Exchanges[0].Request.Body != string(got[0].Body) {
				t.Errorf("exchange body differs from what was sent:\n%s\n%s", res.Exchanges[0].Request.Body, got[0].Body)
			}
			var m slackapi.WebhookMessage
			if err := json.Unmarshal(got[0].Body, &m); err != nil || m.Blocks == nil {
				t.Fatalf("body is not a webhook message with blocks: %v", err)
			}
			if err := validateBlocks(m.Blocks.BlockSet); err != nil {
				t.Errorf("blocks invalid: %v", err)
			}
			var out bytes.Buffer
			if err := json.Indent(&out, got[0].Body, "", "  "); err != nil {
				t.Fatal(err)
			}
			out.WriteByte('\n')
			testutil.Golden(t, filepath.Join("testdata", "golden", filepath.FromSlash(r.golden)), out.Bytes(), *update)
		})
	}
}

// texts collects every "text" string of a JSON message, at any depth.
func texts(t *testing.T, body []byte) []string {
	t.Helper()
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	var out []string
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && k == "text" {
					out = append(out, s)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(v)
	return out
}

// TestEscaping: markup in event text (app_user_id, attributes, product)
// cannot ping, link or format, in the default message and in a template.
func TestEscaping(t *testing.T) {
	const evil = "<script>alert(1)</script> <!channel> *bold* & `x`"
	e := purchase(evil)
	e.ProductID = "<@U123>|<https://evil.example|click>"
	e.SubscriberAttributes = map[string]event.Attribute{"$displayName": {Value: "<!here> *Ana*"}}
	template := `[{"type":"section","text":{"type":"mrkdwn","text":{{ printf "%s says hi, %s" (.SubscriberAttribute "$displayName" | code) (.UserID | mrkdwn) | toJson }}}}]`

	tests := []struct {
		name      string
		cfg       Config
		want      []string // exact text objects that must be present
		forbidden []string
	}{
		{
			name: "default message",
			cfg:  Config{},
			want: []string{
				":smiley_cat: Customer `&lt;script&gt;alert(1)&lt;/script&gt; &lt;!channel&gt; *bold* &amp; ˋxˋ` just started a subscription of `&lt;@U123&gt;|&lt;https://evil.example|click&gt;`",
				"Customer &lt;script&gt;alert(1)&lt;/script&gt; &lt;!channel&gt; *bold* &amp; `x` just started a subscription of &lt;@U123&gt;|&lt;https://evil.example|click&gt;",
			},
		},
		{
			name: "default message with a dashboard link",
			cfg:  Config{ProjectID: "proj&1"},
			want: []string{
				":smiley_cat: Customer <https://app.revenuecat.com/customers/proj&amp;1/%3Cscript%3Ealert%281%29%3C%2Fscript%3E%20%3C%21channel%3E%20%2Abold%2A%20&amp;%20%60x%60|&lt;script&gt;alert(1)&lt;/script&gt; &lt;!channel&gt; *bold* &amp; `x`> just started a subscription of `&lt;@U123&gt;|&lt;https://evil.example|click&gt;`",
			},
		},
		{
			name: "template",
			cfg:  Config{Template: template},
			want: []string{
				"`&lt;!here&gt; *Ana*` says hi, &lt;script&gt;alert(1)&lt;/script&gt; &lt;!channel&gt; *bold* &amp; `x`",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := destinationstest.NewServer(t, destinationstest.Reply{Status: 200, Body: "ok"})
			d := newWebhookDestination(t, f.URL, tt.cfg)
			if res := d.Send(context.Background(), destinations.Delivery{Event: e}); res.Outcome != destinations.Delivered {
				t.Fatalf("result %s %q", res.Outcome, res.Message)
			}
			body := f.Requests()[0].Body
			got := texts(t, body)
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
				for _, bad := range []string{"<script>", "<!channel>", "<!here>", "<@U123>", "<https://evil"} {
					if strings.Contains(g, bad) {
						t.Errorf("text %q contains raw %q", g, bad)
					}
				}
			}
		})
	}
}

func TestWebhookOutcomes(t *testing.T) {
	date := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	destinationstest.Run(t, []destinationstest.Case{
		{Name: "200 ok", Replies: []destinationstest.Reply{destinationstest.Reply{Status: 200, Body: "ok"}}, Outcome: destinations.Delivered},
		{Name: "400 invalid_payload", Replies: []destinationstest.Reply{destinationstest.Reply{Status: 400, Body: "invalid_payload"}}, Outcome: destinations.Permanent, Reason: destinations.ReasonClientError, Message: "invalid_payload"},
		{Name: "400 invalid_blocks", Replies: []destinationstest.Reply{destinationstest.Reply{Status: 400, Body: "invalid_blocks"}}, Outcome: destinations.Permanent, Reason: destinations.ReasonClientError, Message: "invalid_blocks"},
		{Name: "403 action_prohibited", Replies: []destinationstest.Reply{destinationstest.Reply{Status: 403, Body: "action_prohibited"}}, Outcome: destinations.Permanent, Reason: destinations.ReasonClientError, Message: "action_prohibited"},
		{Name: "404 channel_not_found", Replies: []destinationstest.Reply{destinationstest.Reply{Status: 404, Body: "channel_not_found"}}, Outcome: destinations.Permanent, Reason: destinations.ReasonClientError, Message: "channel_not_found"},
		{Name: "410 channel_is_archived", Replies: []destinationstest.Reply{destinationstest.Reply{Status: 410, Body: "channel_is_archived"}}, Outcome: destinations.Permanent, Reason: destinations.ReasonClientError, Message: "channel_is_archived"},
		{Name: "429 with Retry-After seconds", Replies: []destinationstest.Reply{destinationstest.Reply{Status: 429, Header: map[string]string{"Retry-After": "7"}, Body: "rate_limited"}}, Outcome: destinations.Retry, Reason: destinations.ReasonRateLimited, Message: "rate_limited", RetryAfter: 7 * time.Second, Within: 2 * time.Second, Pause: true},
		{Name: "429 with Retry-After date", Replies: []destinationstest.Reply{destinationstest.Reply{Status: 429, Header: map[string]string{"Retry-After": date}}}, Outcome: destinations.Retry, Reason: destinations.ReasonRateLimited, Message: "rate_limited", RetryAfter: 90 * time.Second, Within: 2 * time.Second, Pause: true},
		{Name: "429 without Retry-After", Replies: []destinationstest.Reply{destinationstest.Reply{Status: 429, Body: "slow down"}}, Outcome: destinations.Retry, Reason: destinations.ReasonRateLimited, Message: "slow down", Pause: true},
		{Name: "500 rollup_error", Replies: []destinationstest.Reply{destinationstest.Reply{Status: 500, Body: "rollup_error"}}, Outcome: destinations.Retry, Reason: destinations.ReasonServerError, Message: "rollup_error"},
		{Name: "503 without body", Replies: []destinationstest.Reply{destinationstest.Reply{Status: 503}}, Outcome: destinations.Retry, Reason: destinations.ReasonServerError, Message: "HTTP 503"},
		{Name: "302 is not followed", Replies: []destinationstest.Reply{destinationstest.Reply{Status: 302, Header: map[string]string{"Location": "https://elsewhere.example/"}}}, Outcome: destinations.Permanent, Reason: destinations.ReasonClientError, Message: "HTTP 302"},
	}, func(t *testing.T, _ destinationstest.Case, f *destinationstest.Server) destinations.Result {
		// One request per Send: Slack's answers are never retried inside it.
		return newWebhookDestination(t, f.URL, Config{}).Send(context.Background(), destinations.Delivery{Event: purchase("u1")})
	})
}

// TestChannelNotFound is the dispatch record ops see for a deleted channel.
func TestChannelNotFound(t *testing.T) {
	f := destinationstest.NewServer(t, destinationstest.Reply{Status: 404, Body: "channel_not_found"})
	d := newWebhookDestination(t, f.URL, Config{})
	res := d.Send(context.Background(), destinations.Delivery{Event: purchase("u1")})
	if res.Outcome != destinations.Permanent || res.Message != "channel_not_found" {
		t.Fatalf("result = %s %q, want permanent channel_not_found", res.Outcome, res.Message)
	}
	if len(res.Exchanges) != 1 {
		t.Fatalf("%d exchanges, want 1", len(res.Exchanges))
	}
	x := res.Exchanges[0]
	u, _ := url.Parse(f.URL)
	if want := "http://" + u.Host + "/" + secret.Redacted; x.Request.URL != want {
		t.Errorf("URL = %q, want %q", x.Request.URL, want)
	}
	if x.Response.StatusCode != 404 || x.Response.Body != "channel_not_found" {
		t.Errorf("response = %+v", x.Response)
	}
	destinationstest.NoSecret(t, []string{webhookPath, "s3cr3tWebhookToken"}, res, d, "")
}

func TestNetworkError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL
	srv.Close() // nothing listens any more
	d := newWebhookDestination(t, base, Config{})
	res := d.Send(context.Background(), destinations.Delivery{Event: purchase("u1")})
	if res.Outcome != destinations.Retry || res.Reason != destinations.ReasonNetwork ||
		!strings.Contains(res.Message, "connection refused") {
		t.Errorf("result = %s/%s %q", res.Outcome, res.Reason, res.Message)
	}
	destinationstest.NoSecret(t, []string{webhookPath, "s3cr3tWebhookToken"}, res, d, "")
	if len(res.Exchanges) != 1 || res.Exchanges[0].Response.Error == "" {
		t.Errorf("result = %+v", res)
	}
}

func TestTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	d, err := New("slack-test", Config{WebhookURL: secret.Secret(srv.URL + webhookPath)},
		destinations.Options{Logger: quietLogger(), Timeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	res := d.Send(context.Background(), destinations.Delivery{Event: purchase("u1")})
	if res.Outcome != destinations.Retry || res.Reason != destinations.ReasonTimeout {
		t.Errorf("result = %s/%s %q, want retry/timeout", res.Outcome, res.Reason, res.Message)
	}
	destinationstest.NoSecret(t, []string{webhookPath, "s3cr3t"}, res, d, "")
}

func TestBotOutcomes(t *testing.T) {
	destinationstest.Run(t, []destinationstest.Case{
		{Name: "ok", Replies: []destinationstest.Reply{destinationstest.Reply{Status: 200, Body: `{"ok":true,"channel":"C0SALES","ts":"1767225603.000100"}`}}, Outcome: destinations.Delivered},
		{Name: "channel_not_found", Replies: []destinationstest.Reply{destinationstest.Reply{Status: 200, Body: `{"ok":false,"error":"channel_not_found"}`}}, Outcome: destinations.Permanent, Reason: destinations.ReasonRejected, Message: "channel_not_found"},
		{Name: "not_in_channel", Replies: []destinationstest.Reply{destinationstest.Reply{Status: 200, Body: `{"ok":false,"error":"not_in_channel"}`}}, Outcome: destinations.Permanent, Reason: destinations.ReasonRejected, Message: "not_in_channel"},
		{Name: "invalid_auth", Replies: []destinationstest.Reply{destinationstest.Reply{Status: 200, Body: `{"ok":false,"error":"invalid_auth"}`}}, Outcome: destinations.Permanent, Reason: destinations.ReasonRejected, Message: "invalid_auth"},
		{Name: "ratelimited in the body", Replies: []destinationstest.Reply{destinationstest.Reply{Status: 200, Header: map[string]string{"Retry-After": "4"}, Body: `{"ok":false,"error":"ratelimited"}`}}, Outcome: destinations.Retry, Reason: destinations.ReasonRateLimited, Message: "ratelimited", RetryAfter: 4 * time.Second, Pause: true},
		{Name: "HTTP 429", Replies: []destinationstest.Reply{destinationstest.Reply{Status: 429, Header: map[string]string{"Retry-After": "3"}, Body: `{"ok":false,"error":"ratelimited"}`}}, Outcome: destinations.Retry, Reason: destinations.ReasonRateLimited, Message: `{"ok":false,"error":"ratelimited"}`, RetryAfter: 3 * time.Second, Pause: true},
		{Name: "internal_error", Replies: []destinationstest.Reply{destinationstest.Reply{Status: 200, Body: `{"ok":false,"error":"internal_error"}`}}, Outcome: destinations.Retry, Reason: destinations.ReasonServerError, Message: "internal_error"},
		{Name: "HTTP 500", Replies: []destinationstest.Reply{destinationstest.Reply{Status: 500, Body: "<html>oops</html>"}}, Outcome: destinations.Retry, Reason: destinations.ReasonServerError, Message: "<html>oops</html>"},
	}, func(t *testing.T, _ destinationstest.Case, f *destinationstest.Server) destinations.Result {
		d := newBotDestination(t, f.URL, Config{})
		res := d.Send(context.Background(), destinations.Delivery{Event: purchase("u1")})
		reqs := f.Requests()
		if len(reqs) != 1 || len(res.Exchanges) != 1 {
			t.Fatalf("%d requests, %d exchanges; want 1 and 1", len(reqs), len(res.Exchanges))
		}
		r := reqs[0]
		if r.Path != "/api/chat.postMessage" || r.Header.Get("Authorization") != "Bearer "+testToken {
			t.Errorf("request %s with Authorization %q", r.Path, r.Header.Get("Authorization"))
		}
		form, err := url.ParseQuery(string(r.Body))
		if err != nil {
			t.Fatal(err)
		}
		if form.Has("token") || form.Get("channel") != "C0SALES" || form.Get("unfurl_links") != "false" ||
			form.Get("text") != "Customer u1 just started a subscription of pro_monthly:monthly-autorenew" {
			t.Errorf("form = %v", form)
		}
		var blocks slackapi.Blocks
		if err := json.Unmarshal([]byte(form.Get("blocks")), &blocks); err != nil || validateBlocks(blocks.BlockSet) != nil {
			t.Errorf("blocks %s: %v", form.Get("blocks"), err)
		}
		x := res.Exchanges[0]
		if x.Request.Headers["Authorization"] != secret.Redacted || x.Request.URL != f.URL+"/api/chat.postMessage" {
			t.Errorf("exchange request = %+v", x.Request)
		}
		destinationstest.NoSecret(t, []string{testToken}, res, d, "")
		return res
	})
}

func TestValidate(t *testing.T) {
	hook := secret.Secret("https://hooks.slack.com/services/T0/B0/secretpart")
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"webhook", Config{WebhookURL: hook}, ""},
		{"bot", Config{Token: "xoxb-1", Channel: "C1", APIURL: "http://127.0.0.1:9/api/"}, ""},
		{"nothing", Config{}, "set webhook_url (incoming webhook), or token and channel (bot)"},
		{"both modes", Config{WebhookURL: hook, Token: "xoxb-1", Channel: "C1"}, "set either webhook_url, or token and channel, not both"},
		{"webhook and channel", Config{WebhookURL: hook, Channel: "C1"}, "set either webhook_url, or token and channel, not both"},
		{"token without channel", Config{Token: "xoxb-1"}, "channel: required with token"},
		{"channel without token", Config{Channel: "C1"}, "token: required with channel"},
		{"token with a line break", Config{Token: "xoxb-1\nX: y", Channel: "C1"}, "token: must be one line (it contains CR or LF)"},
		{"webhook not a URL, not quoted", Config{WebhookURL: "hooks.slack.com/services/secretpart"}, "webhook_url: must be an absolute http(s) URL"},
		{"api_url not a URL", Config{Token: "xoxb-1", Channel: "C1", APIURL: "slack.com/api"}, `api_url: must be an absolute http(s) URL, got "slack.com/api"`},
		// Issue #16: URL credentials are never printed.
		{"api_url with credentials", Config{Token: "xoxb-1", Channel: "C1", APIURL: "https://u:secretpart@slack.example/api/"}, "api_url: must not hold credentials (user:password@); the bot authenticates with token"},
		{"api_url with credentials and no scheme", Config{Token: "xoxb-1", Channel: "C1", APIURL: "u:secretpart@slack.example/api/"}, `api_url: must be an absolute http(s) URL, got "<secret>@slack.example/api/"`},
		{"webhook_url with credentials", Config{WebhookURL: "https://u:secretpart@hooks.slack.com/services/x"}, "webhook_url: must be an absolute http(s) URL"},
		{"valid template", Config{WebhookURL: hook, Template: `[{"type":"section","text":{"type":"mrkdwn","text":{{ .Headline | toJson }}}}]`}, ""},
		{"template parse error", Config{WebhookURL: hook, Template: `[{{ .UserID }]`},
			`template: template: slack:1: unexpected "}" in operand`},
		{"template unknown field", Config{WebhookURL: hook, Template: `[{"type":"divider","x":{{ .Nope | toJson }}}]`},
			`template: sample trial_started: template: slack:1:26: executing "slack" at <.Nope>: can't evaluate field Nope in type slack.TemplateData`},
		{"template without toJson", Config{WebhookURL: hook, Template: `[{"type":"section","text":{"type":"mrkdwn","text":"{{ .UserID }}"}}]`},
			`template: sample trial_started: not a JSON array of blocks: invalid character 'q' after object key:value pair`},
		{"template without mrkdwn escaping", Config{WebhookURL: hook, Template: `[{"type":"section","text":{"type":"mrkdwn","text":{{ .UserID | toJson }}}}]`},
			`template: sample trial_started: event text reaches Slack unescaped (<!channel>): pass it through mrkdwn or code`},
		{"template not an array", Config{WebhookURL: hook, Template: `{"type":"divider"}`},
			`template: sample trial_started: not a JSON array of blocks: json: cannot unmarshal object into Go value of type []json.RawMessage`},
		{"template unknown block", Config{WebhookURL: hook, Template: `[{"type":"sektion","text":{"type":"mrkdwn","text":"hi"}}]`},
			`template: sample trial_started: block 0 (sektion): unknown block type`},
		{"template empty text", Config{WebhookURL: hook, Template: `[{"type":"section","text":{"type":"mrkdwn","text":{{ .OfferCode | toJson }}}}]`},
			`template: sample trial_started: block 0 (section): text: text must have a minimum length of 1`},
		{"template no blocks", Config{WebhookURL: hook, Template: `[]`}, `template: sample trial_started: no blocks`},
		{"template header in mrkdwn", Config{WebhookURL: hook, Template: `[{"type":"header","text":{"type":"mrkdwn","text":"x"}}]`},
			`template: sample trial_started: block 0 (header): text must be plain_text`},
		{"template fails for one lifecycle", Config{WebhookURL: hook, Template: `[{"type":"section","text":{"type":"mrkdwn","text":{{ index .Entitlements 0 | mrkdwn | toJson }}}}]`},
			`template: sample transferred: template: slack:1:53: executing "slack" at <index .Entitlements 0>: error calling index: reflect: slice index out of range`},
		{"several problems at once", Config{Token: "xoxb-1", APIURL: "nope", Template: "[{{"},
			"channel: required with token\n" + `api_url: must be an absolute http(s) URL, got "nope"` + "\n" + `template: template: slack:1: unclosed action`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate().Err()
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("Validate() =\n%s\nwant\n%s", got, tt.want)
			}
			if strings.Contains(got, "secretpart") {
				t.Errorf("error quotes the webhook URL: %s", got)
			}
		})
	}
}

// TestTemplateSend: blocks from the template, text from the default phrase.
func TestTemplateSend(t *testing.T) {
	f := destinationstest.NewServer(t, destinationstest.Reply{Status: 200, Body: "ok"})
	d := newWebhookDestination(t, f.URL, Config{Template: `[
		{"type":"header","text":{"type":"plain_text","text":{{ printf "%s on %s" .Type .Store | toJson }}}},
		{"type":"section","text":{"type":"mrkdwn","text":{{ printf "%s · %s · %s" .Headline .Revenue (.Entitlements | join ", " | mrkdwn) | toJson }}}},
		{"type":"context","elements":[{"type":"mrkdwn","text":{{ printf "%s %s" (date .EventTimestampMs) (.Price | toJson) | toJson }}}]}
	]`})
	res := d.Send(context.Background(), destinations.Delivery{Event: purchase("u1")})
	if res.Outcome != destinations.Delivered {
		t.Fatalf("result %s %q", res.Outcome, res.Message)
	}
	var m struct {
		Text   string            `json:"text"`
		Blocks []json.RawMessage `json:"blocks"`
	}
	if err := json.Unmarshal(f.Requests()[0].Body, &m); err != nil {
		t.Fatal(err)
	}
	want := []string{
		`{"type":"header","text":{"type":"plain_text","text":"INITIAL_PURCHASE on PLAY_STORE"}}`,
		`{"type":"section","text":{"type":"mrkdwn","text":":smiley_cat: Customer ` + "`u1`" + ` just started a subscription of ` + "`pro_monthly:monthly-autorenew`" + ` · 9.99 EUR ($10.84) · pro"}}`,
		`{"type":"context","elements":[{"type":"mrkdwn","text":"2026-01-01 00:00 UTC 10.84"}]}`,
	}
	if m.Text != "Customer u1 just started a subscription of pro_monthly:monthly-autorenew" || len(m.Blocks) != len(want) {
		t.Fatalf("message = %s", f.Requests()[0].Body)
	}
	for i, w := range want {
		if string(m.Blocks[i]) != w {
			t.Errorf("block %d =\n%s\nwant\n%s", i, m.Blocks[i], w)
		}
	}
}

// TestDefaultMessageSamples: the default message is valid Block Kit for
// every lifecycle, and hostile event text never reaches it unescaped.
func TestDefaultMessageSamples(t *testing.T) {
	for _, s := range chat.Samples() {
		t.Run(s.Name, func(t *testing.T) {
			for _, project := range []string{"", "proj"} {
				m := DefaultMessage(s.Event, project)
				if err := validateBlocks(m.Blocks); err != nil {
					t.Errorf("project %q: %v", project, err)
				}
				if leak := mentionIn(m.Blocks); leak != "" {
					t.Errorf("project %q: unescaped %s", project, leak)
				}
				if m.Text == "" || strings.Contains(m.Text, "<!channel>") {
					t.Errorf("text = %q", m.Text)
				}
			}
		})
	}
}

func TestFallbackText(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	tests := []struct {
		name string
		e    event.Event
		want string
	}{
		{"trial started", event.Event{Type: "INITIAL_PURCHASE", PeriodType: "TRIAL", AppUserID: "7821", ProductID: "monthly"}, "Customer 7821 just started a free trial of monthly"},
		{"subscription", event.Event{Type: "INITIAL_PURCHASE", AppUserID: "7821", ProductID: "monthly"}, "Customer 7821 just started a subscription of monthly"},
		{"trial converted", event.Event{Type: "RENEWAL", IsTrialConversion: true, AppUserID: "7821", ProductID: "monthly"}, "Customer 7821 just converted from a free trial of monthly"},
		{"trial cancelled", event.Event{Type: "CANCELLATION", PeriodType: "TRIAL", AppUserID: "7821", ProductID: "monthly"}, "Customer 7821 just cancelled their free trial of monthly"},
		{"renewal", event.Event{Type: "RENEWAL", AppUserID: "7821", ProductID: "monthly"}, "Customer 7821 just renewed their subscription of monthly"},
		{"cancellation", event.Event{Type: "CANCELLATION", CancelReason: "UNSUBSCRIBE", AppUserID: "7821", ProductID: "monthly"}, "Customer 7821 just cancelled their subscription of monthly"},
		{"refund", event.Event{Type: "CANCELLATION", CancelReason: "CUSTOMER_SUPPORT", Price: f(-1), AppUserID: "7821", ProductID: "monthly"}, "Customer 7821 got a refund for monthly"},
		{"uncancellation", event.Event{Type: "UNCANCELLATION", AppUserID: "7821", ProductID: "monthly"}, "Customer 7821 just uncancelled their subscription of monthly"},
		{"non-renewing", event.Event{Type: "NON_RENEWING_PURCHASE", AppUserID: "7821", ProductID: "coins"}, "Customer 7821 just purchased coins"},
		{"billing issue", event.Event{Type: "BILLING_ISSUE", AppUserID: "7821", ProductID: "monthly"}, "Customer 7821 got a billing issue on monthly"},
		{"product change", event.Event{Type: "PRODUCT_CHANGE", AppUserID: "7821", ProductID: "monthly", NewProductID: "yearly"}, "Customer 7821 got a product change from monthly to yearly"},
		{"expiration", event.Event{Type: "EXPIRATION", AppUserID: "7821", ProductID: "monthly"}, "Customer 7821's subscription of monthly just expired"},
		{"paused", event.Event{Type: "SUBSCRIPTION_PAUSED", AppUserID: "7821", ProductID: "monthly"}, "Customer 7821 just paused their subscription of monthly"},
		{"extended", event.Event{Type: "SUBSCRIPTION_EXTENDED", AppUserID: "7821", ProductID: "monthly"}, "Customer 7821 got their subscription of monthly extended"},
		{"transfer", event.Event{Type: "TRANSFER", TransferredFrom: []string{"a", "b"}, TransferredTo: []string{"c"}}, "Purchases were transferred from a, b to c"},
		{"test", event.Event{Type: "TEST", Environment: "SANDBOX", AppUserID: "x"}, "[Sandbox] Test event from RevenueCat"},
		{"other with product", event.Event{Type: "TEMPORARY_ENTITLEMENT_GRANT", AppUserID: "7821", ProductID: "monthly"}, "Customer 7821 got event TEMPORARY_ENTITLEMENT_GRANT for monthly"},
		{"other without product", event.Event{Type: "SUBSCRIBER_ALIAS", AppUserID: "7821"}, "Customer 7821 got event SUBSCRIBER_ALIAS"},
		{"sandbox", event.Event{Type: "RENEWAL", Environment: "SANDBOX", AppUserID: "7821", ProductID: "monthly"}, "[Sandbox] Customer 7821 just renewed their subscription of monthly"},
		{"unknown user and product", event.Event{Type: "RENEWAL"}, "Customer unknown just renewed their subscription of unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := tt.e
			revenuecat.Normalize(&e)
			if got := FallbackText(&e); got != tt.want {
				t.Errorf("FallbackText = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	_, err := New("sales", Config{Token: "xoxb-secret-token"}, destinations.Options{})
	if err == nil || err.Error() != "slack: channel: required with token" {
		t.Errorf("New = %v", err)
	}
}

// TestDefaultMessageLongValues: long event values are clipped so the
// message stays within Slack's limits instead of failing with invalid_blocks.
func TestDefaultMessageLongValues(t *testing.T) {
	e := purchase(strings.Repeat("u", 5000))
	e.ProductID = strings.Repeat("p", 5000)
	e.Entitlements = nil
	for i := range 30 {
		e.Entitlements = append(e.Entitlements, strings.Repeat("e", 300)+string(rune('a'+i%26)))
	}
	m := DefaultMessage(e, "proj")
	if err := validateBlocks(m.Blocks); err != nil {
		t.Fatalf("blocks invalid: %v", err)
	}
	fields := m.Blocks[1].(*slackapi.SectionBlock).Fields
	want := "*Entitlements*\n`" + strings.Repeat("e", chat.MaxValue-1) + "…`"
	if !strings.HasPrefix(fields[1].Text, want) || !strings.HasSuffix(fields[1].Text, ", and 25 more") {
		t.Errorf("entitlements field = %q", fields[1].Text)
	}
	if n := len([]rune(m.Text)); n > 500 {
		t.Errorf("text has %d characters", n)
	}
}
