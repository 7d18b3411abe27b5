package app

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rcrouter/rcrouter/internal/clock"
	"github.com/rcrouter/rcrouter/internal/store"
	"github.com/rcrouter/rcrouter/internal/testutil"
)

func webhookDest(name, url, extra string) string {
	return fmt.Sprintf("  %s:\n    webhook: {url: %q}\n%s", name, url, extra)
}

func TestConcurrentDuplicatesStoreOnce(t *testing.T) {
	s := &sink{}
	srv := httptest.NewServer(s)
	defer srv.Close()
	h := startApp(t, "destinations:\n"+webhookDest("sink", srv.URL, "")+"routes:\n  - name: all\n    to: [sink]\n")

	const n = 20
	var wg sync.WaitGroup
	answers := make([]string, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			code, body := h.post(fixtureEvent("same-id-1", "RENEWAL"))
			if code != 200 {
				t.Errorf("post %d: %d %s", i, code, body)
			}
			answers[i] = body
		}(i)
	}
	wg.Wait()
	accepted, duplicate := 0, 0
	for _, a := range answers {
		switch {
		case strings.Contains(a, `"status":"accepted"`):
			accepted++
		case strings.Contains(a, `"status":"duplicate"`):
			duplicate++
		}
	}
	if accepted != 1 || duplicate != n-1 {
		t.Fatalf("accepted=%d duplicate=%d, want 1 and %d", accepted, duplicate, n-1)
	}
	var ev struct {
		Deliveries []store.Delivery `json:"deliveries"`
	}
	if code := h.api("GET", "/api/v1/events/same-id-1", nil, &ev); code != 200 || len(ev.Deliveries) != 1 {
		t.Fatalf("event: %d, %d deliveries", code, len(ev.Deliveries))
	}
	h.until("sink", "delivered", 10*time.Second)
	if got := s.count(); got != 1 {
		t.Errorf("sink got %d requests, want 1", got)
	}
}

