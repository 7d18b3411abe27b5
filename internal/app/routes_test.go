package app

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rcrouter/rcrouter/internal/clock"
	"github.com/rcrouter/rcrouter/internal/store"
)

// TestRoutesAPI: GET /api/v1/routes counts the last 24 h of matches per
// route; POST /api/v1/routes/test explains one event and stores nothing.
func TestRoutesAPI(t *testing.T) {
	clk := clock.NewFake(time.Date(2031, 6, 1, 12, 0, 0, 0, time.UTC))
	a := newIdleApp(t, clk, `destinations:
  archive:
    file: {path: data/a.jsonl}
  audit:
    file: {path: data/b.jsonl}
routes:
  - name: all
    to: [archive]
  - name: pro
    match: {entitlement: pro}
    to: [audit]
    stop: true
  - name: tests
    match: {type: TEST}
    to: [audit]
`)
	acceptAged(t, a, clk, 25*time.Hour) // "old" is out of the 24 h window
	call := func(method, path, body string) (int, string) {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+hAdmin)
		rec := httptest.NewRecorder()
		a.Server().Handler().ServeHTTP(rec, req)
		return rec.Code, strings.TrimSpace(rec.Body.String())
	}

	code, got := call("GET", "/api/v1/routes", "")
	want := `[{"name":"all","to":["archive"],"stop":false,"matched_24h":2},{"name":"pro","to":["audit"],"stop":true,"matched_24h":2},` +
		`{"name":"tests","to":["audit"],"stop":false,"matched_24h":0}]`
	if code != 200 || got != want {
		t.Fatalf("routes: %d %s\nwant %s", code, got, want)
	}

	tests := []struct {
		name     string
		body     string
		wantCode int
		want     []string
	}{
		{"pro renewal", string(fixtureEvent("probe", "RENEWAL")), 200, []string{
			`"event_id":"probe"`, `"lifecycle":"renewed"`,
			`{"name":"all","matched":true,"reason":"matched"}`,
			`{"name":"tests","matched":false,"reason":"not evaluated: route \"pro\" stopped evaluation"}`,
			`"destinations":[{"destination":"archive","route":"all"},{"destination":"audit","route":"pro"}]`}},
		{"not an event", `{"api_version":"1.0"}`, 400, []string{`"error"`}},
		{"not JSON", `hello`, 400, []string{`"error"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, got := call("POST", "/api/v1/routes/test", tt.body)
			if code != tt.wantCode {
				t.Fatalf("%d %s, want %d", code, got, tt.wantCode)
			}
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("answer lacks %s:\n%s", w, got)
				}
			}
		})
	}
	if _, err := a.Store().Event(t.Context(), "probe"); err == nil {
		t.Fatal("routes/test stored the event")
	}
	if items, _, err := a.Store().Events(t.Context(), store.EventFilter{}); err != nil || len(items) != 3 {
		t.Fatalf("stored events after routes/test: %d, %v; want 3", len(items), err)
	}
	if code, _ := call("POST", "/api/v1/routes/test", string(bytes.Repeat([]byte("x"), 2<<20))); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized body: %d, want 413", code)
	}
}
