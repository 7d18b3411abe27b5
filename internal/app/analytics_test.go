package app

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rcrouter/rcrouter/internal/config"
	"github.com/rcrouter/rcrouter/internal/store"
	"github.com/rcrouter/rcrouter/internal/testutil"
)

// vendor is a scripted fake of one analytics API: answer(n, path, body)
// gives the status and body of the n-th request (from 0).
type vendor struct {
	mu     sync.Mutex
	paths  []string
	bodies [][]byte
	answer func(n int, path string, body []byte) (int, string)
}

func (v *vendor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	v.mu.Lock()
	n := len(v.paths)
	v.paths = append(v.paths, r.URL.RequestURI())
	v.bodies = append(v.bodies, b)
	v.mu.Unlock()
	code, body := v.answer(n, r.URL.Path, b)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	io.WriteString(w, body)
}

func (v *vendor) got() ([]string, [][]byte) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]string(nil), v.paths...), append([][]byte(nil), v.bodies...)
}

// analyticsVendor is what the end-to-end tests need to know of one type.
type analyticsVendor struct {
	typ    string
	block  func(url string) string // the type block, one line of flow YAML
	ok     string                  // the body of a 200
	secret string
	// dedupe returns the dedupe ids of the events in a body of the event
	// endpoint, or nil for another endpoint.
	dedupe func(path string, body []byte) []string
	// perAttempt is how many requests (dispatch records) one successful
	// attempt makes for a revenue event.
	perAttempt int
	// reject is a permanent answer and the vendor text the log must show.
	reject       func(n int) (int, string)
	rejectShows  string
	rejectStatus int
}

var analyticsVendors = []analyticsVendor{
	{
		typ: "amplitude", secret: "amp-e2e-key-5a6b",
		block: func(url string) string {
			return fmt.Sprintf("amplitude: {api_key: amp-e2e-key-5a6b, endpoint: %q}", url)
		},
		ok: `{"code":200,"events_ingested":1}`,
		dedupe: func(path string, body []byte) []string {
			var b struct {
				Events []struct {
					InsertID string `json:"insert_id"`
				} `json:"events"`
			}
			json.Unmarshal(body, &b)
			var ids []string
			for _, e := range b.Events {
				ids = append(ids, e.InsertID)
			}
			return ids
		},
		perAttempt: 1,
		reject: func(int) (int, string) {
			return 400, `{"code":400,"error":"Request missing required field","missing_field":"event_type"}`
		},
		rejectShows: "missing_field", rejectStatus: 400,
	},
	{
		typ: "mixpanel", secret: "mp-e2e-token-7c8d",
		block: func(url string) string { return fmt.Sprintf("mixpanel: {token: mp-e2e-token-7c8d, endpoint: %q}", url) },
		ok:    `{"error":null,"status":1}`,
		dedupe: func(path string, body []byte) []string {
			if path != "/track" {
				return nil
			}
			var b []struct {
				Properties map[string]any `json:"properties"`
			}
			json.Unmarshal(body, &b)
			var ids []string
			for _, e := range b {
				ids = append(ids, fmt.Sprint(e.Properties["$insert_id"]))
			}
			return ids
		},
		perAttempt: 2, // the track, then the $transactions append
		reject: func(int) (int, string) {
			return 200, `{"error":"'event' must be a non-empty string","status":0}`
		},
		rejectShows: "must be a non-empty string", rejectStatus: 200,
	},
	{
		typ: "posthog", secret: "phc-e2e-key-9e0f",
		block: func(url string) string { return fmt.Sprintf("posthog: {api_key: phc-e2e-key-9e0f, endpoint: %q}", url) },
		ok:    `{"status":"Ok"}`,
		dedupe: func(path string, body []byte) []string {
			var b struct {
				Batch []struct {
					UUID string `json:"uuid"`
				} `json:"batch"`
			}
			json.Unmarshal(body, &b)
			var ids []string
			for _, e := range b.Batch {
				ids = append(ids, e.UUID)
			}
			return ids
		},
		perAttempt: 1,
		reject: func(int) (int, string) {
			return 401, `{"type":"authentication_error","code":"invalid_api_key","detail":"Project API key invalid."}`
		},
		rejectShows: "invalid_api_key", rejectStatus: 401,
	},
}

func analyticsConfig(name, block string) string {
	return fmt.Sprintf("destinations:\n  %s:\n    %s\n    retry: {initial_interval: 10ms, max_interval: 50ms}\nroutes:\n  - name: all\n    to: [%s]\n", name, block, name)
}

func dispatchesOf(h *harness, dest, eventID string) []store.Dispatch {
	var list struct {
		Items []store.Dispatch `json:"items"`
	}
	h.api("GET", "/api/v1/dispatches?destination="+dest+"&event_id="+eventID, nil, &list)
	return list.Items
}

