package ui

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rcrouter/rcrouter/destinations"
	"github.com/rcrouter/rcrouter/internal/server"
	"github.com/rcrouter/rcrouter/internal/store"
	"github.com/rcrouter/rcrouter/internal/store/sqlite"
)

// TestRealStoreEscapesStoredPayloads renders the hostile event from the
// SQLite store, as ingest and the scheduler store it, on the event page and
// in the destination feed.
func TestRealStoreEscapesStoredPayloads(t *testing.T) {
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "rcrouter.db"), sqlite.Options{})
	if err != nil {
		t.Fatalf("open sqlite: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	ctx := context.Background()
	now := time.Now().UTC()
	created, err := st.Ingest(ctx, store.NewEvent{
		ID: "evt-xss", Type: "INITIAL_PURCHASE", ReceivedAt: now, Body: []byte(xssBody),
		Routes:     json.RawMessage(`[{"name":"everything","matched":true,"reason":"no match block: every event"}]`),
		Deliveries: []store.NewDelivery{{Destination: "sink", Route: "everything"}},
	})
	if err != nil || !created {
		t.Fatalf("ingest: created=%v err=%v", created, err)
	}
	claimed, err := st.Claim(ctx, "ui-test", "sink", now.Add(time.Second), now.Add(time.Minute), 10)
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim: %d deliveries, err %v", len(claimed), err)
	}
	d := claimed[0]
	err = st.Complete(ctx, []store.Completion{{
		DeliveryID: d.ID, LeaseToken: d.Lease.Token, State: store.Dead, LastError: "client_error: " + xss,
		Dispatches: []store.Dispatch{{
			DeliveryID: d.ID, EventID: d.EventID, EventType: d.EventType, Destination: "sink", Route: "everything",
			Attempt: 1, Status: string(store.Dead),
			Request:   destinations.Request{Method: "POST", URL: "http://127.0.0.1/hook", Body: xssBody},
			Response:  destinations.Response{StatusCode: 400, Body: xss, Error: "client_error: " + xss},
			CreatedAt: now, DurationMs: 7,
		}},
	}})
	if err != nil {
		t.Fatalf("complete: %v", err)
	}

	backend := &fakeBackend{dests: []server.DestinationStatus{{Name: "sink", Type: "webhook", State: "healthy", Dead: 1}}}
	srv := server.New(server.Options{WebhookPath: "/webhooks/revenuecat", Settings: server.Settings{AdminToken: adminToken}, Backend: backend, Store: st})
	srv.MountUI(Handler(srv))
	f := &fixture{backend: backend, handler: srv.Handler()}

	tests := []struct {
		name string
		path string
		want []string
	}{
		{name: "event page", path: "/ui/events/evt-xss", want: []string{
			`<dd class="ev-user">&lt;script&gt;alert(1)&lt;/script&gt;</dd>`,
			`<tr><th>&lt;script&gt;alert(1)&lt;/script&gt;</th><td>&lt;script&gt;alert(1)&lt;/script&gt;`,
			`<span class="badge badge-dead d-status">dead</span>`,
			`<span class="badge badge-delivered">matched</span>`,
		}},
		{name: "destination feed", path: "/ui/destinations/sink", want: []string{
			`&#34;app_user_id&#34;: &#34;&lt;script&gt;alert(1)&lt;/script&gt;&#34;`,
			`<pre class="body resp-body">&lt;script&gt;alert(1)&lt;/script&gt;</pre>`,
			`data-delivery-id="` + d.ID + `">Retry</button>`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := f.do(t, http.MethodGet, tt.path, nil, withSession(adminToken))
			if w.Code != http.StatusOK {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
			body := w.Body.String()
			if strings.Contains(body, "<script>alert") || strings.Contains(body, "<img src=x") {
				t.Errorf("unescaped markup in the page")
			}
			for _, want := range tt.want {
				if !strings.Contains(body, want) {
					t.Errorf("page lacks %s", want)
				}
			}
		})
	}
}
