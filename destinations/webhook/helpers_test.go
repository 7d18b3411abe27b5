package webhook

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/rcrouter/rcrouter/destinations"
	"github.com/rcrouter/rcrouter/internal/event"
)

// reply is one scripted answer of a sink.
type reply struct {
	status int
	header map[string]string
	body   string
}

// received is one request a sink got.
type received struct {
	method string
	path   string
	header http.Header
	body   []byte
}

// sink is an httptest server answering from a script (the last reply
// repeats) and keeping every request it got.
type sink struct {
	*httptest.Server
	mu      sync.Mutex
	replies []reply
	got     []received
}

func newSink(t *testing.T, replies ...reply) *sink {
	t.Helper()
	s := &sink{replies: replies}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		n := len(s.got)
		s.got = append(s.got, received{method: r.Method, path: r.URL.Path, header: r.Header.Clone(), body: b})
		rp := s.replies[min(n, len(s.replies)-1)]
		s.mu.Unlock()
		for k, v := range rp.header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(rp.status)
		_, _ = io.WriteString(w, rp.body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *sink) requests() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.got...)
}

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

// safeBuffer is a goroutine-safe log sink.
type safeBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *safeBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *safeBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func debugLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
