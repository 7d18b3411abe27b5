//go:build reliability

// The long fault-injection scenarios against the real rcrouter process. Run
// them with (see RELIABILITY.md):
//
//	go test -tags reliability -run Reliability -v -p 1 -timeout 30m ./...
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rcrouter/rcrouter/internal/testutil"
)

// faultConfig writes a config with three destinations: a file archive and
// sink "a" get every event, sink "b" only renewals.
func faultConfig(t *testing.T, dir, addr, dataDir, a, b string) string {
	t.Helper()
	cfg := fmt.Sprintf(`server:
  listen: %q
inbound:
  authorization: [%q]
admin:
  token: %q
storage:
  path: %s/rcrouter.db
defaults:
  timeout: 2s
  concurrency: 8
  retry: {initial_interval: 100ms, max_interval: 1s, max_attempts: 1000}
destinations:
  archive:
    file: {path: archive/events.jsonl}
  a:
    webhook: {url: %q}
  b:
    webhook: {url: %q}
routes:
  - name: all
    to: [archive, a]
  - name: renewals
    match: {type: RENEWAL}
    to: [b]
`, addr, procAuth, procAdmin, dataDir, a, b)
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// waitUntil asks cond until it holds or timeout passes.
func waitUntil(timeout time.Duration, cond func() bool) bool {
	return testutil.Poll(timeout, cond)
}

// waitEvery is waitUntil for costly conditions (reading the archive file).
func waitEvery(timeout, every time.Duration, cond func() bool) bool {
	return testutil.PollEvery(timeout, every, cond)
}

// ids returns how many distinct event ids reached the sink.
func (s *recSink) ids() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.got)
}

// missing reports how many acknowledged (event, destination)
// pairs have not arrived yet.
func missing(t *testing.T, l *ledger, dir string, sinks map[string]*recSink) int {
	t.Helper()
	n := 0
	for dest, ids := range l.expected() {
		var got map[string]int
		if dest == "archive" {
			got = archiveLines(t, filepath.Join(dir, "archive", "events.jsonl"))
		} else {
			got = sinks[dest].delivered()
		}
		n += compare(ids, got).lost
	}
	return n
}

