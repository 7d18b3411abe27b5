package segment

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rcrouter/rcrouter/destinations"
	"github.com/rcrouter/rcrouter/destinations/destinationstest"
	"github.com/rcrouter/rcrouter/destinations/internal/analytics"
	"github.com/rcrouter/rcrouter/internal/event"
	"github.com/rcrouter/rcrouter/internal/revenuecat"
	"github.com/rcrouter/rcrouter/internal/secret"
	"github.com/rcrouter/rcrouter/internal/testutil"
)

// TestGoldenFixtures sends every fixture of both fixture directories and
// compares the exact batch Segment received (batch-level sentAt and
// messageId normalized) with testdata/golden.
func TestGoldenFixtures(t *testing.T) {
	f := newFakeSegment(t, always(200), `{"success":true}`)
	// Two messages per batch and no timer flush: each Send is exactly one batch.
	d := newTestDestination(t, f.URL, Config{BatchSize: 2}, Options{FlushInterval: time.Hour, Options: destinations.Options{MaxBody: 1 << 20}})
	for _, fx := range testutil.Fixtures(t) {
		t.Run(fx.Dir+"/"+fx.Stem(), func(t *testing.T) {
			e, err := revenuecat.Decode(fx.Body)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			key := "golden:" + fx.Dir + ":" + fx.Stem()
			before := len(f.batches())
			res := d.Send(context.Background(), destinations.Delivery{ID: "d1", Key: key, Destination: "segment-test", Attempt: 1, Event: e})
			got := f.batches()[before:]
			var out []byte
			switch res.Outcome {
			case destinations.Skipped:
				if len(got) != 0 || len(res.Exchanges) != 0 {
					t.Fatalf("skipped event sent %d batches, %d exchanges", len(got), len(res.Exchanges))
				}
				out, _ = json.MarshalIndent(map[string]string{"skipped": res.Message, "reason": string(res.Reason)}, "", "  ")
			case destinations.Delivered:
				if len(got) != 1 || len(res.Exchanges) != 1 {
					t.Fatalf("got %d batches and %d exchanges, want 1 and 1", len(got), len(res.Exchanges))
				}
				track, identify := MessageIDs(key)
				if !slices.Equal(got[0].ids, []string{track, identify}) {
					t.Fatalf("batch message ids = %q, want %q", got[0].ids, []string{track, identify})
				}
				x := res.Exchanges[0]
				if x.Request.Headers["Authorization"] != secret.Redacted {
					t.Errorf("Authorization in the exchange = %q, want %q", x.Request.Headers["Authorization"], secret.Redacted)
				}
				if want := ownMessages(t, got[0].body); x.Request.Body != want {
					t.Errorf("exchange body =\n%s\nwant the delivery's own messages\n%s", x.Request.Body, want)
				}
				out = normalizeBatch(t, got[0].body)
			default:
				t.Fatalf("outcome %s (%s): %s", res.Outcome, res.Reason, res.Message)
			}
			testutil.Golden(t, filepath.Join("testdata", "golden", fx.Dir, fx.Name), append(out, '\n'), *update)
		})
	}
}

