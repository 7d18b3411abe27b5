package server

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/rcrouter/rcrouter/internal/clock"
)

// throttledServer is a server on a fake clock whose log goes to buf.
func throttledServer(t *testing.T, buf *bytes.Buffer, mod func(*Settings)) (*Server, *clock.Fake) {
	t.Helper()
	clk := clock.NewFake(testNow)
	st := Settings{AdminToken: "admin-token-for-tests"}
	if mod != nil {
		mod(&st)
	}
	s := New(Options{WebhookPath: testPath, Settings: st, Backend: &fakeBackend{}, Clock: clk,
		Logger: slog.New(slog.NewTextHandler(buf, nil))})
	return s, clk
}

func apiAs(t *testing.T, s *Server, remote, token string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/api/v1/destinations", nil)
	req.RemoteAddr = remote
	req.Header.Set("Authorization", "Bearer "+token)
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	return rec
}

// TestAdminTokenThrottle: ClientFailures wrong tokens from one address get
// it 429 with Retry-After, the right token included, while other addresses
// still get in; after the window the right token works again. The log has a
// summary, not a line per attempt.
func TestAdminTokenThrottle(t *testing.T) {
	var logs bytes.Buffer
	s, clk := throttledServer(t, &logs, nil)
	const attacker, operator = "192.0.2.7:40000", "198.51.100.1:50000"

	for i := range ClientFailures {
		if rec := apiAs(t, s, attacker, "guess-"+string(rune('a'+i))); rec.Code != http.StatusUnauthorized {
			t.Fatalf("wrong token %d: status %d, want 401", i+1, rec.Code)
		}
	}
	for _, tok := range []string{"guess-z", "admin-token-for-tests"} {
		rec := apiAs(t, s, attacker, tok)
		if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "60" {
			t.Fatalf("token %q after %d failures: %d Retry-After %q, want 429 60", tok, ClientFailures, rec.Code, rec.Header().Get("Retry-After"))
		}
	}
	if rec := apiAs(t, s, operator, "admin-token-for-tests"); rec.Code != http.StatusOK {
		t.Errorf("another address with the right token: %d, want 200", rec.Code)
	}
	clk.Advance(30 * time.Second)
	if rec := apiAs(t, s, attacker, "admin-token-for-tests"); rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "30" {
		t.Errorf("half way through the window: %d Retry-After %q, want 429 30", rec.Code, rec.Header().Get("Retry-After"))
	}
	clk.Advance(30 * time.Second)
	if rec := apiAs(t, s, attacker, "admin-token-for-tests"); rec.Code != http.StatusOK {
		t.Errorf("right token after the window: %d, want 200", rec.Code)
	}

	lines := strings.Count(logs.String(), "\n")
	for _, want := range []string{
		`msg="admin authentication failed" remote=192.0.2.7`,
		`msg="admin authentication throttled" remote=192.0.2.7 failures=10 retry_after=1m0s`,
		`msg="admin authentication throttle ended" remote=192.0.2.7 failures=10 refused=3`,
	} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %s:\n%s", want, logs.String())
		}
	}
	if lines != 3 {
		t.Errorf("%d log lines for %d wrong tokens, want 3:\n%s", lines, ClientFailures+1, logs.String())
	}
	if strings.Contains(logs.String(), "guess-") || strings.Contains(logs.String(), "admin-token-for-tests") {
		t.Errorf("log shows a token:\n%s", logs.String())
	}
}

// TestAdminTokenThrottleGlobal: many addresses guessing in parallel trip the
// global limit, and then everyone waits.
func TestAdminTokenThrottleGlobal(t *testing.T) {
	var logs bytes.Buffer
	s, clk := throttledServer(t, &logs, nil)
	for i := range GlobalFailures {
		remote := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, byte(i / 250), byte(i % 250)}), 1234).String()
		if rec := apiAs(t, s, remote, "wrong"); rec.Code != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d, want 401", i+1, rec.Code)
		}
	}
	if rec := apiAs(t, s, "198.51.100.1:5", "admin-token-for-tests"); rec.Code != http.StatusTooManyRequests {
		t.Errorf("fresh address during a global throttle: %d, want 429", rec.Code)
	}
	if !strings.Contains(logs.String(), "admin authentication throttled for every client") {
		t.Errorf("no global throttle line:\n%s", logs.String())
	}
	clk.Advance(FailureWindow)
	if rec := apiAs(t, s, "198.51.100.1:5", "admin-token-for-tests"); rec.Code != http.StatusOK {
		t.Errorf("after the window: %d, want 200", rec.Code)
	}
}

func TestClientAddr(t *testing.T) {
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	tests := []struct {
		name, remote, xff, proto string
		wantAddr                 string
		wantSecure               bool
	}{
		{name: "direct", remote: "192.0.2.1:1", wantAddr: "192.0.2.1"},
		{name: "forwarded-for from a stranger is ignored", remote: "192.0.2.1:1", xff: "203.0.113.9", proto: "https", wantAddr: "192.0.2.1"},
		{name: "trusted proxy", remote: "10.1.2.3:1", xff: "198.51.100.4, 203.0.113.9", proto: "https", wantAddr: "203.0.113.9", wantSecure: true},
		{name: "trusted proxy over http", remote: "10.1.2.3:1", xff: "203.0.113.9", proto: "http", wantAddr: "203.0.113.9"},
		{name: "trusted proxy without header", remote: "10.1.2.3:1", wantAddr: "10.1.2.3"},
		{name: "ipv6 counted by /64", remote: "[2001:db8:1:2:3:4:5:6]:1", wantAddr: "2001:db8:1:2:3:4:5:6"},
	}
	var logs bytes.Buffer
	s, _ := throttledServer(t, &logs, func(st *Settings) { st.TrustedProxies = proxies })
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = tt.remote
			if tt.xff != "" {
				r.Header.Set("X-Forwarded-For", tt.xff)
			}
			if tt.proto != "" {
				r.Header.Set("X-Forwarded-Proto", tt.proto)
			}
			if got := s.ClientAddr(r).String(); got != tt.wantAddr {
				t.Errorf("ClientAddr = %s, want %s", got, tt.wantAddr)
			}
			if got := s.SecureRequest(r); got != tt.wantSecure {
				t.Errorf("SecureRequest = %v, want %v", got, tt.wantSecure)
			}
		})
	}
	if got := clientKey(netip.MustParseAddr("2001:db8:1:2:3:4:5:6")); got != "2001:db8:1:2::/64" {
		t.Errorf("clientKey of an IPv6 address = %s", got)
	}
}
