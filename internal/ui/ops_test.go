package ui

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rcrouter/rcrouter/internal/store"
)

func TestSearchBox(t *testing.T) {
	tests := []struct {
		name, q, want string
	}{
		{"event id shows its customer", "evt-xss", "/ui/customers?event=evt-xss&user_id=%3Cscript%3Ealert%281%29%3C%2Fscript%3E"},
		{"transaction id shows its customer", "GPA.77", "/ui/customers?event=evt-txn&user_id=carol"},
		{"anything else is a customer id", " $RCAnonymousID:1 ", "/ui/customers?user_id=%24RCAnonymousID%3A1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, adminToken)
			f.addXSSEvent()
			f.store.events["evt-txn"] = store.Event{ID: "evt-txn", Type: "RENEWAL", ReceivedAt: time.Now(),
				Body: []byte(`{"api_version":"1.0","event":{"id":"evt-txn","type":"RENEWAL","app_user_id":"carol","transaction_id":"GPA.78","original_transaction_id":"GPA.77"}}`)}
			w := f.do(t, http.MethodGet, "/ui/search?q="+url.QueryEscape(tt.q), nil, withSession(adminToken))
			if w.Code != http.StatusSeeOther || w.Header().Get("Location") != tt.want {
				t.Fatalf("got %d to %q, want 303 to %q", w.Code, w.Header().Get("Location"), tt.want)
			}
		})
	}
}

func TestTimelinePage(t *testing.T) {
	f := newFixture(t, adminToken)
	f.addXSSEvent()
	w := f.do(t, http.MethodGet, "/ui/customers?event=evt-xss&user_id="+url.QueryEscape(xss), nil, withSession(adminToken))
	if w.Code != http.StatusOK {
		t.Fatalf("status %d", w.Code)
	}
	body := w.Body.String()
	for _, want := range []string{
		`<span class="mono ev-id" id="customer">&lt;script&gt;alert(1)&lt;/script&gt;</span>`,
		`<tr class="tl-row highlight" data-event-id="evt-xss">`,
		`<a class="tl-event mono" href="/ui/events/evt-xss">evt-xss</a>`,
		`<a class="tl-dest" data-destination="sink" href="/ui/destinations/sink?event_id=evt-xss">sink <span class="badge badge-dead">dead</span></a>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("timeline lacks %s", want)
		}
	}
	if strings.Contains(body, xss) {
		t.Error("the timeline shows markup unescaped")
	}
	w = f.do(t, http.MethodGet, "/ui/customers?user_id=nobody", nil, withSession(adminToken))
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "No stored event names this customer.") {
		t.Fatalf("unknown customer: %d %s", w.Code, w.Body)
	}
}

func TestRoutesPage(t *testing.T) {
	f := newFixture(t, adminToken)
	w := f.do(t, http.MethodGet, "/ui/routes", nil, withSession(adminToken))
	if w.Code != http.StatusOK {
		t.Fatalf("status %d", w.Code)
	}
	body := w.Body.String()
	for _, want := range []string{
		`<tr data-route="all">`, `<td data-label="Matched 24 h" class="num r-matched">7</td>`,
		`<tr data-route="pro &lt;b&gt;">`, `<a href="/ui/destinations/a%2Fb%20c">a/b c</a>`, `<td data-label="Stop">stop</td>`,
		`id="try-form"`, `data-action="reload-preview"`, `data-action="reload-apply" hidden`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("routes page lacks %s", want)
		}
	}
}

// TestCharts: the destination page's chart and the overview's trend are SVG
// with one group per bucket holding the counts.
func TestCharts(t *testing.T) {
	f := newFixture(t, adminToken)
	now := time.Now().UTC()
	for i, d := range []struct {
		status string
		ms     int64
		ago    time.Duration
	}{{"delivered", 40, time.Minute}, {"delivered", 60, time.Minute}, {"retrying", 900, 2 * time.Hour}, {"dead", 100, 2 * time.Hour}} {
		f.store.dispatches = append(f.store.dispatches, store.Dispatch{ID: "c" + string(rune('0'+i)), DeliveryID: "d", EventID: "e",
			Destination: "sink", Attempt: i + 1, Status: d.status, DurationMs: d.ms, CreatedAt: now.Add(-d.ago)})
	}
	w := f.do(t, http.MethodGet, "/ui/destinations/sink", nil, withSession(adminToken))
	body := w.Body.String()
	if w.Code != http.StatusOK {
		t.Fatalf("destination page %d", w.Code)
	}
	groups := regexp.MustCompile(`<g class="bucket" data-start="[^"]+" data-delivered="(\d+)" data-failed="(\d+)" data-dead="(\d+)" data-p50="(\d+)" data-p95="(\d+)">`).FindAllStringSubmatch(body, -1)
	if len(groups) != 24 {
		t.Fatalf("%d buckets in the chart, want 24", len(groups))
	}
	if g := groups[23]; g[1] != "2" || g[2] != "0" || g[4] != "40" || g[5] != "60" {
		t.Errorf("current hour = %v; want 2 delivered, p50 40, p95 60", g[1:])
	}
	if g := groups[21]; g[2] != "1" || g[3] != "1" || g[5] != "900" {
		t.Errorf("two hours ago = %v; want 1 failed, 1 dead, p95 900", g[1:])
	}
	if !strings.Contains(body, `<polyline class="p95" points="`) || !strings.Contains(body, `data-total="4"`) {
		t.Error("chart lacks the p95 line or its total")
	}

	w = f.do(t, http.MethodGet, "/ui/", nil, withSession(adminToken))
	body = w.Body.String()
	spark := regexp.MustCompile(`(?s)<svg class="spark"[^>]*data-destination="sink">(.*?)</svg>`).FindStringSubmatch(body)
	if spark == nil {
		t.Fatal("overview has no trend for sink")
	}
	if n := strings.Count(spark[1], "<g data-delivered="); n != 24 {
		t.Errorf("trend has %d bars, want 24", n)
	}
	if !strings.Contains(spark[1], `<g data-delivered="2" data-failed="0">`) || !strings.Contains(spark[1], `<g data-delivered="0" data-failed="2">`) {
		t.Errorf("trend bars lack the counts:\n%s", spark[1])
	}
}