// normalizeBatch replaces what analytics-go generates per request (sentAt,
// the batch messageId) and indents the rest, unchanged, for a golden file.
func normalizeBatch(t *testing.T, body []byte) []byte {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"sentAt", "messageId"} {
		if _, ok := m[k]; !ok {
			t.Fatalf("batch has no %s", k)
		}
		m[k] = json.RawMessage(`"(normalized)"`)
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ownMessages is what onExchange records as a delivery's request body when
// every message of the batch is the delivery's.
func ownMessages(t *testing.T, body []byte) string {
	t.Helper()
	var b batchBody
	if err := json.Unmarshal(body, &b); err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(b)
	return string(out)
}

func TestSendDelivered(t *testing.T) {
	f := newFakeSegment(t, always(200), `{"success":true}`)
	d := newTestDestination(t, f.URL, Config{BatchSize: 2}, Options{FlushInterval: time.Hour})
	res := d.Send(context.Background(), destinations.Delivery{Key: "evt-1:segment-test", Destination: "segment-test", Event: purchase("evt-1", "user_1")})
	if res.Outcome != destinations.Delivered || res.Reason != destinations.ReasonNone || res.Message != "" {
		t.Fatalf("result = %s/%s %q, want delivered", res.Outcome, res.Reason, res.Message)
	}
	if len(res.Exchanges) != 1 {
		t.Fatalf("%d exchanges, want 1", len(res.Exchanges))
	}
	x := res.Exchanges[0]
	if x.Request.Method != "POST" || x.Request.URL != f.URL+"/v1/batch" {
		t.Errorf("request = %s %s", x.Request.Method, x.Request.URL)
	}
	if x.Response.StatusCode != 200 || x.Response.Body != `{"success":true}` || x.Response.Error != "" {
		t.Errorf("response = %+v", x.Response)
	}
	var sent struct {
		Batch []struct {
			Type       string         `json:"type"`
			MessageID  string         `json:"messageId"`
			UserID     string         `json:"userId"`
			Event      string         `json:"event"`
			Timestamp  string         `json:"timestamp"`
			Properties map[string]any `json:"properties"`
			Traits     map[string]any `json:"traits"`
			Context    map[string]any `json:"context"`
		} `json:"batch"`
	}
	if err := json.Unmarshal([]byte(x.Request.Body), &sent); err != nil {
		t.Fatalf("exchange body: %v", err)
	}
	if len(sent.Batch) != 2 {
		t.Fatalf("exchange body has %d messages, want 2", len(sent.Batch))
	}
	tr, id := sent.Batch[0], sent.Batch[1]
	checks := []struct {
		name      string
		got, want any
	}{
		{"track type", tr.Type, "track"},
		{"track messageId", tr.MessageID, "evt-1:segment-test"},
		{"track userId", tr.UserID, "user_1"},
		{"track event", tr.Event, "rc_initial_purchase_event"},
		{"track timestamp", tr.Timestamp, "2026-01-01T00:00:03Z"},
		{"revenue", tr.Properties["revenue"], 10.84},
		{"currency", tr.Properties["currency"], "USD"},
		{"purchased_currency", tr.Properties["purchased_currency"], "EUR"},
		{"expires_at", tr.Properties["expires_at"], float64(1769904000)},
		{"attributes", fmt.Sprint(tr.Properties["subscriber_attributes"]), "map[$email:ana@example.org]"},
		{"context", fmt.Sprint(tr.Context), "map[environment:production library:map[name:rcrouter version:test]]"},
		{"identify type", id.Type, "identify"},
		{"identify messageId", id.MessageID, "evt-1:segment-test-identify"},
		{"identify traits", fmt.Sprint(id.Traits), "map[aliases:[$RCAnonymousID:3fa9 user_1] last_seen_app_user_id:user_1]"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}
	all, _ := json.Marshal(res)
	if strings.Contains(string(all), testWriteKey) {
		t.Errorf("the write key appears in the result: %s", all)
	}
}

// TestRetriedDeliveryKeepsMessageID: a delivery whose first Send exhausted a
// burst of 500s is sent again with the same key and the same messageIds.
func TestRetriedDeliveryKeepsMessageID(t *testing.T) {
	f := newFakeSegment(t, func(n int) int {
		if n < libraryAttempts {
			return 500
		}
		return 200
	}, "boom")
	d := newTestDestination(t, f.URL, Config{BatchSize: 2}, Options{FlushInterval: time.Hour})
	dl := destinations.Delivery{Key: "evt-2:segment-test", Destination: "segment-test", Event: purchase("evt-2", "user_2")}

	first := d.Send(context.Background(), dl)
	if first.Outcome != destinations.Retry || first.Reason != destinations.ReasonServerError {
		t.Fatalf("first Send = %s/%s %q, want retry/server_error", first.Outcome, first.Reason, first.Message)
	}
	if want := "segment answered HTTP 500 to 10 tries: boom"; first.Message != want {
		t.Errorf("message = %q, want %q", first.Message, want)
	}
	if len(first.Exchanges) != libraryAttempts {
		t.Fatalf("first Send recorded %d exchanges, want %d", len(first.Exchanges), libraryAttempts)
	}
	for i, x := range first.Exchanges {
		if x.Response.StatusCode != 500 || x.Response.Body != "boom" {
			t.Errorf("exchange %d = %d %q, want 500 boom", i, x.Response.StatusCode, x.Response.Body)
		}
	}
	second := d.Send(context.Background(), dl)
	if second.Outcome != destinations.Delivered || len(second.Exchanges) != 1 {
		t.Fatalf("second Send = %s with %d exchanges, want delivered with 1", second.Outcome, len(second.Exchanges))
	}
	got := f.batches()
	if len(got) != libraryAttempts+1 {
		t.Fatalf("server got %d batches, want %d", len(got), libraryAttempts+1)
	}
	want := []string{"evt-2:segment-test", "evt-2:segment-test-identify"}
	for i, b := range got {
		if !slices.Equal(b.ids, want) {
			t.Errorf("batch %d carries %q, want %q", i, b.ids, want)
		}
	}
}

func TestBatchOutcomes(t *testing.T) {
	tests := []struct {
		name      string
		status    func(int) int
		body      string
		outcome   destinations.Outcome
		reason    destinations.Reason
		message   string
		exchanges []int // status of each recorded exchange
	}{
		{
			name: "400 stops the burst and is permanent", status: always(400), body: `{"message":"Invalid JSON"}`,
			outcome: destinations.Permanent, reason: destinations.ReasonClientError,
			message: `segment rejected the batch: HTTP 400: {"message":"Invalid JSON"}`, exchanges: []int{400},
		},
		{
			name: "413 stops the burst and is permanent", status: always(413), body: "too large",
			outcome: destinations.Permanent, reason: destinations.ReasonClientError,
			message: "segment rejected the batch: HTTP 413: too large", exchanges: []int{413},
		},
		{
			name: "400 after 500s is permanent", status: func(n int) int { return []int{500, 500, 400}[min(n, 2)] }, body: "x",
			outcome: destinations.Permanent, reason: destinations.ReasonClientError,
			message: "segment rejected the batch: HTTP 400: x", exchanges: []int{500, 500, 400},
		},
		{
			name: "500 for the whole burst retries with every attempt", status: always(500), body: "boom",
			outcome: destinations.Retry, reason: destinations.ReasonServerError,
			message: "segment answered HTTP 500 to 10 tries: boom", exchanges: []int{500, 500, 500, 500, 500, 500, 500, 500, 500, 500},
		},
		{
			name: "429 for the whole burst retries rate limited", status: always(429), body: "slow down",
			outcome: destinations.Retry, reason: destinations.ReasonRateLimited,
			message: "segment answered HTTP 429 to 10 tries: slow down", exchanges: []int{429, 429, 429, 429, 429, 429, 429, 429, 429, 429},
		},
		{
			name: "401 for the whole burst retries", status: always(401), body: "bad key",
			outcome: destinations.Retry, reason: destinations.ReasonClientError,
			message: "segment answered HTTP 401 to 10 tries: bad key", exchanges: []int{401, 401, 401, 401, 401, 401, 401, 401, 401, 401},
		},
		{
			name: "500 then 200 is delivered", status: func(n int) int { return []int{500, 503, 200}[min(n, 2)] }, body: "",
			outcome: destinations.Delivered, reason: destinations.ReasonNone, exchanges: []int{500, 503, 200},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeSegment(t, tt.status, tt.body)
			d := newTestDestination(t, f.URL, Config{BatchSize: 2}, Options{FlushInterval: time.Hour})
			res := d.Send(context.Background(), destinations.Delivery{Key: "k", Event: purchase("e", "u")})
			if res.Outcome != tt.outcome || res.Reason != tt.reason || res.Message != tt.message {
				t.Errorf("result = %s/%s %q, want %s/%s %q", res.Outcome, res.Reason, res.Message, tt.outcome, tt.reason, tt.message)
			}
			var got []int
			for _, x := range res.Exchanges {
				got = append(got, x.Response.StatusCode)
			}
			if !slices.Equal(got, tt.exchanges) {
				t.Errorf("exchanges = %v, want %v", got, tt.exchanges)
			}
			if n := len(f.batches()); n != len(tt.exchanges) {
				t.Errorf("server got %d requests, want %d", n, len(tt.exchanges))
			}
		})
	}
}

// TestConcurrentSends: 200 Sends at once share a few batch requests, each
// gets its own result, and each records only the attempts of batches that
// carried its messages.
func TestConcurrentSends(t *testing.T) {
	const n = 200
	f := newFakeSegment(t, func(i int) int {
		if i == 0 {
			return 500 // the first batch needs a second try
		}
		return 200
	}, "")
	d := newTestDestination(t, f.URL, Config{}, Options{FlushInterval: DefaultFlushInterval})
	results := make([]destinations.Result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			id := fmt.Sprintf("evt-%03d", i)
			results[i] = d.Send(context.Background(), destinations.Delivery{Key: id, Event: purchase(id, "user-"+id)})
		})
	}
	wg.Wait()

	got := f.batches()
	t.Logf("%d Sends made %d HTTP requests", n, len(got))
	if len(got) > 20 {
		t.Errorf("%d HTTP requests for %d Sends, want at most 20", len(got), n)
	}
	inFirst := map[string]bool{}
	for _, id := range got[0].ids {
		inFirst[strings.TrimSuffix(id, identifySuffix)] = true
	}
	sawFirst := 0
	for i, res := range results {
		key := fmt.Sprintf("evt-%03d", i)
		track, identify := MessageIDs(key)
		if res.Outcome != destinations.Delivered {
			t.Errorf("%s: %s %q", key, res.Outcome, res.Message)
			continue
		}
		carried := map[string]bool{}
		failed := false
		for _, x := range res.Exchanges {
			var b struct {
				Batch []struct {
					MessageID string `json:"messageId"`
				} `json:"batch"`
			}
			if err := json.Unmarshal([]byte(x.Request.Body), &b); err != nil {
				t.Fatalf("%s: exchange body: %v", key, err)
			}
			if len(b.Batch) == 0 {
				t.Errorf("%s: an exchange without its messages", key)
			}
			for _, m := range b.Batch {
				if m.MessageID != track && m.MessageID != identify {
					t.Errorf("%s: exchange carries another delivery's message %s", key, m.MessageID)
				}
				carried[m.MessageID] = true
			}
			failed = failed || x.Response.StatusCode == 500
		}
		if !carried[track] || !carried[identify] {
			t.Errorf("%s: exchanges do not show both messages: %v", key, carried)
		}
		if failed != inFirst[key] {
			t.Errorf("%s: recorded the failed first batch = %v, but its messages were in it = %v", key, failed, inFirst[key])
		}
		if failed {
			sawFirst++
		}
	}
	if sawFirst == 0 {
		t.Error("no delivery recorded the failed first batch")
	}
}

