//go:build reliability

// Long fault-injection scenarios with the real app in-process. Run them with
// (see RELIABILITY.md):
//
//	go test -tags reliability -run Reliability -v -p 1 -timeout 30m ./...
package app

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rcrouter/rcrouter/internal/store"
	"github.com/rcrouter/rcrouter/internal/testutil"
)

// latSink is a webhook destination that records when each event id first
// arrived with a 2xx answer, and can be switched to answer an error.
type latSink struct {
	mu    sync.Mutex
	code  int
	delay time.Duration
	first map[string]time.Time
	ok    map[string]int
	reqs  int
}

func newLatSink() *latSink { return &latSink{first: map[string]time.Time{}, ok: map[string]int{}} }

func (s *latSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	arrived := time.Now()
	b, _ := io.ReadAll(r.Body)
	var env struct {
		Event struct {
			ID string `json:"id"`
		} `json:"event"`
	}
	json.Unmarshal(b, &env)
	s.mu.Lock()
	s.reqs++
	code, delay := s.code, s.delay
	s.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	if code == 0 {
		code = 200
	}
	if code < 300 {
		s.mu.Lock()
		if _, seen := s.first[env.Event.ID]; !seen {
			s.first[env.Event.ID] = arrived
		}
		s.ok[env.Event.ID]++
		s.mu.Unlock()
	}
	w.WriteHeader(code)
}

func (s *latSink) setCode(code int) {
	s.mu.Lock()
	s.code = code
	s.mu.Unlock()
}

// arrivals returns when each id first arrived.
func (s *latSink) arrivals() map[string]time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]time.Time, len(s.first))
	for k, v := range s.first {
		out[k] = v
	}
	return out
}

// paced posts n fresh events at rate per second, each from its own
// goroutine so one slow answer does not delay the schedule, and returns
// when each was posted.
func (h *harness) paced(prefix string, n int, rate float64) map[string]time.Time {
	h.t.Helper()
	sent := make(map[string]time.Time, n)
	var mu sync.Mutex
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	for i := 0; i < n; i++ {
		<-tick.C
		id := fmt.Sprintf("%s-%d", prefix, i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			at := time.Now()
			req, _ := http.NewRequest("POST", h.base+"/webhooks/revenuecat", strings.NewReader(string(fixtureEvent(id, "RENEWAL"))))
			req.Header.Set("Authorization", hAuth)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				h.t.Errorf("post %s: %v", id, err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				h.t.Errorf("post %s: %d", id, resp.StatusCode)
				return
			}
			mu.Lock()
			sent[id] = at
			mu.Unlock()
		}()
	}
	wg.Wait()
	return sent
}

// latencies are post-to-arrival times of the ids in sent; it waits until
// all have arrived.
func latencies(t *testing.T, s *latSink, sent map[string]time.Time, timeout time.Duration) []time.Duration {
	t.Helper()
	var out []time.Duration
	if !testutil.PollEvery(timeout, 50*time.Millisecond, func() bool {
		got := s.arrivals()
		out = out[:0]
		for id, at := range sent {
			if a, ok := got[id]; ok {
				out = append(out, a.Sub(at))
			}
		}
		return len(out) == len(sent)
	}) {
		t.Fatalf("%d of %d events arrived", len(out), len(sent))
	}
	return out
}

func pct(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond)) }

// allDispatches pages through the dispatch log of one destination.
func (h *harness) allDispatches(destination string) []store.Dispatch {
	h.t.Helper()
	var out []store.Dispatch
	for before := ""; ; {
		var page struct {
			Items []store.Dispatch `json:"items"`
			Next  string           `json:"next"`
		}
		if code := h.api("GET", "/api/v1/dispatches?limit=500&destination="+destination+"&before="+url.QueryEscape(before), nil, &page); code != 200 {
			h.t.Fatalf("dispatches: %d", code)
		}
		out = append(out, page.Items...)
		if page.Next == "" {
			return out
		}
		before = page.Next
	}
}

