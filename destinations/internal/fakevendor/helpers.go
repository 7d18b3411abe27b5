// Package fakevendor holds what the tests of the analytics destinations
// (Amplitude, Mixpanel, PostHog) share on top of destinationstest: the
// golden-fixture loop, a burst of concurrent Sends that queue behind a held
// request, a purchase event, and small table checks. Only test code imports it.
package fakevendor

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rcrouter/rcrouter/destinations"
	"github.com/rcrouter/rcrouter/destinations/destinationstest"
	"github.com/rcrouter/rcrouter/internal/event"
	"github.com/rcrouter/rcrouter/internal/revenuecat"
	"github.com/rcrouter/rcrouter/internal/testutil"
)

// Body is the body of a request the fake got (NewServerFunc hands it on
// re-readable).
func Body(r *http.Request) []byte {
	b, _ := io.ReadAll(r.Body)
	return b
}

// Purchase is a paid EUR Play purchase built in code with the given
// subscriber attributes, normalized as ingest would.
func Purchase(id, user string, attrs map[string]string) *event.Event {
	price, tax, comm := 10.84, 0.1597, 0.15
	purchased, expires := int64(1767225600000), int64(1769904000000)
	e := &event.Event{
		ID: id, Type: event.TypeInitialPurchase, AppID: "app7c41e09ab2", EventTimestampMs: 1767225603000,
		AppUserID: user, OriginalAppUserID: user, ProductID: "pro_monthly", PeriodType: "NORMAL",
		PurchasedAtMs: &purchased, ExpirationAtMs: &expires, Store: "PLAY_STORE", Environment: "PRODUCTION",
		Currency: "EUR", Price: &price, TaxPercentage: &tax, CommissionPercentage: &comm,
		SubscriberAttributes: map[string]event.Attribute{},
	}
	for k, v := range attrs {
		e.SubscriberAttributes[k] = event.Attribute{Value: v, UpdatedAtMs: 1}
	}
	revenuecat.Normalize(e)
	return e
}

// Sender is a destination under test, built against a fake's URL: send
// delivers the event with the given id, queued is how many events wait for
// a batch.
type Sender struct {
	Send   func(id string) destinations.Result
	Queued func() int
}

// Burst sends the event "first" and, while the fake holds its request, n
// more at once ("e0" …), so that the n queue up and leave together. It then
// answers the first request with ok and the others with answer (numbered
// from 0 after the first), and returns every result by event id and the
// requests after the first.
func Burst(t testing.TB, n int, ok destinationstest.Reply, answer func(i int, r *http.Request) destinationstest.Reply, build func(url string) Sender) (map[string]destinations.Result, []destinationstest.Request) {
	t.Helper()
	release := make(chan struct{})
	f := destinationstest.NewServerFunc(t, func(i int, r *http.Request) destinationstest.Reply {
		if i == 0 {
			<-release
			return ok
		}
		return answer(i-1, r)
	})
	s := build(f.URL)
	var wg sync.WaitGroup
	var mu sync.Mutex
	results := map[string]destinations.Result{}
	send := func(id string) {
		defer wg.Done()
		res := s.Send(id)
		mu.Lock()
		results[id] = res
		mu.Unlock()
	}
	wg.Add(1)
	go send("first")
	testutil.Eventually(t, 5*time.Second, func() bool { return len(f.Requests()) == 1 }, "the first request did not arrive")
	for i := range n {
		wg.Add(1)
		go send(fmt.Sprintf("e%d", i))
	}
	testutil.Eventually(t, 5*time.Second, func() bool { return s.Queued() == n }, "%d events did not queue", n)
	close(release)
	wg.Wait()
	return results, f.Requests()[1:]
}

// NoSecret is destinationstest.NoSecret for key, plus the check that res's
// exchanges show the redacted key in its place (the request bodies of these
// vendors carry the key).
func NoSecret(t testing.TB, key string, res destinations.Result, d any) {
	t.Helper()
	destinationstest.NoSecret(t, []string{key}, res, d, "")
	if all, _ := json.Marshal(res); !strings.Contains(string(all), `\u003csecret\u003e`) {
		t.Errorf("the redacted secret is not in the exchange: %s", all)
	}
}

// CheckValidate runs one config block through Validate as a subtest; want
// is the joined problems, "" for none.
func CheckValidate(t *testing.T, name string, b destinations.Block, want string) {
	t.Helper()
	t.Run(name, func(t *testing.T) {
		got := ""
		if err := b.Validate().Err(); err != nil {
			got = err.Error()
		}
		if got != want {
			t.Errorf("Validate() = %q\nwant %q", got, want)
		}
	})
}

// CheckSkipped runs one Send as a subtest and wants it skipped with want as
// the reason, without a request to f.
func CheckSkipped(t *testing.T, f *destinationstest.Server, name string, send func() destinations.Result, want string) {
	t.Helper()
	t.Run(name, func(t *testing.T) {
		before := len(f.Requests())
		res := send()
		if res.Outcome != destinations.Skipped || res.Reason != destinations.ReasonSkipped || res.Message != want {
			t.Errorf("result = %s/%s %q; want skipped %q", res.Outcome, res.Reason, res.Message, want)
		}
		if n := len(f.Requests()) - before; n != 0 {
			t.Errorf("the skipped event made %d requests", n)
		}
	})
}
