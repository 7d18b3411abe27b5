package server

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rcrouter/rcrouter/internal/store"
)

// The inbound limits in production. The tests below shrink the timeouts so
// they run in a second, but first pin what ships: a change here is a
// decision, not an accident.
func TestInboundLimitsInForce(t *testing.T) {
	s := newTestServer(t, &fakeBackend{}, nil)
	tests := []struct {
		name      string
		got, want any
	}{
		{"ReadHeaderTimeout (slowloris headers)", s.http.ReadHeaderTimeout, 5 * time.Second},
		{"ReadTimeout (slow bodies)", s.http.ReadTimeout, 15 * time.Second},
		{"IdleTimeout", s.http.IdleTimeout, 120 * time.Second},
		{"MaxHeaderBytes", s.http.MaxHeaderBytes, 64 << 10},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %v, want %v", tt.name, tt.got, tt.want)
		}
	}
}

// hardened starts s on 127.0.0.1 with short timeouts and returns its address.
func hardened(t *testing.T, s *Server, header, read time.Duration) string {
	t.Helper()
	s.http.ReadHeaderTimeout = header
	s.http.ReadTimeout = read
	return servedServer(t, s)
}

// trickle writes head, then the bytes of tail one at a time every gap,
// until the server closes the connection or tail is exhausted. It returns
// how long the server let it go on, and what the server answered, if
// anything.
func trickle(t *testing.T, addr, head, tail string, gap time.Duration) (time.Duration, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	answered := make(chan string, 1)
	go func() {
		// Reads until the server closes: that is the cut-off.
		b, _ := io.ReadAll(c)
		answered <- string(b)
	}()
	if _, err := io.WriteString(c, head); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(tail); i++ {
		select {
		case ans := <-answered:
			return time.Since(start), ans
		case <-time.After(gap):
		}
		if _, err := c.Write([]byte{tail[i]}); err != nil {
			break // closed under us: the read side reports when
		}
	}
	select {
	case ans := <-answered:
		return time.Since(start), ans
	case <-time.After(5 * time.Second):
		t.Fatalf("server still holds the connection %s after the client stopped sending", time.Since(start))
		return 0, ""
	}
}

func TestSlowClientsAreCutOff(t *testing.T) {
	const header, read = 300 * time.Millisecond, 600 * time.Millisecond
	b := &fakeBackend{}
	addr := hardened(t, newTestServer(t, b, nil), header, read)
	ev := body("slow-1", "RENEWAL")
	endless := strings.Repeat("a", 400) // 400 bytes at 20 ms: 8 s if nobody stops it
	tests := []struct {
		name      string
		head      string
		tail      string
		limit     time.Duration // the timeout that must cut it
		wantInAns string        // "" when the server may just close
	}{
		{
			name:  "headers byte by byte (slowloris)",
			head:  "POST " + testPath + " HTTP/1.1\r\nHost: x\r\n",
			tail:  "X-Slow: " + endless,
			limit: header,
		},
		{
			name:      "body that never completes",
			head:      fmt.Sprintf("POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\nContent-Length: %d\r\n\r\n%s", testPath, testAuth, len(ev)+10, ev),
			limit:     read,
			wantInAns: "400 Bad Request",
		},
		{
			name:      "body trickled byte by byte",
			head:      fmt.Sprintf("POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\nContent-Length: %d\r\n\r\n", testPath, testAuth, len(endless)),
			tail:      endless,
			limit:     read,
			wantInAns: "400 Bad Request",
		},
		{
			name:      "chunked body that never ends",
			head:      fmt.Sprintf("POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{\r\n", testPath, testAuth),
			tail:      strings.Repeat("1\r\n \r\n", 100),
			limit:     read,
			wantInAns: "400 Bad Request",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			took, ans := trickle(t, addr, tt.head, tt.tail, 20*time.Millisecond)
			// The deadline counts from the first byte; allow scheduling slack.
			if took < tt.limit-50*time.Millisecond || took > tt.limit+time.Second {
				t.Errorf("connection cut after %s, want about %s", took, tt.limit)
			}
			if tt.wantInAns != "" && !strings.Contains(ans, tt.wantInAns) {
				t.Errorf("answer %q, want %q", ans, tt.wantInAns)
			}
			if strings.Contains(ans, "200 OK") {
				t.Errorf("a request that never completed was answered 200: %q", ans)
			}
			t.Logf("cut off after %s (limit %s)", took.Round(time.Millisecond), tt.limit)
		})
	}
	if n := b.count(); n != 0 {
		t.Errorf("%d incomplete requests were accepted", n)
	}
}

