package batch

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rcrouter/rcrouter/destinations"
	"github.com/rcrouter/rcrouter/internal/secret"
	"github.com/rcrouter/rcrouter/internal/testutil"
)

// recorder is a Flush that records each batch and holds it until released.
type recorder struct {
	mu      sync.Mutex
	batches [][]int
	hold    chan struct{} // received once per batch when not nil
	started chan struct{}
}

func (r *recorder) flush(_ context.Context, items []int) []destinations.Result {
	r.mu.Lock()
	r.batches = append(r.batches, append([]int(nil), items...))
	r.mu.Unlock()
	if r.started != nil {
		r.started <- struct{}{}
	}
	if r.hold != nil {
		<-r.hold
	}
	out := make([]destinations.Result, len(items))
	for i, it := range items {
		out[i] = destinations.Result{Outcome: destinations.Delivered, Message: fmt.Sprint(it)}
	}
	return out
}

func waitQueued(t *testing.T, b *Batcher[int], n int) {
	t.Helper()
	testutil.Eventually(t, 5*time.Second, func() bool { return b.Queued() == n }, "%d items did not queue", n)
}

func TestAloneWhenQuiet(t *testing.T) {
	r := &recorder{}
	b := New(10, time.Second, r.flush)
	for i := range 3 {
		if res := b.Do(context.Background(), i); res.Outcome != destinations.Delivered || res.Message != fmt.Sprint(i) {
			t.Fatalf("Do(%d) = %+v", i, res)
		}
	}
	if fmt.Sprint(r.batches) != "[[0] [1] [2]]" {
		t.Errorf("batches = %v, want each alone", r.batches)
	}
}

func TestGroupedWhileBusy(t *testing.T) {
	r := &recorder{hold: make(chan struct{}), started: make(chan struct{}, 10)}
	b := New(3, time.Second, r.flush)
	var wg sync.WaitGroup
	results := make([]destinations.Result, 8)
	do := func(i int) {
		defer wg.Done()
		results[i] = b.Do(context.Background(), i)
	}
	wg.Add(1)
	go do(0)
	<-r.started
	for i := 1; i < 8; i++ {
		wg.Add(1)
		go do(i)
		waitQueued(t, b, i) // queue in order, so the batches are predictable
	}
	for range 4 { // the held first batch, then three more
		r.hold <- struct{}{}
	}
	wg.Wait()
	if fmt.Sprint(r.batches) != "[[0] [1 2 3] [4 5 6] [7]]" {
		t.Errorf("batches = %v", r.batches)
	}
	for i, res := range results {
		if res.Message != fmt.Sprint(i) {
			t.Errorf("result %d = %+v, want its own", i, res)
		}
	}
}

// TestGiveUpWhileQueued: a Send whose context ends before its item left is
// told so and its item is never sent.
func TestGiveUpWhileQueued(t *testing.T) {
	r := &recorder{hold: make(chan struct{}), started: make(chan struct{}, 10)}
	b := New(3, time.Second, r.flush)
	done := make(chan destinations.Result)
	go func() { done <- b.Do(context.Background(), 0) }()
	<-r.started
	ctx, cancel := context.WithCancel(context.Background())
	gave := make(chan destinations.Result)
	go func() { gave <- b.Do(ctx, 1) }()
	waitQueued(t, b, 1)
	cancel()
	res := <-gave
	if res.Outcome != destinations.Retry || res.Reason != destinations.ReasonTimeout || !strings.HasPrefix(res.Message, "not sent: the attempt ended while waiting for a batch") {
		t.Errorf("given up = %+v", res)
	}
	r.hold <- struct{}{}
	<-done
	if fmt.Sprint(r.batches) != "[[0]]" || b.Queued() != 0 {
		t.Errorf("batches = %v, queued %d; want only the first", r.batches, b.Queued())
	}
}

// refusingEndpoint is an Endpoint of ints whose vendor answers every
// request with status, judged by judge; requests counts what it got.
func refusingEndpoint(t *testing.T, status int, judge func(Response, []int) Verdict) (p *Endpoint[int], requests func() int) {
	var n int
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	p = &Endpoint[int]{
		Client: NewClient(destinations.Options{}, secret.Secret("k")), URL: srv.URL,
		Encode: func(items []int) ([]byte, error) { return []byte(fmt.Sprint(items)), nil },
		Judge:  judge,
	}
	return p, func() int {
		mu.Lock()
		defer mu.Unlock()
		return n
	}
}