// TestReliabilityCrashRecovery kills rcrouter with SIGKILL five times, at
// different moments, while thousands of events flow to a file and two
// webhook sinks, restarting it on the same files each time. Every event that
// was answered 200 must reach every destination its answer named; repeated
// deliveries (at least once) are counted.
func TestReliabilityCrashRecovery(t *testing.T) {
	a, b := newRecSink(t), newRecSink(t)
	sinks := map[string]*recSink{"a": a, "b": b}
	dir := t.TempDir()
	addr := freeAddr(t)
	cfg := faultConfig(t, dir, addr, "data", a.URL(), b.URL())
	l := newLedger()

	type round struct {
		name string
		// run drives the process until the moment of the kill.
		run func(t *testing.T, p *proc, prefix string)
	}
	rounds := []round{
		{"while ingesting, 8 clients", func(t *testing.T, p *proc, prefix string) {
			base := l.count()
			ld := startLoad(l, addr, prefix, 8, 100000, 0)
			defer ld.halt()
			waitUntil(60*time.Second, func() bool { return l.count() >= base+3000 })
			kill(t, p)
		}},
		{"while delivering a backlog, ingest stopped", func(t *testing.T, p *proc, prefix string) {
			b.set(0, 40*time.Millisecond) // b falls behind: 8 workers × 40 ms
			base := len(b.delivered())
			startLoad(l, addr, prefix, 8, 2000, 0).wait()
			// Kill once b has taken part of its backlog, with requests in flight.
			waitUntil(60*time.Second, func() bool { return len(b.delivered()) >= base+200 })
			kill(t, p)
			b.set(0, 0)
		}},
		{"during recovery, 100 ms after ready", func(t *testing.T, p *proc, prefix string) {
			ld := startLoad(l, addr, prefix, 4, 100000, 0)
			defer ld.halt()
			time.Sleep(100 * time.Millisecond)
			kill(t, p)
		}},
		{"while ingesting, 16 clients, sinks slow", func(t *testing.T, p *proc, prefix string) {
			a.set(0, 5*time.Millisecond)
			b.set(0, 25*time.Millisecond)
			base := l.count()
			ld := startLoad(l, addr, prefix, 16, 100000, 0)
			defer ld.halt()
			waitUntil(60*time.Second, func() bool { return l.count() >= base+3000 })
			kill(t, p)
			a.set(0, 0)
			b.set(0, 0)
		}},
		{"while sink b fails (503) and retries are due", func(t *testing.T, p *proc, prefix string) {
			b.set(http.StatusServiceUnavailable, 0)
			base := l.count()
			started, _, _ := b.counters()
			ids := b.ids()
			startLoad(l, addr, prefix, 8, 1000, 0).wait()
			if l.count() < base+1000 {
				t.Fatalf("%d of 1000 acknowledged: %v", l.count()-base, l.codes)
			}
			// Kill once b's deliveries are on their retries: b has had two
			// requests for each event of the round (503, then a retry),
			// while more keep coming.
			if !waitUntil(30*time.Second, func() bool {
				s, _, _ := b.counters()
				n := b.ids() - ids
				return n > 0 && s-started >= 2*n
			}) {
				t.Fatalf("b's retries did not come within 30s")
			}
			kill(t, p)
			b.set(0, 0)
		}},
	}
	var report []string
	for i, r := range rounds {
		start := time.Now()
		p := startProc(t, "serve", "--config", cfg)
		waitReady(t, p, addr)
		ready := time.Since(start)
		before := l.count()
		began := time.Now()
		r.run(t, p, fmt.Sprintf("crash%d", i+1))
		ran := time.Since(began)
		miss := missing(t, l, dir, sinks)
		line := fmt.Sprintf("round %d (%s): ready after %s, %d events acknowledged in %s, %d acknowledged deliveries outstanding at the kill",
			i+1, r.name, ready.Round(time.Millisecond), l.count()-before, ran.Round(time.Millisecond), miss)
		report = append(report, line)
		t.Log(line)
	}

	// Last start: everything acknowledged must arrive.
	start := time.Now()
	p := startProc(t, "serve", "--config", cfg)
	waitReady(t, p, addr)
	if !waitEvery(3*time.Minute, 250*time.Millisecond, func() bool { return missing(t, l, dir, sinks) == 0 }) {
		t.Fatalf("%d acknowledged deliveries never arrived; logs:\n%s", missing(t, l, dir, sinks), tail(p.log(), 40))
	}
	drained := time.Since(start)
	if err := stopProc(t, p, syscall.SIGTERM); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	if errs := logErrors(p.log()); len(errs) > 0 {
		t.Errorf("error lines after the last restart:\n%s", strings.Join(errs, "\n"))
	}

	exp := l.expected()
	arch := archiveLines(t, filepath.Join(dir, "archive", "events.jsonl"))
	for _, dest := range []string{"archive", "a", "b"} {
		got := arch
		if dest != "archive" {
			got = sinks[dest].delivered()
		}
		tl := compare(exp[dest], got)
		if tl.lost != 0 {
			t.Errorf("%s: %d of %d acknowledged events lost", dest, tl.lost, tl.want)
		}
		report = append(report, fmt.Sprintf("%-7s: %5d acknowledged, lost %d, duplicates %d (%.2f%%)",
			dest, tl.want, tl.lost, tl.dups, 100*float64(tl.dups)/float64(max(tl.want, 1))))
	}
	report = append(report, fmt.Sprintf("total: %d events acknowledged over 5 kills; non-200 answers %v; requests without answer %d; backlog drained %s after the last start",
		l.count(), l.codes, l.errs, drained.Round(time.Millisecond)))
	t.Log("figures:\n" + strings.Join(report, "\n"))
}

