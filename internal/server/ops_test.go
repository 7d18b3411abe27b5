package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rcrouter/rcrouter/internal/backtest"
	"github.com/rcrouter/rcrouter/internal/clock"
	"github.com/rcrouter/rcrouter/internal/store"
	"github.com/rcrouter/rcrouter/internal/store/sqlite"
)

// previewBackend answers dry runs and counts real reloads.
type previewBackend struct {
	fakeBackend
	preview ReloadPreview
	reloads int
}

func (b *previewBackend) Reload(context.Context) error { b.reloads++; return nil }
func (b *previewBackend) PreviewReload(context.Context) (ReloadPreview, error) {
	return b.preview, nil
}

func adminDo(t *testing.T, s *Server, method, path, body string) *httptest.ResponseRecorder {
	t.Helper()
	var req *http.Request
	if body == "" {
		req = httptest.NewRequest(method, path, nil)
	} else {
		req = httptest.NewRequest(method, path, strings.NewReader(body))
	}
	req.Header.Set("Authorization", "Bearer admin-token-for-tests")
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	return rec
}

// TestReloadDryRun: {"dry_run":true} answers the preview as DESIGN §6 names
// it and applies nothing; without it (or with false) the reload happens.
func TestReloadDryRun(t *testing.T) {
	changed := ReloadPreview{Valid: true, Events: 3, Diff: map[string]*backtest.Change{
		"slack": {Lost: 2, SamplesGained: []string{}, SamplesLost: []string{"e2", "e1"}},
	}}
	tests := []struct {
		name        string
		preview     ReloadPreview
		body        string
		wantCode    int
		wantBody    string
		wantReloads int
	}{
		{"dry run with a diff", changed, `{"dry_run":true}`, 200,
			`{"valid":true,"errors":[],"diff":{"slack":{"gained":0,"lost":2,"samples_gained":[],"samples_lost":["e2","e1"]}},"events":3}`, 0},
		{"dry run of an invalid file", ReloadPreview{Errors: []string{`config.yaml:9: routes[0].to[0]: unknown destination "slak"`}}, `{"dry_run":true}`, 200,
			`{"valid":false,"errors":["config.yaml:9: routes[0].to[0]: unknown destination \"slak\""],"diff":{},"events":0}`, 0},
		{"no body reloads", changed, ``, 200, `{"status":"reloaded"}`, 1},
		{"dry_run false reloads", changed, `{"dry_run":false}`, 200, `{"status":"reloaded"}`, 1},
		{"unknown field", changed, `{"dryrun":true}`, 400, `{"error":"invalid reload request: json: unknown field \"dryrun\""}`, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &previewBackend{preview: tt.preview}
			rec := adminDo(t, newTestServer(t, b, nil), "POST", "/api/v1/reload", tt.body)
			if rec.Code != tt.wantCode || strings.TrimSpace(rec.Body.String()) != tt.wantBody {
				t.Errorf("answer %d %s\nwant %d %s", rec.Code, rec.Body, tt.wantCode, tt.wantBody)
			}
			if b.reloads != tt.wantReloads {
				t.Errorf("%d reloads, want %d", b.reloads, tt.wantReloads)
			}
		})
	}
}

// storeServer is a server over a real SQLite store.
func storeServer(t *testing.T, b Backend) (*Server, *sqlite.Store) {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "rc.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s := New(Options{Listen: "127.0.0.1:0", WebhookPath: testPath, Backend: b, Store: st, Clock: clock.NewFake(testNow),
		Settings: Settings{AdminToken: "admin-token-for-tests", AllowUnauthenticated: true}})
	return s, st
}

// timelineBody is a RevenueCat body of app user app, original user orig
// and aliases.
func timelineBody(id, typ, app, orig string, aliases ...string) []byte {
	al, _ := json.Marshal(aliases)
	return fmt.Appendf(nil, `{"api_version":"1.0","event":{"id":%q,"type":%q,"app_user_id":%q,"original_app_user_id":%q,"aliases":%s}}`,
		id, typ, app, orig, al)
}

