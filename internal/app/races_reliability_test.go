package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rcrouter/rcrouter/internal/clock"
	"github.com/rcrouter/rcrouter/internal/store"
	"github.com/rcrouter/rcrouter/internal/testutil"
)

// keySink is a webhook destination that answers per event id with a
// scripted status, and records, per Idempotency-Key (one per delivery), how
// many requests were ever in flight at once: the scheduler must never send
// one delivery twice concurrently, whatever operators do meanwhile.
type keySink struct {
	mu       sync.Mutex
	answer   func(eventID string) int // nil: 200
	delay    time.Duration
	inflight map[string]int
	maxPer   int
	got      map[string]int // requests per event id
	ok       map[string]int // 2xx answers per event id
	headers  []http.Header
}

func newKeySink() *keySink {
	return &keySink{inflight: map[string]int{}, got: map[string]int{}, ok: map[string]int{}}
}

func (s *keySink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	var env struct {
		Event struct {
			ID string `json:"id"`
		} `json:"event"`
	}
	json.Unmarshal(b, &env)
	key := r.Header.Get("Idempotency-Key")
	s.mu.Lock()
	s.inflight[key]++
	s.maxPer = max(s.maxPer, s.inflight[key])
	s.got[env.Event.ID]++
	s.headers = append(s.headers, r.Header.Clone())
	answer, delay := s.answer, s.delay
	s.mu.Unlock()
	if delay > 0 {
		time.Sleep(delay)
	}
	code := 200
	if answer != nil {
		code = answer(env.Event.ID)
	}
	s.mu.Lock()
	s.inflight[key]--
	if code < 300 {
		s.ok[env.Event.ID]++
	}
	s.mu.Unlock()
	w.WriteHeader(code)
}

func (s *keySink) counts(id string) (got, ok int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.got[id], s.ok[id]
}

// eventDeliveries returns the deliveries of an event from the admin API.
func (h *harness) eventDeliveries(id string) []store.Delivery {
	h.t.Helper()
	var ev struct {
		Deliveries []store.Delivery `json:"deliveries"`
	}
	if code := h.api("GET", "/api/v1/events/"+id, nil, &ev); code != 200 {
		h.t.Fatalf("event %s: %d", id, code)
	}
	return ev.Deliveries
}

// waitDelivered asks the API until every delivery of every id is delivered.
func (h *harness) waitDelivered(timeout time.Duration, ids ...string) {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	for _, id := range ids {
		var ds []store.Delivery
		if !testutil.Poll(time.Until(deadline), func() bool {
			ds = h.eventDeliveries(id)
			done := len(ds) > 0
			for _, d := range ds {
				done = done && d.State == store.Delivered
			}
			return done
		}) {
			h.t.Fatalf("event %s not delivered: %+v", id, ds)
		}
	}
}

// pollRounds moves clk past the scheduler's fallback poll twice, each time
// waiting until the app's workers (one per destination) have asked the store
// and parked again. Afterwards every worker has polled at least once since
// the call began: what a poll would send has been claimed. The other timers
// of an idle app (retention each minute, reload debounce) do not fire in
// the seconds this moves.
func pollRounds(t *testing.T, clk *clock.Fake, workers int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 2 {
		mark := clk.Created()
		clk.Advance(2 * time.Second) // the fallback poll is 1 s
		if err := clk.BlockUntilCreated(ctx, mark, workers); err != nil {
			t.Fatalf("%d workers did not poll and park again: %v", workers, err)
		}
	}
}

// follow makes the fake clk follow the wall clock until stop is called:
// retries fall due in real time as with the real clock, and once stopped the
// test moves time itself (pollRounds). stop is idempotent; follow may be
// called again to resume.
func follow(t *testing.T, clk *clock.Fake) (stop func()) {
	t.Helper()
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		last := time.Now()
		for {
			select {
			case <-quit:
				return
			case now := <-tick.C:
				clk.Advance(now.Sub(last))
				last = now
			}
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { close(quit); <-done }) }
	t.Cleanup(stop)
	return stop
}