// TestReliabilityOutage: two destinations answer 503 for 60 s while 25
// events a second arrive, then recover: "flaky" gets every event and has the
// shipped circuit breaker, "sparse" gets one event in a hundred and no
// breaker, so its retries run on the backoff schedule alone. Every event
// reaches both afterwards, exactly once; their attempts follow the retry
// policy (never before next_attempt_at, each scheduled wait within the
// backoff cap of its try); and destination "healthy" keeps its delivery
// latency: p50 and p99 during the outage within 2× of the same load without
// an outage.
func TestReliabilityOutage(t *testing.T) {
	const (
		rate    = 25.0
		perLoad = 1500 // 60 s at 25/s
		initial = time.Second
		maxWait = 8 * time.Second
	)
	healthy, flaky, sparse := newLatSink(), newLatSink(), newLatSink()
	hSrv, fSrv, sSrv := httptest.NewServer(healthy), httptest.NewServer(flaky), httptest.NewServer(sparse)
	defer hSrv.Close()
	defer fSrv.Close()
	defer sSrv.Close()
	// Retry and breaker times are the shipped defaults scaled down (5s→1s,
	// 1h→8s, 30s→10s) so the scenario ends within minutes.
	retry := fmt.Sprintf("    retry: {initial_interval: %s, max_interval: %s, max_attempts: 1000, max_elapsed_time: 1h}\n", initial, maxWait)
	h := startApp(t, "destinations:\n"+webhookDest("healthy", hSrv.URL, "")+
		webhookDest("flaky", fSrv.URL, retry+"    circuit_breaker: {failure_threshold: 10, open_for: 10s}\n")+
		webhookDest("sparse", sSrv.URL, retry+"    concurrency: 8\n    circuit_breaker: {failure_threshold: 1000000}\n")+
		"routes:\n  - name: all\n    to: [healthy, flaky]\n"+
		"  - name: one-in-a-hundred\n    when: 'id endsWith \"00\"'\n    to: [sparse]\n")

	base := h.paced("base", perLoad, rate)
	baseHealthy := latencies(t, healthy, base, time.Minute)
	baseFlaky := latencies(t, flaky, base, time.Minute)

	flaky.setCode(http.StatusServiceUnavailable)
	sparse.setCode(http.StatusServiceUnavailable)
	outageStart := time.Now()
	during := h.paced("outage", perLoad, rate)
	flaky.setCode(0)
	sparse.setCode(0)
	recovered := time.Now()
	outHealthy := latencies(t, healthy, during, time.Minute)
	afterFlaky := latencies(t, flaky, during, 5*time.Minute)
	drained := time.Since(recovered)
	sparseIDs := map[string]time.Time{}
	for id, at := range during {
		if strings.HasSuffix(id, "00") {
			sparseIDs[id] = at
		}
	}
	latencies(t, sparse, sparseIDs, 5*time.Minute)
	for id := range during {
		for name, s := range map[string]*latSink{"flaky": flaky, "sparse": sparse} {
			s.mu.Lock()
			n := s.ok[id]
			s.mu.Unlock()
			if want := 1; (name == "flaky" || strings.HasSuffix(id, "00")) && n != want {
				t.Errorf("%s reached %s %d times after the outage, want 1", id, name, n)
			}
		}
	}
	// The sinks have everything; the completions of the last attempts may
	// still be on their way to the store.
	h.waitIdle(30*time.Second, "flaky", "sparse")
	flakyFig := checkBackoff(t, h, "flaky", len(during), initial, maxWait)
	sparseFig := checkBackoff(t, h, "sparse", len(sparseIDs), initial, maxWait)

	p50a, p99a := pct(baseHealthy, 50), pct(baseHealthy, 99)
	p50b, p99b := pct(outHealthy, 50), pct(outHealthy, 99)
	if p50b > 2*p50a || p99b > 2*p99a {
		t.Errorf("healthy latency during the outage p50 %s p99 %s; without it p50 %s p99 %s: more than 2×", ms(p50b), ms(p99b), ms(p50a), ms(p99a))
	}
	t.Logf("figures:\n"+
		"load: %d events at %.0f/s without an outage, then %d at %.0f/s during a %s outage (503) of flaky and sparse\n"+
		"healthy latency (post → arrival): without outage p50 %s p99 %s max %s; during outage p50 %s p99 %s max %s (ratio p50 %.2f, p99 %.2f)\n"+
		"flaky without outage: p50 %s p99 %s; after recovery all %d outage events arrived within %s, each exactly once (post → arrival p50 %s p99 %s)\n"+
		"%s\n%s\nstate after: %s",
		perLoad, rate, perLoad, rate, recovered.Sub(outageStart).Round(time.Second),
		ms(p50a), ms(p99a), ms(pct(baseHealthy, 100)), ms(p50b), ms(p99b), ms(pct(outHealthy, 100)),
		float64(p50b)/float64(p50a), float64(p99b)/float64(p99a),
		ms(pct(baseFlaky, 50)), ms(pct(baseFlaky, 99)), perLoad, drained.Round(time.Millisecond), ms(pct(afterFlaky, 50)), ms(pct(afterFlaky, 99)),
		flakyFig, sparseFig, h.destinationStates())
}