// TestListEvents: a customer's timeline by app user id, original id or
// alias, newest first, with where each event went; filters and pages.
func TestListEvents(t *testing.T) {
	s, st := storeServer(t, &fakeBackend{})
	for i, e := range []struct {
		id, typ, app, orig string
		aliases            []string
		dests              []string
	}{
		{"a1", "INITIAL_PURCHASE", "$RCAnonymousID:9", "$RCAnonymousID:9", nil, []string{"segment", "slack"}},
		{"a2", "RENEWAL", "alice", "$RCAnonymousID:9", []string{"$RCAnonymousID:9", "alice"}, []string{"segment"}},
		{"b1", "RENEWAL", "bob", "bob", nil, nil},
		{"a3", "CANCELLATION", "alice", "$RCAnonymousID:9", []string{"alice@example.com"}, []string{"segment"}},
	} {
		ne := store.NewEvent{ID: e.id, Type: e.typ, ReceivedAt: testNow.Add(time.Duration(i) * time.Minute),
			Body: timelineBody(e.id, e.typ, e.app, e.orig, e.aliases...), UserIDs: append([]string{e.app, e.orig}, e.aliases...)}
		for _, d := range e.dests {
			ne.Deliveries = append(ne.Deliveries, store.NewDelivery{Destination: d, Route: "r"})
		}
		if _, err := st.Ingest(t.Context(), ne); err != nil {
			t.Fatal(err)
		}
	}
	type item struct {
		ID           string `json:"id"`
		Type         string `json:"type"`
		UserID       string `json:"user_id"`
		ReceivedAt   string `json:"received_at"`
		Destinations []struct {
			Name   string `json:"name"`
			Status string `json:"status"`
		} `json:"destinations"`
	}
	type page struct {
		Items []item `json:"items"`
		Next  string `json:"next"`
	}
	get := func(t *testing.T, q string) (int, page, string) {
		rec := adminDo(t, s, "GET", "/api/v1/events"+q, "")
		var p page
		if rec.Code == 200 {
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
				t.Fatal(err)
			}
		}
		return rec.Code, p, rec.Body.String()
	}
	ids := func(p page) string {
		var out []string
		for _, it := range p.Items {
			out = append(out, it.ID)
		}
		return strings.Join(out, ",")
	}
	tests := []struct {
		name, query, want string
	}{
		{"every event", "", "a3,b1,a2,a1"},
		{"app user id", "?user_id=alice", "a3,a2"},
		{"original app user id", "?user_id=%24RCAnonymousID%3A9", "a3,a2,a1"},
		{"alias", "?user_id=alice%40example.com", "a3"},
		{"type", "?user_id=alice&type=RENEWAL", "a2"},
		{"window", "?since=" + testNow.Add(time.Minute).Format(time.RFC3339) + "&until=" + testNow.Add(3*time.Minute).Format(time.RFC3339), "b1,a2"},
		{"nobody", "?user_id=carol", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, p, body := get(t, tt.query)
			if code != 200 || ids(p) != tt.want || p.Next != "" {
				t.Fatalf("%d %s; want items %s", code, body, tt.want)
			}
		})
	}
	t.Run("item", func(t *testing.T) {
		_, p, body := get(t, "?user_id=%24RCAnonymousID%3A9&limit=1&before=")
		if len(p.Items) != 1 || p.Next == "" {
			t.Fatalf("limit 1: %s", body)
		}
		it := p.Items[0]
		if it.ID != "a3" || it.Type != "CANCELLATION" || it.UserID != "alice" || it.ReceivedAt != testNow.Add(3*time.Minute).Format(time.RFC3339) ||
			len(it.Destinations) != 1 || it.Destinations[0].Name != "segment" || it.Destinations[0].Status != "pending" {
			t.Fatalf("item = %+v", it)
		}
		var all []string
		for q := "?user_id=%24RCAnonymousID%3A9&limit=1"; ; {
			_, p, _ := get(t, q)
			all = append(all, ids(p))
			if p.Next == "" {
				break
			}
			q = "?user_id=%24RCAnonymousID%3A9&limit=1&before=" + p.Next
		}
		if strings.Join(all, ",") != "a3,a2,a1" {
			t.Fatalf("pages hold %v", all)
		}
		_, p, body = get(t, "?user_id=bob")
		if len(p.Items) != 1 || p.Items[0].Destinations == nil || len(p.Items[0].Destinations) != 0 || !strings.Contains(body, `"destinations":[]`) {
			t.Fatalf("unrouted event: %s", body)
		}
	})
	for _, q := range []string{"?limit=0", "?limit=501", "?since=yesterday", "?until=2026-13-01T00:00:00Z", "?before=%21%21"} {
		t.Run("bad "+q, func(t *testing.T) {
			if code, _, body := get(t, q); code != 400 || !strings.Contains(body, `"error"`) {
				t.Fatalf("%d %s; want 400", code, body)
			}
		})
	}
}

