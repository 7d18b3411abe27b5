package destinations

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rcrouter/rcrouter/internal/secret"
)

// roundTripFunc is a fake base transport: exact answers, no network.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func answer(status int, body string) roundTripFunc {
	return func(r *http.Request) (*http.Response, error) {
		if r.Body != nil {
			_, _ = io.Copy(io.Discard, r.Body)
			r.Body.Close()
		}
		return &http.Response{StatusCode: status, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(body)), Request: r}, nil
	}
}

// do sends one request through tr with a fresh recorder and returns the
// response body as the caller reads it and the recorded exchanges.
func do(t *testing.T, tr http.RoundTripper, req *http.Request) (string, error, []Exchange) {
	t.Helper()
	rec := &Recorder{}
	req = req.WithContext(WithRecorder(req.Context(), rec))
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return "", err, rec.Exchanges()
	}
	defer resp.Body.Close()
	b, readErr := io.ReadAll(resp.Body)
	return string(b), readErr, rec.Exchanges()
}

func newRequest(t *testing.T, method, url string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func TestTransportRecordsRedactedExchange(t *testing.T) {
	const key = "sk_live_CAPTURE_TOKEN_1"
	tests := []struct {
		name      string
		tr        *Transport
		url       string
		headers   map[string]string
		body      string
		wantURL   string
		wantHdr   map[string]string
		wantBody  string
		wantResp  string
		wantRead  string // what the caller reads, when not wantResp
		wantState int
	}{
		{
			name:      "plain request",
			tr:        &Transport{Base: answer(200, "ok")},
			url:       "https://api.example.com/v1/events?x=1",
			headers:   map[string]string{"Content-Type": "application/json"},
			body:      `{"a":1}`,
			wantURL:   "https://api.example.com/v1/events?x=1",
			wantHdr:   map[string]string{"Content-Type": "application/json"},
			wantBody:  `{"a":1}`,
			wantResp:  "ok",
			wantState: 200,
		},
		{
			name: "secret header names, Authorization and secret values",
			tr: &Transport{Base: answer(401, "bad key "+key), Secrets: []secret.Secret{key},
				SecretHeaders: []string{"x-api-key"}},
			url:       "https://api.example.com/hook?token=" + key,
			headers:   map[string]string{"X-Api-Key": "short", "Authorization": "Bearer abc", "X-Note": "uses " + key},
			body:      `{"k":"` + key + `"}`,
			wantURL:   "https://api.example.com/hook?token=<secret>",
			wantHdr:   map[string]string{"X-Api-Key": "<secret>", "Authorization": "<secret>", "X-Note": "uses <secret>"},
			wantBody:  `{"k":"<secret>"}`,
			wantResp:  "bad key <secret>",
			wantRead:  "bad key " + key, // only the record is redacted
			wantState: 401,
		},
		{
			name:      "userinfo",
			tr:        &Transport{Base: answer(204, "")},
			url:       "https://alice:hunter22@api.example.com/path",
			wantURL:   "https://<secret>@api.example.com/path",
			wantHdr:   map[string]string{"Authorization": "<secret>"},
			wantState: 204,
		},
		{
			name:      "SecretURL shows scheme and host only",
			tr:        &Transport{Base: answer(200, "ok"), SecretURL: true},
			url:       "https://hooks.example.com/services/T000/B000/XXXXXXXX",
			wantURL:   "https://hooks.example.com/<secret>",
			wantHdr:   map[string]string{},
			wantResp:  "ok",
			wantState: 200,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			req := newRequest(t, http.MethodPost, tt.url, body)
			for k, v := range tt.headers {
				req.Header.Set(k, v)
			}
			got, err, xs := do(t, tt.tr, req)
			if err != nil {
				t.Fatal(err)
			}
			wantRead := tt.wantResp
			if tt.wantRead != "" {
				wantRead = tt.wantRead
			}
			if got != wantRead {
				t.Errorf("caller read %q, want %q", got, wantRead)
			}
			if len(xs) != 1 {
				t.Fatalf("%d exchanges, want 1", len(xs))
			}
			x := xs[0]
			if x.Request.Method != http.MethodPost || x.Request.URL != tt.wantURL || x.Request.Body != tt.wantBody {
				t.Errorf("request = %s %q body %q, want POST %q body %q", x.Request.Method, x.Request.URL, x.Request.Body, tt.wantURL, tt.wantBody)
			}
			if !equalMaps(x.Request.Headers, tt.wantHdr) {
				t.Errorf("headers = %v, want %v", x.Request.Headers, tt.wantHdr)
			}
			if x.Response != (Response{StatusCode: tt.wantState, Body: tt.wantResp}) {
				t.Errorf("response = %+v, want status %d body %q", x.Response, tt.wantState, tt.wantResp)
			}
			if x.Started.IsZero() || x.Duration < 0 {
				t.Errorf("Started %v Duration %v", x.Started, x.Duration)
			}
		})
	}
}

