package server

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rcrouter/rcrouter/internal/clock"
	"github.com/rcrouter/rcrouter/internal/event"
	"github.com/rcrouter/rcrouter/internal/secret"
	"github.com/rcrouter/rcrouter/internal/store"
)

// fakeBackend records accepted events; it stands in for routing and the store.
type fakeBackend struct {
	mu       sync.Mutex
	accepted map[string]*event.Event
	fail     error
}

func (f *fakeBackend) Accept(_ context.Context, e *event.Event) (Accepted, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return Accepted{}, f.fail
	}
	if f.accepted == nil {
		f.accepted = map[string]*event.Event{}
	}
	if _, dup := f.accepted[e.ID]; dup {
		return Accepted{}, nil
	}
	f.accepted[e.ID] = e
	return Accepted{Created: true, Destinations: []string{"archive"}}, nil
}

func (f *fakeBackend) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.accepted)
}

func (f *fakeBackend) Destinations(context.Context) ([]DestinationStatus, error) { return nil, nil }
func (f *fakeBackend) Retry(context.Context, string) error                       { return nil }
func (f *fakeBackend) Replay(context.Context, string, store.ReplayFilter, bool) (int, error) {
	return 0, nil
}
func (f *fakeBackend) SendTest(context.Context, string) (string, error) { return "", nil }
func (f *fakeBackend) Pause(context.Context, string) error              { return nil }
func (f *fakeBackend) Resume(context.Context, string) error             { return nil }
func (f *fakeBackend) Reload(context.Context) error                     { return nil }
func (f *fakeBackend) Ready(context.Context) error                      { return nil }

const (
	testAuth    = "Bearer s3cr3t-webhook-auth"
	testSigning = "signing-secret-for-tests"
	testPath    = "/webhooks/revenuecat"
)

var testNow = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func newTestServer(t *testing.T, b Backend, mod func(*Settings)) *Server {
	t.Helper()
	st := Settings{
		Authorization: []secret.Secret{"Bearer old-rotated-value", testAuth},
		AdminToken:    "admin-token-for-tests",
		MaxBodyBytes:  1024,
	}
	if mod != nil {
		mod(&st)
	}
	return New(Options{Listen: "127.0.0.1:0", WebhookPath: testPath, Settings: st, Backend: b, Clock: clock.NewFake(testNow)})
}

func body(id, typ string) string {
	return `{"api_version":"1.0","event":{"id":"` + id + `","type":"` + typ + `","app_user_id":"u1","environment":"PRODUCTION"}}`
}

func sign(b string, ts time.Time, key string) string {
	t := strconv.FormatInt(ts.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte(t + "." + b))
	return "t=" + t + ",v1=" + hex.EncodeToString(mac.Sum(nil))
}

// padTo returns a valid event body of exactly n bytes.
func padTo(n int) string {
	b := body("pad-1", "RENEWAL")
	pad := n - len(b) - len(`,"x":""`)
	return strings.Replace(b, `"environment":"PRODUCTION"`, `"environment":"PRODUCTION","x":"`+strings.Repeat("a", pad)+`"`, 1)
}