// TestRetryThenDeliver: 503, 503, 200 gives three attempts with the same
// body and Idempotency-Key, then delivered.
func TestRetryThenDeliver(t *testing.T) {
	s := &sink{codes: []int{503, 503, 200}}
	srv := httptest.NewServer(s)
	defer srv.Close()
	h := startApp(t, "destinations:\n"+webhookDest("sink", srv.URL, "    retry: {initial_interval: 50ms, max_interval: 200ms}\n")+"routes:\n  - name: all\n    to: [sink]\n")
	if code, body := h.post(fixtureEvent("retry-1", "RENEWAL")); code != 200 {
		t.Fatalf("post: %d %s", code, body)
	}
	seen := h.until("sink", "delivered", 20*time.Second)
	if len(seen) != 3 {
		t.Fatalf("%d dispatch records, want 3: %+v", len(seen), seen)
	}
	for i, d := range seen {
		if d.Attempt != i+1 {
			t.Errorf("record %d has attempt %d", i, d.Attempt)
		}
	}
	if s.count() != 3 {
		t.Fatalf("sink got %d requests, want 3", s.count())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	key := s.requests[0].Header.Get("Idempotency-Key")
	if key == "" {
		t.Fatal("no Idempotency-Key")
	}
	for i := range s.requests {
		if got := s.requests[i].Header.Get("Idempotency-Key"); got != key {
			t.Errorf("request %d Idempotency-Key %q, want %q", i, got, key)
		}
		if string(s.bodies[i]) != string(s.bodies[0]) {
			t.Errorf("request %d body differs", i)
		}
	}
	if string(s.bodies[0]) != string(fixtureEvent("retry-1", "RENEWAL")) {
		t.Errorf("body: raw mode must send RevenueCat's exact bytes, got %s", s.bodies[0])
	}
}

func TestPermanentFailureThenRetryFromAPI(t *testing.T) {
	s := &sink{codes: []int{400}}
	srv := httptest.NewServer(s)
	defer srv.Close()
	h := startApp(t, "destinations:\n"+webhookDest("sink", srv.URL, "")+"routes:\n  - name: all\n    to: [sink]\n")
	h.post(fixtureEvent("dead-1", "RENEWAL"))
	d := h.next("sink", 10*time.Second)
	if d.Status != "dead" || d.Attempt != 1 || d.Response.StatusCode != 400 {
		t.Fatalf("first dispatch %+v, want dead attempt 1 with 400", d)
	}
	if s.count() != 1 {
		t.Fatalf("sink got %d requests for a 400, want 1", s.count())
	}
	// The operator fixes the destination and retries from the API.
	s.set(func(s *sink) { s.codes = []int{200} })
	if code := h.api("POST", "/api/v1/deliveries/"+d.DeliveryID+"/retry", nil, nil); code != 200 {
		t.Fatalf("retry: %d", code)
	}
	d2 := h.next("sink", 10*time.Second)
	if d2.Status != "delivered" || d2.Attempt != 2 || d2.DeliveryID != d.DeliveryID {
		t.Fatalf("after retry %+v", d2)
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	s := &sink{codes: []int{429, 200}, headers: map[string]string{"Retry-After": "1"}}
	srv := httptest.NewServer(s)
	defer srv.Close()
	h := startApp(t, "destinations:\n"+webhookDest("sink", srv.URL, "    retry: {initial_interval: 10ms, max_interval: 1m}\n")+"routes:\n  - name: all\n    to: [sink]\n")
	h.post(fixtureEvent("ra-1", "RENEWAL"))
	first := h.next("sink", 10*time.Second)
	if first.Status != "retrying" || first.NextAttemptAt == nil {
		t.Fatalf("first %+v", first)
	}
	second := h.next("sink", 10*time.Second)
	if second.Status != "delivered" {
		t.Fatalf("second %+v", second)
	}
	if gap := second.CreatedAt.Sub(first.CreatedAt); gap < time.Second {
		t.Fatalf("second attempt %s after the first, want at least 1s (Retry-After: 1)", gap)
	}
}

func TestHangingSinkTimesOutAndRetries(t *testing.T) {
	s := &sink{block: make(chan struct{})}
	srv := httptest.NewServer(s)
	defer srv.Close()
	defer close(s.block)
	h := startApp(t, "destinations:\n"+webhookDest("sink", srv.URL, "    timeout: 300ms\n    retry: {initial_interval: 50ms, max_interval: 100ms}\n")+"routes:\n  - name: all\n    to: [sink]\n")
	h.post(fixtureEvent("hang-1", "RENEWAL"))
	d := h.next("sink", 15*time.Second)
	if d.Response.Error == "" || d.Response.StatusCode != 0 {
		t.Fatalf("dispatch %+v, want a timeout error", d)
	}
	if d.DurationMs < 250 || d.DurationMs > 2000 {
		t.Errorf("timed out after %d ms, want about 300", d.DurationMs)
	}
	// It keeps retrying.
	deadline := time.Now().Add(10 * time.Second)
	for d.Status != "retrying" || s.count() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("no retry after timeout: %+v, %d requests", d, s.count())
		}
		d = h.next("sink", 10*time.Second)
	}
}

// TestSlowDestinationDoesNotDelayAnother measures the delivery latency of a
// fast destination while another one takes 5 s per request.
func TestSlowDestinationDoesNotDelayAnother(t *testing.T) {
	if testing.Short() {
		t.Skip("takes 5 s")
	}
	slow := &sink{delay: 5 * time.Second}
	fast := &sink{}
	slowSrv, fastSrv := httptest.NewServer(slow), httptest.NewServer(fast)
	defer slowSrv.Close()
	defer fastSrv.Close()
	h := startApp(t, "destinations:\n"+webhookDest("slow", slowSrv.URL, "    timeout: 10s\n    concurrency: 1\n")+
		webhookDest("fast", fastSrv.URL, "")+"routes:\n  - name: all\n    to: [slow, fast]\n")
	var worst time.Duration
	for i := 0; i < 5; i++ {
		start := time.Now()
		h.post(fixtureEvent(fmt.Sprintf("iso-%d", i), "RENEWAL"))
		d := h.next("fast", 10*time.Second)
		if d.Status != "delivered" {
			t.Fatalf("fast: %+v", d)
		}
		worst = max(worst, time.Since(start))
	}
	if worst > time.Second {
		t.Fatalf("fast destination took up to %s while the slow one was busy", worst)
	}
	t.Logf("fast destination: worst post-to-delivered latency %s while the slow one takes 5s per request", worst)
}

