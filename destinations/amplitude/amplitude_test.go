package amplitude

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/rcrouter/rcrouter/destinations"
	"github.com/rcrouter/rcrouter/destinations/destinationstest"
	"github.com/rcrouter/rcrouter/destinations/internal/fakevendor"
	"github.com/rcrouter/rcrouter/internal/event"
	"github.com/rcrouter/rcrouter/internal/secret"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the current output")

const testKey = "amp_test_key_0123456789"

const ok200 = `{"code":200,"events_ingested":1,"payload_size_bytes":100,"server_upload_time":1}`

func newDest(t *testing.T, url string, cfg Config) *Destination {
	t.Helper()
	cfg.APIKey = secret.Secret(testKey)
	cfg.Endpoint = url
	d, err := New("amplitude-test", cfg, destinations.Options{Timeout: 5 * time.Second, MaxBody: 1 << 20, Version: "test"})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return d
}

func sent(t *testing.T, body []byte) request {
	t.Helper()
	var r request
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("body is not a request: %v\n%s", err, body)
	}
	return r
}

// TestGoldenFixtures sends every fixture alone and compares the exact body
// Amplitude received (indented) with testdata/golden.
func TestGoldenFixtures(t *testing.T) {
	f := destinationstest.NewServer(t, destinationstest.Reply{Status: 200, Body: ok200})
	d := newDest(t, f.URL, Config{})
	fakevendor.Goldens(t, f, testKey, []string{"/2/httpapi"}, *update, func(key string, e *event.Event) destinations.Result {
		return d.Send(context.Background(), destinations.Delivery{Key: key, Destination: "amplitude-test", Event: e})
	})
}

func TestIdentity(t *testing.T) {
	tests := []struct {
		name             string
		user             string
		attrs            map[string]string
		wantUser, wantDv string
	}{
		{"app user id", "user_1", nil, "user_1", ""},
		{"amplitude user id wins", "user_1", map[string]string{UserIDAttribute: "amp-user"}, "amp-user", ""},
		{"device id added", "user_1", map[string]string{DeviceIDAttribute: "dev-9"}, "user_1", "dev-9"},
		{"both attributes", "user_1", map[string]string{UserIDAttribute: "amp-user", DeviceIDAttribute: "dev-9"}, "amp-user", "dev-9"},
		{"device id only, no app user id", "", map[string]string{DeviceIDAttribute: "dev-9"}, "", "dev-9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := Build(fakevendor.Purchase("e1", tt.user, tt.attrs), "rc_initial_purchase_event", "k", "gross")
			if ev.UserID != tt.wantUser || ev.DeviceID != tt.wantDv {
				t.Errorf("user_id, device_id = %q, %q; want %q, %q", ev.UserID, ev.DeviceID, tt.wantUser, tt.wantDv)
			}
		})
	}
}

func TestRevenueModes(t *testing.T) {
	tests := []struct {
		mode string
		want float64
	}{
		{"gross", 10.84},
		{"proceeds", 9.214},
		{"proceeds_after_tax", 7.482852},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			ev := Build(fakevendor.Purchase("e1", "u1", nil), "n", "k", tt.mode)
			if ev.Revenue == nil || *ev.Revenue != tt.want || ev.ProductID != "pro_monthly" {
				t.Errorf("revenue, productId = %v, %q; want %v, pro_monthly", ev.Revenue, ev.ProductID, tt.want)
			}
		})
	}
	t.Run("unknown price", func(t *testing.T) {
		e := fakevendor.Purchase("e1", "u1", nil)
		e.Price = nil
		if ev := Build(e, "n", "k", "gross"); ev.Revenue != nil || ev.ProductID != "" {
			t.Errorf("revenue, productId = %v, %q; want none", ev.Revenue, ev.ProductID)
		}
	})
}