func TestTransportMultiValueHeader(t *testing.T) {
	req := newRequest(t, http.MethodGet, "https://api.example.com/", nil)
	req.Header.Add("Accept", "application/json")
	req.Header.Add("Accept", "text/plain")
	_, err, xs := do(t, &Transport{Base: answer(200, "")}, req)
	if err != nil {
		t.Fatal(err)
	}
	if got := xs[0].Request.Headers["Accept"]; got != "application/json, text/plain" {
		t.Errorf("Accept = %q", got)
	}
}

func TestTransportLargeResponseStillReadable(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(big)
	}))
	defer srv.Close()

	// Within MaxResponse the caller reads every byte; only the record is cut.
	tr := &Transport{Base: srv.Client().Transport, MaxBody: 100, MaxResponse: len(big)}
	got, err, xs := do(t, tr, newRequest(t, http.MethodGet, srv.URL, nil))
	if err != nil {
		t.Fatal(err)
	}
	if got != string(big) {
		t.Fatalf("caller read %d bytes, want all %d", len(got), len(big))
	}
	if want := string(big[:100]) + TruncatedMarker; xs[0].Response.Body != want {
		t.Errorf("recorded body = %q, want %q", xs[0].Response.Body, want)
	}
	if xs[0].Response.StatusCode != 200 {
		t.Errorf("status = %d", xs[0].Response.StatusCode)
	}
}

func TestTransportTruncatesRequestBody(t *testing.T) {
	body := strings.Repeat("é", 60) // 120 bytes
	tr := &Transport{Base: answer(200, ""), MaxBody: 51}
	_, err, xs := do(t, tr, newRequest(t, http.MethodPost, "https://x.example/", strings.NewReader(body)))
	if err != nil {
		t.Fatal(err)
	}
	// 51 bytes would split the 26th é: the cut backs off to 50 bytes.
	if want := strings.Repeat("é", 25) + TruncatedMarker; xs[0].Request.Body != want {
		t.Errorf("recorded body = %q, want %q", xs[0].Request.Body, want)
	}
}

func TestTransportSecretAcrossTruncationPoint(t *testing.T) {
	const key = "SUPERSECRETVALUE"
	// The secret starts 3 bytes before the cut: reading only MaxBody+1 bytes
	// would show "SUP" in the log.
	body := strings.Repeat("x", 17) + key + strings.Repeat("y", 50)
	tr := &Transport{Base: answer(500, body), MaxBody: 20, Secrets: []secret.Secret{key}}
	got, err, xs := do(t, tr, newRequest(t, http.MethodGet, "https://x.example/", nil))
	if err != nil {
		t.Fatal(err)
	}
	if got != body {
		t.Errorf("caller read %q, want the whole body", got)
	}
	if want := strings.Repeat("x", 17) + "<se" + TruncatedMarker; xs[0].Response.Body != want {
		t.Errorf("recorded body = %q, want %q", xs[0].Response.Body, want)
	}
}