// attemptsOf lists the dispatch records of an event, oldest first, and
// checks that their attempt numbers are 1..n per delivery, each once.
func (h *harness) attemptsOf(id string) []store.Dispatch {
	h.t.Helper()
	// Every page: a delivery the hammer retried fast can have more
	// attempts than one page holds.
	var items []store.Dispatch
	for before := ""; ; {
		var page struct {
			Items []store.Dispatch `json:"items"`
			Next  string           `json:"next"`
		}
		if code := h.api("GET", "/api/v1/dispatches?limit=500&event_id="+id+"&before="+url.QueryEscape(before), nil, &page); code != 200 {
			h.t.Fatalf("dispatches of %s: %d", id, code)
		}
		items = append(items, page.Items...)
		if page.Next == "" {
			break
		}
		before = page.Next
	}
	seen := map[string]map[int]bool{}
	for i := len(items) - 1; i >= 0; i-- {
		d := items[i]
		if seen[d.DeliveryID] == nil {
			seen[d.DeliveryID] = map[int]bool{}
		}
		if seen[d.DeliveryID][d.Attempt] {
			h.t.Errorf("event %s delivery %s: attempt %d recorded twice", id, d.DeliveryID, d.Attempt)
		}
		seen[d.DeliveryID][d.Attempt] = true
	}
	for del, as := range seen {
		for n := 1; n <= len(as); n++ {
			if !as[n] {
				h.t.Errorf("event %s delivery %s: attempts %v are not 1..%d", id, del, as, len(as))
			}
		}
	}
	return items
}

// TestReplayAndRetryRaceWithDueRetries: while one delivery is dead and
// another keeps failing with retries falling due every 100 ms, operators
// hammer retry and replay on both. No delivery may ever be sent twice at
// once, attempt numbers stay 1..n, and both end delivered exactly once.
func TestReplayAndRetryRaceWithDueRetries(t *testing.T) {
	s := newKeySink()
	var healthy bool
	var hmu sync.Mutex
	s.answer = func(id string) int {
		hmu.Lock()
		defer hmu.Unlock()
		switch {
		case healthy:
			return 200
		case id == "race-dead":
			return 400
		default:
			return 503
		}
	}
	srv := httptest.NewServer(s)
	defer srv.Close()
	clk := clock.NewFake(time.Now())
	stopClock := follow(t, clk)
	h := startApp(t, "destinations:\n"+webhookDest("d", srv.URL,
		"    retry: {initial_interval: 100ms, max_interval: 100ms, max_attempts: 10000}\n"+
			"    circuit_breaker: {failure_threshold: 100000}\n")+
		"routes:\n  - name: all\n    to: [d]\n", func(o *Options) { o.Clock = clk })
	for _, id := range []string{"race-dead", "race-retrying"} {
		if code, body := h.post(fixtureEvent(id, "RENEWAL")); code != 200 {
			t.Fatalf("post %s: %d %s", id, code, body)
		}
	}
	dead := h.eventDeliveries("race-dead")[0].ID
	retrying := h.eventDeliveries("race-retrying")[0].ID
	var d1, d2 store.Delivery
	if !testutil.Poll(10*time.Second, func() bool {
		d1, d2 = h.eventDeliveries("race-dead")[0], h.eventDeliveries("race-retrying")[0]
		return d1.State == store.Dead && d2.Attempts >= 3
	}) {
		t.Fatalf("setup: %+v %+v", d1, d2)
	}

	// Operators race the scheduler for 1.5 s.
	calls := []struct{ method, path, body string }{
		{"POST", "/api/v1/deliveries/" + retrying + "/retry", ""},
		{"POST", "/api/v1/deliveries/" + dead + "/retry", ""},
		{"POST", "/api/v1/destinations/d/replay", `{"status":"dead"}`},
		{"POST", "/api/v1/destinations/d/replay", `{"status":"retrying"}`},
	}
	var mu sync.Mutex
	codes := map[int]int{}
	stop := time.Now().Add(1500 * time.Millisecond)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := g; time.Now().Before(stop); i++ {
				c := calls[i%len(calls)]
				req, _ := http.NewRequest(c.method, h.base+c.path, strings.NewReader(c.body))
				req.Header.Set("Authorization", "Bearer "+hAdmin)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				mu.Lock()
				codes[resp.StatusCode]++
				mu.Unlock()
			}
		}(g)
	}
	wg.Wait()
	hmu.Lock()
	healthy = true
	hmu.Unlock()
	// The hammer may have left the first delivery dead (its last attempt
	// got the 400) or due (its last retry or replay): once it settles, an
	// operator retries it if it is dead. Only the scheduler and operators
	// move it, and operators have stopped, so a dead one stays dead.
	var st store.State
	if !testutil.Poll(10*time.Second, func() bool {
		st = h.eventDeliveries("race-dead")[0].State
		return st == store.Delivered || st == store.Dead
	}) {
		t.Fatalf("dead delivery stuck in %s; logs:\n%s", st, h.logs.String())
	}
	if st == store.Dead {
		if code := h.api("POST", "/api/v1/deliveries/"+dead+"/retry", nil, nil); code != 200 {
			t.Fatalf("final retry of the dead delivery: %d", code)
		}
	}
	h.waitDelivered(20*time.Second, "race-dead", "race-retrying")
	// Nothing is sent again once delivered, however often the worker polls:
	// time stops, then moves past the fallback poll twice. A wrong claim
	// would show as a delivery no longer delivered (a claim marks it running
	// before the worker parks) or as a request more.
	stopClock()
	before := map[string]int{}
	for _, id := range []string{"race-dead", "race-retrying"} {
		before[id], _ = s.counts(id)
	}
	pollRounds(t, clk, 1)
	for _, id := range []string{"race-dead", "race-retrying"} {
		if d := h.eventDeliveries(id)[0]; d.State != store.Delivered {
			t.Errorf("%s: %s after the polls, want still delivered", id, d.State)
		}
		got, ok := s.counts(id)
		if got != before[id] || ok != 1 {
			t.Errorf("%s: %d requests after delivery, %d successes; want none and exactly 1", id, got-before[id], ok)
		}
		h.attemptsOf(id)
	}
	s.mu.Lock()
	maxPer := s.maxPer
	s.mu.Unlock()
	if maxPer != 1 {
		t.Errorf("a delivery was sent %d times at once", maxPer)
	}
	if codes[200] == 0 || len(codes) > 2 || (len(codes) == 2 && codes[409] == 0) {
		t.Errorf("operator calls answered %v, want 200s and 409s (retry of a running delivery) only", codes)
	}
	if errs := errorLines(h.logs.String()); errs != "" {
		t.Errorf("errors logged:\n%s", errs)
	}
	dg, _ := s.counts("race-dead")
	rg, _ := s.counts("race-retrying")
	t.Logf("operator calls %v; requests: dead delivery %d, retrying delivery %d; most concurrent requests per delivery %d", codes, dg, rg, maxPer)
}

