package webhook

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/rcrouter/rcrouter/destinations"
	"github.com/rcrouter/rcrouter/internal/event"
)

// hangingSink accepts requests and never answers until the test ends.
func hangingSink(t *testing.T) (*httptest.Server, <-chan struct{}) {
	t.Helper()
	done := make(chan struct{})
	arrived := make(chan struct{}, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-r.Context().Done():
		case <-done:
		}
	}))
	t.Cleanup(srv.Close)              // runs second
	t.Cleanup(func() { close(done) }) // runs first: lets handlers return
	return srv, arrived
}

// clock is a fake time source that advances step on every reading.
type clock struct {
	mu   sync.Mutex
	t    time.Time
	step time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.t
	c.t = c.t.Add(c.step)
	return now
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fastOptions keep in-process retries to milliseconds.
func fastOptions() Options {
	return Options{
		Options: destinations.Options{
			Timeout: 200 * time.Millisecond,
			Version: "1.2.3",
			Now:     (&clock{t: t0}).Now,
		},
		RetryWaitMin: time.Millisecond,
		RetryWaitMax: 5 * time.Millisecond,
	}
}

func mustNew(t *testing.T, cfg Config, opts Options) *Destination {
	t.Helper()
	d, err := New("hook", cfg, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// rawRenewal is a RevenueCat envelope with odd spacing (so "byte-identical"
// means something) and an app_user_id full of JSON and HTML specials.
const rawRenewal = `{"api_version": "1.0",
  "event": {"id": "evt-1", "type": "RENEWAL", "app_user_id": "u\"1</script>",  "price": 9.99,
    "currency": "USD", "event_timestamp_ms": 1769904130000, "store": "APP_STORE"}}`

func testEvent() *event.Event {
	price := 9.99
	return &event.Event{
		ID:               "evt-1",
		Type:             event.TypeRenewal,
		AppUserID:        `u"1</script>`,
		EventTimestampMs: 1769904130000,
		Price:            &price,
		Currency:         "USD",
		Store:            "APP_STORE",
		Entitlements:     []string{"pro", "gold"},
		UserID:           `u"1</script>`,
		Lifecycle:        event.Renewed,
		Raw:              []byte(rawRenewal),
	}
}

func delivery() destinations.Delivery {
	return destinations.Delivery{ID: "d-1", Key: "evt-1:hook", Destination: "hook", Attempt: 1, Event: testEvent()}
}
