package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rcrouter/rcrouter/internal/store"
	"github.com/rcrouter/rcrouter/internal/testutil"
)

const (
	hAuth  = "Bearer harness-webhook-auth-7f3a"
	hAdmin = "harness-admin-token-91c2"
)

// harness runs a real App (real SQLite file, real adapters) on 127.0.0.1.
type harness struct {
	t      *testing.T
	app    *App
	base   string
	cfg    string
	logs   *syncBuffer
	cancel context.CancelFunc
	done   chan error
	feed   <-chan store.Dispatch
	stopFn func()
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// configHead is the part of every harness config before destinations.
func configHead() string {
	return fmt.Sprintf(`inbound:
  authorization: [%q]
admin:
  token: %q
storage:
  path: data/rcrouter.db
`, hAuth, hAdmin)
}

// startApp writes cfg (after configHead) to a temp dir and runs the app.
func startApp(t *testing.T, cfg string, with ...func(*Options)) *harness {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(configHead()+cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return startAppAt(t, path, with...)
}

// startAppAt runs the app on the config file at path; with changes the
// options before New (a fake clock, a drain delay).
func startAppAt(t *testing.T, path string, with ...func(*Options)) *harness {
	t.Helper()
	logs := &syncBuffer{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{
		ConfigPath: path,
		Logger:     slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Getenv:     func(string) (string, bool) { return "", false },
		Listener:   l,
		Version:    "test",
	}
	for _, f := range with {
		f(&opts)
	}
	a, err := New(opts)
	if err != nil {
		l.Close()
		t.Fatalf("app.New: %v", err)
	}
	feed, unsub := a.hub.Subscribe()
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: t, app: a, base: "http://" + l.Addr().String(), cfg: path, logs: logs, cancel: cancel, done: make(chan error, 1), feed: feed}
	go func() { h.done <- a.Run(ctx) }()
	h.stopFn = func() {
		cancel()
		select {
		case err := <-h.done:
			if err != nil {
				t.Errorf("app.Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("app did not stop within 30s")
		}
		unsub()
	}
	t.Cleanup(h.stop)
	return h
}

func (h *harness) stop() {
	if h.stopFn != nil {
		f := h.stopFn
		h.stopFn = nil
		f()
	}
}

// post sends a webhook and returns the status and body.
func (h *harness) post(body []byte) (int, string) {
	h.t.Helper()
	req, _ := http.NewRequest("POST", h.base+"/webhooks/revenuecat", bytes.NewReader(body))
	req.Header.Set("Authorization", hAuth)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatalf("post: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// api calls the admin API and decodes the JSON answer into out (if not nil).
func (h *harness) api(method, path string, body any, out any) int {
	h.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, h.base+path, r)
	req.Header.Set("Authorization", "Bearer "+hAdmin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			h.t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode
}

// next waits for the next dispatch record of destination (from the live
// hub, so no polling) and returns it.
func (h *harness) next(destination string, timeout time.Duration) store.Dispatch {
	h.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case d := <-h.feed:
			if d.Destination == destination {
				return d
			}
		case <-deadline:
			h.t.Fatalf("no dispatch for %s within %s; logs:\n%s", destination, timeout, h.logs.String())
		}
	}
}

// until waits for a dispatch of destination with the given status.
func (h *harness) until(destination, status string, timeout time.Duration) []store.Dispatch {
	h.t.Helper()
	var seen []store.Dispatch
	deadline := time.Now().Add(timeout)
	for {
		d := h.next(destination, time.Until(deadline))
		seen = append(seen, d)
		if d.Status == status {
			return seen
		}
	}
}

// waitState asks the destinations API until name reports state.
func (h *harness) waitState(name, state string, timeout time.Duration) {
	h.t.Helper()
	var last any
	if !testutil.Poll(timeout, func() bool {
		var dests []map[string]any
		h.api("GET", "/api/v1/destinations", nil, &dests)
		for _, d := range dests {
			if d["name"] == name {
				last = d["state"]
			}
		}
		return last == state
	}) {
		h.t.Fatalf("destination %s state %v, want %s", name, last, state)
	}
}

func fixtureEvent(id, typ string) []byte {
	return []byte(`{"api_version":"1.0","event":{"id":"` + id + `","type":"` + typ + `","app_user_id":"user-` + id +
		`","original_app_user_id":"user-` + id + `","product_id":"pro_monthly","entitlement_ids":["pro"],"environment":"PRODUCTION",` +
		`"store":"APP_STORE","price":59.99,"currency":"USD","period_type":"NORMAL","event_timestamp_ms":1767225603000}}`)
}

// sink is a scripted HTTP destination.
type sink struct {
	mu       sync.Mutex
	codes    []int // answers in order; the last one repeats
	headers  map[string]string
	requests []*http.Request
	bodies   [][]byte
	delay    time.Duration
	block    chan struct{} // when set, requests wait on it
}

func (s *sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.requests = append(s.requests, r)
	s.bodies = append(s.bodies, b)
	n := len(s.requests)
	code := 200
	if len(s.codes) > 0 {
		code = s.codes[min(n, len(s.codes))-1]
	}
	delay, block := s.delay, s.block
	for k, v := range s.headers {
		w.Header().Set(k, v)
	}
	s.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-r.Context().Done():
			return
		}
	}
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	w.WriteHeader(code)
	fmt.Fprintf(w, "answer %d", code)
}

func (s *sink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.requests)
}

func (s *sink) set(f func(s *sink)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

func containsAny(s string, subs ...string) string {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return sub
		}
	}
	return ""
}
