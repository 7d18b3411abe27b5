package posthog

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/rcrouter/rcrouter/destinations"
	"github.com/rcrouter/rcrouter/destinations/destinationstest"
	"github.com/rcrouter/rcrouter/destinations/internal/fakevendor"
	"github.com/rcrouter/rcrouter/internal/event"
	"github.com/rcrouter/rcrouter/internal/revenuecat"
	"github.com/rcrouter/rcrouter/internal/secret"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the current output")

const testKey = "phc_test_key_0123456789"

var okReply = destinationstest.Reply{Status: 200, Body: `{"status":"Ok"}`}

func newDest(t *testing.T, url string, cfg Config) *Destination {
	t.Helper()
	cfg.APIKey = secret.Secret(testKey)
	cfg.Endpoint = url
	d, err := New("posthog-test", cfg, destinations.Options{Timeout: 5 * time.Second, MaxBody: 1 << 20, Version: "test"})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return d
}

func send(d *Destination, key string, e *event.Event) destinations.Result {
	return d.Send(context.Background(), destinations.Delivery{Key: key, Destination: "posthog-test", Event: e})
}

func sent(t *testing.T, body []byte) request {
	t.Helper()
	var r request
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("body is not a batch: %v\n%s", err, body)
	}
	return r
}

// TestGoldenFixtures sends every fixture alone and compares the exact body
// PostHog received (indented) with testdata/golden.
func TestGoldenFixtures(t *testing.T) {
	f := destinationstest.NewServer(t, destinationstest.Reply{Status: 200, Body: okReply.Body})
	d := newDest(t, f.URL, Config{})
	fakevendor.Goldens(t, f, testKey, []string{"/batch/"}, *update, func(key string, e *event.Event) destinations.Result {
		return send(d, key, e)
	})
}

func TestIdentity(t *testing.T) {
	tests := []struct {
		name  string
		user  string
		attrs map[string]string
		want  string
	}{
		{"app user id", "user_1", nil, "user_1"},
		{"posthog user id wins", "user_1", map[string]string{UserIDAttribute: "ph-7"}, "ph-7"},
		{"attribute without app user id", "", map[string]string{UserIDAttribute: "ph-7"}, "ph-7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if ev := Build(fakevendor.Purchase("e1", tt.user, tt.attrs), "n", "k", "gross", "v"); ev.DistinctID != tt.want {
				t.Errorf("distinct_id = %q, want %q", ev.DistinctID, tt.want)
			}
		})
	}
}

func TestRevenueModes(t *testing.T) {
	tests := []struct {
		mode string
		want any
	}{
		{"gross", 10.84},
		{"proceeds", 9.214},
		{"proceeds_after_tax", 7.482852},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			if got := Build(fakevendor.Purchase("e1", "u1", nil), "n", "k", tt.mode, "v").Properties["revenue"]; got != tt.want {
				t.Errorf("revenue = %v, want %v", got, tt.want)
			}
		})
	}
	t.Run("unknown price", func(t *testing.T) {
		e := fakevendor.Purchase("e1", "u1", nil)
		e.Price = nil
		if got, ok := Build(e, "n", "k", "gross", "v").Properties["revenue"]; ok {
			t.Errorf("revenue = %v, want none", got)
		}
	})
}

// TestUUID: the uuid is a version-5 UUID of the delivery key, the same on
// every retry and different per destination.
func TestUUID(t *testing.T) {
	e := fakevendor.Purchase("e1", "u1", nil)
	a, b := Build(e, "n", "e1:posthog-a", "gross", "v").UUID, Build(e, "n", "e1:posthog-a", "gross", "v").UUID
	other := Build(e, "n", "e1:posthog-b", "gross", "v").UUID
	if a != b || a == other || !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(a) {
		t.Errorf("uuids = %q, %q, other destination %q", a, b, other)
	}
}