func TestWebhookStatuses(t *testing.T) {
	tests := []struct {
		name      string
		method    string
		body      string
		headers   map[string]string
		settings  func(*Settings)
		wantCode  int
		wantError string // substring of the JSON error, or of the status for 200
		stored    bool
	}{
		{name: "accepted", body: body("e1", "RENEWAL"), wantCode: 200, wantError: `"status":"accepted"`, stored: true},
		{name: "second authorization value accepted (rotation)", body: body("e1", "RENEWAL"), headers: map[string]string{"Authorization": "Bearer old-rotated-value"}, wantCode: 200, stored: true},
		{name: "unknown type accepted", body: body("e1", "PAYWALL_IMPRESSION"), wantCode: 200, stored: true},
		{name: "any api_version accepted", body: `{"api_version":"9.9","event":{"id":"e1","type":"TEST"}}`, wantCode: 200, stored: true},
		{name: "no api_version accepted", body: `{"event":{"id":"e1","type":"TEST"}}`, wantCode: 200, stored: true},
		{name: "unknown fields accepted", body: `{"api_version":"1.0","new_top":1,"event":{"id":"e1","type":"TEST","brand_new":{"a":[1,2]}}}`, wantCode: 200, stored: true},
		{name: "body of exactly max_body_bytes", body: padTo(1024), wantCode: 200, stored: true},
		{name: "missing authorization", body: body("e1", "RENEWAL"), headers: map[string]string{"Authorization": ""}, wantCode: 401, wantError: "Authorization"},
		{name: "wrong authorization", body: body("e1", "RENEWAL"), headers: map[string]string{"Authorization": "Bearer wrong"}, wantCode: 401},
		{name: "authorization without Bearer prefix", body: body("e1", "RENEWAL"), headers: map[string]string{"Authorization": "s3cr3t-webhook-auth"}, wantCode: 401},
		{name: "authorization with extra space", body: body("e1", "RENEWAL"), headers: map[string]string{"Authorization": testAuth + " "}, wantCode: 401},
		{name: "authorization prefix of the value", body: body("e1", "RENEWAL"), headers: map[string]string{"Authorization": testAuth[:len(testAuth)-1]}, wantCode: 401},
		{name: "one byte over max_body_bytes", body: padTo(1025), wantCode: 413, wantError: "larger than 1024 bytes"},
		{name: "far over max_body_bytes", body: padTo(100000), wantCode: 413},
		{name: "empty body", body: "", wantCode: 400},
		{name: "not JSON", body: "hello", wantCode: 400},
		{name: "truncated JSON", body: `{"api_version":"1.0","event":{"id":"e1"`, wantCode: 400},
		{name: "second JSON value", body: body("e1", "RENEWAL") + `{}`, wantCode: 400},
		{name: "garbage after JSON", body: body("e1", "RENEWAL") + `x`, wantCode: 400},
		{name: "array", body: `[` + body("e1", "RENEWAL") + `]`, wantCode: 400},
		{name: "string", body: `"event"`, wantCode: 400},
		{name: "null", body: `null`, wantCode: 400},
		{name: "no event", body: `{"api_version":"1.0"}`, wantCode: 400, wantError: "event"},
		{name: "event null", body: `{"api_version":"1.0","event":null}`, wantCode: 400},
		{name: "event not object", body: `{"api_version":"1.0","event":[1]}`, wantCode: 400},
		{name: "event.id missing", body: `{"event":{"type":"TEST"}}`, wantCode: 400, wantError: "event.id"},
		{name: "event.id empty", body: `{"event":{"id":"","type":"TEST"}}`, wantCode: 400, wantError: "event.id"},
		{name: "event.id with invalid UTF-8", body: "{\"event\":{\"id\":\"e\xff\",\"type\":\"TEST\"}}", wantCode: 400, wantError: "event.id must be valid UTF-8"},
		{name: "event.id with a lone surrogate", body: `{"event":{"id":"e\ud800","type":"TEST"}}`, wantCode: 400, wantError: "unpaired surrogate"},
		{name: "event.id with a surrogate pair", body: `{"event":{"id":"e\ud83d\ude00","type":"TEST"}}`, wantCode: 200, stored: true},
		{name: "event.id with CR LF", body: `{"event":{"id":"e\r\nX-Injected: 1","type":"TEST"}}`, wantCode: 400, wantError: "control characters"},
		{name: "event.id number", body: `{"event":{"id":12,"type":"TEST"}}`, wantCode: 400, wantError: "event.id"},
		{name: "event.type missing", body: `{"event":{"id":"e1"}}`, wantCode: 400, wantError: "event.type"},
		{name: "event.type null", body: `{"event":{"id":"e1","type":null}}`, wantCode: 400, wantError: "event.type"},
		{name: "deep nesting", body: `{"event":{"id":"e1","type":"TEST","x":` + strings.Repeat("[", 200) + strings.Repeat("]", 200) + `}}`, wantCode: 400},
		{name: "GET is not allowed", method: http.MethodGet, wantCode: 405},
		{name: "unauthenticated allowed explicitly", body: body("e1", "RENEWAL"), headers: map[string]string{"Authorization": ""},
			settings: func(s *Settings) { s.Authorization = nil; s.AllowUnauthenticated = true }, wantCode: 200, stored: true},
		{name: "no authorization configured and not allowed", body: body("e1", "RENEWAL"),
			settings: func(s *Settings) { s.Authorization = nil }, wantCode: 401},
		{name: "valid signature", body: body("e1", "RENEWAL"), headers: map[string]string{SignatureHeader: sign(body("e1", "RENEWAL"), testNow, testSigning)},
			settings: func(s *Settings) { s.SigningSecret = testSigning }, wantCode: 200, stored: true},
		{name: "rotated signatures, second matches", body: body("e1", "RENEWAL"),
			headers:  map[string]string{SignatureHeader: sign(body("e1", "RENEWAL"), testNow, "old") + ",v1=" + strings.Split(sign(body("e1", "RENEWAL"), testNow, testSigning), "v1=")[1]},
			settings: func(s *Settings) { s.SigningSecret = testSigning }, wantCode: 200, stored: true},
		{name: "missing signature", body: body("e1", "RENEWAL"), settings: func(s *Settings) { s.SigningSecret = testSigning }, wantCode: 401, wantError: "missing X-RevenueCat-Webhook-Signature"},
		{name: "signature of another body", body: body("e1", "RENEWAL"), headers: map[string]string{SignatureHeader: sign(body("e2", "RENEWAL"), testNow, testSigning)},
			settings: func(s *Settings) { s.SigningSecret = testSigning }, wantCode: 401, wantError: "does not match"},
		{name: "signature too old", body: body("e1", "RENEWAL"), headers: map[string]string{SignatureHeader: sign(body("e1", "RENEWAL"), testNow.Add(-6*time.Minute), testSigning)},
			settings: func(s *Settings) { s.SigningSecret = testSigning }, wantCode: 401, wantError: "tolerance"},
		{name: "signature from the future", body: body("e1", "RENEWAL"), headers: map[string]string{SignatureHeader: sign(body("e1", "RENEWAL"), testNow.Add(6*time.Minute), testSigning)},
			settings: func(s *Settings) { s.SigningSecret = testSigning }, wantCode: 401},
		{name: "signature without timestamp", body: body("e1", "RENEWAL"), headers: map[string]string{SignatureHeader: "v1=00"},
			settings: func(s *Settings) { s.SigningSecret = testSigning }, wantCode: 401, wantError: "t= timestamp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &fakeBackend{}
			s := newTestServer(t, b, tt.settings)
			method := tt.method
			if method == "" {
				method = http.MethodPost
			}
			req := httptest.NewRequest(method, testPath, strings.NewReader(tt.body))
			req.Header.Set("Authorization", testAuth)
			for k, v := range tt.headers {
				if v == "" {
					req.Header.Del(k)
				} else {
					req.Header.Set(k, v)
				}
			}
			rec := httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, req)
			if rec.Code != tt.wantCode {
				t.Fatalf("status = %d, want %d; body %s", rec.Code, tt.wantCode, rec.Body)
			}
			if tt.wantError != "" && !strings.Contains(rec.Body.String(), tt.wantError) {
				t.Errorf("body %s does not mention %q", rec.Body, tt.wantError)
			}
			if rec.Code != 405 && !json.Valid(rec.Body.Bytes()) {
				t.Errorf("answer is not JSON: %s", rec.Body)
			}
			if got := b.count(); (got == 1) != tt.stored {
				t.Errorf("stored %d events, want stored=%v", got, tt.stored)
			}
			if strings.Contains(rec.Body.String(), "s3cr3t") || strings.Contains(rec.Body.String(), testSigning) {
				t.Errorf("answer leaks a secret: %s", rec.Body)
			}
		})
	}
}

