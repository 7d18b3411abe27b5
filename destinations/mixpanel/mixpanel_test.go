package mixpanel

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rcrouter/rcrouter/destinations"
	"github.com/rcrouter/rcrouter/destinations/destinationstest"
	"github.com/rcrouter/rcrouter/destinations/internal/fakevendor"
	"github.com/rcrouter/rcrouter/internal/event"
	"github.com/rcrouter/rcrouter/internal/secret"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the current output")

const testToken = "mp_test_token_0123456789"

const ok1 = `{"error":null,"status":1}`

var okReply = destinationstest.Reply{Status: 200, Body: ok1}

func newDest(t *testing.T, url string, cfg Config) *Destination {
	t.Helper()
	cfg.Token = secret.Secret(testToken)
	cfg.Endpoint = url
	d, err := New("mixpanel-test", cfg, destinations.Options{Timeout: 5 * time.Second, MaxBody: 1 << 20, Version: "test"})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return d
}

func send(d *Destination, key string, e *event.Event) destinations.Result {
	return d.Send(context.Background(), destinations.Delivery{Key: key, Destination: "mixpanel-test", Event: e})
}

func tracks(t *testing.T, body []byte) []Track {
	t.Helper()
	var ts []Track
	if err := json.Unmarshal(body, &ts); err != nil {
		t.Fatalf("body is not a track array: %v\n%s", err, body)
	}
	return ts
}

// TestGoldenFixtures sends every fixture alone and compares the exact
// bodies Mixpanel received (/track, then /engage for the profile) with
// testdata/golden.
func TestGoldenFixtures(t *testing.T) {
	f := destinationstest.NewServer(t, destinationstest.Reply{Status: 200, Body: ok1})
	d := newDest(t, f.URL, Config{})
	fakevendor.Goldens(t, f, testToken, []string{"/track?verbose=1", "/engage?verbose=1"}, *update, func(key string, e *event.Event) destinations.Result {
		return send(d, key, e)
	})
}

func TestIdentity(t *testing.T) {
	tests := []struct {
		name  string
		user  string
		attrs map[string]string
		want  string
	}{
		{"app user id", "user_1", nil, "user_1"},
		{"mixpanel distinct id wins", "user_1", map[string]string{DistinctIDAttribute: "mp-7"}, "mp-7"},
		{"attribute without app user id", "", map[string]string{DistinctIDAttribute: "mp-7"}, "mp-7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := Build(fakevendor.Purchase("e1", tt.user, tt.attrs), "n", "k", "tok", "gross")
			if got := m.Track.Properties["distinct_id"]; got != tt.want {
				t.Errorf("distinct_id = %v, want %q", got, tt.want)
			}
			if len(m.Profile) != 2 || m.Profile[0].DistinctID != tt.want || m.Profile[1].DistinctID != tt.want {
				t.Errorf("profile updates = %+v, want two with $distinct_id %q", m.Profile, tt.want)
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
			m := Build(fakevendor.Purchase("e1", "u1", nil), "n", "k", "tok", tt.mode)
			if got := m.Track.Properties["revenue"]; got != tt.want {
				t.Errorf("revenue = %v, want %v", got, tt.want)
			}
			want := Transaction{Time: "2026-01-01T00:00:03", Amount: tt.want, ProductID: "pro_monthly", Store: "PLAY_STORE"}
			status := map[string]string{"rc_subscription_status": "active"}
			if len(m.Profile) != 2 || fmt.Sprint(m.Profile[0].Set) != fmt.Sprint(status) || m.Profile[1].Append["$transactions"] != want || m.Profile[1].Token != "tok" {
				t.Errorf("profile updates = %+v, want $set %v then $append $transactions %+v", m.Profile, status, want)
			}
		})
	}
	for _, tt := range []struct {
		name  string
		price *float64
	}{{"unknown price", nil}, {"free trial", new(float64)}} {
		t.Run(tt.name, func(t *testing.T) {
			e := fakevendor.Purchase("e1", "u1", nil)
			e.Price = tt.price
			if m := Build(e, "n", "k", "tok", "gross"); len(m.Profile) != 1 || m.Profile[0].Append != nil {
				t.Errorf("profile updates = %+v, want only the status without revenue", m.Profile)
			}
		})
	}
}

