// Package chattest holds what the chat adapters' tests share: a fake webhook
// that answers with a scripted reply and keeps every request, and a sample
// purchase event. Only test code imports it.
package chattest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/rcrouter/rcrouter/internal/event"
	"github.com/rcrouter/rcrouter/internal/revenuecat"
)

// Reply is one scripted answer.
type Reply struct {
	Status int
	Header map[string]string
	Body   string
}

// Received is one request the fake got.
type Received struct {
	Path, Query string
	Header      http.Header
	Body        []byte
}

// Fake is an httptest server on 127.0.0.1 answering every request with one
// Reply; it is closed when the test ends.
type Fake struct {
	*httptest.Server
	mu  sync.Mutex
	got []Received
}

// NewFake starts a fake answering r.
func NewFake(t *testing.T, r Reply) *Fake {
	t.Helper()
	f := &Fake{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		f.mu.Lock()
		f.got = append(f.got, Received{Path: req.URL.Path, Query: req.URL.RawQuery, Header: req.Header.Clone(), Body: b})
		f.mu.Unlock()
		for k, v := range r.Header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(r.Status)
		_, _ = io.WriteString(w, r.Body)
	}))
	t.Cleanup(f.Close)
	return f
}

// Requests returns what the fake got so far.
func (f *Fake) Requests() []Received {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Received(nil), f.got...)
}

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