// checkBackoff reads the dispatch records of the outage events at
// destination and checks them against the retry policy: attempts numbered
// 1..n and delivered last; a repeat inside one try (go-retryablehttp) within
// its 2 s wait; each scheduled wait within the backoff cap of its try (tries,
// not requests, count: DESIGN §7 as implemented); no attempt before its
// next_attempt_at. It returns the figures.
func checkBackoff(t *testing.T, h *harness, destination string, deliveries int, initial, maxWait time.Duration) string {
	t.Helper()
	byDelivery := map[string][]store.Dispatch{}
	for _, d := range h.allDispatches(destination) {
		if strings.HasPrefix(d.EventID, "outage-") {
			byDelivery[d.DeliveryID] = append(byDelivery[d.DeliveryID], d)
		}
	}
	if len(byDelivery) != deliveries {
		// Say which events lack records, and what a query by event shows.
		have := map[string]bool{}
		for _, ds := range byDelivery {
			have[ds[0].EventID] = true
		}
		var detail []string
		for i := 0; i < 100000 && len(detail) < 5; i++ {
			id := fmt.Sprintf("outage-%d", i)
			if destination == "sparse" && !strings.HasSuffix(id, "00") {
				continue
			}
			if i >= deliveries*100 {
				break
			}
			if !have[id] {
				var page struct {
					Items []store.Dispatch `json:"items"`
				}
				h.api("GET", "/api/v1/dispatches?limit=500&event_id="+id, nil, &page)
				var recs []string
				for _, d := range page.Items {
					recs = append(recs, fmt.Sprintf("%s#%d %s %s", d.Destination, d.Attempt, d.Status, d.CreatedAt.Format(time.StampMilli)))
				}
				detail = append(detail, fmt.Sprintf("%s: %v; deliveries %+v", id, recs, h.eventDeliveries(id)))
			}
		}
		t.Fatalf("%s: the paged dispatch log has records for %d deliveries, want %d; missing, by event:\n%s",
			destination, len(byDelivery), deliveries, strings.Join(detail, "\n"))
	}
	backoffCap := func(try int) time.Duration { return min(initial<<min(try-1, 20), maxWait) }
	var (
		retried, maxTries, inProcess int
		waits                        = map[int][]time.Duration{} // by try
		late                         []time.Duration             // start − next_attempt_at
	)
	const slack = 5 * time.Millisecond // stored times are whole milliseconds
	for _, ds := range byDelivery {
		sort.Slice(ds, func(i, j int) bool { return ds[i].Attempt < ds[j].Attempt })
		try := 1
		for i, d := range ds {
			if d.Attempt != i+1 {
				t.Fatalf("%s delivery %s: attempt %d at position %d", destination, d.DeliveryID, d.Attempt, i)
			}
			last := i == len(ds)-1
			if last != (d.Status == "delivered") {
				t.Fatalf("%s delivery %s attempt %d: status %s", destination, d.DeliveryID, d.Attempt, d.Status)
			}
			if last {
				break
			}
			next := ds[i+1]
			end := d.CreatedAt.Add(time.Duration(d.DurationMs) * time.Millisecond)
			if d.NextAttemptAt == nil {
				inProcess++
				if gap := next.CreatedAt.Sub(end); gap < -slack || gap > 2*time.Second+100*time.Millisecond {
					t.Errorf("%s delivery %s: in-process repeat %s after attempt %d", destination, d.DeliveryID, gap, d.Attempt)
				}
				continue
			}
			wait := d.NextAttemptAt.Sub(end)
			if wait < -slack || wait > backoffCap(try)+slack {
				t.Errorf("%s delivery %s: wait %s after try %d (attempt %d), backoff cap %s", destination, d.DeliveryID, wait, try, d.Attempt, backoffCap(try))
			}
			waits[try] = append(waits[try], wait)
			l := next.CreatedAt.Sub(*d.NextAttemptAt)
			if l < -slack {
				t.Errorf("%s delivery %s: attempt %d started %s before its next_attempt_at", destination, d.DeliveryID, next.Attempt, -l)
			}
			late = append(late, l)
			try++
		}
		maxTries = max(maxTries, try)
		if try > 1 {
			retried++
		}
	}
	lines := []string{fmt.Sprintf("%s: %d of %d deliveries retried, at most %d tries for one; %d in-process repeats",
		destination, retried, deliveries, maxTries, inProcess)}
	if len(late) > 0 {
		lines = append(lines, fmt.Sprintf("  start − next_attempt_at: p50 %s p99 %s max %s (a backlog, or the open breaker, holds due retries)",
			ms(pct(late, 50)), ms(pct(late, 99)), ms(pct(late, 100))))
	}
	var tries []int
	for n := range waits {
		tries = append(tries, n)
	}
	sort.Ints(tries)
	for _, n := range tries {
		var sum time.Duration
		for _, w := range waits[n] {
			sum += w
		}
		lines = append(lines, fmt.Sprintf("  after try %d: %d retries, mean scheduled wait %s, max %s (cap %s; full jitter: mean ≈ cap/2)",
			n, len(waits[n]), ms(sum/time.Duration(len(waits[n]))), ms(pct(waits[n], 100)), backoffCap(n)))
	}
	return strings.Join(lines, "\n")
}