func TestSkipped(t *testing.T) {
	tests := []struct {
		name    string
		typ     string
		events  map[string]string
		message string
	}{
		{"transfer", event.TypeTransfer, nil, "no Segment event name for TRANSFER"},
		{"test event", event.TypeTest, nil, "no Segment event name for TEST"},
		{"subscriber alias", event.TypeSubscriberAlias, nil, "no Segment event name for SUBSCRIBER_ALIAS"},
		{"experiment enrollment", event.TypeExperimentEnrollment, nil, "no Segment event name for EXPERIMENT_ENROLLMENT"},
		{"unknown type", "PAYWALL_IMPRESSION", nil, "no Segment event name for PAYWALL_IMPRESSION"},
		{"turned off by an empty name", event.TypeRenewal, map[string]string{"RENEWAL": ""}, "no Segment event name for RENEWAL"},
	}
	f := newFakeSegment(t, always(200), "")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newTestDestination(t, f.URL, Config{Events: tt.events}, Options{})
			e := purchase("e", "u")
			e.Type = tt.typ
			revenuecat.Normalize(e)
			res := d.Send(context.Background(), destinations.Delivery{Key: "k", Event: e})
			want := destinations.Result{Outcome: destinations.Skipped, Reason: destinations.ReasonSkipped, Message: tt.message}
			if res.Outcome != want.Outcome || res.Reason != want.Reason || res.Message != want.Message || len(res.Exchanges) != 0 {
				t.Errorf("result = %+v, want %+v", res, want)
			}
		})
	}
	if n := len(f.batches()); n != 0 {
		t.Errorf("server got %d requests for skipped events", n)
	}
}

