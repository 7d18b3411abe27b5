package ui

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rcrouter/rcrouter/internal/clock"
	"github.com/rcrouter/rcrouter/internal/server"
)

// sessionFixture is the UI on a fake clock, behind a proxy at 10.0.0.1.
func sessionFixture(t *testing.T) (http.Handler, *clock.Fake) {
	t.Helper()
	clk := clock.NewFake(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
	srv := server.New(server.Options{
		WebhookPath: "/webhooks/revenuecat",
		Settings: server.Settings{AdminToken: adminToken,
			TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/32")}},
		Backend: &fakeBackend{},
		Store:   newFakeStore(),
		Clock:   clk,
	})
	srv.MountUI(Handler(srv))
	return srv.Handler(), clk
}

func login(t *testing.T, h http.Handler, remote, token string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/ui/login", strings.NewReader(url.Values{"token": {token}}.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.RemoteAddr = remote
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func get(h http.Handler, path string, c *http.Cookie) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodGet, path, nil)
	if c != nil {
		r.AddCookie(c)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// TestLoginThrottle: after server.ClientFailures wrong tokens the login form
// answers 429 with Retry-After, even to the right token, until the window
// is over; then the right token signs in.
func TestLoginThrottle(t *testing.T) {
	h, clk := sessionFixture(t)
	const remote = "192.0.2.50:1000"
	for i := range server.ClientFailures {
		if w := login(t, h, remote, "wrong-token-guess", nil); w.Code != http.StatusUnauthorized {
			t.Fatalf("wrong token %d: %d, want 401", i+1, w.Code)
		}
	}
	w := login(t, h, remote, adminToken.Value(), nil)
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" || sessionCookie(w) != nil {
		t.Fatalf("right token while throttled: %d Retry-After %q cookie %v, want 429 with Retry-After and no cookie",
			w.Code, w.Header().Get("Retry-After"), sessionCookie(w))
	}
	clk.Advance(server.FailureWindow)
	w = login(t, h, remote, adminToken.Value(), nil)
	if w.Code != http.StatusSeeOther || sessionCookie(w) == nil {
		t.Fatalf("right token after the window: %d, cookie %v; want 303 with a session", w.Code, sessionCookie(w))
	}
}

// TestLogoutRevokesSession: the cookie a browser kept after logout no
// longer opens the UI or the API; a new login works.
func TestLogoutRevokesSession(t *testing.T) {
	h, _ := sessionFixture(t)
	c := sessionCookie(login(t, h, "192.0.2.1:1", adminToken.Value(), nil))
	if c == nil {
		t.Fatal("no session cookie")
	}
	if w := get(h, "/ui/", c); w.Code != http.StatusOK {
		t.Fatalf("signed in: %d", w.Code)
	}
	r := httptest.NewRequest(http.MethodPost, "/ui/logout", strings.NewReader(url.Values{csrfField: {server.CSRFToken(adminToken)}}.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.AddCookie(c)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusSeeOther {
		t.Fatalf("logout: %d", w.Code)
	}
	if w := get(h, "/ui/", c); w.Code != http.StatusSeeOther {
		t.Errorf("UI with the old cookie after logout: %d, want 303 to login", w.Code)
	}
	if w := get(h, "/api/v1/destinations", c); w.Code != http.StatusUnauthorized {
		t.Errorf("API with the old cookie after logout: %d, want 401", w.Code)
	}
	c2 := sessionCookie(login(t, h, "192.0.2.1:1", adminToken.Value(), nil))
	if w := get(h, "/ui/", c2); w.Code != http.StatusOK {
		t.Errorf("new login after logout: %d", w.Code)
	}
}

// TestSessionExpires: the server refuses a cookie older than
// server.SessionMaxAge, whatever the browser does with Max-Age.
func TestSessionExpires(t *testing.T) {
	h, clk := sessionFixture(t)
	c := sessionCookie(login(t, h, "192.0.2.1:1", adminToken.Value(), nil))
	clk.Advance(server.SessionMaxAge - time.Minute)
	if w := get(h, "/ui/", c); w.Code != http.StatusOK {
		t.Fatalf("before expiry: %d", w.Code)
	}
	clk.Advance(2 * time.Minute)
	if w := get(h, "/ui/", c); w.Code != http.StatusSeeOther {
		t.Errorf("after expiry: %d, want 303 to login", w.Code)
	}
}

// TestSessionCookieSecureBehindTrustedProxy: X-Forwarded-Proto: https makes
// the cookie Secure only when the configured proxy sent it.
func TestSessionCookieSecureBehindTrustedProxy(t *testing.T) {
	tests := []struct {
		name, remote, proto string
		want                bool
	}{
		{"trusted proxy, https", "10.0.0.1:4000", "https", true},
		{"trusted proxy, http", "10.0.0.1:4000", "http", false},
		{"untrusted peer claiming https", "192.0.2.9:4000", "https", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, _ := sessionFixture(t)
			c := sessionCookie(login(t, h, tt.remote, adminToken.Value(), map[string]string{"X-Forwarded-Proto": tt.proto}))
			if c == nil {
				t.Fatal("no session cookie")
			}
			if c.Secure != tt.want {
				t.Errorf("Secure = %v, want %v", c.Secure, tt.want)
			}
		})
	}
}

// TestLoginPageIsNotAnOracle: a bearer token on the login page (which
// redirects a signed-in operator) is throttled like any other guess.
func TestLoginPageIsNotAnOracle(t *testing.T) {
	h, _ := sessionFixture(t)
	guess := func(tok string) int {
		r := httptest.NewRequest(http.MethodGet, "/ui/login", nil)
		r.RemoteAddr = "192.0.2.77:1"
		r.Header.Set("Authorization", "Bearer "+tok)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	for range server.ClientFailures {
		if code := guess("wrong-guess-123456"); code != http.StatusOK {
			t.Fatalf("wrong bearer on the login page: %d, want 200 (the form)", code)
		}
	}
	if code := guess(adminToken.Value()); code == http.StatusSeeOther {
		t.Errorf("right bearer after %d wrong ones was let through (303): the login page is a guessing oracle", server.ClientFailures)
	}
}