// TestEndpointBudget: splits stop before MaxRequests requests are spent. An
// item the vendor refused alone gets the verdict (permanent); items still
// refused together when the budget ends are retried, since the one the
// vendor cannot take is unknown.
func TestEndpointBudget(t *testing.T) {
	const P, R = destinations.Permanent, destinations.Retry
	for _, tt := range []struct {
		name     string
		items    int
		requests int
		want     []destinations.Outcome // nil: every item R
	}{
		// 64, 32, 16, then the other 16 and 32 with no budget to split.
		{name: "never alone", items: 64, requests: 5},
		// 4, 2, 1, 1, then the other 2 with no budget to split.
		{name: "first two alone", items: 4, requests: 5, want: []destinations.Outcome{P, P, R, R}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, requests := refusingEndpoint(t, http.StatusRequestEntityTooLarge, func(r Response, _ []int) Verdict {
				return Verdict{Split: true, All: destinations.Result{Outcome: destinations.Permanent, Reason: destinations.ReasonRejected, Message: "too large"}}
			})
			results := p.Send(context.Background(), make([]int, tt.items))
			if n := requests(); n != tt.requests || n > MaxRequests {
				t.Errorf("%d requests, want %d (at most %d)", n, tt.requests, MaxRequests)
			}
			for i, r := range results {
				want := R
				if tt.want != nil {
					want = tt.want[i]
				}
				wantMsg := "too large"
				if want == R {
					wantMsg = "too large (refused in a request of "
				}
				if r.Outcome != want || r.Reason != destinations.ReasonRejected || !strings.HasPrefix(r.Message, wantMsg) ||
					len(r.Exchanges) == 0 || len(r.Exchanges) > MaxRequests {
					t.Errorf("item %d = %s/%s %q with %d exchanges, want %s %q…", i, r.Outcome, r.Reason, r.Message, len(r.Exchanges), want, wantMsg)
				}
			}
		})
	}
}

// TestEndpointResendBudget: each answer refuses the first item by name and
// asks for the rest again; when the budget ends, the items never named are
// retried, not dead with the refused ones.
func TestEndpointResendBudget(t *testing.T) {
	p, requests := refusingEndpoint(t, http.StatusBadRequest, func(r Response, _ []int) Verdict {
		bad := destinations.Result{Outcome: destinations.Permanent, Reason: destinations.ReasonRejected, Message: "invalid field time"}
		return Verdict{Again: true, Each: map[int]destinations.Result{0: bad},
			All: destinations.Result{Outcome: destinations.Permanent, Reason: destinations.ReasonRejected, Message: "rejected the request"}}
	})
	results := p.Send(context.Background(), make([]int, MaxRequests+2))
	if n := requests(); n != MaxRequests {
		t.Errorf("%d requests, want %d", n, MaxRequests)
	}
	for i, r := range results {
		want, wantMsg := destinations.Permanent, "invalid field time"
		if i >= MaxRequests {
			want, wantMsg = destinations.Retry, "rejected the request (not ingested with the events it refused; this attempt could not send it again)"
		}
		if r.Outcome != want || r.Message != wantMsg || len(r.Exchanges) != min(i+1, MaxRequests) {
			t.Errorf("item %d = %s %q with %d exchanges, want %s %q", i, r.Outcome, r.Message, len(r.Exchanges), want, wantMsg)
		}
	}
}

// TestPostTimeout: each request is bounded by Options.Timeout and a slow
// vendor is a retry for timeout, with the exchange recorded.
func TestPostTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	c := NewClient(destinations.Options{Timeout: 50 * time.Millisecond})
	resp := c.Post(context.Background(), srv.URL, []byte(`{}`), nil)
	res := c.Classify(resp, "unused")
	if res.Outcome != destinations.Retry || res.Reason != destinations.ReasonTimeout || res.Message != "no response within 50ms: context deadline exceeded" {
		t.Errorf("result = %s/%s %q; want retry/timeout", res.Outcome, res.Reason, res.Message)
	}
	if resp.Exchange.Response.Error == "" || resp.Exchange.Request.URL != srv.URL {
		t.Errorf("exchange = %+v; want the request with its error", resp.Exchange)
	}
}