func TestSkipped(t *testing.T) {
	f := destinationstest.NewServer(t, destinationstest.Reply{Status: 200, Body: ok1})
	noID := fakevendor.Purchase("n1", "", nil)
	noID.UserID = ""
	tests := []struct {
		name   string
		events map[string]string
		e      *event.Event
		want   string
	}{
		{"turned off", map[string]string{"subscription_started": ""}, fakevendor.Purchase("p1", "u1", nil),
			"no Mixpanel event name for INITIAL_PURCHASE (subscription_started): RevenueCat's integration does not send it; name it under events to send it"},
		{"no distinct id", nil, noID, "Mixpanel needs a distinct_id: the event has no app user id and no $mixpanelDistinctId attribute"},
	}
	for _, tt := range tests {
		fakevendor.CheckSkipped(t, f, tt.name, func() destinations.Result { return send(newDest(t, f.URL, Config{Events: tt.events}), "k", tt.e) }, tt.want)
	}
}

// TestInsertIDStableAcrossRetries: a 503 then a 200 send the same
// $insert_id, and the profile update only once the track went through.
func TestInsertIDStableAcrossRetries(t *testing.T) {
	f := destinationstest.NewServerFunc(t, func(n int, _ *http.Request) destinationstest.Reply {
		if n == 0 {
			return destinationstest.Reply{Status: 503, Body: "busy"}
		}
		return okReply
	})
	d := newDest(t, f.URL, Config{})
	e := fakevendor.Purchase("evt-1", "user_1", nil)
	first := send(d, "evt-1:mixpanel-test", e)
	if first.Outcome != destinations.Retry || first.Message != "mixpanel answered HTTP 503 Service Unavailable: busy" || len(first.Exchanges) != 1 {
		t.Fatalf("first = %s %q with %d exchanges; want retry after one request", first.Outcome, first.Message, len(first.Exchanges))
	}
	if second := send(d, "evt-1:mixpanel-test", e); second.Outcome != destinations.Delivered || len(second.Exchanges) != 2 {
		t.Fatalf("second = %s %q with %d exchanges; want delivered after track and engage", second.Outcome, second.Message, len(second.Exchanges))
	}
	reqs := f.Requests()
	if len(reqs) != 3 || !strings.HasPrefix(reqs[2].Path, "/engage") {
		t.Fatalf("%d requests, want track, track, engage", len(reqs))
	}
	a, b := tracks(t, reqs[0].Body)[0].Properties["$insert_id"], tracks(t, reqs[1].Body)[0].Properties["$insert_id"]
	if a != b || len(a.(string)) != 36 {
		t.Errorf("$insert_id = %v then %v; want the same 36 characters", a, b)
	}
}

func TestAnswers(t *testing.T) {
	destinationstest.Run(t, []destinationstest.Case{
		{Name: "status 0 on HTTP 200", Replies: []destinationstest.Reply{{Status: 200, Body: `{"error":"token, missing or empty","status":0}`}},
			Outcome: destinations.Permanent, Reason: destinations.ReasonRejected,
			Message: "mixpanel rejected the track: token, missing or empty"},
		{Name: "bad token", Replies: []destinationstest.Reply{{Status: 401, Body: `{"error":"Invalid token","status":0}`}},
			Outcome: destinations.Permanent, Reason: destinations.ReasonClientError,
			Message: `mixpanel answered HTTP 401 Unauthorized: {"error":"Invalid token","status":0}`},
		{Name: "rate limited", Replies: []destinationstest.Reply{{Status: 429, Header: map[string]string{"Retry-After": "60"}, Body: `{"error":"rate limit","status":0}`}},
			Outcome: destinations.Retry, Reason: destinations.ReasonRateLimited, RetryAfter: time.Minute, Pause: true,
			Message: `mixpanel answered HTTP 429 Too Many Requests: {"error":"rate limit","status":0}`},
		{Name: "server error", Replies: []destinationstest.Reply{{Status: 502, Body: `bad gateway`}},
			Outcome: destinations.Retry, Reason: destinations.ReasonServerError,
			Message: "mixpanel answered HTTP 502 Bad Gateway: bad gateway"},
		{Name: "engage refused", Replies: []destinationstest.Reply{okReply, {Status: 200, Body: `{"error":"$append value must be a dict","status":0}`}},
			Outcome: destinations.Permanent, Reason: destinations.ReasonRejected, Statuses: []int{200, 200},
			Message: "tracked, but the profile was not updated: mixpanel rejected the profile update: $append value must be a dict"},
		{Name: "engage unavailable", Replies: []destinationstest.Reply{okReply, {Status: 503, Body: `later`}},
			Outcome: destinations.Retry, Reason: destinations.ReasonServerError, Statuses: []int{200, 503},
			Message: "tracked, but the profile was not updated: mixpanel answered HTTP 503 Service Unavailable: later"},
	}, func(t *testing.T, _ destinationstest.Case, srv *destinationstest.Server) destinations.Result {
		return send(newDest(t, srv.URL, Config{}), "k1", fakevendor.Purchase("e1", "u1", nil))
	})
}

