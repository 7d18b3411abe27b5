package server

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rcrouter/rcrouter/destinations"
	"github.com/rcrouter/rcrouter/internal/secret"
	"github.com/rcrouter/rcrouter/internal/store"
)

// servedServer serves s on a 127.0.0.1 listener until the test ends, then
// closes it and every connection.
func servedServer(t *testing.T, s *Server) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	t.Cleanup(func() {
		s.http.Close()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return l.Addr().String()
}

// rawConn is one client connection speaking HTTP/1.1 by hand, so the test
// decides exactly when it is idle, reading or gone.
type rawConn struct {
	net.Conn
	r *bufio.Reader
}

func dial(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{Conn: c, r: bufio.NewReader(c)}
}

// roundTrip sends one request and reads its answer, keeping the connection.
func (c *rawConn) roundTrip(method, path string, hdr map[string]string, body string) (*http.Response, error) {
	var b strings.Builder
	b.WriteString(method + " " + path + " HTTP/1.1\r\nHost: rcrouter\r\n")
	for k, v := range hdr {
		b.WriteString(k + ": " + v + "\r\n")
	}
	if body != "" {
		b.WriteString("Content-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n")
	}
	b.WriteString("\r\n" + body)
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, b.String()); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		return nil, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp, nil
}

// TestConnectionCapKeepsWebhookAndReadyz: with the cap full of idle
// keep-alive connections, a new webhook post and /readyz still answer (the
// longest idle connections are closed for them) and no more than the cap
// is ever open.
func TestConnectionCapKeepsWebhookAndReadyz(t *testing.T) {
	const capacity = 16
	s := New(Options{Listen: "127.0.0.1:0", WebhookPath: testPath, MaxConnections: capacity, Backend: &fakeBackend{},
		Settings: Settings{Authorization: []secret.Secret{testAuth}, AdminToken: "admin-token-for-tests"}})
	addr := servedServer(t, s)

	idle := make([]*rawConn, capacity)
	for i := range idle {
		idle[i] = dial(t, addr)
		if resp, err := idle[i].roundTrip("GET", "/healthz", nil, ""); err != nil || resp.StatusCode != 200 {
			t.Fatalf("idle connection %d: %v %v", i, resp, err)
		}
	}
	waitFor(t, "every connection idle", func() bool {
		l := s.limit.Load()
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.idle) == capacity
	})

	for i, tc := range []struct {
		method, path, body string
		hdr                map[string]string
	}{
		{"GET", "/readyz", "", nil},
		{"POST", testPath, body("cap-1", "RENEWAL"), map[string]string{"Authorization": testAuth}},
		{"GET", "/readyz", "", nil},
		{"POST", testPath, body("cap-2", "RENEWAL"), map[string]string{"Authorization": testAuth}},
	} {
		resp, err := dial(t, addr).roundTrip(tc.method, tc.path, tc.hdr, tc.body)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("request %d %s %s with the cap full: %v %v", i, tc.method, tc.path, resp, err)
		}
	}
	l := s.limit.Load()
	if peak := l.peak.Load(); peak > capacity {
		t.Errorf("peak %d open connections, cap %d", peak, capacity)
	}
	if ev := l.evicted.Load(); ev < 4 {
		t.Errorf("%d idle connections closed, want at least 4", ev)
	}
	t.Logf("peak %d connections, %d idle ones closed", l.peak.Load(), l.evicted.Load())
}

// TestConnectionCapReserve: streams and admin calls cannot take the
// reserve; past max-reserve of them the next gets 503, while the webhook
// and /readyz still answer.
func TestConnectionCapReserve(t *testing.T) {
	const capacity = 16
	s := New(Options{Listen: "127.0.0.1:0", WebhookPath: testPath, MaxConnections: capacity, Backend: &fakeBackend{},
		Settings: Settings{Authorization: []secret.Secret{testAuth}, AdminToken: "admin-token-for-tests"}})
	addr := servedServer(t, s)
	reserve := max(2, capacity/8)

	auth := "Authorization: Bearer admin-token-for-tests\r\n"
	for i := 0; i < capacity-reserve; i++ {
		c := dial(t, addr)
		if _, err := io.WriteString(c, "GET /api/v1/stream HTTP/1.1\r\nHost: rcrouter\r\n"+auth+"\r\n"); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(c.r, nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("stream %d: %v %v", i, resp, err)
		}
	}
	resp, err := dial(t, addr).roundTrip("GET", "/api/v1/destinations", map[string]string{"Authorization": "Bearer admin-token-for-tests"}, "")
	if err != nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("admin call into the reserve: %v %v, want 503 with Retry-After", resp, err)
	}
	for _, p := range []string{"/readyz", "/healthz"} {
		if resp, err := dial(t, addr).roundTrip("GET", p, nil, ""); err != nil || resp.StatusCode != 200 {
			t.Errorf("%s with the rest busy: %v %v", p, resp, err)
		}
	}
	if resp, err := dial(t, addr).roundTrip("POST", testPath, map[string]string{"Authorization": testAuth}, body("res-1", "RENEWAL")); err != nil || resp.StatusCode != 200 {
		t.Errorf("webhook with the rest busy: %v %v", resp, err)
	}
}

