package server

import (
	"bufio"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rcrouter/rcrouter/internal/clock"
)

// TestStreamHeartbeatFollowsTheClock: an idle stream gets a ping each time
// the server's clock passes the heartbeat, and none before.
func TestStreamHeartbeatFollowsTheClock(t *testing.T) {
	clk := clock.NewFake(testNow)
	s := New(Options{WebhookPath: testPath, Settings: Settings{AdminToken: "admin-token-for-tests"}, Backend: &fakeBackend{}, Clock: clk})
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	req, _ := http.NewRequest("GET", ts.URL+"/api/v1/stream", nil)
	req.Header.Set("Authorization", "Bearer admin-token-for-tests")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if sc.Text() != "" {
				lines <- sc.Text()
			}
		}
		close(lines)
	}()
	read := func() string {
		t.Helper()
		select {
		case l := <-lines:
			return l
		case <-time.After(10 * time.Second):
			t.Fatal("no line from the stream within 10s")
			return ""
		}
	}
	if l := read(); l != ": connected" {
		t.Fatalf("first line %q, want \": connected\"", l)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := clk.BlockUntil(ctx, 1); err != nil {
		t.Fatalf("no heartbeat timer: %v", err)
	}
	for i := range 2 {
		// The handler parks on its heartbeat timer; just short of it nothing
		// is sent, at it one ping, and the timer is set again.
		clk.Advance(heartbeat - time.Second)
		select {
		case l := <-lines:
			t.Fatalf("heartbeat %d: %q before the heartbeat interval", i+1, l)
		default:
		}
		mark := clk.Created()
		clk.Advance(time.Second)
		if l := read(); l != ": ping" {
			t.Fatalf("heartbeat %d: %q, want \": ping\"", i+1, l)
		}
		if err := clk.BlockUntilCreated(ctx, mark, 1); err != nil {
			t.Fatalf("heartbeat %d: timer not reset: %v", i+1, err)
		}
	}
}

// refusingBackend refuses every reload.
type refusingBackend struct {
	fakeBackend
	err error
}

func (b *refusingBackend) Reload(context.Context) error { return b.err }

// TestReloadRefusalIs422: the API maps a refused reload to 422 itself and
// shows the backend's error unchanged.
func TestReloadRefusalIs422(t *testing.T) {
	refusal := errors.New("config.yaml:7: routes[0].to[0]: unknown destination \"nowhere\"")
	s := newTestServer(t, &refusingBackend{err: refusal}, nil)
	req := httptest.NewRequest("POST", "/api/v1/reload", nil)
	req.Header.Set("Authorization", "Bearer admin-token-for-tests")
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	want := `{"error":"config.yaml:7: routes[0].to[0]: unknown destination \"nowhere\"","status":"refused"}`
	if rec.Code != http.StatusUnprocessableEntity || strings.TrimSpace(rec.Body.String()) != want {
		t.Errorf("reload: %d %s, want 422 %s", rec.Code, rec.Body, want)
	}
}