func burst(t *testing.T, n int, answer func(int, *http.Request) destinationstest.Reply) (map[string]destinations.Result, []destinationstest.Request) {
	t.Helper()
	return fakevendor.Burst(t, n, okReply, answer, func(url string) fakevendor.Sender {
		d := newDest(t, url, Config{})
		return fakevendor.Sender{
			Send:   func(id string) destinations.Result { return send(d, id, fakevendor.Purchase(id, "user-"+id, nil)) },
			Queued: d.batches.Queued,
		}
	})
}

// TestStatusZeroFindsTheBadEvent: a batch refused with status 0 is split
// until the one event Mixpanel refuses is alone; the others are delivered.
func TestStatusZeroFindsTheBadEvent(t *testing.T) {
	results, reqs := burst(t, 4, func(_ int, r *http.Request) destinationstest.Reply {
		if strings.HasPrefix(r.URL.Path, "/track") {
			for _, tr := range tracks(t, fakevendor.Body(r)) {
				if tr.Properties["distinct_id"] == "user-e2" {
					return destinationstest.Reply{Status: 200, Body: `{"error":"bad property","status":0}`}
				}
			}
		}
		return okReply
	})
	var sizes []int
	engages := 0
	for _, r := range reqs {
		if strings.HasPrefix(r.Path, "/track") {
			sizes = append(sizes, len(tracks(t, r.Body)))
		} else {
			engages++
		}
	}
	// The 4, its two halves, then the half with e2 in two (the order of
	// the events in the batch is the order the Sends queued); one engage
	// for the first event, one for the three tracked.
	slices.Sort(sizes)
	if fmt.Sprint(sizes) != "[1 1 2 2 4]" || engages != 2 {
		t.Errorf("track sizes = %v with %d engages; want [1 1 2 2 4] and 2", sizes, engages)
	}
	for id, r := range results {
		want := destinations.Delivered
		if id == "e2" {
			want = destinations.Permanent
		}
		if r.Outcome != want {
			t.Errorf("%s = %s %q, want %s", id, r.Outcome, r.Message, want)
		}
	}
	if msg := results["e2"].Message; msg != "mixpanel rejected the track: bad property" {
		t.Errorf("e2 message = %q", msg)
	}
}

func TestConcurrentSendsAreBatched(t *testing.T) {
	results, reqs := burst(t, 80, func(int, *http.Request) destinationstest.Reply { return okReply })
	var sizes []string
	for _, r := range reqs {
		if strings.HasPrefix(r.Path, "/track") {
			sizes = append(sizes, fmt.Sprint(len(tracks(t, r.Body))))
		} else {
			var es []Engage
			_ = json.Unmarshal(r.Body, &es)
			sizes = append(sizes, fmt.Sprintf("engage %d", len(es)))
		}
	}
	if got := strings.Join(sizes, ", "); got != "engage 2, 50, engage 100, 30, engage 60" {
		t.Errorf("requests = %s", got)
	}
	for id, r := range results {
		if r.Outcome != destinations.Delivered || len(r.Exchanges) != 2 {
			t.Errorf("%s = %s with %d exchanges", id, r.Outcome, len(r.Exchanges))
		}
	}
}

func TestSecretNeverShown(t *testing.T) {
	f := destinationstest.NewServer(t, destinationstest.Reply{Status: 200, Body: `{"error":"token ` + testToken + ` is not valid","status":0}`})
	d := newDest(t, f.URL, Config{})
	res := send(d, "k", fakevendor.Purchase("e", "u", nil))
	fakevendor.NoSecret(t, testToken, res, d)
}

func TestValidate(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  destinations.Block
		want string
	}{
		{"ok", &Config{Token: "t", Endpoint: "https://api-eu.mixpanel.com", SalesReporting: "proceeds"}, ""},
		{"no token", &Config{}, "token: required (the project token of the Mixpanel project)"},
		{"endpoint with a query", &Config{Token: "t", Endpoint: "https://api.mixpanel.com?ip=1"},
			"endpoint: must not have a query or fragment (e.g. https://api.mixpanel.com)"},
		{"endpoint with credentials", &Config{Token: "t", Endpoint: "https://u:pw@api.mixpanel.com"},
			"endpoint: must not hold credentials (user:password@); the vendor authenticates with token"},
	} {
		fakevendor.CheckValidate(t, tt.name, tt.cfg, tt.want)
	}
}