func errorLines(logs string) string {
	var out []string
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, "level=ERROR") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestReloadDuringDelivery reloads the config five times while 300
// deliveries are in flight: three reloads change the destination (a new
// adapter: requests started after carry the new header), one removes it and
// one brings it back. Every event is delivered exactly once.
func TestReloadDuringDelivery(t *testing.T) {
	s := newKeySink()
	s.delay = 10 * time.Millisecond
	srv := httptest.NewServer(s)
	defer srv.Close()
	other := newKeySink()
	otherSrv := httptest.NewServer(other)
	defer otherSrv.Close()
	dest := func(gen int) string {
		return fmt.Sprintf("  d:\n    webhook: {url: %q, headers: {X-Gen: \"%d\"}}\n    concurrency: 2\n", srv.URL, gen)
	}
	routes := "routes:\n  - name: all\n    to: [d]\n"
	clk := clock.NewFake(time.Now())
	stopClock := follow(t, clk)
	h := startApp(t, "destinations:\n"+dest(1)+routes, func(o *Options) { o.Clock = clk })
	// Paused while the events arrive, so the reloads below fall at known
	// points of the delivery.
	if code := h.api("POST", "/api/v1/destinations/d/pause", nil, nil); code != 200 {
		t.Fatalf("pause: %d", code)
	}
	const n = 300
	var ids []string
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("reload-%d", i)
		ids = append(ids, id)
		if code, body := h.post(fixtureEvent(id, "RENEWAL")); code != 200 {
			t.Fatalf("post: %d %s", code, body)
		}
	}
	write := func(cfg string) {
		t.Helper()
		// Written aside and renamed, as editors and config tools do: the
		// directory watcher must never read a half-written file, whatever
		// the fake clock does to its debounce.
		tmp := h.cfg + ".tmp"
		if err := os.WriteFile(tmp, []byte(configHead()+cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, h.cfg); err != nil {
			t.Fatal(err)
		}
		var res map[string]any
		if code := h.api("POST", "/api/v1/reload", nil, &res); code != 200 {
			t.Fatalf("reload: %d %v", code, res)
		}
	}
	progress := func() int {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.ok)
	}
	waitProgress := func(min int) {
		t.Helper()
		if !testutil.Poll(20*time.Second, func() bool { return progress() >= min }) {
			t.Fatalf("only %d of %d delivered", progress(), min)
		}
	}
	if code := h.api("POST", "/api/v1/destinations/d/resume", nil, nil); code != 200 {
		t.Fatalf("resume: %d", code)
	}
	for gen := 2; gen <= 4; gen++ {
		waitProgress((gen - 1) * 40)
		write("destinations:\n" + dest(gen) + routes)
	}
	// Remove d while it has a backlog: its deliveries stay queued. The
	// attempts in flight at the reload finish (their deliveries stop being
	// running); after that, however often the workers poll, d sends nothing.
	waitProgress(160)
	write("destinations:\n" + fmt.Sprintf("  e:\n    webhook: {url: %q}\n", otherSrv.URL) + "routes:\n  - name: all\n    to: [e]\n")
	running := func() int {
		n := 0
		for _, id := range ids {
			ds, err := h.app.store.EventDeliveries(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range ds {
				if d.State == store.Running {
					n++
				}
			}
		}
		return n
	}
	if !testutil.PollEvery(10*time.Second, 50*time.Millisecond, func() bool { return running() == 0 }) {
		t.Fatalf("%d deliveries of the removed destination still running", running())
	}
	parked := progress()
	var dests []map[string]any
	h.api("GET", "/api/v1/destinations", nil, &dests)
	stopClock()
	pollRounds(t, clk, 1) // e's worker; d has none
	if n := running(); progress() != parked || n != 0 {
		t.Errorf("a removed destination kept delivering: %d → %d, %d running", parked, progress(), n)
	}
	follow(t, clk)
	write("destinations:\n" + dest(5) + routes)
	h.waitDelivered(30*time.Second, ids...)

	for _, id := range ids {
		if got, ok := s.counts(id); got != 1 || ok != 1 {
			t.Errorf("%s: %d requests, %d successes; want exactly 1", id, got, ok)
		}
	}
	gens := map[string]int{}
	s.mu.Lock()
	for _, hd := range s.headers {
		gens[hd.Get("X-Gen")]++
	}
	s.mu.Unlock()
	if len(gens) != 5 {
		t.Errorf("requests by config generation %v: the new adapters were not used", gens)
	}
	removed := "?"
	for _, d := range dests {
		if d["name"] == "d" {
			removed = fmt.Sprintf("%v with %v pending", d["state"], d["pending"])
		}
	}
	if !strings.HasPrefix(removed, "removed") {
		t.Errorf("while removed, d was shown as %s", removed)
	}
	if errs := errorLines(h.logs.String()); errs != "" {
		t.Errorf("errors logged:\n%s", errs)
	}
	t.Logf("%d events, 5 reloads during delivery: requests by config generation %v; while removed d was %s; each event delivered exactly once",
		n, gens, removed)
}