func deliveriesOf(h *harness, eventID string) []store.Delivery {
	var ev struct {
		Deliveries []store.Delivery `json:"deliveries"`
	}
	h.api("GET", "/api/v1/events/"+eventID, nil, &ev)
	return ev.Deliveries
}

// TestAnalyticsRetryKeepsDedupeID: through the real app, a 503 then a 200
// leave one delivered delivery, a dispatch record per request, and the same
// dedupe id in both requests of the event endpoint.
func TestAnalyticsRetryKeepsDedupeID(t *testing.T) {
	for _, av := range analyticsVendors {
		t.Run(av.typ, func(t *testing.T) {
			v := &vendor{answer: func(n int, _ string, _ []byte) (int, string) {
				if n == 0 {
					return 503, `{"error":"unavailable"}`
				}
				return 200, av.ok
			}}
			srv := httptest.NewServer(v)
			defer srv.Close()
			name := av.typ + "-e2e"
			h := startApp(t, analyticsConfig(name, av.block(srv.URL)))
			id := av.typ + "-retry-1"
			if code, body := h.post(fixtureEvent(id, "INITIAL_PURCHASE")); code != 200 {
				t.Fatalf("post: %d %s", code, body)
			}
			seen := h.until(name, "delivered", 20*time.Second)
			if seen[0].Status != "retrying" || seen[0].Response.StatusCode != 503 {
				t.Errorf("first dispatch = %s %d, want retrying 503", seen[0].Status, seen[0].Response.StatusCode)
			}
			records := dispatchesOf(h, name, id)
			if want := 1 + av.perAttempt; len(records) != want {
				t.Errorf("%d dispatch records, want %d", len(records), want)
			}
			if ds := deliveriesOf(h, id); len(ds) != 1 || ds[0].State != store.Delivered {
				t.Errorf("deliveries = %+v, want one delivered", ds)
			}
			paths, bodies := v.got()
			var ids []string
			for i, b := range bodies {
				ids = append(ids, av.dedupe(strings.SplitN(paths[i], "?", 2)[0], b)...)
			}
			if len(ids) != 2 || ids[0] != ids[1] || ids[0] == "" {
				t.Errorf("dedupe ids sent = %q, want the same one twice", ids)
			}
			for _, d := range records {
				if strings.Contains(d.Request.Body+d.Request.URL+fmt.Sprint(d.Request.Headers), av.secret) {
					t.Errorf("the %s secret is in the dispatch log: %+v", av.typ, d.Request)
				}
			}
		})
	}
}

// TestAnalyticsPermanentErrorIsDead: a documented permanent answer makes
// the delivery dead after one request, with the vendor's text in the log.
func TestAnalyticsPermanentErrorIsDead(t *testing.T) {
	for _, av := range analyticsVendors {
		t.Run(av.typ, func(t *testing.T) {
			v := &vendor{answer: func(n int, _ string, _ []byte) (int, string) { return av.reject(n) }}
			srv := httptest.NewServer(v)
			defer srv.Close()
			name := av.typ + "-e2e"
			h := startApp(t, analyticsConfig(name, av.block(srv.URL)))
			id := av.typ + "-dead-1"
			h.post(fixtureEvent(id, "INITIAL_PURCHASE"))
			d := h.next(name, 10*time.Second)
			if d.Status != "dead" || d.Attempt != 1 {
				t.Fatalf("dispatch = %s at attempt %d, want dead at 1", d.Status, d.Attempt)
			}
			records := dispatchesOf(h, name, id)
			if len(records) != 1 || records[0].Response.StatusCode != av.rejectStatus || !strings.Contains(records[0].Response.Body, av.rejectShows) {
				t.Errorf("records = %+v, want one showing %d %q", records, av.rejectStatus, av.rejectShows)
			}
			if ds := deliveriesOf(h, id); len(ds) != 1 || ds[0].State != store.Dead || ds[0].Attempts != 1 {
				t.Errorf("deliveries = %+v, want dead after 1 attempt", ds)
			}
			if paths, _ := v.got(); len(paths) != 1 {
				t.Errorf("%d requests, want 1", len(paths))
			}
		})
	}
}

