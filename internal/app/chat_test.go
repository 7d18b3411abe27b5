package app

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rcrouter/rcrouter/internal/config"
	"github.com/rcrouter/rcrouter/internal/store"
)

// chatReply is one scripted answer of a chat webhook fake.
type chatReply struct {
	status int
	body   string
}

// chatFake answers with replies in order, the last one repeating, and
// keeps the bodies it got.
type chatFake struct {
	mu      sync.Mutex
	replies []chatReply
	bodies  []string
}

func (f *chatFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.bodies = append(f.bodies, string(b))
	rep := f.replies[min(len(f.bodies), len(f.replies))-1]
	f.mu.Unlock()
	w.WriteHeader(rep.status)
	io.WriteString(w, rep.body)
}

func (f *chatFake) got() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.bodies...)
}

// chatTypes are the chat destination types with a webhook path of the
// shape each expects; the path holds the secret part of the URL.
var chatTypes = []struct {
	typ, path, secret, ok string
	okStatus              int
	notFound              chatReply
	notFoundMessage       string
}{
	{
		typ: "discord", path: "/api/webhooks/4242/discord-e2e-token-0123456789abcdef", secret: "discord-e2e-token-0123456789abcdef",
		ok: `{"id":"1"}`, okStatus: 200,
		notFound:        chatReply{404, `{"message": "Unknown Webhook", "code": 10015}`},
		notFoundMessage: "Unknown Webhook (code 10015)",
	},
	{
		typ: "teams", path: "/workflows/abc/triggers/manual/paths/invoke?api-version=2016-06-01&sig=teams-e2e-sig-0123456789abcdef", secret: "teams-e2e-sig-0123456789abcdef",
		okStatus:        202,
		notFound:        chatReply{404, `{"error":{"code":"WorkflowNotFound","message":"The workflow could not be found."}}`},
		notFoundMessage: "WorkflowNotFound: The workflow could not be found.",
	},
}

func chatConfig(typ, url string) string {
	return fmt.Sprintf("destinations:\n  chat:\n    %s: {webhook_url: %q}\n    retry: {initial_interval: 50ms, max_interval: 200ms}\nroutes:\n  - name: all\n    to: [chat]\n", typ, url)
}

// checkRedacted fails when a dispatch record shows the webhook's secret.
func checkRedacted(t *testing.T, d store.Dispatch, secret string) {
	t.Helper()
	if strings.Contains(d.Request.URL, secret) || !strings.HasSuffix(d.Request.URL, "/<secret>") {
		t.Errorf("webhook URL not redacted: %q", d.Request.URL)
	}
	if strings.Contains(d.Request.Body, secret) || strings.Contains(d.Response.Body, secret) || strings.Contains(d.Response.Error, secret) {
		t.Errorf("dispatch record shows the secret: %+v", d)
	}
}

// TestChatRetryThenDeliver: a 503 then a success leaves one delivered
// delivery with two dispatch records and the same message sent twice.
func TestChatRetryThenDeliver(t *testing.T) {
	for _, ct := range chatTypes {
		t.Run(ct.typ, func(t *testing.T) {
			f := &chatFake{replies: []chatReply{{503, "upstream unavailable"}, {ct.okStatus, ct.ok}}}
			srv := httptest.NewServer(f)
			defer srv.Close()
			h := startApp(t, chatConfig(ct.typ, srv.URL+ct.path))
			id := "chat-retry-" + ct.typ
			if code, body := h.post(fixtureEvent(id, "INITIAL_PURCHASE")); code != 200 {
				t.Fatalf("post: %d %s", code, body)
			}
			seen := h.until("chat", "delivered", 20*time.Second)
			if len(seen) != 2 || seen[0].Status != "retrying" || seen[0].Attempt != 1 || seen[1].Attempt != 2 {
				t.Fatalf("dispatches %+v, want retrying at 1 then delivered at 2", seen)
			}
			if seen[0].Response.StatusCode != 503 || seen[1].Response.StatusCode != ct.okStatus {
				t.Errorf("responses %+v, %+v", seen[0].Response, seen[1].Response)
			}
			for _, d := range seen {
				checkRedacted(t, d, ct.secret)
			}
			bodies := f.got()
			if len(bodies) != 2 || bodies[0] != bodies[1] || !strings.Contains(bodies[0], "just started a subscription of") {
				t.Errorf("fake got %q, want the same message twice", bodies)
			}
			if seen[1].Request.Body != bodies[1] {
				t.Errorf("dispatch body %q, sent %q", seen[1].Request.Body, bodies[1])
			}
			var ev struct {
				Deliveries []store.Delivery `json:"deliveries"`
			}
			h.api("GET", "/api/v1/events/"+id, nil, &ev)
			if len(ev.Deliveries) != 1 || ev.Deliveries[0].State != store.Delivered || ev.Deliveries[0].Attempts != 2 {
				t.Errorf("deliveries %+v, want one delivered after 2 attempts", ev.Deliveries)
			}
			var list struct {
				Items []store.Dispatch `json:"items"`
			}
			h.api("GET", "/api/v1/dispatches?destination=chat&event_id="+id, nil, &list)
			if len(list.Items) != 2 {
				t.Errorf("%d dispatch records in the log, want 2", len(list.Items))
			}
		})
	}
}