func TestWebhookDuplicateAndStoreFailure(t *testing.T) {
	b := &fakeBackend{}
	s := newTestServer(t, b, nil)
	post := func() *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, testPath, strings.NewReader(body("dup-1", "RENEWAL")))
		req.Header.Set("Authorization", testAuth)
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		return rec
	}
	if rec := post(); rec.Code != 200 || rec.Body.String() != `{"destinations":["archive"],"event_id":"dup-1","status":"accepted"}` {
		t.Fatalf("first post: %d %s", rec.Code, rec.Body)
	}
	if rec := post(); rec.Code != 200 || rec.Body.String() != `{"event_id":"dup-1","status":"duplicate"}` {
		t.Fatalf("second post: %d %s", rec.Code, rec.Body)
	}
	b.fail = errors.New("disk I/O error")
	rec := post()
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("store failure: %d Retry-After=%q", rec.Code, rec.Header().Get("Retry-After"))
	}
	if strings.Contains(rec.Body.String(), "disk I/O") {
		t.Errorf("503 answer leaks internals: %s", rec.Body)
	}
}

func TestAdminAuth(t *testing.T) {
	s := newTestServer(t, &fakeBackend{}, nil)
	token := s.AdminToken()
	tests := []struct {
		name   string
		method string
		header map[string]string
		cookie string
		want   int
	}{
		{name: "no token", method: "GET", want: 401},
		{name: "bearer", method: "GET", header: map[string]string{"Authorization": "Bearer admin-token-for-tests"}, want: 200},
		{name: "wrong bearer", method: "GET", header: map[string]string{"Authorization": "Bearer nope"}, want: 401},
		{name: "webhook auth is not admin auth", method: "GET", header: map[string]string{"Authorization": testAuth}, want: 401},
		{name: "session cookie GET", method: "GET", cookie: s.NewSession(), want: 200},
		{name: "session cookie POST without CSRF", method: "POST", cookie: s.NewSession(), want: 401},
		{name: "session cookie POST with CSRF", method: "POST", cookie: s.NewSession(), header: map[string]string{CSRFHeader: CSRFToken(token)}, want: 200},
		{name: "forged cookie", method: "GET", cookie: "abc", want: 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := "/api/v1/destinations"
			if tt.method == "POST" {
				path = "/api/v1/reload"
			}
			req := httptest.NewRequest(tt.method, path, nil)
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			if tt.cookie != "" {
				req.AddCookie(&http.Cookie{Name: SessionCookie, Value: tt.cookie})
			}
			rec := httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, req)
			if rec.Code != tt.want {
				t.Fatalf("status = %d, want %d (%s)", rec.Code, tt.want, rec.Body)
			}
		})
	}
}

func TestHealthEndpointsNeedNoToken(t *testing.T) {
	s := newTestServer(t, &fakeBackend{}, nil)
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != 200 {
			t.Errorf("%s: status %d", path, rec.Code)
		}
	}
	s.Drain()
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	if rec.Code != 503 {
		t.Errorf("/readyz while draining: %d", rec.Code)
	}
	body, _ := io.ReadAll(rec.Body)
	if !strings.Contains(string(body), "draining") {
		t.Errorf("/readyz body %s", body)
	}
}
