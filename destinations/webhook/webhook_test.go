package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rcrouter/rcrouter/destinations"
	"github.com/rcrouter/rcrouter/destinations/destinationstest"
	"github.com/rcrouter/rcrouter/internal/secret"
)

func TestSendRetriesInProcessThenDelivers(t *testing.T) {
	s := destinationstest.NewServer(t, destinationstest.Reply{Status: 503}, destinationstest.Reply{Status: 503, Body: "still down"}, destinationstest.Reply{Status: 200, Body: "ok"})
	d := mustNew(t, Config{URL: s.URL + "/hooks"}, fastOptions())

	res := d.Send(context.Background(), delivery())

	if res.Outcome != destinations.Delivered || res.Reason != destinations.ReasonNone || res.Message != "HTTP 200 OK" {
		t.Errorf("result = %s/%q %q, want delivered HTTP 200 OK", res.Outcome, res.Reason, res.Message)
	}
	if len(res.Exchanges) != 3 {
		t.Fatalf("%d exchanges, want 3", len(res.Exchanges))
	}
	wantStatus := []int{503, 503, 200}
	wantBody := []string{"", "still down", "ok"}
	for i, x := range res.Exchanges {
		if x.Response.StatusCode != wantStatus[i] || x.Response.Body != wantBody[i] || x.Response.Error != "" {
			t.Errorf("exchange %d response = %+v, want %d %q", i, x.Response, wantStatus[i], wantBody[i])
		}
		if x.Request.Body != rawRenewal {
			t.Errorf("exchange %d body = %q, want the raw envelope", i, x.Request.Body)
		}
		if x.Request.Headers["Idempotency-Key"] != "evt-1:hook" {
			t.Errorf("exchange %d Idempotency-Key = %q", i, x.Request.Headers["Idempotency-Key"])
		}
		if x.Request.Method != "POST" || x.Request.URL != s.URL+"/hooks" {
			t.Errorf("exchange %d request = %s %s", i, x.Request.Method, x.Request.URL)
		}
	}
	got := s.Requests()
	if len(got) != 3 {
		t.Fatalf("sink got %d requests, want 3", len(got))
	}
	for i, r := range got {
		if string(r.Body) != rawRenewal || r.Header.Get("Idempotency-Key") != "evt-1:hook" {
			t.Errorf("request %d: body %q key %q", i, r.Body, r.Header.Get("Idempotency-Key"))
		}
	}
}

// slowWaits keeps the default 250 ms–2 s in-process waits for a case, so a
// Retry-After of 1 s would be waited for in-process if the policy allowed it.
const slowWaits = "slow waits"

