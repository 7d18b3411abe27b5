package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// sink is an HTTP destination that answers 200 at once with keep-alive and
// counts what it received.
type sink struct {
	url      string
	srv      *http.Server
	received atomic.Int64 // requests (webhook sink) or messages (fake Segment)
	batches  atomic.Int64 // fake Segment: batch requests
}

// startSink serves h on 127.0.0.1 until close.
func startSink(h func(s *sink) http.HandlerFunc, path string) (*sink, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &sink{url: "http://" + l.Addr().String() + path}
	s.srv = &http.Server{Handler: h(s), ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 2 * time.Minute}
	go s.srv.Serve(l) // owned by s: close stops it
	return s, nil
}

func (s *sink) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.srv.Shutdown(ctx)
}

// webhookSink counts every request and answers an empty 200.
func webhookSink(s *sink) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		s.received.Add(1)
		w.WriteHeader(http.StatusOK)
	}
}

// segmentSink is a fake Segment HTTP API: POST /v1/batch counts the batch
// and its messages and answers 200 as Segment does.
func segmentSink(s *sink) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var b struct {
			Batch []json.RawMessage `json:"batch"`
		}
		if r.URL.Path != "/v1/batch" || json.NewDecoder(r.Body).Decode(&b) != nil {
			io.Copy(io.Discard, r.Body)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		io.Copy(io.Discard, r.Body)
		s.batches.Add(1)
		s.received.Add(int64(len(b.Batch)))
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"success":true}`)
	}
}

// sinkTotal sums what several sinks received.
func sinkTotal(ss []*sink) int64 {
	var n int64
	for _, s := range ss {
		n += s.received.Load()
	}
	return n
}