func kill(t *testing.T, p *proc) {
	t.Helper()
	err := stopProc(t, p, syscall.SIGKILL)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("process did not die of SIGKILL: %v", err)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// probe is one /readyz answer: its time and status (0: no answer).
type probe struct {
	at   time.Time
	code int
}

// pollReady asks /readyz every 2 ms over one keep-alive connection until
// stop is closed, and returns what it saw.
func pollReady(addr string, stop <-chan struct{}) <-chan []probe {
	out := make(chan []probe, 1)
	go func() {
		var ps []probe
		client := &http.Client{Timeout: 2 * time.Second}
		for {
			select {
			case <-stop:
				out <- ps
				return
			default:
			}
			code := 0
			if resp, err := client.Get("http://" + addr + "/readyz"); err == nil {
				resp.Body.Close()
				code = resp.StatusCode
			}
			ps = append(ps, probe{time.Now(), code})
			time.Sleep(2 * time.Millisecond)
		}
	}()
	return out
}

// TestReliabilityGracefulStop sends SIGTERM while webhooks arrive and
// deliveries to a slow destination (1.5 s per request) are in flight:
// readiness fails and intake stops, the in-flight attempts finish and are
// recorded, the process exits 0, and after a restart every acknowledged
// event is delivered, none of the finished ones twice.
func TestReliabilityGracefulStop(t *testing.T) {
	fast, slow := newRecSink(t), newRecSink(t)
	slow.set(0, 1500*time.Millisecond)
	sinks := map[string]*recSink{"a": fast, "b": slow}
	dir := t.TempDir()
	addr := freeAddr(t)
	cfg := faultConfig(t, dir, addr, "data", fast.URL(), slow.URL())
	p := startProc(t, "serve", "--config", cfg)
	waitReady(t, p, addr)

	l := newLedger()
	ld := startLoad(l, addr, "term", 8, 100000, 5*time.Millisecond)
	stopPoll := make(chan struct{})
	probes := pollReady(addr, stopPoll)
	// Let slow attempts pile up in flight (8 workers × 1.5 s).
	if !waitUntil(30*time.Second, func() bool { s, _, _ := slow.counters(); return s >= 16 }) {
		t.Fatal("no attempts reached the slow sink")
	}
	inFlight := func() int { s, f, c := slow.counters(); return s - f - c }
	busy := inFlight()
	sigAt := time.Now()
	err := stopProc(t, p, syscall.SIGTERM)
	exitAfter := time.Since(sigAt)
	ld.halt()
	close(stopPoll)
	ps := <-probes
	if err != nil {
		t.Fatalf("exit after SIGTERM: %v; logs:\n%s", err, tail(p.log(), 30))
	}
	_, _, cut := slow.counters()
	if cut != 0 || inFlight() != 0 {
		t.Errorf("%d attempts were cut off and %d never finished; graceful stop must let them finish", cut, inFlight())
	}

	// Readiness: once it failed after the signal, it never came back.
	var firstFail time.Time
	draining := 0
	for _, pr := range ps {
		if pr.at.Before(sigAt) {
			continue
		}
		if pr.code != 200 && firstFail.IsZero() {
			firstFail = pr.at
		}
		if pr.code == 200 && !firstFail.IsZero() {
			t.Errorf("/readyz answered 200 at %s, after failing at %s", pr.at.Sub(sigAt), firstFail.Sub(sigAt))
		}
		if pr.code == http.StatusServiceUnavailable {
			draining++
		}
	}
	if firstFail.IsZero() {
		t.Fatal("/readyz never failed after SIGTERM")
	}
	var lastAck time.Time
	l.mu.Lock()
	acksAfter := 0
	for _, at := range l.ackedAt {
		if at.After(lastAck) {
			lastAck = at
		}
		if at.After(sigAt) {
			acksAfter++
		}
	}
	l.mu.Unlock()

	// Restart: nothing acknowledged is missing, the finished attempts are
	// not repeated.
	p2 := startProc(t, "serve", "--config", cfg)
	waitReady(t, p2, addr)
	slow.set(0, 0)
	if !waitEvery(2*time.Minute, 250*time.Millisecond, func() bool { return missing(t, l, dir, sinks) == 0 }) {
		t.Fatalf("%d acknowledged deliveries missing after restart", missing(t, l, dir, sinks))
	}
	exp := l.expected()
	ta, tb := compare(exp["a"], fast.delivered()), compare(exp["b"], slow.delivered())
	if tb.dups != 0 {
		t.Errorf("slow sink got %d repeated deliveries: attempts that finished during shutdown were not recorded", tb.dups)
	}
	if err := stopProc(t, p2, syscall.SIGTERM); err != nil {
		t.Fatalf("second exit: %v", err)
	}
	t.Logf("figures:\n"+
		"SIGTERM with %d attempts in flight at the slow sink (1.5 s each); process exited 0 after %s\n"+
		"/readyz: first failure %s after the signal (%d probes answered 503 draining before the listener closed)\n"+
		"intake: last webhook acknowledged %s after the signal (%d acknowledged after it: requests already in flight)\n"+
		"in-flight attempts cut off: %d; %d events acknowledged in all; after restart: a lost %d dup %d, b lost %d dup %d",
		busy, exitAfter.Round(time.Millisecond), firstFail.Sub(sigAt).Round(time.Microsecond), draining,
		lastAck.Sub(sigAt).Round(time.Microsecond), acksAfter, cut, l.count(), ta.lost, ta.dups, tb.lost, tb.dups)
}

// TestReliabilityStoreFull puts the database on a small tmpfs (mounted here,
// which needs root) and fills it up under load. The tmpfs holds the WAL at
// its bound (writerAutoCheckpoint, about 40 MB, store/sqlite): a smaller one
// fills up during the first load already, before the test fills it. The webhook must answer 503
// with Retry-After and never 200 for what it could not commit, /readyz must
// fail, both must recover when space is freed, and every acknowledged event
// must be stored and delivered, also after a restart.
func TestReliabilityStoreFull(t *testing.T) {
	dir := t.TempDir()
	mnt := filepath.Join(dir, "data")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	const tmpfsMiB = 64
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%dm", tmpfsMiB), "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Fatalf("cannot mount a tmpfs for the database (this scenario needs root): %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	a, b := newRecSink(t), newRecSink(t)
	sinks := map[string]*recSink{"a": a, "b": b}
	addr := freeAddr(t)
	cfg := faultConfig(t, dir, addr, mnt, a.URL(), b.URL())
	p := startProc(t, "serve", "--config", cfg)
	waitReady(t, p, addr)

	l := newLedger()
	startLoad(l, addr, "full-before", 4, 400, 0).wait()
	if l.count() != 400 {
		t.Fatalf("%d of 400 acknowledged before the disk filled: %v", l.count(), l.codes)
	}

	// Fill the file system.
	filler := filepath.Join(mnt, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	filled := 0
	for {
		n, err := f.Write(chunk)
		filled += n
		if err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling: %v", err)
			}
			break
		}
	}
	f.Close()
	fullAt := time.Now()

	// Keep posting while the disk is full: count answers; watch /readyz.
	stopPoll := make(chan struct{})
	probes := pollReady(addr, stopPoll)
	during := newLedger()
	ld := startLoad(during, addr, "full-during", 4, 100000, 2*time.Millisecond)
	waitUntil(20*time.Second, func() bool {
		during.mu.Lock()
		defer during.mu.Unlock()
		return during.codes[http.StatusServiceUnavailable] >= 200
	})
	ld.halt()
	during.mu.Lock()
	refused, accepted := during.codes[http.StatusServiceUnavailable], len(during.acked)
	noRA := during.noRetryAfter
	during.mu.Unlock()
	if refused == 0 {
		t.Fatalf("the disk is full and no webhook was refused (%d accepted)", accepted)
	}
	if noRA != 0 {
		t.Errorf("%d of %d 503 answers had no Retry-After", noRA, refused)
	}

	// Free the space; readiness and intake come back.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	freedAt := time.Now()
	var readyAgain time.Duration
	if !waitUntil(30*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		readyAgain = time.Since(freedAt)
		return resp.StatusCode == 200
	}) {
		t.Fatalf("/readyz did not recover after space was freed; logs:\n%s", tail(p.log(), 30))
	}
	close(stopPoll)
	readyFailed := 0
	for _, pr := range <-probes {
		if pr.at.After(fullAt) && pr.at.Before(freedAt) && pr.code == http.StatusServiceUnavailable {
			readyFailed++
		}
	}
	if readyFailed == 0 {
		t.Error("/readyz never failed while the disk was full")
	}
	after := newLedger()
	startLoad(after, addr, "full-after", 4, 400, 0).wait()
	if after.count() != 400 {
		t.Fatalf("%d of 400 acknowledged after recovery: %v", after.count(), after.codes)
	}

	// Every acknowledged event, from all three phases, is stored; after a
	// graceful restart it is still there and gets delivered.
	for _, src := range []*ledger{during, after} {
		src.mu.Lock()
		for id, ds := range src.acked {
			l.acked[id] = ds
		}
		src.mu.Unlock()
	}
	if err := stopProc(t, p, syscall.SIGTERM); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	p2 := startProc(t, "serve", "--config", cfg)
	waitReady(t, p2, addr)
	for id, ds := range l.acked {
		d, code := getEvent(t, addr, id)
		if code != 200 || len(d.Deliveries) != len(ds) {
			t.Fatalf("acknowledged event %s: GET %d with %d deliveries, want %d", id, code, len(d.Deliveries), len(ds))
		}
	}
	if !waitEvery(2*time.Minute, 250*time.Millisecond, func() bool { return missing(t, l, dir, sinks) == 0 }) {
		t.Fatalf("%d acknowledged deliveries never arrived", missing(t, l, dir, sinks))
	}
	exp := l.expected()
	ta, tb := compare(exp["a"], a.delivered()), compare(exp["b"], b.delivered())
	if err := stopProc(t, p2, syscall.SIGTERM); err != nil {
		t.Fatalf("second exit: %v", err)
	}
	t.Logf("figures:\n"+
		"tmpfs %d MiB, filled with %d MiB more; while full: %d webhooks answered 503 (all with Retry-After: %v), %d answered 200 (each found stored below), %d /readyz probes failed\n"+
		"space freed: /readyz 200 again after %s; 400/400 accepted after recovery\n"+
		"after restart: %d acknowledged events all stored; a lost %d dup %d, b lost %d dup %d",
		tmpfsMiB, filled>>20, refused, noRA == 0, accepted, readyFailed, readyAgain.Round(time.Millisecond),
		l.count(), ta.lost, ta.dups, tb.lost, tb.dups)
}