func TestSkipped(t *testing.T) {
	f := destinationstest.NewServer(t, destinationstest.Reply{Status: 200, Body: ok200})
	transfer := fakevendor.Purchase("t1", "", nil)
	transfer.Type, transfer.Lifecycle = event.TypeTransfer, event.Transferred
	noID := fakevendor.Purchase("n1", "", nil)
	noID.UserID = ""
	tests := []struct {
		name   string
		events map[string]string
		e      *event.Event
		want   string
	}{
		{"transfer has no name", nil, transfer, "no Amplitude event name for TRANSFER (transferred): RevenueCat's integration does not send it; name it under events to send it"},
		{"turned off by an empty name", map[string]string{"INITIAL_PURCHASE": ""}, fakevendor.Purchase("p1", "u1", nil), "no Amplitude event name for INITIAL_PURCHASE (subscription_started): RevenueCat's integration does not send it; name it under events to send it"},
		{"no user and no device", nil, noID, "Amplitude needs a user_id or device_id: the event has no app user id and no $amplitudeUserId or $amplitudeDeviceId attribute"},
	}
	for _, tt := range tests {
		fakevendor.CheckSkipped(t, f, tt.name, func() destinations.Result {
			return newDest(t, f.URL, Config{Events: tt.events}).Send(context.Background(), destinations.Delivery{Key: "k", Event: tt.e})
		}, tt.want)
	}
}

// TestInsertIDStableAcrossRetries: a 503 then a 200 send the same insert_id.
func TestInsertIDStableAcrossRetries(t *testing.T) {
	f := destinationstest.NewServerFunc(t, func(n int, _ *http.Request) destinationstest.Reply {
		if n == 0 {
			return destinationstest.Reply{Status: 503, Body: "upstream unavailable"}
		}
		return destinationstest.Reply{Status: 200, Body: ok200}
	})
	d := newDest(t, f.URL, Config{})
	dl := destinations.Delivery{Key: "evt-1:amplitude-test", Event: fakevendor.Purchase("evt-1", "user_1", nil)}
	first := d.Send(context.Background(), dl)
	if first.Outcome != destinations.Retry || first.Reason != destinations.ReasonServerError {
		t.Fatalf("first = %s/%s %q; want retry/server_error", first.Outcome, first.Reason, first.Message)
	}
	if want := "amplitude answered HTTP 503 Service Unavailable: upstream unavailable"; first.Message != want {
		t.Errorf("message = %q, want %q", first.Message, want)
	}
	second := d.Send(context.Background(), dl)
	if second.Outcome != destinations.Delivered {
		t.Fatalf("second = %s %q; want delivered", second.Outcome, second.Message)
	}
	reqs := f.Requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	a, b := sent(t, reqs[0].Body).Events[0].InsertID, sent(t, reqs[1].Body).Events[0].InsertID
	if a != b || a != "evt-1:amplitude-test" {
		t.Errorf("insert_ids = %q, %q; want both evt-1:amplitude-test", a, b)
	}
}