// TestDestinationStats: per-minute buckets up to 6 h, per-hour beyond, the
// last one the current partial bucket; every bucket present.
func TestDestinationStats(t *testing.T) {
	s, st := storeServer(t, &fakeBackend{})
	now := testNow.Add(30 * time.Second) // 12:00:30
	s.opts.Clock = clock.NewFake(now)
	if _, err := st.Ingest(t.Context(), store.NewEvent{ID: "e1", Type: "RENEWAL", ReceivedAt: testNow.Add(-3 * time.Hour),
		Body: timelineBody("e1", "RENEWAL", "u", "u"), Deliveries: []store.NewDelivery{{Destination: "hook", Route: "r"}}}); err != nil {
		t.Fatal(err)
	}
	ds, err := st.Claim(t.Context(), "t", "hook", now, now.Add(time.Minute), 1)
	if err != nil || len(ds) != 1 {
		t.Fatalf("claim: %v %v", ds, err)
	}
	var recs []store.Dispatch
	for i, r := range []struct {
		ago    time.Duration
		status string
		ms     int64
	}{{150 * time.Minute, "retrying", 900}, {150 * time.Minute, "delivered", 100}, {20 * time.Second, "delivered", 40}, {10 * time.Second, "dead", 60}} {
		recs = append(recs, store.Dispatch{Attempt: i + 1, Status: r.status, DurationMs: r.ms, CreatedAt: now.Add(-r.ago)})
	}
	if err := st.Complete(t.Context(), []store.Completion{{DeliveryID: ds[0].ID, LeaseToken: ds[0].Lease.Token, State: store.Dead, Dispatches: recs}}); err != nil {
		t.Fatal(err)
	}
	type bucket struct {
		Start                   time.Time
		Delivered, Failed, Dead int
		P50Ms                   int64 `json:"p50_ms"`
		P95Ms                   int64 `json:"p95_ms"`
	}
	get := func(q string) (int, []bucket, string) {
		rec := adminDo(t, s, "GET", "/api/v1/destinations/hook/stats"+q, "")
		var out struct{ Buckets []bucket }
		json.Unmarshal(rec.Body.Bytes(), &out)
		return rec.Code, out.Buckets, rec.Body.String()
	}
	tests := []struct {
		name    string
		q       string
		n       int
		width   time.Duration
		nonzero map[int]bucket // index → expected; every other bucket is zero
	}{
		{"default 24h per hour", "", 24, time.Hour, map[int]bucket{
			20: {Delivered: 1, Failed: 1, P50Ms: 100, P95Ms: 900}, // 09:00–10:00
			23: {Delivered: 1, Dead: 1, P50Ms: 40, P95Ms: 60},     // 12:00, the current hour
		}},
		{"6h per minute", "?window=6h", 360, time.Minute, map[int]bucket{
			359 - 150: {Delivered: 1, Failed: 1, P50Ms: 100, P95Ms: 900},
			359:       {Delivered: 1, Dead: 1, P50Ms: 40, P95Ms: 60}, // 12:00, the current minute
		}},
		{"90m", "?window=90m", 90, time.Minute, map[int]bucket{89: {Delivered: 1, Dead: 1, P50Ms: 40, P95Ms: 60}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, bs, body := get(tt.q)
			if code != 200 || len(bs) != tt.n {
				t.Fatalf("%d, %d buckets; want %d\n%.300s", code, len(bs), tt.n, body)
			}
			last := now.Truncate(tt.width)
			for i, b := range bs {
				if want := last.Add(-time.Duration(tt.n-1-i) * tt.width); !b.Start.Equal(want) {
					t.Fatalf("bucket %d starts %s, want %s", i, b.Start, want)
				}
				w := tt.nonzero[i]
				w.Start = b.Start
				if b != w {
					t.Errorf("bucket %d (%s) = %+v, want %+v", i, b.Start.Format("15:04"), b, w)
				}
			}
		})
	}
	for _, q := range []string{"?window=0s", "?window=30s", "?window=169h", "?window=day"} {
		if code, _, body := get(q); code != 400 {
			t.Errorf("%s: %d %s; want 400", q, code, body)
		}
	}
}