func TestTransportErrorRecorded(t *testing.T) {
	const key = "tok_ERROR_SECRET_9"
	boom := errors.New("dial tcp: lookup " + key + ".example: no such host")
	tr := &Transport{
		Base:    roundTripFunc(func(*http.Request) (*http.Response, error) { return nil, boom }),
		Secrets: []secret.Secret{key},
	}
	_, err, xs := do(t, tr, newRequest(t, http.MethodPost, "https://api.example.com/", strings.NewReader("{}")))
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the base error", err)
	}
	if len(xs) != 1 {
		t.Fatalf("%d exchanges, want 1", len(xs))
	}
	want := Response{Error: "dial tcp: lookup <secret>.example: no such host"}
	if xs[0].Response != want {
		t.Errorf("response = %+v, want %+v", xs[0].Response, want)
	}
	if xs[0].Request.Body != "{}" {
		t.Errorf("request body = %q", xs[0].Request.Body)
	}
}

func TestTransportRealConnectionRefused(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there now

	_, err, xs := do(t, &Transport{}, newRequest(t, http.MethodGet, url, nil))
	if err == nil {
		t.Fatal("want an error")
	}
	if len(xs) != 1 || xs[0].Response.StatusCode != 0 || !strings.Contains(xs[0].Response.Error, "connection refused") {
		t.Errorf("exchanges = %+v, want one with a connection-refused error", xs)
	}
}

// errAfter yields n bytes, then fails.
type errAfter struct {
	n   int
	err error
}

func (e *errAfter) Read(p []byte) (int, error) {
	if e.n == 0 {
		return 0, e.err
	}
	k := min(len(p), e.n)
	for i := range k {
		p[i] = 'z'
	}
	e.n -= k
	return k, nil
}

func TestTransportResponseReadErrorReachesCaller(t *testing.T) {
	cut := errors.New("connection reset by peer")
	tr := &Transport{MaxBody: 100, Base: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 200, Header: http.Header{}, Body: io.NopCloser(&errAfter{n: 10, err: cut}), Request: r}, nil
	})}
	got, err, xs := do(t, tr, newRequest(t, http.MethodGet, "https://x.example/", nil))
	if !errors.Is(err, cut) {
		t.Errorf("caller's read error = %v, want %v", err, cut)
	}
	if got != "zzzzzzzzzz" {
		t.Errorf("caller read %q, want the 10 bytes before the error", got)
	}
	want := Response{StatusCode: 200, Body: "zzzzzzzzzz", Error: "reading response body: connection reset by peer"}
	if xs[0].Response != want {
		t.Errorf("response = %+v, want %+v", xs[0].Response, want)
	}
}

// onceReader hides bytes.Reader's type so net/http sets no GetBody.
type onceReader struct{ r io.Reader }

func (o onceReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func TestTransportBodyWithoutGetBody(t *testing.T) {
	var received string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		received = string(b)
	}))
	defer srv.Close()

	req := newRequest(t, http.MethodPost, srv.URL, onceReader{strings.NewReader(`{"stream":true}`)})
	if req.GetBody != nil {
		t.Fatal("test setup: GetBody is set")
	}
	_, err, xs := do(t, &Transport{Base: srv.Client().Transport}, req)
	if err != nil {
		t.Fatal(err)
	}
	if received != `{"stream":true}` {
		t.Errorf("server received %q", received)
	}
	if xs[0].Request.Body != `{"stream":true}` {
		t.Errorf("recorded body = %q", xs[0].Request.Body)
	}
}

