package destinationstest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rcrouter/rcrouter/destinations"
)

// recorder is a testing.TB that keeps failures instead of failing.
type recorder struct {
	testing.TB
	errors []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, a ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, a...))
}
func (r *recorder) Fatalf(format string, a ...any) { r.Errorf(format, a...) }

func TestServerScript(t *testing.T) {
	s := NewServer(t, Reply{Status: 503, Header: map[string]string{"Retry-After": "2"}}, Reply{Status: 200, Body: "ok"})
	var got []string
	for range 3 {
		resp, err := http.Post(s.URL+"/in?x=1", "text/plain", strings.NewReader("hello"))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got = append(got, fmt.Sprintf("%d %q %q", resp.StatusCode, resp.Header.Get("Retry-After"), b))
	}
	if want := `[503 "2" "" 200 "" "ok" 200 "" "ok"]`; fmt.Sprint(got) != want {
		t.Errorf("answers = %v, want %s", got, want)
	}
	reqs := s.Requests()
	if len(reqs) != 3 || reqs[0].Method != "POST" || reqs[0].Path != "/in" || reqs[0].Query != "x=1" || string(reqs[0].Body) != "hello" {
		t.Errorf("requests = %+v", reqs)
	}
}

// fakeAdapter sends one request and classifies it like destinations.Classify.
type fakeAdapter struct{ url string }

func (f fakeAdapter) Send(ctx context.Context, _ destinations.Delivery) destinations.Result {
	rec := &destinations.Recorder{}
	c := &http.Client{Transport: &destinations.Transport{}}
	req, _ := http.NewRequestWithContext(destinations.WithRecorder(ctx, rec), "POST", f.url, nil)
	resp, err := c.Do(req)
	if err != nil {
		return destinations.Result{Outcome: destinations.Retry, Reason: destinations.ReasonNetwork}
	}
	resp.Body.Close()
	out, reason := destinations.Classify(resp.StatusCode)
	wait, _ := destinations.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	return destinations.Result{Outcome: out, Reason: reason, RetryAfter: wait, Message: resp.Status, Exchanges: rec.Exchanges()}
}

func TestRun(t *testing.T) {
	Run(t, []Case{
		{Name: "ok", Replies: []Reply{{Status: 200}}, Outcome: destinations.Delivered, Message: "200 OK"},
		{Name: "429", Replies: []Reply{{Status: 429, Header: map[string]string{"Retry-After": "5"}}},
			Outcome: destinations.Retry, Reason: destinations.ReasonRateLimited, Message: "429 Too Many Requests", RetryAfter: 5 * time.Second},
	}, func(t *testing.T, _ Case, s *Server) destinations.Result {
		return fakeAdapter{url: s.URL}.Send(context.Background(), destinations.Delivery{})
	})
}

type leaky struct{ key string }

func TestNoSecret(t *testing.T) {
	tests := []struct {
		name  string
		res   destinations.Result
		dest  any
		logs  string
		fails bool
	}{
		{"clean", destinations.Result{Message: "ok"}, "dest", "line", false},
		{"in the result", destinations.Result{Exchanges: []destinations.Exchange{{Request: destinations.Request{URL: "https://x/k3y"}}}}, nil, "", true},
		{"in the printed destination", destinations.Result{}, leaky{key: "k3y"}, "", true},
		{"in the logs", destinations.Result{}, nil, "token=k3y", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &recorder{TB: t}
			NoSecret(r, []string{"k3y"}, tt.res, tt.dest, tt.logs)
			if failed := len(r.errors) > 0; failed != tt.fails {
				t.Errorf("failed = %v (%q), want %v", failed, r.errors, tt.fails)
			}
		})
	}
}
