package app

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestShutdownGivesSchedulerItsShare: a client that never finishes its
// request holds HTTP shutdown, yet the scheduler starts its own shutdown
// after half of the 4 s budget: it stops claiming and lets the attempt in
// flight (1.6 s each, one at a time) finish. Without the split the
// scheduler kept starting attempts for the whole budget and the one in
// flight at its end was released, to be repeated after restart.
func TestShutdownGivesSchedulerItsShare(t *testing.T) {
	var requests atomic.Int64 // the restart sends the rest
	started := make(chan struct{}, 1)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if requests.Add(1) == 1 {
			started <- struct{}{}
		}
		// The destination is slow: every answer takes 1.6 s.
		select {
		case <-time.After(1600 * time.Millisecond):
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	cfg := configHead() + "destinations:\n" + webhookDest("d", slow.URL, "    timeout: 30s\n    concurrency: 1\n") + "routes:\n  - name: all\n    to: [d]\n"
	h, l, stop := startStoppable(t, cfg, 4*time.Second)
	for _, id := range []string{"share-1", "share-2", "share-3", "share-4"} {
		if code, body := h.post(fixtureEvent(id, "RENEWAL")); code != 200 {
			t.Fatalf("post: %d %s", code, body)
		}
	}
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the attempt never started")
	}
	// A client that sends half a request and waits: it keeps its
	// connection active (ReadTimeout is 15 s), longer than the budget.
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// One whole request first: its answer proves the server has the
	// connection (not just the kernel's backlog).
	_, _ = io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz on the held connection: %v %v", resp, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_, _ = io.WriteString(c, "POST /webhooks/revenuecat HTTP/1.1\r\nHost: x\r\nAuthorization: "+hAuth+"\r\nContent-Length: 100\r\n\r\n{\"api")

	// The server must be waiting for the rest of that body, not still
	// between requests (an idle connection is closed at once by Shutdown):
	// it gives no answer for 300 ms.
	_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if resp, err := http.ReadResponse(br, nil); err == nil {
		t.Fatalf("the half-sent request was answered %d", resp.StatusCode)
	} else if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("held connection: %v", err)
	}
	took := stop()
	if strings.Contains(h.logs.String(), "unfinished deliveries released") {
		t.Errorf("the attempt was released; the scheduler had no time left:\n%s", h.logs.String())
	}
	if took > 4*time.Second+500*time.Millisecond {
		t.Errorf("stopping took %s with a 4s budget", took)
	}
	h2 := startAppAt(t, h.cfg)
	h2.waitDelivered(20*time.Second, "share-1", "share-2", "share-3", "share-4")
	for _, id := range []string{"share-1", "share-2"} {
		if ds := h2.attemptsOf(id); len(ds) != 1 || ds[0].Status != "delivered" {
			t.Errorf("%s: dispatch records %+v, want one, delivered before the stop", id, ds)
		}
	}
	t.Logf("stopped in %s (budget 4s, HTTP held by a half-sent request); the attempt in flight finished, none released", took.Round(time.Millisecond))
}

// startStoppable writes cfg to a config file and runs the app on it with a
// shutdown budget. stop cancels Run, waits for it and returns how long the
// stop took.
func startStoppable(t *testing.T, cfg string, shutdown time.Duration) (*harness, net.Listener, func() time.Duration) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Options{ConfigPath: path, Listener: l, ShutdownTimeout: shutdown,
		Logger: slog.New(slog.NewTextHandler(logs, nil)), Getenv: func(string) (string, bool) { return "", false }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	h := &harness{t: t, app: a, base: "http://" + l.Addr().String(), cfg: path, logs: logs}
	return h, l, func() time.Duration {
		t.Helper()
		stopAt := time.Now()
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("app did not stop")
		}
		return time.Since(stopAt)
	}
}