func TestSendOutcomes(t *testing.T) {
	retryAt := t0.Add(90 * time.Second).Format(http.TimeFormat)
	destinationstest.Run(t, []destinationstest.Case{
		{Name: "201 created", Replies: []destinationstest.Reply{{Status: 201}},
			Outcome: destinations.Delivered, Message: "HTTP 201 Created", Statuses: []int{201}},
		{Name: "400 is permanent at once", Replies: []destinationstest.Reply{{Status: 400, Body: `{"error":"bad"}`}},
			Outcome: destinations.Permanent, Reason: destinations.ReasonClientError, Message: "HTTP 400 Bad Request", Statuses: []int{400}},
		{Name: "429 with Retry-After seconds goes to the scheduler", Setup: slowWaits,
			Replies: []destinationstest.Reply{{Status: 429, Header: map[string]string{"Retry-After": "1"}}},
			Outcome: destinations.Retry, Reason: destinations.ReasonRateLimited, Message: "HTTP 429 Too Many Requests",
			RetryAfter: time.Second, Pause: true, Statuses: []int{429}},
		{Name: "429 with Retry-After HTTP date", Setup: slowWaits,
			Replies: []destinationstest.Reply{{Status: 429, Header: map[string]string{"Retry-After": retryAt}}},
			Outcome: destinations.Retry, Reason: destinations.ReasonRateLimited, Message: "HTTP 429 Too Many Requests",
			RetryAfter: 90 * time.Second, Pause: true, Statuses: []int{429}},
		{Name: "429 without Retry-After uses the backoff", Setup: slowWaits, Replies: []destinationstest.Reply{{Status: 429}},
			Outcome: destinations.Retry, Reason: destinations.ReasonRateLimited, Message: "HTTP 429 Too Many Requests", Statuses: []int{429}},
		{Name: "503 with a long Retry-After is not retried in-process", Setup: slowWaits,
			Replies: []destinationstest.Reply{{Status: 503, Header: map[string]string{"Retry-After": "120"}}, {Status: 200}},
			Outcome: destinations.Retry, Reason: destinations.ReasonServerError, Message: "HTTP 503 Service Unavailable",
			RetryAfter: 120 * time.Second, Statuses: []int{503}},
		{Name: "500 with a long Retry-After is not retried in-process", Setup: slowWaits,
			Replies: []destinationstest.Reply{{Status: 500, Header: map[string]string{"Retry-After": "3"}}, {Status: 200}},
			Outcome: destinations.Retry, Reason: destinations.ReasonServerError, Message: "HTTP 500 Internal Server Error",
			RetryAfter: 3 * time.Second, Statuses: []int{500}},
		{Name: "503 with Retry-After 0 is retried at once",
			Replies: []destinationstest.Reply{{Status: 503, Header: map[string]string{"Retry-After": "0"}}, {Status: 200}},
			Outcome: destinations.Delivered, Message: "HTTP 200 OK", Statuses: []int{503, 200}},
		{Name: "500 three times", Replies: []destinationstest.Reply{{Status: 500}},
			Outcome: destinations.Retry, Reason: destinations.ReasonServerError, Message: "HTTP 500 Internal Server Error", Statuses: []int{500, 500, 500}},
		{Name: "408 three times", Replies: []destinationstest.Reply{{Status: 408}},
			Outcome: destinations.Retry, Reason: destinations.ReasonTimeout, Message: "HTTP 408 Request Timeout", Statuses: []int{408, 408, 408}},
		{Name: "425 then 202", Replies: []destinationstest.Reply{{Status: 425}, {Status: 202}},
			Outcome: destinations.Delivered, Message: "HTTP 202 Accepted", Statuses: []int{425, 202}},
		{Name: "501 is permanent", Replies: []destinationstest.Reply{{Status: 501}},
			Outcome: destinations.Permanent, Reason: destinations.ReasonServerError, Message: "HTTP 501 Not Implemented", Statuses: []int{501}},
		{Name: "a redirect is not followed", Replies: []destinationstest.Reply{{Status: 302, Header: map[string]string{"Location": "/elsewhere"}}, {Status: 200}},
			Outcome: destinations.Permanent, Reason: destinations.ReasonClientError, Message: "HTTP 302 Found", Statuses: []int{302}},
	}, func(t *testing.T, c destinationstest.Case, s *destinationstest.Server) destinations.Result {
		opts := fastOptions()
		opts.Now = (&clock{t: t0}).Now // a fixed time: Retry-After dates are exact
		if c.Setup == slowWaits {
			opts.RetryWaitMin, opts.RetryWaitMax = 0, 0
		}
		return mustNew(t, Config{URL: s.URL}, opts).Send(context.Background(), delivery())
	})
}

func TestSendTimeout(t *testing.T) {
	srv, _ := hangingSink(t)
	opts := fastOptions()
	opts.Timeout = 150 * time.Millisecond
	d := mustNew(t, Config{URL: srv.URL}, opts)

	start := time.Now()
	res := d.Send(context.Background(), delivery())
	elapsed := time.Since(start)

	if res.Outcome != destinations.Retry || res.Reason != destinations.ReasonTimeout || res.Message != "no response within 150ms" {
		t.Errorf("result = %s/%q %q", res.Outcome, res.Reason, res.Message)
	}
	if len(res.Exchanges) != RetryMax+1 {
		t.Fatalf("%d exchanges, want %d", len(res.Exchanges), RetryMax+1)
	}
	for i, x := range res.Exchanges {
		if x.Response.StatusCode != 0 || x.Response.Error == "" {
			t.Errorf("exchange %d response = %+v, want a transport error", i, x.Response)
		}
	}
	// Three attempts of 150 ms plus millisecond waits; never much more.
	if elapsed < 3*opts.Timeout || elapsed > 3*opts.Timeout+time.Second {
		t.Errorf("Send took %v, want about %v", elapsed, 3*opts.Timeout)
	}
}

func TestSendConnectionRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now

	d := mustNew(t, Config{URL: "http://" + addr + "/"}, fastOptions())
	res := d.Send(context.Background(), delivery())

	want := "dial tcp " + addr + ": connect: connection refused"
	if res.Outcome != destinations.Retry || res.Reason != destinations.ReasonNetwork || res.Message != want {
		t.Errorf("result = %s/%q %q, want retry/network %q", res.Outcome, res.Reason, res.Message, want)
	}
	if len(res.Exchanges) != 3 {
		t.Fatalf("%d exchanges, want 3", len(res.Exchanges))
	}
	for i, x := range res.Exchanges {
		if x.Response.Error != want {
			t.Errorf("exchange %d error = %q, want %q", i, x.Response.Error, want)
		}
	}
}

func TestSendCancelled(t *testing.T) {
	t.Run("while waiting for the answer", func(t *testing.T) {
		srv, arrived := hangingSink(t)
		opts := fastOptions()
		opts.Timeout = 10 * time.Second // the cancel, not the timeout, must end it
		d := mustNew(t, Config{URL: srv.URL}, opts)

		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			<-arrived
			cancel()
		}()
		start := time.Now()
		res := d.Send(ctx, delivery())

		if res.Outcome != destinations.Retry || res.Reason != destinations.ReasonNetwork || res.Message != "cancelled" {
			t.Errorf("result = %s/%q %q, want retry/network cancelled", res.Outcome, res.Reason, res.Message)
		}
		if len(res.Exchanges) != 1 || res.Exchanges[0].Response.Error != "context canceled" {
			t.Errorf("exchanges = %+v, want one with context canceled", res.Exchanges)
		}
		if elapsed := time.Since(start); elapsed > 2*time.Second {
			t.Errorf("Send took %v after cancel", elapsed)
		}
	})
	t.Run("before sending", func(t *testing.T) {
		s := destinationstest.NewServer(t, destinationstest.Reply{Status: 200})
		d := mustNew(t, Config{URL: s.URL}, fastOptions())
		ctx, cancel := context.WithCancel(context.Background())
		cancel()

		res := d.Send(ctx, delivery())

		if res.Outcome != destinations.Retry || res.Reason != destinations.ReasonNetwork || res.Message != "cancelled" {
			t.Errorf("result = %s/%q %q", res.Outcome, res.Reason, res.Message)
		}
		if n := len(s.Requests()); n != 0 {
			t.Errorf("sink got %d requests, want 0", n)
		}
	})
}

func TestSendHeaders(t *testing.T) {
	s := destinationstest.NewServer(t, destinationstest.Reply{Status: 200})
	d := mustNew(t, Config{
		URL:     s.URL,
		Method:  "put",
		Headers: map[string]secret.Secret{"X-Api-Key": "key-value-1234", "X-Team": "growth"},
	}, fastOptions())

	res := d.Send(context.Background(), delivery())
	if res.Outcome != destinations.Delivered {
		t.Fatalf("outcome %s %q", res.Outcome, res.Message)
	}

	r := s.Requests()[0]
	if r.Method != "PUT" {
		t.Errorf("method = %s, want PUT", r.Method)
	}
	wantSent := map[string]string{
		"Content-Type":        "application/json",
		"User-Agent":          "rcrouter/1.2.3",
		"Idempotency-Key":     "evt-1:hook",
		"X-Rcrouter-Event-Id": "evt-1",
		"X-Api-Key":           "key-value-1234",
		"X-Team":              "growth",
	}
	for k, v := range wantSent {
		if got := r.Header.Get(k); got != v {
			t.Errorf("sent %s = %q, want %q", k, got, v)
		}
	}
	if r.Header.Get("Webhook-Signature") != "" {
		t.Error("signature sent without a signing secret")
	}

	// The dispatch record shows configured header values as <secret>.
	wantRecorded := map[string]string{
		"Content-Type":        "application/json",
		"User-Agent":          "rcrouter/1.2.3",
		"Idempotency-Key":     "evt-1:hook",
		"X-Rcrouter-Event-Id": "evt-1",
		"X-Api-Key":           "<secret>",
		"X-Team":              "<secret>",
	}
	if got := res.Exchanges[0].Request.Headers; fmt.Sprint(got) != fmt.Sprint(wantRecorded) {
		t.Errorf("recorded headers = %v, want %v", got, wantRecorded)
	}
	if res.Exchanges[0].Request.Method != "PUT" {
		t.Errorf("recorded method = %s", res.Exchanges[0].Request.Method)
	}
}