// TestAmplitudeBatchesConcurrentDeliveries: 200 events posted at once reach
// Amplitude in few requests; every delivery is delivered with its own record.
func TestAmplitudeBatchesConcurrentDeliveries(t *testing.T) {
	v := &vendor{answer: func(int, string, []byte) (int, string) {
		time.Sleep(20 * time.Millisecond) // a real API's round trip lets a queue form
		return 200, analyticsVendors[0].ok
	}}
	srv := httptest.NewServer(v)
	defer srv.Close()
	h := startApp(t, analyticsConfig("amp", analyticsVendors[0].block(srv.URL)))
	const n = 200
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if code, body := h.post(fixtureEvent(fmt.Sprintf("amp-%03d", i), "RENEWAL")); code != 200 {
				t.Errorf("post %d: %d %s", i, code, body)
			}
		}(i)
	}
	wg.Wait()
	delivered := map[string]bool{}
	for len(delivered) < n {
		d := h.next("amp", 20*time.Second)
		if d.Status != "delivered" {
			t.Fatalf("dispatch %+v", d)
		}
		if !strings.Contains(d.Request.Body, `"insert_id":"`) || strings.Count(d.Request.Body, `"insert_id":`) != 1 {
			t.Errorf("record for %s does not show exactly its own event: %s", d.EventID, d.Request.Body)
		}
		delivered[d.EventID] = true
	}
	_, bodies := v.got()
	seen := map[string]bool{}
	var sizes []int
	for _, b := range bodies {
		ids := analyticsVendors[0].dedupe("/2/httpapi", b)
		sizes = append(sizes, len(ids))
		for _, id := range ids {
			seen[id] = true
		}
	}
	if len(seen) != n {
		t.Errorf("Amplitude got %d distinct events, want %d", len(seen), n)
	}
	if len(bodies) > n/4 {
		t.Errorf("%d requests for %d deliveries, want batches", len(bodies), n)
	}
	t.Logf("%d deliveries in %d requests; events per request: %v", n, len(bodies), sizes)
}

// TestExampleAnalyticsBlocks: the commented-out analytics blocks of
// config.example.yaml are valid once uncommented, with the app's types.
func TestExampleAnalyticsBlocks(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(testutil.ModuleRoot(t), "config.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	start, end := strings.Index(text, "  # >>> analytics\n"), strings.Index(text, "  # <<< analytics\n")
	if start < 0 || end < start {
		t.Fatal("config.example.yaml has no analytics markers")
	}
	var block strings.Builder
	for _, line := range strings.Split(text[start:end], "\n")[1:] {
		if line == "" {
			continue
		}
		indent, rest, ok := strings.Cut(line, "# ")
		if !ok || strings.TrimSpace(indent) != "" {
			t.Fatalf("line %q between the markers is not a commented-out YAML line", line)
		}
		block.WriteString(indent + rest + "\n")
	}
	doc := configHead() + "destinations:\n" + block.String()
	vars := map[string]string{"AMPLITUDE_API_KEY": "a", "MIXPANEL_TOKEN": "m", "POSTHOG_API_KEY": "p"}
	cfg, err := config.Parse([]byte(doc), "config.example.yaml", func(k string) (string, bool) { v, ok := vars[k]; return v, ok }, Types())
	if err != nil {
		t.Fatalf("the uncommented analytics blocks are invalid:\n%v\n%s", err, doc)
	}
	for name, typ := range map[string]string{"amplitude-prod": "amplitude", "mixpanel-prod": "mixpanel", "posthog-prod": "posthog"} {
		if d := cfg.Destinations[name]; d == nil || d.Type != typ {
			t.Errorf("%s = %+v, want a %s destination", name, d, typ)
		}
	}
}

// TestAnalyticsSendTestEvent: "Send test event" reaches each analytics
// vendor when `events` names TEST, and is skipped with the reason (as
// RevenueCat's integrations do not send TEST) when it does not.
func TestAnalyticsSendTestEvent(t *testing.T) {
	for _, av := range analyticsVendors {
		for _, named := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/named=%v", av.typ, named), func(t *testing.T) {
				v := &vendor{answer: func(int, string, []byte) (int, string) { return 200, av.ok }}
				srv := httptest.NewServer(v)
				defer srv.Close()
				block := av.block(srv.URL)
				if named {
					block = strings.TrimSuffix(block, "}") + ", events: {TEST: rc_test_event}}"
				}
				name := av.typ + "-e2e"
				h := startApp(t, analyticsConfig(name, block))
				var out map[string]any
				if code := h.api("POST", "/api/v1/destinations/"+name+"/test", nil, &out); code != 200 {
					t.Fatalf("send test: %d %v", code, out)
				}
				d := h.next(name, 10*time.Second)
				paths, bodies := v.got()
				if named {
					if d.Status != "delivered" || len(paths) == 0 || !strings.Contains(string(bodies[0]), `"rc_test_event"`) {
						t.Errorf("dispatch %s with %d requests; want the test event delivered", d.Status, len(paths))
					}
					return
				}
				if d.Status != "skipped" || len(paths) != 0 || !strings.Contains(d.Response.Error+d.Response.Body, "TEST") {
					t.Errorf("dispatch = %+v with %d requests; want skipped, naming TEST", d, len(paths))
				}
			})
		}
	}
}
