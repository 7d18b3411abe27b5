package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Helpers shared by the fault-injection tests of this package (the fast
// ones in the default suite and the long ones behind the reliability tag).

// recSink is a webhook destination on 127.0.0.1 that counts every request
// per RevenueCat event id, remembers when each id first arrived, and can be
// told to answer slowly or with an error.
type recSink struct {
	srv *httptest.Server

	mu       sync.Mutex
	got      map[string]int       // event id → requests that reached the handler
	ok       map[string]int       // event id → requests answered 2xx
	first    map[string]time.Time // event id → first 2xx answer
	code     int                  // answer; 0 means 200
	delay    time.Duration
	started  int // requests that entered the handler
	finished int // requests that were answered (not cut off by the client)
	cut      int // requests whose client went away first
}

func newRecSink(t *testing.T) *recSink {
	t.Helper()
	s := &recSink{got: map[string]int{}, ok: map[string]int{}, first: map[string]time.Time{}}
	s.srv = httptest.NewServer(s)
	t.Cleanup(s.srv.Close)
	return s
}

func (s *recSink) URL() string { return s.srv.URL }

func (s *recSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	var env struct {
		Event struct {
			ID string `json:"id"`
		} `json:"event"`
	}
	_ = json.Unmarshal(b, &env)
	id := env.Event.ID
	s.mu.Lock()
	s.started++
	s.got[id]++
	code, delay := s.code, s.delay
	s.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			s.mu.Lock()
			s.cut++
			s.mu.Unlock()
			return
		}
	}
	if code == 0 {
		code = http.StatusOK
	}
	s.mu.Lock()
	s.finished++
	if code < 300 {
		s.ok[id]++
		if _, seen := s.first[id]; !seen {
			s.first[id] = time.Now()
		}
	}
	s.mu.Unlock()
	w.WriteHeader(code)
}

func (s *recSink) set(code int, delay time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.code, s.delay = code, delay
}

// delivered returns a copy of the 2xx counts per event id.
func (s *recSink) delivered() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.ok))
	for k, v := range s.ok {
		out[k] = v
	}
	return out
}

func (s *recSink) counters() (started, finished, cut int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.started, s.finished, s.cut
}

// stopProc sends sig and waits for the process; it returns the exit error.
func stopProc(t *testing.T, p *proc, sig syscall.Signal) error {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	return p.cmd.Wait()
}
