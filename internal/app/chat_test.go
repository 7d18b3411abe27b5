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