func TestAnswers(t *testing.T) {
	destinationstest.Run(t, []destinationstest.Case{
		{Name: "missing field", Replies: []destinationstest.Reply{{Status: 400, Body: `{"code":400,"error":"Request missing required field","missing_field":"api_key"}`}},
			Outcome: destinations.Permanent, Reason: destinations.ReasonRejected,
			Message: "amplitude rejected the request: Request missing required field (missing_field: api_key)"},
		{Name: "invalid field of the one event", Replies: []destinationstest.Reply{{Status: 400, Body: `{"code":400,"error":"Invalid field values on some events","events_with_invalid_fields":{"time":[0]}}`}},
			Outcome: destinations.Permanent, Reason: destinations.ReasonRejected,
			Message: "amplitude rejected the event: invalid field time"},
		{Name: "too large", Replies: []destinationstest.Reply{{Status: 413, Body: `{"code":413,"error":"Payload too big"}`}},
			Outcome: destinations.Permanent, Reason: destinations.ReasonRejected,
			Message: "amplitude rejected the event as too large (HTTP 413; its limit is 1 MB per request)"},
		{Name: "throttled with Retry-After", Replies: []destinationstest.Reply{{Status: 429, Header: map[string]string{"Retry-After": "12"}, Body: `{"code":429,"error":"Too many requests for some devices and users"}`}},
			Outcome: destinations.Retry, Reason: destinations.ReasonRateLimited, RetryAfter: 12 * time.Second,
			Message: `amplitude throttled the request (HTTP 429; a user or device above 30 events/s): {"code":429,"error":"Too many requests for some devices and users"}`},
		{Name: "throttled without Retry-After", Replies: []destinationstest.Reply{{Status: 429, Body: `{"code":429}`}},
			Outcome: destinations.Retry, Reason: destinations.ReasonRateLimited, RetryAfter: 30 * time.Second,
			Message: `amplitude throttled the request (HTTP 429; a user or device above 30 events/s): {"code":429}`},
		{Name: "server error", Replies: []destinationstest.Reply{{Status: 500, Body: `oops`}},
			Outcome: destinations.Retry, Reason: destinations.ReasonServerError,
			Message: "amplitude answered HTTP 500 Internal Server Error: oops"},
		{Name: "bad key", Replies: []destinationstest.Reply{{Status: 401, Body: `{"code":401,"error":"Invalid API key"}`}},
			Outcome: destinations.Permanent, Reason: destinations.ReasonClientError,
			Message: `amplitude answered HTTP 401 Unauthorized: {"code":401,"error":"Invalid API key"}`},
	}, func(t *testing.T, _ destinationstest.Case, srv *destinationstest.Server) destinations.Result {
		return newDest(t, srv.URL, Config{}).Send(context.Background(), destinations.Delivery{Key: "k1", Event: fakevendor.Purchase("e1", "u1", nil)})
	})
	t.Run("network error", func(t *testing.T) {
		f := destinationstest.NewServer(t, destinationstest.Reply{Status: 200, Body: ok200})
		url := f.URL
		f.Close()
		d := newDest(t, url, Config{})
		res := d.Send(context.Background(), destinations.Delivery{Key: "k1", Event: fakevendor.Purchase("e1", "u1", nil)})
		if res.Outcome != destinations.Retry || res.Reason != destinations.ReasonNetwork || len(res.Exchanges) != 1 || res.Exchanges[0].Response.Error == "" {
			t.Errorf("result = %s/%s %q with %d exchanges; want retry/network with the error recorded", res.Outcome, res.Reason, res.Message, len(res.Exchanges))
		}
	})
}

func batchOf(t *testing.T, n int, answer func(int, *http.Request) destinationstest.Reply) (map[string]destinations.Result, []destinationstest.Request) {
	t.Helper()
	return fakevendor.Burst(t, n, destinationstest.Reply{Status: 200, Body: ok200}, answer, func(url string) fakevendor.Sender {
		d := newDest(t, url, Config{})
		return fakevendor.Sender{
			Send: func(id string) destinations.Result {
				return d.Send(context.Background(), destinations.Delivery{Key: id, Event: fakevendor.Purchase(id, "user-"+id, nil)})
			},
			Queued: d.batches.Queued,
		}
	})
}

func ids(t *testing.T, body []byte) []string {
	var out []string
	for _, e := range sent(t, body).Events {
		out = append(out, e.InsertID)
	}
	return out
}

func TestBatchPartlyRejected(t *testing.T) {
	results, reqs := batchOf(t, 3, func(i int, r *http.Request) destinationstest.Reply {
		if i == 0 {
			return destinationstest.Reply{Status: 400, Body: `{"code":400,"error":"Invalid field values on some events","events_with_invalid_fields":{"time":[1]}}`}
		}
		return destinationstest.Reply{Status: 200, Body: ok200}
	})
	if len(reqs) != 2 {
		t.Fatalf("%d requests after the first, want 2 (the batch, then the rest)", len(reqs))
	}
	first, second := ids(t, reqs[0].Body), ids(t, reqs[1].Body)
	if len(first) != 3 || len(second) != 2 || second[0] != first[0] || second[1] != first[2] {
		t.Fatalf("batches = %q then %q; want the second without the rejected one", first, second)
	}
	bad := results[first[1]]
	if bad.Outcome != destinations.Permanent || bad.Message != "amplitude rejected the event: invalid field time" || len(bad.Exchanges) != 1 {
		t.Errorf("rejected event = %s %q with %d exchanges", bad.Outcome, bad.Message, len(bad.Exchanges))
	}
	for _, id := range second {
		if r := results[id]; r.Outcome != destinations.Delivered || len(r.Exchanges) != 2 {
			t.Errorf("%s = %s %q with %d exchanges; want delivered after 2", id, r.Outcome, r.Message, len(r.Exchanges))
		}
	}
}