func TestSendBodyModes(t *testing.T) {
	normalized, err := json.Marshal(testEvent())
	if err != nil {
		t.Fatal(err)
	}
	const tmpl = `{"user": {{toJson .app_user_id}}, "type": {{toJson (lower .type)}}, "price": {{toJson .price}},
 "ts": {{.event_timestamp_ms}}, "ents": {{.entitlements | join "," | toJson}}, "api": {{toJson .raw.api_version}},
 "country": {{.country_code | default "ZZ" | toJson}}, "missing": {{toJson .no_such_field}}, "store": "{{upper .store}}"}`
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"raw is byte-identical", Config{Body: BodyRaw}, rawRenewal},
		{"default is raw", Config{}, rawRenewal},
		{"normalized", Config{Body: BodyNormalized}, string(normalized)},
		{"template", Config{Body: BodyTemplate, Template: tmpl},
			`{"user": "u\"1\u003c/script\u003e", "type": "renewal", "price": 9.99,
 "ts": 1769904130000, "ents": "pro,gold", "api": "1.0",
 "country": "ZZ", "missing": null, "store": "APP_STORE"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := destinationstest.NewServer(t, destinationstest.Reply{Status: 204})
			tt.cfg.URL = s.URL
			d := mustNew(t, tt.cfg, fastOptions())

			res := d.Send(context.Background(), delivery())

			if res.Outcome != destinations.Delivered {
				t.Fatalf("outcome %s %q", res.Outcome, res.Message)
			}
			got := string(s.Requests()[0].Body)
			if got != tt.want {
				t.Errorf("body =\n%s\nwant\n%s", got, tt.want)
			}
			if !json.Valid([]byte(got)) {
				t.Error("body is not valid JSON")
			}
		})
	}

	// The template escaped quotes and </script>: the value decodes back intact.
	var decoded struct{ User string }
	if err := json.Unmarshal([]byte(tests[3].want), &decoded); err != nil || decoded.User != `u"1</script>` {
		t.Errorf("decoded user = %q, %v", decoded.User, err)
	}
}

func TestSendRejectedBodies(t *testing.T) {
	noRaw := delivery()
	noRaw.Event.Raw = nil
	cancellation := delivery()
	cancellation.Event.Type = "CANCELLATION"
	cancellation.Event.CancelReason = "UNSUBSCRIBE"
	tests := []struct {
		name    string
		cfg     Config
		dl      destinations.Delivery
		message string
	}{
		{
			name: "template interpolating a string without toJson",
			cfg:  Config{Body: BodyTemplate, Template: `{"user": "{{.app_user_id}}"}`},
			dl:   delivery(),
			message: `webhook "hook": template: output is not valid JSON: ` +
				`invalid character '1' after object key:value pair`,
		},
		{
			name: "template failing for a type the samples do not cover",
			cfg:  Config{Body: BodyTemplate, Template: `{"n": 1{{if eq .type "CANCELLATION"}}{{join "," .cancel_reason}}{{end}}}`},
			dl:   cancellation,
			message: `webhook "hook": template: template: body:1:39: executing "body" at <join "," .cancel_reason>: ` +
				`error calling join: join: string is not a list`,
		},
		{
			name:    "raw body missing",
			cfg:     Config{Body: BodyRaw},
			dl:      noRaw,
			message: `webhook "hook": the event has no raw body to pass through`,
		},
		{
			name:    "no event",
			cfg:     Config{},
			dl:      destinations.Delivery{Key: "k"},
			message: "no event to send",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := destinationstest.NewServer(t, destinationstest.Reply{Status: 200})
			tt.cfg.URL = s.URL
			d := mustNew(t, tt.cfg, fastOptions())

			res := d.Send(context.Background(), tt.dl)

			if res.Outcome != destinations.Permanent || res.Reason != destinations.ReasonRejected || res.Message != tt.message {
				t.Errorf("result = %s/%q\n%q\nwant permanent/rejected\n%q", res.Outcome, res.Reason, res.Message, tt.message)
			}
			if len(res.Exchanges) != 0 || len(s.Requests()) != 0 {
				t.Errorf("%d exchanges, %d requests; want none", len(res.Exchanges), len(s.Requests()))
			}
		})
	}
}

