package segment

import (
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/rcrouter/rcrouter/destinations/destinationstest"
	"github.com/rcrouter/rcrouter/internal/event"
	"github.com/rcrouter/rcrouter/internal/revenuecat"
	"github.com/rcrouter/rcrouter/internal/secret"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the current output")

const testWriteKey = "wk_test_1234567890"

// batch is one request the fake Segment got.
type batch struct {
	body []byte
	ids  []string
}

// fakeSegment is a fake Segment batch API. It checks Basic auth (write key,
// empty password), records every batch and answers with status(n) for the
// n-th request (from 0).
type fakeSegment struct {
	*destinationstest.Server
	t *testing.T
}

func newFakeSegment(t *testing.T, status func(n int) int, body string) *fakeSegment {
	t.Helper()
	srv := destinationstest.NewServerFunc(t, func(n int, r *http.Request) destinationstest.Reply {
		user, pass, ok := r.BasicAuth()
		if !ok || user != testWriteKey || pass != "" || r.URL.Path != "/v1/batch" || r.Method != http.MethodPost {
			t.Errorf("fake segment: got %s %s with basic auth ok=%v user=%q pass=%q", r.Method, r.URL.Path, ok, user, pass)
			return destinationstest.Reply{Status: http.StatusUnauthorized}
		}
		return destinationstest.Reply{Status: status(n), Body: body}
	})
	return &fakeSegment{Server: srv, t: t}
}

func always(code int) func(int) int { return func(int) int { return code } }

// batches are the requests received so far, with their message ids.
func (f *fakeSegment) batches() []batch {
	var out []batch
	for _, r := range f.Requests() {
		var parsed struct {
			Batch []struct {
				MessageID string `json:"messageId"`
			} `json:"batch"`
		}
		if err := json.Unmarshal(r.Body, &parsed); err != nil {
			f.t.Errorf("fake segment: body is not JSON: %v", err)
		}
		var ids []string
		for _, m := range parsed.Batch {
			ids = append(ids, m.MessageID)
		}
		out = append(out, batch{body: r.Body, ids: ids})
	}
	return out
}

// fastRetry keeps the library's ten tries quick in tests.
func fastRetry(int) time.Duration { return time.Millisecond }

func newTestDestination(t *testing.T, endpoint string, cfg Config, opts Options) *Destination {
	t.Helper()
	cfg.WriteKey = secret.Secret(testWriteKey)
	cfg.Endpoint = endpoint
	if opts.FlushInterval == 0 {
		opts.FlushInterval = 10 * time.Millisecond
	}
	if opts.RetryAfter == nil {
		opts.RetryAfter = fastRetry
	}
	if opts.Version == "" {
		opts.Version = "test"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	d, err := New("segment-test", cfg, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return d
}

// purchase is a paid EUR Play purchase built in code, normalized as ingest would.
func purchase(id, user string) *event.Event {
	price, local, tax, comm := 10.84, 9.99, 0.1597, 0.15
	purchased, expires := int64(1767225600000), int64(1769904000000)
	e := &event.Event{
		ID:                       id,
		Type:                     event.TypeInitialPurchase,
		AppID:                    "app7c41e09ab2",
		EventTimestampMs:         1767225603000,
		AppUserID:                user,
		OriginalAppUserID:        "$RCAnonymousID:3fa9",
		Aliases:                  []string{"$RCAnonymousID:3fa9", user},
		ProductID:                "pro_monthly:monthly-autorenew",
		EntitlementIDs:           []string{"pro"},
		PeriodType:               "NORMAL",
		PurchasedAtMs:            &purchased,
		ExpirationAtMs:           &expires,
		Store:                    "PLAY_STORE",
		Environment:              "PRODUCTION",
		Currency:                 "EUR",
		Price:                    &price,
		PriceInPurchasedCurrency: &local,
		TaxPercentage:            &tax,
		CommissionPercentage:     &comm,
		CountryCode:              "DE",
		SubscriberAttributes:     map[string]event.Attribute{"$email": {Value: "ana@example.org", UpdatedAtMs: 1}},
	}
	revenuecat.Normalize(e)
	return e
}
