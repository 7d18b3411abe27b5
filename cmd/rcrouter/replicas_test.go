package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rcrouter/rcrouter/destinations/webhook"
	"github.com/rcrouter/rcrouter/internal/store"
	"github.com/rcrouter/rcrouter/internal/store/postgres/pgtest"
	"github.com/rcrouter/rcrouter/internal/testutil"
)

// replicaConfig is one file for every replica: what differs (listen
// address, name) comes from each process's environment, so they all report
// the same config_sha256.
const replicaConfig = `server:
  listen: "${RCROUTER_LISTEN}"
  replica: "${RCROUTER_REPLICA}"
inbound:
  authorization: [%q]
admin:
  token: %q
storage:
  driver: postgres
  dsn: "${RCROUTER_POSTGRES_DSN}"
  max_conns: 4
defaults:
  timeout: 1s
  retry: {initial_interval: 100ms, max_interval: 500ms}
  circuit_breaker: {failure_threshold: 1000}
destinations:
  sink:
    webhook: {url: %q}
routes:
  - name: all
    to: [sink]
`

// overlapSink is a webhook destination that records, per Idempotency-Key
// (one delivery), how many requests it saw and whether two were ever in
// flight at once. Events whose id starts with "hang-" are never answered:
// the request hangs until the client gives up.
type overlapSink struct {
	mu       sync.Mutex
	inflight map[string]int
	requests map[string]int
	overlaps []string
	srv      *httptest.Server
}

func newOverlapSink(t *testing.T) *overlapSink {
	s := &overlapSink{inflight: map[string]int{}, requests: map[string]int{}}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("Idempotency-Key")
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.requests[key]++
		s.inflight[key]++
		if s.inflight[key] > 1 {
			s.overlaps = append(s.overlaps, key)
		}
		s.mu.Unlock()
		defer func() {
			s.mu.Lock()
			s.inflight[key]--
			s.mu.Unlock()
		}()
		if bytes.Contains(b, []byte(`"id":"hang-`)) {
			<-r.Context().Done()
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *overlapSink) snapshot() (requests map[string]int, overlaps []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	requests = make(map[string]int, len(s.requests))
	for k, v := range s.requests {
		requests[k] = v
	}
	return requests, append([]string(nil), s.overlaps...)
}

// replica is one rcrouter process of a test cluster.
type replica struct {
	name, addr string
	p          *proc
}

// startReplicas starts n replica processes on one database with one config
// file and waits until all are ready. It returns them and the file's bytes.
func startReplicas(t *testing.T, n int, dsn, sinkURL string) ([]replica, []byte) {
	t.Helper()
	return startReplicasConfig(t, n, dsn, []byte(fmt.Sprintf(replicaConfig, procAuth, procAdmin, sinkURL)))
}

// startReplicasConfig is startReplicas with the config file's text.
func startReplicasConfig(t *testing.T, n int, dsn string, text []byte) ([]replica, []byte) {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfg, text, 0o600); err != nil {
		t.Fatal(err)
	}
	rs := make([]replica, n)
	for i := range rs {
		rs[i] = replica{name: fmt.Sprintf("rc-%d", i+1), addr: freeAddr(t)}
		rs[i].p = startProcEnv(t, []string{"RCROUTER_LISTEN=" + rs[i].addr, "RCROUTER_REPLICA=" + rs[i].name,
			"RCROUTER_POSTGRES_DSN=" + dsn}, "serve", "--config", cfg, "--shutdown-timeout", "2s")
	}
	for _, r := range rs {
		waitReady(t, r.p, r.addr)
	}
	return rs, text
}

// postStatus posts event id and returns the answer's HTTP status and "status".
func postStatus(addr, id string) (int, string, error) {
	req, _ := http.NewRequest("POST", "http://"+addr+"/webhooks/revenuecat", bytes.NewReader(eventBody(id)))
	req.Header.Set("Authorization", procAuth)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var ans struct {
		Status string `json:"status"`
	}
	json.NewDecoder(resp.Body).Decode(&ans)
	return resp.StatusCode, ans.Status, nil
}

func adminGet(t *testing.T, addr, path string, out any) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
	req.Header.Set("Authorization", "Bearer "+procAdmin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("GET %s: %v: %s", path, err, b)
	}
}