// waitIdle polls the destinations API until the named destinations have
// nothing pending (every delivery's outcome is committed).
func (h *harness) waitIdle(timeout time.Duration, names ...string) {
	h.t.Helper()
	if !testutil.PollEvery(timeout, 50*time.Millisecond, func() bool {
		var ds []map[string]any
		h.api("GET", "/api/v1/destinations", nil, &ds)
		idle := 0
		for _, d := range ds {
			if slices.Contains(names, d["name"].(string)) && d["pending"] == float64(0) {
				idle++
			}
		}
		return idle == len(names)
	}) {
		h.t.Fatalf("destinations not idle: %s", h.destinationStates())
	}
}

func (h *harness) destinationStates() string {
	var ds []map[string]any
	h.api("GET", "/api/v1/destinations", nil, &ds)
	var out []string
	for _, d := range ds {
		out = append(out, fmt.Sprintf("%v=%v (pending %v, dead %v)", d["name"], d["state"], d["pending"], d["dead"]))
	}
	return strings.Join(out, ", ")
}

// hangServer accepts connections and never answers.
func hangServer(t *testing.T) (string, func()) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			l.Close()
			<-done
			mu.Lock()
			for _, c := range conns {
				c.Close()
			}
			mu.Unlock()
		})
	}
	t.Cleanup(stop)
	return "http://" + l.Addr().String(), stop
}