func TestDispatchRecordIsCompleteAndRedacted(t *testing.T) {
	s := &sink{codes: []int{500, 200}}
	srv := httptest.NewServer(s)
	defer srv.Close()
	h := startApp(t, "destinations:\n"+webhookDest("sink", srv.URL,
		"    retry: {initial_interval: 10ms, max_interval: 50ms}\n")+
		"  signed:\n    webhook:\n      url: "+srv.URL+"\n      headers: {X-Api-Key: \"hdr-secret-5a6b7c\"}\n      signing_secret: \"whsec_c2lnbmluZy1zZWNyZXQtOWQ4ZQ==\"\n"+
		"routes:\n  - name: all\n    to: [signed]\n")
	h.post(fixtureEvent("fields-1", "RENEWAL"))
	seen := h.until("signed", "delivered", 10*time.Second)
	var list struct {
		Items []map[string]any `json:"items"`
	}
	if code := h.api("GET", "/api/v1/dispatches?destination=signed", nil, &list); code != 200 || len(list.Items) != len(seen) {
		t.Fatalf("list: %d, %d items, want %d", code, len(list.Items), len(seen))
	}
	for _, item := range list.Items {
		for _, field := range []string{"id", "delivery_id", "event_id", "event_type", "destination", "route", "attempt", "status", "request", "response", "duration_ms", "created_at", "next_attempt_at"} {
			if _, ok := item[field]; !ok {
				t.Errorf("dispatch lacks %q: %v", field, item)
			}
		}
		req := item["request"].(map[string]any)
		for _, f := range []string{"method", "url", "headers", "body"} {
			if req[f] == nil || req[f] == "" {
				t.Errorf("request.%s empty", f)
			}
		}
		b, _ := json.Marshal(item)
		if leak := containsAny(string(b), "hdr-secret-5a6b7c", "c2lnbmluZy1zZWNyZXQtOWQ4ZQ", "signing-secret-9d8e"); leak != "" {
			t.Errorf("dispatch leaks %q: %s", leak, b)
		}
		if got := req["headers"].(map[string]any)["X-Api-Key"]; got != "<secret>" {
			t.Errorf("secret header shown as %v, want <secret>", got)
		}
	}
	var one map[string]any
	if code := h.api("GET", "/api/v1/dispatches/"+seen[0].ID, nil, &one); code != 200 || one["id"] != seen[0].ID {
		t.Fatalf("get one: %d %v", code, one)
	}
}

func TestCircuitBreakerOpensAndProbeCloses(t *testing.T) {
	s := &sink{codes: []int{503}}
	srv := httptest.NewServer(s)
	defer srv.Close()
	h := startApp(t, "destinations:\n"+webhookDest("sink", srv.URL,
		"    concurrency: 1\n    retry: {initial_interval: 10ms, max_interval: 20ms, max_attempts: 100}\n    circuit_breaker: {failure_threshold: 2, open_for: 1s}\n")+
		"routes:\n  - name: all\n    to: [sink]\n")
	h.post(fixtureEvent("cb-1", "RENEWAL"))
	// After two failed Sends the breaker opens and nothing is attempted.
	h.waitState("sink", "circuit_open", 10*time.Second)
	count := s.count()
	s.set(func(s *sink) { s.codes = []int{200} })
	h.until("sink", "delivered", 10*time.Second)
	if got := s.count() - count; got != 1 {
		t.Errorf("sink got %d requests after the breaker opened, want exactly one probe", got)
	}
	h.waitState("sink", "healthy", 5*time.Second)
}