func TestBatchTooLargeIsSplit(t *testing.T) {
	results, reqs := batchOf(t, 4, func(i int, r *http.Request) destinationstest.Reply {
		if len(sent(t, fakevendor.Body(r)).Events) > 2 {
			return destinationstest.Reply{Status: 413, Body: `{"code":413,"error":"Payload too big"}`}
		}
		return destinationstest.Reply{Status: 200, Body: ok200}
	})
	var sizes []int
	for _, r := range reqs {
		sizes = append(sizes, len(sent(t, r.Body).Events))
	}
	if fmt.Sprint(sizes) != "[4 2 2]" {
		t.Fatalf("request sizes = %v, want [4 2 2]", sizes)
	}
	for id, r := range results {
		if id != "first" && (r.Outcome != destinations.Delivered || len(r.Exchanges) != 2) {
			t.Errorf("%s = %s %q with %d exchanges; want delivered after 2", id, r.Outcome, r.Message, len(r.Exchanges))
		}
	}
}

// TestConcurrentSendsAreBatched: 150 concurrent deliveries reach Amplitude
// in a few requests of at most BatchSize events, each event exactly once.
func TestConcurrentSendsAreBatched(t *testing.T) {
	results, reqs := batchOf(t, 150, func(int, *http.Request) destinationstest.Reply {
		return destinationstest.Reply{Status: 200, Body: ok200}
	})
	seen := map[string]int{}
	var sizes []int
	for _, r := range reqs {
		got := ids(t, r.Body)
		sizes = append(sizes, len(got))
		for _, id := range got {
			seen[id]++
		}
	}
	if fmt.Sprint(sizes) != "[100 50]" {
		t.Errorf("events per request = %v, want [100 50]", sizes)
	}
	if len(seen) != 150 {
		t.Errorf("%d distinct events sent, want 150", len(seen))
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("%s sent %d times", id, n)
		}
	}
	for id, r := range results {
		if r.Outcome != destinations.Delivered || len(r.Exchanges) != 1 {
			t.Errorf("%s = %s with %d exchanges", id, r.Outcome, len(r.Exchanges))
		}
	}
}

func TestSecretNeverShown(t *testing.T) {
	f := destinationstest.NewServerFunc(t, func(_ int, r *http.Request) destinationstest.Reply {
		return destinationstest.Reply{Status: 400, Body: `{"error":"bad key ` + testKey + `"}`}
	})
	d := newDest(t, f.URL, Config{})
	res := d.Send(context.Background(), destinations.Delivery{Key: "k", Event: fakevendor.Purchase("e", "u", nil)})
	fakevendor.NoSecret(t, testKey, res, d)
}

func TestValidate(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  destinations.Block
		want string
	}{
		{"ok", &Config{APIKey: "k"}, ""},
		{"no key", &Config{}, "api_key: required (the API key of the Amplitude project)"},
		{"bad endpoint", &Config{APIKey: "k", Endpoint: "api2.amplitude.com"},
			`endpoint: must be an absolute http(s) URL, got "api2.amplitude.com"`},
		{"bad mode", &Config{APIKey: "k", SalesReporting: "net"}, `sales_reporting: must be gross, proceeds or proceeds_after_tax, got "net"`},
		{"bad events key", &Config{APIKey: "k", Events: map[string]string{"renewal": "x"}},
			`events.renewal: unknown event type or lifecycle "renewal": types are UPPER_CASE (RENEWAL), lifecycles are one of trial_started, trial_converted, trial_cancelled, subscription_started, renewed, cancelled, uncancelled, expired, billing_issue, refunded, product_changed, paused, transferred, extended, one_time_purchase, other`},
	} {
		fakevendor.CheckValidate(t, tt.name, tt.cfg, tt.want)
	}
}
