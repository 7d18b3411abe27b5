package destinations_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rcrouter/rcrouter/destinations"
	"github.com/rcrouter/rcrouter/destinations/amplitude"
	"github.com/rcrouter/rcrouter/destinations/discord"
	"github.com/rcrouter/rcrouter/destinations/segment"
	"github.com/rcrouter/rcrouter/destinations/slack"
	"github.com/rcrouter/rcrouter/destinations/teams"
	"github.com/rcrouter/rcrouter/destinations/webhook"
	"github.com/rcrouter/rcrouter/internal/revenuecat"
	"github.com/rcrouter/rcrouter/internal/secret"
	"github.com/rcrouter/rcrouter/internal/testutil"
)

// hugeBody is what a broken or hostile sink answers with.
const hugeBody = 50 << 20

// hugeSink answers every request with status and a hugeBody-byte body,
// written in small pieces, and counts the requests and the bytes it managed
// to write before the client hung up.
type hugeSink struct {
	*httptest.Server
	requests atomic.Int64
	written  atomic.Int64
}

func newHugeSink(t *testing.T, status int, prefix string) *hugeSink {
	t.Helper()
	s := &hugeSink{}
	chunk := []byte(strings.Repeat("a", 32<<10))
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		n, _ := io.WriteString(w, prefix)
		s.written.Add(int64(n))
		for total := n; total < hugeBody; {
			n, err := w.Write(chunk)
			s.written.Add(int64(n))
			total += n
			if err != nil {
				return
			}
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func delivery(t *testing.T, dest string) destinations.Delivery {
	t.Helper()
	e, err := revenuecat.Decode(testutil.ReadFixture(t, "revenuecat/initial_purchase_paid_eur.json"))
	if err != nil {
		t.Fatal(err)
	}
	return destinations.Delivery{ID: "d-1", Key: "k-1:" + dest, Destination: dest, Attempt: 1, Event: e}
}

// sender builds one adapter aimed at url.
type sender func(t *testing.T, url string) destinations.Destination

func segmentTo(t *testing.T, url string) destinations.Destination {
	d, err := segment.New("seg", segment.Config{WriteKey: "wk_limits_test_123", Endpoint: url}, segment.Options{
		FlushInterval: 10 * time.Millisecond,
		RetryAfter:    func(int) time.Duration { return time.Millisecond },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

func slackBotTo(t *testing.T, url string) destinations.Destination {
	d, err := slack.New("bot", slack.Config{Token: "xoxb-limits-test", Channel: "C1", APIURL: url + "/"}, destinations.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func webhookTo(t *testing.T, url string) destinations.Destination {
	d, err := webhook.New("hook", webhook.Config{URL: url + "/hook", Headers: map[string]secret.Secret{"X-Api-Key": "key-limits-test"}},
		webhook.Options{RetryWaitMin: time.Millisecond, RetryWaitMax: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

func amplitudeTo(t *testing.T, url string) destinations.Destination {
	d, err := amplitude.New("amp", amplitude.Config{APIKey: "amp_limits_key_123", Endpoint: url}, destinations.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

func discordTo(t *testing.T, url string) destinations.Destination {
	d, err := discord.New("dc", discord.Config{WebhookURL: secret.Secret(url + "/api/webhooks/1122/limits-token-abc")}, destinations.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func teamsTo(t *testing.T, url string) destinations.Destination {
	d, err := teams.New("tm", teams.Config{WebhookURL: secret.Secret(url + "/workflows/abc/triggers/manual/paths/invoke?sig=limits-sig-123")}, destinations.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestAdaptersBoundResponseBodies: a sink answering with 50 MB costs each
// adapter at most a bounded read per request, however often the library
// retries, and the dispatch record says the rest was not read.
func TestAdaptersBoundResponseBodies(t *testing.T) {
	tests := []struct {
		name   string
		to     sender
		status int
		prefix string // start of the body, so JSON decoders get going
	}{
		{"segment 500", segmentTo, 500, ""},
		{"segment 200", segmentTo, 200, ""},
		{"slack bot 200", slackBotTo, 200, `{"ok":true,"x":"`},
		{"slack bot 500", slackBotTo, 500, ""},
		{"webhook 500", webhookTo, 500, ""},
		{"webhook 200", webhookTo, 200, ""},
		{"amplitude 500", amplitudeTo, 500, ""},
		{"discord 500", discordTo, 500, ""},
		{"teams 200", teamsTo, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := newHugeSink(t, tt.status, tt.prefix)
			d := tt.to(t, sink.URL)

			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			res := d.Send(ctx, delivery(t, "x"))
			runtime.ReadMemStats(&after)

			reqs := sink.requests.Load()
			if reqs == 0 || len(res.Exchanges) == 0 {
				t.Fatalf("no request reached the sink (requests %d, exchanges %d): %+v", reqs, len(res.Exchanges), res)
			}
			// Everything this process allocated during Send (the test's sink
			// included): an unbounded read would be 50 MB per request.
			alloc := after.TotalAlloc - before.TotalAlloc
			if limit := uint64(reqs) * 4 << 20; alloc > limit {
				t.Errorf("allocated %d bytes for %d requests, want at most %d", alloc, reqs, limit)
			}
			// The sink could not push 50 MB per request: the client hung up
			// after its bound (kernel socket buffers take some more).
			if w := sink.written.Load(); w > reqs*16<<20 {
				t.Errorf("sink wrote %d bytes for %d requests: the body was read on", w, reqs)
			}
			for i, x := range res.Exchanges {
				if !strings.HasSuffix(x.Response.Body, destinations.UnreadMarker) {
					t.Errorf("exchange %d body does not end with the unread marker: %q", i, tail(x.Response.Body))
				}
				if len(x.Response.Body) > destinations.DefaultMaxBody {
					t.Errorf("exchange %d body is %d bytes, over the record limit", i, len(x.Response.Body))
				}
			}
			t.Logf("%d requests, %d exchanges, outcome %s, allocated %.1f MiB, sink wrote %.1f MiB",
				reqs, len(res.Exchanges), res.Outcome, float64(alloc)/(1<<20), float64(sink.written.Load())/(1<<20))
		})
	}
}

func tail(s string) string {
	if len(s) > 80 {
		return "…" + s[len(s)-80:]
	}
	return s
}

// TestAdaptersDoNotFollowRedirects: a 307 to another port gets no request
// there (no credentials, no batch); the delivery is dead after the one
// request and the record shows the Location.
func TestAdaptersDoNotFollowRedirects(t *testing.T) {
	tests := []struct {
		name string
		to   sender
		// secretURL: the webhook URL is the credential, so a Location is
		// shown as scheme://host/<secret> only.
		secretURL bool
	}{
		{"segment", segmentTo, false},
		{"slack bot", slackBotTo, false},
		{"webhook", webhookTo, false},
		{"amplitude", amplitudeTo, false},
		{"discord", discordTo, true},
		{"teams", teamsTo, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stolen atomic.Int64
			thief := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				stolen.Add(1)
			}))
			defer thief.Close()
			var asked atomic.Int64
			origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				asked.Add(1)
				http.Redirect(w, r, thief.URL+"/steal", http.StatusTemporaryRedirect)
			}))
			defer origin.Close()

			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			res := tt.to(t, origin.URL).Send(ctx, delivery(t, "x"))

			if n := stolen.Load(); n != 0 {
				t.Errorf("redirect target got %d requests, want 0", n)
			}
			if n := asked.Load(); n != 1 {
				t.Errorf("origin got %d requests, want 1", n)
			}
			if res.Outcome != destinations.Permanent {
				t.Errorf("outcome = %s (%s), want permanent", res.Outcome, res.Message)
			}
			if len(res.Exchanges) != 1 {
				t.Fatalf("exchanges = %d, want 1", len(res.Exchanges))
			}
			x := res.Exchanges[0]
			if x.Response.StatusCode != http.StatusTemporaryRedirect {
				t.Errorf("recorded status = %d, want 307", x.Response.StatusCode)
			}
			want := "Location: " + thief.URL + "/steal"
			if tt.secretURL {
				want = "Location: " + thief.URL + "/" + secret.Redacted
			}
			if !strings.Contains(x.Response.Error, want) {
				t.Errorf("recorded error = %q, want it to name %q", x.Response.Error, want)
			}
		})
	}
}