// TestSalesReportingSent: the mode decides the revenue property sent.
func TestSalesReportingSent(t *testing.T) {
	tests := []struct {
		mode string
		want float64
	}{{"", 10.84}, {analytics.Gross, 10.84}, {analytics.Proceeds, 9.214}, {analytics.ProceedsAfterTax, 7.482852}}
	f := newFakeSegment(t, always(200), "")
	for _, tt := range tests {
		t.Run("mode "+tt.mode, func(t *testing.T) {
			d := newTestDestination(t, f.URL, Config{SalesReporting: tt.mode, BatchSize: 2}, Options{FlushInterval: time.Hour})
			res := d.Send(context.Background(), destinations.Delivery{Key: "k-" + tt.mode, Event: purchase("e", "u")})
			if res.Outcome != destinations.Delivered {
				t.Fatalf("result %s %q", res.Outcome, res.Message)
			}
			var b struct {
				Batch []struct {
					Properties map[string]any `json:"properties"`
				} `json:"batch"`
			}
			if err := json.Unmarshal([]byte(res.Exchanges[0].Request.Body), &b); err != nil {
				t.Fatal(err)
			}
			if got := b.Batch[0].Properties["revenue"]; got != tt.want {
				t.Errorf("revenue = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"minimal", Config{WriteKey: "k"}, ""},
		{"everything", Config{WriteKey: "k", Endpoint: "https://events.eu1.segmentapis.com", SalesReporting: analytics.ProceedsAfterTax, BatchSize: 20,
			Events: map[string]string{"RENEWAL": "Renewed", "trial_started": "", "PAYWALL_IMPRESSION": "paywall"}}, ""},
		{"missing write key", Config{}, "write_key: required (the write key of the Segment source)"},
		{"write key with a line break", Config{WriteKey: "k\r\nX-Injected: 1"}, "write_key: must be one line (it contains CR or LF)"},
		{"endpoint not a URL", Config{WriteKey: "k", Endpoint: "api.segment.io"}, `endpoint: must be an absolute http(s) URL, got "api.segment.io"`},
		// Issue #16: the credentials of a bad endpoint are never printed.
		{"endpoint with credentials", Config{WriteKey: "k", Endpoint: "https://u:hunter2@api.segment.io"}, `endpoint: must not hold credentials (user:password@); Segment authenticates with write_key`},
		{"endpoint with credentials and a bad scheme", Config{WriteKey: "k", Endpoint: "ftp://u:hunter2@api.segment.io"}, `endpoint: must be an absolute http(s) URL, got "ftp://<secret>@api.segment.io"`},
		{"endpoint with a query", Config{WriteKey: "k", Endpoint: "https://api.segment.io/?a=1"}, `endpoint: "https://api.segment.io/?a=1" is not an http(s) URL (e.g. https://api.segment.io)`},
		{"sales reporting", Config{WriteKey: "k", SalesReporting: "net"}, `sales_reporting: must be gross, proceeds or proceeds_after_tax, got "net"`},
		{"negative batch size", Config{WriteKey: "k", BatchSize: -1}, "batch_size: -1 is negative"},
		{"bad event keys, all reported", Config{WriteKey: "k", Events: map[string]string{"trial_start": "x", "Renewal": "y"}},
			`events.Renewal: unknown event type or lifecycle "Renewal": types are UPPER_CASE (RENEWAL), lifecycles are one of trial_started, trial_converted, trial_cancelled, subscription_started, renewed, cancelled, uncancelled, expired, billing_issue, refunded, product_changed, paused, transferred, extended, one_time_purchase, other` + "\n" +
				`events.trial_start: unknown event type or lifecycle "trial_start": types are UPPER_CASE (RENEWAL), lifecycles are one of trial_started, trial_converted, trial_cancelled, subscription_started, renewed, cancelled, uncancelled, expired, billing_issue, refunded, product_changed, paused, transferred, extended, one_time_purchase, other`},
		{"several problems at once", Config{SalesReporting: "x", BatchSize: -2},
			"write_key: required (the write key of the Segment source)\n" + `sales_reporting: must be gross, proceeds or proceeds_after_tax, got "x"` + "\nbatch_size: -2 is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate().Err()
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("Validate() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	_, err := New("seg", Config{}, Options{})
	if err == nil || err.Error() != "segment: write_key: required (the write key of the Segment source)" {
		t.Errorf("New = %v", err)
	}
}

func TestMessageIDs(t *testing.T) {
	long := strings.Repeat("k", 95)
	tests := []struct {
		name, key, track, identify string
	}{
		{"short key kept", "evt:dest", "evt:dest", "evt:dest-identify"},
		{"longest key kept", strings.Repeat("k", 91), strings.Repeat("k", 91), strings.Repeat("k", 91) + "-identify"},
		{"long key hashed", long, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			track, identify := MessageIDs(tt.key)
			if len(track) > maxMessageID || len(identify) > maxMessageID {
				t.Fatalf("ids over %d chars: %d, %d", maxMessageID, len(track), len(identify))
			}
			if identify != track+identifySuffix {
				t.Errorf("identify = %q, want track + %q", identify, identifySuffix)
			}
			again, _ := MessageIDs(tt.key)
			if again != track {
				t.Errorf("not deterministic: %q then %q", track, again)
			}
			if tt.identify != "" && (track != tt.track || identify != tt.identify) {
				t.Errorf("MessageIDs = %q, %q; want %q, %q", track, identify, tt.track, tt.identify)
			}
			if tt.identify == "" && (len(track) != 64 || track == tt.key) {
				t.Errorf("long key not hashed: %q", track)
			}
		})
	}
}

func TestDefaultRetryAfter(t *testing.T) {
	want := []time.Duration{50, 100, 200, 400, 500, 500, 500, 500, 500, 0}
	var total time.Duration
	for i, w := range want {
		if got := DefaultRetryAfter(i); got != w*time.Millisecond {
			t.Errorf("DefaultRetryAfter(%d) = %s, want %s", i, got, w*time.Millisecond)
		}
		total += DefaultRetryAfter(i)
	}
	if total != 3250*time.Millisecond {
		t.Errorf("a full burst waits %s, want 3.25s", total)
	}
}

// TestTimeout: a Send whose context ends before Segment answers is a Retry
// "timeout"; the library keeps the batch and the same messageId later.
func TestTimeout(t *testing.T) {
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	d := newTestDestination(t, srv.URL, Config{BatchSize: 2}, Options{FlushInterval: time.Hour})
	defer close(release) // before Close (a cleanup) waits for the batch in flight

	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-arrived
		cancel()
	}()
	res := d.Send(ctx, destinations.Delivery{Key: "slow", Event: purchase("e", "u")})
	want := "timed out waiting for the batch result"
	if res.Outcome != destinations.Retry || res.Reason != destinations.ReasonTimeout || res.Message != want {
		t.Errorf("result = %s/%s %q, want retry/timeout %q", res.Outcome, res.Reason, res.Message, want)
	}
}

func TestMessageTooBig(t *testing.T) {
	f := newFakeSegment(t, always(200), "")
	d := newTestDestination(t, f.URL, Config{}, Options{})
	e := purchase("e", "u")
	e.SubscriberAttributes["notes"] = event.Attribute{Value: strings.Repeat("x", 40000)}
	res := d.Send(context.Background(), destinations.Delivery{Key: "big", Event: e})
	want := "message over Segment's 32 KB limit"
	if res.Outcome != destinations.Permanent || res.Reason != destinations.ReasonRejected || res.Message != want {
		t.Errorf("result = %s/%s %q, want permanent/rejected %q", res.Outcome, res.Reason, res.Message, want)
	}
	// The identify still went out, and is the only message recorded.
	if len(res.Exchanges) != 1 || !strings.Contains(res.Exchanges[0].Request.Body, `"messageId":"big-identify"`) ||
		strings.Contains(res.Exchanges[0].Request.Body, `"messageId":"big"`) {
		t.Errorf("exchanges = %+v", res.Exchanges)
	}
}

func TestInvalidMessage(t *testing.T) {
	f := newFakeSegment(t, always(200), "")
	d := newTestDestination(t, f.URL, Config{}, Options{})
	e := purchase("e", "")
	e.UserID = ""
	res := d.Send(context.Background(), destinations.Delivery{Key: "nouser", Event: e})
	if res.Outcome != destinations.Permanent || res.Reason != destinations.ReasonRejected ||
		!strings.HasPrefix(res.Message, "invalid message: ") {
		t.Errorf("result = %s/%s %q", res.Outcome, res.Reason, res.Message)
	}
	if n := len(f.batches()); n != 0 {
		t.Errorf("server got %d requests", n)
	}
}

func TestSendAfterClose(t *testing.T) {
	f := newFakeSegment(t, always(200), "")
	d := newTestDestination(t, f.URL, Config{}, Options{})
	if err := d.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	res := d.Send(context.Background(), destinations.Delivery{Key: "late", Event: purchase("e", "u")})
	if res.Outcome != destinations.Retry || res.Message != "closed" {
		t.Errorf("result = %s %q", res.Outcome, res.Message)
	}
}

func TestLogAdapterHidesBodies(t *testing.T) {
	var buf strings.Builder
	l := logAdapter{log: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), key: testWriteKey}
	l.Logf("response %d %s – %s", 400, "400 Bad Request", `{"email":"ana@example.org"}`)
	l.Errorf("sending request - %s", errors.New("dial "+testWriteKey+": refused"))
	l.Errorf("%s - %v", errors.New("the message exceeds the maximum allowed size"), map[string]string{"$email": "ana@example.org"})
	out := buf.String()
	destinationstest.NoSecret(t, []string{"ana@example.org", testWriteKey, "Bad Request"}, destinations.Result{}, nil, out)
	for _, want := range []string{"response 400 … – …", "sending request - dial <secret>: refused", "the message exceeds the maximum allowed size - …"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

// TestLeaksNoSecret: neither the write key nor its Basic form reaches the
// result, the printed destination or the debug logs, on success or failure.
func TestLeaksNoSecret(t *testing.T) {
	basic := base64.StdEncoding.EncodeToString([]byte(testWriteKey + ":"))
	for _, status := range []int{200, 500} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			f := newFakeSegment(t, always(status), `{"echo":"`+testWriteKey+`"}`)
			logs := &destinationstest.Logs{}
			opts := Options{FlushInterval: time.Hour, Options: destinations.Options{Logger: logs.Logger()}}
			d := newTestDestination(t, f.URL, Config{BatchSize: 2}, opts)
			res := d.Send(context.Background(), destinations.Delivery{Key: "leak", Event: purchase("e", "u")})
			if len(res.Exchanges) == 0 {
				t.Fatalf("no exchanges: %+v", res)
			}
			destinationstest.NoSecret(t, []string{testWriteKey, basic}, res, d, logs.String())
		})
	}
}
