// Package fakevendor is an httptest fake of a vendor's batch API for the
// tests of the analytics destinations: it records every request and answers
// each with what a test's Answer function says. Only test code imports it.
package fakevendor

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// Request is one request the fake got.
type Request struct {
	Method string
	Path   string // with the query, as sent
	Header http.Header
	Body   []byte
}

// Reply is the answer to one request.
type Reply struct {
	Status int
	Header http.Header
	Body   string
}

// Answer decides the reply to the n-th request (from 0).
type Answer func(n int, r Request) Reply

// Always answers every request the same way.
func Always(status int, body string) Answer {
	return func(int, Request) Reply { return Reply{Status: status, Body: body} }
}

// Server is the fake; it listens on 127.0.0.1 and is closed with the test.
type Server struct {
	*httptest.Server
	mu     sync.Mutex
	got    []Request
	answer Answer
}

// New starts a fake that answers with answer.
func New(t testing.TB, answer Answer) *Server {
	t.Helper()
	s := &Server{answer: answer}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("fake vendor: reading the body: %v", err)
		}
		req := Request{Method: r.Method, Path: r.URL.RequestURI(), Header: r.Header.Clone(), Body: b}
		s.mu.Lock()
		n := len(s.got)
		s.got = append(s.got, req)
		s.mu.Unlock()
		rep := s.answer(n, req)
		for k, vs := range rep.Header {
			w.Header()[k] = vs
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(rep.Status)
		_, _ = io.WriteString(w, rep.Body)
	}))
	t.Cleanup(s.Close)
	return s
}

// Requests returns what was received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.got...)
}