func TestSendConcurrentSendsKeepTheirOwnExchanges(t *testing.T) {
	s := destinationstest.NewServer(t, destinationstest.Reply{Status: 200})
	d := mustNew(t, Config{URL: s.URL}, fastOptions())

	const n = 20
	results := make([]destinations.Result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dl := delivery()
			dl.Key = fmt.Sprintf("key-%d", i)
			results[i] = d.Send(context.Background(), dl)
		}()
	}
	wg.Wait()
	for i, res := range results {
		if res.Outcome != destinations.Delivered || len(res.Exchanges) != 1 {
			t.Errorf("send %d: %s with %d exchanges", i, res.Outcome, len(res.Exchanges))
			continue
		}
		if got := res.Exchanges[0].Request.Headers["Idempotency-Key"]; got != fmt.Sprintf("key-%d", i) {
			t.Errorf("send %d recorded key %q", i, got)
		}
	}
	if got := len(s.Requests()); got != n {
		t.Errorf("sink got %d requests, want %d", got, n)
	}
}

func TestSecretsNeverInExchangesOrLogs(t *testing.T) {
	const (
		headerValue = "hv_DISTINCT_HEADER_5150"
		user        = "usr_DISTINCT_7001"
		pass        = "pwd_DISTINCT_7002"
		rawKey      = "DISTINCT-SIGNING-KEY-0042"
	)
	signing := "whsec_" + b64(rawKey)
	basic := b64(user + ":" + pass)
	forbidden := []string{headerValue, user, pass, signing, b64(rawKey), rawKey, basic}

	// The sink echoes every request header into its body, so a leak through
	// the response is caught too.
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = r.Header.Write(w)
	}))
	defer echo.Close()

	refused, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refusedAddr := refused.Addr().String()
	refused.Close()

	for _, target := range []string{echo.Listener.Addr().String(), refusedAddr} {
		t.Run(target, func(t *testing.T) {
			logs := &destinationstest.Logs{}
			opts := fastOptions()
			opts.Logger = logs.Logger()
			d := mustNew(t, Config{
				URL:           "http://" + user + ":" + pass + "@" + target + "/in?x=1",
				Headers:       map[string]secret.Secret{"X-Api-Key": headerValue},
				SigningSecret: secret.Secret(signing),
			}, opts)

			res := d.Send(context.Background(), delivery())

			if res.Outcome != destinations.Retry || len(res.Exchanges) != 3 {
				t.Fatalf("result %s with %d exchanges, want retry with 3", res.Outcome, len(res.Exchanges))
			}
			destinationstest.NoSecret(t, forbidden, res, d, logs.String())
			if got := fmt.Sprintf("%v %+v %#v %s", d, d, d, d); got != `webhook "hook" webhook "hook" webhook "hook" webhook "hook"` {
				t.Errorf("printed = %s", got)
			}
			if got, want := res.Exchanges[0].Request.URL, "http://<secret>@"+target+"/in?x=1"; got != want {
				t.Errorf("recorded URL = %q, want %q", got, want)
			}
			if !strings.Contains(logs.String(), "retryablehttp: performing request") {
				t.Errorf("the debug adapter logged nothing:\n%s", logs)
			}
		})
	}
}

// roundTripFunc is a fake base transport.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestOptionsBaseAndMaxBody(t *testing.T) {
	var calls int
	opts := fastOptions()
	opts.MaxBody = 16
	opts.Base = roundTripFunc(func(r *http.Request) (*http.Response, error) {
		calls++
		return &http.Response{StatusCode: 200, Header: http.Header{},
			Body: io.NopCloser(strings.NewReader(strings.Repeat("r", 40))), Request: r}, nil
	})
	d := mustNew(t, Config{URL: "https://sink.invalid/x"}, opts)

	res := d.Send(context.Background(), delivery())

	if res.Outcome != destinations.Delivered || calls != 1 || len(res.Exchanges) != 1 {
		t.Fatalf("result %s, %d calls, %d exchanges", res.Outcome, calls, len(res.Exchanges))
	}
	x := res.Exchanges[0]
	if want := rawRenewal[:16] + destinations.TruncatedMarker; x.Request.Body != want {
		t.Errorf("request body = %q, want %q", x.Request.Body, want)
	}
	if want := strings.Repeat("r", 16) + destinations.TruncatedMarker; x.Response.Body != want {
		t.Errorf("response body = %q, want %q", x.Response.Body, want)
	}
	if d.ownBase != nil {
		t.Error("a transport was created although Base was given")
	}
}
