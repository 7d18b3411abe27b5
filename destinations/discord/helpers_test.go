package discord

import (
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/rcrouter/rcrouter/destinations"
	"github.com/rcrouter/rcrouter/internal/event"
	"github.com/rcrouter/rcrouter/internal/revenuecat"
	"github.com/rcrouter/rcrouter/internal/secret"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the current output")

// hookPath is the test webhook's path; its last segment is the token.
const hookPath = "/api/webhooks/112233445566778899/dIsCoRdWeBhOoKtOkEn-s3cr3t_0123456789abcdefghijklmnop"

const hookToken = "dIsCoRdWeBhOoKtOkEn-s3cr3t_0123456789abcdefghijklmnop"

// reply is one scripted answer.
type reply struct {
	status int
	header map[string]string
	body   string
}

// received is one request a fake got.
type received struct {
	path, query string
	header      http.Header
	body        []byte
}

// fakeDiscord is an httptest server answering every request with one reply
// and keeping what it got.
type fakeDiscord struct {
	*httptest.Server
	mu  sync.Mutex
	got []received
}

func newFakeDiscord(t *testing.T, r reply) *fakeDiscord {
	t.Helper()
	f := &fakeDiscord{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		f.mu.Lock()
		f.got = append(f.got, received{path: req.URL.Path, query: req.URL.RawQuery, header: req.Header.Clone(), body: b})
		f.mu.Unlock()
		for k, v := range r.header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(r.status)
		_, _ = io.WriteString(w, r.body)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeDiscord) requests() []received {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]received(nil), f.got...)
}

func newDestination(t *testing.T, base string, cfg Config) *Destination {
	t.Helper()
	cfg.WebhookURL = secret.Secret(base + hookPath)
	d, err := New("discord-test", cfg, destinations.Options{Version: "test", MaxBody: 1 << 16})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return d
}

// purchase is a paid EUR Play purchase built in code, normalized as ingest would.
func purchase(user string) *event.Event {
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