// TestIdleTimeoutUnderPressure: past half the cap an idle keep-alive
// connection is closed after PressureIdleTimeout, not IdleTimeout.
func TestIdleTimeoutUnderPressure(t *testing.T) {
	const capacity = 16
	s := New(Options{Listen: "127.0.0.1:0", WebhookPath: testPath, MaxConnections: capacity, Backend: &fakeBackend{},
		PressureIdleTimeout: 50 * time.Millisecond})
	addr := servedServer(t, s)
	var conns []*rawConn
	for i := 0; i < capacity/2+1; i++ {
		c := dial(t, addr)
		if resp, err := c.roundTrip("GET", "/healthz", nil, ""); err != nil || resp.StatusCode != 200 {
			t.Fatalf("connection %d: %v %v", i, resp, err)
		}
		conns = append(conns, c)
	}
	// The last connection went idle with the server past half full: the
	// server hangs up on it well before the usual 120 s.
	last := conns[len(conns)-1]
	_ = last.SetReadDeadline(time.Now().Add(10 * time.Second))
	start := time.Now()
	_, err := last.r.ReadByte()
	if !errors.Is(err, io.EOF) {
		t.Fatalf("read on the idle connection: %v, want EOF from the server", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("closed after %v", d)
	}
}

func TestMaxConnections(t *testing.T) {
	limit := fdLimit()
	if limit <= 0 {
		t.Fatal("no file descriptor limit on this platform")
	}
	var warned []string
	warn := func(msg string, _ ...any) { warned = append(warned, msg) }
	if got, want := maxConnections(0, warn), max(minConnections, min(limit/2, DefaultMaxConnections)); got != want {
		t.Errorf("default = %d, want %d (fd limit %d)", got, want, limit)
	}
	if got := maxConnections(100, warn); got != min(100, max(minConnections, limit-64)) {
		t.Errorf("configured 100 = %d", got)
	}
	if got := maxConnections(limit*2, warn); got >= limit || len(warned) == 0 {
		t.Errorf("configured above the fd limit %d: %d, warnings %v", limit, got, warned)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestStreamDropsClientThatDoesNotRead: an SSE client that stops reading is
// dropped after StreamWriteTimeout once its buffers are full, rather than
// holding the stream open.
func TestStreamDropsClientThatDoesNotRead(t *testing.T) {
	hub := NewHub()
	s := New(Options{Listen: "127.0.0.1:0", WebhookPath: testPath, Backend: &fakeBackend{}, Hub: hub,
		StreamWriteTimeout: 100 * time.Millisecond, Settings: Settings{AdminToken: "admin-token-for-tests"}})
	addr := servedServer(t, s)
	c := dial(t, addr)
	if tc, ok := c.Conn.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(4096)
	}
	if _, err := io.WriteString(c, "GET /api/v1/stream HTTP/1.1\r\nHost: rcrouter\r\nAuthorization: Bearer admin-token-for-tests\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if resp, err := http.ReadResponse(c.r, nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("stream: %v %v", resp, err)
	}
	// From here the client reads nothing.
	big := store.Dispatch{ID: "d", Destination: "x", Response: destinations.Response{Body: strings.Repeat("b", 64<<10)}}
	subscribers := func() int {
		hub.mu.Lock()
		defer hub.mu.Unlock()
		return len(hub.subs)
	}
	waitFor(t, "the stream to drop its non-reading client", func() bool {
		hub.Publish(big)
		return subscribers() == 0
	})
}