// TestChatPermanentErrorIsDead: a deleted webhook (Discord's 404 Unknown
// Webhook, Teams' 404 WorkflowNotFound) is dead after one request, with the
// vendor's words in the dispatch log and the delivery's last error.
func TestChatPermanentErrorIsDead(t *testing.T) {
	for _, ct := range chatTypes {
		t.Run(ct.typ, func(t *testing.T) {
			f := &chatFake{replies: []chatReply{ct.notFound}}
			srv := httptest.NewServer(f)
			defer srv.Close()
			h := startApp(t, chatConfig(ct.typ, srv.URL+ct.path))
			id := "chat-dead-" + ct.typ
			h.post(fixtureEvent(id, "RENEWAL"))
			d := h.next("chat", 10*time.Second)
			if d.Status != "dead" || d.Attempt != 1 {
				t.Fatalf("dispatch %+v, want dead at attempt 1", d)
			}
			if d.Response.StatusCode != 404 || d.Response.Body != ct.notFound.body {
				t.Errorf("response %+v, want 404 %s", d.Response, ct.notFound.body)
			}
			checkRedacted(t, d, ct.secret)
			var ev struct {
				Deliveries []store.Delivery `json:"deliveries"`
			}
			h.api("GET", "/api/v1/events/"+id, nil, &ev)
			if len(ev.Deliveries) != 1 || ev.Deliveries[0].State != store.Dead || ev.Deliveries[0].Attempts != 1 ||
				ev.Deliveries[0].LastError != ct.notFoundMessage {
				t.Errorf("deliveries %+v, want dead after 1 attempt with %q", ev.Deliveries, ct.notFoundMessage)
			}
			if n := len(f.got()); n != 1 {
				t.Errorf("fake got %d requests, want 1", n)
			}
		})
	}
}

// TestChatSendTestEvent: "Send test event" posts RevenueCat's test message
// to the chat destination.
func TestChatSendTestEvent(t *testing.T) {
	for _, ct := range chatTypes {
		t.Run(ct.typ, func(t *testing.T) {
			f := &chatFake{replies: []chatReply{{ct.okStatus, ct.ok}}}
			srv := httptest.NewServer(f)
			defer srv.Close()
			h := startApp(t, chatConfig(ct.typ, srv.URL+ct.path))
			var ans struct {
				Status  string `json:"status"`
				EventID string `json:"event_id"`
			}
			if code := h.api("POST", "/api/v1/destinations/chat/test", nil, &ans); code != 200 || ans.Status != "accepted" {
				t.Fatalf("send test: %d %+v", code, ans)
			}
			d := h.next("chat", 10*time.Second)
			if d.Status != "delivered" || d.EventID != ans.EventID || d.EventType != "TEST" {
				t.Fatalf("dispatch %+v, want the test event delivered", d)
			}
			if got := f.got(); len(got) != 1 || !strings.Contains(got[0], "Test event from RevenueCat") {
				t.Errorf("fake got %q", got)
			}
		})
	}
}

// TestChatConfig: the chat blocks decode strictly, default to rate_limit 1,
// and every problem (a bad URL, a template that lets event text through, an
// unknown key) comes back with its line and without the webhook URL.
func TestChatConfig(t *testing.T) {
	const head = "inbound: {authorization: [\"Bearer x\"]}\nadmin: {token: admin-token-for-tests}\n"
	getenv := func(string) (string, bool) { return "", false }
	t.Run("defaults", func(t *testing.T) {
		doc := head + `destinations:
  d:
    discord: {webhook_url: "https://discord.com/api/webhooks/1/tok-0123456789abcdefghij"}
  t:
    teams: {webhook_url: "https://prod-1.westus.logic.azure.com/workflows/x/triggers/manual/paths/invoke?sig=s1g-0123456789"}
  slow:
    teams: {webhook_url: "https://example.webhook.office.com/webhookb2/x"}
    rate_limit: 0.2
`
		cfg, err := config.Parse([]byte(doc), "f.yaml", getenv, Types())
		if err != nil {
			t.Fatal(err)
		}
		for name, want := range map[string]struct {
			typ  string
			rate float64
		}{"d": {"discord", 1}, "t": {"teams", 1}, "slow": {"teams", 0.2}} {
			d := cfg.Destinations[name]
			if d.Type != want.typ || d.Options.RateLimit != want.rate {
				t.Errorf("%s: type %s rate_limit %g, want %s %g", name, d.Type, d.Options.RateLimit, want.typ, want.rate)
			}
		}
	})
	t.Run("errors", func(t *testing.T) {
		doc := head + `destinations:
  d1:
    discord: {webhook_url: "https://hooks.slack.com/services/T0/B0/secret-path-77"}
  d2:
    discord:
      webhook_url: "https://discord.com/api/webhooks/1/tok-0123456789abcdefghij"
      template: '[{"description": {{ .UserID | toJson }}}]'
  t1:
    teams:
      webhook_url: "https://example.webhook.office.com/webhookb2/secret-path-88"
      template: '{"type":"AdaptiveCard","body":[]}'
      mentions: true
  t2:
    teams: {}
`
		_, err := config.Parse([]byte(doc), "f.yaml", getenv, Types())
		want := strings.Join([]string{
			"f.yaml:5: destinations.d1.discord.webhook_url: is not a Discord webhook URL (https://discord.com/api/webhooks/<id>/<token>)",
			"f.yaml:9: destinations.d2.discord.template: sample trial_started: event text reaches Discord unescaped (@everyone): pass it through markdown, code or plain",
			`f.yaml:13: destinations.t1.teams.template: sample trial_started: "version" is required ("1.4" renders everywhere in Teams)`,
			"f.yaml:14: destinations.t1.teams.mentions: unknown key",
			"f.yaml:16: destinations.t2.teams.webhook_url: required (the HTTP URL of a Teams Workflows webhook trigger)",
		}, "\n")
		if err == nil || err.Error() != want {
			t.Errorf("Parse errors =\n%v\nwant\n%s", err, want)
		}
		if err != nil && strings.Contains(err.Error(), "secret-path") {
			t.Errorf("an error quotes a webhook URL: %v", err)
		}
	})
}