// TestReliabilitySlowAndHanging measures a healthy destination's latency,
// then reloads the config to add one destination that takes 5 s to answer
// and one that accepts connections and never answers, and measures again
// under the same load. The healthy one is unaffected (p50 and p99 within
// 2×); the hanging one's attempts end at its timeout (duration_ms ≈ 2000),
// the slow one's after 5 s, delivered.
func TestReliabilitySlowAndHanging(t *testing.T) {
	const (
		rate = 20.0
		n    = 300
	)
	healthy, slow := newLatSink(), newLatSink()
	slow.delay = 5 * time.Second
	hSrv, sSrv := httptest.NewServer(healthy), httptest.NewServer(slow)
	defer hSrv.Close()
	defer sSrv.Close()
	hangURL, stopHang := hangServer(t)
	only := "destinations:\n" + webhookDest("healthy", hSrv.URL, "") + "routes:\n  - name: all\n    to: [healthy]\n"
	h := startApp(t, only)
	base := h.paced("base", n, rate)
	baseLat := latencies(t, healthy, base, time.Minute)

	all := "destinations:\n" + webhookDest("healthy", hSrv.URL, "") +
		webhookDest("slow", sSrv.URL, "    timeout: 10s\n") +
		webhookDest("hang", hangURL, "    timeout: 2s\n") +
		"routes:\n  - name: all\n    to: [healthy, slow, hang]\n"
	if err := os.WriteFile(h.cfg, []byte(configHead()+all), 0o600); err != nil {
		t.Fatal(err)
	}
	if code := h.api("POST", "/api/v1/reload", nil, nil); code != 200 {
		t.Fatalf("reload: %d", code)
	}
	during := h.paced("during", n, rate)
	lat := latencies(t, healthy, during, time.Minute)

	// Let the slow and hanging destinations produce records.
	var slowRecs, hangRecs []store.Dispatch
	if !testutil.PollEvery(30*time.Second, 250*time.Millisecond, func() bool {
		slowRecs, hangRecs = h.allDispatches("slow"), h.allDispatches("hang")
		return len(slowRecs) >= 8 && len(hangRecs) >= 12
	}) {
		t.Fatalf("%d slow and %d hang records", len(slowRecs), len(hangRecs))
	}
	durations := func(ds []store.Dispatch, lo, hi time.Duration, check func(store.Dispatch) bool) (minD, maxD time.Duration) {
		minD = time.Hour
		for _, d := range ds {
			dur := time.Duration(d.DurationMs) * time.Millisecond
			minD, maxD = min(minD, dur), max(maxD, dur)
			if dur < lo || dur > hi || !check(d) {
				t.Errorf("%s attempt %d: %s after %s, want %s..%s: %+v", d.Destination, d.Attempt, d.Status, dur, lo, hi, d.Response)
			}
		}
		return minD, maxD
	}
	hangMin, hangMax := durations(hangRecs, 2*time.Second-50*time.Millisecond, 2*time.Second+500*time.Millisecond, func(d store.Dispatch) bool {
		return d.Response.StatusCode == 0 && d.Response.Error != "" && (d.Status == "retrying" || d.Status == "dead")
	})
	slowMin, slowMax := durations(slowRecs, 5*time.Second, 6*time.Second, func(d store.Dispatch) bool {
		return d.Response.StatusCode == 200 && d.Status == "delivered"
	})
	p50a, p99a := pct(baseLat, 50), pct(baseLat, 99)
	p50b, p99b := pct(lat, 50), pct(lat, 99)
	if p50b > 2*p50a || p99b > 2*p99a {
		t.Errorf("healthy latency with slow and hanging neighbours p50 %s p99 %s; alone p50 %s p99 %s: more than 2×", ms(p50b), ms(p99b), ms(p50a), ms(p99a))
	}
	states := h.destinationStates()
	stopHang() // so shutdown does not wait for attempts that can never end
	t.Logf("figures:\n"+
		"healthy latency alone: p50 %s p99 %s max %s; with slow (5 s) and hanging neighbours: p50 %s p99 %s max %s (ratio p50 %.2f, p99 %.2f), %d events at %.0f/s each\n"+
		"hang (timeout 2s): %d records, duration_ms %d..%d, error %q\n"+
		"slow (5 s answers, timeout 10s): %d records delivered, duration_ms %d..%d\n"+
		"states: %s",
		ms(p50a), ms(p99a), ms(pct(baseLat, 100)), ms(p50b), ms(p99b), ms(pct(lat, 100)), float64(p50b)/float64(p50a), float64(p99b)/float64(p99a), n, rate,
		len(hangRecs), hangMin.Milliseconds(), hangMax.Milliseconds(), hangRecs[0].Response.Error,
		len(slowRecs), slowMin.Milliseconds(), slowMax.Milliseconds(), states)
}
