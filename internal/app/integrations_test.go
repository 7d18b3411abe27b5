package app

import (
	"encoding/json"
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

// TestSlackChannelNotFoundIsDeadAndVisible: Slack's 404 channel_not_found
// is permanent after one attempt, and its text is in the dispatch log.
func TestSlackChannelNotFoundIsDeadAndVisible(t *testing.T) {
	var calls int
	var mu sync.Mutex
	slackSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls++
		mu.Unlock()
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, "channel_not_found")
	}))
	defer slackSrv.Close()
	h := startApp(t, fmt.Sprintf("destinations:\n  sales-slack:\n    slack: {webhook_url: %q}\nroutes:\n  - name: all\n    to: [sales-slack]\n",
		slackSrv.URL+"/services/T0/B0/slack-url-secret-77"))
	h.post(fixtureEvent("slack-404", "INITIAL_PURCHASE"))
	d := h.next("sales-slack", 10*time.Second)
	if d.Status != "dead" || d.Attempt != 1 {
		t.Fatalf("dispatch %+v, want dead at attempt 1", d)
	}
	var list struct {
		Items []store.Dispatch `json:"items"`
	}
	h.api("GET", "/api/v1/dispatches?destination=sales-slack&event_id=slack-404", nil, &list)
	if len(list.Items) != 1 {
		t.Fatalf("%d dispatch records, want 1", len(list.Items))
	}
	got := list.Items[0]
	if got.Response.StatusCode != 404 || got.Response.Body != "channel_not_found" {
		t.Errorf("response %+v, want 404 channel_not_found", got.Response)
	}
	if strings.Contains(got.Request.URL, "slack-url-secret-77") || !strings.HasSuffix(got.Request.URL, "/<secret>") {
		t.Errorf("webhook URL not redacted: %q", got.Request.URL)
	}
	var ev struct {
		Deliveries []store.Delivery `json:"deliveries"`
	}
	h.api("GET", "/api/v1/events/slack-404", nil, &ev)
	if len(ev.Deliveries) != 1 || ev.Deliveries[0].State != store.Dead || ev.Deliveries[0].Attempts != 1 {
		t.Errorf("delivery %+v, want dead after 1 attempt", ev.Deliveries)
	}
	mu.Lock()
	defer mu.Unlock()
	if calls != 1 {
		t.Errorf("Slack got %d requests, want 1", calls)
	}
}

// TestSegmentBatchesConcurrentDeliveries: 200 events to one Segment
// destination go out in far fewer HTTP requests, and every delivery gets
// its own dispatch record and is delivered.
func TestSegmentBatchesConcurrentDeliveries(t *testing.T) {
	var mu sync.Mutex
	requests, messages := 0, 0
	seen := map[string]bool{}
	segSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, _, ok := r.BasicAuth()
		if !ok || user != "seg-write-key-3c4d" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var batch struct {
			Batch []struct {
				Type      string `json:"type"`
				MessageID string `json:"messageId"`
			} `json:"batch"`
		}
		json.NewDecoder(r.Body).Decode(&batch)
		mu.Lock()
		requests++
		for _, m := range batch.Batch {
			messages++
			seen[m.MessageID] = true
		}
		mu.Unlock()
		io.WriteString(w, `{"success":true}`)
	}))
	defer segSrv.Close()
	h := startApp(t, fmt.Sprintf("destinations:\n  seg:\n    segment: {write_key: seg-write-key-3c4d, endpoint: %q}\nroutes:\n  - name: all\n    to: [seg]\n", segSrv.URL))

	const n = 200
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if code, body := h.post(fixtureEvent(fmt.Sprintf("seg-%03d", i), "RENEWAL")); code != 200 {
				t.Errorf("post %d: %d %s", i, code, body)
			}
		}(i)
	}
	wg.Wait()
	// A delivery may show two records (its track and identify went out in
	// different batches); each record shows only its own event.
	delivered := map[string]bool{}
	for len(delivered) < n {
		d := h.next("seg", 20*time.Second)
		if d.Status != "delivered" || d.Response.StatusCode != 200 {
			t.Fatalf("dispatch %+v", d)
		}
		delivered[d.EventID] = true
		// Its track or its identify, or both: every message is this user's.
		mine := strings.Count(d.Request.Body, `"userId":"user-`+d.EventID+`"`)
		if mine == 0 || mine != strings.Count(d.Request.Body, `"userId":`) {
			t.Errorf("record for %s shows a body with other events: %s", d.EventID, d.Request.Body)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if messages != 2*n || len(seen) != 2*n {
		t.Errorf("Segment got %d messages (%d distinct), want %d (a track and an identify per event)", messages, len(seen), 2*n)
	}
	if requests > n/10 {
		t.Errorf("%d HTTP requests for %d deliveries, want far fewer", requests, n)
	}
	t.Logf("%d deliveries in %d batch requests (%.1f messages per request)", n, requests, float64(messages)/float64(requests))
}