func TestSkipped(t *testing.T) {
	f := destinationstest.NewServer(t, destinationstest.Reply{Status: 200, Body: okReply.Body})
	noID := fakevendor.Purchase("n1", "", nil)
	noID.UserID = ""
	test := fakevendor.Purchase("t1", "u1", nil)
	test.Type, test.IsTest = event.TypeTest, true
	revenuecat.Normalize(test)
	tests := []struct {
		name   string
		events map[string]string
		e      *event.Event
		want   string
	}{
		{"test event", nil, test, "no PostHog event name for TEST (other): RevenueCat's integration does not send it; name it under events to send it"},
		{"no distinct id", nil, noID, "PostHog needs a distinct_id: the event has no app user id and no $posthogUserId attribute"},
	}
	for _, tt := range tests {
		fakevendor.CheckSkipped(t, f, tt.name, func() destinations.Result { return send(newDest(t, f.URL, Config{Events: tt.events}), "k", tt.e) }, tt.want)
	}
}

func TestUUIDStableAcrossRetries(t *testing.T) {
	f := destinationstest.NewServerFunc(t, func(n int, _ *http.Request) destinationstest.Reply {
		if n == 0 {
			return destinationstest.Reply{Status: 503, Body: "busy"}
		}
		return okReply
	})
	d := newDest(t, f.URL, Config{})
	e := fakevendor.Purchase("evt-1", "user_1", nil)
	if first := send(d, "evt-1:posthog-test", e); first.Outcome != destinations.Retry || first.Message != "posthog answered HTTP 503 Service Unavailable: busy" {
		t.Fatalf("first = %s %q; want retry", first.Outcome, first.Message)
	}
	if second := send(d, "evt-1:posthog-test", e); second.Outcome != destinations.Delivered {
		t.Fatalf("second = %s %q; want delivered", second.Outcome, second.Message)
	}
	reqs := f.Requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	if a, b := sent(t, reqs[0].Body).Batch[0].UUID, sent(t, reqs[1].Body).Batch[0].UUID; a != b {
		t.Errorf("uuid = %q then %q; want the same", a, b)
	}
}

func TestAnswers(t *testing.T) {
	destinationstest.Run(t, []destinationstest.Case{
		{Name: "invalid event", Replies: []destinationstest.Reply{{Status: 400, Body: `{"type":"validation_error","code":"invalid_payload","detail":"Invalid payload"}`}},
			Outcome: destinations.Permanent, Reason: destinations.ReasonRejected,
			Message: `posthog rejected the event: {"type":"validation_error","code":"invalid_payload","detail":"Invalid payload"}`},
		{Name: "bad key", Replies: []destinationstest.Reply{{Status: 401, Body: `{"type":"authentication_error","code":"invalid_api_key","detail":"Project API key invalid."}`}},
			Outcome: destinations.Permanent, Reason: destinations.ReasonClientError,
			Message: `posthog rejected the project API key (HTTP 401): {"type":"authentication_error","code":"invalid_api_key","detail":"Project API key invalid."}`},
		{Name: "too large", Replies: []destinationstest.Reply{{Status: 413, Body: ``}},
			Outcome: destinations.Permanent, Reason: destinations.ReasonRejected,
			Message: "posthog rejected the event as too large (HTTP 413)"},
		{Name: "rate limited", Replies: []destinationstest.Reply{{Status: 429, Header: map[string]string{"Retry-After": "30"}, Body: `slow down`}},
			Outcome: destinations.Retry, Reason: destinations.ReasonRateLimited, RetryAfter: 30 * time.Second, Pause: true,
			Message: "posthog answered HTTP 429 Too Many Requests: slow down"},
		{Name: "server error", Replies: []destinationstest.Reply{{Status: 500, Body: `oops`}},
			Outcome: destinations.Retry, Reason: destinations.ReasonServerError,
			Message: "posthog answered HTTP 500 Internal Server Error: oops"},
	}, func(t *testing.T, _ destinationstest.Case, srv *destinationstest.Server) destinations.Result {
		return send(newDest(t, srv.URL, Config{}), "k1", fakevendor.Purchase("e1", "u1", nil))
	})
}

