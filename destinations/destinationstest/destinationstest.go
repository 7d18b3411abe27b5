// Package destinationstest holds what every adapter's tests need: a fake
// vendor server (httptest on 127.0.0.1, scripted answers, recorded
// requests), a runner for the retry-classification table each adapter
// keeps, and the assertion that no secret leaks into a result, a printed
// destination or the logs.
package destinationstest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rcrouter/rcrouter/destinations"
)

// Reply is one scripted answer of a Server.
type Reply struct {
	Status int
	Header map[string]string
	Body   string
}

// Request is one request a Server got.
type Request struct {
	Method string
	Path   string
	Query  string
	Header http.Header
	Body   []byte
}

// Server is a fake vendor API. It answers the n-th request with the n-th
// reply (the last one repeats; 200 without any) and keeps every request.
type Server struct {
	*httptest.Server
	mu      sync.Mutex
	replies []Reply
	got     []Request
	answer  func(n int, r *http.Request) Reply
}

// NewServer starts a Server answering from replies; the test's cleanup stops it.
func NewServer(t testing.TB, replies ...Reply) *Server {
	s := &Server{replies: replies}
	return s.start(t)
}

// NewServerFunc starts a Server whose answer to the n-th request (from 0)
// is computed by answer, for replies that depend on the request.
func NewServerFunc(t testing.TB, answer func(n int, r *http.Request) Reply) *Server {
	s := &Server{answer: answer}
	return s.start(t)
}

func (s *Server) start(t testing.TB) *Server {
	t.Helper()
	// httptest listens on 127.0.0.1 only.
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		n := len(s.got)
		s.got = append(s.got, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone(), Body: b})
		var rp Reply
		switch {
		case s.answer != nil:
		case len(s.replies) > 0:
			rp = s.replies[min(n, len(s.replies)-1)]
		default:
			rp = Reply{Status: http.StatusOK}
		}
		s.mu.Unlock()
		if s.answer != nil {
			r.Body = io.NopCloser(bytes.NewReader(b))
			rp = s.answer(n, r)
		}
		for k, v := range rp.Header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(rp.Status)
		_, _ = io.WriteString(w, rp.Body)
	}))
	t.Cleanup(s.Close)
	return s
}

// Requests returns a copy of the requests received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.got...)
}

// Case is one row of a retry-classification table: the vendor's answers and
// the classified result one Send must report.
type Case struct {
	Name       string
	Replies    []Reply
	Outcome    destinations.Outcome
	Reason     destinations.Reason
	Message    string
	RetryAfter time.Duration
	// Within allows RetryAfter to differ by this much (an HTTP-date
	// Retry-After read against the real clock).
	Within time.Duration
	Pause  bool
	// Statuses are the HTTP statuses of the exchanges the result records, in
	// order; nil means exactly one, with the first reply's status. The server
	// must have received as many requests.
	Statuses []int
	// Setup is adapter-specific (options for this case); Run passes the
	// case to send unchanged.
	Setup any
}

// Run runs every case as a subtest: a new Server answering c.Replies, one
// result from send (which builds the adapter against srv.URL and calls
// Send once; it may check more), and the comparison with the case.
func Run(t *testing.T, cases []Case, send func(t *testing.T, c Case, srv *Server) destinations.Result) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			srv := NewServer(t, c.Replies...)
			res := send(t, c, srv)
			if res.Outcome != c.Outcome || res.Reason != c.Reason || res.Message != c.Message || res.PauseDestination != c.Pause {
				t.Errorf("result = %s/%q %q pause=%v, want %s/%q %q pause=%v",
					res.Outcome, res.Reason, res.Message, res.PauseDestination, c.Outcome, c.Reason, c.Message, c.Pause)
			}
			if d := res.RetryAfter - c.RetryAfter; d < -c.Within || d > c.Within || (c.RetryAfter == 0 && res.RetryAfter != 0) {
				t.Errorf("RetryAfter = %s, want %s (±%s)", res.RetryAfter, c.RetryAfter, c.Within)
			}
			want := c.Statuses
			if want == nil && len(c.Replies) > 0 {
				want = []int{c.Replies[0].Status}
			}
			var got []int
			for _, x := range res.Exchanges {
				got = append(got, x.Response.StatusCode)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("exchange statuses = %v, want %v", got, want)
			}
			if n := len(srv.Requests()); n != len(want) {
				t.Errorf("server got %d requests, want %d", n, len(want))
			}
		})
	}
}

// Logs is a concurrency-safe log sink for the "leaks no secret" check.
type Logs struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *Logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything logged so far.
func (l *Logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Logger logs at debug level, everything, into l.
func (l *Logs) Logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// NoSecret fails the test when any of secrets appears in the result (as the
// dispatch log stores it, JSON), in dest printed every way fmt and slog print
// it, in logs, or in any of more. Every adapter's tests call it with what
// the adapter holds: keys, tokens, URL paths, header values, credentials.
func NoSecret(t testing.TB, secrets []string, res destinations.Result, dest any, logs string, more ...string) {
	t.Helper()
	dump, err := json.Marshal(res)
	if err != nil {
		t.Fatalf("result does not marshal: %v", err)
	}
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("destination", "dest", dest)
	places := map[string]string{
		"result":         string(dump),
		"result message": res.Message,
		"printed":        fmt.Sprintf("%v %+v %#v %s", dest, dest, dest, dest),
		"slog attribute": logged.String(),
		"logs":           logs,
		"other text":     strings.Join(more, "\n"),
	}
	for where, text := range places {
		for _, s := range secrets {
			if s != "" && strings.Contains(text, s) {
				t.Errorf("secret %q leaked in the %s:\n%s", s, where, text)
			}
		}
	}
}