// ledger is what the load generator was told: every event id answered 200
// "accepted", with the destinations the answer named.
type ledger struct {
	mu      sync.Mutex
	acked   map[string][]string
	ackedAt map[string]time.Time
	codes   map[int]int // non-200 answers by status
	errs    int         // requests without an answer (connection refused or cut)
	// noRetryAfter counts 503 answers without a Retry-After header.
	noRetryAfter int
}

func newLedger() *ledger {
	return &ledger{acked: map[string][]string{}, ackedAt: map[string]time.Time{}, codes: map[int]int{}}
}

func (l *ledger) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

// expected returns, per destination, the ids acknowledged for it.
func (l *ledger) expected() map[string][]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string][]string{}
	for id, ds := range l.acked {
		for _, d := range ds {
			out[d] = append(out[d], id)
		}
	}
	return out
}

// post sends one webhook and records the outcome. It returns the status,
// or 0 when there was no answer.
func (l *ledger) post(client *http.Client, addr string, body []byte, id string) int {
	req, _ := http.NewRequest("POST", "http://"+addr+"/webhooks/revenuecat", bytes.NewReader(body))
	req.Header.Set("Authorization", procAuth)
	resp, err := client.Do(req)
	if err != nil {
		l.mu.Lock()
		l.errs++
		l.mu.Unlock()
		return 0
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	l.mu.Lock()
	defer l.mu.Unlock()
	if resp.StatusCode != http.StatusOK {
		l.codes[resp.StatusCode]++
		if resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "" {
			l.noRetryAfter++
		}
		return resp.StatusCode
	}
	var ans struct {
		Status       string   `json:"status"`
		Destinations []string `json:"destinations"`
	}
	if err := json.Unmarshal(b, &ans); err != nil {
		panic(fmt.Sprintf("200 answer is not JSON: %s", b))
	}
	if ans.Status == "accepted" {
		l.acked[id] = ans.Destinations
		l.ackedAt[id] = time.Now()
	}
	return resp.StatusCode
}

// typedEvent is eventBody with a chosen type: RENEWAL or INITIAL_PURCHASE
// (the fault-injection configs route renewals to one more destination).
func typedEvent(id, typ string) []byte {
	return bytes.Replace(eventBody(id), []byte(`"type":"RENEWAL"`), []byte(`"type":"`+typ+`"`), 1)
}

// load posts fresh events from `clients` goroutines until stop is closed,
// max events were posted, or the process stops answering. Event i of a
// client is a RENEWAL when i is even.
type load struct {
	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

func startLoad(l *ledger, addr, prefix string, clients, max int, pace time.Duration) *load {
	ld := &load{stop: make(chan struct{})}
	per := (max + clients - 1) / clients
	for c := 0; c < clients; c++ {
		ld.wg.Add(1)
		go func(c int) {
			defer ld.wg.Done()
			client := &http.Client{Timeout: 10 * time.Second}
			for i := 0; i < per; i++ {
				select {
				case <-ld.stop:
					return
				default:
				}
				id := fmt.Sprintf("%s-%d-%d", prefix, c, i)
				typ := "RENEWAL"
				if i%2 == 1 {
					typ = "INITIAL_PURCHASE"
				}
				if l.post(client, addr, typedEvent(id, typ), id) == 0 {
					return // the process is gone
				}
				if pace > 0 {
					select {
					case <-ld.stop:
						return
					case <-time.After(pace):
					}
				}
			}
		}(c)
	}
	return ld
}

// wait waits until every client has posted its share (or the process
// stopped answering).
func (ld *load) wait() { ld.wg.Wait() }

// halt stops the load and waits for every client.
func (ld *load) halt() {
	ld.once.Do(func() { close(ld.stop) })
	ld.wg.Wait()
}

// archiveLines counts the lines of a file destination per event id. A line
// that is not JSON fails the test: a crash must never leave a torn line.
func archiveLines(t *testing.T, path string) map[string]int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		var l struct {
			Event struct {
				Event struct {
					ID string `json:"id"`
				} `json:"event"`
			} `json:"event"`
		}
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil || l.Event.Event.ID == "" {
			t.Fatalf("%s line %d is not an archived event: %q", path, n, sc.Text())
		}
		out[l.Event.Event.ID]++
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// tally compares what a destination got with what was acknowledged for it.
type tally struct {
	want, lost, dups int
}

func compare(want []string, got map[string]int) tally {
	tl := tally{want: len(want)}
	for _, id := range want {
		switch n := got[id]; {
		case n == 0:
			tl.lost++
		case n > 1:
			tl.dups += n - 1
		}
	}
	return tl
}

// logErrors returns the error-level lines of a JSON log.
func logErrors(logs string) []string {
	var out []string
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, `"level":"ERROR"`) {
			out = append(out, l)
		}
	}
	return out
}