func TestOversizedAndMalformedRequests(t *testing.T) {
	b := &fakeBackend{}
	s := newTestServer(t, b, func(st *Settings) { st.MaxBodyBytes = 4096 })
	addr := hardened(t, s, 2*time.Second, 5*time.Second)
	// deep nests n objects inside the event: n+2 levels with the envelope
	// and the event.
	deep := func(n int) string {
		return fmt.Sprintf(`{"event":{"id":"deep-%d","type":"TEST","x":`, n) + strings.Repeat(`{"a":`, n) + `1` + strings.Repeat(`}`, n) + `}}`
	}
	// deepArrays nests n arrays: one byte a level, so a thousand levels
	// stay under max_body_bytes.
	deepArrays := func(n int) string {
		return fmt.Sprintf(`{"event":{"id":"deepa-%d","type":"TEST","x":`, n) + strings.Repeat(`[`, n) + strings.Repeat(`]`, n) + `}}`
	}
	tests := []struct {
		name   string
		raw    string // a whole request, written as is
		want   int
		stored bool
	}{
		{
			name: "header over MaxHeaderBytes",
			raw:  "POST " + testPath + " HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("b", 100<<10) + "\r\n\r\n",
			want: http.StatusRequestHeaderFieldsTooLarge,
		},
		{
			name: "many headers over MaxHeaderBytes",
			raw:  "POST " + testPath + " HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("X-H: "+strings.Repeat("h", 1000)+"\r\n", 80) + "\r\n",
			want: http.StatusRequestHeaderFieldsTooLarge,
		},
		{
			name: "declared body over max_body_bytes",
			raw:  post(body("big-1", "RENEWAL"), 10000, false),
			want: http.StatusRequestEntityTooLarge,
		},
		{
			name: "chunked body over max_body_bytes",
			raw:  chunked(`{"event":{"id":"big-2","type":"TEST","x":"` + strings.Repeat("x", 5000) + `"}}`),
			want: http.StatusRequestEntityTooLarge,
		},
		{
			name:   "chunked body within max_body_bytes",
			raw:    chunked(body("chunk-ok", "RENEWAL")),
			want:   http.StatusOK,
			stored: true,
		},
		{
			name:   "nesting at the limit (64 levels)",
			raw:    post(deep(62), -1, false),
			want:   http.StatusOK,
			stored: true,
		},
		{
			name: "nesting over the limit",
			raw:  post(deep(63), -1, false),
			want: http.StatusBadRequest,
		},
		{
			name: "nesting far over the limit",
			raw:  post(deepArrays(1900), -1, false),
			want: http.StatusBadRequest,
		},
		{
			name: "second JSON value",
			raw:  post(body("two-1", "RENEWAL")+"\n"+body("two-2", "RENEWAL"), -1, false),
			want: http.StatusBadRequest,
		},
		{
			name: "NUL bytes after the value",
			raw:  post(body("nul-1", "RENEWAL")+"\x00\x00", -1, false),
			want: http.StatusBadRequest,
		},
		{
			name: "invalid UTF-8 in the id",
			raw:  post(`{"event":{"id":"bad-\xff","type":"TEST"}}`, -1, false),
			want: http.StatusBadRequest,
		},
		{
			name: "oversized body without authorization is refused before reading",
			raw:  post(body("big-3", "RENEWAL"), 10<<20, true),
			want: http.StatusUnauthorized,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := b.count()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			// Written from a goroutine: the server may answer and close
			// before taking the whole request.
			go io.WriteString(c, tt.raw)
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			ans, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.want, ans)
			}
			if stored := b.count() > before; stored != tt.stored {
				t.Errorf("stored = %v, want %v", stored, tt.stored)
			}
		})
	}
}

// post builds a webhook request for payload. declared >= 0 overrides
// Content-Length (the body sent is still payload); noAuth leaves the
// Authorization header out.
func post(payload string, declared int, noAuth bool) string {
	n := len(payload)
	if declared >= 0 {
		n = declared
	}
	auth := "Authorization: " + testAuth + "\r\n"
	if noAuth {
		auth = ""
	}
	return fmt.Sprintf("POST %s HTTP/1.1\r\nHost: x\r\n%sContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		testPath, auth, n, payload)
}

func chunked(payload string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n", testPath, testAuth)
	for len(payload) > 0 {
		n := min(len(payload), 1000)
		fmt.Fprintf(&b, "%x\r\n%s\r\n", n, payload[:n])
		payload = payload[n:]
	}
	b.WriteString("0\r\n\r\n")
	return b.String()
}

// TestStreamOutlivesReadTimeout: ReadTimeout bounds reading a request, not
// how long an answer may stream. The live feed (SSE) must stay open past it
// and keep delivering records.
func TestStreamOutlivesReadTimeout(t *testing.T) {
	const read = 300 * time.Millisecond
	s := newTestServer(t, &fakeBackend{}, nil)
	addr := hardened(t, s, read, read)
	req, _ := http.NewRequest("GET", "http://"+addr+"/api/v1/stream", nil)
	req.Header.Set("Authorization", "Bearer admin-token-for-tests")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("stream: %d", resp.StatusCode)
	}
	lines := make(chan string, 16)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	// Publish well after the read deadline would have passed.
	time.AfterFunc(4*read, func() { s.Hub().Publish(store.Dispatch{ID: "late-1", Destination: "d"}) })
	deadline := time.After(10 * read)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("stream closed by the server before the record published after %s", 4*read)
			}
			if strings.HasPrefix(l, "data: ") && strings.Contains(l, `"late-1"`) {
				return
			}
		case <-deadline:
			t.Fatal("record not received")
		}
	}
}