// TestThreeReplicasOnPostgres runs three real replica processes on one
// PostgreSQL database (DESIGN §8).
func TestThreeReplicasOnPostgres(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	sink := newOverlapSink(t)
	rs, text := startReplicas(t, 3, dsn, sink.srv.URL)

	// Every replica's live stream, read from the start.
	streams := make([]*sseReader, len(rs))
	for i, r := range rs {
		streams[i] = readStream(t, r.addr)
	}

	t.Run("same event to all three at once is accepted once", func(t *testing.T) {
		for i := range 20 {
			id := fmt.Sprintf("same-%02d", i)
			answers := make([]string, len(rs))
			var wg sync.WaitGroup
			for j, r := range rs {
				wg.Go(func() {
					code, status, err := postStatus(r.addr, id)
					answers[j] = fmt.Sprintf("%d %s %v", code, status, err)
				})
			}
			wg.Wait()
			accepted, dup := 0, 0
			for _, a := range answers {
				switch a {
				case "200 accepted <nil>":
					accepted++
				case "200 duplicate <nil>":
					dup++
				}
			}
			if accepted != 1 || dup != len(rs)-1 {
				t.Fatalf("event %s: answers %q, want one accepted and %d duplicates", id, answers, len(rs)-1)
			}
		}
		// Each delivered, once per delivery key.
		if !testutil.Poll(30*time.Second, func() bool {
			req, _ := sink.snapshot()
			return len(req) >= 20
		}) {
			t.Fatal("the 20 events were not all delivered")
		}
	})

	t.Run("a delivery is never in flight on two replicas", func(t *testing.T) {
		// The sink hangs; the 1 s timeout (far shorter than the lease) ends
		// each attempt, and retries go to whichever replica claims first.
		hang := []string{"hang-1", "hang-2", "hang-3"}
		for i, id := range hang {
			if code, status, err := postStatus(rs[i].addr, id); code != 200 || status != "accepted" {
				t.Fatalf("post %s: %d %s %v", id, code, status, err)
			}
		}
		keys := map[string]bool{}
		for _, id := range hang {
			keys[deliveryKey(id, "sink")] = true
		}
		if !testutil.Poll(60*time.Second, func() bool {
			req, _ := sink.snapshot()
			for k := range keys {
				if req[k] < 4 {
					return false
				}
			}
			return true
		}) {
			req, _ := sink.snapshot()
			t.Fatalf("hanging deliveries were not retried 4 times each: %v", req)
		}
		if _, overlaps := sink.snapshot(); len(overlaps) > 0 {
			t.Fatalf("deliveries in flight twice at once: %v", overlaps)
		}
	})

	t.Run("replicas list every replica with one config", func(t *testing.T) {
		sum := sha256.Sum256(text)
		want := hex.EncodeToString(sum[:])
		var list []store.Replica
		adminGet(t, rs[2].addr, "/api/v1/replicas", &list)
		if len(list) != len(rs) {
			t.Fatalf("replicas %+v, want %d", list, len(rs))
		}
		for i, r := range list {
			if r.Name != rs[i].name || !r.Alive || r.ConfigSHA256 != want || r.Version == "" || r.StartedAt.IsZero() {
				t.Errorf("replica %d: %+v, want %s alive with config_sha256 %s", i, r, rs[i].name, want)
			}
		}
	})

	t.Run("pause on one replica holds the destination on all", func(t *testing.T) {
		req, _ := http.NewRequest("POST", "http://"+rs[0].addr+"/api/v1/destinations/sink/pause", nil)
		req.Header.Set("Authorization", "Bearer "+procAdmin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("pause: %v %v", resp, err)
		}
		resp.Body.Close()
		for _, r := range rs {
			if !showsState(t, r, "paused") {
				t.Errorf("%s does not show sink paused", r.name)
			}
		}
	})

	t.Run("every stream shows every replica's dispatches once", func(t *testing.T) {
		all := map[string]string{} // dispatch id → replica
		for i, st := range streams {
			n := map[string]int{}
			for _, d := range st.records() {
				n[d.ID]++
				all[d.ID] = d.Replica
			}
			for id, c := range n {
				if c > 1 {
					t.Errorf("%s's stream shows dispatch %s %d times", rs[i].name, id, c)
				}
			}
		}
		if len(all) == 0 {
			t.Fatal("no stream showed a dispatch")
		}
		by := map[string]int{}
		for _, r := range all {
			by[r]++
		}
		if by[""] > 0 {
			t.Errorf("%d dispatch records name no replica", by[""])
		}
		t.Logf("dispatches by replica: %v", by)
		for i, st := range streams {
			if !testutil.Poll(10*time.Second, func() bool {
				for id := range all {
					if !st.has(id) {
						return false
					}
				}
				return true
			}) {
				t.Errorf("%s's stream lacks dispatches other replicas made", rs[i].name)
			}
		}
	})
}