func burst(t *testing.T, n int, answer func(int, *http.Request) destinationstest.Reply) (map[string]destinations.Result, []destinationstest.Request) {
	t.Helper()
	return fakevendor.Burst(t, n, okReply, answer, func(url string) fakevendor.Sender {
		d := newDest(t, url, Config{})
		return fakevendor.Sender{
			Send:   func(id string) destinations.Result { return send(d, id, fakevendor.Purchase(id, "user-"+id, nil)) },
			Queued: d.batches.Queued,
		}
	})
}

// TestInvalidEventIsIsolated: a batch refused with 400 is split until the
// refused event is alone; the others are delivered.
func TestInvalidEventIsIsolated(t *testing.T) {
	results, reqs := burst(t, 4, func(_ int, r *http.Request) destinationstest.Reply {
		for _, ev := range sent(t, fakevendor.Body(r)).Batch {
			if ev.DistinctID == "user-e1" {
				return destinationstest.Reply{Status: 400, Body: `{"detail":"Invalid payload"}`}
			}
		}
		return okReply
	})
	var sizes []int
	for _, r := range reqs {
		sizes = append(sizes, len(sent(t, r.Body).Batch))
	}
	slices.Sort(sizes)
	if fmt.Sprint(sizes) != "[1 1 2 2 4]" {
		t.Errorf("request sizes = %v, want [1 1 2 2 4]", sizes)
	}
	for id, r := range results {
		want := destinations.Delivered
		if id == "e1" {
			want = destinations.Permanent
		}
		if r.Outcome != want {
			t.Errorf("%s = %s %q, want %s", id, r.Outcome, r.Message, want)
		}
	}
}

func TestConcurrentSendsAreBatched(t *testing.T) {
	results, reqs := burst(t, 120, func(int, *http.Request) destinationstest.Reply { return okReply })
	var sizes []int
	seen := map[string]bool{}
	for _, r := range reqs {
		b := sent(t, r.Body).Batch
		sizes = append(sizes, len(b))
		for _, ev := range b {
			if seen[ev.UUID] {
				t.Errorf("%s sent twice", ev.UUID)
			}
			seen[ev.UUID] = true
		}
	}
	if fmt.Sprint(sizes) != "[100 20]" || len(seen) != 120 {
		t.Errorf("events per request = %v (%d distinct), want [100 20] (120)", sizes, len(seen))
	}
	for id, r := range results {
		if r.Outcome != destinations.Delivered || len(r.Exchanges) != 1 {
			t.Errorf("%s = %s with %d exchanges", id, r.Outcome, len(r.Exchanges))
		}
	}
}

func TestSecretNeverShown(t *testing.T) {
	f := destinationstest.NewServer(t, destinationstest.Reply{Status: 401, Body: `{"detail":"key ` + testKey + ` invalid"}`})
	d := newDest(t, f.URL, Config{})
	res := send(d, "k", fakevendor.Purchase("e", "u", nil))
	fakevendor.NoSecret(t, testKey, res, d)
}

func TestValidate(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  destinations.Block
		want string
	}{
		{"ok", &Config{APIKey: "k", Endpoint: "https://eu.i.posthog.com"}, ""},
		{"no key", &Config{}, "api_key: required (the project API key of the PostHog project)"},
		{"bad mode and event", &Config{APIKey: "k", SalesReporting: "gross ", Events: map[string]string{"Renewal": "x"}},
			"sales_reporting: must be gross, proceeds or proceeds_after_tax, got \"gross \"\nevents.Renewal: unknown event type or lifecycle \"Renewal\": types are UPPER_CASE (RENEWAL), lifecycles are one of trial_started, trial_converted, trial_cancelled, subscription_started, renewed, cancelled, uncancelled, expired, billing_issue, refunded, product_changed, paused, transferred, extended, one_time_purchase, other"},
	} {
		fakevendor.CheckValidate(t, tt.name, tt.cfg, tt.want)
	}
}