// TestDuplicatesConcurrentAndAcrossRestart posts each of ten event ids five
// times at once, restarts the app on the same files, and posts them all
// again at once: ten are accepted, every other answer is a duplicate, and
// each destination gets each event once.
func TestDuplicatesConcurrentAndAcrossRestart(t *testing.T) {
	a, b := newKeySink(), newKeySink()
	aSrv, bSrv := httptest.NewServer(a), httptest.NewServer(b)
	defer aSrv.Close()
	defer bSrv.Close()
	h := startApp(t, "destinations:\n"+webhookDest("a", aSrv.URL, "")+webhookDest("b", bSrv.URL, "")+
		"  archive:\n    file: {path: data/archive.jsonl}\nroutes:\n  - name: all\n    to: [a, b, archive]\n")
	var ids []string
	for i := 0; i < 10; i++ {
		ids = append(ids, fmt.Sprintf("dup-%d", i))
	}
	burst := func(h *harness) map[string]int {
		var mu sync.Mutex
		status := map[string]int{}
		var wg sync.WaitGroup
		for _, id := range ids {
			for k := 0; k < 5; k++ {
				wg.Add(1)
				go func(id string) {
					defer wg.Done()
					code, body := h.post(fixtureEvent(id, "RENEWAL"))
					var ans struct{ Status string }
					json.Unmarshal([]byte(body), &ans)
					mu.Lock()
					status[fmt.Sprintf("%d %s", code, ans.Status)]++
					mu.Unlock()
				}(id)
			}
		}
		wg.Wait()
		return status
	}
	first := burst(h)
	if first["200 accepted"] != 10 || first["200 duplicate"] != 40 {
		t.Fatalf("first burst answered %v, want 10 accepted and 40 duplicate", first)
	}
	h.waitDelivered(10*time.Second, ids...)
	// The burst opened connections it may never have used; net/http's
	// Shutdown waits up to 5 s for such new connections unless they close.
	http.DefaultClient.CloseIdleConnections()
	h.stop()
	// After the restart nothing is due, so the fake clock only moves when
	// the test says: past the fallback poll, to see that it sends nothing.
	clk := clock.NewFake(time.Now())
	h2 := startAppAt(t, h.cfg, func(o *Options) { o.Clock = clk })
	second := burst(h2)
	if second["200 duplicate"] != 50 {
		t.Fatalf("after restart answered %v, want 50 duplicate", second)
	}
	pollRounds(t, clk, 3)
	for _, id := range ids {
		for name, s := range map[string]*keySink{"a": a, "b": b} {
			if got, ok := s.counts(id); got != 1 || ok != 1 {
				t.Errorf("%s got %s %d times", name, id, got)
			}
		}
	}
	arch, err := os.ReadFile(filepath.Join(filepath.Dir(h.cfg), "data", "archive.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(string(arch), "\n"); lines != 10 {
		t.Errorf("archive has %d lines, want 10", lines)
	}
	t.Logf("burst 1: %v; after restart: %v; each destination got each event once", first, second)
}

// TestShutdownReleasesHangingAttempts stops the app while every attempt
// hangs at the destination, with a short shutdown deadline: the app stops
// in about that deadline, the attempts are released (no dispatch record,
// their result is unknown), and after a restart they are delivered.
func TestShutdownReleasesHangingAttempts(t *testing.T) {
	block := make(chan struct{})
	var mu sync.Mutex
	started := 0
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		started++
		mu.Unlock()
		select {
		case <-block:
		case <-r.Context().Done():
			return
		}
	}))
	defer hang.Close()
	defer close(block)
	cfg := configHead() + "destinations:\n" + webhookDest("d", hang.URL, "    timeout: 30s\n") + "routes:\n  - name: all\n    to: [d]\n"
	h, _, stop := startStoppable(t, cfg, 500*time.Millisecond)
	path, logs := h.cfg, h.logs
	for i := 0; i < 3; i++ {
		if code, body := h.post(fixtureEvent(fmt.Sprintf("hang-%d", i), "RENEWAL")); code != 200 {
			t.Fatalf("post: %d %s", code, body)
		}
	}
	n := 0
	if !testutil.Poll(10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		n = started
		return n >= 3
	}) {
		t.Fatalf("%d of 3 attempts started", n)
	}
	took := stop()
	if took > 3*time.Second {
		t.Errorf("stopping took %s with a 500ms shutdown deadline", took)
	}
	if !strings.Contains(logs.String(), "unfinished deliveries released") {
		t.Errorf("no release logged:\n%s", logs.String())
	}

	// Restart with a destination that answers: each is delivered, and its
	// first dispatch record is attempt 1 (the released attempt has none).
	ok := &sink{}
	okSrv := httptest.NewServer(ok)
	defer okSrv.Close()
	if err := os.WriteFile(path, []byte(strings.Replace(cfg, hang.URL, okSrv.URL, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	h2 := startAppAt(t, path)
	h2.waitDelivered(10*time.Second, "hang-0", "hang-1", "hang-2")
	for i := 0; i < 3; i++ {
		if ds := h2.attemptsOf(fmt.Sprintf("hang-%d", i)); len(ds) != 1 || ds[0].Attempt != 1 {
			t.Errorf("hang-%d: dispatch records %+v, want one, attempt 1", i, ds)
		}
	}
	t.Logf("stopped in %s with 3 attempts hanging (shutdown deadline 500ms); all 3 released and delivered after restart", took.Round(time.Millisecond))
}
