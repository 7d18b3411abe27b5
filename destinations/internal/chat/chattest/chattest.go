// Package chattest holds what the chat adapters' tests share beyond
// destinationstest: a sample purchase, outcome rows, and the checks every
// chat webhook must pass (golden bodies, unreachable, timeout). Only test
// code imports it.
package chattest

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rcrouter/rcrouter/destinations"
	"github.com/rcrouter/rcrouter/destinations/destinationstest"

	"github.com/rcrouter/rcrouter/internal/event"
	"github.com/rcrouter/rcrouter/internal/revenuecat"
	"github.com/rcrouter/rcrouter/internal/testutil"
)

// Purchase is a paid EUR Play purchase by user, normalized as ingest would.
func Purchase(user string) *event.Event {
	price, local := 10.84, 9.99
	e := &event.Event{
		ID:                       "6F1C2A9E-0000-4E21-9C3A-0D5E8F7A1B22",
		Type:                     event.TypeInitialPurchase,
		AppID:                    "app7c41e09ab2",
		EventTimestampMs:         1767225603000,
		AppUserID:                user,
		ProductID:                "pro_monthly:monthly-autorenew",
		EntitlementIDs:           []string{"pro"},
		PeriodType:               "NORMAL",
		Store:                    "PLAY_STORE",
		Environment:              "PRODUCTION",
		Currency:                 "EUR",
		Price:                    &price,
		PriceInPurchasedCurrency: &local,
		SubscriberAttributes:     map[string]event.Attribute{},
	}
	revenuecat.Normalize(e)
	return e
}

// Build makes the destination under test posting to base (a fake's URL)
// with the given request timeout.
type Build func(t *testing.T, base string, timeout time.Duration) destinations.Destination

// CheckUnreachable: a webhook where nothing listens is a network error,
// retried, with one exchange and a message that says so without a secret
// (nor the destination's name: the dispatch record names it).
func CheckUnreachable(t *testing.T, build Build, secret string) {
	t.Helper()
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL
	srv.Close() // nothing listens any more
	res := build(t, base, time.Second).Send(context.Background(), destinations.Delivery{Event: Purchase("u1")})
	if res.Outcome != destinations.Retry || res.Reason != destinations.ReasonNetwork ||
		!strings.Contains(res.Message, "connection refused") || strings.Contains(res.Message, "destination") {
		t.Errorf("result = %s/%s %q, want retry/network, connection refused", res.Outcome, res.Reason, res.Message)
	}
	all, _ := json.Marshal(res)
	if strings.Contains(string(all), secret) || len(res.Exchanges) != 1 || res.Exchanges[0].Response.Error == "" {
		t.Errorf("result = %s", all)
	}
}

// CheckTimeout: a webhook that does not answer within the request timeout
// is a timeout, retried, and the message shows no secret.
func CheckTimeout(t *testing.T, build Build, secret string) {
	t.Helper()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	res := build(t, srv.URL, 50*time.Millisecond).Send(context.Background(), destinations.Delivery{Event: Purchase("u1")})
	if res.Outcome != destinations.Retry || res.Reason != destinations.ReasonTimeout {
		t.Errorf("result = %s/%s %q, want retry/timeout", res.Outcome, res.Reason, res.Message)
	}
	if strings.Contains(res.Message, secret) {
		t.Errorf("message leaks the secret: %q", res.Message)
	}
}

// Case is one row of an outcome table: one reply and what it must be
// classified as. A RetryAfter of a minute or more comes from an HTTP date
// and may differ by 2 s.
func Case(name string, r destinationstest.Reply, outcome destinations.Outcome, reason destinations.Reason,
	message string, retryAfter time.Duration, pause bool) destinationstest.Case {
	c := destinationstest.Case{Name: name, Replies: []destinationstest.Reply{r}, Outcome: outcome, Reason: reason,
		Message: message, RetryAfter: retryAfter, Pause: pause}
	if retryAfter >= time.Minute {
		c.Within = 2 * time.Second
	}
	return c
}

// CheckGolden posts every fixture (testutil.Fixtures) through a destination
// built on a fake answering ok, and compares each body sent with
// testdata/golden/<dir>/<fixture> (indented; the bytes inside strings are
// exactly those sent). Each request must go to wantURI (path and query),
// be JSON, be the exchange recorded, and pass check.
func CheckGolden(t *testing.T, build Build, ok destinationstest.Reply, wantURI string, check func(t *testing.T, body []byte), update bool) {
	t.Helper()
	f := destinationstest.NewServer(t, ok)
	d := build(t, f.URL, time.Second)
	for _, fx := range testutil.Fixtures(t) {
		t.Run(fx.Dir+"/"+fx.Stem(), func(t *testing.T) {
			e, err := revenuecat.Decode(fx.Body)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			before := len(f.Requests())
			res := d.Send(context.Background(), destinations.Delivery{Key: "k", Event: e})
			if res.Outcome != destinations.Delivered || len(res.Exchanges) != 1 {
				t.Fatalf("result = %s %q with %d exchanges", res.Outcome, res.Message, len(res.Exchanges))
			}
			got := f.Requests()[before:]
			if len(got) != 1 || got[0].Path+"?"+got[0].Query != wantURI {
				t.Fatalf("webhook got %+v", got)
			}
			if ct := got[0].Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			if res.Exchanges[0].Request.Body != string(got[0].Body) {
				t.Errorf("exchange body differs from what was sent:\n%s\n%s", res.Exchanges[0].Request.Body, got[0].Body)
			}
			check(t, got[0].Body)
			var out bytes.Buffer
			if err := json.Indent(&out, got[0].Body, "", "  "); err != nil {
				t.Fatal(err)
			}
			out.WriteByte('\n')
			testutil.Golden(t, filepath.Join("testdata", "golden", fx.Dir, fx.Name), out.Bytes(), update)
		})
	}
}

// CheckValidate compares the problems of b with want (their "key: message"
// lines, "" for none) and fails if they quote secret.
func CheckValidate(t *testing.T, b destinations.Block, want, secret string) {
	t.Helper()
	got := ""
	if err := b.Validate().Err(); err != nil {
		got = err.Error()
	}
	if got != want {
		t.Errorf("Validate() =\n%s\nwant\n%s", got, want)
	}
	if strings.Contains(got, secret) {
		t.Errorf("a problem quotes the secret: %s", got)
	}
}