func TestTransportOnExchangeWithoutRecorder(t *testing.T) {
	var (
		gotBody string
		gotX    Exchange
		calls   int
	)
	tr := &Transport{Base: answer(200, "accepted"), OnExchange: func(req *http.Request, reqBody []byte, x Exchange) {
		calls++
		gotBody, gotX = string(reqBody), x
	}}
	// No recorder in the context: OnExchange gets it.
	resp, err := (&http.Client{Transport: tr}).Do(newRequest(t, http.MethodPost, "https://api.segment.io/v1/batch", strings.NewReader(`{"batch":[]}`)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if calls != 1 || gotBody != `{"batch":[]}` || gotX.Response.StatusCode != 200 || gotX.Response.Body != "accepted" {
		t.Errorf("calls %d body %q exchange %+v", calls, gotBody, gotX)
	}

	// With a recorder, OnExchange is not called.
	_, err, xs := do(t, tr, newRequest(t, http.MethodGet, "https://api.segment.io/", nil))
	if err != nil {
		t.Fatal(err)
	}
	if calls != 1 || len(xs) != 1 {
		t.Errorf("calls %d, recorded %d; want 1, 1", calls, len(xs))
	}
}

func TestRedactURL(t *testing.T) {
	req := newRequest(t, http.MethodGet, "https://user:pw@hooks.example.com:8443/services/T/B/X?y=1", nil)
	if got, want := RedactURL(req.URL), "https://hooks.example.com:8443/<secret>"; got != want {
		t.Errorf("RedactURL = %q, want %q", got, want)
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestTransportStopsReadingAtMaxResponse(t *testing.T) {
	body := strings.Repeat("x", 1000)
	tr := &Transport{Base: answer(500, body), MaxBody: 200, MaxResponse: 300}
	got, err, xs := do(t, tr, newRequest(t, http.MethodGet, "https://x.example/", nil))
	if !errors.Is(err, ErrResponseTooLarge) {
		t.Fatalf("read error = %v, want ErrResponseTooLarge", err)
	}
	if got != body[:300] {
		t.Errorf("caller read %d bytes, want the first 300", len(got))
	}
	rec := xs[0].Response.Body
	if !strings.HasSuffix(rec, UnreadMarker) || len(rec) > 200 {
		t.Errorf("recorded body = %q (%d bytes), want at most 200 ending with %q", rec, len(rec), UnreadMarker)
	}
	if Truncate(rec, 200) != rec {
		t.Error("a second Truncate to MaxBody changes the record")
	}
}

func TestTransportRedirectNotFollowed(t *testing.T) {
	tests := []struct {
		name      string
		tr        *Transport
		location  string
		wantError string
	}{
		{"absolute", &Transport{}, "https://other.example:8443/in?x=1",
			"redirect not followed: Location: https://other.example:8443/in?x=1"},
		{"relative", &Transport{}, "/elsewhere",
			"redirect not followed: Location: https://x.example/elsewhere"},
		{"userinfo", &Transport{}, "https://bob:hunter2@other.example/",
			"redirect not followed: Location: https://<secret>@other.example/"},
		{"configured secret", &Transport{Secrets: []secret.Secret{"wk_SECRET_1"}}, "https://other.example/?key=wk_SECRET_1",
			"redirect not followed: Location: https://other.example/?key=<secret>"},
		{"secret url", &Transport{SecretURL: true}, "/services/T0/B0/abc",
			"redirect not followed: Location: https://x.example/<secret>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls int
			tt.tr.Base = roundTripFunc(func(r *http.Request) (*http.Response, error) {
				calls++
				h := http.Header{}
				h.Set("Location", tt.location)
				return &http.Response{StatusCode: 307, Header: h, Body: http.NoBody, Request: r}, nil
			})
			// A plain client follows redirects; the transport must stop it.
			_, err, xs := do(t, tt.tr, newRequest(t, http.MethodPost, "https://x.example/v1", strings.NewReader("{}")))
			if err != nil {
				t.Fatal(err)
			}
			if calls != 1 || len(xs) != 1 {
				t.Fatalf("requests = %d, exchanges = %d, want 1 and 1", calls, len(xs))
			}
			if xs[0].Response.StatusCode != 307 || xs[0].Response.Error != tt.wantError {
				t.Errorf("recorded %d %q, want 307 %q", xs[0].Response.StatusCode, xs[0].Response.Error, tt.wantError)
			}
		})
	}
}