// TestReloadUnderLoad reloads a config that adds a route, then a broken
// one, while deliveries are flowing.
func TestReloadUnderLoad(t *testing.T) {
	a, b := &sink{delay: 20 * time.Millisecond}, &sink{}
	aSrv, bSrv := httptest.NewServer(a), httptest.NewServer(b)
	defer aSrv.Close()
	defer bSrv.Close()
	dests := "destinations:\n" + webhookDest("a", aSrv.URL, "") + webhookDest("b", bSrv.URL, "")
	h := startApp(t, dests+"routes:\n  - name: to-a\n    to: [a]\n")

	const before = 50
	for i := 0; i < before; i++ {
		h.post(fixtureEvent(fmt.Sprintf("rl-%d", i), "RENEWAL"))
	}
	// Add a route to b while a's deliveries are in flight.
	if err := os.WriteFile(h.cfg, []byte(configHead()+dests+"routes:\n  - name: to-a\n    to: [a]\n  - name: to-b\n    to: [b]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var res map[string]any
	if code := h.api("POST", "/api/v1/reload", nil, &res); code != 200 {
		t.Fatalf("reload: %d %v", code, res)
	}
	_, body := h.post(fixtureEvent("rl-after", "RENEWAL"))
	if !strings.Contains(body, `"destinations":["a","b"]`) {
		t.Fatalf("after reload: %s", body)
	}
	// A broken config is refused; the old one keeps running.
	if err := os.WriteFile(h.cfg, []byte(configHead()+dests+"routes:\n  - name: to-a\n    to: [nowhere]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code := h.api("POST", "/api/v1/reload", nil, &res); code != 422 || !strings.Contains(fmt.Sprint(res["error"]), `unknown destination "nowhere"`) {
		t.Fatalf("broken reload: %d %v", code, res)
	}
	if !strings.Contains(h.logs.String(), "config reload refused") {
		t.Errorf("refusal not logged")
	}
	_, body = h.post(fixtureEvent("rl-after-2", "RENEWAL"))
	if !strings.Contains(body, `"destinations":["a","b"]`) {
		t.Fatalf("after refused reload: %s", body)
	}
	// No in-flight work was lost: every event reaches a.
	deadline := time.Now().Add(20 * time.Second)
	for a.count() < before+2 {
		if time.Now().After(deadline) {
			t.Fatalf("a got %d of %d deliveries", a.count(), before+2)
		}
		h.next("a", 20*time.Second)
	}
	if st := h.app.LastReload(); st.OK || st.Error == "" {
		t.Errorf("last reload status %+v, want the refusal", st)
	}
}

func TestUnroutedEventIsStored(t *testing.T) {
	h := startApp(t, "destinations:\n  archive:\n    file: {path: data/events.jsonl}\nroutes:\n  - name: sandbox-only\n    match: {environment: SANDBOX}\n    to: [archive]\n")
	code, body := h.post(fixtureEvent("unrouted-1", "RENEWAL"))
	if code != 200 || !strings.Contains(body, `"destinations":[]`) {
		t.Fatalf("post: %d %s", code, body)
	}
	var ev struct {
		Routes     []map[string]any `json:"routes"`
		Deliveries []any            `json:"deliveries"`
	}
	if code := h.api("GET", "/api/v1/events/unrouted-1", nil, &ev); code != 200 || len(ev.Deliveries) != 0 || len(ev.Routes) != 1 || ev.Routes[0]["matched"] != false {
		t.Fatalf("event: %d %+v", code, ev)
	}
}

func TestAdminAPIRequiresToken(t *testing.T) {
	h := startApp(t, "destinations:\n  archive:\n    file: {path: data/events.jsonl}\nroutes:\n  - name: all\n    to: [archive]\n")
	for _, path := range []string{"/api/v1/destinations", "/api/v1/dispatches", "/api/v1/events/x", "/api/v1/stream"} {
		resp, err := http.Get(h.base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Errorf("%s without token: %d", path, resp.StatusCode)
		}
	}
}

// TestDrainDelayFailsReadinessFirst: with a drain delay, /readyz answers 503
// while the listener still serves, then the process stops. The delay runs on
// a fake clock: while the test holds time still, the process must keep
// serving however long it takes; only moving the clock past the delay ends it.
func TestDrainDelayFailsReadinessFirst(t *testing.T) {
	const drain = 300 * time.Millisecond
	clk := clock.NewFake(time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC))
	dir := t.TempDir()
	path := dir + "/config.yaml"
	os.WriteFile(path, []byte(configHead()+"destinations:\n  archive:\n    file: {path: data/events.jsonl}\nroutes:\n  - name: all\n    to: [archive]\n"), 0o600)
	h := startAppAt(t, path, func(o *Options) { o.Clock, o.DrainDelay = clk, drain })
	get := func(path string) int {
		resp, err := http.Get(h.base + path)
		if err != nil {
			t.Fatalf("GET %s: listener closed before the drain delay ended: %v", path, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	h.cancel()
	testutil.Eventually(t, 5*time.Second, func() bool { return get("/readyz") == http.StatusServiceUnavailable }, "/readyz never failed")
	if code := get("/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz while draining: %d", code)
	}
	select {
	case err := <-h.done:
		t.Fatalf("Run returned (%v) before the clock reached the drain delay", err)
	default:
	}
	// The drain timer may be made just after /readyz turned: advancing until
	// Run returns covers both orders.
	var runErr error
	testutil.Eventually(t, 5*time.Second, func() bool {
		clk.Advance(drain)
		select {
		case runErr = <-h.done:
			return true
		default:
			return false
		}
	}, "Run did not return after the drain delay")
	if runErr != nil {
		t.Fatal(runErr)
	}
	h.stopFn = nil
}