// showsState waits until replica r shows its one destination in state.
func showsState(t *testing.T, r replica, state string) bool {
	t.Helper()
	return testutil.Poll(15*time.Second, func() bool {
		var ds []struct{ Name, State string }
		adminGet(t, r.addr, "/api/v1/destinations", &ds)
		return len(ds) == 1 && ds[0].State == state
	})
}

// deliveryKey mirrors delivery.DeliveryKey, the Idempotency-Key the
// webhook destination sends.
func deliveryKey(eventID, destination string) string {
	sum := sha256.Sum256([]byte(eventID + "\x00" + destination))
	return "rc-" + hex.EncodeToString(sum[:16])
}

type streamRecord struct {
	ID      string `json:"id"`
	Replica string `json:"replica"`
}

// sseReader collects the dispatch records of one /api/v1/stream.
type sseReader struct {
	mu   sync.Mutex
	recs []streamRecord
}

func readStream(t *testing.T, addr string) *sseReader {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/api/v1/stream", nil)
	req.Header.Set("Authorization", "Bearer "+procAdmin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	r := &sseReader{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			var d streamRecord
			if json.Unmarshal([]byte(data), &d) == nil {
				r.mu.Lock()
				r.recs = append(r.recs, d)
				r.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		resp.Body.Close()
		<-done
	})
	return r
}

func (r *sseReader) records() []streamRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]streamRecord(nil), r.recs...)
}

func (r *sseReader) has(id string) bool {
	for _, d := range r.records() {
		if d.ID == id {
			return true
		}
	}
	return false
}

// TestBreakerSharedByReplicas: failures on any replica count toward one
// breaker; once it opens, every replica holds the destination.
func TestBreakerSharedByReplicas(t *testing.T) {
	const threshold = 3
	dsn := pgtest.NewDatabase(t)
	sink := newRecSink(t)
	sink.set(http.StatusServiceUnavailable, 0)
	text := strings.Replace(fmt.Sprintf(replicaConfig, procAuth, procAdmin, sink.URL()),
		"circuit_breaker: {failure_threshold: 1000}", fmt.Sprintf("circuit_breaker: {failure_threshold: %d, open_for: 1h}", threshold), 1)
	rs, _ := startReplicasConfig(t, 3, dsn, []byte(text))
	for i := range 9 {
		if code, status, err := postStatus(rs[i%len(rs)].addr, fmt.Sprintf("brk-%d", i)); code != 200 || status != "accepted" {
			t.Fatalf("post: %d %s %v", code, status, err)
		}
	}
	for _, r := range rs {
		if !showsState(t, r, "circuit_open") {
			t.Fatalf("%s does not show the breaker open", r.name)
		}
	}
	// The breaker is the database's, not three replicas' own.
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var state string
	if err := conn.QueryRow(context.Background(), `SELECT breaker_state FROM destination_state WHERE name = 'sink'`).Scan(&state); err != nil || state != "open" {
		t.Fatalf("shared breaker state %q (%v), want open", state, err)
	}
	// Sends already running when it opened finish their in-process
	// retries; then the count stands still.
	last := -1
	testutil.PollEvery(10*time.Second, 500*time.Millisecond, func() bool {
		n, _, _ := sink.counters()
		still := n == last
		last = n
		return still
	})
	opened, _, _ := sink.counters()
	// threshold failed tries, plus the tries running on each replica's 4
	// slots when it opened; each try is up to RetryMax+1 requests.
	if limit := (threshold + 3*4) * (webhook.RetryMax + 1); opened > limit {
		t.Errorf("%d requests before every replica held the destination, want at most %d", opened, limit)
	}
	// Retries are due every 100-500 ms: an open breaker holds them all.
	if testutil.Poll(2*time.Second, func() bool { n, _, _ := sink.counters(); return n > opened }) {
		n, _, _ := sink.counters()
		t.Errorf("%d requests after the breaker opened on every replica, want none", n-opened)
	}
	t.Logf("%d requests reached the failing destination before the shared breaker (threshold %d) held it on 3 replicas", opened, threshold)
}
